/*
 * Recorders shared by libdgram's C tests: what callbacks saw, kept for the
 * test to assert on afterwards.
 *
 *   event_log       the order of events, one letter each ("lLM", "LSSC")
 *   sock_rec        everything one socket's callbacks saw: the event order,
 *                   a count per kind, the last error, the first datagrams;
 *                   rec_socket makes a socket with every handler recording
 *                   into one, and an optional action hook lets a test act
 *                   from inside a callback (close, free, send)
 *   inbox           how many datagrams a socket received, and the last one;
 *                   inbox_socket / inbox_socket_on_host make a socket
 *                   recording into one, check_inbox checks it
 *   send_slot       one send's completion, for a socket recorded in a
 *                   sock_rec: send_slot_init makes it the send's send_data,
 *                   rec_on_sent (the send's callback) fills it in, adds 'S'
 *                   or 'X' to that sock_rec's log and runs its action
 *   send_rec        send completions (send_data points to it);
 *                   send_and_wait sends and waits for the completion
 *   thread_check    whether every callback ran on one and the same thread
 *   test_bind_wait  bind, then dispatch until 'listening' (host dispatch)
 *
 * Callbacks may run on the context's I/O thread: every recorder stores its
 * data first and publishes its count last, with test_add, so a thread that
 * sees the count (test_load, RUN_UNTIL, WAIT_UNTIL) also sees the data.
 */
#ifndef DGRAM_TEST_RECORDER_H
#define DGRAM_TEST_RECORDER_H

#include "test_util.h" /* first: it defines _GNU_SOURCE */

#include <pthread.h>

/* ---- event_log --------------------------------------------------------------
 * The order of events across kinds, one letter per event, compared whole:
 * CHECK_STR(log.text, "lLMcC"). Letters past the end of the buffer are
 * dropped (a whole-string comparison then fails). */
typedef struct {
    char text[1024];
    int len;
} event_log;

static inline void event_log_add(event_log *log, char c) {
    if (log->len < (int)sizeof log->text - 1) {
        log->text[log->len++] = c;
        log->text[log->len] = '\0';
    }
}

/* ---- inbox ------------------------------------------------------------------
 * What one socket received: the count, and a whole copy of the last
 * datagram and its sender (the library's `msg` and `rinfo` are valid only
 * during the callback). Make it the socket's userdata with inbox_on_message
 * as its message callback, or call inbox_store from a callback of your own. */
typedef struct {
    dgram_socket *socket; /* when set, each datagram must come with this handle */
    int count;            /* datagrams received (published last) */
    size_t len;           /* the last one's length */
    uint8_t data[65536];  /* the last one's bytes (any UDP payload fits) */
    dgram_addr rinfo;     /* the last one's sender */
} inbox;

static inline void inbox_store(inbox *in, dgram_socket *s, const uint8_t *msg,
                               size_t len, const dgram_addr *rinfo) {
    CHECK(in != NULL);
    if (in->socket != NULL && s != in->socket)
        FAIL("datagram delivered with handle %p, expected %p", (void *)s,
             (void *)in->socket);
    CHECK(len <= sizeof in->data);
    if (len)
        memcpy(in->data, msg, len);
    in->len = len;
    in->rinfo = *rinfo;
    test_add(&in->count, 1);
}

static inline void inbox_on_message(dgram_socket *s, const uint8_t *msg,
                                    size_t len, const dgram_addr *rinfo,
                                    void *userdata) {
    inbox_store(userdata, s, msg, len, rinfo);
}

/* Creates a socket with `opts` (NULL: udp4 defaults) whose datagrams go to
 * `in`, cleared and tied to the new handle; with `in` NULL the socket has no
 * message callback. */
static inline dgram_socket *inbox_socket(dgram_context *ctx,
                                         const dgram_socket_options *opts,
                                         inbox *in) {
    if (in)
        memset(in, 0, sizeof *in);
    dgram_socket *s = test_socket_with(ctx, opts, in ? inbox_on_message : NULL, in);
    if (in)
        in->socket = s;
    return s;
}

