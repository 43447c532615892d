/*
 * bind and address: ports the OS picks, the exact local address reported,
 * default and "localhost" addresses, EALREADY / EADDRINUSE / EADDRNOTAVAIL /
 * EINVAL, rebinding after a failed bind, SO_REUSEADDR, 'listening' being
 * asynchronous and its handler order, IPV6_V6ONLY (dual stack), buffer sizes
 * and dgram_fileno.
 *
 * Unicast on 127.0.0.1 and ::1 only; 203.0.113.7 is only ever bound (which
 * fails), never sent to.
 */
#include "recorder.h"

#include <netinet/in.h>

/* What happened to one socket. `userdata` of every socket points to one. */
typedef struct {
    dgram_socket *self;  /* the handle, to check callbacks get it back */
    int wrong_handle;    /* callbacks that got another handle */
    int listening;       /* persistent 'listening' handler calls */
    int once;            /* one-shot bind callback calls */
    int failed_once;     /* one-shot callback of a bind that failed */
    event_log order;     /* "P" persistent listening, "O" one-shot, "F" failed one-shot, "M" message */
    inbox in;            /* the datagrams */
} rec;

/* Records one event of `r`'s socket: checks the handle, logs `what` and
 * counts it in `*count` (when given). */
static void record(rec *r, dgram_socket *s, char what, int *count) {
    if (r->self != s)
        r->wrong_handle++;
    event_log_add(&r->order, what);
    if (count)
        (*count)++;
}

static void on_listening(dgram_socket *s, void *ud) {
    rec *r = ud;
    record(r, s, 'P', &r->listening);
}

static void on_bound_once(dgram_socket *s, void *ud) {
    rec *r = ud;
    record(r, s, 'O', &r->once);
}

static void on_failed_bind_once(dgram_socket *s, void *ud) {
    rec *r = ud;
    record(r, s, 'F', &r->failed_once);
}

static void on_message(dgram_socket *s, const uint8_t *msg, size_t len,
                       const dgram_addr *rinfo, void *ud) {
    rec *r = ud;
    record(r, s, 'M', NULL);
    inbox_store(&r->in, s, msg, len, rinfo); /* counts it in r->in.count */
}

/* A socket whose userdata is `r` (cleared), with options `opts`. */
static dgram_socket *make_socket(dgram_context *ctx,
                                 const dgram_socket_options *opts, rec *r) {
    memset(r, 0, sizeof *r);
    dgram_socket *s = test_socket_with(ctx, opts, on_message, r);
    r->self = s;
    return s;
}

static dgram_socket *make(dgram_context *ctx, dgram_type type, rec *r) {
    dgram_socket_options opts = test_opts(type);
    return make_socket(ctx, &opts, r);
}

/* The kernel's own view of `s` (getsockname on its fd): bound to the
 * loopback address of `type`, on `port`. */
static void check_kernel_loopback(dgram_socket *s, dgram_type type, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_EQ(getsockname(dgram_fileno(s), (struct sockaddr *)&ss, &len), 0);
    if (type == DGRAM_UDP4) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        CHECK_EQ(sin->sin_family, AF_INET);
        CHECK_EQ(ntohs(sin->sin_port), port);
        CHECK_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        CHECK_EQ(sin6->sin6_family, AF_INET6);
        CHECK_EQ(ntohs(sin6->sin6_port), port);
        CHECK(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
    }
}

/* Binds `s` to `address`:`port` and dispatches until its 'listening'. */
static void bind_and_listen(dgram_context *ctx, dgram_socket *s, rec *r,
                            int32_t port, const char *address) {
    int before = r->once;
    CHECK_OK(dgram_bind(s, port, address, on_bound_once));
    RUN_UNTIL(ctx, r->once, before + 1);
}

/* A socket of `type` recording into `r`, bound to `address`:`port` with
 * its 'listening' dispatched. */
