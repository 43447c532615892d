/*
 * Bad input never crashes and gets the documented code: NULL handles and
 * pointers, garbage address strings, out-of-range ports and TTLs, oversized
 * messages, malformed multicast arguments, and which error wins when several
 * apply (NULL handle, then closed socket, then arguments, then state).
 *
 * Unicast on 127.0.0.1 and ::1 only. No multicast group is ever joined here:
 * every membership call below fails on its arguments (or is a drop on a
 * closed socket).
 */
#include "recorder.h"
#include "test_runner.h"

#include <limits.h>
#include <netinet/in.h>

/* A bound receiver on the loopback address of `type`, recording into `r`. */
static dgram_socket *make_receiver(dgram_context *ctx, dgram_type type, sock_rec *r) {
    dgram_socket *s = rec_socket(ctx, type, r);
    test_bind(s, test_loopback(type));
    return s;
}

/* Checks that the `n`th accepted send of `sr` completed with success and
 * `len`, and that `rr` received its datagram as its `n`th, of `len` bytes. */
static void check_delivered(dgram_context *ctx, sock_rec *rr, send_rec *sr, int n, size_t len) {
    CHECK(n <= REC_MSGS);
    RUN_UNTIL(ctx, rr->count, n);
    RUN_UNTIL(ctx, sr->count, n);
    CHECK_EQ(rr->len[n - 1], len);
    CHECK_EQ(sr->code, 0);
    CHECK_EQ(sr->length, len);
}

/* Dispatches for a while, then checks that `rr` got exactly `n` datagrams,
 * all with its own handle, and `sr` exactly `n` send completions: nothing
 * more came. */
static void check_no_more(dgram_context *ctx, const sock_rec *rr, const send_rec *sr, int n) {
    test_run_for(ctx, 50);
    CHECK_EQ(rr->count, n);
    CHECK_EQ(rr->bad, 0);
    CHECK_EQ(sr->count, n);
}

/* The garbage every address argument must survive; a 300-character string
 * is filled in at run time. Each is DGRAM_EINVAL on both families, except
 * where `v6_code` says otherwise for udp6. None is a well-formed host name:
 * those are looked up (test_hostnames.c), and a lookup must never leave
 * the machine from a test. */
typedef struct {
    const char *text;
    int v6_code;
} garbage;

static char long_text[301];
static char long_zone[301];

static const garbage *garbage_list(size_t *n) {
    memset(long_text, 'a', 300);
    long_text[300] = '\0';
    memcpy(long_zone, "fe80::1%", 8);
    memset(long_zone + 8, 'z', 292);
    long_zone[300] = '\0';
    static garbage list[] = {
        {"", DGRAM_EINVAL},
        {"1.2.3", DGRAM_EINVAL},
        {"256.0.0.1", DGRAM_EINVAL},
        {"not an address", DGRAM_EINVAL},
        {"::1::2", DGRAM_EINVAL},
        {"127.0.0.1 ", DGRAM_EINVAL},
        {" ::1", DGRAM_EINVAL},
        {"[::1]", DGRAM_EINVAL},
        {"127.0.0.1:80", DGRAM_EINVAL},
        {"example..com", DGRAM_EINVAL},
        {"host_with space", DGRAM_EINVAL},
        {"\xff\xfe", DGRAM_EINVAL},
        {"fe80::1%", DGRAM_EINVAL},
        {"fe80::1%a b", DGRAM_EINVAL},
        {"fe80::1%99999999999999999999", DGRAM_EINVAL},
        {NULL, DGRAM_EINVAL}, /* long_text */
        {NULL, DGRAM_EINVAL}, /* long_zone */
        {"fe80::1%nosuchif9", DGRAM_ENODEV},
    };
    size_t count = sizeof list / sizeof list[0];
    list[count - 3].text = long_text;
    list[count - 2].text = long_zone;
    *n = count;
    return list;
}

/* Fails, naming the call, the socket type and the (cut) address argument,
 * when `rc` is not `want`. */
