/*
 * Send and receive: udp4/udp6 echo with exact bytes and rinfo, send
 * callbacks (once, asynchronous, with length and send_data), buffer reuse,
 * empty datagrams, dgram_sendv (one datagram, copied at call time), the
 * largest datagrams, implicit bind, the default address and "localhost",
 * ordering, sending from a send callback, one server with several clients,
 * I/O-thread dispatch and dual-stack reception.
 *
 * Unicast only, over 127.0.0.1 and ::1, with ports chosen by the OS. I/O
 * errors are covered elsewhere (inside a network namespace).
 */
#include "recorder.h"

#include <stdint.h>

/* ---- recorders ---------------------------------------------------------- */

#define MAX_RX 1100
#define MAX_SENT 1100

/* What one socket received. Callbacks may run on the I/O thread: the data
 * is stored first, then `count` is published atomically. */
typedef struct {
    int count;
    size_t len[MAX_RX];
    uint8_t *data[MAX_RX];
    dgram_addr rinfo[MAX_RX];
    int echo;  /* echo every datagram back to its sender */
    int echo_errors;
    char tag;  /* appended to g_log for every message, when nonzero */
    int listening;
    dgram_addr listen_addr;
    int listen_addr_rc;
} rx_t;

/* Event log, for order across event kinds of one socket ("LSM"). */
static event_log g_log;

static void rx_init(rx_t *rx) { memset(rx, 0, sizeof *rx); }

static void rx_free(rx_t *rx) {
    int n = test_load(&rx->count);
    for (int i = 0; i < n && i < MAX_RX; i++)
        free(rx->data[i]);
    memset(rx, 0, sizeof *rx);
}

static void rx_on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                          void *userdata) {
    rx_t *rx = userdata;
    int i = rx->count;
    if (i >= MAX_RX)
        FAIL("more than %d datagrams received", MAX_RX);
    rx->data[i] = malloc(len ? len : 1);
    CHECK(rx->data[i] != NULL);
    if (len)
        memcpy(rx->data[i], msg, len);
    rx->len[i] = len;
    rx->rinfo[i] = *rinfo;
    if (rx->tag)
        event_log_add(&g_log, rx->tag);
    if (rx->echo) {
        if (dgram_send(s, msg, len, rinfo->port, rinfo->address, NULL, NULL) != 0)
            rx->echo_errors++;
    }
    test_add(&rx->count, 1);
}

static void rx_on_listening(dgram_socket *s, void *userdata) {
    rx_t *rx = userdata;
    event_log_add(&g_log, 'L');
    rx->listen_addr_rc = dgram_address(s, &rx->listen_addr);
    test_add(&rx->listening, 1);
}

/* Send completions, in the order they came. */
static struct {
    int count;
    int errors;
    size_t len[MAX_SENT];
    void *data[MAX_SENT];
    dgram_socket *sock[MAX_SENT];
} g_sent;

static void sent_reset(void) {
    memset(&g_sent, 0, sizeof g_sent);
    memset(&g_log, 0, sizeof g_log);
}

static void on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    int i = g_sent.count;
    if (i >= MAX_SENT)
        FAIL("more than %d send callbacks", MAX_SENT);
    if (err != NULL) {
        fprintf(stderr, "send callback error: %s (%s)\n", dgram_err_name(err->code),
                err->syscall ? err->syscall : "?");
        g_sent.errors++;
    }
    g_sent.len[i] = length;
    g_sent.data[i] = send_data;
    g_sent.sock[i] = s;
    event_log_add(&g_log, 'S');
    test_add(&g_sent.count, 1);
}

/* ---- helpers ------------------------------------------------------------ */

static dgram_socket *new_sock(dgram_context *ctx, dgram_type type, int32_t bufsize, rx_t *rx) {
    dgram_socket_options o = test_opts(type);
    o.recv_buffer_size = bufsize;
    o.send_buffer_size = bufsize;
    return test_socket_with(ctx, &o, rx_on_message, rx);
}

/* A socket bound to `addr` on an OS-chosen port. */
static dgram_socket *bound_sock(dgram_context *ctx, dgram_type type, const char *addr, int32_t bufsize,
                                rx_t *rx) {
    dgram_socket *s = new_sock(ctx, type, bufsize, rx);
    test_bind(s, addr);
    return s;
}