/* Creates a socket of `type`, with reuse_addr as given, on one of the two
 * hosts of test_two_hosts_or_skip (host B when `on_b`, else host A), whose
 * datagrams go to `in` as with inbox_socket. The calling thread makes it in
 * that host's namespace (a socket belongs to the namespace of the thread
 * that creates it), then returns to host A's. */
static inline dgram_socket *inbox_socket_on_host(dgram_context *ctx,
                                                 const test_two_hosts *hosts,
                                                 bool on_b, dgram_type type,
                                                 bool reuse_addr, inbox *in) {
    dgram_socket_options opts = test_opts(type);
    opts.reuse_addr = reuse_addr;
    test_netns_enter(on_b ? hosts->peer_ns : hosts->self_ns);
    dgram_socket *s = inbox_socket(ctx, &opts, in);
    test_netns_enter(hosts->self_ns);
    return s;
}

/* Checks that `in` got exactly `count` datagrams, the last one being the
 * `len` bytes at `bytes`, from `from`:`port` of `family`. */
static inline void check_inbox(const inbox *in, int count, const void *bytes,
                               size_t len, const char *from, uint16_t port,
                               dgram_family family) {
    CHECK_EQ(test_load(&in->count), count);
    CHECK_EQ(in->len, len);
    CHECK_MEM(in->data, bytes, len);
    CHECK_ADDR(&in->rinfo, from, port, family);
}

/* check_inbox for a datagram that is the text `text` (no NUL). */
static inline void check_inbox_text(const inbox *in, int count, const char *text,
                                    const char *from, uint16_t port,
                                    dgram_family family) {
    check_inbox(in, count, text, strlen(text), from, port, family);
}

/* ---- sock_rec ---------------------------------------------------------------
 * Everything the callbacks of one socket saw, in one record that is the
 * socket's userdata. Letters of `log`: l / L 'listening' (persistent
 * handler / bind's one-shot callback), k / K 'connect' (persistent /
 * one-shot), c / C 'close' (persistent / one-shot), E 'error', M 'message',
 * ! a callback that must not run (rec_on_unexpected), and for the socket's
 * sends made with a send_slot (below) S sent / X failed.
 * The first REC_MSGS datagrams are kept (their first REC_MSG_CAP bytes and
 * their whole length); with `in` set, every datagram is also stored whole
 * in that inbox. Data first, counters last (test_add), so a thread that
 * sees a count also sees what it counts. */
#define REC_MSGS 16
#define REC_MSG_CAP 64

typedef struct sock_rec sock_rec;

/* Called for each event once it is logged and counted, with its letter, on
 * the thread the callback runs on: a test's own action from inside a
 * callback. */
typedef void (*sock_rec_action)(sock_rec *r, dgram_socket *s, char letter);

struct sock_rec {
    dgram_socket *s; /* every callback must come with this handle */
    event_log log;
    int listen_p, listen_once, connect_p, connect_once, close_p, close_once;
    int errors;            /* 'error' events; the last one: */
    int err_code;
    char err_syscall[32];  /* "(null)" when the library gave none */
    char err_hostname[256]; /* "" when the library gave none */
    dgram_addr err_addr;
    int count;                         /* datagrams */
    size_t len[REC_MSGS];              /* their whole lengths */
    uint8_t data[REC_MSGS][REC_MSG_CAP]; /* their first bytes */
    dgram_addr rinfo[REC_MSGS];
    inbox *in;             /* when set, every datagram is stored here too */
    int freed;             /* the test released the handle: set it first */
    int after_free;        /* callbacks that came after `freed` was set */
    int bad;               /* callbacks with another handle */
    int unexpected;        /* calls of rec_on_unexpected */
    int sends;             /* completions of sends with a send_slot (published last) */
    int send_errors;       /* those that failed */
    sock_rec_action action;
    void *user;            /* the action's own data */
};

static inline void rec_note(sock_rec *r, dgram_socket *s, char letter) {
    if (s != r->s)
        r->bad++;
    if (r->freed)
        r->after_free++;
    event_log_add(&r->log, letter);
}

/* The action runs after the count is published, so it sees its own event
 * counted (r->count - 1 is the datagram's index). A thread waiting on a
 * count may therefore see it before the action's effects: wait on what the
 * action does instead. */
