/*
 * Close and lifetime: dgram_close, dgram_socket_free and dgram_context_free,
 * from the host and from inside callbacks, in every order; what each of them
 * does to pending events, queued sends and dgram_context_active.
 *
 * Unicast on 127.0.0.1 only. Two tests make the sender's sends really queue
 * (so that close has something to cancel) by moving the calling thread into a
 * private network namespace whose `lo` has a slow token-bucket qdisc; where
 * that is not possible (not root, no `tc`/tbf) they run on the machine's
 * loopback and check the same invariants on whatever mix of written and
 * cancelled sends they get.
 */
#include "recorder.h"

/* ---- recording ----------------------------------------------------------- */

enum action {
    ACT_NONE = 0,
    ACT_CLOSE_IN_MSG,         /* dgram_close(self) in the first 'message' */
    ACT_SEND_FREE_IN_MSG,     /* send with a callback, then dgram_socket_free(self) */
    ACT_FREE_OTHER_IN_MSG,    /* dgram_socket_free(other) in the first 'message' */
    ACT_CTX_FREE_IN_MSG,      /* dgram_context_free(ctx) in the first 'message' */
    ACT_CLOSE_IN_LISTEN_ONCE, /* dgram_close(self) in bind's one-shot callback */
    ACT_FREE_IN_LISTEN_ONCE,  /* dgram_socket_free(self) in bind's one-shot callback */
    ACT_FREE_IN_LISTEN_P,     /* dgram_socket_free(self) in the persistent 'listening' */
    ACT_FREE_IN_CLOSE_ONCE,   /* dgram_socket_free(self) in close's one-shot callback */
};

typedef struct rec rec;
struct rec {
    dgram_socket *s;  /* the handle callbacks must be given */
    int action;
    int done;         /* the action ran */
    int rc_in_cb;     /* what the library call made by the action returned */
    rec *other;       /* ACT_FREE_OTHER_IN_MSG */
    dgram_context *ctx; /* ACT_CTX_FREE_IN_MSG */
    uint16_t self_port; /* ACT_SEND_FREE_IN_MSG */

    /* one letter per callback: l L (listening: persistent, once),
     * M (message), c C (close: persistent, once), E (error),
     * S / X / ? (send callback: ok, ECANCELED, other error) */
    event_log log;

    int listen_p, listen_once, messages, close_p, close_once, errors, sends;
    int freed;          /* the host released the handle */
    int after_free;     /* callbacks that came after the handle was released */
    int closed_returned; /* dgram_close returned (I/O-thread test) */
    int after_close;    /* messages after dgram_close returned */
    int bad;            /* wrong handle, or a callback inside a library call */
    int order[256];     /* send-callback indices, in callback order */
    int norder;
};

/* Set by the main thread around calls that must not run callbacks inside. */
static int g_in_call;


static void rec_common(rec *r, dgram_socket *s) {
    if (s != r->s)
        r->bad++;
    if (g_in_call)
        r->bad++;
    if (r->freed)
        r->after_free++;
}

static void on_close_once(dgram_socket *s, void *ud);
static void send_cb(dgram_socket *s, const dgram_error *err, size_t length, void *send_data);

static void on_msg(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                   void *ud) {
    (void)msg;
    (void)len;
    (void)rinfo;
    rec *r = ud;
    rec_common(r, s);
    if (test_load(&r->closed_returned))
        test_add(&r->after_close, 1);
    event_log_add(&r->log, 'M');
    test_add(&r->messages, 1);
    if (r->done)
        return;
    switch (r->action) {
    case ACT_CLOSE_IN_MSG:
        r->done = 1;
        r->rc_in_cb = dgram_close(s, on_close_once);
        break;
    case ACT_SEND_FREE_IN_MSG: {
        r->done = 1;
        r->rc_in_cb = dgram_send(s, "late", 4, r->self_port, "127.0.0.1", send_cb, NULL);
        r->freed = 1;
        dgram_socket_free(s);
        break;
    }
    case ACT_FREE_OTHER_IN_MSG:
        r->done = 1;
        r->other->freed = 1;
        dgram_socket_free(r->other->s);
        break;
    case ACT_CTX_FREE_IN_MSG:
        r->done = 1;
        dgram_context_free(r->ctx);
        r->ctx = NULL;
        break;
    default:
        break;
    }
}

static void on_listen_p(dgram_socket *s, void *ud) {
    rec *r = ud;
    rec_common(r, s);
    event_log_add(&r->log, 'l');
    test_add(&r->listen_p, 1);
    if (r->action == ACT_FREE_IN_LISTEN_P && !r->done) {
        r->done = 1;
        r->freed = 1;
        dgram_socket_free(s);
    }
}

static void on_listen_once(dgram_socket *s, void *ud) {
    rec *r = ud;
    rec_common(r, s);
    event_log_add(&r->log, 'L');
    test_add(&r->listen_once, 1);
    if (r->done)
        return;
    if (r->action == ACT_CLOSE_IN_LISTEN_ONCE) {
        r->done = 1;
        r->rc_in_cb = dgram_close(s, on_close_once);
    } else if (r->action == ACT_FREE_IN_LISTEN_ONCE) {
        r->done = 1;
        r->freed = 1;
        dgram_socket_free(s);
    }
}

