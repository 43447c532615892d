/*
 * The context and dispatch: dgram_context_new and its options, the
 * notification fd, dgram_context_dispatch / dgram_context_run and their
 * counts, dgram_context_active as the host loop's keep-alive count, EBUSY
 * for nested or concurrent dispatch, I/O-thread dispatch, dgram_context_free
 * (with open sockets, and from inside a callback), dgram_version and the
 * error strings.
 *
 * Only 127.0.0.1 is used, on ports the OS picks.
 */
#include "recorder.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>

/* ---- helpers ------------------------------------------------------------ */

/* Everything one socket's callbacks saw. Callbacks write the log before they
 * bump a counter (atomically), so a thread that sees the counter also sees
 * the log. */
typedef struct {
    dgram_context *ctx;
    int listening, closes, sends_ok, sends_err, errors;
    int last_send_code;
    size_t last_send_len;
    inbox in;      /* the datagrams */
    event_log log; /* L listening, M message, S / X send ok / failed, C close, E error */
    /* Which thread ran the callbacks. */
    int callbacks;
    thread_check threads;
    /* Results of calls made from inside callbacks. */
    int nested[4];
    int nested_done;
    int send_fail;
} rec;

static void rec_init(rec *r, dgram_context *ctx) {
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    thread_check_init(&r->threads);
}

static void note(rec *r, char what) {
    event_log_add(&r->log, what);
    thread_check_note(&r->threads);
    test_add(&r->callbacks, 1);
}

static void on_listening(dgram_socket *s, void *ud) {
    (void)s;
    rec *r = ud;
    note(r, 'L');
    test_add(&r->listening, 1);
}

static void on_close(dgram_socket *s, void *ud) {
    (void)s;
    rec *r = ud;
    note(r, 'C');
    test_add(&r->closes, 1);
}

static void on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                       void *ud) {
    rec *r = ud;
    note(r, 'M');
    inbox_store(&r->in, s, msg, len, rinfo);
}

static void on_error(dgram_socket *s, const dgram_error *err, void *ud) {
    (void)s;
    (void)err;
    rec *r = ud;
    note(r, 'E');
    test_add(&r->errors, 1);
}

/* send_data is the sending socket's rec. */
static void on_send(dgram_socket *s, const dgram_error *err, size_t len, void *send_data) {
    (void)s;
    rec *r = send_data;
    r->last_send_len = len;
    r->last_send_code = err ? err->code : 0;
    note(r, err ? 'X' : 'S');
    test_add(err ? &r->sends_err : &r->sends_ok, 1);
}

/* A udp4 socket (NULL options) with every callback pointing at `r`, which is
 * cleared for context `c`; not bound. */
static dgram_socket *make_socket(dgram_context *c, rec *r) {
    rec_init(r, c);
    dgram_socket *s = test_socket_with(c, NULL, on_message, r);
    CHECK_OK(dgram_on_listening(s, on_listening));
    CHECK_OK(dgram_on_close(s, on_close));
    CHECK_OK(dgram_on_error(s, on_error));
    return s;
}

/* Whether the context's fd is readable right now. */
static int readable(dgram_context *c) {
    struct pollfd p = {.fd = dgram_context_fd(c), .events = POLLIN, .revents = 0};
    CHECK(p.fd >= 0);
    int rc = poll(&p, 1, 0);
    CHECK(rc >= 0);
    return rc == 1 && (p.revents & POLLIN) != 0;
}

/* Waits (without dispatching) until the fd becomes readable; fails on a hang. */
static void wait_readable(dgram_context *c) {
    struct pollfd p = {.fd = dgram_context_fd(c), .events = POLLIN, .revents = 0};
    int rc = poll(&p, 1, TEST_WAIT_MS);
    if (rc != 1)
        FAIL("context fd did not become readable (poll returned %d)", rc);
}

/* Bytes waiting in the kernel receive queue of a library socket. */
static int kernel_queued(dgram_socket *s) {
    int n = -1;
    CHECK(ioctl(dgram_fileno(s), FIONREAD, &n) == 0);
    return n;
}

/* ---- version and error strings -------------------------------------------- */

