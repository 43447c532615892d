/*
 * Socket buffer sizes (dgram_set/get_recv/send_buffer_size, checked against
 * getsockopt on dgram_fileno), the send queue figures
 * (dgram_send_queue_size/count: 0 while sends go straight out, exact bytes
 * and counts while a slow private loopback holds them back), and
 * ref/unref (dgram_socket_ref/unref against dgram_context_active and
 * dgram_context_run).
 *
 * Unicast only, over 127.0.0.1 and ::1 (the held-back sends inside a
 * network namespace of their own), with ports chosen by the OS.
 */
#include "recorder.h"
#include "test_runner.h"

#include <limits.h>
#include <netinet/in.h>
#include <poll.h>

static dgram_family family_of(dgram_type type) {
    return type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6;
}

/* Host dispatch without dgram_context_run (which returns at once while
 * nothing is active, as for unref'd sockets): dispatches until
 * *counter >= want, failing after TEST_WAIT_MS. */
static void dispatch_until(dgram_context *ctx, int *counter, int want) {
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (test_load(counter) < want) {
        int rc = dgram_context_dispatch(ctx, 0);
        if (rc < 0)
            FAIL("dgram_context_dispatch: %s", dgram_err_name(rc));
        if (test_now_ms() > deadline)
            FAIL("timed out waiting for %d events (now %d)", want, test_load(counter));
        test_sleep_ms(1);
    }
}

/* Waits until the context's fd says events wait for dispatch. */
static void wait_fd_readable(dgram_context *ctx) {
    struct pollfd p = {.fd = dgram_context_fd(ctx), .events = POLLIN};
    CHECK(p.fd >= 0);
    int rc;
    do
        rc = poll(&p, 1, TEST_WAIT_MS);
    while (rc < 0 && errno == EINTR);
    if (rc != 1)
        FAIL("context fd not readable (poll: %d)", rc);
}

/* dgram_context_run(ctx, -1) must return `want` without blocking; a hang
 * trips a 20 s alarm (the case's own watchdog is restored after). */
static void check_run_forever_returns(dgram_context *ctx, int want) {
    unsigned left = alarm(20);
    int rc = dgram_context_run(ctx, -1);
    alarm(left);
    CHECK_EQ(rc, want);
}

/* ---- buffer sizes ------------------------------------------------------------ */

/* net.core.rmem_max or wmem_max, or -1 when it cannot be read. */
static long read_sysctl(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

typedef struct {
    const char *name;
    int (*set)(dgram_socket *, int);
    int (*get)(const dgram_socket *);
    int optname;
    int other_optname; /* the other buffer, which must not change */
    const char *max_path;
} buffer_kind;

static const buffer_kind kinds[2] = {
    {"recv", dgram_set_recv_buffer_size, dgram_get_recv_buffer_size, SO_RCVBUF, SO_SNDBUF,
     "/proc/sys/net/core/rmem_max"},
    {"send", dgram_set_send_buffer_size, dgram_get_send_buffer_size, SO_SNDBUF, SO_RCVBUF,
     "/proc/sys/net/core/wmem_max"},
};

/* Sets `size` and checks the getter against getsockopt; on Linux the
 * kernel doubles it (within net.core.*mem_max). */
static void set_and_check(dgram_socket *s, const buffer_kind *k, int size) {
    int other = test_sockopt_int(s, SOL_SOCKET, k->other_optname);
    CHECK_OK(k->set(s, size));
    int got = k->get(s);
    CHECK_EQ(got, test_sockopt_int(s, SOL_SOCKET, k->optname));
    CHECK(got >= size);
    long max = read_sysctl(k->max_path);
    if (max >= size)
        CHECK_EQ(got, 2 * size);
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, k->other_optname), other);
}

/* Sizes <= 0 are EINVAL and change nothing; 65536 reads back as the
 * kernel has it, before and after bind; a closed socket is EBADF. */
