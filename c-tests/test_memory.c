/*
 * Receive memory: a context maps one receive batch whatever its bound and
 * however many datagrams arrive; a bound too large to honour is clamped,
 * not allocated up front; when no batch can be mapped the reader backs off
 * instead of spinning and loses nothing the kernel kept; a stream of large
 * datagrams leaves resident memory where it was; and a minute of echo
 * traffic leaves it flat.
 *
 * Memory figures are read from /proc/self/status (VmSize: address space,
 * VmRSS/VmHWM: resident), and address-space limits set with RLIMIT_AS.
 * Neither means anything under valgrind or qemu-user (their own memory
 * counts, and qemu-user ignores RLIMIT_AS), so c-tests/CMakeLists.txt runs
 * this program natively only. Unicast on 127.0.0.1 only.
 */
#include "recorder.h"
#include "test_runner.h"

#include <malloc.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define MIB (1024L * 1024L)

/* A field of /proc/self/status, in KiB. */
static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    CHECK(kib >= 0);
    return kib;
}

/* A socket that sends plain datagrams to 127.0.0.1:`port`. */
static int raw_sender(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    return fd;
}

static uint16_t raw_port(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void raw_send(int fd, uint16_t port, const void *data, size_t len) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(sendto(fd, data, len, 0, (struct sockaddr *)&to, sizeof to), (long)len);
}

/* Sets the soft address-space limit; returns the old limits. */
static struct rlimit limit_address_space(rlim_t bytes) {
    struct rlimit old;
    CHECK_EQ(getrlimit(RLIMIT_AS, &old), 0);
    struct rlimit now = old;
    now.rlim_cur = bytes;
    CHECK_EQ(setrlimit(RLIMIT_AS, &now), 0);
    return old;
}

static void restore_address_space(struct rlimit old) { CHECK_EQ(setrlimit(RLIMIT_AS, &old), 0); }

/* The CPU time the whole process used so far, in milliseconds: the test's
 * thread (which dispatches) and the context's I/O thread. */