static void test_version_and_error_strings(void) {
    puts("test_version_and_error_strings");
    CHECK_STR(dgram_version(), "0.2.0");
    /* The header's macros are the library's version (both from Cargo.toml). */
    char from_macros[32];
    snprintf(from_macros, sizeof from_macros, "%d.%d.%d", DGRAM_VERSION_MAJOR, DGRAM_VERSION_MINOR,
             DGRAM_VERSION_PATCH);
    CHECK_STR(dgram_version(), from_macros);
    CHECK(dgram_version() == dgram_version()); /* static */

    CHECK_STR(dgram_err_name(DGRAM_EADDRINUSE), "EADDRINUSE");
    CHECK_STR(dgram_strerror(DGRAM_EADDRINUSE), "address already in use");
    CHECK_STR(dgram_err_name(DGRAM_EINVAL), "EINVAL");
    CHECK_STR(dgram_strerror(DGRAM_EINVAL), "invalid argument");
    CHECK_STR(dgram_err_name(DGRAM_EBADF), "EBADF");
    CHECK_STR(dgram_strerror(DGRAM_EBADF), "bad file descriptor");
    CHECK_STR(dgram_err_name(DGRAM_ECANCELED), "ECANCELED");
    CHECK_STR(dgram_strerror(DGRAM_ECANCELED), "operation canceled");
    CHECK_STR(dgram_err_name(DGRAM_EBUSY), "EBUSY");
    CHECK_STR(dgram_err_name(DGRAM_EUNKNOWN), "UNKNOWN");

    /* Unknown codes: readable, never NULL. */
    const int unknown[] = {-9999, 1, 12345, -4000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK_STR(dgram_err_name(unknown[i]), "UNKNOWN");
        CHECK_STR(dgram_strerror(unknown[i]), "unknown error");
    }

    /* Every code the header lists: its errno name, the errno value negated,
     * and a real description. */
#define CODE(x) {DGRAM_##x, -(x), #x}
    static const struct {
        int code, neg_errno;
        const char *name;
    } codes[] = {
        CODE(EPERM),        CODE(EINTR),         CODE(EIO),          CODE(EBADF),
        CODE(EAGAIN),       CODE(ENOMEM),        CODE(EACCES),       CODE(EBUSY),
        CODE(ENODEV),       CODE(EINVAL),        CODE(ENFILE),       CODE(EMFILE),
        CODE(EMSGSIZE),     CODE(ENOPROTOOPT),   CODE(EPROTONOSUPPORT), CODE(EOPNOTSUPP),
        CODE(EAFNOSUPPORT), CODE(EADDRINUSE),    CODE(EADDRNOTAVAIL), CODE(ENETDOWN),
        CODE(ENETUNREACH),  CODE(ECONNRESET),    CODE(ENOBUFS),      CODE(EISCONN),
        CODE(ENOTCONN),     CODE(ETIMEDOUT),     CODE(ECONNREFUSED), CODE(EHOSTDOWN),
        CODE(EHOSTUNREACH), CODE(EALREADY),      CODE(ECANCELED),
    };
#undef CODE
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK_EQ(codes[i].code, codes[i].neg_errno);
        CHECK_STR(dgram_err_name(codes[i].code), codes[i].name);
        const char *msg = dgram_strerror(codes[i].code);
        CHECK(msg != NULL);
        CHECK(msg[0] != '\0');
        if (strcmp(msg, "unknown error") == 0)
            FAIL("dgram_strerror(%s) is \"unknown error\"", codes[i].name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(msg, dgram_strerror(codes[j].code)) == 0)
                FAIL("%s and %s share the description \"%s\"", codes[i].name,
                     codes[j].name, msg);
    }
}

/* ---- dgram_context_new ----------------------------------------------------- */

static void test_context_new_options(void) {
    puts("test_context_new_options");
    dgram_context *c = dgram_context_new(NULL);
    CHECK(c != NULL);
    CHECK(dgram_context_fd(c) >= 0);
    CHECK_EQ(dgram_context_active(c), 0);
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, -1), 0); /* nothing active: at once */
    CHECK(!readable(c));
    dgram_context_free(c);

    /* Zeroed options are the defaults; both modes; a queue limit. */
    dgram_context_options o;
    memset(&o, 0, sizeof o);
    c = dgram_context_new(&o);
    CHECK(c != NULL);
    dgram_context *host16 = test_context(DGRAM_DISPATCH_HOST, 16);
    dgram_context *io = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_context *io16 = test_context(DGRAM_DISPATCH_IO_THREAD, 16);
    CHECK(dgram_context_fd(c) != dgram_context_fd(host16));
    CHECK(dgram_context_fd(io) >= 0);
    CHECK_EQ(dgram_context_dispatch(io, 0), 0);
    CHECK_EQ(dgram_context_run(io, -1), 0);
    CHECK_EQ(dgram_context_active(io16), 0);

    /* A dispatch value that is not a dgram_dispatch: NULL, whatever else. */
    const int bad[] = {7, 2, -1, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&o, 0, sizeof o);
        o.dispatch = (dgram_dispatch)bad[i];
        if (dgram_context_new(&o) != NULL)
            FAIL("dgram_context_new accepted dispatch %d", bad[i]);
        o.max_pending_events = 16;
        if (dgram_context_new(&o) != NULL)
            FAIL("dgram_context_new accepted dispatch %d", bad[i]);
    }

    dgram_context_free(c);
    dgram_context_free(host16);
    dgram_context_free(io);
    dgram_context_free(io16);
    dgram_context_free(NULL);
}

/* max_pending_events bounds the datagrams that wait in the library; the rest
 * wait in the kernel's buffer (the socket is not read meanwhile) and come, in
 * order, once dispatch has made room. Other events are not bounded by it. */
