/*
 * Broadcast: setBroadcast and sends to the subnet broadcast address, between
 * two hosts made of network namespaces joined by a veth pair
 * (test_two_hosts_or_skip, which every case calls first):
 *   host A = the main thread's namespace: dgv0, 198.51.100.1/24
 *   host B = hosts.peer_ns:               dgv1, 198.51.100.2/24
 * A socket belongs to the namespace of the thread that creates it.
 *
 * Only 198.51.100.255 is ever used as a broadcast address, and only inside
 * these namespaces (never 255.255.255.255). A case exits 77 (skip) when the
 * namespaces cannot be made.
 */
#include "recorder.h"
#include "test_runner.h"

#define HOST_A 0
#define HOST_B 1
#define BCAST "198.51.100.255"

/* A udp4 socket on `host` recording into `r`: made in that host's
 * namespace, after which the calling thread goes back to host A's. */
static dgram_socket *make(dgram_context *ctx, const test_two_hosts *hosts, int host,
                          bool reuse_addr, sock_rec *r) {
    dgram_socket_options opts = test_opts(DGRAM_UDP4);
    opts.reuse_addr = reuse_addr;
    test_netns_enter(host == HOST_B ? hosts->peer_ns : hosts->self_ns);
    dgram_socket *s = rec_socket_with(ctx, &opts, r);
    test_netns_enter(hosts->self_ns);
    return s;
}

static void check_eacces(int code, const char *syscall, const dgram_addr *addr, uint16_t port) {
    CHECK_CODE(code, DGRAM_EACCES);
    CHECK(syscall != NULL);
    CHECK_STR(syscall, "send");
    CHECK_ADDR(addr, BCAST, port, DGRAM_IPV4);
}

static void close_hosts(test_two_hosts *hosts) {
    close(hosts->self_ns);
    close(hosts->peer_ns);
}

/* Without SO_BROADCAST the send fails with EACCES through its callback;
 * with it the datagram arrives; clearing it makes it fail again. */