static inline void rec_act(sock_rec *r, dgram_socket *s, char letter) {
    sock_rec_action action = __atomic_load_n(&r->action, __ATOMIC_ACQUIRE);
    if (action)
        action(r, s, letter);
}

static inline void rec_event(sock_rec *r, dgram_socket *s, char letter, int *count) {
    rec_note(r, s, letter);
    test_add(count, 1);
    rec_act(r, s, letter);
}

/* Sets `r`'s action and its data. Safe while callbacks may run on another
 * thread: `user` is written first, then the action is published, so a
 * callback that sees the action sees its data too. */
static inline void rec_set_action(sock_rec *r, sock_rec_action action, void *user) {
    r->user = user;
    __atomic_store_n(&r->action, action, __ATOMIC_RELEASE);
}

static inline void rec_on_listening(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, 'l', &r->listen_p);
}
static inline void rec_on_listening_once(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, 'L', &r->listen_once);
}
static inline void rec_on_connect(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, 'k', &r->connect_p);
}
static inline void rec_on_connect_once(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, 'K', &r->connect_once);
}
static inline void rec_on_close(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, 'c', &r->close_p);
}
static inline void rec_on_close_once(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, 'C', &r->close_once);
}

static inline void rec_on_error(dgram_socket *s, const dgram_error *err, void *u) {
    sock_rec *r = u;
    r->err_code = err->code;
    snprintf(r->err_syscall, sizeof r->err_syscall, "%s", err->syscall ? err->syscall : "(null)");
    snprintf(r->err_hostname, sizeof r->err_hostname, "%s", err->hostname ? err->hostname : "");
    r->err_addr = err->addr;
    rec_event(r, s, 'E', &r->errors);
}

static inline void rec_on_message(dgram_socket *s, const uint8_t *msg, size_t len,
                                  const dgram_addr *rinfo, void *u) {
    sock_rec *r = u;
    int i = r->count;
    if (i < REC_MSGS) {
        memcpy(r->data[i], msg, len < REC_MSG_CAP ? len : REC_MSG_CAP);
        r->len[i] = len;
        r->rinfo[i] = *rinfo;
    }
    if (r->in)
        inbox_store(r->in, s, msg, len, rinfo);
    rec_event(r, s, 'M', &r->count);
}

/* A one-shot event callback that must never run (that of a call the
 * library refused): counts in `unexpected`, letter '!'. */
static inline void rec_on_unexpected(dgram_socket *s, void *u) {
    sock_rec *r = u;
    rec_event(r, s, '!', &r->unexpected);
}

/* Sets the persistent handlers of `s` ('listening', 'connect', 'close',
 * 'error') to record into `r`, which must already be `s`'s userdata (with
 * rec_on_message as its message callback, if it records datagrams too). */
static inline void rec_attach(dgram_socket *s, sock_rec *r) {
    r->s = s;
    CHECK_OK(dgram_on_listening(s, rec_on_listening));
    CHECK_OK(dgram_on_connect(s, rec_on_connect));
    CHECK_OK(dgram_on_close(s, rec_on_close));
    CHECK_OK(dgram_on_error(s, rec_on_error));
}

/* Creates a socket with `opts` (NULL: udp4 defaults) whose every handler
 * records into `r` (cleared first). */
static inline dgram_socket *rec_socket_with(dgram_context *ctx,
                                            const dgram_socket_options *opts,
                                            sock_rec *r) {
    memset(r, 0, sizeof *r);
    dgram_socket *s = test_socket_with(ctx, opts, rec_on_message, r);
    rec_attach(s, r);
    return s;
}

/* rec_socket_with for a socket of `type` with default options. */
static inline dgram_socket *rec_socket(dgram_context *ctx, dgram_type type, sock_rec *r) {
    dgram_socket_options opts = test_opts(type);
    return rec_socket_with(ctx, &opts, r);
}

/* Host dispatch: binds `s` (recording into `r`) to address:port (0: the OS
 * picks) with rec_on_listening_once, runs `ctx` until it came, and returns
 * the port bound. */