static void test_max_pending_events(void) {
    puts("test_max_pending_events");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 4);
    rec rr, rs;
    dgram_socket *r = make_socket(c, &rr);
    dgram_socket *s = make_socket(c, &rs);
    test_bind(r, "127.0.0.1");
    test_bind(s, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    uint16_t port = test_port(r);
    CHECK_EQ(dgram_context_active(c), 2);

    /* 10 datagrams with send callbacks: all 10 completions wait (they are not
     * datagrams), and 4 of the datagrams; 6 stay in the kernel. */
    for (uint8_t i = 0; i < 10; i++)
        CHECK_OK(dgram_send(s, &i, 1, port, "127.0.0.1", on_send, &rs));
    test_wait_active(c, 2 + 10 + 4);
    test_sleep_ms(50);
    CHECK_EQ(dgram_context_active(c), 2 + 10 + 4);
    CHECK_EQ(kernel_queued(r), 1); /* the next one waits there, 1 byte */
    CHECK_EQ(dgram_context_dispatch(c, 0), 14);
    CHECK_EQ(rs.sends_ok, 10);
    CHECK_EQ(rs.sends_err, 0);
    CHECK_EQ(rr.in.count, 4);
    CHECK_EQ(rr.in.len, 1);
    CHECK_EQ(rr.in.data[0], 3); /* the first four, in order: 0 1 2 3 */
    CHECK_STR(rr.log.text, "LMMMM");

    /* Room again: the other six follow, four and two, still in order. */
    RUN_UNTIL(c, rr.in.count, 10);
    CHECK_EQ(rr.in.data[0], 9);
    CHECK_STR(rr.log.text, "LMMMMMMMMMM");
    CHECK_EQ(kernel_queued(r), 0);
    CHECK_EQ(dgram_context_active(c), 2);

    uint8_t last = 99;
    CHECK_OK(dgram_send(s, &last, 1, port, "127.0.0.1", NULL, NULL));
    RUN_UNTIL(c, rr.in.count, 11);
    CHECK_EQ(rr.in.data[0], 99);
    CHECK_EQ(rr.in.rinfo.port, test_port(s));

    dgram_socket_free(r);
    dgram_socket_free(s);
    dgram_context_free(c);
}

/* ---- the fd and dispatch counts ------------------------------------------- */

static void test_fd_and_dispatch_counts(void) {
    puts("test_fd_and_dispatch_counts");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r[3];
    dgram_socket *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = make_socket(c, &r[i]);
    CHECK(!readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    for (int i = 0; i < 3; i++)
        test_bind(s[i], "127.0.0.1");
    /* Three listening events wait, none ran inside bind. */
    CHECK(readable(c));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i].listening, 0);

    /* One at a time: the fd stays readable while more wait. */
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    CHECK_EQ(r[0].listening + r[1].listening + r[2].listening, 1);
    CHECK(readable(c));
    CHECK(readable(c)); /* polling does not consume it */
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    CHECK_EQ(r[0].listening + r[1].listening + r[2].listening, 2);
    CHECK(readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i].listening, 1);
    CHECK(!readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 1), 0);
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);

    /* Three more sockets at once: dispatch(0) takes all three. */
    rec q[3];
    dgram_socket *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = make_socket(c, &q[i]);
        test_bind(t[i], "127.0.0.1");
    }
    CHECK(readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 0), 3);
    CHECK(!readable(c));
    /* max_events larger than what waits. */
    CHECK_OK(dgram_close(t[0], NULL));
    CHECK_OK(dgram_close(t[1], NULL));
    CHECK_EQ(dgram_context_dispatch(c, 5), 2);
    CHECK(!readable(c));

    /* A datagram arriving from the I/O thread makes it readable too. */
    uint16_t p1 = test_port(s[1]);
    CHECK_OK(dgram_send(s[0], "ping", 4, p1, "127.0.0.1", NULL, NULL));
    wait_readable(c);
    CHECK_EQ(r[1].in.count, 0);
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    check_inbox(&r[1].in, 1, "ping", 4, "127.0.0.1", test_port(s[0]), DGRAM_IPV4);
    CHECK(!readable(c));

    /* A send callback and the datagram: two events, counted exactly. */
    CHECK_OK(dgram_send(s[0], "pong", 4, p1, "127.0.0.1", on_send, &r[0]));
    RUN_UNTIL(c, r[1].in.count, 2);
    CHECK_EQ(r[0].sends_ok, 1);
    CHECK_EQ(r[0].last_send_len, 4);
    CHECK_STR(r[0].log.text, "LS");
    CHECK_STR(r[1].log.text, "LMM");
    CHECK(!readable(c));

    /* Events with no callback set count too. */
    dgram_socket *bare = test_socket_with(c, NULL, NULL, NULL);
    CHECK_OK(dgram_bind(bare, 0, "127.0.0.1", NULL));
    CHECK_OK(dgram_send(s[0], "x", 1, test_port(bare), "127.0.0.1", NULL, NULL));
    wait_readable(c);
    int got = dgram_context_dispatch(c, 0);
    if (got == 1) { /* listening first, the datagram may still be on its way */
        wait_readable(c);
        got += dgram_context_dispatch(c, 0);
    }
    CHECK_EQ(got, 2);
    CHECK_OK(dgram_close(bare, NULL));
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);

    for (int i = 0; i < 3; i++) {
        dgram_socket_free(s[i]);
        dgram_socket_free(t[i]);
    }
    dgram_socket_free(bare);
    CHECK_EQ(dgram_context_active(c), 0);
    dgram_context_free(c);
}

/* ---- dgram_context_run ----------------------------------------------------- */