static long process_cpu_ms(void) {
    struct rusage u;
    CHECK_EQ(getrusage(RUSAGE_SELF, &u), 0);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000L +
           (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000L;
}

/* ---- one batch ------------------------------------------------------------------ */

#define BOUND_SOCKETS 4
#define BOUND_DATAGRAMS 250 /* per socket */

/* 1000 datagrams to four sockets, each send with a completion queued
 * between two datagrams (so no two reads could ever share a batch that
 * waits), then all dispatched: the address space grows by one batch
 * (2 MiB) and not by a batch per read, with the default bound. */
static void test_one_batch_whatever_arrives(void) {
    /* One malloc arena for every thread: a thread's own arena reserves 64 MiB
     * of address space the first time it allocates (the I/O thread, when a
     * send has to wait for it), which would hide the batches measured here. */
    CHECK_EQ(mallopt(M_ARENA_MAX, 1), 1);
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r[BOUND_SOCKETS];
    dgram_socket *s[BOUND_SOCKETS];
    uint16_t port[BOUND_SOCKETS];
    for (int k = 0; k < BOUND_SOCKETS; k++) {
        s[k] = rec_socket(ctx, DGRAM_UDP4, &r[k]);
        port[k] = rec_bind_wait(ctx, s[k], &r[k], 0, "127.0.0.1");
    }
    /* Warm up: the I/O thread's and the allocator's own memory set up. */
    send_slot warm;
    CHECK_OK(dgram_send(s[0], "w", 1, port[0], "127.0.0.1", rec_on_sent, send_slot_init(&warm, &r[0])));
    RUN_UNTIL(ctx, r[0].count, 1);
    RUN_UNTIL(ctx, r[0].sends, 1);
    long before = status_kib("VmSize");

    static send_slot slots[BOUND_SOCKETS][BOUND_DATAGRAMS];
    long peak = 0;
    for (int i = 0; i < BOUND_DATAGRAMS; i++) {
        for (int k = 0; k < BOUND_SOCKETS; k++)
            CHECK_OK(dgram_send(s[k], "x", 1, port[k], "127.0.0.1", rec_on_sent,
                                send_slot_init(&slots[k][i], &r[k])));
        if (i % 50 == 49) {
            for (int k = 0; k < BOUND_SOCKETS; k++) {
                RUN_UNTIL(ctx, r[k].count, (k == 0) + i + 1);
                RUN_UNTIL(ctx, r[k].sends, (k == 0) + i + 1);
            }
            long grown = status_kib("VmSize") - before;
            peak = grown > peak ? grown : peak;
        }
    }
    printf("  address space grew by %ld KiB at most\n", peak);
    /* One batch is 2 MiB of address space; allow 2 MiB for the rest. */
    if (peak > 4 * 1024)
        FAIL("address space grew by %ld KiB: more than one batch", peak);
    test_run_for(ctx, 50);
    for (int k = 0; k < BOUND_SOCKETS; k++) {
        CHECK_EQ(test_load(&r[k].count), (k == 0) + BOUND_DATAGRAMS);
        CHECK_EQ(r[k].send_errors, 0);
        for (int i = 0; i < BOUND_DATAGRAMS; i++)
            send_slot_check_ok(&slots[k][i], 1);
        dgram_socket_free(s[k]);
    }
    test_context_finish(ctx);
}

/* ---- a bound too large to honour ---------------------------------------------- */

/* UINT32_MAX is clamped: creating the context maps nothing in proportion,
 * so it works within a 256 MiB address-space allowance (an array sized by
 * the bound would need 1 GiB and abort the process), and datagrams flow. */
static void test_huge_bound_is_clamped_not_allocated(void) {
    long vm = status_kib("VmSize");
    struct rlimit old = limit_address_space((rlim_t)(vm * 1024 + 256 * MIB));
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, UINT32_MAX);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t port = rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    CHECK_OK(dgram_send(s, "big bound", 9, port, "127.0.0.1", NULL, NULL));
    RUN_UNTIL(ctx, r.count, 1);
    rec_check_text(&r, 0, "big bound", "127.0.0.1", port, DGRAM_IPV4);
    dgram_socket_free(s);
    test_context_finish(ctx);
    restore_address_space(old);
}

/* ---- no memory: back off, lose nothing ------------------------------------------ */

#define WAITING 10

/* With the address space full (no 2 MiB batch can be mapped), datagrams
 * that arrive stay in the kernel's buffer while the host keeps calling
 * dgram_context_run (host dispatch) or the I/O thread is left to read them
 * (I/O-thread dispatch), and the reader waits for the pool's back-off
 * instead of spinning: the whole process uses well under 20% of a core
 * over a second. Once memory is back, every one of them is delivered. */
static void no_memory_backs_off(dgram_dispatch mode) {
    dgram_context *ctx = test_context(mode, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t port = rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    int fd = raw_sender();
    CHECK_EQ(dgram_context_active(ctx), 1);

    long vm = status_kib("VmSize");
    struct rlimit old = limit_address_space((rlim_t)(vm * 1024 + MIB + MIB / 2));
    /* The limit holds: a batch's worth of address space cannot be had. */
    void *probe = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        munmap(probe, 2 * MIB);
        restore_address_space(old);
        FAIL("RLIMIT_AS is not enforced here");
    }
    char msg[100];
    for (int i = 0; i < WAITING; i++) {
        memset(msg, 'a' + i, sizeof msg);
        raw_send(fd, port, msg, sizeof msg);
    }
    long t0 = process_cpu_ms();
    long long start = test_now_ms();
    if (mode == DGRAM_DISPATCH_HOST) {
        while (test_now_ms() - start < 1000)
            CHECK_EQ(dgram_context_run(ctx, 100), 0);
    } else {
        test_sleep_ms(1000);
    }
    long used = process_cpu_ms() - t0;
    long got = test_load(&r.count);
    restore_address_space(old);
    printf("  the process used %ld ms of CPU in a second without memory\n", used);
    CHECK_EQ(got, 0); /* nothing could be read */
    if (used * 5 >= 1000)
        FAIL("the process used %ld ms of CPU in a second while no batch could be mapped: it spins", used);

    RUN_UNTIL(ctx, r.count, WAITING);
    test_run_for(ctx, 50);
    CHECK_EQ(test_load(&r.count), WAITING);
    for (int i = 0; i < WAITING; i++) {
        memset(msg, 'a' + i, sizeof msg);
        rec_check_msg(&r, i, msg, sizeof msg, "127.0.0.1", raw_port(fd), DGRAM_IPV4);
    }
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(s, &st));
    CHECK_EQ(st.dropped_by_kernel, 0);
    close(fd);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_no_memory_backs_off_host(void) { no_memory_backs_off(DGRAM_DISPATCH_HOST); }
