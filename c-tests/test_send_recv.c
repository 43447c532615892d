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
#include "test_runner.h"

#include <stdint.h>

/* ---- recorders ---------------------------------------------------------- */

/* One socket's recorder: its events in `r`, every datagram also whole in
 * `in` (sock_rec keeps only the first bytes of the first few), and what
 * rx_action does from inside its callbacks. */
typedef struct {
    sock_rec r;
    inbox in;
    int echo;        /* send every datagram back to its sender */
    int echo_errors; /* echoes dgram_send refused */
    int listen_rc;   /* dgram_address, called from inside 'listening' */
    dgram_addr listen_addr;
    /* When seq_digits is set, datagram i must be seq_prefix followed by i
     * in seq_digits digits (zero-padded), from 127.0.0.1 port seq_port. */
    int seq_digits;
    const char *seq_prefix;
    uint16_t seq_port;
} rx;

/* Sends the datagram `x` just received back to where it came from. */
static void rx_echo(rx *x, dgram_socket *s) {
    const inbox *in = &x->in;
    if (dgram_send(s, in->data, in->len, in->rinfo.port, in->rinfo.address, NULL, NULL) != 0)
        test_add(&x->echo_errors, 1);
}

/* Checks the datagram `x` just received, its number `i`, against `x->seq_*`:
 * more datagrams than sock_rec keeps, each checked as it comes. */
static void rx_check_seq(const rx *x, int i) {
    const inbox *in = &x->in;
    char want[32];
    int n = snprintf(want, sizeof want, "%s%0*d", x->seq_prefix, x->seq_digits, i);
    CHECK(n > 0 && (size_t)n < sizeof want);
    if (in->len != (size_t)n || memcmp(in->data, want, (size_t)n) != 0)
        FAIL("datagram %d is \"%.*s\", expected \"%s\"", i, (int)in->len,
             (const char *)in->data, want);
    CHECK_ADDR(&in->rinfo, "127.0.0.1", x->seq_port, DGRAM_IPV4);
}

static void rx_action(sock_rec *r, dgram_socket *s, char letter) {
    rx *x = r->user;
    if (letter == 'l')
        x->listen_rc = dgram_address(s, &x->listen_addr);
    if (letter != 'M')
        return;
    if (x->seq_digits)
        rx_check_seq(x, test_load(&r->count) - 1);
    if (x->echo)
        rx_echo(x, s);
}

/* ---- helpers ------------------------------------------------------------ */

/* A socket of `type` (both buffer sizes `bufsize`, 0: the default)
 * recording into `x`, cleared. */
static dgram_socket *new_sock(dgram_context *ctx, dgram_type type, int32_t bufsize, rx *x) {
    dgram_socket_options o = test_opts(type);
    o.recv_buffer_size = bufsize;
    o.send_buffer_size = bufsize;
    memset(x, 0, sizeof *x);
    dgram_socket *s = rec_socket_with(ctx, &o, &x->r);
    x->in.socket = s;
    x->r.in = &x->in;
    rec_set_action(&x->r, rx_action, x);
    return s;
}

/* A socket bound to `addr` on an OS-chosen port. */
static dgram_socket *bound_sock(dgram_context *ctx, dgram_type type, const char *addr, int32_t bufsize,
                                rx *x) {
    dgram_socket *s = new_sock(ctx, type, bufsize, x);
    test_bind(s, addr);
    return s;
}

/* Frees `s`, recording into `r`, and says so to `r` (callbacks after this
 * count in r->after_free). */
static void free_rec_socket(dgram_socket *s, sock_rec *r) {
    r->freed = 1;
    dgram_socket_free(s);
}

/* Checks that `r` saw nothing amiss: no callback with another handle or
 * after the free, no 'error' event. */
static void check_rec_clean(const sock_rec *r) {
    CHECK_EQ(r->bad, 0);
    CHECK_EQ(r->after_free, 0);
    CHECK_EQ(r->errors, 0);
}