static void test_run(void) {
    puts("test_run");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    rec ra, rb;
    dgram_socket *a = make_socket(c, &ra);
    dgram_socket *b = make_socket(c, &rb);

    /* Only an unbound socket: nothing active, run returns 0 at once (a hang
     * here is caught by the watchdog). */
    CHECK_EQ(dgram_context_active(c), 0);
    CHECK_EQ(dgram_context_run(c, -1), 0);
    CHECK_EQ(dgram_context_run(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, 100000), 0);
    CHECK_EQ(dgram_context_run(c, -5), 0);

    /* Two binds: run returns both events. */
    test_bind(a, "127.0.0.1");
    test_bind(b, "127.0.0.1");
    CHECK_EQ(dgram_context_run(c, -1), 2);
    CHECK_EQ(ra.listening, 1);
    CHECK_EQ(rb.listening, 1);

    /* Bound, nothing arrives: 0 on timeout. */
    CHECK_EQ(dgram_context_run(c, 100), 0);
    CHECK_EQ(dgram_context_run(c, 0), 0);
    CHECK_EQ(dgram_context_active(c), 2);

    /* A datagram from the I/O thread: run(-1) waits for it. */
    CHECK_OK(dgram_send(a, "abc", 3, test_port(b), "127.0.0.1", NULL, NULL));
    CHECK_EQ(dgram_context_run(c, -1), 1);
    CHECK_EQ(rb.in.count, 1);
    CHECK_MEM(rb.in.data, "abc", 3);

    /* The standard host loop ends once everything is closed and delivered. */
    CHECK_OK(dgram_close(a, NULL));
    CHECK_OK(dgram_close(b, NULL));
    int loops = 0;
    while (dgram_context_active(c)) {
        int rc = dgram_context_run(c, -1);
        CHECK(rc >= 0);
        CHECK(++loops < 10);
    }
    CHECK_EQ(ra.closes, 1);
    CHECK_EQ(rb.closes, 1);
    CHECK_EQ(dgram_context_run(c, -1), 0);

    dgram_socket_free(a);
    dgram_socket_free(b);
    dgram_context_free(c);
}

/* ---- dgram_context_active -------------------------------------------------- */

static void test_active_counts(void) {
    puts("test_active_counts");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_context *c2 = test_context(DGRAM_DISPATCH_HOST, 0); /* the peer, counted apart */
    rec ra, rp;
    dgram_socket *peer = make_socket(c2, &rp);
    test_bind(peer, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c2, 0), 1);
    uint16_t pport = test_port(peer);

    CHECK_EQ(dgram_context_active(NULL), 0);
    dgram_socket *a = make_socket(c, &ra);
    CHECK_EQ(dgram_context_active(c), 0); /* created, not bound */
    CHECK_OK(dgram_set_ttl(a, 9));
    CHECK_EQ(dgram_context_active(c), 0);
    test_bind(a, "127.0.0.1");
    CHECK_EQ(dgram_context_active(c), 2); /* bound + listening not delivered */
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(dgram_context_active(c), 1);

    /* A completed send with a callback counts until its callback ran. */
    CHECK_OK(dgram_send(a, "x", 1, pport, "127.0.0.1", on_send, &ra));
    CHECK_EQ(dgram_context_active(c), 2);
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(ra.sends_ok, 1);
    CHECK_EQ(dgram_context_active(c), 1);
    /* Without a callback, a send counts only until it is written. */
    CHECK_OK(dgram_send(a, "x", 1, pport, "127.0.0.1", NULL, NULL));
    test_wait_active(c, 1);
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);

    /* A datagram waiting for dispatch counts. */
    CHECK_OK(dgram_send(peer, "in", 2, test_port(a), "127.0.0.1", NULL, NULL));
    test_wait_active(c, 2);
    /* A second send completion. */
    CHECK_OK(dgram_send(a, "yz", 2, pport, "127.0.0.1", on_send, &ra));
    CHECK_EQ(dgram_context_active(c), 3);

    /* After close: only 'close' and the send completion count, not the
     * socket nor its waiting datagram. */
    CHECK_OK(dgram_close(a, NULL));
    CHECK_EQ(dgram_context_active(c), 2);
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    CHECK_EQ(ra.in.count, 0); /* the datagram was dropped at close */
    CHECK_EQ(ra.sends_ok, 2);
    CHECK_EQ(ra.last_send_len, 2);
    CHECK_EQ(ra.closes, 1);
    CHECK_STR(ra.log.text, "LSSC");
    CHECK_EQ(dgram_context_active(c), 0);
    dgram_socket_free(a);
    CHECK_EQ(dgram_context_active(c), 0);

    /* Implicit bind: the socket, its listening and the completion. */
    rec rb;
    dgram_socket *b = make_socket(c, &rb);
    CHECK_OK(dgram_send(b, "imp", 3, pport, "127.0.0.1", on_send, &rb));
    CHECK_EQ(dgram_context_active(c), 3);
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    CHECK_STR(rb.log.text, "LS");
    CHECK_EQ(dgram_context_active(c), 1);

    /* Freed: counts 0 at once, whatever was pending (listening, a completion,
     * a datagram). */
    CHECK_OK(dgram_send(peer, "in", 2, test_port(b), "127.0.0.1", NULL, NULL));
    test_wait_active(c, 2);
    CHECK_OK(dgram_send(b, "imp", 3, pport, "127.0.0.1", on_send, &rb));
    CHECK_EQ(dgram_context_active(c), 3);
    dgram_socket_free(b);
    CHECK_EQ(dgram_context_active(c), 0);

    rec rd;
    dgram_socket *d = make_socket(c, &rd);
    test_bind(d, "127.0.0.1");
    CHECK_OK(dgram_send(d, "q", 1, pport, "127.0.0.1", on_send, &rd));
    CHECK_EQ(dgram_context_active(c), 3);
    dgram_socket_free(d);
    CHECK_EQ(dgram_context_active(c), 0);

    /* Closed then freed before dispatch: the pending close no longer counts. */
    rec re;
    dgram_socket *e = make_socket(c, &re);
    test_bind(e, "127.0.0.1");
    CHECK_OK(dgram_close(e, NULL));
    CHECK_EQ(dgram_context_active(c), 1); /* only 'close' */
    dgram_socket_free(e);
    CHECK_EQ(dgram_context_active(c), 0);

    /* Nothing ran for the freed sockets. */
    test_run_for(c, 50);
    CHECK_STR(rb.log.text, "LS");
    CHECK_STR(rd.log.text, "");
    CHECK_STR(re.log.text, "");
    CHECK_EQ(dgram_context_run(c, -1), 0);

    dgram_socket_free(peer);
    dgram_context_free(c);
    dgram_context_free(c2);
}