/* Most tests' cast: a context, and a server and a client of `type` bound to
 * `loop` (buffer sizes as given, 0: the default), each recording into its
 * own rx_t; the send and event logs cleared. */
typedef struct {
    dgram_context *ctx;
    rx_t srx, crx;
    dgram_socket *server, *client;
    uint16_t sport, cport;
} pair;

/* The context and the two recorders, for a test that makes its own server
 * and client (and its ports). */
static void pair_begin(pair *p, dgram_dispatch dispatch) {
    p->ctx = test_context(dispatch, 0);
    rx_init(&p->srx);
    rx_init(&p->crx);
    sent_reset();
}

static void pair_open(pair *p, dgram_dispatch dispatch, dgram_type type, const char *loop,
                      int32_t server_buf, int32_t client_buf) {
    pair_begin(p, dispatch);
    p->server = bound_sock(p->ctx, type, loop, server_buf, &p->srx);
    p->client = bound_sock(p->ctx, type, loop, client_buf, &p->crx);
    p->sport = test_port(p->server);
    p->cport = test_port(p->client);
}

static void pair_close(pair *p) {
    dgram_socket_free(p->client);
    dgram_socket_free(p->server);
    dgram_context_free(p->ctx);
    rx_free(&p->srx);
    rx_free(&p->crx);
}

static void check_msg(const rx_t *rx, int i, const void *bytes, size_t len) {
    CHECK_EQ(rx->len[i], len);
    if (len)
        CHECK_MEM(rx->data[i], bytes, len);
}

static uint8_t pattern_byte(size_t i) { return (uint8_t)((i * 7u + 3u) ^ (i >> 8)); }

/* ---- tests -------------------------------------------------------------- */

/* udp echo: client -> server -> client, exact bytes and rinfo both ways. */
static void echo_family(dgram_type type, const char *loop, dgram_family family) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, type, loop, 0, 0);
    p.srx.echo = 1;
    CHECK(p.sport != p.cport);

    static const uint8_t msg[] = {'h', 'e', 'l', 'l', 'o', 0, 0xff, 0x80, '\n', 'x'};
    CHECK_OK(dgram_send(p.client, msg, sizeof msg, p.sport, loop, on_sent, NULL));
    RUN_UNTIL(p.ctx, p.crx.count, 1);

    CHECK_EQ(p.srx.count, 1);
    check_msg(&p.srx, 0, msg, sizeof msg);
    CHECK_ADDR(&p.srx.rinfo[0], loop, p.cport, family);
    CHECK_EQ(p.srx.echo_errors, 0);

    CHECK_EQ(p.crx.count, 1);
    check_msg(&p.crx, 0, msg, sizeof msg);
    CHECK_ADDR(&p.crx.rinfo[0], loop, p.sport, family);

    RUN_UNTIL(p.ctx, g_sent.count, 1);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.count, 1);
    CHECK_EQ(p.crx.count, 1);
    CHECK_EQ(g_sent.count, 1);
    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.len[0], sizeof msg);

    pair_close(&p);
}

static void test_echo_udp4(void) { echo_family(DGRAM_UDP4, "127.0.0.1", DGRAM_IPV4); }
static void test_echo_udp6(void) { echo_family(DGRAM_UDP6, "::1", DGRAM_IPV6); }

/* The send callback: once, later, err NULL, the message's length, send_data. */
static void test_send_callback(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);
    int token = 0;

    CHECK_OK(dgram_send(p.client, "0123456789abc", 13, p.sport, "127.0.0.1", on_sent, &token));
    CHECK_EQ(test_load(&g_sent.count), 0); /* never inside dgram_send */
    RUN_UNTIL(p.ctx, g_sent.count, 1);
    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.len[0], 13);
    CHECK(g_sent.data[0] == &token);
    CHECK(g_sent.sock[0] == p.client);

    /* NULL callback: the datagram still goes out. */
    CHECK_OK(dgram_send(p.client, "no-callback", 11, p.sport, "127.0.0.1", NULL, &token));
    RUN_UNTIL(p.ctx, p.srx.count, 2);
    check_msg(&p.srx, 0, "0123456789abc", 13);
    check_msg(&p.srx, 1, "no-callback", 11);

    test_run_for(p.ctx, 100);
    CHECK_EQ(g_sent.count, 1);
    CHECK_EQ(p.srx.count, 2);

    pair_close(&p);
}