/* Most tests' cast: a context, and a server and a client of `type` bound to
 * `loop` (buffer sizes as given, 0: the default), each recording into its
 * own rx. */
typedef struct {
    dgram_context *ctx;
    rx srx, crx;
    dgram_socket *server, *client;
    uint16_t sport, cport;
} pair;

static void pair_open(pair *p, dgram_dispatch dispatch, dgram_type type, const char *loop,
                      int32_t server_buf, int32_t client_buf) {
    p->ctx = test_context(dispatch, 0);
    p->server = bound_sock(p->ctx, type, loop, server_buf, &p->srx);
    p->client = bound_sock(p->ctx, type, loop, client_buf, &p->crx);
    p->sport = test_port(p->server);
    p->cport = test_port(p->client);
}

static void pair_close(pair *p) {
    free_rec_socket(p->client, &p->crx.r);
    free_rec_socket(p->server, &p->srx.r);
    test_context_finish(p->ctx);
    check_rec_clean(&p->srx.r);
    check_rec_clean(&p->crx.r);
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
    send_slot sent;
    CHECK_OK(dgram_send(p.client, msg, sizeof msg, p.sport, loop, rec_on_sent,
                        send_slot_init(&sent, &p.crx.r)));
    RUN_UNTIL(p.ctx, p.crx.r.count, 1);

    CHECK_EQ(p.srx.r.count, 1);
    rec_check_msg(&p.srx.r, 0, msg, sizeof msg, loop, p.cport, family);
    CHECK_EQ(p.srx.echo_errors, 0);

    CHECK_EQ(p.crx.r.count, 1);
    rec_check_msg(&p.crx.r, 0, msg, sizeof msg, loop, p.sport, family);

    RUN_UNTIL(p.ctx, p.crx.r.sends, 1);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.r.count, 1);
    CHECK_EQ(p.crx.r.count, 1);
    CHECK_EQ(p.crx.r.sends, 1);
    send_slot_check_ok(&sent, sizeof msg);

    pair_close(&p);
}

static void test_echo_udp4(void) { echo_family(DGRAM_UDP4, "127.0.0.1", DGRAM_IPV4); }
static void test_echo_udp6(void) { echo_family(DGRAM_UDP6, "::1", DGRAM_IPV6); }

/* The send callback: once, later, err NULL, the message's length, send_data
 * (the send_slot given, which it fills in), the sending socket's handle
 * (else the client's sock_rec counts it as bad). */
static void test_send_callback(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);
    int token = 0;
    send_slot sent;

    CHECK_OK(dgram_send(p.client, "0123456789abc", 13, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent, &p.crx.r)));
    CHECK_EQ(test_load(&p.crx.r.sends), 0); /* never inside dgram_send */
    RUN_UNTIL(p.ctx, p.crx.r.sends, 1);
    send_slot_check_ok(&sent, 13);
    CHECK_EQ(p.crx.r.bad, 0);

    /* NULL callback: the datagram still goes out. */
    CHECK_OK(dgram_send(p.client, "no-callback", 11, p.sport, "127.0.0.1", NULL, &token));
    RUN_UNTIL(p.ctx, p.srx.r.count, 2);
    rec_check_text(&p.srx.r, 0, "0123456789abc", "127.0.0.1", p.cport, DGRAM_IPV4);
    rec_check_text(&p.srx.r, 1, "no-callback", "127.0.0.1", p.cport, DGRAM_IPV4);

    test_run_for(p.ctx, 100);
    CHECK_EQ(p.crx.r.sends, 1);
    CHECK_EQ(sent.calls, 1);
    CHECK_EQ(p.srx.r.count, 2);

    pair_close(&p);
}

