/*
 * Faults: errors the network hands back, and callbacks that misbehave.
 *
 * Errors, and where each one reaches the host (dgram.h: "Result" of
 * dgram_send / dgram_bind):
 *   - EMSGSIZE over the UDP limit (65508 bytes on udp4, 65528 on udp6) is
 *     the result of the dgram_send/dgram_sendv call itself: nothing is sent,
 *     no callback or event follows, an unbound socket stays unbound.
 *   - EADDRNOTAVAIL for a bind address that is not local is the result of
 *     dgram_bind itself; no 'listening' follows, and bind may be retried.
 *   - Errors sendmsg(2) returns (ENETUNREACH without a route, EACCES for a
 *     broadcast without SO_BROADCAST, EMSGSIZE over an interface MTU with
 *     DF) do not fail the dgram_send call (it returns 0: the send was
 *     accepted); the send completes later with the error, through its
 *     callback (dgram_error: code, syscall "send", the destination), or,
 *     without a callback, as one 'error' event; with no 'error' handler
 *     either, it is dropped (it still counts as one dispatched event).
 *   - ICMP port unreachable after a send to a closed port: Linux reports it
 *     to a UDP socket only when the socket is connected or has IP_RECVERR.
 *     The sockets here are not connected (no dgram_connect) and libdgram
 *     does not set IP_RECVERR, so ECONNREFUSED never surfaces: the send
 *     completes OK, no 'error' event comes, and later sends work. Where the
 *     case can make a namespace it proves the ICMP message really came back
 *     (the namespace's own ICMP counters).
 *
 * Misbehaving callbacks, in both dispatch modes: a message callback that
 * closes and frees the context's other sockets, one that frees its own
 * socket, one that sends 500 datagrams, callbacks of every kind that call
 * dgram_context_dispatch / dgram_context_run (DGRAM_EBUSY at once in both
 * modes: dispatch never nests), and dgram_context_free from a message or
 * send callback.
 *
 * Network safety: unicast only to 127.0.0.1 / ::1 in the machine's
 * namespace. Routes, broadcast (198.51.100.255 and 255.255.255.255), an MTU
 * change and sends to documentation addresses (203.0.113.1, 2001:db8::1)
 * happen only in a private network namespace that the case needing it moves
 * its whole process into before anything else (test_netns_isolate_or_skip:
 * skipped without root, a failure when DGRAM_TESTS_NO_SKIP is set).
 * Binding to 198.51.100.77 / 2001:db8::77 sends nothing, so it is done in
 * the machine's namespace. Every bound port is 0 (the OS picks).
 *
 * Every socket records into a sock_rec (recorder.h); what a socket does
 * from inside its callbacks is its record's action (act_on, with an `act`
 * as `user`). Send completions have slots of their own (send_slot, per
 * send: its code, length, error address) that also put 'S' (sent) or 'X'
 * (failed) in the sending socket's log and run its action, so one log
 * gives the order of every callback of a socket.
 */
#include "recorder.h"
#include "test_runner.h"

#include <netinet/in.h>

#define MANY 500

/* ---- actions from inside callbacks ---------------------------------------------- */

enum act_kind {
    ACT_NONE = 0,
    ACT_CLOSE_OTHERS,      /* first 'message': close one socket, free one, close another */
    ACT_FREE_SELF,         /* first 'message': dgram_socket_free(self) */
    ACT_SEND_MANY,         /* first 'message': MANY sends with callbacks */
    ACT_FREE_CTX,          /* first 'message': dgram_context_free */
    ACT_FREE_CTX_IN_SEND,  /* first send completion: dgram_context_free */
    ACT_FREE_SELF_IN_SEND, /* first send completion: dgram_socket_free(self) */
    ACT_NESTED,            /* every callback: dispatch and run, nested */
    ACT_TRACK,             /* every 'message': a 4-byte index 0..MANY-1, from r->in */
};

/* The action of one socket: the `user` of its sock_rec. */
typedef struct {
    sock_rec *rec;      /* whose action this is, once act_start published it */
    int kind;
    dgram_context *ctx; /* for the actions; NULL once the action freed it */
    int acted;          /* the one-time action ran (published last) */
    int rc[2];          /* what the library calls of ACT_CLOSE_OTHERS returned */
    sock_rec *close_other, *free_other, *close_other2; /* ACT_CLOSE_OTHERS */
    /* ACT_CLOSE_OTHERS, ACT_FREE_SELF: when set (and initialised for the
     * sending socket), a send with this slot to 127.0.0.1:owed_port from
     * close_other2 / the socket itself, just before it is closed / freed:
     * its completion is owed at that moment. */
    send_slot *owed;
    uint16_t owed_port;
    int owed_rc;        /* what that send returned */
    int *stop_flag;     /* set: any 'message' of this socket now is a fault */
    int after_stop;

    /* ACT_SEND_MANY */
    uint16_t many_port;
    const char *many_addr;
    send_slot *many_slots;
    int many_failed;    /* sends refused at the call */
    int many_first_rc;

    /* ACT_NESTED */
    int nested_want;    /* what every nested call must return */
    int nested_calls;   /* callbacks that made them (published last) */
    int nested_bad;
    int nested_first_bad; /* the first wrong result */

    /* ACT_TRACK */
    int seen[MANY];
    int dup, out_of_range;
    int tracked;        /* datagrams looked at (published last) */
} act;

static void nested_calls(act *x) {
    if (x->ctx == NULL)
        return;
    int got[5];
    got[0] = dgram_context_dispatch(x->ctx, 0);
    got[1] = dgram_context_dispatch(x->ctx, 1);
    got[2] = dgram_context_run(x->ctx, 0);
    got[3] = dgram_context_run(x->ctx, -1); /* must return at once, not wait */
    got[4] = dgram_context_run(x->ctx, 50);
    for (int i = 0; i < 5; i++) {
        if (got[i] != x->nested_want) {
            if (x->nested_bad++ == 0)
                x->nested_first_bad = got[i];
        }
    }
    test_add(&x->nested_calls, 1);
}

static void track(sock_rec *r, act *x) {
    int32_t idx = -1;
    if (r->in->len == sizeof idx)
        memcpy(&idx, r->in->data, sizeof idx);
    if (idx < 0 || idx >= MANY)
        x->out_of_range++;
    else if (x->seen[idx]++)
        x->dup++;
    test_add(&x->tracked, 1);
}