/* The message buffer may be overwritten as soon as dgram_send returns. */
static void test_buffer_reuse(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);

    char buf[64];
    const char *orig[3] = {"first message", "second one", "third and last"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "%s", orig[i]);
        CHECK_OK(dgram_send(p.client, buf, strlen(orig[i]), p.sport, "127.0.0.1", on_sent, NULL));
        memset(buf, 'Z', sizeof buf);
    }
    char *heap = malloc(32);
    CHECK(heap != NULL);
    memcpy(heap, "heap bytes", 10);
    CHECK_OK(dgram_send(p.client, heap, 10, p.sport, "127.0.0.1", on_sent, NULL));
    memset(heap, 0, 32);
    free(heap);

    RUN_UNTIL(p.ctx, p.srx.count, 4);
    for (int i = 0; i < 3; i++)
        check_msg(&p.srx, i, orig[i], strlen(orig[i]));
    check_msg(&p.srx, 3, "heap bytes", 10);
    RUN_UNTIL(p.ctx, g_sent.count, 4);
    CHECK_EQ(g_sent.errors, 0);

    pair_close(&p);
}

/* Empty datagrams: send with len 0 and sendv with nbufs 0. */
static void test_zero_length(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);
    static int d0, d1, d2, d3;

    CHECK_OK(dgram_send(p.client, NULL, 0, p.sport, "127.0.0.1", on_sent, &d0));
    CHECK_OK(dgram_send(p.client, "ignored", 0, p.sport, "127.0.0.1", on_sent, &d1));
    CHECK_OK(dgram_sendv(p.client, NULL, 0, p.sport, "127.0.0.1", on_sent, &d2));
    dgram_buf empty = {"x", 0};
    CHECK_OK(dgram_sendv(p.client, &empty, 0, p.sport, "127.0.0.1", on_sent, &d3));
    /* A marker after them: the empties came first, in order. */
    CHECK_OK(dgram_send(p.client, "end", 3, p.sport, "127.0.0.1", on_sent, NULL));

    RUN_UNTIL(p.ctx, p.srx.count, 5);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(p.srx.len[i], 0);
        CHECK_ADDR(&p.srx.rinfo[i], "127.0.0.1", p.cport, DGRAM_IPV4);
    }
    check_msg(&p.srx, 4, "end", 3);
    RUN_UNTIL(p.ctx, g_sent.count, 5);
    CHECK_EQ(g_sent.errors, 0);
    void *want[4] = {&d0, &d1, &d2, &d3};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(g_sent.len[i], 0);
        CHECK(g_sent.data[i] == want[i]);
    }
    CHECK_EQ(g_sent.len[4], 3);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.count, 5);
    CHECK_EQ(g_sent.count, 5);

    pair_close(&p);
}

