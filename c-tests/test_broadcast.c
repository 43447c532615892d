/*
 * Broadcast: setBroadcast and sends to the subnet broadcast address, between
 * two hosts made of network namespaces joined by a veth pair
 * (test_two_hosts_or_skip):
 *   host A = the main thread's namespace: dgv0, 198.51.100.1/24
 *   host B = hosts.peer_ns:               dgv1, 198.51.100.2/24
 * A socket belongs to the namespace of the thread that creates it.
 *
 * Only 198.51.100.255 is ever used as a broadcast address, and only inside
 * these namespaces (never 255.255.255.255). Exits 77 (skip) when the
 * namespaces cannot be made.
 */
#include "recorder.h"

static test_two_hosts hosts;
static dgram_context *ctx;

#define HOST_A 0
#define HOST_B 1
#define BCAST "198.51.100.255"

/* Send completions of the sender (send_rec_on_sent, send_data &sends). */
static send_rec sends;

/* 'error' events, recorded. */
typedef struct {
    int count;
    dgram_error last;
    dgram_socket *socket;
    void *userdata;
} error_log;

static error_log errors;

static void on_error(dgram_socket *s, const dgram_error *err, void *userdata) {
    errors.count++;
    errors.last = *err;
    errors.socket = s;
    errors.userdata = userdata;
}

/* A udp4 socket on `host` (made in that host's namespace), recording into
 * `in` (NULL: no message callback). */
static dgram_socket *make(int host, bool reuse_addr, inbox *in) {
    return inbox_socket_on_host(ctx, &hosts, host == HOST_B, DGRAM_UDP4, reuse_addr, in);
}

static void check_eacces(const dgram_error *err, uint16_t port) {
    CHECK_CODE(err->code, DGRAM_EACCES);
    CHECK(err->syscall != NULL);
    CHECK_STR(err->syscall, "send");
    CHECK_ADDR(&err->addr, BCAST, port, DGRAM_IPV4);
}

/* Without SO_BROADCAST the send fails with EACCES through its callback;
 * with it the datagram arrives; clearing it makes it fail again. */