static void buffer_sizes(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket *s = test_socket(ctx, type, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        const buffer_kind *k = &kinds[i];
        printf("  %s\n", k->name);
        int initial = k->get(s);
        CHECK_EQ(initial, test_sockopt_int(s, SOL_SOCKET, k->optname));
        CHECK_CODE(k->set(s, 0), DGRAM_EINVAL);
        CHECK_CODE(k->set(s, -1), DGRAM_EINVAL);
        CHECK_CODE(k->set(s, INT_MIN), DGRAM_EINVAL);
        CHECK_EQ(k->get(s), initial);
        set_and_check(s, k, 65536);
        int set = k->get(s);
        CHECK_CODE(k->set(s, 0), DGRAM_EINVAL);
        CHECK_CODE(k->set(s, -65536), DGRAM_EINVAL);
        CHECK_EQ(k->get(s), set);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, k->optname), set);
        CHECK_CODE(k->set(NULL, 65536), DGRAM_EINVAL);
        CHECK_CODE(k->get(NULL), DGRAM_EINVAL);
    }
    test_bind(s, test_loopback(type));
    set_and_check(s, &kinds[0], 100000);
    set_and_check(s, &kinds[1], 40000);
    set_and_check(s, &kinds[0], 65536);
    set_and_check(s, &kinds[1], 65536);

    CHECK_OK(dgram_close(s, NULL));
    for (int i = 0; i < 2; i++) {
        CHECK_CODE(kinds[i].set(s, 65536), DGRAM_EBADF);
        CHECK_CODE(kinds[i].set(s, 0), DGRAM_EBADF); /* closed wins over bad size */
        CHECK_CODE(kinds[i].set(s, -1), DGRAM_EBADF);
        CHECK_CODE(kinds[i].get(s), DGRAM_EBADF);
    }
    dgram_socket_free(s);
    test_context_finish(ctx);
}
static void test_buffer_sizes_udp4(void) { buffer_sizes(DGRAM_UDP4); }
static void test_buffer_sizes_udp6(void) { buffer_sizes(DGRAM_UDP6); }

/* ---- the send queue ------------------------------------------------------------ */

static void check_queue(const dgram_socket *s, int bytes, int count) {
    CHECK_EQ(dgram_send_queue_size(s), bytes);
    CHECK_EQ(dgram_send_queue_count(s), count);
}

/* 0/0 on a fresh socket, and after sends the kernel took at once (the
 * machine's loopback, default buffers): before and after their
 * completions; EBADF when closed, EINVAL for NULL. */
static void send_queue_idle(dgram_type type) {
    const char *lo = test_loopback(type);
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    inbox in;
    dgram_socket_options o = test_opts(type);
    dgram_socket *rx = inbox_socket(ctx, &o, &in);
    uint16_t port = test_bind(rx, lo);
    dgram_socket *s = test_socket(ctx, type, NULL, NULL);
    check_queue(s, 0, 0);
    uint16_t sport = test_bind(s, lo);
    check_queue(s, 0, 0);

    static uint8_t msg[1000];
    send_rec sr;
    memset(&sr, 0, sizeof sr);
    for (int i = 0; i < 5; i++) {
        memset(msg, 'a' + i, sizeof msg);
        CHECK_OK(dgram_send(s, msg, sizeof msg, port, lo, send_rec_on_sent, &sr));
        check_queue(s, 0, 0);
    }
    dgram_buf batch[3] = {{"b1", 2}, {"b2", 2}, {"b3", 2}};
    CHECK_OK(dgram_send_batch(s, batch, 3, port, lo, send_rec_on_sent, &sr));
    check_queue(s, 0, 0);
    RUN_UNTIL(ctx, sr.count, 8);
    RUN_UNTIL(ctx, in.count, 8);
    test_run_for(ctx, 50);
    CHECK_EQ(sr.count, 8);
    CHECK_EQ(sr.errors, 0);
    check_inbox_text(&in, 8, "b3", lo, sport, family_of(type));
    check_queue(s, 0, 0);

    CHECK_CODE(dgram_send_queue_size(NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_queue_count(NULL), DGRAM_EINVAL);
    CHECK_OK(dgram_close(s, NULL));
    CHECK_CODE(dgram_send_queue_size(s), DGRAM_EBADF);
    CHECK_CODE(dgram_send_queue_count(s), DGRAM_EBADF);
    dgram_socket_free(s);
    dgram_socket_free(rx);
    test_context_finish(ctx);
}
static void test_send_queue_idle_udp4(void) { send_queue_idle(DGRAM_UDP4); }
static void test_send_queue_idle_udp6(void) { send_queue_idle(DGRAM_UDP6); }

/* Makes the loopback qdisc dequeue now: a qdisc change does not, and a
 * waiting packet would otherwise leave only when its timer fires. A plain
 * socket sends one datagram to itself. */
static void kick_loopback(void) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    CHECK(sendto(fd, "k", 1, 0, (struct sockaddr *)&a, sizeof a) == 1);
    CHECK(close(fd) == 0);
}