/* dgram_sendv: pieces make ONE datagram; the pieces are copied at call time. */
static void test_sendv(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);

    /* "ab" + "" + "cdef" -> "abcdef" */
    char p0[2] = {'a', 'b'}, p2[4] = {'c', 'd', 'e', 'f'};
    dgram_buf three[3] = {{p0, 2}, {"", 0}, {p2, 4}};
    static int tok_three;
    CHECK_OK(dgram_sendv(p.client, three, 3, p.sport, "127.0.0.1", on_sent, &tok_three));
    CHECK_EQ(test_load(&g_sent.count), 0);
    /* copied at call time: mutate the bytes and the descriptors */
    memset(p0, '!', sizeof p0);
    memset(p2, '?', sizeof p2);
    three[0].len = 0;
    three[2].base = NULL;
    RUN_UNTIL(p.ctx, p.srx.count, 1);
    check_msg(&p.srx, 0, "abcdef", 6);
    CHECK_ADDR(&p.srx.rinfo[0], "127.0.0.1", p.cport, DGRAM_IPV4);
    RUN_UNTIL(p.ctx, g_sent.count, 1);
    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.len[0], 6);
    CHECK(g_sent.data[0] == &tok_three);

    /* a NULL base with len 0 is allowed */
    dgram_buf nulls[3] = {{"xy", 2}, {NULL, 0}, {"z", 1}};
    CHECK_OK(dgram_sendv(p.client, nulls, 3, p.sport, "127.0.0.1", on_sent, NULL));
    RUN_UNTIL(p.ctx, p.srx.count, 2);
    check_msg(&p.srx, 1, "xyz", 3);

    /* 100 pieces of one byte -> one 100-byte datagram */
    uint8_t bytes[100];
    dgram_buf hundred[100];
    uint8_t want[100];
    for (int i = 0; i < 100; i++) {
        bytes[i] = (uint8_t)(0x20 + (i * 13) % 90);
        want[i] = bytes[i];
        hundred[i].base = &bytes[i];
        hundred[i].len = 1;
    }
    CHECK_OK(dgram_sendv(p.client, hundred, 100, p.sport, "127.0.0.1", on_sent, NULL));
    for (int i = 0; i < 100; i++)
        bytes[i] = 0;
    RUN_UNTIL(p.ctx, p.srx.count, 3);
    check_msg(&p.srx, 2, want, 100);

    RUN_UNTIL(p.ctx, g_sent.count, 3);
    CHECK_EQ(g_sent.len[1], 3);
    CHECK_EQ(g_sent.len[2], 100);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.count, 3); /* each sendv was one datagram, not several */
    CHECK_EQ(g_sent.count, 3);
    CHECK_EQ(g_sent.errors, 0);

    pair_close(&p);
}

/* The largest datagram of a family arrives whole, both ways; one byte more
 * is refused. */
static void largest_family(dgram_type type, const char *loop, size_t max) {
    pair p;
    const int32_t mib = 1 << 20;
    pair_open(&p, DGRAM_DISPATCH_HOST, type, loop, mib, mib);
    p.srx.echo = 1;

    uint8_t *big = malloc(max + 1);
    uint8_t *want = malloc(max + 1);
    CHECK(big != NULL && want != NULL);
    for (size_t i = 0; i <= max; i++)
        big[i] = want[i] = pattern_byte(i);

    CHECK_CODE(dgram_send(p.client, big, max + 1, p.sport, loop, on_sent, NULL), DGRAM_EMSGSIZE);
    CHECK_OK(dgram_send(p.client, big, max, p.sport, loop, on_sent, NULL));
    memset(big, 0, max + 1);
    RUN_UNTIL(p.ctx, p.crx.count, 1);
    CHECK_EQ(p.srx.count, 1);
    CHECK_EQ(p.srx.echo_errors, 0);
    check_msg(&p.srx, 0, want, max);
    check_msg(&p.crx, 0, want, max);
    RUN_UNTIL(p.ctx, g_sent.count, 1);
    test_run_for(p.ctx, 100);
    CHECK_EQ(g_sent.count, 1); /* the refused send has no callback */
    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.len[0], max);
    CHECK_EQ(p.srx.count, 1);

    free(big);
    free(want);
    pair_close(&p);
}

static void test_largest_udp4(void) { largest_family(DGRAM_UDP4, "127.0.0.1", 65507); }
static void test_largest_udp6(void) { largest_family(DGRAM_UDP6, "::1", 65527); }

/* Sending on an unbound socket binds it: 'listening' first, then the send
 * callback, then the reply. */