static void act_on(sock_rec *r, dgram_socket *s, char letter) {
    act *x = r->user;
    bool message = letter == 'M', sent = letter == 'S' || letter == 'X';
    if (message && x->stop_flag && test_load(x->stop_flag))
        x->after_stop++;
    if (x->kind == ACT_NESTED)
        nested_calls(x);
    if (x->kind == ACT_TRACK && message)
        track(r, x);
    if (x->acted)
        return;
    switch (x->kind) {
    case ACT_CLOSE_OTHERS:
        if (!message)
            return;
        if (x->stop_flag)
            __atomic_store_n(x->stop_flag, 1, __ATOMIC_SEQ_CST);
        x->rc[0] = dgram_close(x->close_other->s, rec_on_close_once);
        x->free_other->freed = 1;
        dgram_socket_free(x->free_other->s);
        if (x->owed)
            x->owed_rc = dgram_send(x->close_other2->s, "d", 1, x->owed_port, "127.0.0.1",
                                    rec_on_sent, x->owed);
        x->rc[1] = dgram_close(x->close_other2->s, rec_on_close_once);
        break;
    case ACT_FREE_SELF:
        if (!message)
            return;
        if (x->owed)
            x->owed_rc = dgram_send(s, "a", 1, x->owed_port, "127.0.0.1", rec_on_sent, x->owed);
        r->freed = 1;
        dgram_socket_free(s);
        break;
    case ACT_SEND_MANY:
        if (!message)
            return;
        for (int32_t i = 0; i < MANY; i++) {
            int rc = dgram_send(s, &i, sizeof i, x->many_port, x->many_addr, rec_on_sent,
                                send_slot_init(&x->many_slots[i], r));
            if (rc != 0 && x->many_failed++ == 0)
                x->many_first_rc = rc;
        }
        break;
    case ACT_FREE_CTX:
        if (!message)
            return;
        if (x->stop_flag)
            __atomic_store_n(x->stop_flag, 1, __ATOMIC_SEQ_CST);
        dgram_context_free(x->ctx);
        x->ctx = NULL;
        break;
    case ACT_FREE_CTX_IN_SEND:
        if (!sent)
            return;
        dgram_context_free(x->ctx);
        x->ctx = NULL;
        break;
    case ACT_FREE_SELF_IN_SEND:
        if (!sent)
            return;
        r->freed = 1;
        dgram_socket_free(s);
        break;
    default:
        return;
    }
    test_add(&x->acted, 1);
}

/* Prepares `x` (cleared) as the action of `r`'s socket in `ctx`; the case
 * fills in the rest, then act_start publishes it. */
static act *act_init(act *x, sock_rec *r, int kind, dgram_context *ctx) {
    memset(x, 0, sizeof *x);
    x->rec = r;
    x->kind = kind;
    x->ctx = ctx;
    return x;
}

/* Publishes `x` as its socket's action: its callbacks, on whatever thread,
 * see every field set before. */
static void act_start(act *x) { rec_set_action(x->rec, act_on, x); }

/* Makes `r` store every datagram whole in `in` too (cleared). */
static void keep_whole(sock_rec *r, inbox *in) {
    memset(in, 0, sizeof *in);
    in->socket = r->s;
    r->in = in;
}

/* Waits for *counter >= want: by dispatching (host mode) or not (I/O thread). */
#define AWAIT(io, ctx, counter, want)                                          \
    do {                                                                       \
        if (io)                                                                \
            WAIT_UNTIL(counter, want);                                         \
        else                                                                   \
            RUN_UNTIL(ctx, counter, want);                                     \
    } while (0)

/* Lets `ms` pass, dispatching in host mode: to show nothing more comes. */
static void settle(bool io, dgram_context *ctx, int ms) {
    if (io)
        test_sleep_ms(ms);
    else
        test_run_for(ctx, ms);
}

/* Binds r's socket to address:0 with the one-shot callback and waits for
 * its 'listening' ("lL"); returns the port. */
static uint16_t bind_lL(bool io, dgram_context *ctx, sock_rec *r, const char *address) {
    CHECK_OK(dgram_bind(r->s, 0, address, rec_on_listening_once));
    AWAIT(io, ctx, r->listen_once, 1);
    CHECK_STR(r->log.text, "lL");
    uint16_t port = test_port(r->s);
    CHECK(port != 0);
    return port;
}

static void check_slot_error(const send_slot *sl, int code, size_t length, const char *to,
                             uint16_t port, dgram_family family) {
    send_slot_check_error(sl, code, length, "send");
    CHECK_ADDR(&sl->addr, to, port, family);
}

static void check_event_error(const sock_rec *r, int code, const char *to, uint16_t port,
                              dgram_family family) {
    CHECK_CODE(r->err_code, code);
    CHECK_STR(r->err_syscall, "send");
    CHECK_ADDR(&r->err_addr, to, port, family);
}

static dgram_family family_of(dgram_type type) {
    return type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6;
}

/* ---- shared pieces ------------------------------------------------------------ */

/* A context that is never dispatched, with a udp4 sender (unbound: its first
 * send binds it) and a udp4 sink on 127.0.0.1 for sends that must go
 * somewhere. Made in the machine's namespace by the cases that need them
 * (sender_open), ended by sender_close. */
static dgram_context *g_tx;
static dgram_socket *g_txs, *g_sink;
static uint16_t g_sink_port;

static void sender_open(void) {
    g_tx = test_context(DGRAM_DISPATCH_HOST, 0);
    g_txs = test_socket(g_tx, DGRAM_UDP4, NULL, NULL);
    g_sink = test_socket(g_tx, DGRAM_UDP4, NULL, NULL);
    g_sink_port = test_bind(g_sink, "127.0.0.1");
}

static void sender_close(void) {
    dgram_socket_free(g_txs);
    dgram_socket_free(g_sink);
    test_context_finish(g_tx);
}

/* Sends `n` datagrams "m<i>" from g_txs to 127.0.0.1:port. */
static void blast(uint16_t port, int n) {
    for (int i = 0; i < n; i++) {
        char m[16];
        int len = snprintf(m, sizeof m, "m%d", i);
        CHECK_OK(dgram_send(g_txs, m, (size_t)len, port, "127.0.0.1", NULL, NULL));
    }
}

static uint8_t g_big[65536];

static void fill_big(void) {
    for (size_t i = 0; i < sizeof g_big; i++)
        g_big[i] = (uint8_t)(i * 13 + 5);
}

/* The ICMP cases check the counters only in a namespace of their own, and
 * without one still check the rest. */
static bool isolate_if_possible(void) {
    if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0)
        return false;
    test_link_up("lo");
    return true;
}

/* For a case that configures its private namespace with `ip`. */
static int isolate_with_ip_or_skip(void) {
    if (system("command -v ip >/dev/null 2>&1") != 0)
        test_skip("needs `ip` (iproute2)");
    return test_netns_isolate_or_skip();
}

/* ---- EMSGSIZE at the call ------------------------------------------------------- */

