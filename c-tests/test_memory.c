/*
 * Receive memory: the number of batches the header allows is the number the
 * code maps; a bound too large to honour is clamped, not allocated up front;
 * when no batch can be mapped the I/O thread backs off instead of spinning
 * and loses nothing the kernel kept; after a burst is delivered, resident
 * memory comes back; and a minute of echo traffic leaves it flat.
 *
 * Memory figures are read from /proc/self/status (VmSize: address space,
 * VmRSS/VmHWM: resident), and address-space limits set with RLIMIT_AS.
 * Neither means anything under valgrind or qemu-user (their own memory
 * counts, and qemu-user ignores RLIMIT_AS), so c-tests/CMakeLists.txt runs
 * this program natively only. Unicast on 127.0.0.1 only.
 */
#include "recorder.h"
#include "test_runner.h"

#include <dirent.h>
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

/* The CPU time the library's threads used so far, in clock ticks: every
 * thread of the process but the test's own. The case makes one context and
 * looks up no name, so that is the context's I/O thread alone. */
static long io_thread_ticks(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    long ticks = 0;
    int threads = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == (int)getpid())
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL);
        char stat[1024];
        CHECK(fgets(stat, sizeof stat, f) != NULL);
        fclose(f);
        /* utime and stime are fields 14 and 15, after the ")" of comm. */
        char *p = strrchr(stat, ')');
        CHECK(p != NULL);
        unsigned long utime = 0, stime = 0;
        CHECK_EQ(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), 2);
        ticks += (long)(utime + stime);
        threads++;
    }
    closedir(d);
    CHECK_EQ(threads, 1);
    return ticks;
}

/* ---- the batch bound -------------------------------------------------------- */

#define BOUND 100
#define BOUND_BATCHES 6 /* ceil(100 / 32) + 2, the header's figure */

/* Each send's completion is queued before the I/O thread reads its
 * datagram, so no read can be packed into the batch before it: every read
 * wants a batch of its own. The context may still map only the header's
 * number of batches, and then stops reading until dispatch makes room;
 * every datagram still arrives. */
static void test_batches_within_the_headers_bound(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, BOUND);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t port = rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    /* Warm up: one batch mapped, the I/O thread's allocator set up. */
    send_slot warm;
    CHECK_OK(dgram_send(s, "w", 1, port, "127.0.0.1", rec_on_sent, send_slot_init(&warm, &r)));
    RUN_UNTIL(ctx, r.count, 1);
    RUN_UNTIL(ctx, r.sends, 1);
    long before = status_kib("VmSize");

    static send_slot slots[BOUND];
    for (int i = 0; i < BOUND; i++) {
        CHECK_OK(dgram_send(s, "x", 1, port, "127.0.0.1", rec_on_sent, send_slot_init(&slots[i], &r)));
        test_sleep_ms(1); /* lets the I/O thread read it before the next send */
    }
    test_sleep_ms(200);
    long grown_kib = status_kib("VmSize") - before;
    printf("  address space grew by %ld KiB\n", grown_kib);
    /* Each batch is 2 MiB of address space; allow 2 MiB for the rest. */
    if (grown_kib > (BOUND_BATCHES * 2 + 2) * 1024)
        FAIL("address space grew by %ld KiB: more than %d batches", grown_kib, BOUND_BATCHES);

    RUN_UNTIL(ctx, r.count, 1 + BOUND);
    RUN_UNTIL(ctx, r.sends, 1 + BOUND);
    CHECK_EQ(r.send_errors, 0);
    for (int i = 0; i < BOUND; i++)
        send_slot_check_ok(&slots[i], 1);
    test_run_for(ctx, 50);
    CHECK_EQ(test_load(&r.count), 1 + BOUND);
    dgram_socket_free(s);
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
 * that arrive stay in the kernel's buffer, and the I/O thread waits for
 * the pool's back-off instead of spinning: it uses well under 20% of a core
 * over a second. Once memory is back, every one of them is delivered. */