static void test_broadcast_needs_flag(void) {
    test_two_hosts hosts = test_two_hosts_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx_rec, tx_rec;
    dgram_socket *rx = make(ctx, &hosts, HOST_B, false, &rx_rec);
    uint16_t port = rec_bind_wait(ctx, rx, &rx_rec, 0, "0.0.0.0");

    dgram_socket *tx = make(ctx, &hosts, HOST_A, false, &tx_rec);
    uint16_t tx_port = rec_bind_wait(ctx, tx, &tx_rec, 0, NULL);

    /* 1. No broadcast flag: EACCES via the send callback (not 'error'). */
    send_rec sends;
    memset(&sends, 0, sizeof sends);
    CHECK_OK(dgram_send(tx, "denied", 6, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 1);
    CHECK_EQ(sends.errors, 1);
    CHECK_EQ(sends.length, 6);
    CHECK(sends.send_data == &sends);
    check_eacces(sends.err.code, sends.err.syscall, &sends.err.addr, port);
    test_run_for(ctx, 100);
    CHECK_EQ(sends.count, 1);
    CHECK_EQ(tx_rec.errors, 0);
    CHECK_EQ(rx_rec.count, 0);

    /* 2. The socket survives; with the flag the datagram arrives at B. */
    CHECK_OK(dgram_set_broadcast(tx, true));
    CHECK_OK(dgram_send(tx, "broadcast!", 10, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 2);
    CHECK_EQ(sends.errors, 1);
    CHECK_EQ(sends.length, 10);
    RUN_UNTIL(ctx, rx_rec.count, 1);
    CHECK_EQ(test_load(&rx_rec.count), 1);
    rec_check_text(&rx_rec, 0, "broadcast!", "198.51.100.1", tx_port, DGRAM_IPV4);

    /* 3. Cleared again: EACCES again, nothing arrives. */
    CHECK_OK(dgram_set_broadcast(tx, false));
    CHECK_OK(dgram_send(tx, "denied again", 12, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 3);
    CHECK_EQ(sends.errors, 2);
    CHECK_EQ(sends.length, 12);
    check_eacces(sends.err.code, sends.err.syscall, &sends.err.addr, port);
    test_run_for(ctx, 100);
    CHECK_EQ(rx_rec.count, 1);
    CHECK_EQ(tx_rec.errors, 0);

    /* 4. Unicast to B from the same socket still works (it was not broken
     * by the failures). */
    CHECK_OK(dgram_send(tx, "unicast", 7, port, "198.51.100.2", send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 4);
    CHECK_EQ(sends.errors, 2);
    RUN_UNTIL(ctx, rx_rec.count, 2);
    CHECK_EQ(test_load(&rx_rec.count), 2);
    rec_check_text(&rx_rec, 1, "unicast", "198.51.100.1", tx_port, DGRAM_IPV4);

    CHECK_STR(rx_rec.log.text, "lLMM");
    CHECK_STR(tx_rec.log.text, "lL");
    CHECK_EQ(rx_rec.bad + tx_rec.bad, 0);
    dgram_socket_free(rx);
    dgram_socket_free(tx);
    test_context_finish(ctx);
    close_hosts(&hosts);
}

/* Without a send callback the EACCES comes as one 'error' event. Here the
 * sender is never bound explicitly: the send binds it implicitly. */
static void test_broadcast_error_event(void) {
    test_two_hosts hosts = test_two_hosts_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx_rec, tx_rec;
    dgram_socket *rx = make(ctx, &hosts, HOST_B, false, &rx_rec);
    uint16_t port = rec_bind_wait(ctx, rx, &rx_rec, 0, "0.0.0.0");

    /* The 'error' handler records into the socket's userdata, tx_rec: the
     * event counts there only if it came with that userdata, and with the
     * handle tx (tx_rec.bad). */
    dgram_socket *tx = make(ctx, &hosts, HOST_A, false, &tx_rec);

    CHECK_OK(dgram_send(tx, "no callback", 11, port, BCAST, NULL, NULL));
    RUN_UNTIL(ctx, tx_rec.errors, 1);
    CHECK_EQ(tx_rec.bad, 0);
    check_eacces(tx_rec.err_code, tx_rec.err_syscall, &tx_rec.err_addr, port);
    test_run_for(ctx, 100);
    CHECK_EQ(tx_rec.errors, 1);
    CHECK_EQ(rx_rec.count, 0);
    CHECK_STR(tx_rec.log.text, "lE"); /* the implicit bind's 'listening' first */

    /* With the flag, the same socket's datagram arrives. */
    uint16_t tx_port = test_port(tx);
    CHECK_OK(dgram_set_broadcast(tx, true));
    CHECK_OK(dgram_send(tx, "now allowed", 11, port, BCAST, NULL, NULL));
    RUN_UNTIL(ctx, rx_rec.count, 1);
    CHECK_EQ(test_load(&rx_rec.count), 1);
    rec_check_text(&rx_rec, 0, "now allowed", "198.51.100.1", tx_port, DGRAM_IPV4);
    test_run_for(ctx, 50);
    CHECK_EQ(tx_rec.errors, 1);
    CHECK_STR(tx_rec.log.text, "lE");
    CHECK_STR(rx_rec.log.text, "lLM");
    CHECK_EQ(rx_rec.bad + tx_rec.bad, 0);

    dgram_socket_free(rx);
    dgram_socket_free(tx);
    test_context_finish(ctx);
    close_hosts(&hosts);
}

/* Linux loops a broadcast back to the sending host too: a receiver on host
 * A on the same port gets it as well as the one on host B (observed, and
 * asserted). Two reuse_addr receivers on B sharing the port both get it. */
static void test_broadcast_reaches_every_listener(void) {
    test_two_hosts hosts = test_two_hosts_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec on_b1, on_b2, on_a, tx_rec;
    dgram_socket *b1 = make(ctx, &hosts, HOST_B, true, &on_b1);
    dgram_socket *b2 = make(ctx, &hosts, HOST_B, true, &on_b2);
    dgram_socket *a = make(ctx, &hosts, HOST_A, true, &on_a);
    uint16_t port = rec_bind_wait(ctx, b1, &on_b1, 0, "0.0.0.0");
    rec_bind_wait(ctx, b2, &on_b2, port, "0.0.0.0");
    rec_bind_wait(ctx, a, &on_a, port, "0.0.0.0");

    dgram_socket *tx = make(ctx, &hosts, HOST_A, false, &tx_rec);
    CHECK_OK(dgram_set_broadcast(tx, true));
    uint16_t tx_port = rec_bind_wait(ctx, tx, &tx_rec, 0, NULL);
    send_rec sends;
    memset(&sends, 0, sizeof sends);
    CHECK_OK(dgram_send(tx, "to everyone", 11, port, BCAST, send_rec_on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 1);
    CHECK_EQ(sends.errors, 0);
    RUN_UNTIL(ctx, on_b1.count, 1);
    RUN_UNTIL(ctx, on_b2.count, 1);
    RUN_UNTIL(ctx, on_a.count, 1);
    test_run_for(ctx, 100);
    sock_rec *got[3] = {&on_b1, &on_b2, &on_a};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(test_load(&got[i]->count), 1);
        rec_check_text(got[i], 0, "to everyone", "198.51.100.1", tx_port, DGRAM_IPV4);
        CHECK_STR(got[i]->log.text, "lLM");
        CHECK_EQ(got[i]->bad, 0);
    }
    CHECK_STR(tx_rec.log.text, "lL");
    CHECK_EQ(tx_rec.errors, 0);

    dgram_socket_free(b1);
    dgram_socket_free(b2);
    dgram_socket_free(a);
    dgram_socket_free(tx);
    test_context_finish(ctx);
    close_hosts(&hosts);
}

TEST_LIST(
    TEST_ENTRY(test_broadcast_needs_flag),
    TEST_ENTRY(test_broadcast_error_event),
    TEST_ENTRY(test_broadcast_reaches_every_listener),
)