/* Sends held back: in a private namespace whose loopback qdisc lets 70000
 * bytes through and then 1000 bytes/s, one 65000-byte datagram uses the
 * burst, a second waits in the qdisc for a minute, still charged to the
 * sender's small SO_SNDBUF, so every later send is queued by the library.
 * The figures then grow by exactly what is sent (send, send_batch, sendv);
 * when the qdisc is made fast, the queue drains in order, every send
 * completes once, and the figures return to 0. */
static void test_send_queue_held_back(void) {
    int orig = test_slow_lo_enter();
    if (orig < 0)
        test_skip("test_send_queue_held_back needs root, ip and tc for a slow private loopback");
    /* This thread stays in the namespace until the end (tc runs here). */
    dgram_context *sink_ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    inbox in;
    dgram_socket_options so = test_opts(DGRAM_UDP4);
    so.recv_buffer_size = 1 << 20; /* holds every datagram of the test */
    dgram_socket *sink = inbox_socket(sink_ctx, &so, &in);
    uint16_t port = test_bind(sink, "127.0.0.1");

    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    uint16_t sport = test_bind_wait(ctx, s, 0, "127.0.0.1");
    CHECK_OK(dgram_set_send_buffer_size(s, 4096));
    CHECK_EQ(dgram_context_active(ctx), 1);

    enum { BIG = 65000, SMALL = 100 };
    static uint8_t big[BIG];
    send_rec sr;
    memset(&sr, 0, sizeof sr);
    memset(big, 'A', sizeof big);
    CHECK_OK(dgram_send(s, big, BIG, port, "127.0.0.1", send_rec_on_sent, &sr));
    check_queue(s, 0, 0); /* through, on the burst */
    RUN_UNTIL(sink_ctx, in.count, 1);
    check_inbox(&in, 1, big, BIG, "127.0.0.1", sport, DGRAM_IPV4);
    memset(big, 'B', sizeof big);
    CHECK_OK(dgram_send(s, big, BIG, port, "127.0.0.1", send_rec_on_sent, &sr));
    check_queue(s, 0, 0); /* the kernel took it: it waits in the qdisc */

    /* From here on the library queues. */
    static uint8_t small[SMALL];
    int bytes = 0, count = 0;
    for (int i = 0; i < 5; i++) {
        memset(small, '0' + i, sizeof small);
        CHECK_OK(dgram_send(s, small, SMALL, port, "127.0.0.1", send_rec_on_sent, &sr));
        bytes += SMALL, count++;
        check_queue(s, bytes, count);
    }
    dgram_buf batch[3] = {{"ten bytes.", 10}, {"twenty bytes........", 20},
                          {"thirty bytes..................", 30}};
    CHECK_OK(dgram_send_batch(s, batch, 3, port, "127.0.0.1", send_rec_on_sent, &sr));
    bytes += 60, count += 3;
    check_queue(s, bytes, count);
    dgram_buf pieces[2] = {{"last: ", 6}, {"two pieces", 10}};
    CHECK_OK(dgram_sendv(s, pieces, 2, port, "127.0.0.1", send_rec_on_sent, &sr));
    bytes += 16, count += 1;
    check_queue(s, bytes, count);
    CHECK_EQ(bytes, 5 * SMALL + 60 + 16);
    CHECK_EQ(count, 9);
    /* bound + the two written sends' undelivered completions + 9 queued */
    CHECK_EQ(dgram_context_active(ctx), 1 + 2 + 9);
    /* dispatching the two completions releases nothing */
    RUN_UNTIL(ctx, sr.count, 2);
    CHECK_EQ(sr.errors, 0);
    check_queue(s, bytes, count);
    CHECK_EQ(in.count, 1);

    test_sh("tc qdisc change dev lo root tbf rate 1gbit burst 70000 limit 20000000");
    kick_loopback();
    RUN_UNTIL(ctx, sr.count, 11);
    RUN_UNTIL(sink_ctx, in.count, 11);
    test_run_for(ctx, 50);
    test_run_for(sink_ctx, 50);
    CHECK_EQ(sr.count, 11);
    CHECK_EQ(sr.errors, 0);
    CHECK_EQ(sr.length, 16);
    check_queue(s, 0, 0);
    check_inbox_text(&in, 11, "last: two pieces", "127.0.0.1", sport, DGRAM_IPV4);
    CHECK_EQ(dgram_context_active(ctx), 1);

    dgram_socket_free(s);
    dgram_socket_free(sink);
    test_context_finish(ctx);
    test_context_finish(sink_ctx);
    test_slow_lo_leave(orig);
}