static void implicit_family(dgram_type type, const char *loop, const char *any, dgram_family family) {
    pair p;
    pair_begin(&p, DGRAM_DISPATCH_HOST);
    p.srx.echo = 1;
    p.crx.tag = 'M';
    p.server = bound_sock(p.ctx, type, loop, 0, &p.srx);
    p.sport = test_port(p.server);
    p.client = new_sock(p.ctx, type, 0, &p.crx); /* bound by its first send */
    CHECK_OK(dgram_on_listening(p.client, rx_on_listening));
    dgram_addr a;
    CHECK_CODE(dgram_address(p.client, &a), DGRAM_EBADF);

    CHECK_OK(dgram_send(p.client, "implicit", 8, p.sport, loop, on_sent, NULL));
    CHECK_EQ(test_load(&p.crx.listening), 0);
    CHECK_EQ(test_load(&g_sent.count), 0);
    RUN_UNTIL(p.ctx, g_sent.count, 1);
    CHECK_EQ(p.crx.listening, 1);
    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.len[0], 8);
    if (strncmp(g_log.text, "LS", 2) != 0) /* the reply may already be in: "LSM" */
        FAIL("event order \"%s\", expected 'listening' then the send callback", g_log.text);

    p.cport = test_check_bound(p.client, any, 0, family);
    /* the address seen from inside 'listening' is the same */
    CHECK_OK(p.crx.listen_addr_rc);
    CHECK_STR(p.crx.listen_addr.address, any);
    CHECK_EQ(p.crx.listen_addr.port, p.cport);
    /* a second bind is refused after the implicit one */
    CHECK_CODE(dgram_bind(p.client, 0, NULL, NULL), DGRAM_EALREADY);

    RUN_UNTIL(p.ctx, p.crx.count, 1);
    CHECK_EQ(p.srx.count, 1);
    check_msg(&p.srx, 0, "implicit", 8);
    CHECK_ADDR(&p.srx.rinfo[0], loop, p.cport, family);
    check_msg(&p.crx, 0, "implicit", 8);
    CHECK_ADDR(&p.crx.rinfo[0], loop, p.sport, family);
    CHECK_STR(g_log.text, "LSM");

    /* a second send does not emit 'listening' again */
    CHECK_OK(dgram_send(p.client, "again", 5, p.sport, loop, on_sent, NULL));
    RUN_UNTIL(p.ctx, p.crx.count, 2);
    RUN_UNTIL(p.ctx, g_sent.count, 2);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.crx.listening, 1);
    CHECK_STR(g_log.text, "LSMSM");
    check_msg(&p.crx, 1, "again", 5);
    CHECK_EQ(test_port(p.client), p.cport);

    pair_close(&p);
}

static void test_implicit_bind_udp4(void) { implicit_family(DGRAM_UDP4, "127.0.0.1", "0.0.0.0", DGRAM_IPV4); }
static void test_implicit_bind_udp6(void) { implicit_family(DGRAM_UDP6, "::1", "::", DGRAM_IPV6); }

/* address NULL means the loopback of the family; "localhost" works too. */
static void default_addr_family(dgram_type type, const char *loop, dgram_family family) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, type, loop, 0, 0);

    CHECK_OK(dgram_send(p.client, "default", 7, p.sport, NULL, on_sent, NULL));
    CHECK_OK(dgram_send(p.client, "localhost", 9, p.sport, "localhost", on_sent, NULL));
    dgram_buf b = {"vec", 3};
    CHECK_OK(dgram_sendv(p.client, &b, 1, p.sport, NULL, on_sent, NULL));
    RUN_UNTIL(p.ctx, p.srx.count, 3);
    check_msg(&p.srx, 0, "default", 7);
    check_msg(&p.srx, 1, "localhost", 9);
    check_msg(&p.srx, 2, "vec", 3);
    for (int i = 0; i < 3; i++)
        CHECK_ADDR(&p.srx.rinfo[i], loop, p.cport, family);
    RUN_UNTIL(p.ctx, g_sent.count, 3);
    CHECK_EQ(g_sent.errors, 0);

    pair_close(&p);
}

static void test_default_address_udp4(void) { default_addr_family(DGRAM_UDP4, "127.0.0.1", DGRAM_IPV4); }
static void test_default_address_udp6(void) { default_addr_family(DGRAM_UDP6, "::1", DGRAM_IPV6); }

/* 1000 numbered datagrams arrive in order; their callbacks come in call
 * order. Sent in windows of 100 so a slow receiver (valgrind) never has its
 * kernel buffer overflow: loopback drops silently when it is full. */