/* ---- EBUSY ----------------------------------------------------------------- */

static void nested_listening(dgram_socket *s, void *ud) {
    (void)s;
    rec *r = ud;
    r->nested[0] = dgram_context_dispatch(r->ctx, 0);
    r->nested[1] = dgram_context_dispatch(r->ctx, 1);
    r->nested[2] = dgram_context_run(r->ctx, 0);
    r->nested[3] = dgram_context_run(r->ctx, -1);
    test_add(&r->nested_done, 1);
    on_listening(s, ud);
}

static void nested_message(dgram_socket *s, const uint8_t *msg, size_t len,
                           const dgram_addr *rinfo, void *ud) {
    rec *r = ud;
    r->nested[0] = dgram_context_run(r->ctx, 10);
    r->nested[1] = dgram_context_dispatch(r->ctx, 0);
    r->nested[2] = dgram_context_run(r->ctx, -1);
    r->nested[3] = dgram_context_dispatch(r->ctx, 1);
    test_add(&r->nested_done, 1);
    on_message(s, msg, len, rinfo, ud);
}

static void test_nested_dispatch_busy(void) {
    puts("test_nested_dispatch_busy");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r1, r2;
    rec_init(&r1, c);
    dgram_socket *a = test_socket_with(c, NULL, nested_message, &r1);
    dgram_socket *b = make_socket(c, &r2);
    /* Two listening events: the nested calls must not run the second one. */
    CHECK_OK(dgram_bind(a, 0, "127.0.0.1", nested_listening));
    test_bind(b, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    CHECK_EQ(r1.nested_done, 1);
    for (int i = 0; i < 4; i++)
        CHECK_CODE(r1.nested[i], DGRAM_EBUSY);
    CHECK_EQ(r1.listening, 1);
    CHECK_EQ(r2.listening, 0);
    CHECK(readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(r2.listening, 1);

    /* From a message callback, reached through dgram_context_run. */
    memset(r1.nested, 0, sizeof r1.nested);
    CHECK_OK(dgram_send(b, "n", 1, test_port(a), "127.0.0.1", NULL, NULL));
    RUN_UNTIL(c, r1.in.count, 1);
    CHECK_EQ(r1.nested_done, 2);
    for (int i = 0; i < 4; i++)
        CHECK_CODE(r1.nested[i], DGRAM_EBUSY);

    /* Dispatch works again once the callbacks returned. */
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    dgram_socket_free(a);
    dgram_socket_free(b);
    dgram_context_free(c);
}

typedef struct {
    dgram_context *ctx;
    dgram_socket *waker;
    int run_rc, run_wait_rc, dispatch_one_rc, bind_rc, unexpected, timed_out;
} busy_arg;

static void *busy_thread(void *p) {
    busy_arg *a = p;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    for (;;) {
        int rc = dgram_context_dispatch(a->ctx, 0);
        if (rc == DGRAM_EBUSY)
            break; /* the main thread is inside dgram_context_run */
        if (rc != 0) {
            a->unexpected = rc;
            break;
        }
        if (test_now_ms() > deadline) {
            a->timed_out = 1;
            break;
        }
        test_sleep_ms(1);
    }
    a->run_rc = dgram_context_run(a->ctx, 0);
    a->run_wait_rc = dgram_context_run(a->ctx, -1); /* EBUSY at once, no wait */
    a->dispatch_one_rc = dgram_context_dispatch(a->ctx, 1);
    /* Wake the main thread: a listening event. */
    a->bind_rc = dgram_bind(a->waker, 0, "127.0.0.1", NULL);
    return NULL;
}

static void test_dispatch_from_second_thread_busy(void) {
    puts("test_dispatch_from_second_thread_busy");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    rec ra, rw;
    dgram_socket *a = make_socket(c, &ra);
    dgram_socket *w = make_socket(c, &rw);
    test_bind(a, "127.0.0.1"); /* keeps the context active, so run(-1) waits */
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);

    busy_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.ctx = c;
    arg.waker = w;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, busy_thread, &arg) == 0);
    /* The other thread's own dispatch calls may overlap our first attempts:
     * those come back EBUSY, and we try again. */
    int rc, tries = 0;
    do {
        rc = dgram_context_run(c, -1);
        CHECK(++tries < 1000000);
    } while (rc == DGRAM_EBUSY);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(arg.timed_out, 0);
    CHECK_CODE(arg.unexpected, 0);
    CHECK_CODE(arg.run_rc, DGRAM_EBUSY);
    CHECK_CODE(arg.run_wait_rc, DGRAM_EBUSY);
    CHECK_CODE(arg.dispatch_one_rc, DGRAM_EBUSY);
    CHECK_OK(arg.bind_rc);
    CHECK_EQ(rc, 1); /* the waker's listening, run here on the main thread */
    CHECK_EQ(rw.listening, 1);
    CHECK(pthread_equal(rw.threads.owner, pthread_self()));

    dgram_socket_free(a);
    dgram_socket_free(w);
    dgram_context_free(c);
}

