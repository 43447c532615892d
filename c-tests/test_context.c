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
#include "test_runner.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>

/* ---- helpers ------------------------------------------------------------ */

/* A socket's sock_rec and what sock_rec does not hold: the threads its
 * callbacks ran on (its send completions, made with a send_slot on `r`,
 * included), and the echoes it sends from inside them. */
typedef struct {
    sock_rec r;
    thread_check threads;
    send_slot echo[REC_MSGS]; /* echo_action's send of datagram i */
    int send_fail; /* sends refused inside its callbacks (echo_action) */
} peer_rec;

static void note_thread(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    (void)letter;
    peer_rec *p = r->user;
    thread_check_note(&p->threads);
}

/* A udp4 socket (NULL options) recording into `p`, cleared first; not
 * bound. */
static dgram_socket *peer_socket(dgram_context *c, peer_rec *p) {
    memset(p, 0, sizeof *p);
    thread_check_init(&p->threads);
    dgram_socket *s = rec_socket_with(c, NULL, &p->r);
    rec_set_action(&p->r, note_thread, p);
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
    dgram_context *c = dgram_context_new(NULL);
    CHECK(c != NULL);
    CHECK(dgram_context_fd(c) >= 0);
    CHECK_EQ(dgram_context_active(c), 0);
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, -1), 0); /* nothing active: at once */
    CHECK(!readable(c));
    dgram_context_free(c);

    /* Zeroed options are the defaults; both modes; a read limit
     * (max_pending_events). */
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

    /* A dispatch value that is not a dgram_dispatch: NULL, whatever else
     * (256 and 257 too: all of the int32_t field is read). */
    const int32_t bad[] = {7, 2, -1, 256, 257, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&o, 0, sizeof o);
        o.dispatch = bad[i];
        if (dgram_context_new(&o) != NULL)
            FAIL("dgram_context_new accepted dispatch %d", bad[i]);
        o.max_pending_events = 16;
        if (dgram_context_new(&o) != NULL)
            FAIL("dgram_context_new accepted dispatch %d", bad[i]);
    }

    dgram_context_free(c);
    test_context_finish(host16);
    test_context_finish(io);
    test_context_finish(io16);
    dgram_context_free(NULL);
}

/* What test_max_pending_events saw, across its two sockets, in order: a
 * letter per callback (S a send completion, M a datagram) and, for each
 * datagram, its byte and what its callback found still waiting in the
 * receiver's kernel buffer. */
#define MAXP_DATAGRAMS 21
static struct {
    event_log log;
    inbox in;                 /* the receiver's: the datagram being delivered */
    int count;                /* datagrams */
    int byte[MAXP_DATAGRAMS]; /* datagram i's byte */
    int next[MAXP_DATAGRAMS]; /* the next one in the kernel then, -1: none */
} maxp;

/* The byte of the next datagram waiting in `s`'s kernel receive buffer
 * (1-byte datagrams), left there; -1 when none waits. */
static int kernel_peek(dgram_socket *s) {
    uint8_t b = 0;
    ssize_t n = recv(dgram_fileno(s), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 1)
        return b;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    FAIL("recv(MSG_PEEK) returned %zd: %s", n, n < 0 ? strerror(errno) : "no error");
    return -2;
}

static void maxp_action(sock_rec *r, dgram_socket *s, char letter) {
    note_thread(r, s, letter);
    event_log_add(&maxp.log, letter);
    if (letter != 'M')
        return;
    int i = maxp.count++;
    CHECK(i < MAXP_DATAGRAMS);
    CHECK_EQ(maxp.in.len, 1);
    maxp.byte[i] = maxp.in.data[0];
    maxp.next[i] = kernel_peek(s);
}

/* Checks datagrams first..first+n-1 of test_max_pending_events: bytes
 * first.. in order, each delivered while next[i] waited behind it. */
static void maxp_check(int first, int n, const int *next) {
    for (int i = 0; i < n; i++) {
        CHECK_EQ(maxp.byte[first + i], first + i);
        if (maxp.next[first + i] != next[i])
            FAIL("datagram %d: %d waited in the kernel, expected %d", first + i,
                 maxp.next[first + i], next[i]);
    }
}

/* ---- a dispatch's max against events queued by its own callbacks ---------- */

static send_slot budget_sends[3];
static int budget_sent;

/* a's message callback sends with a completion: each queues an event that
 * the dispatch runs before the next read's datagrams. */
static void budget_send_from_cb(sock_rec *r, dgram_socket *s, char letter) {
    (void)r;
    if (letter != 'M' || budget_sent >= 3)
        return;
    uint8_t byte = (uint8_t)(100 + budget_sent);
    send_slot *sl = &budget_sends[budget_sent++];
    CHECK_OK(dgram_send(s, &byte, 1, test_port(s), "127.0.0.1", rec_on_sent, send_slot_init(sl, r)));
}

/* 3 datagrams wait for a, then 7 for b. dispatch(ctx, 10) reads a (3),
 * whose callbacks queue 3 completions, then reads b with room for the 7
 * it had left when the read began; the 3 completions run first, so only 4
 * of b's fit: the other 3 of that read are kept, not lost, and the next
 * dispatch delivers them first, in order. */