static void on_close_p(dgram_socket *s, void *ud) {
    rec *r = ud;
    rec_common(r, s);
    event_log_add(&r->log, 'c');
    test_add(&r->close_p, 1);
}

static void on_close_once(dgram_socket *s, void *ud) {
    rec *r = ud;
    rec_common(r, s);
    event_log_add(&r->log, 'C');
    test_add(&r->close_once, 1);
    if (r->action == ACT_FREE_IN_CLOSE_ONCE && !r->done) {
        r->done = 1;
        r->freed = 1;
        dgram_socket_free(s);
    }
}

static void on_err(dgram_socket *s, const dgram_error *err, void *ud) {
    (void)err;
    rec *r = ud;
    rec_common(r, s);
    event_log_add(&r->log, 'E');
    test_add(&r->errors, 1);
}

/* One send's completion record; send_data points to it. */
typedef struct {
    rec *r;
    int idx;
    int calls;
    int code;
    size_t length;
    char syscall[16];
    dgram_addr addr;
} slot;

static int g_stray_send_cbs; /* completions of sends made with send_data NULL */

/* Clears `sl` as the record of send number `idx` of the socket recorded in
 * `r`, and returns it (the send's send_data). */
static slot *slot_init(slot *sl, rec *r, int idx) {
    memset(sl, 0, sizeof *sl);
    sl->r = r;
    sl->idx = idx;
    return sl;
}

static void send_cb(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    slot *sl = send_data;
    if (sl == NULL) {
        test_add(&g_stray_send_cbs, 1);
        return;
    }
    rec *r = sl->r;
    rec_common(r, s);
    sl->calls++;
    sl->length = length;
    sl->code = err ? err->code : 0;
    if (err) {
        snprintf(sl->syscall, sizeof sl->syscall, "%s", err->syscall ? err->syscall : "(null)");
        sl->addr = err->addr;
    }
    event_log_add(&r->log, err == NULL ? 'S' : err->code == DGRAM_ECANCELED ? 'X' : '?');
    if (r->norder < (int)(sizeof r->order / sizeof r->order[0]))
        r->order[r->norder++] = sl->idx;
    test_add(&r->sends, 1);
}

/* ---- helpers -------------------------------------------------------------- */

/* A context that is never dispatched, and a socket in it that sends
 * datagrams (without callbacks) to the sockets under test. */
static dgram_context *g_tx;
static dgram_socket *g_txs;

static uint8_t g_big[60000]; /* the bytes of big sends */

/* A receiver that is never dispatched: a udp4 socket bound to 127.0.0.1 in
 * a context of its own, made on the calling thread (so in its namespace). */
typedef struct {
    dgram_context *ctx;
    dgram_socket *s;
    uint16_t port;
} sink;

static sink sink_open(void) {
    sink k;
    k.ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    k.s = test_socket(k.ctx, DGRAM_UDP4, NULL, NULL);
    k.port = test_bind(k.s, "127.0.0.1");
    return k;
}

static void sink_close(sink *k) {
    dgram_socket_free(k->s);
    dgram_context_free(k->ctx);
}

/* A socket whose every handler records into `r` (cleared). */
static dgram_socket *rec_socket(dgram_context *ctx, dgram_type type, rec *r,
                                int32_t send_buffer_size) {
    memset(r, 0, sizeof *r);
    dgram_socket_options o = test_opts(type);
    o.send_buffer_size = send_buffer_size;
    dgram_socket *s = test_socket_with(ctx, &o, on_msg, r);
    r->s = s;
    CHECK_OK(dgram_on_listening(s, on_listen_p));
    CHECK_OK(dgram_on_close(s, on_close_p));
    CHECK_OK(dgram_on_error(s, on_err));
    return s;
}

/* Binds to 127.0.0.1:0 and dispatches the 'listening' (host mode). */
static uint16_t bind_listen(dgram_context *ctx, dgram_socket *s, rec *r) {
    g_in_call = 1;
    int rc = dgram_bind(s, 0, "127.0.0.1", on_listen_once);
    g_in_call = 0;
    CHECK_OK(rc);
    RUN_UNTIL(ctx, r->listen_once, 1);
    CHECK_STR(r->log.text, "lL");
    CHECK(dgram_context_active(ctx) >= 1); /* callers check the exact value */
    return test_port(s);
}

/* Sends `n` datagrams "m<i>" from g_txs to 127.0.0.1:port. */
static void blast(uint16_t port, int n) {
    for (int i = 0; i < n; i++) {
        char m[16];
        int len = snprintf(m, sizeof m, "m%d", i);
        CHECK_OK(dgram_send(g_txs, m, (size_t)len, port, "127.0.0.1", NULL, NULL));
    }
}

/* Sends `n` datagrams to `port` and waits until they are all read
 * (dgram_context_active(ctx) == `active`, nothing delivered yet); then one
 * dispatch must run exactly one event: the one whose callback does the
 * socket's action, which drops the rest. */
static void queue_then_dispatch_one(dgram_context *ctx, uint16_t port, int n, uint32_t active) {
    blast(port, n);
    test_wait_active(ctx, active);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
}

/* Runs `ctx` until the one-shot 'close' of `r`'s socket came, then a while
 * longer: the log must be `want_log` (nothing after the 'close') and
 * nothing may be left active. */