static void emsgsize_at_call(dgram_type type) {
    fill_big();
    const char *lo = test_loopback(type);
    size_t max = type == DGRAM_UDP4 ? 65507 : 65527;
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r, a;
    inbox in;
    dgram_socket *sr = rec_socket(ctx, type, &r);
    keep_whole(&r, &in);
    uint16_t pr = bind_lL(false, ctx, &r, lo);
    dgram_socket *sa = rec_socket(ctx, type, &a); /* unbound */

    send_slot sl;
    send_slot_init(&sl, &a);
    CHECK_CODE(dgram_send(sa, g_big, max + 1, pr, lo, rec_on_sent, &sl), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_send(sa, g_big, max + 1, pr, lo, NULL, NULL), DGRAM_EMSGSIZE);
    dgram_buf two[2] = {{g_big, 40000}, {g_big + 40000, max + 1 - 40000}};
    CHECK_CODE(dgram_sendv(sa, two, 2, pr, lo, rec_on_sent, &sl), DGRAM_EMSGSIZE);
    /* Refused before the implicit bind: still unbound, nothing pending. */
    dgram_addr where;
    CHECK_CODE(dgram_address(sa, &where), DGRAM_EBADF);
    CHECK_EQ(dgram_context_active(ctx), 1); /* r, bound */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 0);
    test_run_for(ctx, 50);
    CHECK_EQ(sl.calls, 0);
    CHECK_STR(a.log.text, "");
    CHECK_EQ(r.count, 0);

    /* The largest datagram goes, and arrives whole. */
    CHECK_OK(dgram_send(sa, g_big, max, pr, lo, rec_on_sent, &sl));
    RUN_UNTIL(ctx, a.sends, 1);
    RUN_UNTIL(ctx, r.count, 1);
    CHECK_EQ(sl.calls, 1);
    CHECK_CODE(sl.code, 0);
    CHECK_EQ(sl.length, max);
    CHECK_STR(a.log.text, "lS"); /* the implicit bind's 'listening', then the send */
    check_inbox(&in, 1, g_big, max, lo, test_port(sa), family_of(type));
    test_run_for(ctx, 20);
    CHECK_EQ(r.count, 1);
    CHECK_EQ(a.errors + r.errors, 0);
    CHECK_EQ(a.bad + r.bad, 0);

    dgram_socket_free(sa);
    dgram_socket_free(sr);
    test_context_finish(ctx);
}

static void test_emsgsize_at_call_udp4(void) { emsgsize_at_call(DGRAM_UDP4); }
static void test_emsgsize_at_call_udp6(void) { emsgsize_at_call(DGRAM_UDP6); }

/* ---- EADDRNOTAVAIL --------------------------------------------------------------- */

/* Binding sends nothing: a foreign address is safe in the machine's
 * namespace. */
static void bind_foreign_address(dgram_type type) {
    const char *foreign = type == DGRAM_UDP4 ? "198.51.100.77" : "2001:db8::77";
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec a;
    dgram_socket *sa = rec_socket(ctx, type, &a);
    CHECK_CODE(dgram_bind(sa, 0, foreign, rec_on_unexpected), DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(dgram_bind(sa, 0, foreign, NULL), DGRAM_EADDRNOTAVAIL);
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_addr where;
    CHECK_CODE(dgram_address(sa, &where), DGRAM_EBADF); /* not bound */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 0);
    test_run_for(ctx, 50);
    CHECK_STR(a.log.text, ""); /* no 'listening', no 'error' */

    /* Bind may be tried again, and then works. */
    bind_lL(false, ctx, &a, test_loopback(type));
    test_check_bound(sa, test_loopback(type), 0, family_of(type));
    test_run_for(ctx, 20);
    CHECK_STR(a.log.text, "lL");
    CHECK_EQ(a.unexpected, 0);
    CHECK_EQ(a.bad, 0);
    dgram_socket_free(sa);
    test_context_finish(ctx);
}

static void test_bind_foreign_address_udp4(void) { bind_foreign_address(DGRAM_UDP4); }
static void test_bind_foreign_address_udp6(void) { bind_foreign_address(DGRAM_UDP6); }

/* ---- ICMP port unreachable ----------------------------------------------------- */

/* A counter of the calling thread's network namespace: "Icmp:" columns of
 * /proc/.../net/snmp, or a line of net/snmp6 for names starting "Icmp6". */
static long long snmp_counter(const char *name) {
    bool v6 = strncmp(name, "Icmp6", 5) == 0;
    FILE *f = fopen(v6 ? "/proc/thread-self/net/snmp6" : "/proc/thread-self/net/snmp", "r");
    CHECK(f != NULL);
    char line[4096], head[4096];
    long long value = -1;
    head[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (v6) {
            char key[128];
            long long v;
            if (sscanf(line, "%127s %lld", key, &v) == 2 && strcmp(key, name) == 0)
                value = v;
        } else if (strncmp(line, "Icmp: ", 6) == 0) {
            if (head[0] == '\0') {
                snprintf(head, sizeof head, "%s", line);
                continue;
            }
            /* the values line: find the column of `name` in the header */
            char *hs, *vs;
            char *h = strtok_r(head, " \n", &hs);
            char *v = strtok_r(line, " \n", &vs);
            while (h && v) {
                if (strcmp(h, name) == 0)
                    value = atoll(v);
                h = strtok_r(NULL, " \n", &hs);
                v = strtok_r(NULL, " \n", &vs);
            }
        }
    }
    fclose(f);
    if (value < 0)
        FAIL("counter %s not found", name);
    return value;
}

/* Dispatches until the namespace's counters `out` and `in` reached the
 * values given. */
static void run_until_counters(dgram_context *ctx, const char *out, long long want_out,
                               const char *in, long long want_in) {
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (snmp_counter(out) < want_out || snmp_counter(in) < want_in) {
        if (test_now_ms() > deadline)
            FAIL("timed out waiting for %s >= %lld (now %lld), %s >= %lld (now %lld)", out,
                 want_out, snmp_counter(out), in, want_in, snmp_counter(in));
        CHECK(dgram_context_dispatch(ctx, 0) >= 0);
        test_sleep_ms(1);
    }
    CHECK_EQ(snmp_counter(out), want_out);
    CHECK_EQ(snmp_counter(in), want_in);
}

/* Sends to a closed port of the loopback. In a private namespace the
 * namespace's ICMP counters prove that the port unreachable message was
 * sent and received: the socket was told, and ignored it, because it is not
 * connected (see the top of this file). Without one (not root) the case
 * runs in the machine's namespace, then reports the counters skipped. */