static void test_max_keeps_what_events_crowd_out(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec ra, rb;
    dgram_socket *a = rec_socket(c, DGRAM_UDP4, &ra);
    dgram_socket *b = rec_socket(c, DGRAM_UDP4, &rb);
    uint16_t pa = rec_bind_wait(c, a, &ra, 0, "127.0.0.1");
    uint16_t pb = rec_bind_wait(c, b, &rb, 0, "127.0.0.1");
    dgram_socket *tx = test_socket(c, DGRAM_UDP4, NULL, NULL);
    test_bind(tx, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 1); /* tx's 'listening' */
    for (uint8_t i = 0; i < 3; i++)
        CHECK_OK(dgram_send(tx, &i, 1, pa, "127.0.0.1", NULL, NULL));
    test_wait_queued(a);
    for (uint8_t i = 0; i < 7; i++)
        CHECK_OK(dgram_send(tx, &i, 1, pb, "127.0.0.1", NULL, NULL));
    test_wait_queued(b);
    rec_set_action(&ra, budget_send_from_cb, NULL);

    CHECK_EQ(dgram_context_dispatch(c, 10), 10);
    CHECK_EQ(ra.count, 3);
    CHECK_EQ(rb.count, 4);
    CHECK_EQ(ra.sends, 3);
    CHECK_STR(ra.log.text, "lLMMMSSS");
    /* Datagrams a sent to itself wait in its kernel buffer; b's other 3
     * wait in the library and go first. */
    CHECK_EQ(dgram_context_dispatch(c, 3), 3);
    CHECK_EQ(rb.count, 7);
    CHECK_EQ(ra.count, 3);
    for (int i = 0; i < 7; i++)
        rec_check_msg(&rb, i, &(uint8_t){(uint8_t)i}, 1, "127.0.0.1", test_port(tx), DGRAM_IPV4);
    CHECK_STR(rb.log.text, "lLMMMMMMM");
    test_run_for(c, 50);
    CHECK_EQ(ra.count, 6); /* its own three, 100..102 */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ra.data[3 + i][0], 100 + i);
        send_slot_check_ok(&budget_sends[i], 1);
    }
    CHECK_EQ(rb.count, 7);
    dgram_socket_free(tx);
    dgram_socket_free(a);
    dgram_socket_free(b);
    test_context_finish(c);
}

/* max_pending_events is the most datagrams one read takes from the kernel,
 * so the most the library holds undelivered: the rest wait in the socket's
 * kernel buffer, and come in order. dispatch(0) delivers the events queued
 * at entry, then makes up to four reads per ready socket; dispatch(max)
 * delivers at most max, and its reads take no more than that leaves room
 * for. Other events (send completions) are not bounded by it. Each
 * datagram's callback peeks at the receiver's kernel buffer: the datagram
 * waiting there shows where the read that took it ended. */
static void test_max_pending_events(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 4);
    peer_rec rr, rs;
    dgram_socket *r = peer_socket(c, &rr);
    dgram_socket *s = peer_socket(c, &rs);
    test_bind(r, "127.0.0.1");
    uint16_t sport = test_bind(s, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    uint16_t port = test_port(r);
    CHECK_EQ(dgram_context_active(c), 2);
    memset(&maxp, 0, sizeof maxp);
    maxp.in.socket = r;
    rr.r.in = &maxp.in;
    rec_set_action(&rr.r, maxp_action, &rr);
    rec_set_action(&rs.r, maxp_action, &rs);

    /* 10 datagrams with send callbacks, each written at once: the 10
     * completions wait (more than the bound: they are not datagrams), and
     * the 10 datagrams wait in r's kernel buffer, where active does not
     * count them. */
    send_slot sent[20];
    for (uint8_t i = 0; i < 10; i++)
        CHECK_OK(dgram_send(s, &i, 1, port, "127.0.0.1", rec_on_sent,
                            send_slot_init(&sent[i], &rs.r)));
    CHECK_EQ(dgram_send_queue_count(s), 0);
    test_wait_queued(r);
    CHECK_EQ(dgram_context_active(c), 2 + 10);
    CHECK_EQ(kernel_queued(r), 1); /* the first one waits there, 1 byte */
    CHECK_EQ(kernel_peek(r), 0);

    /* One dispatch(0): the 10 completions, then three reads of r, of 4, 4
     * and the last 2. */
    CHECK_EQ(dgram_context_dispatch(c, 0), 20);
    CHECK_STR(maxp.log.text, "SSSSSSSSSSMMMMMMMMMM");
    static const int next1[10] = {4, 4, 4, 4, 8, 8, 8, 8, -1, -1};
    maxp_check(0, 10, next1);
    CHECK_EQ(rs.r.sends, 10);
    CHECK_EQ(rr.r.count, 10);
    CHECK_EQ(kernel_queued(r), 0);
    CHECK_EQ(dgram_context_active(c), 2);
    CHECK(!readable(c));

    /* 10 more, dispatched 3 at a time: the completions queued at entry come
     * first; then each read takes only what the count leaves room for, so
     * the reads end after 11, 14, 17 and 19 and the library keeps nothing
     * between dispatches. */
    for (uint8_t i = 10; i < 20; i++)
        CHECK_OK(dgram_send(s, &i, 1, port, "127.0.0.1", rec_on_sent,
                            send_slot_init(&sent[i], &rs.r)));
    CHECK_EQ(dgram_send_queue_count(s), 0);
    test_wait_queued(r);
    CHECK_EQ(dgram_context_active(c), 2 + 10);
    static const struct {
        int delivered;
        const char *log;   /* what it delivered */
        uint32_t active;   /* completions left, and the two sockets */
        int left;          /* datagrams still in the kernel */
    } step[] = {
        {3, "SSS", 2 + 7, 1}, {3, "SSS", 2 + 4, 1}, {3, "SSS", 2 + 1, 1},
        {3, "SMM", 2, 1},     {3, "MMM", 2, 1},     {3, "MMM", 2, 1},
        {2, "MM", 2, 0},      {0, "", 2, 0},
    };
    char want[64] = "SSSSSSSSSSMMMMMMMMMM";
    int total = 0;
    for (size_t k = 0; k < sizeof step / sizeof step[0]; k++) {
        int got = dgram_context_dispatch(c, 3);
        if (got != step[k].delivered)
            FAIL("dispatch(3) number %zu delivered %d, expected %d", k + 1, got,
                 step[k].delivered);
        total += got;
        strcat(want, step[k].log);
        CHECK_STR(maxp.log.text, want);
        CHECK_EQ(dgram_context_active(c), step[k].active);
        CHECK_EQ(kernel_queued(r), step[k].left);
        CHECK_EQ(readable(c), step[k].left);
    }
    CHECK_EQ(total, 20);
    static const int next2[10] = {12, 12, 15, 15, 15, 18, 18, 18, -1, -1};
    maxp_check(10, 10, next2);

    CHECK_EQ(rs.r.sends, 20);
    CHECK_EQ(rs.r.send_errors, 0);
    for (int i = 0; i < 20; i++) {
        send_slot_check_ok(&sent[i], 1);
        CHECK_EQ(sent[i].seq, i);
    }
    CHECK_STR(rs.r.log.text, "lSSSSSSSSSSSSSSSSSSSS");
    CHECK_EQ(rr.r.count, 20);
    for (uint8_t i = 0; i < REC_MSGS; i++)
        rec_check_msg(&rr.r, i, &i, 1, "127.0.0.1", sport, DGRAM_IPV4);
    CHECK_STR(rr.r.log.text, "lMMMMMMMMMMMMMMMMMMMM");

    uint8_t last = 99;
    CHECK_OK(dgram_send(s, &last, 1, port, "127.0.0.1", NULL, NULL));
    RUN_UNTIL(c, rr.r.count, 21);
    CHECK_EQ(maxp.byte[20], 99);
    CHECK_EQ(maxp.next[20], -1);
    check_inbox(&maxp.in, 21, &last, 1, "127.0.0.1", sport, DGRAM_IPV4);
    CHECK_EQ(rr.r.bad + rs.r.bad, 0);
    CHECK_EQ(dgram_context_active(c), 2);

    dgram_socket_free(r);
    dgram_socket_free(s);
    test_context_finish(c);
}

