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
#include "test_util.h"

static test_two_hosts hosts;
static dgram_context *ctx;

#define HOST_A 0
#define HOST_B 1
#define BCAST "198.51.100.255"

typedef struct {
    int count;
    uint8_t data[256];
    size_t len;
    dgram_addr rinfo;
    dgram_socket *socket;
} inbox;

static void on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                       void *userdata) {
    inbox *in = userdata;
    CHECK(in != NULL);
    CHECK(s == in->socket);
    CHECK(len <= sizeof in->data);
    memcpy(in->data, msg, len);
    in->len = len;
    in->rinfo = *rinfo;
    in->count++;
}

static int listening_count;

static void on_listening(dgram_socket *s, void *userdata) {
    (void)s;
    (void)userdata;
    listening_count++;
}

/* Send completions, recorded (err copied). */
typedef struct {
    int count;
    int errors;
    dgram_error last;
    char last_addr[DGRAM_ADDRSTRLEN];
    size_t last_length;
    void *last_data;
} send_log;

static send_log sends;

static void on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *data) {
    (void)s;
    sends.count++;
    sends.last_length = length;
    sends.last_data = data;
    if (err) {
        sends.errors++;
        sends.last = *err;
    } else {
        memset(&sends.last, 0, sizeof sends.last);
    }
}

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

static void enter_host(int host) { test_netns_enter(host == HOST_B ? hosts.peer_ns : hosts.self_ns); }

static dgram_socket *make(int host, bool reuse_addr, inbox *in) {
    dgram_socket_options opts;
    memset(&opts, 0, sizeof opts);
    opts.type = DGRAM_UDP4;
    opts.reuse_addr = reuse_addr;
    dgram_socket *s = NULL;
    enter_host(host);
    int rc = dgram_create_socket(ctx, &opts, in ? on_message : NULL, in, &s);
    enter_host(HOST_A);
    CHECK_OK(rc);
    CHECK(s != NULL);
    if (in) {
        memset(in, 0, sizeof *in);
        in->socket = s;
    }
    return s;
}

static uint16_t bind_wait(dgram_socket *s, int port, const char *address) {
    int before = listening_count;
    CHECK_OK(dgram_bind(s, port, address, on_listening));
    RUN_UNTIL(ctx, listening_count, before + 1);
    uint16_t got = test_port(s);
    CHECK(got != 0);
    if (port)
        CHECK_EQ(got, port);
    return got;
}

static void check_got(const inbox *in, int count, const char *text, const char *from,
                      uint16_t from_port) {
    CHECK_EQ(in->count, count);
    CHECK_EQ(in->len, strlen(text));
    CHECK_MEM(in->data, text, strlen(text));
    CHECK_STR(in->rinfo.address, from);
    CHECK_EQ(in->rinfo.port, from_port);
    CHECK_EQ(in->rinfo.family, DGRAM_IPV4);
}

static void check_eacces(const dgram_error *err, uint16_t port) {
    CHECK_CODE(err->code, DGRAM_EACCES);
    CHECK(err->syscall != NULL);
    CHECK_STR(err->syscall, "send");
    CHECK_STR(err->addr.address, BCAST);
    CHECK_EQ(err->addr.port, port);
    CHECK_EQ(err->addr.family, DGRAM_IPV4);
}

/* Without SO_BROADCAST the send fails with EACCES through its callback;
 * with it the datagram arrives; clearing it makes it fail again. */