/* The message buffer may be overwritten as soon as dgram_send returns. */
static void test_buffer_reuse(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);

    char buf[64];
    const char *orig[3] = {"first message", "second one", "third and last"};
    send_slot sent[4];
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "%s", orig[i]);
        CHECK_OK(dgram_send(p.client, buf, strlen(orig[i]), p.sport, "127.0.0.1", rec_on_sent,
                            send_slot_init(&sent[i], &p.crx.r)));
        memset(buf, 'Z', sizeof buf);
    }
    char *heap = malloc(32);
    CHECK(heap != NULL);
    memcpy(heap, "heap bytes", 10);
    CHECK_OK(dgram_send(p.client, heap, 10, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent[3], &p.crx.r)));
    memset(heap, 0, 32);
    free(heap);

    RUN_UNTIL(p.ctx, p.srx.r.count, 4);
    for (int i = 0; i < 3; i++)
        rec_check_text(&p.srx.r, i, orig[i], "127.0.0.1", p.cport, DGRAM_IPV4);
    rec_check_text(&p.srx.r, 3, "heap bytes", "127.0.0.1", p.cport, DGRAM_IPV4);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 4);
    for (int i = 0; i < 3; i++)
        send_slot_check_ok(&sent[i], strlen(orig[i]));
    send_slot_check_ok(&sent[3], 10);

    pair_close(&p);
}

/* Empty datagrams: send with len 0 and sendv with nbufs 0. */
static void test_zero_length(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);
    send_slot sent[5];
    sock_rec *c = &p.crx.r;

    CHECK_OK(dgram_send(p.client, NULL, 0, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent[0], c)));
    CHECK_OK(dgram_send(p.client, "ignored", 0, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent[1], c)));
    CHECK_OK(dgram_sendv(p.client, NULL, 0, p.sport, "127.0.0.1", rec_on_sent,
                         send_slot_init(&sent[2], c)));
    dgram_buf empty = {"x", 0};
    CHECK_OK(dgram_sendv(p.client, &empty, 0, p.sport, "127.0.0.1", rec_on_sent,
                         send_slot_init(&sent[3], c)));
    /* A marker after them: the empties came first, in order. */
    CHECK_OK(dgram_send(p.client, "end", 3, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent[4], c)));

    RUN_UNTIL(p.ctx, p.srx.r.count, 5);
    for (int i = 0; i < 4; i++)
        rec_check_msg(&p.srx.r, i, "", 0, "127.0.0.1", p.cport, DGRAM_IPV4);
    rec_check_text(&p.srx.r, 4, "end", "127.0.0.1", p.cport, DGRAM_IPV4);
    RUN_UNTIL(p.ctx, c->sends, 5);
    for (int i = 0; i < 5; i++) {
        send_slot_check_ok(&sent[i], i < 4 ? 0 : 3);
        CHECK_EQ(sent[i].seq, i);
    }
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.r.count, 5);
    CHECK_EQ(c->sends, 5);

    pair_close(&p);
}

