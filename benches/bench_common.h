/*
 * Shared helpers of the libdgram benchmark programs: clocks, CPU time,
 * argument parsing, the "PORT"/"RESULT" lines the runner (benches/run.py)
 * reads, the receive bookkeeping every receiver uses, and round-trip
 * statistics.
 *
 * Protocol between the programs and the runner, all on stdout:
 *   PORT <n>                 a receiver or server is bound to 127.0.0.1:<n>
 *   RESULT key=value ...     the measurements, one line, at the end
 * Diagnostics go to stderr. The runner sends SIGUSR2 to a receiver once the
 * sender process has exited ("no more data is coming").
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS
#endif

/* The only address any benchmark program uses. */
#define BENCH_ADDR "127.0.0.1"
/* SO_RCVBUF every receiver asks for. */
#define BENCH_RCVBUF (4 * 1024 * 1024)
/* Largest datagram a receiver accepts (the benchmark sends at most 1200 B). */
#define BENCH_MAX_DGRAM 2048

/* ---- segmentation offload (the "offload" cases) -------------------------- */

/* UDP_SEGMENT (GSO, Linux 4.18) and UDP_GRO (Linux 5.0), for C libraries
 * whose headers predate them. */
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
/* A receive buffer that holds any UDP_GRO buffer (at most 64 KiB). */
#define BENCH_GRO_BUF 65536

/* Segments of `size` bytes in one UDP_SEGMENT write: at most 64 (the
 * kernel's UDP_MAX_SEGMENTS before Linux 6.2) and at most 65507 bytes (one
 * IPv4 datagram's payload): 54 for 1200 B. */
static inline int gso_segments(long size)
{
    long n = size > 0 ? 65507 / size : 1;
    return n > 64 ? 64 : n < 1 ? 1 : (int)n;
}

/* ---- clocks and resources ---------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* User + system CPU seconds of the whole process (every thread). */
double cpu_seconds(void);
/* Peak resident set size (VmHWM of /proc/self/status) in KiB. */
long peak_rss_kib(void);
/* Allocation calls counted so far by benches/alloc_count.so when it is
 * LD_PRELOADed, or -1 when it is not. */