static inline uint16_t rec_bind_wait(dgram_context *ctx, dgram_socket *s, sock_rec *r,
                                     int32_t port, const char *address) {
    int before = test_load(&r->listen_once);
    CHECK_OK(dgram_bind(s, port, address, rec_on_listening_once));
    RUN_UNTIL(ctx, r->listen_once, before + 1);
    uint16_t got = test_port(s);
    CHECK(got != 0);
    if (port)
        CHECK_EQ(got, port);
    return got;
}

/* Checks datagram `i` of `r`: `len` bytes equal to `bytes` (compared up to
 * REC_MSG_CAP), from `from`:`port` of `family`. */
static inline void rec_check_msg(const sock_rec *r, int i, const void *bytes, size_t len,
                                 const char *from, uint16_t port, dgram_family family) {
    CHECK(i < REC_MSGS);
    CHECK(i < test_load(&r->count));
    CHECK_EQ(r->len[i], len);
    CHECK_MEM(r->data[i], bytes, len < REC_MSG_CAP ? len : REC_MSG_CAP);
    CHECK_ADDR(&r->rinfo[i], from, port, family);
}

/* rec_check_msg for a datagram that is the text `text` (no NUL). */
static inline void rec_check_text(const sock_rec *r, int i, const char *text,
                                  const char *from, uint16_t port, dgram_family family) {
    rec_check_msg(r, i, text, strlen(text), from, port, family);
}

/* ---- send_slot --------------------------------------------------------------
 * One send's completion, in a record of its own: the send's send_data is
 * the slot (send_slot_init ties it to the sending socket's sock_rec) and
 * rec_on_sent its callback. The slot keeps what the callback was given;
 * the sock_rec gets the letter, S sent or X failed (the code tells which
 * error), between the socket's events, and counts it in `sends` (the
 * failed ones in `send_errors` too); then the sock_rec's action runs with
 * that letter, so a test may act from inside a send callback as from any
 * other. `seq` gives the order of completions: a case checks that the
 * slot of its i-th send has seq i. Data first, counts last, as in
 * sock_rec. */
typedef struct {
    sock_rec *rec;       /* the sending socket's record */
    int calls;           /* completions of this send: one, once it came (published) */
    int seq;             /* the completion's place among rec's: 0 for the first */
    int code;            /* 0 when sent, else the error's code */
    size_t length;
    char syscall[32];    /* the error's syscall: "" when sent, "(null)" when it gave none */
    char hostname[256];  /* the error's host name: "" when sent, "(null)" when it gave none */
    dgram_addr addr;     /* the error's address: zero when sent */
} send_slot;

/* Clears `sl` for one send from the socket recorded in `r`; returns it, the
 * send's send_data. Fill it in before the send: the callback may run on
 * the I/O thread. */
static inline send_slot *send_slot_init(send_slot *sl, sock_rec *r) {
    memset(sl, 0, sizeof *sl);
    sl->rec = r;
    return sl;
}

static inline void rec_on_sent(dgram_socket *s, const dgram_error *err, size_t length,
                               void *send_data) {
    send_slot *sl = send_data;
    if (sl == NULL || sl->rec == NULL)
        FAIL("a send completion whose send_data is no send_slot (%p)", send_data);
    sock_rec *r = sl->rec;
    char letter = err ? 'X' : 'S';
    sl->length = length;
    sl->code = err ? err->code : 0;
    if (err) {
        snprintf(sl->syscall, sizeof sl->syscall, "%s", err->syscall ? err->syscall : "(null)");
        snprintf(sl->hostname, sizeof sl->hostname, "%s",
                 err->hostname ? err->hostname : "(null)");
        sl->addr = err->addr;
        r->send_errors++;
    }
    sl->seq = test_load(&r->sends);
    rec_note(r, s, letter);
    test_add(&sl->calls, 1);
    test_add(&r->sends, 1);
    rec_act(r, s, letter);
}

/* Checks that the send of `sl` completed once, sent, with `length`. */
static inline void send_slot_check_ok(const send_slot *sl, size_t length) {
    CHECK_EQ(test_load(&sl->calls), 1);
    if (sl->code != 0)
        FAIL("send failed: %s (%s)", dgram_err_name(sl->code), sl->syscall);
    CHECK_EQ(sl->length, length);
}