static void icmp_port_unreachable(dgram_type type) {
    bool counters = isolate_if_possible();
    const char *lo = test_loopback(type);
    dgram_family family = family_of(type);
    const char *out = type == DGRAM_UDP4 ? "OutDestUnreachs" : "Icmp6OutDestUnreachs";
    const char *in = type == DGRAM_UDP4 ? "InDestUnreachs" : "Icmp6InDestUnreachs";
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);

    /* A port nobody listens on: bound by the OS, then released. */
    dgram_socket *z = test_socket(ctx, type, NULL, NULL);
    uint16_t closed = test_bind(z, lo);
    dgram_socket_free(z);

    sock_rec a, r;
    dgram_socket *sa = rec_socket(ctx, type, &a);
    uint16_t pa = bind_lL(false, ctx, &a, lo);
    dgram_socket *sr = rec_socket(ctx, type, &r);
    uint16_t pr = bind_lL(false, ctx, &r, lo);
    long long out0 = counters ? snmp_counter(out) : 0, in0 = counters ? snmp_counter(in) : 0;

    send_slot s1, s2, s3;
    CHECK_OK(dgram_send(sa, "knock", 5, closed, lo, rec_on_sent, send_slot_init(&s1, &a)));
    RUN_UNTIL(ctx, a.sends, 1);
    if (counters)
        run_until_counters(ctx, out, out0 + 1, in, in0 + 1);
    test_run_for(ctx, 50);
    /* A second send to the same closed port: no ECONNREFUSED here either (a
     * connected socket would get it from this send). */
    CHECK_OK(dgram_send(sa, "again", 5, closed, lo, rec_on_sent, send_slot_init(&s2, &a)));
    RUN_UNTIL(ctx, a.sends, 2);
    if (counters)
        run_until_counters(ctx, out, out0 + 2, in, in0 + 2);
    test_run_for(ctx, 100);
    CHECK_EQ(s1.calls, 1);
    CHECK_CODE(s1.code, 0);
    CHECK_EQ(s1.length, 5);
    CHECK_EQ(s2.calls, 1);
    CHECK_CODE(s2.code, 0);
    CHECK_STR(a.log.text, "lLSS"); /* no 'error' (send or recvmsg) */
    CHECK_EQ(a.errors, 0);

    /* The socket still sends and receives. */
    CHECK_OK(dgram_send(sa, "alive", 5, pr, lo, rec_on_sent, send_slot_init(&s3, &a)));
    RUN_UNTIL(ctx, r.count, 1);
    RUN_UNTIL(ctx, a.sends, 3);
    CHECK_CODE(s3.code, 0);
    rec_check_text(&r, 0, "alive", lo, pa, family);
    CHECK_OK(dgram_send(sr, "back", 4, pa, lo, NULL, NULL));
    RUN_UNTIL(ctx, a.count, 1);
    rec_check_text(&a, 0, "back", lo, pr, family);
    test_run_for(ctx, 20);
    CHECK_STR(a.log.text, "lLSSSM");
    CHECK_STR(r.log.text, "lLM");
    CHECK_EQ(dgram_context_active(ctx), 2);
    CHECK_EQ(a.bad + r.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sr);
    test_context_finish(ctx);
    if (!counters)
        test_skip("checking the ICMP counters needs root and a network namespace");
}

static void test_icmp_port_unreachable_udp4(void) { icmp_port_unreachable(DGRAM_UDP4); }
static void test_icmp_port_unreachable_udp6(void) { icmp_port_unreachable(DGRAM_UDP6); }

/* ---- ENETUNREACH ------------------------------------------------------------------- */

/* In a namespace with only `lo` there is no route to 203.0.113.1 or
 * 2001:db8::1: sendmsg fails with ENETUNREACH. */