/* dgram_sendv: pieces make ONE datagram; the pieces are copied at call time. */
static void test_sendv(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 0, 0);

    /* "ab" + "" + "cdef" -> "abcdef" */
    char p0[2] = {'a', 'b'}, p2[4] = {'c', 'd', 'e', 'f'};
    dgram_buf three[3] = {{p0, 2}, {"", 0}, {p2, 4}};
    send_slot sent[3];
    CHECK_OK(dgram_sendv(p.client, three, 3, p.sport, "127.0.0.1", rec_on_sent,
                         send_slot_init(&sent[0], &p.crx.r)));
    CHECK_EQ(test_load(&p.crx.r.sends), 0);
    /* copied at call time: mutate the bytes and the descriptors */
    memset(p0, '!', sizeof p0);
    memset(p2, '?', sizeof p2);
    three[0].len = 0;
    three[2].base = NULL;
    RUN_UNTIL(p.ctx, p.srx.r.count, 1);
    rec_check_text(&p.srx.r, 0, "abcdef", "127.0.0.1", p.cport, DGRAM_IPV4);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 1);
    send_slot_check_ok(&sent[0], 6);

    /* a NULL base with len 0 is allowed */
    dgram_buf nulls[3] = {{"xy", 2}, {NULL, 0}, {"z", 1}};
    CHECK_OK(dgram_sendv(p.client, nulls, 3, p.sport, "127.0.0.1", rec_on_sent,
                         send_slot_init(&sent[1], &p.crx.r)));
    RUN_UNTIL(p.ctx, p.srx.r.count, 2);
    rec_check_text(&p.srx.r, 1, "xyz", "127.0.0.1", p.cport, DGRAM_IPV4);

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
    CHECK_OK(dgram_sendv(p.client, hundred, 100, p.sport, "127.0.0.1", rec_on_sent,
                         send_slot_init(&sent[2], &p.crx.r)));
    for (int i = 0; i < 100; i++)
        bytes[i] = 0;
    RUN_UNTIL(p.ctx, p.srx.r.count, 3);
    /* longer than sock_rec keeps: the whole of it, as the last one */
    check_inbox(&p.srx.in, 3, want, 100, "127.0.0.1", p.cport, DGRAM_IPV4);

    RUN_UNTIL(p.ctx, p.crx.r.sends, 3);
    send_slot_check_ok(&sent[1], 3);
    send_slot_check_ok(&sent[2], 100);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(sent[i].seq, i);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.r.count, 3); /* each sendv was one datagram, not several */
    CHECK_EQ(p.crx.r.sends, 3);
    CHECK_EQ(p.crx.r.send_errors, 0);

    pair_close(&p);
}

/* The largest datagram of a family arrives whole, both ways; one byte more
 * is refused. */
static void largest_family(dgram_type type, const char *loop, dgram_family family, size_t max) {
    pair p;
    const int32_t mib = 1 << 20;
    pair_open(&p, DGRAM_DISPATCH_HOST, type, loop, mib, mib);
    p.srx.echo = 1;

    uint8_t *big = malloc(max + 1);
    uint8_t *want = malloc(max + 1);
    CHECK(big != NULL && want != NULL);
    for (size_t i = 0; i <= max; i++)
        big[i] = want[i] = pattern_byte(i);

    send_slot refused, sent;
    CHECK_CODE(dgram_send(p.client, big, max + 1, p.sport, loop, rec_on_sent,
                          send_slot_init(&refused, &p.crx.r)),
               DGRAM_EMSGSIZE);
    CHECK_OK(dgram_send(p.client, big, max, p.sport, loop, rec_on_sent,
                        send_slot_init(&sent, &p.crx.r)));
    memset(big, 0, max + 1);
    RUN_UNTIL(p.ctx, p.crx.r.count, 1);
    CHECK_EQ(p.srx.r.count, 1);
    CHECK_EQ(p.srx.echo_errors, 0);
    check_inbox(&p.srx.in, 1, want, max, loop, p.cport, family);
    check_inbox(&p.crx.in, 1, want, max, loop, p.sport, family);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 1);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.crx.r.sends, 1);
    CHECK_EQ(refused.calls, 0); /* the refused send has no callback */
    send_slot_check_ok(&sent, max);
    CHECK_EQ(p.srx.r.count, 1);

    free(big);
    free(want);
    pair_close(&p);
}

static void test_largest_udp4(void) { largest_family(DGRAM_UDP4, "127.0.0.1", DGRAM_IPV4, 65507); }
static void test_largest_udp6(void) { largest_family(DGRAM_UDP6, "::1", DGRAM_IPV6, 65527); }

/* Sending on an unbound socket binds it: 'listening' first, then the send
 * callback, then the reply. */