/* ---- I/O-thread dispatch ------------------------------------------------------ */

static void echo_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                         void *ud) {
    rec *r = ud;
    if (dgram_send(s, msg, len, rinfo->port, rinfo->address, on_send, r) != 0)
        test_add(&r->send_fail, 1);
    on_message(s, msg, len, rinfo, ud);
}

static void test_io_thread_mode(void) {
    puts("test_io_thread_mode");
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    rec rs, rc;
    rec_init(&rs, c);
    dgram_socket *server = test_socket_with(c, NULL, echo_message, &rs);
    CHECK_OK(dgram_on_listening(server, on_listening));
    CHECK_OK(dgram_on_close(server, on_close));
    dgram_socket *client = make_socket(c, &rc);
    test_bind(server, "127.0.0.1");
    test_bind(client, "127.0.0.1");
    WAIT_UNTIL(rs.listening, 1);
    WAIT_UNTIL(rc.listening, 1);
    CHECK_EQ(dgram_context_active(c), 2);

    /* Nothing to do for the host: 0 at once even with sockets bound. */
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, -1), 0);
    CHECK_EQ(dgram_context_run(c, 1000000), 0);

    const char text[] = "echo through the I/O thread";
    CHECK_OK(dgram_send(client, text, sizeof text, test_port(server), "127.0.0.1", on_send, &rc));
    WAIT_UNTIL(rc.in.count, 1);
    WAIT_UNTIL(rs.sends_ok, 1);
    CHECK_EQ(rs.in.count, 1);
    CHECK_EQ(rs.send_fail, 0);
    check_inbox(&rc.in, 1, text, sizeof text, "127.0.0.1", test_port(server), DGRAM_IPV4);
    CHECK_EQ(rs.in.rinfo.port, test_port(client));
    CHECK_STR(rc.log.text, "LSM");
    CHECK_STR(rs.log.text, "LMS");
    CHECK_EQ(rc.sends_ok, 1);
    CHECK_EQ(rc.last_send_len, sizeof text);

    /* The callbacks ran on one thread, not this one. */
    CHECK(!pthread_equal(rs.threads.owner, pthread_self()));
    CHECK(pthread_equal(rs.threads.owner, rc.threads.owner));
    CHECK_EQ(rs.threads.mismatch, 0);
    CHECK_EQ(rc.threads.mismatch, 0);
    /* The host fd never becomes readable in this mode. */
    CHECK(!readable(c));

    CHECK_OK(dgram_close(server, NULL));
    CHECK_OK(dgram_close(client, NULL));
    WAIT_UNTIL(rs.closes, 1);
    WAIT_UNTIL(rc.closes, 1);
    test_wait_active(c, 0);
    CHECK(pthread_equal(rs.threads.owner, rc.threads.owner));
    CHECK_EQ(rc.threads.mismatch, 0);
    CHECK_STR(rc.log.text, "LSMC");
    dgram_socket_free(server);
    dgram_socket_free(client);
    dgram_context_free(c);
}

/* ---- dgram_context_free ------------------------------------------------------ */