static dgram_socket *make_bound(dgram_context *ctx, dgram_type type, rec *r, int32_t port,
                                const char *address) {
    dgram_socket *s = make(ctx, type, r);
    bind_and_listen(ctx, s, r, port, address);
    return s;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_bind_port_zero_loopback(dgram_context *ctx) {
    printf("test_bind_port_zero_loopback\n");
    rec r;
    dgram_socket *s = make_bound(ctx, DGRAM_UDP4, &r, 0, "127.0.0.1");
    uint16_t port = test_check_bound(s, "127.0.0.1", 0, DGRAM_IPV4);
    /* The port is the one the kernel reports for the fd. */
    check_kernel_loopback(s, DGRAM_UDP4, port);
    CHECK_EQ(r.once, 1);
    CHECK_EQ(r.wrong_handle, 0);
    dgram_socket_free(s);
}

static void test_bind_default_addresses(dgram_context *ctx) {
    printf("test_bind_default_addresses\n");
    rec r4, r6;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = make(ctx, DGRAM_UDP6, &r6);
    bind_and_listen(ctx, s4, &r4, 0, NULL);
    bind_and_listen(ctx, s6, &r6, 0, NULL);
    test_check_bound(s4, "0.0.0.0", 0, DGRAM_IPV4);
    test_check_bound(s6, "::", 0, DGRAM_IPV6);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
}

static void test_bind_ipv6_loopback(dgram_context *ctx) {
    printf("test_bind_ipv6_loopback\n");
    rec r;
    dgram_socket *s = make_bound(ctx, DGRAM_UDP6, &r, 0, "::1");
    uint16_t port = test_check_bound(s, "::1", 0, DGRAM_IPV6);
    check_kernel_loopback(s, DGRAM_UDP6, port);
    dgram_socket_free(s);
}

static void test_bind_localhost(dgram_context *ctx) {
    printf("test_bind_localhost\n");
    rec r4, r6;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = make(ctx, DGRAM_UDP6, &r6);
    bind_and_listen(ctx, s4, &r4, 0, "localhost");
    bind_and_listen(ctx, s6, &r6, 0, "localhost");
    test_check_bound(s4, "127.0.0.1", 0, DGRAM_IPV4);
    test_check_bound(s6, "::1", 0, DGRAM_IPV6);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
}

static void test_address_before_bind(dgram_context *ctx) {
    printf("test_address_before_bind\n");
    rec r4, r6;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = make(ctx, DGRAM_UDP6, &r6);
    dgram_addr a;
    memset(&a, 0x5a, sizeof a);
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s6, &a), DGRAM_EBADF);
    /* An unbound socket does not keep the host loop alive. */
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
}

static void test_second_bind_ealready(dgram_context *ctx) {
    printf("test_second_bind_ealready\n");
    rec r;
    dgram_socket *s = make_bound(ctx, DGRAM_UDP4, &r, 0, "127.0.0.1");
    uint16_t port = test_port(s);
    CHECK_CODE(dgram_bind(s, 0, "127.0.0.1", on_failed_bind_once), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(s, port, "127.0.0.1", on_failed_bind_once), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(s, 0, NULL, on_failed_bind_once), DGRAM_EALREADY);
    /* Still bound where it was. */
    test_check_bound(s, "127.0.0.1", port, DGRAM_IPV4);
    test_run_for(ctx, 100);
    CHECK_EQ(r.once, 1);
    CHECK_EQ(r.failed_once, 0);
    dgram_socket_free(s);
}