static void implicit_family(dgram_type type, const char *loop, const char *any, dgram_family family) {
    pair p;
    p.ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    p.server = bound_sock(p.ctx, type, loop, 0, &p.srx);
    p.srx.echo = 1;
    p.sport = test_port(p.server);
    p.client = new_sock(p.ctx, type, 0, &p.crx); /* bound by its first send */
    dgram_addr a;
    CHECK_CODE(dgram_address(p.client, &a), DGRAM_EBADF);

    send_slot sent[2];
    CHECK_OK(dgram_send(p.client, "implicit", 8, p.sport, loop, rec_on_sent,
                        send_slot_init(&sent[0], &p.crx.r)));
    CHECK_EQ(test_load(&p.crx.r.listen_p), 0);
    CHECK_EQ(test_load(&p.crx.r.sends), 0);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 1);
    CHECK_EQ(p.crx.r.listen_p, 1);
    send_slot_check_ok(&sent[0], 8);
    if (strncmp(p.crx.r.log.text, "lS", 2) != 0) /* the reply may already be in: "lSM" */
        FAIL("event order \"%s\", expected 'listening' then the send callback", p.crx.r.log.text);

    p.cport = test_check_bound(p.client, any, 0, family);
    /* the address seen from inside 'listening' is the same */
    CHECK_OK(p.crx.listen_rc);
    CHECK_STR(p.crx.listen_addr.address, any);
    CHECK_EQ(p.crx.listen_addr.port, p.cport);
    /* a second bind is refused after the implicit one */
    CHECK_CODE(dgram_bind(p.client, 0, NULL, NULL), DGRAM_EALREADY);

    RUN_UNTIL(p.ctx, p.crx.r.count, 1);
    CHECK_EQ(p.srx.r.count, 1);
    rec_check_text(&p.srx.r, 0, "implicit", loop, p.cport, family);
    rec_check_text(&p.crx.r, 0, "implicit", loop, p.sport, family);
    CHECK_STR(p.crx.r.log.text, "lSM");

    /* a second send does not emit 'listening' again */
    CHECK_OK(dgram_send(p.client, "again", 5, p.sport, loop, rec_on_sent,
                        send_slot_init(&sent[1], &p.crx.r)));
    RUN_UNTIL(p.ctx, p.crx.r.count, 2);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 2);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.crx.r.listen_p, 1);
    CHECK_STR(p.crx.r.log.text, "lSMSM");
    rec_check_text(&p.crx.r, 1, "again", loop, p.sport, family);
    CHECK_EQ(test_port(p.client), p.cport);

    pair_close(&p);
}

static void test_implicit_bind_udp4(void) { implicit_family(DGRAM_UDP4, "127.0.0.1", "0.0.0.0", DGRAM_IPV4); }
static void test_implicit_bind_udp6(void) { implicit_family(DGRAM_UDP6, "::1", "::", DGRAM_IPV6); }

/* address NULL means the loopback of the family; "localhost" works too. */
static void default_addr_family(dgram_type type, const char *loop, dgram_family family) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, type, loop, 0, 0);

    send_slot sent[3];
    CHECK_OK(dgram_send(p.client, "default", 7, p.sport, NULL, rec_on_sent,
                        send_slot_init(&sent[0], &p.crx.r)));
    CHECK_OK(dgram_send(p.client, "localhost", 9, p.sport, "localhost", rec_on_sent,
                        send_slot_init(&sent[1], &p.crx.r)));
    dgram_buf b = {"vec", 3};
    CHECK_OK(dgram_sendv(p.client, &b, 1, p.sport, NULL, rec_on_sent,
                         send_slot_init(&sent[2], &p.crx.r)));
    RUN_UNTIL(p.ctx, p.srx.r.count, 3);
    rec_check_text(&p.srx.r, 0, "default", loop, p.cport, family);
    rec_check_text(&p.srx.r, 1, "localhost", loop, p.cport, family);
    rec_check_text(&p.srx.r, 2, "vec", loop, p.cport, family);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 3);
    send_slot_check_ok(&sent[0], 7);
    send_slot_check_ok(&sent[1], 9);
    send_slot_check_ok(&sent[2], 3);

    pair_close(&p);
}

static void test_default_address_udp4(void) { default_addr_family(DGRAM_UDP4, "127.0.0.1", DGRAM_IPV4); }
static void test_default_address_udp6(void) { default_addr_family(DGRAM_UDP6, "::1", DGRAM_IPV6); }