static void enetunreach(dgram_type type) {
    int ns = test_netns_isolate_or_skip();
    const char *lo = test_loopback(type);
    const char *dst = type == DGRAM_UDP4 ? "203.0.113.1" : "2001:db8::1";
    dgram_family family = family_of(type);
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r, a, b;
    dgram_socket *sr = rec_socket(ctx, type, &r);
    uint16_t pr = bind_lL(false, ctx, &r, lo);
    uint16_t port = pr; /* any port the OS picked: the destination is unreachable */
    dgram_socket *sa = rec_socket(ctx, type, &a); /* unbound */
    act ax;
    act_init(&ax, &a, ACT_NESTED, ctx)->nested_want = DGRAM_EBUSY;
    act_start(&ax);

    /* 1. With a callback: dgram_send accepts it; the callback gets the error. */
    send_slot s1;
    CHECK_OK(dgram_send(sa, "abc", 3, port, dst, rec_on_sent, send_slot_init(&s1, &a)));
    CHECK_EQ(dgram_context_active(ctx), 1 + 1 + 1 + 1); /* r, a bound; a's 'listening'; the completion */
    CHECK_STR(a.log.text, "");
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 2);
    CHECK_STR(a.log.text, "lX"); /* implicit bind's 'listening' first */
    check_slot_error(&s1, DGRAM_ENETUNREACH, 3, dst, port, family);
    CHECK_EQ(a.errors, 0);

    /* 2. Without a callback: one 'error' event. */
    CHECK_OK(dgram_send(sa, "abcd", 4, port, dst, NULL, NULL));
    CHECK_EQ(dgram_context_active(ctx), 2 + 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    CHECK_STR(a.log.text, "lXE");
    check_event_error(&a, DGRAM_ENETUNREACH, dst, port, family);

    /* 3. Without an 'error' handler either: dropped, but still one event. */
    CHECK_OK(dgram_on_error(sa, NULL));
    CHECK_OK(dgram_send(sa, "abcde", 5, port, dst, NULL, NULL));
    CHECK_EQ(dgram_context_active(ctx), 2 + 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    CHECK_EQ(dgram_context_active(ctx), 2);
    CHECK_STR(a.log.text, "lXE");
    CHECK_OK(dgram_on_error(sa, rec_on_error));

    /* 4. The socket still works: loopback is reachable. */
    send_slot s4;
    CHECK_OK(dgram_send(sa, "ok", 2, pr, lo, rec_on_sent, send_slot_init(&s4, &a)));
    RUN_UNTIL(ctx, r.count, 1);
    RUN_UNTIL(ctx, a.sends, 2);
    CHECK_EQ(s4.calls, 1);
    CHECK_CODE(s4.code, 0);
    rec_check_text(&r, 0, "ok", lo, test_port(sa), family);
    test_run_for(ctx, 20);
    CHECK_STR(a.log.text, "lXES");
    /* every callback of a called dispatch and run: all DGRAM_EBUSY */
    CHECK_EQ(test_load(&ax.nested_calls), 4);
    if (ax.nested_bad)
        FAIL("%d nested calls returned %s, expected EBUSY", ax.nested_bad,
             dgram_err_name(ax.nested_first_bad));

    /* 5. A send callback frees its own socket while two more completions of
     * it wait: those never come. */
    dgram_socket *sb = rec_socket(ctx, type, &b);
    act bx;
    act_init(&bx, &b, ACT_FREE_SELF_IN_SEND, ctx);
    act_start(&bx);
    send_slot t[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(dgram_send(sb, "z", 1, port, dst, rec_on_sent, send_slot_init(&t[i], &b)));
    CHECK_EQ(dgram_context_active(ctx), 2 + 1 + 1 + 3);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 2); /* 'listening', the first completion */
    CHECK_EQ(bx.acted, 1);
    CHECK_STR(b.log.text, "lX");
    check_slot_error(&t[0], DGRAM_ENETUNREACH, 1, dst, port, family);
    CHECK_EQ(t[1].calls + t[2].calls, 0);
    CHECK_EQ(dgram_context_active(ctx), 2);
    test_run_for(ctx, 50);
    CHECK_STR(b.log.text, "lX");
    CHECK_EQ(b.after_free, 0);

    CHECK_EQ(a.bad + b.bad + r.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sr);
    test_context_finish(ctx);
    close(ns);
}

static void test_enetunreach_udp4(void) { enetunreach(DGRAM_UDP4); }
static void test_enetunreach_udp6(void) { enetunreach(DGRAM_UDP6); }

/* ---- EACCES: broadcast without the flag ------------------------------------------ */

/* One host: a veth pair (both ends here), dgv0 198.51.100.1/24, and a
 * default route through it so that 255.255.255.255 has a route. Linux loops
 * a broadcast back to the sending host: a receiver on 0.0.0.0 here gets
 * exactly one copy. */
static void test_broadcast_eacces(void) {
    int ns = isolate_with_ip_or_skip();
    test_sh("ip link add dgv0 type veth peer name dgv1 && ip addr add 198.51.100.1/24 dev dgv0"
            " && ip link set dgv0 up && ip link set dgv1 up && ip route add default dev dgv0");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r, t;
    dgram_socket *sr = rec_socket(ctx, DGRAM_UDP4, &r);
    uint16_t pr = bind_lL(false, ctx, &r, "0.0.0.0");
    dgram_socket *st = rec_socket(ctx, DGRAM_UDP4, &t);
    uint16_t pt = bind_lL(false, ctx, &t, NULL);
    const char *targets[2] = {"198.51.100.255", "255.255.255.255"};
    int nsends = 0, errors = 0, got = 0;
    char want_log[64] = "lL";
    for (int i = 0; i < 2; i++) {
        const char *dst = targets[i];
        printf("  %s\n", dst);
        /* Without SO_BROADCAST: the callback gets EACCES... */
        send_slot s1, s2;
        CHECK_OK(dgram_send(st, "denied", 6, pr, dst, rec_on_sent, send_slot_init(&s1, &t)));
        nsends++;
        RUN_UNTIL(ctx, t.sends, nsends);
        check_slot_error(&s1, DGRAM_EACCES, 6, dst, pr, DGRAM_IPV4);
        /* ...or, without a callback, 'error' does. */
        CHECK_OK(dgram_send(st, "denied", 6, pr, dst, NULL, NULL));
        errors++;
        RUN_UNTIL(ctx, t.errors, errors);
        check_event_error(&t, DGRAM_EACCES, dst, pr, DGRAM_IPV4);
        test_run_for(ctx, 50);
        CHECK_EQ(r.count, got);

        /* With it, the datagram goes, and comes back once. */
        CHECK_OK(dgram_set_broadcast(st, true));
        CHECK_OK(dgram_send(st, "to all", 6, pr, dst, rec_on_sent, send_slot_init(&s2, &t)));
        nsends++;
        RUN_UNTIL(ctx, t.sends, nsends);
        CHECK_CODE(s2.code, 0);
        CHECK_EQ(s2.length, 6);
        got++;
        RUN_UNTIL(ctx, r.count, got);
        test_run_for(ctx, 100);
        CHECK_EQ(r.count, got);
        rec_check_text(&r, got - 1, "to all", "198.51.100.1", pt, DGRAM_IPV4);
        CHECK_OK(dgram_set_broadcast(st, false));
        strcat(want_log, "XES");
        CHECK_STR(t.log.text, want_log);
    }
    CHECK_EQ(t.bad + r.bad, 0);
    dgram_socket_free(st);
    dgram_socket_free(sr);
    test_context_finish(ctx);
    close(ns);
}

/* ---- EMSGSIZE from the kernel: over the MTU with DF ------------------------------ */

/* `lo` with MTU 1400, and the sender's path MTU discovery set to "do"
 * (DF, never fragment) with setsockopt on dgram_fileno: a datagram over
 * 1400 bytes of IP packet is refused by sendmsg with EMSGSIZE, which
 * reaches the host like any other send error (not as the call's result:
 * it is within the UDP limit). */
static void kernel_emsgsize(dgram_type type) {
    int ns = isolate_with_ip_or_skip();
    test_sh("ip link set lo mtu 1400");
    fill_big();
    const char *lo = test_loopback(type);
    dgram_family family = family_of(type);
    size_t max = type == DGRAM_UDP4 ? 1400 - 20 - 8 : 1400 - 40 - 8;
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r, a;
    inbox in;
    dgram_socket *sr = rec_socket(ctx, type, &r);
    keep_whole(&r, &in);
    uint16_t pr = bind_lL(false, ctx, &r, lo);
    dgram_socket *sa = rec_socket(ctx, type, &a);
    uint16_t pa = bind_lL(false, ctx, &a, lo);
    int fd = dgram_fileno(sa);
    CHECK(fd >= 0);
    int v = type == DGRAM_UDP4 ? IP_PMTUDISC_DO : IPV6_PMTUDISC_DO;
    if (type == DGRAM_UDP4)
        CHECK(setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v) == 0);
    else
        CHECK(setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof v) == 0);

    send_slot s1, s2;
    CHECK_OK(dgram_send(sa, g_big, max, pr, lo, rec_on_sent, send_slot_init(&s1, &a)));
    CHECK_OK(dgram_send(sa, g_big, max + 1, pr, lo, rec_on_sent, send_slot_init(&s2, &a)));
    CHECK_OK(dgram_send(sa, g_big, max + 1, pr, lo, NULL, NULL));
    RUN_UNTIL(ctx, a.errors, 1);
    RUN_UNTIL(ctx, r.count, 1);
    test_run_for(ctx, 50);
    CHECK_STR(a.log.text, "lLSXE");
    CHECK_CODE(s1.code, 0);
    CHECK_EQ(s1.length, max);
    check_slot_error(&s2, DGRAM_EMSGSIZE, max + 1, lo, pr, family);
    check_event_error(&a, DGRAM_EMSGSIZE, lo, pr, family);
    CHECK_EQ(r.count, 1);
    check_inbox(&in, 1, g_big, max, lo, pa, family);
    CHECK_EQ(a.bad + r.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sr);
    test_context_finish(ctx);
    close(ns);
}

static void test_kernel_emsgsize_udp4(void) { kernel_emsgsize(DGRAM_UDP4); }
static void test_kernel_emsgsize_udp6(void) { kernel_emsgsize(DGRAM_UDP6); }

/* ---- a message callback closes / frees the context's other sockets ------------ */

static int g_stop;