static void test_bind_after_implicit_bind(dgram_context *ctx) {
    printf("test_bind_after_implicit_bind\n");
    rec rr, rs;
    dgram_socket *receiver = make_bound(ctx, DGRAM_UDP4, &rr, 0, "127.0.0.1");
    uint16_t rport = test_port(receiver);

    dgram_socket *sender = make(ctx, DGRAM_UDP4, &rs);
    CHECK_OK(dgram_on_listening(sender, on_listening));
    send_rec sr = {0};
    CHECK_OK(dgram_send(sender, "implicit", 8, rport, "127.0.0.1", send_rec_on_sent, &sr));
    /* Bound by the send, before any dispatch. */
    CHECK_CODE(dgram_bind(sender, 0, NULL, on_failed_bind_once), DGRAM_EALREADY);
    uint16_t sport = test_check_bound(sender, "0.0.0.0", 0, DGRAM_IPV4);

    RUN_UNTIL(ctx, rr.in.count, 1);
    RUN_UNTIL(ctx, sr.count, 1);
    CHECK_EQ(sr.code, 0);
    CHECK_EQ(sr.length, 8);
    check_inbox(&rr.in, 1, "implicit", 8, "127.0.0.1", sport, DGRAM_IPV4);
    test_run_for(ctx, 100);
    CHECK_EQ(rs.listening, 1); /* the implicit bind's 'listening' */
    CHECK_EQ(rs.failed_once, 0);
    CHECK_CODE(dgram_bind(sender, 0, "127.0.0.1", on_failed_bind_once), DGRAM_EALREADY);
    test_run_for(ctx, 50);
    CHECK_EQ(rs.failed_once, 0);
    CHECK_EQ(rs.listening, 1);
    dgram_socket_free(sender);
    dgram_socket_free(receiver);
}

static void test_eaddrinuse_then_rebind(dgram_context *ctx) {
    printf("test_eaddrinuse_then_rebind\n");
    rec r1, r2;
    dgram_socket *s1 = make_bound(ctx, DGRAM_UDP4, &r1, 0, "127.0.0.1");
    uint16_t port = test_port(s1);

    dgram_socket *s2 = make(ctx, DGRAM_UDP4, &r2);
    CHECK_OK(dgram_on_listening(s2, on_listening));
    CHECK_CODE(dgram_bind(s2, port, "127.0.0.1", on_failed_bind_once), DGRAM_EADDRINUSE);
    /* Also in use from the wildcard address. */
    CHECK_CODE(dgram_bind(s2, port, NULL, on_failed_bind_once), DGRAM_EADDRINUSE);
    /* The failed binds left it unbound. */
    dgram_addr a;
    CHECK_CODE(dgram_address(s2, &a), DGRAM_EBADF);
    test_run_for(ctx, 50);
    CHECK_EQ(r2.listening, 0);
    CHECK_EQ(r2.failed_once, 0);

    CHECK_OK(dgram_bind(s2, 0, "127.0.0.1", on_bound_once));
    RUN_UNTIL(ctx, r2.once, 1);
    test_run_for(ctx, 100);
    CHECK_EQ(r2.listening, 1);
    CHECK_EQ(r2.once, 1);
    CHECK_EQ(r2.failed_once, 0);
    CHECK_STR(r2.order.text, "PO");
    CHECK(test_check_bound(s2, "127.0.0.1", 0, DGRAM_IPV4) != port);
    CHECK_EQ(r2.wrong_handle, 0);
    dgram_socket_free(s2);
    dgram_socket_free(s1);
}

static void test_reuse_addr(dgram_context *ctx) {
    printf("test_reuse_addr\n");
    dgram_socket_options opts = test_opts(DGRAM_UDP4);
    opts.reuse_addr = true;
    rec r1, r2;
    dgram_socket *s1 = make_socket(ctx, &opts, &r1);
    dgram_socket *s2 = make_socket(ctx, &opts, &r2);
    CHECK_EQ(test_sockopt_int(s1, SOL_SOCKET, SO_REUSEADDR), 1);
    CHECK_EQ(test_sockopt_int(s2, SOL_SOCKET, SO_REUSEADDR), 1);
    bind_and_listen(ctx, s1, &r1, 0, "127.0.0.1");
    uint16_t port = test_port(s1);
    bind_and_listen(ctx, s2, &r2, port, "127.0.0.1");
    test_check_bound(s2, "127.0.0.1", port, DGRAM_IPV4);

    /* Without reuse_addr the default is off, and the port is refused. */
    rec r3;
    dgram_socket *s3 = make(ctx, DGRAM_UDP4, &r3);
    CHECK_EQ(test_sockopt_int(s3, SOL_SOCKET, SO_REUSEADDR), 0);
    CHECK_CODE(dgram_bind(s3, port, "127.0.0.1", on_failed_bind_once), DGRAM_EADDRINUSE);
    test_run_for(ctx, 50);
    CHECK_EQ(r3.failed_once, 0);
    dgram_socket_free(s3);
    dgram_socket_free(s2);
    dgram_socket_free(s1);
}