static void check_closed(dgram_context *ctx, const rec *r, const char *want_log) {
    RUN_UNTIL(ctx, r->close_once, 1);
    test_run_for(ctx, 100);
    CHECK_STR(r->log.text, want_log);
    CHECK_EQ(dgram_context_active(ctx), 0);
}

/* Checks the completions of the `n` sends of `len` bytes each to
 * 127.0.0.1:port recorded in `slots` and `r`, when the socket was closed
 * with some of them still queued: each completed once, in call order; the
 * first ones were written, all the others cancelled (DGRAM_ECANCELED from
 * "send", naming the destination); the log is `prefix`, an S per written
 * send, an X per cancelled one, then the one 'close' ("cC"). Returns how
 * many were written. */
static int check_written_then_cancelled(const rec *r, const slot *slots, int n, size_t len,
                                        uint16_t port, const char *prefix) {
    int written = 0;
    while (written < n && slots[written].code == 0)
        written++;
    printf("  %d written, %d cancelled\n", written, n - written);
    char want[sizeof r->log.text];
    int k = snprintf(want, sizeof want, "%s", prefix);
    for (int i = 0; i < n && k < (int)sizeof want - 1; i++)
        want[k++] = i < written ? 'S' : 'X';
    snprintf(want + k, sizeof want - (size_t)k, "cC");
    CHECK_STR(r->log.text, want);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(slots[i].calls, 1);
        CHECK_EQ(slots[i].length, len);
        CHECK_EQ(r->order[i], i);
        if (i >= written) {
            CHECK_CODE(slots[i].code, DGRAM_ECANCELED);
            CHECK_STR(slots[i].syscall, "send");
            CHECK_ADDR(&slots[i].addr, "127.0.0.1", port, DGRAM_IPV4);
        }
    }
    CHECK_EQ(r->norder, n);
    return written;
}

/* ---- tests ---------------------------------------------------------------- */

/* 'close' comes once, later (not inside dgram_close), persistent handler
 * first; a second close is EBADF and adds nothing. */
static void test_close_once_async_order(void) {
    printf("test_close_once_async_order\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    bind_listen(ctx, s, &r);
    CHECK_EQ(dgram_context_active(ctx), 1); /* bound, nothing pending */

    g_in_call = 1;
    int rc = dgram_close(s, on_close_once);
    g_in_call = 0;
    CHECK_OK(rc);
    CHECK_STR(r.log.text, "lL"); /* nothing ran inside dgram_close */
    CHECK_EQ(dgram_context_active(ctx), 1); /* only the pending 'close' */
    CHECK_CODE(dgram_close(s, on_close_once), DGRAM_EBADF);
    CHECK_CODE(dgram_close(s, NULL), DGRAM_EBADF);
    CHECK_EQ(dgram_context_active(ctx), 1);

    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1); /* the 'close' was queued by close */
    CHECK_STR(r.log.text, "lLcC");
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 0);
    CHECK_EQ(dgram_context_run(ctx, 1000), 0); /* nothing active: returns at once */
    test_run_for(ctx, 100);
    CHECK_STR(r.log.text, "lLcC");
    CHECK_EQ(r.close_p, 1);
    CHECK_EQ(r.close_once, 1);
    CHECK_EQ(r.bad, 0);

    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* udp6 too, and a close with neither handler still is one event. */
static void test_close_udp6_and_no_handlers(void) {
    printf("test_close_udp6_and_no_handlers\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP6, &r, 0);
    g_in_call = 1;
    CHECK_OK(dgram_bind(s, 0, "::1", on_listen_once));
    CHECK_OK(dgram_close(s, on_close_once));
    g_in_call = 0;
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1); /* 'listening' dropped, 'close' delivered */
    CHECK_STR(r.log.text, "cC");
    test_check_all_ebadf(s, DGRAM_UDP6);
    dgram_socket_free(s);

    /* No handler at all: the 'close' is still one event, and it counts. */
    dgram_socket *n = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    CHECK_OK(dgram_bind(n, 0, "127.0.0.1", NULL));
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1); /* 'listening' */
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_OK(dgram_close(n, NULL));
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_CODE(dgram_close(n, NULL), DGRAM_EBADF);
    dgram_socket_free(n);
    test_run_for(ctx, 50);
    CHECK_STR(r.log.text, "cC");
    CHECK_EQ(r.bad, 0);
    dgram_context_free(ctx);
}