static void test_close_others_host(void) {
    sender_open();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec a, b, c, d;
    dgram_socket *sa = rec_socket(ctx, DGRAM_UDP4, &a);
    dgram_socket *sb = rec_socket(ctx, DGRAM_UDP4, &b);
    rec_socket(ctx, DGRAM_UDP4, &c);
    dgram_socket *sd = rec_socket(ctx, DGRAM_UDP4, &d);
    uint16_t pa = bind_lL(false, ctx, &a, "127.0.0.1");
    uint16_t pb = bind_lL(false, ctx, &b, "127.0.0.1");
    uint16_t pc = bind_lL(false, ctx, &c, "127.0.0.1");
    bind_lL(false, ctx, &d, "127.0.0.1");
    act ax;
    act_init(&ax, &a, ACT_CLOSE_OTHERS, ctx);
    ax.close_other = &b;
    ax.free_other = &c;
    ax.close_other2 = &d;
    /* d's send is made from a's callback: a completion queued before the
     * dispatch would be delivered ahead of every datagram it reads. */
    send_slot dsl;
    ax.owed = send_slot_init(&dsl, &d);
    ax.owed_port = g_sink_port;
    act_start(&ax);

    /* a's datagrams first (so a is read first), then b's and c's, all
     * waiting in the sockets' kernel buffers; they do not count. */
    blast(pa, 3);
    test_wait_queued(sa);
    blast(pb, 3);
    blast(pc, 3);
    test_wait_queued(sb);
    test_wait_queued(c.s);
    CHECK_EQ(dgram_context_active(ctx), 4); /* the four bound sockets */

    /* a's first message closes b, frees c, sends from d (written at once:
     * its completion is owed) and closes d: a's other two datagrams come;
     * b's and c's are never delivered; the events queued meanwhile wait for
     * the next dispatch, where d's completion still comes, before its
     * 'close'. */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 3);
    CHECK_EQ(ax.acted, 1);
    CHECK_OK(ax.rc[0]);
    CHECK_OK(ax.owed_rc);
    CHECK_OK(ax.rc[1]);
    CHECK_STR(a.log.text, "lLMMM");
    CHECK_STR(b.log.text, "lL");
    CHECK_STR(c.log.text, "lL");
    CHECK_STR(d.log.text, "lL");
    CHECK_EQ(dgram_context_active(ctx), 1 + 1 + 2); /* a bound; d's completion; the 'close' of b and d */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 3);
    CHECK_STR(b.log.text, "lLcC");
    CHECK_STR(d.log.text, "lLScC");
    send_slot_check_ok(&dsl, 1);
    CHECK_EQ(dgram_context_active(ctx), 1);

    CHECK_CODE(dgram_send(sb, "x", 1, pa, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_close(sd, NULL), DGRAM_EBADF);
    /* a goes on receiving */
    blast(pa, 1);
    RUN_UNTIL(ctx, a.count, 4);
    test_run_for(ctx, 50);
    CHECK_STR(a.log.text, "lLMMMM");
    CHECK_STR(b.log.text, "lLcC");
    CHECK_STR(c.log.text, "lL");
    CHECK_STR(d.log.text, "lLScC");
    CHECK_EQ(c.after_free, 0);
    CHECK_EQ(a.bad + b.bad + c.bad + d.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sb);
    dgram_socket_free(sd);
    test_context_finish(ctx);
    sender_close();
}

/* I/O thread: b and c are receiving a stream when a's first message closes
 * b and frees c; no message of either comes after that. */
static void test_close_others_io(void) {
    sender_open();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    sock_rec a, b, c, d;
    dgram_socket *sa = rec_socket(ctx, DGRAM_UDP4, &a);
    dgram_socket *sb = rec_socket(ctx, DGRAM_UDP4, &b);
    rec_socket(ctx, DGRAM_UDP4, &c);
    dgram_socket *sd = rec_socket(ctx, DGRAM_UDP4, &d);
    uint16_t pa = bind_lL(true, ctx, &a, "127.0.0.1");
    uint16_t pb = bind_lL(true, ctx, &b, "127.0.0.1");
    uint16_t pc = bind_lL(true, ctx, &c, "127.0.0.1");
    bind_lL(true, ctx, &d, "127.0.0.1");
    g_stop = 0;
    act ax, bx, cx, dx;
    act_init(&ax, &a, ACT_CLOSE_OTHERS, ctx);
    ax.close_other = &b;
    ax.free_other = &c;
    ax.close_other2 = &d;
    act_init(&bx, &b, ACT_NONE, ctx);
    act_init(&cx, &c, ACT_NONE, ctx);
    act_init(&dx, &d, ACT_NONE, ctx);
    ax.stop_flag = bx.stop_flag = cx.stop_flag = dx.stop_flag = &g_stop;
    act_start(&ax);
    act_start(&bx);
    act_start(&cx);
    act_start(&dx);

    blast(pb, 100);
    blast(pc, 100);
    WAIT_UNTIL(b.count, 1);
    WAIT_UNTIL(c.count, 1);
    blast(pa, 3);
    WAIT_UNTIL(a.count, 3);
    WAIT_UNTIL(b.close_once, 1);
    WAIT_UNTIL(d.close_once, 1);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&ax.acted), 1);
    CHECK_OK(ax.rc[0]);
    CHECK_OK(ax.rc[1]);
    CHECK_STR(a.log.text, "lLMMM");
    CHECK_EQ(bx.after_stop + cx.after_stop + dx.after_stop, 0);
    CHECK_EQ(c.after_free, 0);
    CHECK(b.count <= 100 && c.count <= 100);
    /* b: its messages, then one 'close' */
    CHECK_EQ(b.log.len, 2 + b.count + 2);
    CHECK(strcmp(b.log.text + b.log.len - 2, "cC") == 0);
    CHECK_EQ(c.log.len, 2 + c.count); /* no 'close' for a freed socket */
    CHECK_STR(d.log.text, "lLcC");
    CHECK_EQ(b.close_p + d.close_p, 2);
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(a.bad + b.bad + c.bad + d.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sb);
    dgram_socket_free(sd);
    test_context_finish(ctx);
    sender_close();
}

/* ---- a message callback frees its own socket ---------------------------------- */

static void test_free_self_host(void) {
    sender_open();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec a, b;
    dgram_socket *sa = rec_socket(ctx, DGRAM_UDP4, &a);
    dgram_socket *sb = rec_socket(ctx, DGRAM_UDP4, &b);
    uint16_t pa = bind_lL(false, ctx, &a, "127.0.0.1");
    uint16_t pb = bind_lL(false, ctx, &b, "127.0.0.1");
    act ax;
    act_init(&ax, &a, ACT_FREE_SELF, ctx);
    /* a's send is made from its callback: a completion queued before the
     * dispatch would be delivered ahead of every datagram it reads. */
    send_slot asl;
    ax.owed = send_slot_init(&asl, &a);
    ax.owed_port = g_sink_port;
    act_start(&ax);
    blast(pa, 3);
    test_wait_queued(sa); /* a's arrive first, so a is read first */
    blast(pb, 2);
    test_wait_queued(sb);
    CHECK_EQ(dgram_context_active(ctx), 2); /* the bound sockets; waiting datagrams do not count */
    /* a's first message sends (written at once: its completion is owed) and
     * frees a: its two other datagrams and that completion are dropped (not
     * counted); b's datagrams come. */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1 + 2);
    CHECK_EQ(ax.acted, 1);
    CHECK_OK(ax.owed_rc);
    CHECK_STR(a.log.text, "lLM");
    CHECK_EQ(asl.calls, 0);
    CHECK_STR(b.log.text, "lLMM");
    CHECK_EQ(dgram_context_active(ctx), 1);
    test_run_for(ctx, 50);
    CHECK_STR(a.log.text, "lLM");
    CHECK_EQ(a.after_free, 0);
    CHECK_EQ(a.bad + b.bad, 0);
    dgram_socket_free(sb);
    test_context_finish(ctx);
    sender_close();
}