static void test_eaddrnotavail(dgram_context *ctx) {
    printf("test_eaddrnotavail\n");
    rec r;
    dgram_socket *s = make(ctx, DGRAM_UDP4, &r);
    /* A documentation address (TEST-NET-3) that is no interface of ours.
     * Only bound (which fails), never sent to. */
    CHECK_CODE(dgram_bind(s, 0, "203.0.113.7", on_failed_bind_once), DGRAM_EADDRNOTAVAIL);
    dgram_addr a;
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
    bind_and_listen(ctx, s, &r, 0, "127.0.0.1");
    test_check_bound(s, "127.0.0.1", 0, DGRAM_IPV4);
    test_run_for(ctx, 50);
    CHECK_EQ(r.failed_once, 0);
    CHECK_EQ(r.once, 1);
    dgram_socket_free(s);
}

static void test_bad_port_and_family(dgram_context *ctx) {
    printf("test_bad_port_and_family\n");
    rec r4, r6;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = make(ctx, DGRAM_UDP6, &r6);
    CHECK_CODE(dgram_bind(s4, -1, "127.0.0.1", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s4, 65536, "127.0.0.1", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, -1, "::1", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, 65536, "::1", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s4, 0, "::1", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s4, 0, "::", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, 0, "127.0.0.1", on_failed_bind_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, 0, "0.0.0.0", on_failed_bind_once), DGRAM_EINVAL);
    dgram_addr a;
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s6, &a), DGRAM_EBADF);
    /* Both still bind afterwards. */
    bind_and_listen(ctx, s4, &r4, 0, "127.0.0.1");
    bind_and_listen(ctx, s6, &r6, 0, "::1");
    test_run_for(ctx, 50);
    CHECK_EQ(r4.failed_once + r6.failed_once, 0);
    CHECK_EQ(r4.once, 1);
    CHECK_EQ(r6.once, 1);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
}

static void test_listening_is_async(dgram_context *ctx) {
    printf("test_listening_is_async\n");
    rec r;
    dgram_socket *s = make(ctx, DGRAM_UDP4, &r);
    CHECK_OK(dgram_on_listening(s, on_listening));
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", on_bound_once));
    /* Not inside the call... */
    CHECK_EQ(r.listening, 0);
    CHECK_EQ(r.once, 0);
    /* ...but from dispatch, and counted as activity until then. */
    CHECK(dgram_context_active(ctx) >= 1);
    RUN_UNTIL(ctx, r.once, 1);
    test_run_for(ctx, 50);
    CHECK_EQ(r.listening, 1);
    CHECK_EQ(r.once, 1);
    CHECK_EQ(r.wrong_handle, 0);
    dgram_socket_free(s);
}