long alloc_calls(void);
/* Raises RLIMIT_NOFILE to at least `want` (up to the hard limit). */
void raise_nofile(long want);
/* Dies with a message (printf format) and errno's text if errno_too. */
void die(bool errno_too, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* ---- arguments: "prog SUBCOMMAND --key value ..." ----------------------- */

const char *arg_str(int argc, char **argv, const char *key, const char *def);
long arg_long(int argc, char **argv, const char *key, long def);

/* ---- the runner protocol ------------------------------------------------ */

/* Prints "PORT <port>" and flushes stdout. */
void announce_port(int port);
/* Set by SIGUSR2: the sender has finished. */
extern volatile sig_atomic_t sender_done;
/* Set by SIGTERM/SIGINT: a server (echo, sink) should stop. */
extern volatile sig_atomic_t stop_requested;
/* Installs the SIGUSR2 and SIGTERM/SIGINT handlers (without SA_RESTART, so
 * they interrupt blocking calls). */
void install_signal_handlers(void);

/* ---- receive bookkeeping ------------------------------------------------ */

/*
 * Every receiver counts datagrams with rx_count() (cheap: no clock read on
 * most datagrams) and decides when to stop with rx_should_stop(), called from
 * its idle loop (every few ms, or whenever a blocking receive times out).
 *
 * Measurement window: CPU time and the allocation counter are read at the
 * `warmup`-th datagram and again at the stop, so setup and the first
 * datagrams (lazy binding, first allocations) are excluded; callgrind's
 * counters are zeroed and dumped at the same two points.
 */
struct rx_stats {
    /* Datagrams received. Written by the receiving thread only, read by the
     * idle loop (another thread in I/O-thread dispatch): relaxed atomic loads
     * and stores, which are plain moves on common CPUs. */
    _Atomic uint64_t count;
    uint64_t bytes;     /* their payload bytes */
    uint64_t expected;  /* how many the sender sends (stop when all came) */
    uint64_t warmup;    /* datagram at which the window starts (>= 1) */
    uint64_t first_ns;  /* arrival of the first datagram */
    uint64_t last_ns;   /* arrival of the last one (to within 64 datagrams) */
    /* window start, taken at datagram number `warmup` */
    double cpu0;
    long alloc0;
    /* idle detection, updated by rx_should_stop */
    uint64_t seen_count;
    uint64_t seen_ns;
    uint64_t start_ns;
    uint64_t idle_ns;
};

/* Reads --count (expected), --warmup and --idle-ms from the arguments. */
void rx_init(struct rx_stats *rx, int argc, char **argv);
/* Starts the measurement window (called by rx_count at datagram `warmup`). */
void rx_window_start(struct rx_stats *rx);
/* Called once per datagram of `len` bytes, from whichever thread receives. */
static inline void rx_count(struct rx_stats *rx, size_t len)
{
    uint64_t n = atomic_load_explicit(&rx->count, memory_order_relaxed) + 1;
    atomic_store_explicit(&rx->count, n, memory_order_relaxed);
    rx->bytes += len;
    if (n == 1) {
        rx->first_ns = rx->last_ns = now_ns();
    } else if ((n & 63) == 0 || n == rx->expected) {
        rx->last_ns = now_ns();
    }
    if (n == rx->warmup) {
        rx_window_start(rx);
    }
}
/* True on SIGTERM, when every expected datagram came, or the sender has finished and
 * nothing came for --idle-ms, or nothing at all came for 20 s. */
bool rx_should_stop(struct rx_stats *rx);
/* Prints the RESULT line of a receiver (adds `extra`, e.g. "rcvbuf=..."). */
void rx_report(struct rx_stats *rx, const char *extra);

/* ---- round trips --------------------------------------------------------- */

struct rtt_stats {
    double *us;      /* one sample per measured round trip, microseconds */
    size_t n, cap;
    long warmup;     /* round trips before measuring */
    long count;      /* measured round trips */
};

void rtt_init(struct rtt_stats *r, int argc, char **argv);
/* Total round trips to do (warm-up included). */
static inline long rtt_total(const struct rtt_stats *r) { return r->warmup + r->count; }
/* Records round trip number `i` (0-based) that started at `t0_ns`. */
void rtt_record(struct rtt_stats *r, long i, uint64_t t0_ns);
/* Prints the RESULT line (median, p99) and frees the samples. */
void rtt_report(struct rtt_stats *r);

/* ---- send loops ---------------------------------------------------------- */

struct tx_stats {
    long attempts;   /* send calls made */
    long ok;         /* accepted */
    long errors;     /* refused with EAGAIN/ENOBUFS-like errors */
    long warmup;     /* attempts before the allocation window starts */
    uint64_t t0_ns;
    double cpu0;
    long alloc0, alloc_win0;
};

void tx_init(struct tx_stats *tx, int argc, char **argv);
/* Call once before the first send and after send number `warmup`. */
void tx_start(struct tx_stats *tx);
void tx_window_start(struct tx_stats *tx);
/* Prints the RESULT line (after the sends have fully left the process). */
void tx_report(struct tx_stats *tx);
/* The same, with `extra` ("key=value ...", numbers only) appended. */
void tx_report_extra(struct tx_stats *tx, const char *extra);

/* A connected-less UDP socket bound to 127.0.0.1:port (0: any port). */
int udp_socket_bound(int port);
/* Local port of a bound socket. */
int local_port(int fd);
/* Fills `sa` with 127.0.0.1:port. */
struct sockaddr_in;
void loopback_addr(struct sockaddr_in *sa, int port);

#endif