static void test_free_self_io(void) {
    sender_open();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    sock_rec a;
    rec_socket(ctx, DGRAM_UDP4, &a);
    uint16_t pa = bind_lL(true, ctx, &a, "127.0.0.1");
    act ax;
    act_init(&ax, &a, ACT_FREE_SELF, ctx);
    act_start(&ax);
    blast(pa, 20);
    WAIT_UNTIL(ax.acted, 1);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&a.count), 1);
    CHECK_STR(a.log.text, "lLM");
    CHECK_EQ(a.after_free, 0);
    CHECK_EQ(a.bad, 0);
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_context_finish(ctx);
    sender_close();
}

/* ---- a message callback sends MANY datagrams ---------------------------------- */

static send_slot g_many[MANY];

/* Makes sure `s` can hold MANY small datagrams in its kernel buffer even if
 * nobody reads it meanwhile (valgrind runs one thread at a time): asks the
 * library for 1 MiB, and as root forces it past rmem_max. False if neither
 * works here. */
static bool big_receive_buffer(dgram_socket *s) {
    if (test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF) >= (1 << 20))
        return true;
    int want = 1 << 20;
    setsockopt(dgram_fileno(s), SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want);
    return test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF) >= (1 << 20);
}

static void send_many(bool io, dgram_type type) {
    const char *lo = test_loopback(type);
    dgram_context *ctx = test_context(io ? DGRAM_DISPATCH_IO_THREAD : DGRAM_DISPATCH_HOST, 0);
    sock_rec r, a;
    inbox in;
    act rx, ax;
    dgram_socket_options o = test_opts(type);
    o.recv_buffer_size = 1 << 20;
    dgram_socket *sr = rec_socket_with(ctx, &o, &r);
    keep_whole(&r, &in);
    act_init(&rx, &r, ACT_TRACK, ctx);
    act_start(&rx);
    if (!big_receive_buffer(sr)) {
        dgram_socket_free(sr);
        test_context_finish(ctx);
        test_skip("needs a 1 MiB receive buffer (SO_RCVBUFFORCE: root)");
    }
    uint16_t pr = bind_lL(io, ctx, &r, lo);
    dgram_socket *sa = rec_socket(ctx, type, &a);
    uint16_t pa = bind_lL(io, ctx, &a, lo);
    act_init(&ax, &a, ACT_SEND_MANY, ctx);
    ax.many_port = pr;
    ax.many_addr = lo;
    ax.many_slots = g_many;
    act_start(&ax);

    CHECK_OK(dgram_send(sr, "go", 2, pa, lo, NULL, NULL));
    AWAIT(io, ctx, a.sends, MANY);
    AWAIT(io, ctx, r.count, MANY);
    /* An action runs after its event is counted: on the I/O thread, wait
     * for the last one too. */
    AWAIT(io, ctx, rx.tracked, MANY);
    settle(io, ctx, 100);
    CHECK_EQ(test_load(&ax.acted), 1);
    if (ax.many_failed)
        FAIL("%d of %d sends from the callback refused, the first with %s", ax.many_failed, MANY,
             dgram_err_name(ax.many_first_rc));
    CHECK_EQ(a.count, 1);
    CHECK_EQ(a.sends, MANY);
    CHECK_EQ(a.send_errors, 0);
    for (int i = 0; i < MANY; i++) {
        send_slot_check_ok(&g_many[i], 4);
        CHECK_EQ(g_many[i].seq, i); /* completions in call order */
    }
    CHECK_EQ(r.count, MANY);
    CHECK_EQ(rx.dup, 0);
    CHECK_EQ(rx.out_of_range, 0);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(rx.seen[i], 1);
    CHECK_EQ(a.errors + r.errors, 0);
    CHECK_EQ(dgram_context_active(ctx), 2);
    CHECK_EQ(a.bad + r.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sr);
    test_context_finish(ctx);
}

static void test_send_many_in_callback_host_udp4(void) { send_many(false, DGRAM_UDP4); }
static void test_send_many_in_callback_host_udp6(void) { send_many(false, DGRAM_UDP6); }
static void test_send_many_in_callback_io_udp4(void) { send_many(true, DGRAM_UDP4); }

/* ---- dispatch and run from inside callbacks --------------------------------- */

/* Every kind of callback of `a` calls dispatch and run: in both modes each
 * returns DGRAM_EBUSY at once and runs nothing (dgram.h: dispatch does not
 * nest). */
static void nested_dispatch(bool io) {
    dgram_context *ctx = test_context(io ? DGRAM_DISPATCH_IO_THREAD : DGRAM_DISPATCH_HOST, 0);
    sock_rec a, b;
    dgram_socket *sa = rec_socket(ctx, DGRAM_UDP4, &a);
    dgram_socket *sb = rec_socket(ctx, DGRAM_UDP4, &b);
    act ax;
    act_init(&ax, &a, ACT_NESTED, ctx)->nested_want = DGRAM_EBUSY;
    act_start(&ax);
    uint16_t pa, pb;
    if (io) {
        pa = bind_lL(true, ctx, &a, "127.0.0.1");
        pb = bind_lL(true, ctx, &b, "127.0.0.1");
    } else {
        /* Two 'listening' events wait; one dispatch of one event runs a's,
         * whose nested calls must not run b's. */
        CHECK_OK(dgram_bind(sa, 0, "127.0.0.1", rec_on_listening_once));
        CHECK_OK(dgram_bind(sb, 0, "127.0.0.1", rec_on_listening_once));
        CHECK_EQ(dgram_context_dispatch(ctx, 1), 1);
        CHECK_STR(a.log.text, "lL");
        CHECK_STR(b.log.text, "");
        CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
        CHECK_STR(b.log.text, "lL");
        pa = test_port(sa);
        pb = test_port(sb);
    }
    CHECK_EQ(test_load(&ax.nested_calls), 2);

    send_slot s1;
    CHECK_OK(dgram_send(sa, "to b", 4, pb, "127.0.0.1", rec_on_sent, send_slot_init(&s1, &a)));
    AWAIT(io, ctx, a.sends, 1);
    AWAIT(io, ctx, b.count, 1);
    CHECK_OK(dgram_send(sb, "to a", 4, pa, "127.0.0.1", NULL, NULL));
    AWAIT(io, ctx, a.count, 1);
    CHECK_OK(dgram_close(sa, rec_on_close_once));
    AWAIT(io, ctx, a.close_once, 1);
    AWAIT(io, ctx, ax.nested_calls, 6);
    settle(io, ctx, 50);
    CHECK_STR(a.log.text, "lLSMcC");
    CHECK_EQ(test_load(&ax.nested_calls), 6);
    if (ax.nested_bad)
        FAIL("%d nested calls returned %d (%s), expected EBUSY", ax.nested_bad,
             ax.nested_first_bad, dgram_err_name(ax.nested_first_bad));
    CHECK_STR(b.log.text, "lLM");
    /* dispatch works again once the callbacks returned */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 0);
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(a.bad + b.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sb);
    test_context_finish(ctx);
}