static void test_listening_handler_order(dgram_context *ctx) {
    printf("test_listening_handler_order\n");
    rec r4, r6;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = make(ctx, DGRAM_UDP6, &r6);
    CHECK_OK(dgram_on_listening(s4, on_listening));
    CHECK_OK(dgram_on_listening(s6, on_listening));
    CHECK_OK(dgram_bind(s4, 0, "127.0.0.1", on_bound_once));
    CHECK_OK(dgram_bind(s6, 0, "::1", on_bound_once));
    RUN_UNTIL(ctx, r4.once, 1);
    RUN_UNTIL(ctx, r6.once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(r4.order.text, "PO");
    CHECK_STR(r6.order.text, "PO");
    CHECK_EQ(r4.wrong_handle + r6.wrong_handle, 0);

    /* With no one-shot callback, the persistent handler alone runs. */
    rec r;
    dgram_socket *s = make(ctx, DGRAM_UDP4, &r);
    CHECK_OK(dgram_on_listening(s, on_listening));
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", NULL));
    RUN_UNTIL(ctx, r.listening, 1);
    test_run_for(ctx, 50);
    CHECK_STR(r.order.text, "P");

    /* A cleared persistent handler is not called. */
    rec rc;
    dgram_socket *c = make(ctx, DGRAM_UDP4, &rc);
    CHECK_OK(dgram_on_listening(c, on_listening));
    CHECK_OK(dgram_on_listening(c, NULL));
    CHECK_OK(dgram_bind(c, 0, "127.0.0.1", on_bound_once));
    RUN_UNTIL(ctx, rc.once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(rc.order.text, "O");
    dgram_socket_free(c);
    dgram_socket_free(s);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
}

static dgram_socket *make_v6only(dgram_context *ctx, rec *r, bool v6only) {
    dgram_socket_options opts = test_opts(DGRAM_UDP6);
    opts.ipv6_only = v6only;
    return make_socket(ctx, &opts, r);
}

static void test_ipv6_only_true(dgram_context *ctx) {
    printf("test_ipv6_only_true\n");
    rec r6, rs;
    dgram_socket *s6 = make_v6only(ctx, &r6, true);
    CHECK_EQ(test_sockopt_int(s6, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    bind_and_listen(ctx, s6, &r6, 0, "::");
    uint16_t port = test_port(s6);

    dgram_socket *sender = make_bound(ctx, DGRAM_UDP4, &rs, 0, "127.0.0.1");
    send_rec sr = {0};
    send_and_wait(ctx, sender, "v4", 2, port, "127.0.0.1", &sr);
    test_run_for(ctx, 100);
    CHECK_EQ(r6.in.count, 0);

    /* The socket still receives IPv6. */
    rec r7;
    dgram_socket *s7 = make_bound(ctx, DGRAM_UDP6, &r7, 0, "::1");
    CHECK_OK(dgram_send(s7, "v6", 2, port, "::1", send_rec_on_sent, &sr));
    RUN_UNTIL(ctx, r6.in.count, 1);
    check_inbox(&r6.in, 1, "v6", 2, "::1", test_port(s7), DGRAM_IPV6);

    /* The IPv4 port stays free for an IPv4 socket. */
    rec r4;
    dgram_socket *s4 = make_bound(ctx, DGRAM_UDP4, &r4, port, "127.0.0.1");
    CHECK_EQ(test_port(s4), port);
    dgram_socket_free(s4);
    dgram_socket_free(s7);
    dgram_socket_free(sender);
    dgram_socket_free(s6);
}

static void test_ipv6_only_false(dgram_context *ctx) {
    printf("test_ipv6_only_false\n");
    rec r6, rs;
    dgram_socket *s6 = make_v6only(ctx, &r6, false);
    CHECK_EQ(test_sockopt_int(s6, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    bind_and_listen(ctx, s6, &r6, 0, "::");
    uint16_t port = test_port(s6);

    dgram_socket *sender = make_bound(ctx, DGRAM_UDP4, &rs, 0, "127.0.0.1");
    uint16_t sport = test_port(sender);
    send_rec sr = {0};
    send_and_wait(ctx, sender, "dual", 4, port, "127.0.0.1", &sr);
    RUN_UNTIL(ctx, r6.in.count, 1);
    check_inbox(&r6.in, 1, "dual", 4, "::ffff:127.0.0.1", sport, DGRAM_IPV6);
    test_run_for(ctx, 50);
    CHECK_EQ(r6.in.count, 1);

    /* The dual-stack socket holds the IPv4 port too. */
    rec r4;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    CHECK_CODE(dgram_bind(s4, port, "127.0.0.1", on_failed_bind_once), DGRAM_EADDRINUSE);
    test_run_for(ctx, 50);
    CHECK_EQ(r4.failed_once, 0);
    dgram_socket_free(s4);
    dgram_socket_free(sender);
    dgram_socket_free(s6);
}

static void test_buffer_sizes(dgram_context *ctx) {
    printf("test_buffer_sizes\n");
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        dgram_socket_options opts = test_opts((dgram_type)type);
        opts.recv_buffer_size = 40000;
        opts.send_buffer_size = 30000;
        rec r;
        dgram_socket *s = make_socket(ctx, &opts, &r);
        /* Linux doubles the value set (bookkeeping overhead). */
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF), 80000);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_SNDBUF), 60000);
        /* Bind does not reset them. */
        bind_and_listen(ctx, s, &r, 0, test_loopback((dgram_type)type));
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF), 80000);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_SNDBUF), 60000);
        dgram_socket_free(s);

        /* Only one of them set: the other keeps the system default, which
         * is what a plain socket gets. */
        int plain = socket(type == DGRAM_UDP4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
        CHECK(plain >= 0);
        int def_snd = -1;
        socklen_t len = sizeof def_snd;
        CHECK_EQ(getsockopt(plain, SOL_SOCKET, SO_SNDBUF, &def_snd, &len), 0);
        close(plain);
        opts.send_buffer_size = 0;
        opts.recv_buffer_size = 12345;
        s = make_socket(ctx, &opts, &r);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF), 24690);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_SNDBUF), def_snd);
        dgram_socket_free(s);
    }
}