/* ---- the fd and dispatch counts ------------------------------------------- */

static void test_fd_and_dispatch_counts(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    peer_rec r[3];
    dgram_socket *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = peer_socket(c, &r[i]);
    CHECK(!readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    for (int i = 0; i < 3; i++)
        test_bind(s[i], "127.0.0.1");
    /* Three listening events wait, none ran inside bind. */
    CHECK(readable(c));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i].r.listen_p, 0);

    /* One at a time: the fd stays readable while more wait. */
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    CHECK_EQ(r[0].r.listen_p + r[1].r.listen_p + r[2].r.listen_p, 1);
    CHECK(readable(c));
    CHECK(readable(c)); /* polling does not consume it */
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    CHECK_EQ(r[0].r.listen_p + r[1].r.listen_p + r[2].r.listen_p, 2);
    CHECK(readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i].r.listen_p, 1);
    CHECK(!readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 1), 0);
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);

    /* Three more sockets at once: dispatch(0) takes all three. */
    peer_rec q[3];
    dgram_socket *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = peer_socket(c, &q[i]);
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
    CHECK_STR(q[0].r.log.text, "lc");
    CHECK_STR(q[1].r.log.text, "lc");
    CHECK_STR(q[2].r.log.text, "l");

    /* A datagram waiting in a socket's kernel buffer makes it readable too. */
    uint16_t p1 = test_port(s[1]);
    CHECK_OK(dgram_send(s[0], "ping", 4, p1, "127.0.0.1", NULL, NULL));
    wait_readable(c);
    CHECK_EQ(r[1].r.count, 0);
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(r[1].r.count, 1);
    rec_check_text(&r[1].r, 0, "ping", "127.0.0.1", test_port(s[0]), DGRAM_IPV4);
    CHECK(!readable(c));

    /* A send callback and the datagram: two events, counted exactly. */
    send_slot pong;
    CHECK_OK(dgram_send(s[0], "pong", 4, p1, "127.0.0.1", rec_on_sent,
                        send_slot_init(&pong, &r[0].r)));
    RUN_UNTIL(c, r[1].r.count, 2);
    CHECK_EQ(r[0].r.sends, 1);
    send_slot_check_ok(&pong, 4);
    CHECK_STR(r[0].r.log.text, "lS");
    CHECK_STR(r[1].r.log.text, "lMM");
    rec_check_text(&r[1].r, 1, "pong", "127.0.0.1", test_port(s[0]), DGRAM_IPV4);
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
        CHECK_EQ(r[i].r.bad + q[i].r.bad, 0);
        dgram_socket_free(s[i]);
        dgram_socket_free(t[i]);
    }
    dgram_socket_free(bare);
    CHECK_EQ(dgram_context_active(c), 0);
    test_context_finish(c);
}

/* ---- dgram_context_run ----------------------------------------------------- */

static void test_run(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec ra, rb;
    dgram_socket *a = rec_socket_with(c, NULL, &ra);
    dgram_socket *b = rec_socket_with(c, NULL, &rb);

    /* Only an unbound socket: nothing active, run returns 0 at once (a hang
     * here is caught by the watchdog). */
    CHECK_EQ(dgram_context_active(c), 0);
    CHECK_EQ(dgram_context_run(c, -1), 0);
    CHECK_EQ(dgram_context_run(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, 100000), 0);
    CHECK_EQ(dgram_context_run(c, -5), 0);

    /* Two binds: run returns both events. */
    uint16_t aport = test_bind(a, "127.0.0.1");
    test_bind(b, "127.0.0.1");
    CHECK_EQ(dgram_context_run(c, -1), 2);
    CHECK_EQ(ra.listen_p, 1);
    CHECK_EQ(rb.listen_p, 1);

    /* Bound, nothing arrives: 0 on timeout. */
    CHECK_EQ(dgram_context_run(c, 100), 0);
    CHECK_EQ(dgram_context_run(c, 0), 0);
    CHECK_EQ(dgram_context_active(c), 2);

    /* A datagram on its way: run(-1) waits for it. */
    CHECK_OK(dgram_send(a, "abc", 3, test_port(b), "127.0.0.1", NULL, NULL));
    CHECK_EQ(dgram_context_run(c, -1), 1);
    CHECK_EQ(rb.count, 1);
    rec_check_text(&rb, 0, "abc", "127.0.0.1", aport, DGRAM_IPV4);

    /* The standard host loop ends once everything is closed and delivered. */
    CHECK_OK(dgram_close(a, NULL));
    CHECK_OK(dgram_close(b, NULL));
    int loops = 0;
    while (dgram_context_active(c)) {
        int rc = dgram_context_run(c, -1);
        CHECK(rc >= 0);
        CHECK(++loops < 10);
    }
    CHECK_EQ(ra.close_p, 1);
    CHECK_EQ(rb.close_p, 1);
    CHECK_STR(ra.log.text, "lc");
    CHECK_STR(rb.log.text, "lMc");
    CHECK_EQ(dgram_context_run(c, -1), 0);

    dgram_socket_free(a);
    dgram_socket_free(b);
    test_context_finish(c);
}

