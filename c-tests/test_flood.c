/* Floods and back-pressure, with the counters of dgram_socket_stats:
 * - a host that does not dispatch while a sender floods its socket keeps its
 *   memory bounded, and every datagram is either received or counted as
 *   dropped (received + dropped_queue_full + dropped_by_kernel = sent, up to
 *   the kernel's per-CPU backlog drops, which no socket counts);
 * - a sender faster than the kernel: sends queue up to the bound, then
 *   DGRAM_ENOBUFS; every accepted send completes exactly once, and the
 *   counters say how each ended;
 * - the counters on a closed socket are the final figures.
 * The flood runs in a private network namespace of its own (root): no other
 * process's datagram can reach its socket or be counted by it, so its
 * figures stay exact while other tests run alongside. */
#define _GNU_SOURCE
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include "recorder.h"
#include "test_runner.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

enum { FLOOD_LEN = 64, FLOOD_BATCH = 64 };

/* Kilobytes from a "Name:   123 kB" line of /proc/self/status. */
static long status_kib(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long kib = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            kib = strtol(line + n + 1, NULL, 10);
    fclose(f);
    CHECK(kib >= 0);
    return kib;
}

/* Datagrams the kernel dropped in its per-CPU backlogs, all CPUs (second
 * column of /proc/net/softnet_stat, hexadecimal): before a packet reaches a
 * socket, so no socket counts them. */
static unsigned long long softnet_drops(void) {
    FILE *f = fopen("/proc/net/softnet_stat", "r");
    if (!f)
        return 0;
    unsigned long long total = 0;
    unsigned processed, dropped;
    char rest[512];
    while (fscanf(f, "%x %x", &processed, &dropped) == 2) {
        total += dropped;
        if (!fgets(rest, sizeof rest, f))
            break;
    }
    fclose(f);
    return total;
}

static dgram_stats stats_of(dgram_socket *s) {
    dgram_stats st;
    memset(&st, 0xAB, sizeof st);
    CHECK_OK(dgram_socket_stats(s, &st));
    return st;
}

/* ---- the flood ------------------------------------------------------------- */

typedef struct {
    uint16_t port;
    long count;
    long sent; /* what sendmmsg reported as sent */
} flood_args;

/* Sends `count` datagrams of FLOOD_LEN bytes to 127.0.0.1:port from a plain
 * socket, FLOOD_BATCH per sendmmsg, as fast as the kernel takes them. */
