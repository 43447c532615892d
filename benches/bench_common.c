/* Helpers shared by the benchmark programs: see bench_common.h. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

volatile sig_atomic_t sender_done;
volatile sig_atomic_t stop_requested;

double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long peak_rss_kib(void)
{
    /* VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve, so a child
     * of a big runner process would report the runner's peak. */
    FILE *f = fopen("/proc/self/status", "r");
    long kib = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kib;
}

long alloc_calls(void)
{
    /* Looked up once: NULL when alloc_count.so is not preloaded. */
    static unsigned long (*counter)(void);
    static bool looked_up;
    if (!looked_up) {
        *(void **)&counter = dlsym(RTLD_DEFAULT, "bench_alloc_count");
        looked_up = true;
    }
    return counter ? (long)counter() : -1;
}

void raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || (long)rl.rlim_cur >= want) {
        return;
    }
    rl.rlim_cur = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
    }
    setrlimit(RLIMIT_NOFILE, &rl);
}

void die(bool errno_too, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (errno_too) {
        fprintf(stderr, ": %s", strerror(saved));
    }
    fputc('\n', stderr);
    exit(1);
}

const char *arg_str(int argc, char **argv, const char *key, const char *def)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], key) == 0) {
            return argv[i + 1];
        }
    }
    return def;
}

long arg_long(int argc, char **argv, const char *key, long def)
{
    const char *s = arg_str(argc, argv, key, NULL);
    if (!s) {
        return def;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0') {
        die(false, "bad number for %s: %s", key, s);
    }
    return v;
}

void announce_port(int port)
{
    printf("PORT %d\n", port);
    fflush(stdout);
}

static void on_sigusr2(int sig)
{
    (void)sig;
    sender_done = 1;
}

static void on_sigterm(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupt blocking receives */
    sa.sa_handler = on_sigusr2;
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_handler = on_sigterm;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- receive bookkeeping ------------------------------------------------ */

void rx_init(struct rx_stats *rx, int argc, char **argv)
{
    memset(rx, 0, sizeof *rx);
    rx->expected = (uint64_t)arg_long(argc, argv, "--count", 0);
    long warmup = arg_long(argc, argv, "--warmup", 1000);
    rx->warmup = warmup < 1 ? 1 : (uint64_t)warmup;
    rx->idle_ns = (uint64_t)arg_long(argc, argv, "--idle-ms", 300) * 1000000u;
    rx->start_ns = rx->seen_ns = now_ns();
    rx->alloc0 = -1;
}

void rx_window_start(struct rx_stats *rx)
{
    CALLGRIND_ZERO_STATS;
    rx->cpu0 = cpu_seconds();
    rx->alloc0 = alloc_calls();
}

bool rx_should_stop(struct rx_stats *rx)
{
    uint64_t now = now_ns();
    uint64_t count = atomic_load_explicit(&rx->count, memory_order_relaxed);
    if (stop_requested || (rx->expected && count >= rx->expected)) {
        return true;
    }
    if (count != rx->seen_count) {
        rx->seen_count = count;
        rx->seen_ns = now;
        return false;
    }
    if (count == 0) {
        /* Nothing yet: give up after 20 s, or 2 s after the sender ended. */
        return now - rx->start_ns > 20000000000u ||
               (sender_done && now - rx->seen_ns > 2000000000u);
    }
    return sender_done && now - rx->seen_ns > rx->idle_ns;
}

void rx_report(struct rx_stats *rx, const char *extra)
{
    CALLGRIND_DUMP_STATS;
    double cpu1 = cpu_seconds();
    long alloc1 = alloc_calls();
    uint64_t count = atomic_load_explicit(&rx->count, memory_order_relaxed);
    uint64_t window = count >= rx->warmup ? count - rx->warmup : 0;
    printf("RESULT received=%llu bytes=%llu wall_s=%.6f window=%llu cpu_s=%.6f "
           "allocs=%ld rss_kib=%ld %s\n",
           (unsigned long long)count, (unsigned long long)rx->bytes,
           count ? (double)(rx->last_ns - rx->first_ns) / 1e9 : 0.0,
           (unsigned long long)window, window ? cpu1 - rx->cpu0 : 0.0,
           (alloc1 >= 0 && window) ? alloc1 - rx->alloc0 : -1L, peak_rss_kib(), extra ? extra : "");
    fflush(stdout);
}

/* ---- round trips --------------------------------------------------------- */

void rtt_init(struct rtt_stats *r, int argc, char **argv)
{
    memset(r, 0, sizeof *r);
    r->count = arg_long(argc, argv, "--count", 100000);
    r->warmup = arg_long(argc, argv, "--warmup", 1000);
    r->cap = (size_t)r->count;
    r->us = calloc(r->cap ? r->cap : 1, sizeof *r->us);
    if (!r->us) {
        die(false, "out of memory");
    }
}

void rtt_record(struct rtt_stats *r, long i, uint64_t t0_ns)
{
    uint64_t t1 = now_ns();
    if (i >= r->warmup && r->n < r->cap) {
        r->us[r->n++] = (double)(t1 - t0_ns) / 1e3;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void rtt_report(struct rtt_stats *r)
{
    double median = 0, p99 = 0;
    if (r->n) {
        qsort(r->us, r->n, sizeof *r->us, cmp_double);
        median = r->us[r->n / 2];
        p99 = r->us[(size_t)((double)(r->n - 1) * 0.99)];
    }
    printf("RESULT round_trips=%zu rtt_median_us=%.3f rtt_p99_us=%.3f rss_kib=%ld\n", r->n, median, p99,
           peak_rss_kib());
    fflush(stdout);
    free(r->us);
    r->us = NULL;
}

/* ---- send loops ---------------------------------------------------------- */

void tx_init(struct tx_stats *tx, int argc, char **argv)
{
    memset(tx, 0, sizeof *tx);
    tx->attempts = arg_long(argc, argv, "--count", 100000);
    tx->warmup = arg_long(argc, argv, "--warmup", 1000);
    if (tx->warmup >= tx->attempts) {
        tx->warmup = tx->attempts / 10;
    }
    tx->alloc0 = -1;
}

void tx_start(struct tx_stats *tx)
{
    tx->t0_ns = now_ns();
    tx->cpu0 = cpu_seconds();
}

void tx_window_start(struct tx_stats *tx)
{
    tx->alloc0 = alloc_calls();
    tx->alloc_win0 = tx->ok + tx->errors;
}

void tx_report(struct tx_stats *tx)
{
    tx_report_extra(tx, NULL);
}

void tx_report_extra(struct tx_stats *tx, const char *extra)
{
    double wall = (double)(now_ns() - tx->t0_ns) / 1e9;
    double cpu = cpu_seconds() - tx->cpu0;
    long alloc1 = alloc_calls();
    long window = tx->ok + tx->errors - tx->alloc_win0;
    printf("RESULT sent=%ld errors=%ld wall_s=%.6f cpu_s=%.6f window=%ld allocs=%ld rss_kib=%ld %s\n", tx->ok,
           tx->errors, wall, cpu, window, (alloc1 >= 0 && tx->alloc0 >= 0) ? alloc1 - tx->alloc0 : -1L,
           peak_rss_kib(), extra ? extra : "");
    fflush(stdout);
}

/* ---- sockets ------------------------------------------------------------- */

void loopback_addr(struct sockaddr_in *sa, int port)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

int udp_socket_bound(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die(true, "socket");
    }
    struct sockaddr_in sa;
    loopback_addr(&sa, port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        die(true, "bind");
    }
    return fd;
}

int local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        die(true, "getsockname");
    }
    return ntohs(sa.sin_port);
}