static void test_fileno(dgram_context *ctx) {
    printf("test_fileno\n");
    rec r4, r6;
    dgram_socket *s4 = make(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = make(ctx, DGRAM_UDP6, &r6);
    /* Valid before bind: a UDP socket of the right family. */
    int fd4 = dgram_fileno(s4);
    int fd6 = dgram_fileno(s6);
    CHECK(fd4 >= 0);
    CHECK(fd6 >= 0);
    CHECK(fd4 != fd6);
    CHECK_EQ(test_sockopt_int(s4, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    CHECK_EQ(test_sockopt_int(s4, SOL_SOCKET, SO_DOMAIN), AF_INET);
    CHECK_EQ(test_sockopt_int(s4, SOL_SOCKET, SO_PROTOCOL), IPPROTO_UDP);
    CHECK_EQ(test_sockopt_int(s6, SOL_SOCKET, SO_DOMAIN), AF_INET6);
    /* The same fd after bind. */
    bind_and_listen(ctx, s4, &r4, 0, "127.0.0.1");
    CHECK_EQ(dgram_fileno(s4), fd4);
    /* EBADF after close (bound and never bound alike). */
    CHECK_OK(dgram_close(s4, NULL));
    CHECK_OK(dgram_close(s6, NULL));
    CHECK_CODE(dgram_fileno(s4), DGRAM_EBADF);
    CHECK_CODE(dgram_fileno(s6), DGRAM_EBADF);
    dgram_addr a;
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s6, 0, "::1", on_failed_bind_once), DGRAM_EBADF);
    test_run_for(ctx, 50);
    CHECK_EQ(r6.failed_once, 0);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
}

int main(void) {
    test_watchdog(60);
    dgram_context *ctx = dgram_context_new(NULL);
    CHECK(ctx != NULL);

    test_bind_port_zero_loopback(ctx);
    test_bind_default_addresses(ctx);
    test_bind_ipv6_loopback(ctx);
    test_bind_localhost(ctx);
    test_address_before_bind(ctx);
    test_second_bind_ealready(ctx);
    test_bind_after_implicit_bind(ctx);
    test_eaddrinuse_then_rebind(ctx);
    test_reuse_addr(ctx);
    test_eaddrnotavail(ctx);
    test_bad_port_and_family(ctx);
    test_listening_is_async(ctx);
    test_listening_handler_order(ctx);
    test_ipv6_only_true(ctx);
    test_ipv6_only_false(ctx);
    test_buffer_sizes(ctx);
    test_fileno(ctx);

    /* Everything freed: nothing left to keep a host loop alive. */
    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_context_free(ctx);
    printf("all passed\n");
    return 0;
}