static void test_no_memory_backs_off_io_thread(void) { no_memory_backs_off(DGRAM_DISPATCH_IO_THREAD); }

/* ---- large datagrams leave no trace ----------------------------------------------- */

#define STREAM 1000
#define STREAM_LEN 60000
#define STREAM_STEP 3 /* datagrams sent between two dispatches: what the kernel buffer holds */

/* 1000 datagrams of 60,000 bytes (60 MB), three at a time with a dispatch
 * in between: resident memory never grows by more than 8 MiB while they
 * flow, and once the pool has rested it is back within 4 MiB of where it
 * was. */
static void test_large_datagrams_leave_no_trace(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t port = rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    int fd = raw_sender();
    static uint8_t msg[STREAM_LEN];
    /* Warm up with one small and one large datagram. */
    raw_send(fd, port, msg, 1);
    raw_send(fd, port, msg, STREAM_LEN);
    RUN_UNTIL(ctx, r.count, 2);
    long rss_before = status_kib("VmRSS");

    long peak = 0;
    for (int i = 0; i < STREAM; i += STREAM_STEP) {
        int n = STREAM - i < STREAM_STEP ? STREAM - i : STREAM_STEP;
        for (int k = 0; k < n; k++) {
            msg[0] = (uint8_t)(i + k);
            raw_send(fd, port, msg, STREAM_LEN);
        }
        RUN_UNTIL(ctx, r.count, 2 + i + n);
        if (i % 60 == 0) {
            long grown = status_kib("VmRSS") - rss_before;
            peak = grown > peak ? grown : peak;
        }
    }
    printf("  %d x %d bytes delivered: resident grew by %ld KiB at most\n", STREAM, STREAM_LEN, peak);
    if (peak > 8 * 1024)
        FAIL("resident memory grew by %ld KiB while the datagrams flowed", peak);
    CHECK_EQ(dgram_context_active(ctx), 1);
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(s, &st));
    CHECK_EQ(st.dropped_by_kernel, 0);
    /* The pages go back once the batch has rested a second (the pool's
     * IDLE): not a timing asserted, a wait with a generous limit. */
    long left = status_kib("VmRSS") - rss_before;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (left > 4 * 1024 && test_now_ms() < deadline) {
        test_run_for(ctx, 100);
        left = status_kib("VmRSS") - rss_before;
    }
    printf("  resident is %ld KiB above where it was\n", left);
    if (left > 4 * 1024)
        FAIL("resident memory stayed %ld KiB above where it was", left);
    for (int i = 0; i < 2 && i < REC_MSGS; i++)
        CHECK_EQ(r.len[i], i == 0 ? 1 : STREAM_LEN);
    close(fd);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

/* ---- a long echo soak stays flat ---------------------------------------------------- */

#define SOAK_PAIRS 25
#define SOAK_IN_FLIGHT 16 /* per pair: 400 datagrams waiting at most */
#define SOAK_WARMUP_MS 10000
#define SOAK_MS 60000

typedef struct {
    dgram_socket *server, *client;
    uint16_t server_port;
    int round; /* datagrams the client got back */
    int bad;   /* echoes whose bytes were not what was sent */
} soak_pair;

static uint8_t soak_payload[8192];