/* ---- run(-1) ends when nothing is left, whatever ended it ------------------ */

enum idle_by { IDLE_BY_FREE, IDLE_BY_UNREF };

typedef struct {
    dgram_socket *s;
    enum idle_by how;
    int host_running; /* set just before the host blocks in run(-1) */
    int rc;
} idler;

/* Waits until the host has entered run(-1), lets it block, then takes away
 * the context's last activity from this thread. No event results from
 * either: only the library's own wake-up can end the host's wait. */
static void *idle_from_thread(void *arg) {
    idler *x = arg;
    while (!test_load(&x->host_running))
        test_sleep_ms(1);
    test_sleep_ms(50); /* not asserted: only makes "already blocked" likely */
    if (x->how == IDLE_BY_FREE) {
        dgram_socket_free(x->s);
        x->rc = 0;
    } else {
        x->rc = dgram_socket_unref(x->s);
    }
    return NULL;
}

static void run_forever_until_idle(enum idle_by how) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket_with(c, NULL, &r);
    rec_bind_wait(c, s, &r, 0, "127.0.0.1");
    CHECK_EQ(dgram_context_active(c), 1);
    idler x = {.s = s, .how = how};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, idle_from_thread, &x), 0);
    test_store(&x.host_running, 1);
    /* A hang here is the bug: the watchdog turns it into a failure. */
    CHECK_EQ(dgram_context_run(c, -1), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_OK(x.rc);
    CHECK_EQ(dgram_context_active(c), 0);
    CHECK_STR(r.log.text, "lL");
    if (how == IDLE_BY_UNREF) {
        CHECK_OK(dgram_close(s, NULL));
        dgram_socket_free(s);
    }
    test_context_finish(c);
}

static void test_run_forever_ends_when_freed_elsewhere(void) { run_forever_until_idle(IDLE_BY_FREE); }
static void test_run_forever_ends_when_unrefd_elsewhere(void) { run_forever_until_idle(IDLE_BY_UNREF); }

/* ---- dgram_context_active -------------------------------------------------- */

static void test_active_counts(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_context *c2 = test_context(DGRAM_DISPATCH_HOST, 0); /* the peer, counted apart */
    peer_rec ra;
    sock_rec rp;
    dgram_socket *peer = rec_socket_with(c2, NULL, &rp);
    test_bind(peer, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c2, 0), 1);
    uint16_t pport = test_port(peer);

    CHECK_EQ(dgram_context_active(NULL), 0);
    dgram_socket *a = peer_socket(c, &ra);
    CHECK_EQ(dgram_context_active(c), 0); /* created, not bound */
    CHECK_OK(dgram_set_ttl(a, 9));
    CHECK_EQ(dgram_context_active(c), 0);
    test_bind(a, "127.0.0.1");
    CHECK_EQ(dgram_context_active(c), 2); /* bound + listening not delivered */
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(dgram_context_active(c), 1);

    /* A completed send with a callback counts until its callback ran. */
    send_slot sa[2];
    CHECK_OK(dgram_send(a, "x", 1, pport, "127.0.0.1", rec_on_sent, send_slot_init(&sa[0], &ra.r)));
    CHECK_EQ(dgram_context_active(c), 2);
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(ra.r.sends, 1);
    send_slot_check_ok(&sa[0], 1);
    CHECK_EQ(dgram_context_active(c), 1);
    /* Without a callback, a send counts only until it is written. */
    CHECK_OK(dgram_send(a, "x", 1, pport, "127.0.0.1", NULL, NULL));
    test_wait_active(c, 1);
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);

    /* A datagram waiting for dispatch does not count: it waits in the
     * socket's kernel buffer (the fd is readable for it). */
    CHECK_OK(dgram_send(peer, "in", 2, test_port(a), "127.0.0.1", NULL, NULL));
    test_wait_queued(a);
    CHECK_EQ(dgram_context_active(c), 1);
    CHECK(readable(c));
    /* A second send completion. */
    CHECK_OK(dgram_send(a, "yz", 2, pport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sa[1], &ra.r)));
    CHECK_EQ(dgram_context_active(c), 2);

    /* After close: only 'close' and the send completion count, not the
     * socket; its waiting datagram is gone with the fd. */
    CHECK_EQ(kernel_queued(a), 2);
    CHECK_OK(dgram_close(a, NULL));
    CHECK_EQ(dgram_context_active(c), 2);
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    CHECK_EQ(ra.r.count, 0); /* the datagram was dropped at close */
    CHECK_EQ(ra.r.sends, 2);
    send_slot_check_ok(&sa[1], 2);
    CHECK_EQ(ra.r.close_p, 1);
    CHECK_STR(ra.r.log.text, "lSSc");
    CHECK_EQ(dgram_context_active(c), 0);
    dgram_socket_free(a);
    CHECK_EQ(dgram_context_active(c), 0);

    /* Implicit bind: the socket, its listening and the completion. */
    peer_rec rb;
    dgram_socket *b = peer_socket(c, &rb);
    send_slot sb[2];
    CHECK_OK(dgram_send(b, "imp", 3, pport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sb[0], &rb.r)));
    CHECK_EQ(dgram_context_active(c), 3);
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    send_slot_check_ok(&sb[0], 3);
    CHECK_STR(rb.r.log.text, "lS");
    CHECK_EQ(dgram_context_active(c), 1);

    /* Freed: counts 0 at once, whatever was pending (listening, a completion;
     * a datagram in the kernel buffer, never counted, is never delivered). */
    CHECK_OK(dgram_send(peer, "in", 2, test_port(b), "127.0.0.1", NULL, NULL));
    test_wait_queued(b);
    CHECK_EQ(dgram_context_active(c), 1);
    CHECK_OK(dgram_send(b, "imp", 3, pport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sb[1], &rb.r)));
    CHECK_EQ(dgram_context_active(c), 2);
    rb.r.freed = 1;
    dgram_socket_free(b);
    CHECK_EQ(dgram_context_active(c), 0);

    peer_rec rd;
    dgram_socket *d = peer_socket(c, &rd);
    test_bind(d, "127.0.0.1");
    send_slot sd;
    CHECK_OK(dgram_send(d, "q", 1, pport, "127.0.0.1", rec_on_sent, send_slot_init(&sd, &rd.r)));
    CHECK_EQ(dgram_context_active(c), 3);
    rd.r.freed = 1;
    dgram_socket_free(d);
    CHECK_EQ(dgram_context_active(c), 0);

    /* Closed then freed before dispatch: the pending close no longer counts. */
    peer_rec re;
    dgram_socket *e = peer_socket(c, &re);
    test_bind(e, "127.0.0.1");
    CHECK_OK(dgram_close(e, NULL));
    CHECK_EQ(dgram_context_active(c), 1); /* only 'close' */
    re.r.freed = 1;
    dgram_socket_free(e);
    CHECK_EQ(dgram_context_active(c), 0);

    /* Nothing ran for the freed sockets. */
    test_run_for(c, 50);
    CHECK_STR(rb.r.log.text, "lS");
    CHECK_STR(rd.r.log.text, "");
    CHECK_STR(re.r.log.text, "");
    CHECK_EQ(rb.r.after_free + rd.r.after_free + re.r.after_free, 0);
    CHECK_EQ(sb[1].calls + sd.calls, 0);
    CHECK_EQ(dgram_context_run(c, -1), 0);

    dgram_socket_free(peer);
    test_context_finish(c);
    test_context_finish(c2);
}