static void check_rc(const char *call, dgram_type type, const char *text, int rc, int want) {
    if (rc != want)
        FAIL("%s(%s, \"%.40s\") returned %s, expected %s", call, test_type_name(type),
             text ? text : "(null)", dgram_err_name(rc), dgram_err_name(want));
}

/* ---- NULL handles ------------------------------------------------------------ */

static void test_null_handles(void) {
    dgram_addr a;
    dgram_buf buf = {"x", 1};
    CHECK_CODE(dgram_context_fd(NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_context_dispatch(NULL, 0), DGRAM_EINVAL);
    CHECK_CODE(dgram_context_dispatch(NULL, 5), DGRAM_EINVAL);
    CHECK_CODE(dgram_context_run(NULL, 0), DGRAM_EINVAL);
    CHECK_CODE(dgram_context_run(NULL, -1), DGRAM_EINVAL); /* at once, no hang */
    CHECK_CODE(dgram_context_run(NULL, 100), DGRAM_EINVAL);
    CHECK_EQ(dgram_context_active(NULL), 0);
    dgram_context_free(NULL);
    dgram_socket_free(NULL);

    CHECK_CODE(dgram_on_message(NULL, rec_on_message), DGRAM_EINVAL);
    CHECK_CODE(dgram_on_message(NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_on_listening(NULL, rec_on_listening), DGRAM_EINVAL);
    CHECK_CODE(dgram_on_close(NULL, rec_on_close), DGRAM_EINVAL);
    CHECK_CODE(dgram_on_error(NULL, rec_on_error), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(NULL, 0, "127.0.0.1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(NULL, -1, "not an address", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send(NULL, "x", 1, 9, "127.0.0.1", send_rec_on_sent, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send(NULL, NULL, 0, 0, NULL, NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_sendv(NULL, &buf, 1, 9, "127.0.0.1", send_rec_on_sent, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_sendv(NULL, NULL, 0, 0, NULL, NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_close(NULL, rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_close(NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_address(NULL, &a), DGRAM_EINVAL);
    CHECK_CODE(dgram_address(NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_broadcast(NULL, true), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_ttl(NULL, 64), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_ttl(NULL, 0), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(NULL, "239.255.0.1", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_drop_membership(NULL, "239.255.0.1", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_loopback(NULL, true), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_ttl(NULL, 1), DGRAM_EINVAL);
    CHECK_CODE(dgram_fileno(NULL), DGRAM_EINVAL);
}

static void test_error_strings(void) {
    CHECK_STR(dgram_err_name(DGRAM_EINVAL), "EINVAL");
    CHECK_STR(dgram_err_name(DGRAM_EBADF), "EBADF");
    CHECK_STR(dgram_err_name(DGRAM_EMSGSIZE), "EMSGSIZE");
    CHECK_STR(dgram_err_name(DGRAM_ENODEV), "ENODEV");
    const int unknown[] = {12345, -12345, INT_MIN, INT_MAX, -100000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK_STR(dgram_err_name(unknown[i]), "UNKNOWN");
        CHECK_STR(dgram_strerror(unknown[i]), "unknown error");
    }
    CHECK(dgram_err_name(0) != NULL);
    CHECK(dgram_strerror(0) != NULL);
    CHECK(dgram_version() != NULL);
}

/* ---- creation ------------------------------------------------------------------ */

static void test_create_bad_arguments(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static int marker;
    dgram_socket *const poison = (dgram_socket *)&marker;
    dgram_socket_options opts;
    dgram_socket *s = poison;

    /* NULL out. */
    memset(&opts, 0, sizeof opts);
    CHECK_CODE(dgram_create_socket(ctx, &opts, NULL, NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_create_socket(ctx, NULL, NULL, NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_create_socket(NULL, NULL, NULL, NULL, NULL), DGRAM_EINVAL);

    /* NULL ctx: *out is set to NULL. */
    CHECK_CODE(dgram_create_socket(NULL, &opts, rec_on_message, NULL, &s), DGRAM_EINVAL);
    CHECK(s == NULL);
    s = poison;
    CHECK_CODE(dgram_create_socket(NULL, NULL, NULL, NULL, &s), DGRAM_EINVAL);
    CHECK(s == NULL);

    /* A type that is not a dgram_type (the field is an int32_t: all of it is
     * read, so 256 and 257 are not DGRAM_UDP4 and DGRAM_UDP6). */
    const int32_t bad_types[] = {2, 5, -1, 4, 6, 256, 257, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        memset(&opts, 0, sizeof opts);
        opts.type = bad_types[i];
        s = poison;
        CHECK_CODE(dgram_create_socket(ctx, &opts, NULL, NULL, &s), DGRAM_EINVAL);
        CHECK(s == NULL);
    }

    /* Negative buffer sizes, on either family. */
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        memset(&opts, 0, sizeof opts);
        opts.type = type;
        opts.recv_buffer_size = -1;
        s = poison;
        CHECK_CODE(dgram_create_socket(ctx, &opts, NULL, NULL, &s), DGRAM_EINVAL);
        CHECK(s == NULL);
        opts.recv_buffer_size = 0;
        opts.send_buffer_size = INT32_MIN;
        s = poison;
        CHECK_CODE(dgram_create_socket(ctx, &opts, NULL, NULL, &s), DGRAM_EINVAL);
        CHECK(s == NULL);
        opts.recv_buffer_size = INT32_MIN;
        opts.send_buffer_size = -4096;
        s = poison;
        CHECK_CODE(dgram_create_socket(ctx, &opts, NULL, NULL, &s), DGRAM_EINVAL);
        CHECK(s == NULL);
    }

    /* NULL opts is udp4 with defaults. */
    s = NULL;
    CHECK_OK(dgram_create_socket(ctx, NULL, NULL, NULL, &s));
    CHECK(s != NULL);
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_DOMAIN), AF_INET);
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_REUSEADDR), 0);
    dgram_socket_free(s);

    /* A context with a dispatch mode that is not a dgram_dispatch. */
    dgram_context_options copts;
    memset(&copts, 0, sizeof copts);
    copts.dispatch = 7;
    CHECK(dgram_context_new(&copts) == NULL);
    copts.dispatch = -1;
    CHECK(dgram_context_new(&copts) == NULL);
    /* None of that left anything active. */
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_context_finish(ctx);
}

/* ---- addresses ------------------------------------------------------------------- */

static void test_garbage_addresses(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    size_t n;
    const garbage *list = garbage_list(&n);
    sock_rec rr4, rr6;
    dgram_socket *recv4 = make_receiver(ctx, DGRAM_UDP4, &rr4);
    dgram_socket *recv6 = make_receiver(ctx, DGRAM_UDP6, &rr6);
    uint16_t port4 = test_port(recv4), port6 = test_port(recv6);

    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        sock_rec r;
        dgram_socket *s = rec_socket(ctx, (dgram_type)type, &r);
        uint16_t port = type == DGRAM_UDP4 ? port4 : port6;
        send_rec sr = {0};
        for (size_t i = 0; i < n; i++) {
            int want = type == DGRAM_UDP6 ? list[i].v6_code : DGRAM_EINVAL;
            const char *text = list[i].text;
            dgram_buf buf = {"x", 1};
            check_rc("bind", (dgram_type)type, text, dgram_bind(s, 0, text, rec_on_unexpected), want);
            check_rc("send", (dgram_type)type, text,
                     dgram_send(s, "x", 1, port, text, send_rec_on_sent, &sr), want);
            check_rc("sendv", (dgram_type)type, text,
                     dgram_sendv(s, &buf, 1, port, text, send_rec_on_sent, &sr), want);
        }
        /* Literals of the other family. */
        const char *other = type == DGRAM_UDP4 ? "::1" : "127.0.0.1";
        CHECK_CODE(dgram_bind(s, 0, other, rec_on_unexpected), DGRAM_EINVAL);
        CHECK_CODE(dgram_send(s, "x", 1, port, other, send_rec_on_sent, &sr), DGRAM_EINVAL);
        if (type == DGRAM_UDP4) /* a v4 zone makes no sense */
            CHECK_CODE(dgram_bind(s, 0, "127.0.0.1%lo", rec_on_unexpected), DGRAM_EINVAL);

        /* No failed call bound the socket, queued a send or fired an event. */
        dgram_addr a;
        CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
        test_run_for(ctx, 50);
        CHECK_EQ(sr.count, 0);
        CHECK_STR(r.log.text, "");
        CHECK_EQ(type == DGRAM_UDP4 ? rr4.count : rr6.count, 0);

        /* The socket still works. */
        send_and_wait(ctx, s, "ok", 2, port, "localhost", &sr);
        dgram_socket_free(s);
    }
    RUN_UNTIL(ctx, rr4.count, 1);
    RUN_UNTIL(ctx, rr6.count, 1);
    test_run_for(ctx, 50);
    CHECK_EQ(rr4.count, 1);
    CHECK_EQ(rr6.count, 1);
    CHECK_EQ(rr4.len[0], 2);
    CHECK_EQ(rr4.bad + rr6.bad, 0);
    dgram_socket_free(recv4);
    dgram_socket_free(recv6);
    test_context_finish(ctx);
}

/* ---- ports ------------------------------------------------------------------------ */

static void test_bad_ports(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    const int32_t bind_bad[] = {-1, 65536, INT32_MIN, INT32_MAX, 100000};
    const int32_t send_bad[] = {-1, 0, 65536, INT32_MIN, INT32_MAX, 100000};
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        sock_rec r;
        dgram_socket *s = rec_socket(ctx, (dgram_type)type, &r);
        const char *lo = test_loopback((dgram_type)type);
        send_rec sr = {0};
        for (size_t i = 0; i < sizeof bind_bad / sizeof bind_bad[0]; i++) {
            CHECK_CODE(dgram_bind(s, bind_bad[i], lo, rec_on_unexpected), DGRAM_EINVAL);
            CHECK_CODE(dgram_bind(s, bind_bad[i], NULL, rec_on_unexpected), DGRAM_EINVAL);
        }
        for (size_t i = 0; i < sizeof send_bad / sizeof send_bad[0]; i++) {
            CHECK_CODE(dgram_send(s, "x", 1, send_bad[i], lo, send_rec_on_sent, &sr), DGRAM_EINVAL);
            CHECK_CODE(dgram_send(s, "x", 1, send_bad[i], NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
            CHECK_CODE(dgram_send(s, NULL, 0, send_bad[i], NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
            CHECK_CODE(dgram_sendv(s, NULL, 0, send_bad[i], NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
        }
        /* None of them bound the socket (no implicit bind on a bad send). */
        dgram_addr a;
        CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
        test_run_for(ctx, 50);
        CHECK_EQ(sr.count, 0);
        CHECK_STR(r.log.text, "");
        CHECK_EQ(dgram_context_active(ctx), 0);
        /* Port 0 is fine for bind (the OS picks). */
        CHECK_OK(dgram_bind(s, 0, lo, NULL));
        RUN_UNTIL(ctx, r.listen_p, 1);
        CHECK_STR(r.log.text, "l");
        dgram_socket_free(s);
    }
    test_context_finish(ctx);
}

/* ---- messages ---------------------------------------------------------------------- */

static void test_null_message(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        sock_rec rr, rs;
        dgram_socket *recv = make_receiver(ctx, (dgram_type)type, &rr);
        uint16_t port = test_port(recv);
        dgram_socket *s = rec_socket(ctx, (dgram_type)type, &rs);
        send_rec sr = {0};

        CHECK_CODE(dgram_send(s, NULL, 1, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
        CHECK_CODE(dgram_send(s, NULL, 5, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
        CHECK_CODE(dgram_send(s, NULL, SIZE_MAX, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
        dgram_addr a;
        CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);

        /* NULL with length 0: an empty datagram. */
        CHECK_OK(dgram_send(s, NULL, 0, port, NULL, send_rec_on_sent, &sr));
        check_delivered(ctx, &rr, &sr, 1, 0);
        check_no_more(ctx, &rr, &sr, 1);
        dgram_socket_free(s);
        dgram_socket_free(recv);
    }
    test_context_finish(ctx);
}

static void test_sendv_bad_buffers(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rr, rs;
    dgram_socket *recv = make_receiver(ctx, DGRAM_UDP4, &rr);
    uint16_t port = test_port(recv);
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &rs);
    send_rec sr = {0};

    CHECK_CODE(dgram_sendv(s, NULL, 1, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
    CHECK_CODE(dgram_sendv(s, NULL, 3, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
    dgram_buf bufs[3] = {{"ab", 2}, {NULL, 4}, {"cd", 2}};
    CHECK_CODE(dgram_sendv(s, bufs, 3, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
    bufs[1].base = "ef";
    bufs[1].len = 2;
    bufs[2].base = NULL;
    bufs[2].len = 1;
    CHECK_CODE(dgram_sendv(s, bufs, 3, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
    /* The same past 64 pieces (the library's gather path). */
    static dgram_buf many[100];
    for (size_t i = 0; i < 100; i++) {
        many[i].base = "m";
        many[i].len = 1;
    }
    many[80].base = NULL;
    CHECK_CODE(dgram_sendv(s, many, 100, port, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
    dgram_addr a;
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
    check_no_more(ctx, &rr, &sr, 0);

    /* NULL base with length 0 is fine: "ab" + "" + "cd". */
    bufs[1].base = NULL;
    bufs[1].len = 0;
    bufs[2].base = "cd";
    bufs[2].len = 2;
    CHECK_OK(dgram_sendv(s, bufs, 3, port, NULL, send_rec_on_sent, &sr));
    check_delivered(ctx, &rr, &sr, 1, 4);
    /* NULL bufs with nbufs 0: an empty datagram. */
    CHECK_OK(dgram_sendv(s, NULL, 0, port, NULL, send_rec_on_sent, &sr));
    check_delivered(ctx, &rr, &sr, 2, 0);
    /* 100 one-byte pieces with a NULL/0 one among them. */
    many[80].len = 0;
    CHECK_OK(dgram_sendv(s, many, 100, port, NULL, send_rec_on_sent, &sr));
    check_delivered(ctx, &rr, &sr, 3, 99);
    check_no_more(ctx, &rr, &sr, 3);
    dgram_socket_free(s);
    dgram_socket_free(recv);
    test_context_finish(ctx);
}

static void test_emsgsize(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static uint8_t big[70000];
    memset(big, 0xab, sizeof big);
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        const size_t max = type == DGRAM_UDP4 ? 65507 : 65527;
        sock_rec rr, rs;
        dgram_socket *recv = make_receiver(ctx, (dgram_type)type, &rr);
        uint16_t port = test_port(recv);
        dgram_socket *s = rec_socket(ctx, (dgram_type)type, &rs);
        send_rec sr = {0};

        CHECK_CODE(dgram_send(s, big, max + 1, port, NULL, send_rec_on_sent, &sr), DGRAM_EMSGSIZE);
        CHECK_CODE(dgram_send(s, big, sizeof big, port, NULL, send_rec_on_sent, &sr), DGRAM_EMSGSIZE);
        if (type == DGRAM_UDP4) /* fits udp6, not udp4 */
            CHECK_CODE(dgram_send(s, big, 65527, port, NULL, send_rec_on_sent, &sr), DGRAM_EMSGSIZE);

        /* sendv: a few pieces summing to one byte too many. */
        dgram_buf three[3] = {{big, 30000}, {big, 30000}, {big, max + 1 - 60000}};
        CHECK_CODE(dgram_sendv(s, three, 3, port, NULL, send_rec_on_sent, &sr), DGRAM_EMSGSIZE);
        /* More than 64 pieces summing to one byte too many. */
        static dgram_buf many[100];
        size_t total = 0;
        for (size_t i = 0; i < 100; i++) {
            many[i].base = big;
            many[i].len = 655;
            total += 655;
        }
        /* Adjust the last piece so the sum is exactly max + 1. */
        many[99].len = max + 1 - (total - 655);
        CHECK_CODE(dgram_sendv(s, many, 100, port, NULL, send_rec_on_sent, &sr), DGRAM_EMSGSIZE);
        /* ...and far too many. */
        for (size_t i = 0; i < 100; i++)
            many[i].len = 700;
        CHECK_CODE(dgram_sendv(s, many, 100, port, NULL, send_rec_on_sent, &sr), DGRAM_EMSGSIZE);

        /* None of them bound the socket or queued anything. */
        dgram_addr a;
        CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
        check_no_more(ctx, &rr, &sr, 0);

        /* The largest datagram goes through whole, as one send and as 100
         * pieces. */
        CHECK_OK(dgram_send(s, big, max, port, NULL, send_rec_on_sent, &sr));
        check_delivered(ctx, &rr, &sr, 1, max);
        for (size_t i = 0; i < 99; i++)
            many[i].len = 655;
        many[99].len = max - 99 * 655;
        CHECK_OK(dgram_sendv(s, many, 100, port, NULL, send_rec_on_sent, &sr));
        check_delivered(ctx, &rr, &sr, 2, max);
        check_no_more(ctx, &rr, &sr, 2);
        dgram_socket_free(s);
        dgram_socket_free(recv);
    }
    test_context_finish(ctx);
}

/* ---- options -------------------------------------------------------------------------- */

static void test_ttl_ranges(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        sock_rec r;
        dgram_socket *s = rec_socket(ctx, (dgram_type)type, &r);
        const int level = type == DGRAM_UDP4 ? IPPROTO_IP : IPPROTO_IPV6;
        const int ttl_opt = type == DGRAM_UDP4 ? IP_TTL : IPV6_UNICAST_HOPS;
        const int mttl_opt = type == DGRAM_UDP4 ? IP_MULTICAST_TTL : IPV6_MULTICAST_HOPS;

        /* 77 stays, unchanged by the failures; then both ends of the range. */
        const int32_t ttl_bad[] = {0, 256, -1, INT32_MIN, INT32_MAX};
        test_check_int_setter(s, dgram_set_ttl, level, ttl_opt, (const int32_t[]){77}, 1,
                              ttl_bad, sizeof ttl_bad / sizeof ttl_bad[0]);
        test_check_int_setter(s, dgram_set_ttl, level, ttl_opt, (const int32_t[]){1, 255}, 2,
                              NULL, 0);

        /* 9 stays; then both ends of the range (0 is valid here). */
        const int32_t mttl_bad[] = {-1, 256, INT32_MIN, INT32_MAX};
        test_check_int_setter(s, dgram_set_multicast_ttl, level, mttl_opt, (const int32_t[]){9},
                              1, mttl_bad, sizeof mttl_bad / sizeof mttl_bad[0]);
        test_check_int_setter(s, dgram_set_multicast_ttl, level, mttl_opt,
                              (const int32_t[]){0, 255}, 2, NULL, 0);
        dgram_socket_free(s);
    }
    test_context_finish(ctx);
}

static void test_membership_bad_arguments(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
    size_t n;
    const garbage *list = garbage_list(&n);

    typedef int (*member_fn)(dgram_socket *, const char *, const char *);
    const member_fn fns[2] = {dgram_add_membership, dgram_drop_membership};
    for (int f = 0; f < 2; f++) {
        member_fn fn = fns[f];
        /* udp4 */
        CHECK_CODE(fn(s4, NULL, NULL), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, NULL, "127.0.0.1"), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "127.0.0.1", NULL), DGRAM_EINVAL);  /* not multicast */
        CHECK_CODE(fn(s4, "0.0.0.0", NULL), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "255.255.255.255", NULL), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "ff0e::1", NULL), DGRAM_EINVAL);    /* v6 group on udp4 */
        CHECK_CODE(fn(s4, "239.255.0.1", "eth0"), DGRAM_EINVAL); /* udp4 wants an address */
        CHECK_CODE(fn(s4, "239.255.0.1", "lo"), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "239.255.0.1", "::1"), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "239.255.0.1", ""), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "239.255.0.1", "\xff\xfe"), DGRAM_EINVAL);
        CHECK_CODE(fn(s4, "239.255.0.1", long_text), DGRAM_EINVAL);
        /* udp6 */
        CHECK_CODE(fn(s6, NULL, NULL), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "::1", NULL), DGRAM_EINVAL);        /* not multicast */
        CHECK_CODE(fn(s6, "fe80::1", NULL), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "239.255.0.1", NULL), DGRAM_EINVAL); /* v4 group on udp6 */
        CHECK_CODE(fn(s6, "ff0e::1", ""), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "ff0e::1", "a b"), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "ff0e::1", "zz%lo"), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "ff0e::1", "::%"), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "ff0e::1", long_text), DGRAM_EINVAL);
        CHECK_CODE(fn(s6, "ff0e::1", "\xff\xfe"), DGRAM_EINVAL);
        /* Well-formed interface names that do not exist: the kernel's
         * answer is never asked, ENODEV from the name lookup. */
        CHECK_CODE(fn(s6, "ff0e::1", "nosuchif9"), DGRAM_ENODEV);
        CHECK_CODE(fn(s6, "ff0e::1", "::%nosuchif9"), DGRAM_ENODEV);
        /* Garbage groups. */
        for (size_t i = 0; i < n; i++) {
            CHECK_CODE(fn(s4, list[i].text, NULL), DGRAM_EINVAL);
            check_rc(f ? "drop" : "add", DGRAM_UDP6, list[i].text, fn(s6, list[i].text, NULL),
                     list[i].v6_code);
        }
    }
    /* Nothing of that bound the sockets or produced an event. */
    dgram_addr a;
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s6, &a), DGRAM_EBADF);
    test_run_for(ctx, 50);
    CHECK_STR(r4.log.text, "");
    CHECK_STR(r6.log.text, "");
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

/* ---- which error wins ------------------------------------------------------------------ */

static void test_closed_socket_ebadf_wins(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        /* Closed after bind, and closed without ever binding. */
        sock_rec rb, ru;
        dgram_socket *bound = rec_socket(ctx, (dgram_type)type, &rb);
        dgram_socket *unbound = rec_socket(ctx, (dgram_type)type, &ru);
        CHECK_OK(dgram_bind(bound, 0, test_loopback((dgram_type)type), rec_on_listening_once));
        RUN_UNTIL(ctx, rb.listen_once, 1);
        CHECK_OK(dgram_close(bound, rec_on_close_once));
        CHECK_OK(dgram_close(unbound, rec_on_close_once));
        test_check_all_ebadf(bound, (dgram_type)type);
        test_check_all_ebadf(unbound, (dgram_type)type);
        RUN_UNTIL(ctx, rb.close_once, 1);
        RUN_UNTIL(ctx, ru.close_once, 1);
        test_check_all_ebadf(bound, (dgram_type)type);
        test_check_all_ebadf(unbound, (dgram_type)type);
        test_run_for(ctx, 50);
        CHECK_STR(rb.log.text, "lLcC");
        CHECK_STR(ru.log.text, "cC");
        CHECK_EQ(rb.bad + ru.bad, 0);
        CHECK_EQ(dgram_context_active(ctx), 0);
        dgram_socket_free(bound);
        dgram_socket_free(unbound);
    }
    test_context_finish(ctx);
}

/* The context is freed under its open sockets: made here with
 * dgram_context_new (NULL options), not test_context, since freeing it is
 * what is tested. */
static void test_context_freed_ebadf(void) {
    dgram_context *ctx = dgram_context_new(NULL);
    CHECK(ctx != NULL);
    sock_rec rb, ru;
    dgram_socket *bound = rec_socket(ctx, DGRAM_UDP4, &rb);
    dgram_socket *unbound = rec_socket(ctx, DGRAM_UDP6, &ru);
    CHECK_OK(dgram_bind(bound, 0, "127.0.0.1", rec_on_listening_once));
    RUN_UNTIL(ctx, rb.listen_once, 1);
    dgram_context_free(ctx);
    test_check_all_ebadf(bound, DGRAM_UDP4);
    test_check_all_ebadf(unbound, DGRAM_UDP6);
    CHECK_STR(rb.log.text, "lL");
    CHECK_STR(ru.log.text, "");
    dgram_socket_free(unbound);
    dgram_socket_free(bound);
}

static void test_arguments_before_state(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        const char *lo = test_loopback((dgram_type)type);
        sock_rec r;
        dgram_socket *s = rec_socket(ctx, (dgram_type)type, &r);
        dgram_addr a;
        /* Open but unbound: a NULL out is an argument error; a good out
         * meets the state error. */
        CHECK_CODE(dgram_address(s, NULL), DGRAM_EINVAL);
        CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
        CHECK_OK(dgram_bind(s, 0, lo, rec_on_listening_once));
        RUN_UNTIL(ctx, r.listen_once, 1);
        CHECK_CODE(dgram_address(s, NULL), DGRAM_EINVAL);
        CHECK_OK(dgram_address(s, &a));
        /* Bound: a bind with bad arguments is EINVAL, with good ones
         * EALREADY. */
        CHECK_CODE(dgram_bind(s, -1, lo, rec_on_unexpected), DGRAM_EINVAL);
        CHECK_CODE(dgram_bind(s, 0, "not an address", rec_on_unexpected), DGRAM_EINVAL);
        CHECK_CODE(dgram_bind(s, 0, type == DGRAM_UDP4 ? "::1" : "127.0.0.1", rec_on_unexpected),
                   DGRAM_EINVAL);
        CHECK_CODE(dgram_bind(s, 0, lo, rec_on_unexpected), DGRAM_EALREADY);
        test_run_for(ctx, 50);
        CHECK_STR(r.log.text, "lL");
        dgram_socket_free(s);
    }
    test_context_finish(ctx);
}

/* Lengths no datagram can have, up to SIZE_MAX, are DGRAM_EMSGSIZE before
 * the library looks at the bytes (found by the fuzzer: a slice of SIZE_MAX
 * bytes used to be made first, undefined behaviour that aborts a debug build).
 * Also a piece count no memory can hold. Nothing is sent. */
static void test_lengths_beyond_memory(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static const char buf[16];
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    CHECK_CODE(dgram_send(s, buf, SIZE_MAX, 9, "127.0.0.1", NULL, NULL), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_send(s, buf, (size_t)PTRDIFF_MAX + 1, 9, "127.0.0.1", NULL, NULL), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_send(s, NULL, SIZE_MAX, 9, "127.0.0.1", NULL, NULL), DGRAM_EINVAL); /* EINVAL first */
    dgram_buf pieces[2] = {{buf, 8}, {buf, SIZE_MAX - 4}};
    CHECK_CODE(dgram_sendv(s, pieces, 2, 9, "127.0.0.1", NULL, NULL), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_sendv(s, pieces, SIZE_MAX, 9, "127.0.0.1", NULL, NULL), DGRAM_EMSGSIZE);
    /* Nothing was sent, so the socket was not even bound implicitly. */
    dgram_addr a;
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_null_handles),
    TEST_ENTRY(test_error_strings),
    TEST_ENTRY(test_context_freed_ebadf),
    TEST_ENTRY(test_create_bad_arguments),
    TEST_ENTRY(test_garbage_addresses),
    TEST_ENTRY(test_bad_ports),
    TEST_ENTRY(test_null_message),
    TEST_ENTRY(test_sendv_bad_buffers),
    TEST_ENTRY(test_emsgsize),
    TEST_ENTRY(test_lengths_beyond_memory),
    TEST_ENTRY(test_ttl_ranges),
    TEST_ENTRY(test_membership_bad_arguments),
    TEST_ENTRY(test_closed_socket_ebadf_wins),
    TEST_ENTRY(test_arguments_before_state),
)