/* A socket never bound: close still emits 'close' exactly once. */
static void test_close_unbound(void) {
    printf("test_close_unbound\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    CHECK_EQ(dgram_context_active(ctx), 0); /* unbound: does not count */
    g_in_call = 1;
    CHECK_OK(dgram_close(s, on_close_once));
    g_in_call = 0;
    CHECK_STR(r.log.text, "");
    CHECK_EQ(dgram_context_active(ctx), 1); /* the undelivered 'close' */
    CHECK_CODE(dgram_close(s, on_close_once), DGRAM_EBADF);
    check_closed(ctx, &r, "cC");
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* Every call on a closed socket is EBADF, before and after its 'close' is
 * dispatched; the calls change nothing (handlers stay, no callback comes). */
static void test_calls_after_close_ebadf(void) {
    printf("test_calls_after_close_ebadf\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    bind_listen(ctx, s, &r);
    CHECK_OK(dgram_close(s, on_close_once));
    test_check_all_ebadf(s, DGRAM_UDP4); /* 'close' not dispatched yet */
    CHECK_EQ(dgram_context_active(ctx), 1);
    RUN_UNTIL(ctx, r.close_once, 1);
    /* dgram_on_close(s, NULL) above was refused: the persistent handler ran. */
    CHECK_STR(r.log.text, "lLcC");
    test_check_all_ebadf(s, DGRAM_UDP4); /* and after */
    test_run_for(ctx, 100);
    CHECK_STR(r.log.text, "lLcC");
    CHECK_EQ(g_stray_send_cbs, 0);
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_socket_free(s);

    /* never bound, udp6 */
    rec r6;
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6, 0);
    CHECK_OK(dgram_close(s6, NULL));
    test_check_all_ebadf(s6, DGRAM_UDP6);
    RUN_UNTIL(ctx, r6.close_p, 1);
    test_check_all_ebadf(s6, DGRAM_UDP6);
    test_run_for(ctx, 50);
    CHECK_STR(r6.log.text, "c");
    CHECK_EQ(g_stray_send_cbs, 0);
    CHECK_EQ(r.bad + r6.bad, 0);
    dgram_socket_free(s6);
    dgram_context_free(ctx);
}

/* 50 datagrams read and queued, then close before dispatch: none of them is
 * delivered, they stop counting, and 'close' comes once. */
static void test_no_message_after_close(void) {
    printf("test_no_message_after_close\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    uint16_t port = bind_listen(ctx, s, &r);
    blast(port, 50);
    test_wait_active(ctx, 1 + 50); /* all 50 read by the I/O thread, undelivered */
    CHECK_OK(dgram_close(s, on_close_once));
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1); /* discarded datagrams are not counted */
    test_run_for(ctx, 100);
    CHECK_EQ(r.messages, 0);
    CHECK_EQ(r.close_p, 1);
    CHECK_EQ(r.close_once, 1);
    CHECK_STR(r.log.text, "lLcC");
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* close from inside the socket's own 'message': no further 'message', then
 * 'close' once. */
static void test_close_in_message_cb(void) {
    printf("test_close_in_message_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    uint16_t port = bind_listen(ctx, s, &r);
    r.action = ACT_CLOSE_IN_MSG;
    /* The 'close' is queued during the dispatch, so it waits for the next one. */
    queue_then_dispatch_one(ctx, port, 10, 1 + 10);
    CHECK_OK(r.rc_in_cb);
    CHECK_STR(r.log.text, "lLM");
    CHECK_EQ(dgram_context_active(ctx), 1);
    check_closed(ctx, &r, "lLMcC");
    CHECK_EQ(r.messages, 1);
    CHECK_CODE(dgram_close(s, NULL), DGRAM_EBADF);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* dgram_socket_free from inside the socket's own 'message' (after queueing a
 * send with a callback from there): nothing more of any kind for it. */
static void test_free_in_message_cb(void) {
    printf("test_free_in_message_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    uint16_t port = bind_listen(ctx, s, &r);
    r.action = ACT_SEND_FREE_IN_MSG;
    r.self_port = port;
    queue_then_dispatch_one(ctx, port, 10, 1 + 10);
    CHECK_OK(r.rc_in_cb);
    CHECK_EQ(r.freed, 1);
    CHECK_EQ(dgram_context_active(ctx), 0); /* freed: counts for nothing */
    test_run_for(ctx, 150);
    CHECK_STR(r.log.text, "lLM");
    CHECK_EQ(r.messages, 1);
    CHECK_EQ(r.after_free, 0);
    CHECK_EQ(g_stray_send_cbs, 0); /* the send made before free: no callback */
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_context_free(ctx);
}

/* dgram_socket_free from inside bind's one-shot 'listening', with datagrams
 * waiting: nothing more for it. */
static void test_free_in_listening_cb(void) {
    printf("test_free_in_listening_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    r.action = ACT_FREE_IN_LISTEN_ONCE;
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", on_listen_once));
    queue_then_dispatch_one(ctx, test_port(s), 5, 1 + 1 + 5); /* bound + 'listening' + 5 */
    CHECK_EQ(r.freed, 1);
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_run_for(ctx, 150);
    CHECK_STR(r.log.text, "lL");
    CHECK_EQ(r.after_free, 0);
    CHECK_EQ(r.bad, 0);
    dgram_context_free(ctx);
}

/* dgram_socket_free from inside the persistent 'listening' handler: the
 * one-shot bind callback of the same event is a further callback, and must
 * not run either. */
static void test_free_in_persistent_listening_cb(void) {
    printf("test_free_in_persistent_listening_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    r.action = ACT_FREE_IN_LISTEN_P;
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", on_listen_once));
    queue_then_dispatch_one(ctx, test_port(s), 3, 1 + 1 + 3);
    CHECK_EQ(r.freed, 1);
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_run_for(ctx, 100);
    CHECK_EQ(r.after_free, 0);
    CHECK_STR(r.log.text, "l");
    CHECK_EQ(r.bad, 0);
    dgram_context_free(ctx);
}

/* dgram_socket_free from inside the socket's own (last) 'close' callback. */
static void test_free_in_close_cb(void) {
    printf("test_free_in_close_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    bind_listen(ctx, s, &r);
    r.action = ACT_FREE_IN_CLOSE_ONCE;
    CHECK_OK(dgram_close(s, on_close_once));
    RUN_UNTIL(ctx, r.close_once, 1);
    CHECK_EQ(r.freed, 1);
    test_run_for(ctx, 100);
    CHECK_STR(r.log.text, "lLcC");
    CHECK_EQ(r.after_free, 0);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_context_free(ctx);
}

/* One socket's 'message' callback frees another socket that has events
 * waiting: the other gets nothing more. */
static void test_free_other_socket_in_cb(void) {
    printf("test_free_other_socket_in_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec ra, rb;
    dgram_socket *a = rec_socket(ctx, DGRAM_UDP4, &ra, 0);
    dgram_socket *b = rec_socket(ctx, DGRAM_UDP4, &rb, 0);
    uint16_t pa = bind_listen(ctx, a, &ra);
    CHECK_OK(dgram_bind(b, 0, "127.0.0.1", on_listen_once)); /* 'listening' left pending */
    uint16_t pb = test_port(b);
    blast(pa, 1);
    test_wait_active(ctx, 1 + 1 + 1 + 1); /* a, b bound; b's 'listening'; a's datagram */
    blast(pb, 4);
    test_wait_active(ctx, 4 + 4);
    ra.action = ACT_FREE_OTHER_IN_MSG;
    ra.other = &rb;
    RUN_UNTIL(ctx, ra.messages, 1);
    test_run_for(ctx, 100);
    /* b's 'listening' may come before a's datagram (no order between
     * sockets) but never after the free */
    CHECK(strcmp(rb.log.text, "") == 0 || strcmp(rb.log.text, "lL") == 0);
    CHECK_EQ(rb.messages, 0);
    CHECK_EQ(rb.after_free, 0);
    CHECK_STR(ra.log.text, "lLM");
    CHECK_EQ(dgram_context_active(ctx), 1); /* a alone */
    CHECK_OK(dgram_close(a, NULL));
    RUN_UNTIL(ctx, ra.close_p, 1);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(ra.bad + rb.bad, 0);
    dgram_socket_free(a);
    dgram_context_free(ctx);
}

/* Sends still queued when the socket closes complete with DGRAM_ECANCELED,
 * each exactly once, in call order after those that were written, all
 * before the single 'close'. */
static void test_queued_sends_cancelled(void) {
    printf("test_queued_sends_cancelled\n");
    enum { N = 200, LEN = 60000 };
    static slot slots[N];
    int orig = test_slow_lo_enter();
    printf("  (%s)\n", orig >= 0 ? "private namespace, slow lo: sends queue"
                                 : "machine loopback: sends may all be written at once");
    sink rx = sink_open();
    uint16_t port = rx.port;

    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 4096);
    test_slow_lo_leave(orig);
    bind_listen(ctx, s, &r);

    for (int i = 0; i < N; i++) {
        g_in_call = 1;
        int rc = dgram_send(s, g_big, LEN, port, "127.0.0.1", send_cb,
                            slot_init(&slots[i], &r, i));
        g_in_call = 0;
        CHECK_OK(rc);
    }
    CHECK_EQ(dgram_context_active(ctx), 1 + N);
    g_in_call = 1;
    int rc = dgram_close(s, on_close_once);
    g_in_call = 0;
    CHECK_OK(rc);
    CHECK_STR(r.log.text, "lL");
    CHECK_EQ(dgram_context_active(ctx), N + 1); /* N completions + 'close' */
    RUN_UNTIL(ctx, r.close_once, 1);
    test_run_for(ctx, 100);

    int written = check_written_then_cancelled(&r, slots, N, LEN, port, "lL");
    if (orig >= 0)
        CHECK(written < N); /* the slow qdisc really made sends queue */
    CHECK_EQ(r.close_p, 1);
    CHECK_EQ(r.close_once, 1);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
    sink_close(&rx);
}

/* dgram_socket_free on an open socket with pending send completions (and,
 * with the slow loopback, sends still queued): no callback of any kind, and
 * the socket stops counting when free returns. */
static void test_free_with_pending_sends(void) {
    printf("test_free_with_pending_sends\n");
    enum { N = 50, LEN = 60000 };
    static slot slots[N];
    int orig = test_slow_lo_enter();
    sink rx = sink_open();
    uint16_t port = rx.port;
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 4096);
    test_slow_lo_leave(orig);
    uint16_t self = bind_listen(ctx, s, &r);

    for (int i = 0; i < N; i++) {
        CHECK_OK(dgram_send(s, g_big, LEN, port, "127.0.0.1", send_cb,
                            slot_init(&slots[i], &r, i)));
    }
    /* and datagrams waiting for it (g_txs lives in the machine's namespace,
     * so only when s does too) */
    int extra = orig >= 0 ? 0 : 3;
    blast(self, extra);
    test_wait_active(ctx, (uint32_t)(1 + N + extra));
    r.freed = 1;
    dgram_socket_free(s);
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_run_for(ctx, 200);
    CHECK_EQ(r.sends, 0);
    CHECK_EQ(r.messages, 0);
    CHECK_EQ(r.after_free, 0);
    CHECK_STR(r.log.text, "lL");
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_context_free(ctx);
    sink_close(&rx);
}

/* After dgram_close returns only the pending 'close' and send completions
 * count (not the bound socket, not its undelivered datagrams); each event
 * dispatched takes one off; 0 at the end. Freeing a closed socket whose
 * 'close' is pending uncounts it too, and that 'close' never comes. */
static void test_active_after_close(void) {
    printf("test_active_after_close\n");
    static slot slots[3];
    sink rx = sink_open();
    uint16_t port = rx.port;

    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    uint16_t self = bind_listen(ctx, s, &r);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dgram_send(s, "abc", 3, port, "127.0.0.1", send_cb, slot_init(&slots[i], &r, i)));
    }
    CHECK_EQ(dgram_context_active(ctx), 1 + 3);
    blast(self, 5);
    test_wait_active(ctx, 1 + 3 + 5);
    CHECK_OK(dgram_close(s, on_close_once));
    CHECK_EQ(dgram_context_active(ctx), 3 + 1);
    CHECK_EQ(dgram_context_dispatch(ctx, 1), 1);
    CHECK_EQ(dgram_context_active(ctx), 3);
    CHECK_EQ(dgram_context_dispatch(ctx, 2), 2);
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_STR(r.log.text, "lLSSS");
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_STR(r.log.text, "lLSSScC");
    CHECK_EQ(r.messages, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(slots[i].calls, 1);
        CHECK_EQ(slots[i].code, 0);
        CHECK_EQ(slots[i].length, 3);
    }
    dgram_socket_free(s);
    CHECK_EQ(dgram_context_active(ctx), 0);

    /* close, then free before the 'close' is dispatched */
    rec r2;
    dgram_socket *s2 = rec_socket(ctx, DGRAM_UDP4, &r2, 0);
    bind_listen(ctx, s2, &r2);
    CHECK_OK(dgram_close(s2, on_close_once));
    CHECK_EQ(dgram_context_active(ctx), 1);
    r2.freed = 1;
    dgram_socket_free(s2);
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_run_for(ctx, 100);
    CHECK_STR(r2.log.text, "lL");
    CHECK_EQ(r2.after_free, 0);
    CHECK_EQ(r.bad + r2.bad, 0);

    dgram_context_free(ctx);
    sink_close(&rx);
}

/* (a) close, dispatch, socket_free, context_free. */
static void test_free_order_a(void) {
    printf("test_free_order_a\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4, 0);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6, 0);
    uint16_t p4 = bind_listen(ctx, s4, &r4);
    CHECK_OK(dgram_bind(s6, 0, "::1", NULL));
    RUN_UNTIL(ctx, r6.listen_p, 1);
    blast(p4, 2);
    RUN_UNTIL(ctx, r4.messages, 2);
    CHECK_OK(dgram_close(s4, on_close_once));
    CHECK_OK(dgram_close(s6, on_close_once));
    RUN_UNTIL(ctx, r4.close_once, 1);
    RUN_UNTIL(ctx, r6.close_once, 1);
    CHECK_STR(r4.log.text, "lLMMcC");
    CHECK_STR(r6.log.text, "lcC");
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    dgram_context_free(ctx);
    CHECK_EQ(r4.bad + r6.bad, 0);
}

/* (b) context_free first, with sockets open in every state; the handles
 * then answer EBADF and are freed afterwards. */
static void test_free_order_b(void) {
    printf("test_free_order_b\n");
    static slot slots[4];
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec ra, rb, rc, rd;
    dgram_socket *a = rec_socket(ctx, DGRAM_UDP4, &ra, 0); /* bound, quiet */
    dgram_socket *b = rec_socket(ctx, DGRAM_UDP6, &rb, 0); /* never bound */
    dgram_socket *c = rec_socket(ctx, DGRAM_UDP4, &rc, 0); /* datagrams and sends pending */
    dgram_socket *d = rec_socket(ctx, DGRAM_UDP4, &rd, 0); /* closed, 'close' pending */
    bind_listen(ctx, a, &ra);
    CHECK_OK(dgram_bind(c, 0, "127.0.0.1", on_listen_once));
    uint16_t pc = test_port(c);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(dgram_send(c, "xyz", 3, test_port(a), "127.0.0.1", send_cb,
                            slot_init(&slots[i], &rc, i)));
    }
    blast(pc, 3);
    CHECK_OK(dgram_close(d, on_close_once));
    test_wait_active(ctx, 1 + 1 + 1 + 4 + 3 + 4 + 1); /* a, c bound; c: listening, 4 sends,
                                                    3 datagrams; a: 4 datagrams; d: close */
    dgram_context_free(ctx);

    dgram_socket *all[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        dgram_addr addr;
        CHECK_CODE(dgram_send(all[i], "x", 1, 9, i == 1 ? "::1" : "127.0.0.1", send_cb, NULL),
                   DGRAM_EBADF);
        CHECK_CODE(dgram_address(all[i], &addr), DGRAM_EBADF);
        CHECK_CODE(dgram_close(all[i], on_close_once), DGRAM_EBADF);
        CHECK_CODE(dgram_bind(all[i], 0, NULL, NULL), DGRAM_EBADF);
        CHECK_CODE(dgram_fileno(all[i]), DGRAM_EBADF);
    }
    test_check_all_ebadf(c, DGRAM_UDP4);
    test_check_all_ebadf(b, DGRAM_UDP6);
    test_sleep_ms(50);
    for (int i = 0; i < 4; i++)
        dgram_socket_free(all[i]);
    CHECK_STR(ra.log.text, "lL");
    CHECK_STR(rb.log.text, "");
    CHECK_STR(rc.log.text, "");
    CHECK_STR(rd.log.text, "");
    CHECK_EQ(g_stray_send_cbs, 0);
    CHECK_EQ(ra.bad + rb.bad + rc.bad + rd.bad, 0);
}

/* (c) socket_free without close, then context_free. */
static void test_free_order_c(void) {
    printf("test_free_order_c\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec ra, rb, rc;
    dgram_socket *a = rec_socket(ctx, DGRAM_UDP4, &ra, 0);
    dgram_socket *b = rec_socket(ctx, DGRAM_UDP6, &rb, 0);
    dgram_socket *c = rec_socket(ctx, DGRAM_UDP4, &rc, 0);
    uint16_t pa = bind_listen(ctx, a, &ra);
    CHECK_OK(dgram_bind(b, 0, "::1", on_listen_once)); /* 'listening' pending */
    blast(pa, 4);
    test_wait_active(ctx, 1 + 1 + 1 + 4);
    ra.freed = rb.freed = rc.freed = 1;
    dgram_socket_free(a);
    dgram_socket_free(b);
    dgram_socket_free(c); /* never bound */
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_run_for(ctx, 100);
    dgram_context_free(ctx);
    CHECK_STR(ra.log.text, "lL");
    CHECK_STR(rb.log.text, "");
    CHECK_STR(rc.log.text, "");
    CHECK_EQ(ra.after_free + rb.after_free + rc.after_free, 0);
    CHECK_EQ(ra.bad + rb.bad + rc.bad, 0);
}

/* (d) context_free from inside a 'message' callback, with more events of
 * that socket and of another waiting; the handles are freed after dispatch
 * returns. */
static void test_free_order_d(void) {
    printf("test_free_order_d\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec ra, rb;
    dgram_socket *a = rec_socket(ctx, DGRAM_UDP4, &ra, 0);
    dgram_socket *b = rec_socket(ctx, DGRAM_UDP4, &rb, 0);
    uint16_t pa = bind_listen(ctx, a, &ra);
    uint16_t pb = bind_listen(ctx, b, &rb);
    CHECK_EQ(dgram_context_active(ctx), 2);
    blast(pa, 3);
    test_wait_active(ctx, 2 + 3);
    blast(pb, 3);
    test_wait_active(ctx, 2 + 3 + 3);
    ra.action = ACT_CTX_FREE_IN_MSG;
    ra.ctx = ctx;
    int rc = dgram_context_dispatch(ctx, 0);
    CHECK(ra.ctx == NULL); /* the context was freed inside */
    CHECK_CODE(rc, DGRAM_EBADF); /* and dispatch says so */
    CHECK_STR(ra.log.text, "lLM");
    CHECK_STR(rb.log.text, "lL");
    CHECK_CODE(dgram_send(a, "x", 1, pb, "127.0.0.1", send_cb, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_address(b, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_close(a, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_close(b, NULL), DGRAM_EBADF);
    dgram_socket_free(b);
    dgram_socket_free(a);
    CHECK_EQ(ra.bad + rb.bad, 0);
}

/* close from inside 'listening': 'close' follows once. */
static void test_close_in_listening_cb(void) {
    printf("test_close_in_listening_cb\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    r.action = ACT_CLOSE_IN_LISTEN_ONCE;
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", on_listen_once));
    /* 'listening' runs; the datagrams are dropped */
    queue_then_dispatch_one(ctx, test_port(s), 3, 1 + 1 + 3);
    CHECK_OK(r.rc_in_cb);
    CHECK_STR(r.log.text, "lL");
    CHECK_EQ(dgram_context_active(ctx), 1);
    check_closed(ctx, &r, "lLcC");
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* bind then close before dispatching (Node's close-during-bind): the
 * 'listening' of that bind never comes, 'close' does, once. */
static void test_close_during_bind(void) {
    printf("test_close_during_bind\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", on_listen_once));
    CHECK_EQ(dgram_context_active(ctx), 2); /* bound + 'listening' */
    CHECK_OK(dgram_close(s, on_close_once));
    CHECK_EQ(dgram_context_active(ctx), 1); /* the 'close' alone */
    check_closed(ctx, &r, "cC");
    CHECK_EQ(r.listen_p + r.listen_once, 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* dgram_send on an unbound socket (implicit bind), then close before
 * dispatch: the send's callback comes exactly once (written: NULL; still
 * queued: ECANCELED), then 'close'; the implicit bind's 'listening' does not
 * come after close. With the slow loopback, three big sends: the later ones
 * are still queued and are cancelled. */
static void test_implicit_bind_close(void) {
    printf("test_implicit_bind_close\n");
    static slot slots[3];
    sink rx = sink_open();
    uint16_t port = rx.port;

    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    g_in_call = 1;
    CHECK_OK(dgram_send(s, "hello", 5, port, "127.0.0.1", send_cb, slot_init(&slots[0], &r, 0)));
    CHECK_OK(dgram_close(s, on_close_once));
    g_in_call = 0;
    CHECK_EQ(dgram_context_active(ctx), 2); /* the send's completion + 'close' */
    RUN_UNTIL(ctx, r.close_once, 1);
    test_run_for(ctx, 100);
    CHECK_EQ(slots[0].calls, 1);
    CHECK_EQ(slots[0].length, 5);
    if (slots[0].code == 0)
        CHECK_STR(r.log.text, "ScC");
    else {
        CHECK_CODE(slots[0].code, DGRAM_ECANCELED);
        CHECK_STR(r.log.text, "XcC");
    }
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
    sink_close(&rx);

    /* The same with sends that really queue. */
    int orig = test_slow_lo_enter();
    if (orig < 0) {
        printf("  (no private namespace with a slow lo here: queued variant skipped)\n");
        return;
    }
    rx = sink_open();
    port = rx.port;
    ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    s = rec_socket(ctx, DGRAM_UDP4, &r, 4096);
    test_slow_lo_leave(orig);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dgram_send(s, g_big, sizeof g_big, port, "127.0.0.1", send_cb,
                            slot_init(&slots[i], &r, i)));
    }
    CHECK_OK(dgram_close(s, on_close_once));
    CHECK_EQ(dgram_context_active(ctx), 3 + 1);
    RUN_UNTIL(ctx, r.close_once, 1);
    test_run_for(ctx, 100);
    /* no 'listening': the implicit bind's is dropped by the close */
    CHECK(check_written_then_cancelled(&r, slots, 3, sizeof g_big, port, "") < 3);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    dgram_context_free(ctx);
    sink_close(&rx);
}

/* I/O-thread dispatch: dgram_close from the host thread while datagrams are
 * being delivered on the I/O thread; no 'message' after it returns, then
 * 'close' once. Then free from inside the I/O thread's own callback. */
static void test_close_io_thread(void) {
    printf("test_close_io_thread\n");
    dgram_context *ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r, 0);
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", on_listen_once));
    WAIT_UNTIL(r.listen_once, 1);
    uint16_t port = test_port(s);
    blast(port, 300);
    WAIT_UNTIL(r.messages, 1);
    CHECK_OK(dgram_close(s, on_close_once));
    test_add(&r.closed_returned, 1);
    int at = test_load(&r.messages);
    WAIT_UNTIL(r.close_once, 1);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&r.messages), at);
    CHECK_EQ(test_load(&r.after_close), 0);
    CHECK_EQ(test_load(&r.close_p), 1);
    CHECK_EQ(test_load(&r.close_once), 1);
    CHECK(r.log.len >= 5 && strcmp(r.log.text + r.log.len - 2, "cC") == 0);
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);

    /* free from inside its own message callback, on the I/O thread */
    rec r2;
    dgram_socket *s2 = rec_socket(ctx, DGRAM_UDP4, &r2, 0);
    CHECK_OK(dgram_bind(s2, 0, "127.0.0.1", on_listen_once));
    WAIT_UNTIL(r2.listen_once, 1);
    uint16_t p2 = test_port(s2);
    r2.self_port = p2;
    r2.action = ACT_SEND_FREE_IN_MSG;
    blast(p2, 20);
    WAIT_UNTIL(r2.messages, 1);
    test_sleep_ms(150);
    CHECK_EQ(test_load(&r2.messages), 1);
    CHECK_EQ(r2.after_free, 0);
    CHECK_STR(r2.log.text, "lLM");
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(g_stray_send_cbs, 0);
    CHECK_EQ(r2.bad, 0);
    dgram_context_free(ctx);
}

/* NULL handles: free functions accept them. */
static void test_free_null(void) {
    printf("test_free_null\n");
    dgram_socket_free(NULL);
    dgram_context_free(NULL);
    CHECK_CODE(dgram_close(NULL, NULL), DGRAM_EINVAL);
    CHECK_EQ(dgram_context_active(NULL), 0);
}

int main(void) {
    test_watchdog(60);
    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < sizeof g_big; i++)
        g_big[i] = (uint8_t)(i * 7 + 3);
    g_tx = test_context(DGRAM_DISPATCH_HOST, 0);
    g_txs = test_socket(g_tx, DGRAM_UDP4, NULL, NULL);

    test_close_once_async_order();
    test_close_udp6_and_no_handlers();
    test_close_unbound();
    test_calls_after_close_ebadf();
    test_no_message_after_close();
    test_close_in_message_cb();
    test_free_in_message_cb();
    test_free_in_listening_cb();
    test_free_in_close_cb();
    test_free_other_socket_in_cb();
    test_queued_sends_cancelled();
    test_free_with_pending_sends();
    test_active_after_close();
    test_free_order_a();
    test_free_order_b();
    test_free_order_c();
    test_free_order_d();
    test_close_in_listening_cb();
    test_close_during_bind();
    test_implicit_bind_close();
    test_close_io_thread();
    test_free_null();
    /* kept last, so that a failure here cannot hide the others' results */
    test_free_in_persistent_listening_cb();

    dgram_socket_free(g_txs);
    dgram_context_free(g_tx);
    printf("all close tests passed\n");
    return 0;
}