/* ---- EBUSY ----------------------------------------------------------------- */

/* Dispatch and run called from inside a socket's callbacks (its sock_rec's
 * action): what they returned. */
typedef struct {
    dgram_context *ctx;
    int rc[4];
    int done;
} nested_calls;

static void nested_action(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    nested_calls *n = r->user;
    if (letter == 'L') { /* bind's one-shot 'listening', through dispatch */
        n->rc[0] = dgram_context_dispatch(n->ctx, 0);
        n->rc[1] = dgram_context_dispatch(n->ctx, 1);
        n->rc[2] = dgram_context_run(n->ctx, 0);
        n->rc[3] = dgram_context_run(n->ctx, -1);
    } else if (letter == 'M') { /* a datagram, through run */
        n->rc[0] = dgram_context_run(n->ctx, 10);
        n->rc[1] = dgram_context_dispatch(n->ctx, 0);
        n->rc[2] = dgram_context_run(n->ctx, -1);
        n->rc[3] = dgram_context_dispatch(n->ctx, 1);
    } else {
        return;
    }
    test_add(&n->done, 1);
}

static void test_nested_dispatch_busy(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    nested_calls n;
    memset(&n, 0, sizeof n);
    n.ctx = c;
    sock_rec r1, r2;
    dgram_socket *a = rec_socket_with(c, NULL, &r1);
    rec_set_action(&r1, nested_action, &n);
    dgram_socket *b = rec_socket_with(c, NULL, &r2);
    /* Two listening events: the nested calls must not run the second one. */
    CHECK_OK(dgram_bind(a, 0, "127.0.0.1", rec_on_listening_once));
    test_bind(b, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 1), 1);
    CHECK_EQ(n.done, 1);
    for (int i = 0; i < 4; i++)
        CHECK_CODE(n.rc[i], DGRAM_EBUSY);
    CHECK_EQ(r1.listen_once, 1);
    CHECK_STR(r1.log.text, "lL");
    CHECK_EQ(r2.listen_p, 0);
    CHECK(readable(c));
    CHECK_EQ(dgram_context_dispatch(c, 0), 1);
    CHECK_EQ(r2.listen_p, 1);

    /* From a message callback, reached through dgram_context_run. */
    memset(n.rc, 0, sizeof n.rc);
    CHECK_OK(dgram_send(b, "n", 1, test_port(a), "127.0.0.1", NULL, NULL));
    RUN_UNTIL(c, r1.count, 1);
    CHECK_EQ(n.done, 2);
    for (int i = 0; i < 4; i++)
        CHECK_CODE(n.rc[i], DGRAM_EBUSY);
    CHECK_STR(r1.log.text, "lLM");

    /* Dispatch works again once the callbacks returned. */
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    CHECK_EQ(r1.bad + r2.bad, 0);
    dgram_socket_free(a);
    dgram_socket_free(b);
    test_context_finish(c);
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
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec ra;
    peer_rec rw;
    dgram_socket *a = rec_socket_with(c, NULL, &ra);
    dgram_socket *w = peer_socket(c, &rw);
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
    CHECK_EQ(rw.r.listen_p, 1);
    CHECK_STR(rw.r.log.text, "l");
    CHECK(pthread_equal(rw.threads.owner, pthread_self()));
    CHECK_EQ(rw.threads.mismatch, 0);

    dgram_socket_free(a);
    dgram_socket_free(w);
    test_context_finish(c);
}

/* ---- I/O-thread dispatch ------------------------------------------------------ */