/* The sizes cycle through small and large datagrams, so that both kinds of
 * batch (pages kept, pages given back) take part. */
static size_t soak_len(int n) {
    static const size_t sizes[] = {64, 200, 1200, 1472, 3000, 8000};
    return sizes[n % (int)(sizeof sizes / sizeof sizes[0])];
}

static void soak_server_message(dgram_socket *s, const uint8_t *msg, size_t len,
                                const dgram_addr *rinfo, void *u) {
    (void)u;
    CHECK_OK(dgram_send(s, msg, len, rinfo->port, rinfo->address, NULL, NULL));
}

static void soak_client_message(dgram_socket *s, const uint8_t *msg, size_t len,
                                const dgram_addr *rinfo, void *u) {
    (void)rinfo;
    soak_pair *p = u;
    if (len != soak_len(p->round) || memcmp(msg, soak_payload, len) != 0)
        p->bad++;
    p->round++;
    size_t next = soak_len(p->round + SOAK_IN_FLIGHT - 1);
    CHECK_OK(dgram_send(s, soak_payload, next, p->server_port, "127.0.0.1", NULL, NULL));
}

/* 25 echo pairs on one host-dispatch context, 400 datagrams in flight of
 * 64 to 8000 bytes, for 60 s: after a 10 s warm-up, resident memory grows
 * by less than 4 MiB. */
static void test_echo_soak_stays_flat(void) {
    for (size_t i = 0; i < sizeof soak_payload; i++)
        soak_payload[i] = (uint8_t)(i * 13 + 7);
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static soak_pair pairs[SOAK_PAIRS];
    for (int i = 0; i < SOAK_PAIRS; i++) {
        soak_pair *p = &pairs[i];
        memset(p, 0, sizeof *p);
        p->server = test_socket(ctx, DGRAM_UDP4, soak_server_message, p);
        p->client = test_socket(ctx, DGRAM_UDP4, soak_client_message, p);
        p->server_port = test_bind(p->server, "127.0.0.1");
        test_bind(p->client, "127.0.0.1");
    }
    for (int i = 0; i < SOAK_PAIRS; i++)
        for (int k = 0; k < SOAK_IN_FLIGHT; k++)
            CHECK_OK(dgram_send(pairs[i].client, soak_payload, soak_len(k), pairs[i].server_port,
                                "127.0.0.1", NULL, NULL));
    long long start = test_now_ms();
    long rss_warm = -1;
    while (test_now_ms() - start < SOAK_MS) {
        int rc = dgram_context_run(ctx, 100);
        if (rc < 0)
            FAIL("dgram_context_run: %s", dgram_err_name(rc));
        if (rss_warm < 0 && test_now_ms() - start >= SOAK_WARMUP_MS)
            rss_warm = status_kib("VmRSS");
    }
    long grown = status_kib("VmRSS") - rss_warm;
    long rounds = 0;
    for (int i = 0; i < SOAK_PAIRS; i++) {
        rounds += pairs[i].round;
        CHECK_EQ(pairs[i].bad, 0);
        /* Every pair kept echoing (a stalled one would keep nothing in flight). */
        CHECK(pairs[i].round > SOAK_IN_FLIGHT);
    }
    printf("  %ld echoes in %d s; resident grew by %ld KiB after the warm-up\n", rounds,
           SOAK_MS / 1000, grown);
    if (grown >= 4 * 1024)
        FAIL("resident memory grew by %ld KiB after the warm-up", grown);
    for (int i = 0; i < SOAK_PAIRS; i++) {
        dgram_socket_free(pairs[i].server);
        dgram_socket_free(pairs[i].client);
    }
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_one_batch_whatever_arrives),
    TEST_ENTRY(test_huge_bound_is_clamped_not_allocated),
    TEST_ENTRY(test_no_memory_backs_off_host),
    TEST_ENTRY(test_no_memory_backs_off_io_thread),
    TEST_ENTRY(test_large_datagrams_leave_no_trace),
    TEST_ENTRY(test_echo_soak_stays_flat),
)