/* 1000 numbered datagrams arrive in order; their callbacks come in call
 * order. Sent in windows of 100 so a slow receiver (valgrind) never has its
 * kernel buffer overflow: loopback drops silently when it is full. */
static void test_order(void) {
    enum { N = 1000, WINDOW = 100 };
    static send_slot sent[N];
    pair p;
    pair_open(&p, DGRAM_DISPATCH_HOST, DGRAM_UDP4, "127.0.0.1", 1 << 20, 1 << 20);
    p.srx.seq_prefix = "#";
    p.srx.seq_digits = 4;
    p.srx.seq_port = p.cport;

    for (int w = 0; w < N; w += WINDOW) {
        for (int i = w; i < w + WINDOW; i++) {
            char m[16];
            int n = snprintf(m, sizeof m, "#%04d", i);
            CHECK_OK(dgram_send(p.client, m, (size_t)n, p.sport, "127.0.0.1", rec_on_sent,
                                send_slot_init(&sent[i], &p.crx.r)));
        }
        RUN_UNTIL(p.ctx, p.srx.r.count, w + WINDOW);
    }
    RUN_UNTIL(p.ctx, p.crx.r.sends, N);
    test_run_for(p.ctx, 100);
    CHECK_EQ(p.srx.r.count, N); /* each one checked as it came (rx_check_seq) */
    CHECK_EQ(p.crx.r.sends, N);
    for (int i = 0; i < N; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "#%04d", i);
        if (sent[i].seq != i)
            FAIL("the callback of send %d came as completion %d", i, sent[i].seq);
        send_slot_check_ok(&sent[i], (size_t)n);
    }

    pair_close(&p);
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
    p.srx.seq_prefix = "";
    p.srx.seq_digits = 3;
    p.srx.seq_port = p.cport;
    g_rec.client = p.client;
    g_rec.port = p.sport;

    CHECK_OK(dgram_send(p.client, "000", 3, g_rec.port, "127.0.0.1", on_recursive_sent, (void *)(uintptr_t)0));
    RUN_UNTIL(p.ctx, g_rec.count, RECURSIVE_N);
    RUN_UNTIL(p.ctx, p.srx.r.count, RECURSIVE_N);
    test_run_for(p.ctx, 100);
    CHECK_EQ(g_rec.count, RECURSIVE_N);
    CHECK_EQ(g_rec.send_errors, 0);
    CHECK_EQ(g_rec.reentered, 0);
    CHECK_EQ(g_rec.sync_completion, 0);
    for (int i = 0; i < RECURSIVE_N; i++)
        CHECK_EQ(g_rec.calls[i], 1);
    /* each one checked as it came (rx_check_seq): "000" to "099", in order */
    CHECK_EQ(p.srx.r.count, RECURSIVE_N);

    pair_close(&p);
}

/* One echo server, 5 clients with 200 datagrams each: every client gets
 * exactly its own 200 back. */
#define CLIENTS 5
#define PER_CLIENT 200

/* A client: which of its datagrams came back, each checked as it comes. */
typedef struct {
    sock_rec r;
    inbox in;
    int id;
    uint16_t server_port;
    int got[PER_CLIENT];
    int foreign; /* datagrams not ours, or from elsewhere */
} mc_client;

static void mc_client_action(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    mc_client *c = r->user;
    if (letter != 'M')
        return;
    const inbox *in = &c->in;
    char text[32];
    int id = -1, n = -1;
    char extra;
    if (in->len < sizeof text) {
        memcpy(text, in->data, in->len);
        text[in->len] = '\0';
        if (sscanf(text, "c%d-%d%c", &id, &n, &extra) != 2)
            id = -1;
    }
    if (id != c->id || n < 0 || n >= PER_CLIENT || in->rinfo.port != c->server_port ||
        strcmp(in->rinfo.address, "127.0.0.1") != 0 || in->rinfo.family != DGRAM_IPV4)
        c->foreign++;
    else
        c->got[n]++;
}

/* The server: echoes everything, and counts the datagrams of each client,
 * checked as they come. */