static void test_nested_dispatch_host(void) { nested_dispatch(false); }
static void test_nested_dispatch_io(void) { nested_dispatch(true); }

/* ---- dgram_context_free from a callback ---------------------------------------- */

static void check_gone(dgram_socket *s) {
    dgram_addr where;
    CHECK_CODE(dgram_send(s, "x", 1, g_sink_port, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, 0, "127.0.0.1", NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s, &where), DGRAM_EBADF);
    CHECK_CODE(dgram_close(s, NULL), DGRAM_EBADF);
}

/* From a message callback reached through dgram_context_run(-1), and from a
 * send callback reached through dgram_context_dispatch: the call returns
 * DGRAM_EBADF (its handle is gone); nothing else runs, neither the other
 * datagrams of the same read nor those waiting for another socket. */
static void test_ctx_free_host(void) {
    sender_open();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec a, b;
    dgram_socket *sa = rec_socket(ctx, DGRAM_UDP4, &a);
    dgram_socket *sb = rec_socket(ctx, DGRAM_UDP4, &b);
    uint16_t pa = bind_lL(false, ctx, &a, "127.0.0.1");
    uint16_t pb = bind_lL(false, ctx, &b, "127.0.0.1");
    act ax;
    act_init(&ax, &a, ACT_FREE_CTX, ctx);
    act_start(&ax);
    blast(pa, 3);
    test_wait_queued(sa); /* a's arrive first, so a is read first */
    blast(pb, 2);
    test_wait_queued(sb);
    CHECK_EQ(dgram_context_active(ctx), 2); /* the bound sockets; waiting datagrams do not count */
    int rc = dgram_context_run(ctx, -1);
    CHECK(ax.ctx == NULL); /* freed inside */
    test_context_forget(ctx);
    CHECK_CODE(rc, DGRAM_EBADF); /* the handle is gone */
    CHECK_STR(a.log.text, "lLM");
    CHECK_STR(b.log.text, "lL");
    check_gone(sa);
    check_gone(sb);
    dgram_socket_free(sa);
    dgram_socket_free(sb);

    ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket *sc = rec_socket(ctx, DGRAM_UDP4, &a);
    bind_lL(false, ctx, &a, "127.0.0.1");
    act_init(&ax, &a, ACT_FREE_CTX_IN_SEND, ctx);
    act_start(&ax);
    send_slot t[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(dgram_send(sc, "s", 1, g_sink_port, "127.0.0.1", rec_on_sent,
                            send_slot_init(&t[i], &a)));
    CHECK_EQ(dgram_context_active(ctx), 1 + 3);
    rc = dgram_context_dispatch(ctx, 0);
    CHECK(ax.ctx == NULL);
    test_context_forget(ctx);
    CHECK_CODE(rc, DGRAM_EBADF);
    CHECK_STR(a.log.text, "lLS");
    CHECK_EQ(t[0].calls, 1);
    CHECK_EQ(t[1].calls + t[2].calls, 0);
    check_gone(sc);
    CHECK_EQ(a.bad + b.bad, 0);
    dgram_socket_free(sc);
    sender_close();
}

/* On the I/O thread, while another socket receives a stream. */
static void test_ctx_free_io(void) {
    sender_open();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    sock_rec a, b;
    dgram_socket *sa = rec_socket(ctx, DGRAM_UDP4, &a);
    dgram_socket *sb = rec_socket(ctx, DGRAM_UDP4, &b);
    uint16_t pa = bind_lL(true, ctx, &a, "127.0.0.1");
    uint16_t pb = bind_lL(true, ctx, &b, "127.0.0.1");
    g_stop = 0;
    act ax, bx;
    act_init(&ax, &a, ACT_FREE_CTX, ctx);
    act_init(&bx, &b, ACT_NONE, ctx);
    ax.stop_flag = bx.stop_flag = &g_stop;
    act_start(&ax);
    act_start(&bx);
    blast(pb, 100);
    WAIT_UNTIL(b.count, 1);
    blast(pa, 5);
    WAIT_UNTIL(ax.acted, 1);
    test_context_forget(ctx);
    test_sleep_ms(100); /* the I/O thread ends after that callback */
    CHECK_EQ(test_load(&a.count), 1);
    CHECK_STR(a.log.text, "lLM");
    CHECK_EQ(ax.after_stop + bx.after_stop, 0);
    CHECK(b.count <= 100);
    CHECK_EQ(b.log.len, 2 + b.count); /* no 'close': a freed context closes silently */
    check_gone(sa);
    check_gone(sb);
    CHECK_EQ(a.bad + b.bad, 0);
    dgram_socket_free(sa);
    dgram_socket_free(sb);
    sender_close();
}

TEST_LIST(
    TEST_ENTRY(test_emsgsize_at_call_udp4),
    TEST_ENTRY(test_emsgsize_at_call_udp6),
    TEST_ENTRY(test_bind_foreign_address_udp4),
    TEST_ENTRY(test_bind_foreign_address_udp6),
    TEST_ENTRY(test_icmp_port_unreachable_udp4),
    TEST_ENTRY(test_icmp_port_unreachable_udp6),
    TEST_ENTRY(test_enetunreach_udp4),
    TEST_ENTRY(test_enetunreach_udp6),
    TEST_ENTRY(test_broadcast_eacces),
    TEST_ENTRY(test_kernel_emsgsize_udp4),
    TEST_ENTRY(test_kernel_emsgsize_udp6),
    TEST_ENTRY(test_close_others_host),
    TEST_ENTRY(test_close_others_io),
    TEST_ENTRY(test_free_self_host),
    TEST_ENTRY(test_free_self_io),
    TEST_ENTRY(test_send_many_in_callback_host_udp4),
    TEST_ENTRY(test_send_many_in_callback_host_udp6),
    TEST_ENTRY(test_send_many_in_callback_io_udp4),
    TEST_ENTRY(test_nested_dispatch_host),
    TEST_ENTRY(test_nested_dispatch_io),
    TEST_ENTRY(test_ctx_free_host),
    TEST_ENTRY(test_ctx_free_io),
)