/* Checks that the send of `sl` completed once, failed with `code` from
 * `syscall`, with `length`. */
static inline void send_slot_check_error(const send_slot *sl, int code, size_t length,
                                         const char *syscall) {
    CHECK_EQ(test_load(&sl->calls), 1);
    CHECK_CODE(sl->code, code);
    CHECK_EQ(sl->length, length);
    CHECK_STR(sl->syscall, syscall);
}

/* ---- send_rec ---------------------------------------------------------------
 * Completions of the sends given it as send_data, with send_rec_on_sent as
 * their callback: how many, how many failed, and the last one's details. */
typedef struct {
    int count;       /* completions (published last) */
    int errors;      /* completions with an error */
    int code;        /* the last one: 0 when sent, else its error code */
    size_t length;   /* the last one's length */
    void *send_data; /* the last one's send_data (this record) */
    dgram_error err; /* the last one's error, zeroed when it was sent */
} send_rec;

static inline void send_rec_on_sent(dgram_socket *s, const dgram_error *err,
                                    size_t length, void *send_data) {
    (void)s;
    send_rec *sr = send_data;
    CHECK(sr != NULL);
    sr->length = length;
    sr->send_data = send_data;
    sr->code = err ? err->code : 0;
    if (err) {
        sr->errors++;
        sr->err = *err;
    } else {
        memset(&sr->err, 0, sizeof sr->err);
    }
    test_add(&sr->count, 1);
}

/* Host dispatch: sends the `len` bytes of `msg` from `s` to address:port
 * with `sr` as send_data, runs `ctx` until that send's callback came, and
 * checks that it reports success and the length `len`. */
static inline void send_and_wait(dgram_context *ctx, dgram_socket *s,
                                 const void *msg, size_t len, uint16_t port,
                                 const char *address, send_rec *sr) {
    int before = test_load(&sr->count);
    CHECK_OK(dgram_send(s, msg, len, port, address, send_rec_on_sent, sr));
    RUN_UNTIL(ctx, sr->count, before + 1);
    if (sr->code != 0)
        FAIL("send to %s:%u failed: %s (%s)", address ? address : "(default)",
             (unsigned)port, dgram_err_name(sr->code),
             sr->err.syscall ? sr->err.syscall : "?");
    CHECK_EQ(sr->length, len);
}

/* ---- thread_check -----------------------------------------------------------
 * Callbacks that must all run on one thread: the first call records its
 * thread as `owner`; a later one on another thread counts as a mismatch. */
typedef struct {
    pthread_mutex_t lock;
    int seen;
    pthread_t owner;
    int mismatch;
} thread_check;

static inline void thread_check_init(thread_check *t) {
    memset(t, 0, sizeof *t);
    CHECK(pthread_mutex_init(&t->lock, NULL) == 0);
}

static inline void thread_check_note(thread_check *t) {
    pthread_mutex_lock(&t->lock);
    if (!t->seen) {
        t->seen = 1;
        t->owner = pthread_self();
    } else if (!pthread_equal(t->owner, pthread_self())) {
        t->mismatch++;
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---- bind and wait for 'listening' --------------------------------------- */

/* 'listening' events seen by test_count_listening. */
static int test_listenings;

static inline void test_count_listening(dgram_socket *s, void *userdata) {
    (void)s;
    (void)userdata;
    test_add(&test_listenings, 1);
}

/* Host dispatch: binds `s` to address:port (port 0: the OS picks) with
 * test_count_listening as the one-shot callback, runs `ctx` until it came,
 * and returns the port bound (never 0; `port` itself when one was asked). */
static inline uint16_t test_bind_wait(dgram_context *ctx, dgram_socket *s,
                                      int32_t port, const char *address) {
    int before = test_load(&test_listenings);
    CHECK_OK(dgram_bind(s, port, address, test_count_listening));
    RUN_UNTIL(ctx, test_listenings, before + 1);
    uint16_t got = test_port(s);
    CHECK(got != 0);
    if (port)
        CHECK_EQ(got, port);
    return got;
}

#endif /* DGRAM_TEST_RECORDER_H */