typedef struct {
    rx x;
    uint16_t cports[CLIENTS];
    int per_port[CLIENTS];
} mc_server;

static void mc_server_action(sock_rec *r, dgram_socket *s, char letter) {
    mc_server *m = r->user;
    if (letter != 'M')
        return;
    const inbox *in = &m->x.in;
    int i = test_load(&r->count) - 1;
    int k;
    for (k = 0; k < CLIENTS; k++)
        if (in->rinfo.port == m->cports[k])
            break;
    if (k == CLIENTS)
        FAIL("server got datagram %d from unknown port %u", i, in->rinfo.port);
    /* the content names the client that sent it */
    char prefix[8];
    int n = snprintf(prefix, sizeof prefix, "c%d-", k);
    CHECK(in->len > (size_t)n && memcmp(in->data, prefix, (size_t)n) == 0);
    m->per_port[k]++;
    rx_echo(&m->x, s);
}

static void test_one_server_many_clients(void) {
    enum { WINDOW = 20 };
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    /* static: six inboxes of 64 KiB each */
    static mc_server srv;
    dgram_socket *server = bound_sock(ctx, DGRAM_UDP4, "127.0.0.1", 1 << 20, &srv.x);
    rec_set_action(&srv.x.r, mc_server_action, &srv);
    uint16_t sport = test_port(server);

    static mc_client clients[CLIENTS];
    static send_slot sent[CLIENTS][PER_CLIENT];
    dgram_socket *cs[CLIENTS];
    for (int k = 0; k < CLIENTS; k++) {
        mc_client *c = &clients[k];
        dgram_socket_options o = test_opts(DGRAM_UDP4);
        o.recv_buffer_size = 1 << 20;
        cs[k] = rec_socket_with(ctx, &o, &c->r);
        c->in.socket = cs[k];
        c->r.in = &c->in;
        rec_set_action(&c->r, mc_client_action, c);
        c->id = k;
        c->server_port = sport;
        srv.cports[k] = test_bind(cs[k], "127.0.0.1");
    }

    for (int w = 0; w < PER_CLIENT; w += WINDOW) {
        for (int i = w; i < w + WINDOW; i++) {
            for (int k = 0; k < CLIENTS; k++) {
                char m[32];
                int n = snprintf(m, sizeof m, "c%d-%d", k, i);
                CHECK_OK(dgram_send(cs[k], m, (size_t)n, sport, "127.0.0.1", rec_on_sent,
                                    send_slot_init(&sent[k][i], &clients[k].r)));
            }
        }
        for (int k = 0; k < CLIENTS; k++)
            RUN_UNTIL(ctx, clients[k].r.count, w + WINDOW);
    }
    for (int k = 0; k < CLIENTS; k++)
        RUN_UNTIL(ctx, clients[k].r.sends, PER_CLIENT);
    test_run_for(ctx, 200);

    for (int k = 0; k < CLIENTS; k++) {
        CHECK_EQ(clients[k].r.sends, PER_CLIENT);
        CHECK_EQ(clients[k].r.send_errors, 0);
        for (int i = 0; i < PER_CLIENT; i++)
            CHECK_EQ(sent[k][i].calls, 1);
    }
    CHECK_EQ(srv.x.echo_errors, 0);
    CHECK_EQ(srv.x.r.count, CLIENTS * PER_CLIENT);
    for (int k = 0; k < CLIENTS; k++) {
        CHECK_EQ(srv.per_port[k], PER_CLIENT);
        CHECK_EQ(clients[k].r.count, PER_CLIENT);
        CHECK_EQ(clients[k].foreign, 0);
        for (int i = 0; i < PER_CLIENT; i++)
            if (clients[k].got[i] != 1)
                FAIL("client %d got its datagram %d %d times", k, i, clients[k].got[i]);
    }

    for (int k = 0; k < CLIENTS; k++)
        free_rec_socket(cs[k], &clients[k].r);
    free_rec_socket(server, &srv.x.r);
    test_context_finish(ctx);
    check_rec_clean(&srv.x.r);
    for (int k = 0; k < CLIENTS; k++)
        check_rec_clean(&clients[k].r);
}