static void test_order(void) {
    enum { N = 1000, WINDOW = 100 };
    pair *p = malloc(sizeof *p); /* large: its rx_t hold 1100 datagrams each */
    CHECK(p != NULL);
    pair_open(p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 1 << 20, 1 << 20);

    for (int w = 0; w < N; w += WINDOW) {
        for (int i = w; i < w + WINDOW; i++) {
            char m[16];
            int n = snprintf(m, sizeof m, "#%04d", i);
            CHECK_OK(dgram_send(p->client, m, (size_t)n, p->sport, "127.0.0.1", on_sent, (void *)(uintptr_t)i));
        }
        RUN_UNTIL(p->ctx, p->srx.count, w + WINDOW);
    }
    RUN_UNTIL(p->ctx, g_sent.count, N);
    test_run_for(p->ctx, 100);
    CHECK_EQ(p->srx.count, N);
    CHECK_EQ(g_sent.count, N);
    CHECK_EQ(g_sent.errors, 0);
    for (int i = 0; i < N; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "#%04d", i);
        if (p->srx.len[i] != (size_t)n || memcmp(p->srx.data[i], m, (size_t)n) != 0)
            FAIL("datagram %d is \"%.*s\", expected \"%s\"", i, (int)p->srx.len[i],
                 (const char *)p->srx.data[i], m);
        CHECK_EQ(p->srx.rinfo[i].port, p->cport);
        if (g_sent.data[i] != (void *)(uintptr_t)i)
            FAIL("send callback %d carries send_data %zu", i, (size_t)(uintptr_t)g_sent.data[i]);
        CHECK_EQ(g_sent.len[i], (size_t)n);
    }

    pair_close(p);
    free(p);
}

/* Each send callback sends the next datagram, 100 deep. */
#define RECURSIVE_N 100
static struct {
    dgram_socket *client;
    uint16_t port;
    int calls[RECURSIVE_N];
    int in_send;
    int reentered;
    int sync_completion;
    int send_errors;
    int count;
} g_rec;

static void on_recursive_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    int i = (int)(uintptr_t)send_data;
    if (g_rec.in_send)
        g_rec.reentered++;
    if (err != NULL || s != g_rec.client || length != 3 || i < 0 || i >= RECURSIVE_N) {
        g_rec.send_errors++;
    } else {
        g_rec.calls[i]++;
        if (i + 1 < RECURSIVE_N) {
            char m[4];
            snprintf(m, sizeof m, "%03d", i + 1);
            int before = g_rec.count;
            g_rec.in_send = 1;
            if (dgram_send(s, m, 3, g_rec.port, "127.0.0.1", on_recursive_sent, (void *)(uintptr_t)(i + 1)) != 0)
                g_rec.send_errors++;
            g_rec.in_send = 0;
            if (g_rec.count != before || g_rec.calls[i + 1] != 0)
                g_rec.sync_completion++;
        }
    }
    test_add(&g_rec.count, 1);
}

static void test_send_from_send_callback(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 1 << 20, 0);
    memset(&g_rec, 0, sizeof g_rec);
    g_rec.client = p.client;
    g_rec.port = p.sport;

    CHECK_OK(dgram_send(p.client, "000", 3, g_rec.port, "127.0.0.1", on_recursive_sent, (void *)(uintptr_t)0));
    RUN_UNTIL(p.ctx, g_rec.count, RECURSIVE_N);
    RUN_UNTIL(p.ctx, p.srx.count, RECURSIVE_N);
    test_run_for(p.ctx, 100);
    CHECK_EQ(g_rec.count, RECURSIVE_N);
    CHECK_EQ(g_rec.send_errors, 0);
    CHECK_EQ(g_rec.reentered, 0);
    CHECK_EQ(g_rec.sync_completion, 0);
    for (int i = 0; i < RECURSIVE_N; i++)
        CHECK_EQ(g_rec.calls[i], 1);
    CHECK_EQ(p.srx.count, RECURSIVE_N);
    for (int i = 0; i < RECURSIVE_N; i++) {
        char m[4];
        snprintf(m, sizeof m, "%03d", i);
        check_msg(&p.srx, i, m, 3);
    }

    pair_close(&p);
}

/* One echo server, 5 clients with 200 datagrams each: every client gets
 * exactly its own 200 back. */