static void *flood_sender(void *arg) {
    flood_args *a = arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(a->port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static uint8_t payload[FLOOD_LEN];
    struct iovec iov[FLOOD_BATCH];
    struct mmsghdr msgs[FLOOD_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < FLOOD_BATCH; i++) {
        iov[i].iov_base = payload;
        iov[i].iov_len = sizeof payload;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
    }
    long sent = 0;
    while (sent < a->count) {
        long want = a->count - sent < FLOOD_BATCH ? a->count - sent : FLOOD_BATCH;
        int n = sendmmsg(fd, msgs, (unsigned)want, 0);
        if (n < 0 && (errno == EINTR || errno == ENOBUFS || errno == EAGAIN))
            continue;
        CHECK(n > 0);
        sent += n;
    }
    close(fd);
    a->sent = sent;
    return NULL;
}

/* sock_rec keeps the lengths of the first datagrams only: its inbox has
 * each one's, checked as it comes. */
static void check_flood_len(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    if (letter == 'M')
        CHECK_EQ(r->in->len, FLOOD_LEN);
}

static int kernel_queued(dgram_socket *s) {
    int n = -1;
    CHECK(ioctl(dgram_fileno(s), FIONREAD, &n) == 0);
    return n;
}

static void test_flood_into_a_host_that_does_not_dispatch(void) {
    int ns = test_netns_isolate_or_skip();
    test_watchdog(RUNNING_ON_VALGRIND ? 300 : 120);
    long count = RUNNING_ON_VALGRIND ? 20000 : 1000000;
    const char *env = getenv("DGRAM_FLOOD_COUNT");
    if (env)
        count = strtol(env, NULL, 10);
    printf("  %ld datagrams\n", count);

    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket_options o = test_opts(DGRAM_UDP4);
    o.recv_buffer_size = 256 * 1024;
    sock_rec r;
    inbox in;
    dgram_socket *s = rec_socket_with(ctx, &o, &r);
    memset(&in, 0, sizeof in);
    in.socket = s;
    r.in = &in;
    rec_set_action(&r, check_flood_len, NULL);
    uint16_t port = test_bind(s, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1); /* 'listening' */
    CHECK_EQ(r.listen_p, 1);

    long rss_before = status_kib("VmRSS");
    unsigned long long backlog_before = softnet_drops();
    flood_args a = {.port = port, .count = count};
    pthread_t sender;
    CHECK_EQ(pthread_create(&sender, NULL, flood_sender, &a), 0);
    CHECK_EQ(pthread_join(sender, NULL), 0);
    unsigned long long backlog_dropped = softnet_drops() - backlog_before;
    CHECK_EQ(a.sent, count);

    /* Nothing was dispatched, so nothing was read: the datagrams wait in
     * (or overflowed) the kernel's buffer. */
    CHECK_EQ(r.count, 0);
    dgram_stats mid = stats_of(s);
    CHECK_EQ(mid.datagrams_received, 0);
    long peak_growth_kib = status_kib("VmHWM") - rss_before;
    printf("  peak RSS grew by %ld KiB; kernel dropped %llu at the socket, %llu in the backlog\n",
           peak_growth_kib, (unsigned long long)mid.dropped_by_kernel, backlog_dropped);
    if (!RUNNING_ON_VALGRIND) /* valgrind's own memory would count too */
        CHECK(peak_growth_kib < 128 * 1024);

    /* Now dispatch until everything the kernel still held has come. */
    int last = -1;
    while (r.count != last || kernel_queued(s) != 0) {
        last = r.count;
        test_run_for(ctx, 100);
    }
    dgram_stats st = stats_of(s);
    printf("  received %llu of %ld\n", (unsigned long long)st.datagrams_received, count);
    CHECK_EQ(st.datagrams_received, (uint64_t)r.count);
    CHECK_EQ(in.count, r.count);
    CHECK_EQ(st.bytes_received, (uint64_t)r.count * FLOOD_LEN);
    CHECK_EQ(st.dropped_queue_full, 0);
    CHECK_EQ(st.datagrams_sent, 0);
    CHECK_EQ(st.bytes_sent, 0);
    CHECK_EQ(st.send_errors, 0);
    /* Some came: what the kernel's buffer held when the flood ended (how
     * many depends on the kernel's accounting per datagram). */
    CHECK(st.datagrams_received > 0);
    /* Every datagram is accounted for: received, or dropped by the kernel at
     * the socket, or (loopback only) in a per-CPU backlog, which other
     * traffic on this machine may share: hence an upper bound there. */
    uint64_t accounted = st.datagrams_received + st.dropped_queue_full + st.dropped_by_kernel;
    CHECK(accounted <= (uint64_t)count);
    CHECK((uint64_t)count - accounted <= backlog_dropped);
    if (backlog_dropped == 0)
        CHECK_EQ(accounted, (uint64_t)count);

    /* The final figures stay readable after close. */
    CHECK_OK(dgram_close(s, NULL));
    dgram_stats closed = stats_of(s);
    CHECK_EQ(closed.datagrams_received, st.datagrams_received);
    CHECK_EQ(closed.bytes_received, st.bytes_received);
    CHECK_EQ(closed.dropped_by_kernel, st.dropped_by_kernel);
    test_run_for(ctx, 10);
    CHECK_EQ(r.close_p, 1);
    CHECK_EQ(r.errors, 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    test_context_finish(ctx);
    close(ns);
}

/* ---- sending faster than the kernel takes ---------------------------------- */

enum { BP_LEN = 1000, BP_MAX = 4096 };

static send_slot g_slots[BP_MAX];

static void test_send_backpressure_and_counters(void) {
    int orig = test_slow_lo_enter();
    if (orig < 0)
        test_skip("needs root and tc to slow a private loopback down");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket_options o = test_opts(DGRAM_UDP4);
    o.send_buffer_size = 4096;
    sock_rec r;
    dgram_socket *s = rec_socket_with(ctx, &o, &r);
    test_slow_lo_leave(orig);
    test_bind(s, "127.0.0.1");
    static uint8_t payload[BP_LEN];

    /* Send until the library says no: the kernel takes a few, the socket's
     * queue takes the rest up to its bound (1024 datagrams or 1 MiB,
     * whichever is more), then DGRAM_ENOBUFS, which accepts nothing. */
    int accepted = 0, rc = 0;
    while (accepted < BP_MAX) {
        rc = dgram_send(s, payload, sizeof payload, 9, "127.0.0.1", rec_on_sent,
                        send_slot_init(&g_slots[accepted], &r));
        if (rc != 0)
            break;
        accepted++;
    }
    CHECK_CODE(rc, DGRAM_ENOBUFS);
    printf("  %d sends accepted before DGRAM_ENOBUFS\n", accepted);
    /* 1 MiB of 1000-byte datagrams is 1049 of them, beyond the 1024 minimum. */
    CHECK(accepted >= 1049);
    CHECK(accepted < BP_MAX);
    CHECK_CODE(dgram_send(s, payload, sizeof payload, 9, "127.0.0.1", rec_on_sent,
                          send_slot_init(&g_slots[BP_MAX - 1], &r)),
               DGRAM_ENOBUFS);
    CHECK_EQ(g_slots[BP_MAX - 1].calls, 0);

    /* Let some trickle out, then close: what is still queued is cancelled. */
    test_run_for(ctx, 200);
    CHECK_OK(dgram_close(s, NULL));
    test_run_for(ctx, 100);
    int ok = 0;
    while (ok < accepted && g_slots[ok].code == 0)
        ok++;
    int cancelled = accepted - ok;
    CHECK(cancelled > 0);
    /* Written ones first, in call order, then the cancelled ones. */
    for (int i = 0; i < accepted; i++) {
        if (i < ok)
            send_slot_check_ok(&g_slots[i], BP_LEN);
        else
            send_slot_check_error(&g_slots[i], DGRAM_ECANCELED, BP_LEN, "send");
        CHECK_EQ(g_slots[i].seq, i);
    }
    CHECK_EQ(r.sends, accepted);
    CHECK_EQ(r.send_errors, cancelled);
    CHECK_EQ(g_slots[BP_MAX - 1].calls, 0);
    CHECK_EQ(r.bad + r.errors, 0);

    dgram_stats st = stats_of(s);
    CHECK_EQ(st.datagrams_sent, (uint64_t)ok);
    CHECK_EQ(st.bytes_sent, (uint64_t)ok * BP_LEN);
    CHECK_EQ(st.send_errors, (uint64_t)cancelled);
    CHECK_EQ(st.datagrams_received, 0);
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

/* ---- counting rules ---------------------------------------------------------- */

/* Reads datagrams_received inside each message callback, into the
 * uint64_t that is the record's `user`. */
static void stats_inside(sock_rec *r, dgram_socket *s, char letter) {
    if (letter != 'M')
        return;
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(s, &st));
    *(uint64_t *)r->user = st.datagrams_received;
}

static void test_counting_rules(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    /* No message callback yet; every other handler records. */
    sock_rec rr;
    uint64_t received_inside = 0;
    memset(&rr, 0, sizeof rr);
    dgram_socket *rx = test_socket(ctx, DGRAM_UDP4, NULL, &rr);
    rec_attach(rx, &rr);
    rec_set_action(&rr, stats_inside, &received_inside);
    dgram_socket *tx = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    uint16_t port = test_bind(rx, "127.0.0.1");
    uint16_t tx_port = test_bind(tx, "127.0.0.1");
    test_run_for(ctx, 10);

    dgram_stats zero;
    memset(&zero, 0, sizeof zero);
    dgram_stats st = stats_of(rx);
    CHECK(memcmp(&st, &zero, sizeof st) == 0);

    /* Read while no message callback is set: counted as received. Until
     * dispatch reads it, it waits in the kernel buffer and counts nowhere. */
    CHECK_OK(dgram_send(tx, "abc", 3, port, "127.0.0.1", NULL, NULL));
    test_wait_queued(rx);
    CHECK_EQ(dgram_context_active(ctx), 2); /* the two bound sockets only */
    st = stats_of(rx);
    CHECK_EQ(st.datagrams_received, 0);
    test_run_for(ctx, 10);
    st = stats_of(rx);
    CHECK_EQ(st.datagrams_received, 1);
    CHECK_EQ(st.bytes_received, 3);

    /* With a callback: counted, and the count already includes the datagram
     * being delivered. */
    CHECK_OK(dgram_on_message(rx, rec_on_message));
    CHECK_OK(dgram_send(tx, "defgh", 5, port, "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_sendv(tx, (const dgram_buf[]){{"", 0}}, 1, port, "127.0.0.1", NULL, NULL));
    test_wait_queued(rx);
    CHECK_EQ(dgram_context_active(ctx), 2);
    test_run_for(ctx, 10);
    CHECK_EQ(rr.count, 2);
    rec_check_text(&rr, 0, "defgh", "127.0.0.1", tx_port, DGRAM_IPV4);
    rec_check_text(&rr, 1, "", "127.0.0.1", tx_port, DGRAM_IPV4);
    CHECK_EQ(received_inside, 3);
    st = stats_of(rx);
    CHECK_EQ(st.datagrams_received, 3);
    CHECK_EQ(st.bytes_received, 8);

    dgram_stats sent = stats_of(tx);
    CHECK_EQ(sent.datagrams_sent, 3);
    CHECK_EQ(sent.bytes_sent, 8);
    CHECK_EQ(sent.send_errors, 0);
    CHECK_EQ(sent.datagrams_received, 0);

    /* A datagram still in the kernel buffer at close is gone with the fd
     * and counts nowhere. */
    CHECK_OK(dgram_send(tx, "zz", 2, port, "127.0.0.1", NULL, NULL));
    test_wait_queued(rx);
    CHECK_EQ(kernel_queued(rx), 2);
    CHECK_OK(dgram_close(rx, NULL));
    test_run_for(ctx, 10);
    st = stats_of(rx);
    CHECK_EQ(st.datagrams_received, 3);
    CHECK_EQ(st.bytes_received, 8);
    CHECK_STR(rr.log.text, "lMMc");
    CHECK_EQ(rr.bad + rr.errors, 0);

    /* Bad arguments. */
    CHECK_CODE(dgram_socket_stats(NULL, &st), DGRAM_EINVAL);
    CHECK_CODE(dgram_socket_stats(rx, NULL), DGRAM_EINVAL);

    dgram_socket_free(rx);
    dgram_socket_free(tx);
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_counting_rules),
    TEST_ENTRY(test_flood_into_a_host_that_does_not_dispatch),
    TEST_ENTRY(test_send_backpressure_and_counters),
)