/* Sends each datagram back to its sender from inside the message callback
 * (on the I/O thread); the record's inbox holds the datagram whole. */
static void echo_action(sock_rec *r, dgram_socket *s, char letter) {
    note_thread(r, s, letter);
    if (letter != 'M')
        return;
    peer_rec *p = r->user;
    const inbox *in = r->in;
    int i = test_load(&r->count) - 1;
    CHECK(i < REC_MSGS);
    if (dgram_send(s, in->data, in->len, in->rinfo.port, in->rinfo.address, rec_on_sent,
                   send_slot_init(&p->echo[i], r)) != 0)
        test_add(&p->send_fail, 1);
}

static void test_io_thread_mode(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    peer_rec rs, rc;
    inbox echoed;
    dgram_socket *server = peer_socket(c, &rs);
    memset(&echoed, 0, sizeof echoed);
    echoed.socket = server;
    rs.r.in = &echoed;
    rec_set_action(&rs.r, echo_action, rs.r.user);
    dgram_socket *client = peer_socket(c, &rc);
    uint16_t sport = test_bind(server, "127.0.0.1");
    uint16_t cport = test_bind(client, "127.0.0.1");
    WAIT_UNTIL(rs.r.listen_p, 1);
    WAIT_UNTIL(rc.r.listen_p, 1);
    CHECK_EQ(dgram_context_active(c), 2);

    /* Nothing to do for the host: 0 at once even with sockets bound. */
    CHECK_EQ(dgram_context_dispatch(c, 0), 0);
    CHECK_EQ(dgram_context_run(c, -1), 0);
    CHECK_EQ(dgram_context_run(c, 1000000), 0);

    const char text[] = "echo through the I/O thread";
    send_slot sent;
    CHECK_OK(dgram_send(client, text, sizeof text, sport, "127.0.0.1", rec_on_sent,
                        send_slot_init(&sent, &rc.r)));
    WAIT_UNTIL(rc.r.count, 1);
    WAIT_UNTIL(rs.r.sends, 1);
    CHECK_EQ(rs.r.count, 1);
    CHECK_EQ(rs.send_fail, 0);
    CHECK_EQ(rs.r.send_errors, 0);
    send_slot_check_ok(&rs.echo[0], sizeof text);
    CHECK_EQ(rc.r.count, 1);
    rec_check_msg(&rc.r, 0, text, sizeof text, "127.0.0.1", sport, DGRAM_IPV4);
    rec_check_msg(&rs.r, 0, text, sizeof text, "127.0.0.1", cport, DGRAM_IPV4);
    CHECK_STR(rc.r.log.text, "lSM");
    CHECK_STR(rs.r.log.text, "lMS");
    CHECK_EQ(test_load(&rc.r.sends), 1);
    send_slot_check_ok(&sent, sizeof text);

    /* The callbacks ran on one thread, not this one. */
    CHECK(!pthread_equal(rs.threads.owner, pthread_self()));
    CHECK(pthread_equal(rs.threads.owner, rc.threads.owner));
    CHECK_EQ(rs.threads.mismatch, 0);
    CHECK_EQ(rc.threads.mismatch, 0);
    /* The host fd never becomes readable in this mode. */
    CHECK(!readable(c));

    CHECK_OK(dgram_close(server, NULL));
    CHECK_OK(dgram_close(client, NULL));
    WAIT_UNTIL(rs.r.close_p, 1);
    WAIT_UNTIL(rc.r.close_p, 1);
    test_wait_active(c, 0);
    CHECK(pthread_equal(rs.threads.owner, rc.threads.owner));
    CHECK_EQ(rs.threads.mismatch, 0);
    CHECK_EQ(rc.threads.mismatch, 0);
    CHECK_STR(rc.r.log.text, "lSMc");
    CHECK_STR(rs.r.log.text, "lMSc");
    CHECK_EQ(rs.r.bad + rc.r.bad, 0);
    dgram_socket_free(server);
    dgram_socket_free(client);
    test_context_finish(c);
}

/* ---- dgram_context_free ------------------------------------------------------ */