static void test_broadcast_needs_flag(void) {
    printf("test_broadcast_needs_flag\n");
    inbox in;
    dgram_socket *rx = make(HOST_B, false, &in);
    uint16_t port = test_bind_wait(ctx, rx, 0, "0.0.0.0");

    dgram_socket *tx = make(HOST_A, false, NULL);
    CHECK_OK(dgram_on_error(tx, on_error));
    uint16_t tx_port = test_bind_wait(ctx, tx, 0, NULL);

    /* 1. No broadcast flag: EACCES via the send callback (not 'error'). */
    memset(&sends, 0, sizeof sends);
    memset(&errors, 0, sizeof errors);
    CHECK_OK(dgram_send(tx, "denied", 6, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 1);
    CHECK_EQ(sends.errors, 1);
    CHECK_EQ(sends.length, 6);
    CHECK(sends.send_data == &sends);
    check_eacces(&sends.err, port);
    test_run_for(ctx, 100);
    CHECK_EQ(sends.count, 1);
    CHECK_EQ(errors.count, 0);
    CHECK_EQ(in.count, 0);

    /* 2. The socket survives; with the flag the datagram arrives at B. */
    CHECK_OK(dgram_set_broadcast(tx, true));
    CHECK_OK(dgram_send(tx, "broadcast!", 10, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 2);
    CHECK_EQ(sends.errors, 1);
    CHECK_EQ(sends.length, 10);
    RUN_UNTIL(ctx, in.count, 1);
    check_inbox_text(&in, 1, "broadcast!", "198.51.100.1", tx_port, DGRAM_IPV4);

    /* 3. Cleared again: EACCES again, nothing arrives. */
    CHECK_OK(dgram_set_broadcast(tx, false));
    CHECK_OK(dgram_send(tx, "denied again", 12, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 3);
    CHECK_EQ(sends.errors, 2);
    CHECK_EQ(sends.length, 12);
    check_eacces(&sends.err, port);
    test_run_for(ctx, 100);
    CHECK_EQ(in.count, 1);
    CHECK_EQ(errors.count, 0);

    /* 4. Unicast to B from the same socket still works (it was not broken
     * by the failures). */
    CHECK_OK(dgram_send(tx, "unicast", 7, port, "198.51.100.2", send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 4);
    CHECK_EQ(sends.errors, 2);
    RUN_UNTIL(ctx, in.count, 2);
    check_inbox_text(&in, 2, "unicast", "198.51.100.1", tx_port, DGRAM_IPV4);

    dgram_socket_free(rx);
    dgram_socket_free(tx);
}

/* Without a send callback the EACCES comes as one 'error' event. Here the
 * sender is never bound explicitly: the send binds it implicitly. */
static void test_broadcast_error_event(void) {
    printf("test_broadcast_error_event\n");
    inbox in;
    dgram_socket *rx = make(HOST_B, false, &in);
    uint16_t port = test_bind_wait(ctx, rx, 0, "0.0.0.0");

    int userdata_marker = 0;
    dgram_socket_options opts = test_opts(DGRAM_UDP4);
    dgram_socket *tx = test_socket_with(ctx, &opts, NULL, &userdata_marker); /* host A */
    CHECK_OK(dgram_on_error(tx, on_error));

    memset(&errors, 0, sizeof errors);
    CHECK_OK(dgram_send(tx, "no callback", 11, port, BCAST, NULL, NULL));
    RUN_UNTIL(ctx, errors.count, 1);
    CHECK(errors.socket == tx);
    CHECK(errors.userdata == &userdata_marker);
    check_eacces(&errors.last, port);
    test_run_for(ctx, 100);
    CHECK_EQ(errors.count, 1);
    CHECK_EQ(in.count, 0);

    /* With the flag, the same socket's datagram arrives. */
    uint16_t tx_port = test_port(tx);
    CHECK_OK(dgram_set_broadcast(tx, true));
    CHECK_OK(dgram_send(tx, "now allowed", 11, port, BCAST, NULL, NULL));
    RUN_UNTIL(ctx, in.count, 1);
    check_inbox_text(&in, 1, "now allowed", "198.51.100.1", tx_port, DGRAM_IPV4);
    test_run_for(ctx, 50);
    CHECK_EQ(errors.count, 1);

    dgram_socket_free(rx);
    dgram_socket_free(tx);
}

/* Linux loops a broadcast back to the sending host too: a receiver on host
 * A on the same port gets it as well as the one on host B (observed, and
 * asserted). Two reuse_addr receivers on B sharing the port both get it. */
static void test_broadcast_reaches_every_listener(void) {
    printf("test_broadcast_reaches_every_listener\n");
    inbox on_b1, on_b2, on_a;
    dgram_socket *b1 = make(HOST_B, true, &on_b1);
    dgram_socket *b2 = make(HOST_B, true, &on_b2);
    dgram_socket *a = make(HOST_A, true, &on_a);
    uint16_t port = test_bind_wait(ctx, b1, 0, "0.0.0.0");
    test_bind_wait(ctx, b2, port, "0.0.0.0");
    test_bind_wait(ctx, a, port, "0.0.0.0");

    dgram_socket *tx = make(HOST_A, false, NULL);
    CHECK_OK(dgram_set_broadcast(tx, true));
    uint16_t tx_port = test_bind_wait(ctx, tx, 0, NULL);
    memset(&sends, 0, sizeof sends);
    CHECK_OK(dgram_send(tx, "to everyone", 11, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 1);
    CHECK_EQ(sends.errors, 0);
    RUN_UNTIL(ctx, on_b1.count, 1);
    RUN_UNTIL(ctx, on_b2.count, 1);
    RUN_UNTIL(ctx, on_a.count, 1);
    test_run_for(ctx, 100);
    check_inbox_text(&on_b1, 1, "to everyone", "198.51.100.1", tx_port, DGRAM_IPV4);
    check_inbox_text(&on_b2, 1, "to everyone", "198.51.100.1", tx_port, DGRAM_IPV4);
    check_inbox_text(&on_a, 1, "to everyone", "198.51.100.1", tx_port, DGRAM_IPV4);

    dgram_socket_free(b1);
    dgram_socket_free(b2);
    dgram_socket_free(a);
    dgram_socket_free(tx);
}

int main(void) {
    test_watchdog(60);
    setvbuf(stdout, NULL, _IONBF, 0);
    hosts = test_two_hosts_or_skip();
    ctx = dgram_context_new(NULL);
    CHECK(ctx != NULL);

    test_broadcast_needs_flag();
    test_broadcast_error_event();
    test_broadcast_reaches_every_listener();

    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_context_free(ctx);
    close(hosts.self_ns);
    close(hosts.peer_ns);
    printf("ok\n");
    return 0;
}