#define CLIENTS 5
#define PER_CLIENT 200
typedef struct {
    int id;
    uint16_t server_port;
    int got[PER_CLIENT];
    int count;
    int foreign; /* datagrams not ours, or from elsewhere */
} mc_client;

static void mc_on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                          void *userdata) {
    (void)s;
    mc_client *c = userdata;
    char text[32];
    int id = -1, n = -1;
    char extra;
    if (len < sizeof text) {
        memcpy(text, msg, len);
        text[len] = '\0';
        if (sscanf(text, "c%d-%d%c", &id, &n, &extra) != 2)
            id = -1;
    }
    if (id != c->id || n < 0 || n >= PER_CLIENT || rinfo->port != c->server_port ||
        strcmp(rinfo->address, "127.0.0.1") != 0 || rinfo->family != DGRAM_IPV4)
        c->foreign++;
    else
        c->got[n]++;
    test_add(&c->count, 1);
}

static void test_one_server_many_clients(void) {
    enum { WINDOW = 20 };
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rx_t *srx = malloc(sizeof *srx);
    CHECK(srx != NULL);
    rx_init(srx);
    srx->echo = 1;
    sent_reset();
    dgram_socket *server = bound_sock(ctx, DGRAM_UDP4, "127.0.0.1", 1 << 20, srx);
    uint16_t sport = test_port(server);

    mc_client clients[CLIENTS];
    dgram_socket *cs[CLIENTS];
    uint16_t cports[CLIENTS];
    memset(clients, 0, sizeof clients);
    for (int k = 0; k < CLIENTS; k++) {
        clients[k].id = k;
        clients[k].server_port = sport;
        dgram_socket_options o = test_opts(DGRAM_UDP4);
        o.recv_buffer_size = 1 << 20;
        cs[k] = test_socket_with(ctx, &o, mc_on_message, &clients[k]);
        cports[k] = test_bind(cs[k], "127.0.0.1");
    }

    for (int w = 0; w < PER_CLIENT; w += WINDOW) {
        for (int i = w; i < w + WINDOW; i++) {
            for (int k = 0; k < CLIENTS; k++) {
                char m[32];
                int n = snprintf(m, sizeof m, "c%d-%d", k, i);
                CHECK_OK(dgram_send(cs[k], m, (size_t)n, sport, "127.0.0.1", on_sent, NULL));
            }
        }
        for (int k = 0; k < CLIENTS; k++)
            RUN_UNTIL(ctx, clients[k].count, w + WINDOW);
    }
    RUN_UNTIL(ctx, g_sent.count, CLIENTS * PER_CLIENT);
    test_run_for(ctx, 200);

    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.count, CLIENTS * PER_CLIENT);
    CHECK_EQ(srx->echo_errors, 0);
    CHECK_EQ(srx->count, CLIENTS * PER_CLIENT);
    int per_port[CLIENTS] = {0};
    for (int i = 0; i < srx->count; i++) {
        int k;
        for (k = 0; k < CLIENTS; k++)
            if (srx->rinfo[i].port == cports[k])
                break;
        if (k == CLIENTS)
            FAIL("server got datagram %d from unknown port %u", i, srx->rinfo[i].port);
        /* the content names the client that sent it */
        char prefix[8];
        int n = snprintf(prefix, sizeof prefix, "c%d-", k);
        CHECK(srx->len[i] > (size_t)n && memcmp(srx->data[i], prefix, (size_t)n) == 0);
        per_port[k]++;
    }
    for (int k = 0; k < CLIENTS; k++) {
        CHECK_EQ(per_port[k], PER_CLIENT);
        CHECK_EQ(clients[k].count, PER_CLIENT);
        CHECK_EQ(clients[k].foreign, 0);
        for (int i = 0; i < PER_CLIENT; i++)
            if (clients[k].got[i] != 1)
                FAIL("client %d got its datagram %d %d times", k, i, clients[k].got[i]);
    }

    for (int k = 0; k < CLIENTS; k++)
        dgram_socket_free(cs[k]);
    dgram_socket_free(server);
    dgram_context_free(ctx);
    rx_free(srx);
    free(srx);
}