static void test_context_free_with_open_sockets(void) {
    /* Host mode: a socket with listening pending, one with a completion and
     * a datagram pending, one unbound, one closed with 'close' pending, one
     * freed before the context. */
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    peer_rec r[5];
    dgram_socket *s[5];
    for (int i = 0; i < 5; i++)
        s[i] = peer_socket(c, &r[i]);
    test_bind(s[0], "127.0.0.1");
    test_bind(s[1], "127.0.0.1");
    test_bind(s[3], "127.0.0.1");
    test_bind(s[4], "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 4);
    CHECK_CODE(dgram_bind(s[0], 0, "127.0.0.1", NULL), DGRAM_EALREADY);
    send_slot to0;
    CHECK_OK(dgram_send(s[1], "to0", 3, test_port(s[0]), "127.0.0.1", rec_on_sent,
                        send_slot_init(&to0, &r[1].r)));
    CHECK_OK(dgram_send(s[0], "to1", 3, test_port(s[1]), "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_close(s[3], NULL));
    r[4].r.freed = 1;
    dgram_socket_free(s[4]);
    wait_readable(c);
    /* Marked before the free: in host mode no callback runs outside dispatch. */
    for (int i = 0; i < 4; i++)
        r[i].r.freed = 1;
    dgram_context_free(c);
    test_context_forget(c);
    for (int i = 0; i < 4; i++) {
        test_check_all_ebadf(s[i], DGRAM_UDP4);
        dgram_socket_free(s[i]);
    }
    static const char *const logs[5] = {"l", "l", "", "l", "l"};
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(r[i].r.count, 0);
        CHECK_EQ(r[i].r.sends, 0);
        CHECK_EQ(r[i].r.close_p, 0);
        CHECK_EQ(r[i].r.after_free, 0);
        CHECK_EQ(r[i].r.bad, 0);
        CHECK_STR(r[i].r.log.text, logs[i]);
    }

    /* I/O-thread mode: datagrams flowing when the context goes; no callback
     * of any kind after dgram_context_free returns. */
    c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_context *hc = test_context(DGRAM_DISPATCH_HOST, 0);
    peer_rec rr, ro;
    sock_rec rh;
    dgram_socket *recv = peer_socket(c, &rr);
    dgram_socket *other = peer_socket(c, &ro);
    dgram_socket *sender = rec_socket_with(hc, NULL, &rh);
    test_bind(recv, "127.0.0.1");
    test_bind(other, "127.0.0.1");
    test_bind(sender, "127.0.0.1");
    uint16_t recv_port = test_port(recv);
    WAIT_UNTIL(rr.r.listen_p, 1);
    WAIT_UNTIL(ro.r.listen_p, 1);
    for (int i = 0; i < 50; i++)
        CHECK_OK(dgram_send(sender, &i, sizeof i, recv_port, "127.0.0.1", NULL, NULL));
    send_slot o;
    CHECK_OK(dgram_send(other, "o", 1, test_port(sender), "127.0.0.1", rec_on_sent,
                        send_slot_init(&o, &ro.r)));
    WAIT_UNTIL(rr.r.count, 1);
    dgram_context_free(c);
    test_context_forget(c);
    /* Marked only now: callbacks ran on the I/O thread until the free
     * returned. */
    rr.r.freed = 1;
    ro.r.freed = 1;
    int seen = rr.r.log.len + ro.r.log.len;
    for (int i = 0; i < 50; i++)
        CHECK_OK(dgram_send(sender, &i, sizeof i, recv_port, "127.0.0.1", NULL, NULL));
    test_sleep_ms(100);
    CHECK_EQ(rr.r.log.len + ro.r.log.len, seen);
    CHECK_EQ(rr.r.after_free + ro.r.after_free, 0);
    CHECK_EQ(rr.r.close_p + ro.r.close_p, 0);
    CHECK_EQ(rr.r.bad + ro.r.bad, 0);
    test_check_all_ebadf(recv, DGRAM_UDP4);
    test_check_all_ebadf(other, DGRAM_UDP4);
    /* Freed in the other order: context first, then the sockets. */
    dgram_socket_free(recv);
    dgram_socket_free(other);
    dgram_socket_free(sender);
    test_context_finish(hc);
}

/* Frees a context from inside a callback: the first event of kind `letter`
 * among the records that share it frees `ctx` and marks every one of them
 * freed, so that any callback after that counts in their after_free. */
typedef struct {
    dgram_context *ctx;
    char letter;
    sock_rec *recs[3];
    int nrecs;
    int freed;
} ctx_killer;

static void free_ctx_action(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    ctx_killer *k = r->user;
    if (letter != k->letter || test_load(&k->freed))
        return;
    dgram_context_free(k->ctx);
    for (int i = 0; i < k->nrecs; i++)
        k->recs[i]->freed = 1;
    test_add(&k->freed, 1);
}

/* Clears `k` for context `c`: its first event of kind `letter` frees it. */
static void killer_init(ctx_killer *k, dgram_context *c, char letter) {
    memset(k, 0, sizeof *k);
    k->ctx = c;
    k->letter = letter;
}

/* A udp4 socket (NULL options) of `c` recording into `r`, which joins `k`. */
static dgram_socket *killer_socket(dgram_context *c, ctx_killer *k, sock_rec *r) {
    CHECK(k->nrecs < 3);
    dgram_socket *s = rec_socket_with(c, NULL, r);
    rec_set_action(r, free_ctx_action, k);
    k->recs[k->nrecs++] = r;
    return s;
}

static void test_context_free_in_callback_host(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    ctx_killer k;
    killer_init(&k, c, 'L');
    sock_rec r[3];
    dgram_socket *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = killer_socket(c, &k, &r[i]);
    for (int i = 0; i < 3; i++)
        CHECK_OK(dgram_bind(s[i], 0, "127.0.0.1", rec_on_listening_once));
    /* The first one-shot listening callback frees the context: the other
     * two sockets' never run, and dispatch says the handle is gone. */
    CHECK_CODE(dgram_context_dispatch(c, 0), DGRAM_EBADF);
    test_context_forget(c);
    CHECK_EQ(k.freed, 1);
    int once = 0, first = -1;
    for (int i = 0; i < 3; i++) {
        once += r[i].listen_once;
        if (r[i].listen_once)
            first = i;
    }
    CHECK_EQ(once, 1);
    for (int i = 0; i < 3; i++)
        CHECK_STR(r[i].log.text, i == first ? "lL" : "");
    for (int i = 0; i < 3; i++) {
        test_check_all_ebadf(s[i], DGRAM_UDP4);
        dgram_socket_free(s[i]);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(r[i].after_free, 0);
        CHECK_EQ(r[i].bad, 0);
    }

    /* From a message callback reached through dgram_context_run. */
    c = test_context(DGRAM_DISPATCH_HOST, 0);
    killer_init(&k, c, 'M');
    sock_rec rr, rsnd;
    dgram_socket *recv = killer_socket(c, &k, &rr);
    dgram_socket *snd = killer_socket(c, &k, &rsnd);
    test_bind(recv, "127.0.0.1");
    test_bind(snd, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(c, 0), 2);
    for (int i = 0; i < 5; i++)
        CHECK_OK(dgram_send(snd, "m", 1, test_port(recv), "127.0.0.1", NULL, NULL));
    int rc = 0;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (!k.freed) {
        rc = dgram_context_run(c, 50);
        CHECK(rc >= 0 || k.freed);
        CHECK(test_now_ms() < deadline);
    }
    CHECK_CODE(rc, DGRAM_EBADF); /* the run that freed it says so */
    test_context_forget(c);
    CHECK_EQ(rr.count, 1);
    CHECK_STR(rr.log.text, "lM");
    CHECK_STR(rsnd.log.text, "l");
    test_check_all_ebadf(recv, DGRAM_UDP4);
    test_check_all_ebadf(snd, DGRAM_UDP4);
    dgram_socket_free(snd);
    dgram_socket_free(recv);
    CHECK_EQ(rr.after_free + rsnd.after_free, 0);
    CHECK_EQ(rr.bad + rsnd.bad, 0);
}

static void test_context_free_in_callback_io_thread(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_context *hc = test_context(DGRAM_DISPATCH_HOST, 0);
    ctx_killer k;
    killer_init(&k, c, 'M');
    sock_rec r1, r2, rh;
    dgram_socket *recv1 = killer_socket(c, &k, &r1);
    dgram_socket *recv2 = killer_socket(c, &k, &r2);
    test_bind(recv1, "127.0.0.1");
    test_bind(recv2, "127.0.0.1");
    dgram_socket *snd = rec_socket_with(hc, NULL, &rh);
    test_bind(snd, "127.0.0.1");
    uint16_t p1 = test_port(recv1), p2 = test_port(recv2);
    for (int i = 0; i < 20; i++) {
        CHECK_OK(dgram_send(snd, "m", 1, p1, "127.0.0.1", NULL, NULL));
        CHECK_OK(dgram_send(snd, "n", 1, p2, "127.0.0.1", NULL, NULL));
    }
    WAIT_UNTIL(k.freed, 1);
    test_context_forget(c);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&r1.count) + test_load(&r2.count), 1);
    CHECK_EQ(test_load(&r1.after_free) + test_load(&r2.after_free), 0);
    test_check_all_ebadf(recv1, DGRAM_UDP4);
    test_check_all_ebadf(recv2, DGRAM_UDP4);
    dgram_socket_free(recv1);
    dgram_socket_free(recv2);
    dgram_socket_free(snd);
    CHECK_EQ(r1.bad + r2.bad, 0);
    test_context_finish(hc);
}