static void test_context_free_with_open_sockets(void) {
    puts("test_context_free_with_open_sockets");
    /* Host mode: a socket with listening pending, one with a completion and
     * a datagram pending, one unbound, one closed with 'close' pending, one
     * freed before the context. */
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    rec r[5];
    dgram_socket *s[5];
    for (int i = 0; i < 5; i++)
        s[i] = make_socket(c, &r[i]);
    test_bind(s[0], "127.0.0.1");
    test_bind(s[1], "127.0.0.1");
    test_bind(s[3], "127.0.0.1");
    test_bind(s[4], "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 4);
    CHECK_CODE(dgram_bind(s[0], 0, "127.0.0.1", NULL), DGRAM_EALREADY);
    CHECK_OK(dgram_send(s[1], "to0", 3, test_port(s[0]), "127.0.0.1", on_send, &r[1]));
    CHECK_OK(dgram_send(s[0], "to1", 3, test_port(s[1]), "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_close(s[3], NULL));
    dgram_socket_free(s[4]);
    wait_readable(c);
    dgram_context_free(c);
    for (int i = 0; i < 4; i++) {
        test_check_all_ebadf(s[i], DGRAM_UDP4);
        dgram_socket_free(s[i]);
    }
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(r[i].in.count, 0);
        CHECK_EQ(r[i].sends_ok + r[i].sends_err, 0);
        CHECK_EQ(r[i].closes, 0);
    }

    /* I/O-thread mode: datagrams flowing when the context goes; no callback
     * of any kind after dgram_context_free returns. */
    c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_context *hc = test_context(DGRAM_DISPATCH_HOST, 0);
    rec rr, rh;
    dgram_socket *recv = make_socket(c, &rr);
    dgram_socket *other = make_socket(c, &rr);
    dgram_socket *sender = make_socket(hc, &rh);
    test_bind(recv, "127.0.0.1");
    test_bind(other, "127.0.0.1");
    test_bind(sender, "127.0.0.1");
    uint16_t recv_port = test_port(recv);
    WAIT_UNTIL(rr.listening, 2);
    for (int i = 0; i < 50; i++)
        CHECK_OK(dgram_send(sender, &i, sizeof i, test_port(recv), "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_send(other, "o", 1, test_port(sender), "127.0.0.1", on_send, &rr));
    WAIT_UNTIL(rr.in.count, 1);
    dgram_context_free(c);
    int seen = test_load(&rr.callbacks);
    for (int i = 0; i < 50; i++)
        CHECK_OK(dgram_send(sender, &i, sizeof i, recv_port, "127.0.0.1", NULL, NULL));
    test_sleep_ms(100);
    CHECK_EQ(test_load(&rr.callbacks), seen);
    CHECK_EQ(rr.closes, 0);
    test_check_all_ebadf(recv, DGRAM_UDP4);
    test_check_all_ebadf(other, DGRAM_UDP4);
    /* Freed in the other order: context first, then the sockets. */
    dgram_socket_free(recv);
    dgram_socket_free(other);
    dgram_socket_free(sender);
    dgram_context_free(hc);
}

typedef struct {
    dgram_context *ctx;
    int calls;
    int freed;
    int after_free;
} free_state;

static void free_in_listening(dgram_socket *s, void *ud) {
    (void)s;
    free_state *f = ud;
    test_add(&f->calls, 1);
    if (test_load(&f->freed)) {
        test_add(&f->after_free, 1);
        return;
    }
    dgram_context_free(f->ctx);
    test_add(&f->freed, 1);
}

static void free_in_message(dgram_socket *s, const uint8_t *msg, size_t len,
                            const dgram_addr *rinfo, void *ud) {
    (void)msg;
    (void)len;
    (void)rinfo;
    free_in_listening(s, ud);
}

static void test_context_free_in_callback_host(void) {
    puts("test_context_free_in_callback_host");
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    free_state f;
    memset(&f, 0, sizeof f);
    f.ctx = c;
    dgram_socket *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = test_socket_with(c, NULL, NULL, &f);
        CHECK_OK(dgram_bind(s[i], 0, "127.0.0.1", free_in_listening));
    }
    /* The first listening callback frees the context: the other two never
     * run, and dispatch says the handle is gone. */
    CHECK_CODE(dgram_context_dispatch(c, 0), DGRAM_EBADF);
    CHECK_EQ(f.calls, 1);
    CHECK_EQ(f.freed, 1);
    for (int i = 0; i < 3; i++) {
        test_check_all_ebadf(s[i], DGRAM_UDP4);
        dgram_socket_free(s[i]);
    }
    CHECK_EQ(f.after_free, 0);

    /* From a message callback reached through dgram_context_run. */
    c = test_context(DGRAM_DISPATCH_HOST, 0);
    memset(&f, 0, sizeof f);
    f.ctx = c;
    dgram_socket *r = test_socket_with(c, NULL, free_in_message, &f);
    dgram_socket *snd = test_socket_with(c, NULL, NULL, NULL);
    test_bind(r, "127.0.0.1");
    test_bind(snd, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    for (int i = 0; i < 5; i++)
        CHECK_OK(dgram_send(snd, "m", 1, test_port(r), "127.0.0.1", NULL, NULL));
    int rc = 0;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (!f.freed) {
        rc = dgram_context_run(c, 50);
        CHECK(rc >= 0 || f.freed);
        CHECK(test_now_ms() < deadline);
    }
    CHECK_CODE(rc, DGRAM_EBADF); /* the run that freed it says so */
    CHECK_EQ(f.calls, 1);
    test_check_all_ebadf(r, DGRAM_UDP4);
    test_check_all_ebadf(snd, DGRAM_UDP4);
    dgram_socket_free(snd);
    dgram_socket_free(r);
}

static void test_context_free_in_callback_io_thread(void) {
    puts("test_context_free_in_callback_io_thread");
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_context *hc = test_context(DGRAM_DISPATCH_HOST, 0);
    free_state f;
    memset(&f, 0, sizeof f);
    f.ctx = c;
    dgram_socket *r = test_socket_with(c, NULL, free_in_message, &f);
    dgram_socket *r2 = test_socket_with(c, NULL, free_in_message, &f);
    test_bind(r, "127.0.0.1");
    test_bind(r2, "127.0.0.1");
    rec rh;
    dgram_socket *snd = make_socket(hc, &rh);
    test_bind(snd, "127.0.0.1");
    uint16_t p1 = test_port(r), p2 = test_port(r2);
    for (int i = 0; i < 20; i++) {
        CHECK_OK(dgram_send(snd, "m", 1, p1, "127.0.0.1", NULL, NULL));
        CHECK_OK(dgram_send(snd, "n", 1, p2, "127.0.0.1", NULL, NULL));
    }
    WAIT_UNTIL(f.freed, 1);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&f.calls), 1);
    CHECK_EQ(test_load(&f.after_free), 0);
    test_check_all_ebadf(r, DGRAM_UDP4);
    test_check_all_ebadf(r2, DGRAM_UDP4);
    dgram_socket_free(r);
    dgram_socket_free(r2);
    dgram_socket_free(snd);
    dgram_context_free(hc);
}

/* A host that sends with callbacks but never dispatches gets DGRAM_ENOBUFS
 * once 65536 completions wait, instead of unbounded memory; after dispatch
 * every accepted send has had its callback exactly once and sending works
 * again. */
static int backpressure_done;
static void backpressure_sent(dgram_socket *s, const dgram_error *err, size_t length, void *data) {
    (void)s;
    (void)data;
    CHECK(err == NULL);
    CHECK_EQ(length, 1);
    backpressure_done++;
}

static void test_completion_backpressure(void) {
    printf("test_completion_backpressure\n");
    dgram_context *ctx = dgram_context_new(NULL);
    CHECK(ctx != NULL);
    /* A port nobody listens on any more: the datagrams vanish, and an
     * unconnected socket gets no error for them, so the only events are the
     * completions. */
    dgram_socket *gone = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    uint16_t port = test_bind(gone, "127.0.0.1");
    dgram_socket_free(gone);
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    test_bind(s, "127.0.0.1");
    backpressure_done = 0;
    int accepted = 0, rc = 0;
    while ((rc = dgram_send(s, "x", 1, port, "127.0.0.1", backpressure_sent, NULL)) == 0)
        accepted++;
    CHECK_CODE(rc, DGRAM_ENOBUFS);
    /* The cap counts completions waiting for dispatch. Normally every send
     * is written at once and completes, so exactly 65536 are accepted; on a
     * loaded machine loopback can answer EAGAIN for a while, and those sends
     * wait in the socket's queue (itself capped at 65536) and complete when
     * written, so a few more may be accepted. */
    CHECK(accepted >= 65536);
    CHECK(accepted <= 2 * 65536);
    CHECK_EQ(backpressure_done, 0);
    /* Every accepted send completes, exactly once. */
    RUN_UNTIL(ctx, backpressure_done, accepted);
    test_run_for(ctx, 50);
    CHECK_EQ(backpressure_done, accepted);
    CHECK_OK(dgram_send(s, "x", 1, port, "127.0.0.1", backpressure_sent, NULL));
    RUN_UNTIL(ctx, backpressure_done, accepted + 1);
    test_run_for(ctx, 20);
    CHECK_EQ(backpressure_done, accepted + 1);
    dgram_socket_free(s);
    dgram_context_free(ctx);
}

/* dgram_context_free from a socket's persistent 'close' handler: the
 * one-shot close callback of that same event does not run (no callback after
 * the free returned). The socket had closed, so the free no longer counted it
 * among its sockets (found by the fuzzer). */
static dgram_context *g_close_ctx;
static int g_close_freed, g_once_after_free;
static void close_frees_context(dgram_socket *s, void *userdata) {
    (void)s, (void)userdata;
    dgram_context_free(g_close_ctx);
    g_close_freed = 1;
}
static void close_once_after(dgram_socket *s, void *userdata) {
    (void)s, (void)userdata;
    if (g_close_freed)
        g_once_after_free++;
}
static void test_context_free_in_close_handler(void) {
    puts("test_context_free_in_close_handler");
    g_close_ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket *s = test_socket(g_close_ctx, DGRAM_UDP4, NULL, NULL);
    CHECK_OK(dgram_on_close(s, close_frees_context));
    CHECK_OK(dgram_close(s, close_once_after));
    CHECK_CODE(dgram_context_dispatch(g_close_ctx, 0), DGRAM_EBADF);
    CHECK_EQ(g_close_freed, 1);
    CHECK_EQ(g_once_after_free, 0);
    dgram_socket_free(s);
}

int main(void) {
    test_watchdog(60);
    setvbuf(stdout, NULL, _IONBF, 0);
    test_version_and_error_strings();
    test_context_new_options();
    test_max_pending_events();
    test_fd_and_dispatch_counts();
    test_run();
    test_active_counts();
    test_nested_dispatch_busy();
    test_dispatch_from_second_thread_busy();
    test_io_thread_mode();
    test_context_free_with_open_sockets();
    test_context_free_in_callback_host();
    test_context_free_in_callback_io_thread();
    test_context_free_in_close_handler();
    test_completion_backpressure();
    puts("all passed");
    return 0;
}