/* ---- ref / unref ------------------------------------------------------------------ */

/* A bound socket counts 1; unref'd, 0, and run(-1) returns at once; ref
 * counts it again. Both are idempotent. A socket unref'd before bind does
 * not count its bind or 'listening' until ref. 'close' counts even when
 * unref'd. EBADF when closed, EINVAL for NULL. */
static void test_ref_unref_counting(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rs, ru;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &rs);
    CHECK_EQ(dgram_context_active(ctx), 0);
    rec_bind_wait(ctx, s, &rs, 0, "127.0.0.1");
    CHECK_EQ(dgram_context_active(ctx), 1);

    CHECK_OK(dgram_socket_unref(s));
    CHECK_EQ(dgram_context_active(ctx), 0);
    check_run_forever_returns(ctx, 0);
    CHECK_OK(dgram_socket_ref(s));
    CHECK_EQ(dgram_context_active(ctx), 1);

    CHECK_OK(dgram_socket_unref(s));
    CHECK_OK(dgram_socket_unref(s));
    CHECK_EQ(dgram_context_active(ctx), 0);
    check_run_forever_returns(ctx, 0);
    CHECK_OK(dgram_socket_ref(s));
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_OK(dgram_socket_ref(s));
    CHECK_EQ(dgram_context_active(ctx), 1);

    /* unref'd before bind: neither the bind nor its 'listening' counts */
    dgram_socket *u = rec_socket(ctx, DGRAM_UDP6, &ru);
    CHECK_OK(dgram_socket_unref(u));
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_OK(dgram_bind(u, 0, "::1", rec_on_listening_once));
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_OK(dgram_socket_ref(u));
    CHECK_EQ(dgram_context_active(ctx), 1 + 2); /* s; u bound + its 'listening' */
    RUN_UNTIL(ctx, ru.listen_once, 1);
    test_run_for(ctx, 20);
    CHECK_EQ(ru.listen_once, 1);
    CHECK_STR(ru.log.text, "lL");
    CHECK_EQ(dgram_context_active(ctx), 2);

    /* 'close' counts even for an unref'd socket */
    CHECK_OK(dgram_socket_unref(u));
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_OK(dgram_close(u, NULL));
    CHECK_EQ(dgram_context_active(ctx), 2);
    CHECK_CODE(dgram_socket_ref(u), DGRAM_EBADF);
    CHECK_CODE(dgram_socket_unref(u), DGRAM_EBADF);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    CHECK_STR(ru.log.text, "lLc");
    CHECK_EQ(dgram_context_active(ctx), 1);

    CHECK_CODE(dgram_socket_ref(NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_socket_unref(NULL), DGRAM_EINVAL);
    CHECK_OK(dgram_close(s, NULL));
    CHECK_CODE(dgram_socket_ref(s), DGRAM_EBADF);
    CHECK_CODE(dgram_socket_unref(s), DGRAM_EBADF);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    CHECK_STR(rs.log.text, "lLc");
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(rs.bad + ru.bad, 0);
    dgram_socket_free(u);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

/* An unref'd socket still receives: run(-1) returns 0 at once without
 * delivering its waiting datagram, and dispatch delivers it (exact bytes and
 * sender). Datagrams waiting in a socket's kernel buffer never count, ref'd
 * or not; ref'd again, the socket counts and run(-1) delivers them. The
 * sender lives in another context. */
static void unref_still_receives(dgram_type type) {
    const char *lo = test_loopback(type);
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_context *tx_ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    inbox in;
    dgram_socket_options o = test_opts(type);
    dgram_socket *rx = inbox_socket(ctx, &o, &in);
    uint16_t port = test_bind_wait(ctx, rx, 0, lo);
    dgram_socket *tx = test_socket(tx_ctx, type, NULL, NULL);
    uint16_t tport = test_bind(tx, lo);
    CHECK_OK(dgram_socket_unref(rx));
    CHECK_EQ(dgram_context_active(ctx), 0);

    CHECK_OK(dgram_send(tx, "unref'd yet listening", 21, port, lo, NULL, NULL));
    dispatch_until(ctx, &in.count, 1);
    check_inbox_text(&in, 1, "unref'd yet listening", lo, tport, family_of(type));
    CHECK_EQ(dgram_context_active(ctx), 0);

    CHECK_OK(dgram_send(tx, "second", 6, port, lo, NULL, NULL));
    wait_fd_readable(ctx); /* waiting in rx's kernel buffer for dispatch */
    CHECK_EQ(dgram_context_active(ctx), 0);
    check_run_forever_returns(ctx, 0);
    CHECK_EQ(in.count, 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    check_inbox_text(&in, 2, "second", lo, tport, family_of(type));

    /* ref'd again: the socket counts, its waiting datagram does not */
    CHECK_OK(dgram_send(tx, "third", 5, port, lo, NULL, NULL));
    wait_fd_readable(ctx);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_OK(dgram_socket_ref(rx));
    CHECK_EQ(dgram_context_active(ctx), 1);
    check_run_forever_returns(ctx, 1);
    check_inbox_text(&in, 3, "third", lo, tport, family_of(type));
    CHECK_EQ(dgram_context_active(ctx), 1);

    dgram_socket_free(tx);
    dgram_socket_free(rx);
    test_context_finish(tx_ctx);
    test_context_finish(ctx);
}
static void test_unref_still_receives_udp4(void) { unref_still_receives(DGRAM_UDP4); }
static void test_unref_still_receives_udp6(void) { unref_still_receives(DGRAM_UDP6); }

/* Send completions of an unref'd socket still count until dispatched. */
static void test_unref_send_completion_counts(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_context *rx_ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    inbox in;
    dgram_socket *rx = inbox_socket(rx_ctx, NULL, &in);
    uint16_t port = test_bind(rx, "127.0.0.1");
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    uint16_t sport = test_bind_wait(ctx, s, 0, "127.0.0.1");
    CHECK_OK(dgram_socket_unref(s));
    CHECK_EQ(dgram_context_active(ctx), 0);

    send_rec sr;
    memset(&sr, 0, sizeof sr);
    CHECK_OK(dgram_send(s, "counted", 7, port, "127.0.0.1", send_rec_on_sent, &sr));
    CHECK_EQ(dgram_context_active(ctx), 1); /* the completion */
    CHECK_OK(dgram_send(s, "twice", 5, port, "127.0.0.1", send_rec_on_sent, &sr));
    CHECK_EQ(dgram_context_active(ctx), 2);
    CHECK_EQ(sr.count, 0);
    check_run_forever_returns(ctx, 2);
    CHECK_EQ(sr.count, 2);
    CHECK_EQ(sr.errors, 0);
    CHECK_EQ(sr.length, 5);
    CHECK_EQ(dgram_context_active(ctx), 0);
    RUN_UNTIL(rx_ctx, in.count, 2);
    check_inbox_text(&in, 2, "twice", "127.0.0.1", sport, DGRAM_IPV4);

    /* without a callback nothing waits for dispatch */
    CHECK_OK(dgram_send(s, "silent", 6, port, "127.0.0.1", NULL, NULL));
    CHECK_EQ(dgram_context_active(ctx), 0);
    RUN_UNTIL(rx_ctx, in.count, 3);
    check_inbox_text(&in, 3, "silent", "127.0.0.1", sport, DGRAM_IPV4);

    dgram_socket_free(s);
    dgram_socket_free(rx);
    test_context_finish(rx_ctx);
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_buffer_sizes_udp4),
    TEST_ENTRY(test_buffer_sizes_udp6),
    TEST_ENTRY(test_send_queue_idle_udp4),
    TEST_ENTRY(test_send_queue_idle_udp6),
    TEST_ENTRY(test_ref_unref_counting),
    TEST_ENTRY(test_unref_still_receives_udp4),
    TEST_ENTRY(test_unref_still_receives_udp6),
    TEST_ENTRY(test_unref_send_completion_counts),
    TEST_ENTRY(test_send_queue_held_back),
)