static void test_broadcast_needs_flag(void) {
    printf("test_broadcast_needs_flag\n");
    inbox in;
    dgram_socket *rx = make(HOST_B, false, &in);
    uint16_t port = bind_wait(rx, 0, "0.0.0.0");

    dgram_socket *tx = make(HOST_A, false, NULL);
    CHECK_OK(dgram_on_error(tx, on_error));
    uint16_t tx_port = bind_wait(tx, 0, NULL);

    /* 1. No broadcast flag: EACCES via the send callback (not 'error'). */
    memset(&sends, 0, sizeof sends);
    memset(&errors, 0, sizeof errors);
    CHECK_OK(dgram_send(tx, "denied", 6, port, BCAST, on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 1);
    CHECK_EQ(sends.errors, 1);
    CHECK_EQ(sends.last_length, 6);
    CHECK(sends.last_data == &sends);
    check_eacces(&sends.last, port);
    test_run_for(ctx, 100);
    CHECK_EQ(sends.count, 1);
    CHECK_EQ(errors.count, 0);
    CHECK_EQ(in.count, 0);

    /* 2. The socket survives; with the flag the datagram arrives at B. */
    CHECK_OK(dgram_set_broadcast(tx, true));
    CHECK_OK(dgram_send(tx, "broadcast!", 10, port, BCAST, on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 2);
    CHECK_EQ(sends.errors, 1);
    CHECK_EQ(sends.last_length, 10);
    RUN_UNTIL(ctx, in.count, 1);
    check_got(&in, 1, "broadcast!", "198.51.100.1", tx_port);

    /* 3. Cleared again: EACCES again, nothing arrives. */
    CHECK_OK(dgram_set_broadcast(tx, false));
    CHECK_OK(dgram_send(tx, "denied again", 12, port, BCAST, on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 3);
    CHECK_EQ(sends.errors, 2);
    CHECK_EQ(sends.last_length, 12);
    check_eacces(&sends.last, port);
    test_run_for(ctx, 100);
    CHECK_EQ(in.count, 1);
    CHECK_EQ(errors.count, 0);

    /* 4. Unicast to B from the same socket still works (it was not broken
     * by the failures). */
    CHECK_OK(dgram_send(tx, "unicast", 7, port, "198.51.100.2", on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 4);
    CHECK_EQ(sends.errors, 2);
    RUN_UNTIL(ctx, in.count, 2);
    check_got(&in, 2, "unicast", "198.51.100.1", tx_port);

    dgram_socket_free(rx);
    dgram_socket_free(tx);
}

/* Without a send callback the EACCES comes as one 'error' event. Here the
 * sender is never bound explicitly: the send binds it implicitly. */
static void test_broadcast_error_event(void) {
    printf("test_broadcast_error_event\n");
    inbox in;
    dgram_socket *rx = make(HOST_B, false, &in);
    uint16_t port = bind_wait(rx, 0, "0.0.0.0");

    int userdata_marker = 0;
    dgram_socket_options opts;
    memset(&opts, 0, sizeof opts);
    opts.type = DGRAM_UDP4;
    dgram_socket *tx = NULL;
    CHECK_OK(dgram_create_socket(ctx, &opts, NULL, &userdata_marker, &tx)); /* host A */
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
    check_got(&in, 1, "now allowed", "198.51.100.1", tx_port);
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
    uint16_t port = bind_wait(b1, 0, "0.0.0.0");
    bind_wait(b2, port, "0.0.0.0");
    bind_wait(a, port, "0.0.0.0");

    dgram_socket *tx = make(HOST_A, false, NULL);
    CHECK_OK(dgram_set_broadcast(tx, true));
    uint16_t tx_port = bind_wait(tx, 0, NULL);
    memset(&sends, 0, sizeof sends);
    CHECK_OK(dgram_send(tx, "to everyone", 11, port, BCAST, on_sent, &sends));
    RUN_UNTIL(ctx, sends.count, 1);
    CHECK_EQ(sends.errors, 0);
    RUN_UNTIL(ctx, on_b1.count, 1);
    RUN_UNTIL(ctx, on_b2.count, 1);
    RUN_UNTIL(ctx, on_a.count, 1);
    test_run_for(ctx, 100);
    check_got(&on_b1, 1, "to everyone", "198.51.100.1", tx_port);
    check_got(&on_b2, 1, "to everyone", "198.51.100.1", tx_port);
    check_got(&on_a, 1, "to everyone", "198.51.100.1", tx_port);

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