/* A host that sends with callbacks but never dispatches gets DGRAM_ENOBUFS
 * once 65536 completions wait, instead of unbounded memory; after dispatch
 * every accepted send has had its callback exactly once and sending works
 * again. Each completion is checked on its own (send_rec keeps only the
 * last); `data` is the count of completions. */
static void backpressure_sent(dgram_socket *s, const dgram_error *err, size_t length, void *data) {
    (void)s;
    CHECK(err == NULL);
    CHECK_EQ(length, 1);
    test_add(data, 1);
}

static void test_completion_backpressure(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    /* A port nobody listens on any more: the datagrams vanish, and an
     * unconnected socket gets no error for them, so the only events are the
     * completions. */
    dgram_socket *gone = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    uint16_t port = test_bind(gone, "127.0.0.1");
    dgram_socket_free(gone);
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    test_bind(s, "127.0.0.1");
    int done = 0;
    int accepted = 0, rc = 0;
    while ((rc = dgram_send(s, "x", 1, port, "127.0.0.1", backpressure_sent, &done)) == 0)
        accepted++;
    CHECK_CODE(rc, DGRAM_ENOBUFS);
    /* The cap counts completions waiting for dispatch. Normally every send
     * is written at once and completes, so exactly 65536 are accepted; on a
     * loaded machine loopback can answer EAGAIN for a while, and those sends
     * wait in the socket's queue (itself capped at 65536) and complete when
     * written, so a few more may be accepted. */
    CHECK(accepted >= 65536);
    CHECK(accepted <= 2 * 65536);
    CHECK_EQ(done, 0);
    /* Every accepted send completes, exactly once. */
    RUN_UNTIL(ctx, done, accepted);
    test_run_for(ctx, 50);
    CHECK_EQ(done, accepted);
    CHECK_OK(dgram_send(s, "x", 1, port, "127.0.0.1", backpressure_sent, &done));
    RUN_UNTIL(ctx, done, accepted + 1);
    test_run_for(ctx, 20);
    CHECK_EQ(done, accepted + 1);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

/* dgram_context_free from a socket's persistent 'close' handler: the
 * one-shot close callback of that same event does not run (no callback after
 * the free returned). The socket had closed, so the free no longer counted it
 * among its sockets (found by the fuzzer). */
static void test_context_free_in_close_handler(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_HOST, 0);
    ctx_killer k;
    killer_init(&k, c, 'c');
    sock_rec r;
    dgram_socket *s = killer_socket(c, &k, &r);
    CHECK_OK(dgram_close(s, rec_on_close_once));
    CHECK_CODE(dgram_context_dispatch(c, 0), DGRAM_EBADF);
    test_context_forget(c);
    CHECK_EQ(k.freed, 1);
    CHECK_EQ(r.close_p, 1);
    CHECK_EQ(r.close_once, 0);
    CHECK_EQ(r.after_free, 0);
    CHECK_STR(r.log.text, "c");
    dgram_socket_free(s);
}

TEST_LIST(
    TEST_ENTRY(test_version_and_error_strings),
    TEST_ENTRY(test_context_new_options),
    TEST_ENTRY(test_max_pending_events),
    TEST_ENTRY(test_max_keeps_what_events_crowd_out),
    TEST_ENTRY(test_fd_and_dispatch_counts),
    TEST_ENTRY(test_run),
    TEST_ENTRY(test_run_forever_ends_when_freed_elsewhere),
    TEST_ENTRY(test_run_forever_ends_when_unrefd_elsewhere),
    TEST_ENTRY(test_active_counts),
    TEST_ENTRY(test_nested_dispatch_busy),
    TEST_ENTRY(test_dispatch_from_second_thread_busy),
    TEST_ENTRY(test_io_thread_mode),
    TEST_ENTRY(test_context_free_with_open_sockets),
    TEST_ENTRY(test_context_free_in_callback_host),
    TEST_ENTRY(test_context_free_in_callback_io_thread),
    TEST_ENTRY(test_context_free_in_close_handler),
    TEST_ENTRY(test_completion_backpressure),
)