/* The udp4 echo with callbacks on the I/O thread. */
static void test_echo_io_thread(void) {
    pair p;
    pair_open(&p, DGRAM_DISPATCH_IO_THREAD, DGRAM_UDP4, "127.0.0.1", 0, 0);
    p.srx.echo = 1;

    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = pattern_byte(i + 11);
    send_slot sent;
    CHECK_OK(dgram_send(p.client, msg, sizeof msg, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent, &p.crx.r)));
    WAIT_UNTIL(p.crx.r.count, 1);
    WAIT_UNTIL(p.crx.r.sends, 1);
    CHECK_EQ(test_load(&p.srx.r.count), 1);
    check_inbox(&p.srx.in, 1, msg, sizeof msg, "127.0.0.1", p.cport, DGRAM_IPV4);
    CHECK_EQ(test_load(&p.srx.echo_errors), 0);
    check_inbox(&p.crx.in, 1, msg, sizeof msg, "127.0.0.1", p.sport, DGRAM_IPV4);
    send_slot_check_ok(&sent, sizeof msg);
    /* dispatch has nothing to do in this mode */
    CHECK_EQ(dgram_context_dispatch(p.ctx, 0), 0);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&p.srx.r.count), 1);
    CHECK_EQ(test_load(&p.crx.r.count), 1);
    CHECK_EQ(test_load(&p.crx.r.sends), 1);
    CHECK_EQ(test_load(&sent.calls), 1);

    pair_close(&p);
}

/* A udp6 socket with ipv6_only off, bound to "::", receives IPv4 traffic,
 * with the sender as an IPv4-mapped address. */
static void test_dual_stack(void) {
    pair p;
    p.ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    p.server = bound_sock(p.ctx, DGRAM_UDP6, "::", 0, &p.srx); /* ipv6_only off */
    p.srx.echo = 1;
    p.sport = test_port(p.server);
    p.client = bound_sock(p.ctx, DGRAM_UDP4, "127.0.0.1", 0, &p.crx);
    p.cport = test_port(p.client);

    send_slot sent;
    CHECK_OK(dgram_send(p.client, "mapped", 6, p.sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent, &p.crx.r)));
    RUN_UNTIL(p.ctx, p.crx.r.count, 1);
    CHECK_EQ(p.srx.r.count, 1);
    rec_check_text(&p.srx.r, 0, "mapped", "::ffff:127.0.0.1", p.cport, DGRAM_IPV6);
    /* the reply to the mapped address reaches the udp4 client */
    CHECK_EQ(p.srx.echo_errors, 0);
    rec_check_text(&p.crx.r, 0, "mapped", "127.0.0.1", p.sport, DGRAM_IPV4);
    RUN_UNTIL(p.ctx, p.crx.r.sends, 1);
    send_slot_check_ok(&sent, 6);

    pair_close(&p);
}

TEST_LIST(
    TEST_ENTRY(test_echo_udp4),
    TEST_ENTRY(test_echo_udp6),
    TEST_ENTRY(test_send_callback),
    TEST_ENTRY(test_buffer_reuse),
    TEST_ENTRY(test_zero_length),
    TEST_ENTRY(test_sendv),
    TEST_ENTRY(test_largest_udp4),
    TEST_ENTRY(test_largest_udp6),
    TEST_ENTRY(test_implicit_bind_udp4),
    TEST_ENTRY(test_implicit_bind_udp6),
    TEST_ENTRY(test_default_address_udp4),
    TEST_ENTRY(test_default_address_udp6),
    TEST_ENTRY(test_order),
    TEST_ENTRY(test_send_from_send_callback),
    TEST_ENTRY(test_one_server_many_clients),
    TEST_ENTRY(test_echo_io_thread),
    TEST_ENTRY(test_dual_stack),
)