/* The udp4 echo with callbacks on the I/O thread. */
static void test_echo_io_thread(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_IO_THREAD, DGRAM_UDP4, "127.0.0.1", 0, 0);
    p.srx.echo = 1;

    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = pattern_byte(i + 11);
    static int token;
    CHECK_OK(dgram_send(p.client, msg, sizeof msg, p.sport, "127.0.0.1", on_sent, &token));
    WAIT_UNTIL(p.crx.count, 1);
    WAIT_UNTIL(g_sent.count, 1);
    CHECK_EQ(test_load(&p.srx.count), 1);
    check_msg(&p.srx, 0, msg, sizeof msg);
    CHECK_ADDR(&p.srx.rinfo[0], "127.0.0.1", p.cport, DGRAM_IPV4);
    CHECK_EQ(p.srx.echo_errors, 0);
    check_msg(&p.crx, 0, msg, sizeof msg);
    CHECK_ADDR(&p.crx.rinfo[0], "127.0.0.1", p.sport, DGRAM_IPV4);
    CHECK_EQ(g_sent.errors, 0);
    CHECK_EQ(g_sent.len[0], sizeof msg);
    CHECK(g_sent.data[0] == &token);
    /* dispatch has nothing to do in this mode */
    CHECK_EQ(dgram_context_dispatch(p.ctx, 0), 0);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&p.srx.count), 1);
    CHECK_EQ(test_load(&p.crx.count), 1);
    CHECK_EQ(test_load(&g_sent.count), 1);

    pair_close(&p);
}

/* A udp6 socket with ipv6_only off, bound to "::", receives IPv4 traffic,
 * with the sender as an IPv4-mapped address. */
static void test_dual_stack(void) {
    pair p;
    pair_begin(&p, DGRAM_DISPATCH_HOST);
    p.srx.echo = 1;
    p.server = bound_sock(p.ctx, DGRAM_UDP6, "::", 0, &p.srx); /* ipv6_only off */
    p.sport = test_port(p.server);
    p.client = bound_sock(p.ctx, DGRAM_UDP4, "127.0.0.1", 0, &p.crx);
    p.cport = test_port(p.client);

    CHECK_OK(dgram_send(p.client, "mapped", 6, p.sport, "127.0.0.1", on_sent, NULL));
    RUN_UNTIL(p.ctx, p.crx.count, 1);
    CHECK_EQ(p.srx.count, 1);
    check_msg(&p.srx, 0, "mapped", 6);
    CHECK_ADDR(&p.srx.rinfo[0], "::ffff:127.0.0.1", p.cport, DGRAM_IPV6);
    /* the reply to the mapped address reaches the udp4 p.client */
    CHECK_EQ(p.srx.echo_errors, 0);
    check_msg(&p.crx, 0, "mapped", 6);
    CHECK_ADDR(&p.crx.rinfo[0], "127.0.0.1", p.sport, DGRAM_IPV4);
    RUN_UNTIL(p.ctx, g_sent.count, 1);
    CHECK_EQ(g_sent.errors, 0);

    pair_close(&p);
}

int main(void) {
    test_watchdog(60);
    setvbuf(stdout, NULL, _IONBF, 0);
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"test_echo_udp4", test_echo_udp4},
        {"test_echo_udp6", test_echo_udp6},
        {"test_send_callback", test_send_callback},
        {"test_buffer_reuse", test_buffer_reuse},
        {"test_zero_length", test_zero_length},
        {"test_sendv", test_sendv},
        {"test_largest_udp4", test_largest_udp4},
        {"test_largest_udp6", test_largest_udp6},
        {"test_implicit_bind_udp4", test_implicit_bind_udp4},
        {"test_implicit_bind_udp6", test_implicit_bind_udp6},
        {"test_default_address_udp4", test_default_address_udp4},
        {"test_default_address_udp6", test_default_address_udp6},
        {"test_order", test_order},
        {"test_send_from_send_callback", test_send_from_send_callback},
        {"test_one_server_many_clients", test_one_server_many_clients},
        {"test_echo_io_thread", test_echo_io_thread},
        {"test_dual_stack", test_dual_stack},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("%s\n", tests[i].name);
        tests[i].fn();
    }
    printf("all passed\n");
    return 0;
}