static void test_no_memory_backs_off_and_loses_nothing(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t port = rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    int fd = raw_sender();
    CHECK_EQ(dgram_context_active(ctx), 1);

    long t0 = io_thread_ticks(); /* before the limit: reading /proc allocates */
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
    test_sleep_ms(1000);
    long active = dgram_context_active(ctx);
    restore_address_space(old);
    long used = io_thread_ticks() - t0;
    printf("  I/O thread used %ld ticks of %ld in a second without memory\n", used,
           sysconf(_SC_CLK_TCK));
    CHECK_EQ(active, 1); /* nothing could be read */
    if (used * 5 >= sysconf(_SC_CLK_TCK))
        FAIL("the I/O thread used %ld of %ld ticks while no batch could be mapped: it spins", used,
             sysconf(_SC_CLK_TCK));

    RUN_UNTIL(ctx, r.count, WAITING);
    test_run_for(ctx, 50);
    CHECK_EQ(test_load(&r.count), WAITING);
    for (int i = 0; i < WAITING; i++) {
        memset(msg, 'a' + i, sizeof msg);
        rec_check_msg(&r, i, msg, sizeof msg, "127.0.0.1", raw_port(fd), DGRAM_IPV4);
    }
    close(fd);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

/* ---- memory comes back after a burst ---------------------------------------------- */

#define BURST 1000
#define BURST_LEN 60000

/* 1000 datagrams of 60,000 bytes (60 MB) wait in the library, then are
 * delivered: resident memory peaks with them and, once the pool has
 * rested, comes back to within 8 MiB of where it was. */
static void test_memory_returns_after_a_burst(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t port = rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    int fd = raw_sender();
    static uint8_t msg[BURST_LEN];
    /* Warm up with one small and one large datagram. */
    raw_send(fd, port, msg, 1);
    raw_send(fd, port, msg, BURST_LEN);
    RUN_UNTIL(ctx, r.count, 2);
    long rss_before = status_kib("VmRSS");

    for (int i = 0; i < BURST; i++) {
        msg[0] = (uint8_t)i;
        raw_send(fd, port, msg, BURST_LEN);
        /* Paced by the reader, so the kernel's buffer never overflows. */
        long long deadline = test_now_ms() + TEST_WAIT_MS;
        while (dgram_context_active(ctx) < (uint32_t)(1 + i + 1)) {
            if (test_now_ms() > deadline)
                FAIL("datagram %d of the burst was not read", i);
            sched_yield();
        }
    }
    long peak = status_kib("VmRSS") - rss_before;
    printf("  %d x %d bytes waiting: resident grew by %ld KiB\n", BURST, BURST_LEN, peak);
    CHECK(peak > 50 * 1024); /* the burst really was held in memory */

    RUN_UNTIL(ctx, r.count, 2 + BURST);
    CHECK_EQ(dgram_context_active(ctx), 1);
    /* The memory goes back once the batches have rested a second (the
     * pool's IDLE): not a timing asserted, a wait with a generous limit. */
    long left = status_kib("VmRSS") - rss_before;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (left > 8 * 1024 && test_now_ms() < deadline) {
        test_run_for(ctx, 100);
        left = status_kib("VmRSS") - rss_before;
    }
    printf("  delivered: resident is %ld KiB above where it was\n", left);
    if (left > 8 * 1024)
        FAIL("resident memory stayed %ld KiB above where it was after the burst", left);
    for (int i = 0; i < 2 && i < REC_MSGS; i++)
        CHECK_EQ(r.len[i], i == 0 ? 1 : BURST_LEN);
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
    TEST_ENTRY(test_batches_within_the_headers_bound),
    TEST_ENTRY(test_huge_bound_is_clamped_not_allocated),
    TEST_ENTRY(test_no_memory_backs_off_and_loses_nothing),
    TEST_ENTRY(test_memory_returns_after_a_burst),
    TEST_ENTRY(test_echo_soak_stays_flat),
)
