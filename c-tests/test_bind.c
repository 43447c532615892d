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
#include "test_runner.h"

#include <netinet/in.h>

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

/* A socket of `type` recording into `r`, bound to `address`:`port` with
 * its 'listening' dispatched. */
static dgram_socket *make_bound(dgram_context *ctx, dgram_type type, sock_rec *r, int32_t port,
                                const char *address) {
    dgram_socket *s = rec_socket(ctx, type, r);
    rec_bind_wait(ctx, s, r, port, address);
    return s;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_bind_port_zero_loopback(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = make_bound(ctx, DGRAM_UDP4, &r, 0, "127.0.0.1");
    uint16_t port = test_check_bound(s, "127.0.0.1", 0, DGRAM_IPV4);
    /* The port is the one the kernel reports for the fd. */
    check_kernel_loopback(s, DGRAM_UDP4, port);
    CHECK_EQ(r.listen_once, 1);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_bind_default_addresses(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
    rec_bind_wait(ctx, s4, &r4, 0, NULL);
    rec_bind_wait(ctx, s6, &r6, 0, NULL);
    test_check_bound(s4, "0.0.0.0", 0, DGRAM_IPV4);
    test_check_bound(s6, "::", 0, DGRAM_IPV6);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static void test_bind_ipv6_loopback(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = make_bound(ctx, DGRAM_UDP6, &r, 0, "::1");
    uint16_t port = test_check_bound(s, "::1", 0, DGRAM_IPV6);
    check_kernel_loopback(s, DGRAM_UDP6, port);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_bind_localhost(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
    rec_bind_wait(ctx, s4, &r4, 0, "localhost");
    rec_bind_wait(ctx, s6, &r6, 0, "localhost");
    test_check_bound(s4, "127.0.0.1", 0, DGRAM_IPV4);
    test_check_bound(s6, "::1", 0, DGRAM_IPV6);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static void test_address_before_bind(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
    dgram_addr a;
    memset(&a, 0x5a, sizeof a);
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s6, &a), DGRAM_EBADF);
    /* An unbound socket does not keep the host loop alive. */
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static void test_second_bind_ealready(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = make_bound(ctx, DGRAM_UDP4, &r, 0, "127.0.0.1");
    uint16_t port = test_port(s);
    CHECK_CODE(dgram_bind(s, 0, "127.0.0.1", rec_on_unexpected), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(s, port, "127.0.0.1", rec_on_unexpected), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(s, 0, NULL, rec_on_unexpected), DGRAM_EALREADY);
    /* Still bound where it was. */
    test_check_bound(s, "127.0.0.1", port, DGRAM_IPV4);
    test_run_for(ctx, 100);
    CHECK_EQ(r.listen_once, 1);
    CHECK_EQ(r.unexpected, 0);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_bind_after_implicit_bind(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rr, rs;
    dgram_socket *receiver = make_bound(ctx, DGRAM_UDP4, &rr, 0, "127.0.0.1");
    uint16_t rport = test_port(receiver);

    dgram_socket *sender = rec_socket(ctx, DGRAM_UDP4, &rs);
    /* rec_socket set the persistent handler */;
    send_rec sr = {0};
    CHECK_OK(dgram_send(sender, "implicit", 8, rport, "127.0.0.1", send_rec_on_sent, &sr));
    /* Bound by the send, before any dispatch. */
    CHECK_CODE(dgram_bind(sender, 0, NULL, rec_on_unexpected), DGRAM_EALREADY);
    uint16_t sport = test_check_bound(sender, "0.0.0.0", 0, DGRAM_IPV4);

    RUN_UNTIL(ctx, rr.count, 1);
    RUN_UNTIL(ctx, sr.count, 1);
    CHECK_EQ(sr.code, 0);
    CHECK_EQ(sr.length, 8);
    CHECK_EQ(test_load(&rr.count), 1);
    rec_check_text(&rr, 0, "implicit", "127.0.0.1", sport, DGRAM_IPV4);
    test_run_for(ctx, 100);
    CHECK_EQ(rs.listen_p, 1); /* the implicit bind's 'listening' */
    CHECK_EQ(rs.unexpected, 0);
    CHECK_CODE(dgram_bind(sender, 0, "127.0.0.1", rec_on_unexpected), DGRAM_EALREADY);
    test_run_for(ctx, 50);
    CHECK_EQ(rs.unexpected, 0);
    CHECK_EQ(rs.listen_p, 1);
    dgram_socket_free(sender);
    dgram_socket_free(receiver);
    test_context_finish(ctx);
}

static void test_eaddrinuse_then_rebind(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r1, r2;
    dgram_socket *s1 = make_bound(ctx, DGRAM_UDP4, &r1, 0, "127.0.0.1");
    uint16_t port = test_port(s1);

    dgram_socket *s2 = rec_socket(ctx, DGRAM_UDP4, &r2);
    CHECK_OK(dgram_on_listening(s2, rec_on_listening));
    CHECK_CODE(dgram_bind(s2, port, "127.0.0.1", rec_on_unexpected), DGRAM_EADDRINUSE);
    /* Also in use from the wildcard address. */
    CHECK_CODE(dgram_bind(s2, port, NULL, rec_on_unexpected), DGRAM_EADDRINUSE);
    /* The failed binds left it unbound. */
    dgram_addr a;
    CHECK_CODE(dgram_address(s2, &a), DGRAM_EBADF);
    test_run_for(ctx, 50);
    CHECK_EQ(r2.listen_p, 0);
    CHECK_EQ(r2.unexpected, 0);

    CHECK_OK(dgram_bind(s2, 0, "127.0.0.1", rec_on_listening_once));
    RUN_UNTIL(ctx, r2.listen_once, 1);
    test_run_for(ctx, 100);
    CHECK_EQ(r2.listen_p, 1);
    CHECK_EQ(r2.listen_once, 1);
    CHECK_EQ(r2.unexpected, 0);
    CHECK_STR(r2.log.text, "lL");
    CHECK(test_check_bound(s2, "127.0.0.1", 0, DGRAM_IPV4) != port);
    CHECK_EQ(r2.bad, 0);
    dgram_socket_free(s2);
    dgram_socket_free(s1);
    test_context_finish(ctx);
}

static void test_reuse_addr(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket_options opts = test_opts(DGRAM_UDP4);
    opts.reuse_addr = true;
    sock_rec r1, r2;
    dgram_socket *s1 = rec_socket_with(ctx, &opts, &r1);
    dgram_socket *s2 = rec_socket_with(ctx, &opts, &r2);
    CHECK_EQ(test_sockopt_int(s1, SOL_SOCKET, SO_REUSEADDR), 1);
    CHECK_EQ(test_sockopt_int(s2, SOL_SOCKET, SO_REUSEADDR), 1);
    rec_bind_wait(ctx, s1, &r1, 0, "127.0.0.1");
    uint16_t port = test_port(s1);
    rec_bind_wait(ctx, s2, &r2, port, "127.0.0.1");
    test_check_bound(s2, "127.0.0.1", port, DGRAM_IPV4);

    /* Without reuse_addr the default is off, and the port is refused. */
    sock_rec r3;
    dgram_socket *s3 = rec_socket(ctx, DGRAM_UDP4, &r3);
    CHECK_EQ(test_sockopt_int(s3, SOL_SOCKET, SO_REUSEADDR), 0);
    CHECK_CODE(dgram_bind(s3, port, "127.0.0.1", rec_on_unexpected), DGRAM_EADDRINUSE);
    test_run_for(ctx, 50);
    CHECK_EQ(r3.unexpected, 0);
    dgram_socket_free(s3);
    dgram_socket_free(s2);
    dgram_socket_free(s1);
    test_context_finish(ctx);
}

static void test_eaddrnotavail(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    /* A documentation address (TEST-NET-3) that is no interface of ours.
     * Only bound (which fails), never sent to. */
    CHECK_CODE(dgram_bind(s, 0, "203.0.113.7", rec_on_unexpected), DGRAM_EADDRNOTAVAIL);
    dgram_addr a;
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
    rec_bind_wait(ctx, s, &r, 0, "127.0.0.1");
    test_check_bound(s, "127.0.0.1", 0, DGRAM_IPV4);
    test_run_for(ctx, 50);
    CHECK_EQ(r.unexpected, 0);
    CHECK_EQ(r.listen_once, 1);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_bad_port_and_family(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
    CHECK_CODE(dgram_bind(s4, -1, "127.0.0.1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s4, 65536, "127.0.0.1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, -1, "::1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, 65536, "::1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s4, 0, "::1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s4, 0, "::", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, 0, "127.0.0.1", rec_on_unexpected), DGRAM_EINVAL);
    CHECK_CODE(dgram_bind(s6, 0, "0.0.0.0", rec_on_unexpected), DGRAM_EINVAL);
    dgram_addr a;
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s6, &a), DGRAM_EBADF);
    /* Both still bind afterwards. */
    rec_bind_wait(ctx, s4, &r4, 0, "127.0.0.1");
    rec_bind_wait(ctx, s6, &r6, 0, "::1");
    test_run_for(ctx, 50);
    CHECK_EQ(r4.unexpected + r6.unexpected, 0);
    CHECK_EQ(r4.listen_once, 1);
    CHECK_EQ(r6.listen_once, 1);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static void test_listening_is_async(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    CHECK_OK(dgram_on_listening(s, rec_on_listening));
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", rec_on_listening_once));
    /* Not inside the call... */
    CHECK_EQ(r.listen_p, 0);
    CHECK_EQ(r.listen_once, 0);
    /* ...but from dispatch, and counted as activity until then. */
    CHECK(dgram_context_active(ctx) >= 1);
    RUN_UNTIL(ctx, r.listen_once, 1);
    test_run_for(ctx, 50);
    CHECK_EQ(r.listen_p, 1);
    CHECK_EQ(r.listen_once, 1);
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_listening_handler_order(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
    CHECK_OK(dgram_on_listening(s4, rec_on_listening));
    CHECK_OK(dgram_on_listening(s6, rec_on_listening));
    CHECK_OK(dgram_bind(s4, 0, "127.0.0.1", rec_on_listening_once));
    CHECK_OK(dgram_bind(s6, 0, "::1", rec_on_listening_once));
    RUN_UNTIL(ctx, r4.listen_once, 1);
    RUN_UNTIL(ctx, r6.listen_once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(r4.log.text, "lL");
    CHECK_STR(r6.log.text, "lL");
    CHECK_EQ(r4.bad + r6.bad, 0);

    /* With no one-shot callback, the persistent handler alone runs. */
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    CHECK_OK(dgram_on_listening(s, rec_on_listening));
    CHECK_OK(dgram_bind(s, 0, "127.0.0.1", NULL));
    RUN_UNTIL(ctx, r.listen_p, 1);
    test_run_for(ctx, 50);
    CHECK_STR(r.log.text, "l");

    /* A cleared persistent handler is not called. */
    sock_rec rc;
    dgram_socket *c = rec_socket(ctx, DGRAM_UDP4, &rc);
    CHECK_OK(dgram_on_listening(c, rec_on_listening));
    CHECK_OK(dgram_on_listening(c, NULL));
    CHECK_OK(dgram_bind(c, 0, "127.0.0.1", rec_on_listening_once));
    RUN_UNTIL(ctx, rc.listen_once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(rc.log.text, "L");
    dgram_socket_free(c);
    dgram_socket_free(s);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static dgram_socket *make_v6only(dgram_context *ctx, sock_rec *r, bool v6only) {
    dgram_socket_options opts = test_opts(DGRAM_UDP6);
    opts.ipv6_only = v6only;
    return rec_socket_with(ctx, &opts, r);
}

static void test_ipv6_only_true(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r6, rs;
    dgram_socket *s6 = make_v6only(ctx, &r6, true);
    CHECK_EQ(test_sockopt_int(s6, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    rec_bind_wait(ctx, s6, &r6, 0, "::");
    uint16_t port = test_port(s6);

    dgram_socket *sender = make_bound(ctx, DGRAM_UDP4, &rs, 0, "127.0.0.1");
    send_rec sr = {0};
    send_and_wait(ctx, sender, "v4", 2, port, "127.0.0.1", &sr);
    test_run_for(ctx, 100);
    CHECK_EQ(r6.count, 0);

    /* The socket still receives IPv6. */
    sock_rec r7;
    dgram_socket *s7 = make_bound(ctx, DGRAM_UDP6, &r7, 0, "::1");
    CHECK_OK(dgram_send(s7, "v6", 2, port, "::1", send_rec_on_sent, &sr));
    RUN_UNTIL(ctx, r6.count, 1);
    CHECK_EQ(test_load(&r6.count), 1);
    rec_check_text(&r6, 0, "v6", "::1", test_port(s7), DGRAM_IPV6);

    /* The IPv4 port stays free for an IPv4 socket. */
    sock_rec r4;
    dgram_socket *s4 = make_bound(ctx, DGRAM_UDP4, &r4, port, "127.0.0.1");
    CHECK_EQ(test_port(s4), port);
    dgram_socket_free(s4);
    dgram_socket_free(s7);
    dgram_socket_free(sender);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static void test_ipv6_only_false(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r6, rs;
    dgram_socket *s6 = make_v6only(ctx, &r6, false);
    CHECK_EQ(test_sockopt_int(s6, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    rec_bind_wait(ctx, s6, &r6, 0, "::");
    uint16_t port = test_port(s6);

    dgram_socket *sender = make_bound(ctx, DGRAM_UDP4, &rs, 0, "127.0.0.1");
    uint16_t sport = test_port(sender);
    send_rec sr = {0};
    send_and_wait(ctx, sender, "dual", 4, port, "127.0.0.1", &sr);
    RUN_UNTIL(ctx, r6.count, 1);
    CHECK_EQ(test_load(&r6.count), 1);
    rec_check_text(&r6, 0, "dual", "::ffff:127.0.0.1", sport, DGRAM_IPV6);
    test_run_for(ctx, 50);
    CHECK_EQ(r6.count, 1);

    /* The dual-stack socket holds the IPv4 port too. */
    sock_rec r4;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    CHECK_CODE(dgram_bind(s4, port, "127.0.0.1", rec_on_unexpected), DGRAM_EADDRINUSE);
    test_run_for(ctx, 50);
    CHECK_EQ(r4.unexpected, 0);
    dgram_socket_free(s4);
    dgram_socket_free(sender);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

static void test_buffer_sizes(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int type = DGRAM_UDP4; type <= DGRAM_UDP6; type++) {
        dgram_socket_options opts = test_opts((dgram_type)type);
        opts.recv_buffer_size = 40000;
        opts.send_buffer_size = 30000;
        sock_rec r;
        dgram_socket *s = rec_socket_with(ctx, &opts, &r);
        /* Linux doubles the value set (bookkeeping overhead). */
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF), 80000);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_SNDBUF), 60000);
        /* Bind does not reset them. */
        rec_bind_wait(ctx, s, &r, 0, test_loopback((dgram_type)type));
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
        s = rec_socket_with(ctx, &opts, &r);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF), 24690);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_SNDBUF), def_snd);
        dgram_socket_free(s);
    }
    test_context_finish(ctx);
}

static void test_fileno(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r4, r6;
    dgram_socket *s4 = rec_socket(ctx, DGRAM_UDP4, &r4);
    dgram_socket *s6 = rec_socket(ctx, DGRAM_UDP6, &r6);
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
    rec_bind_wait(ctx, s4, &r4, 0, "127.0.0.1");
    CHECK_EQ(dgram_fileno(s4), fd4);
    /* EBADF after close (bound and never bound alike). */
    CHECK_OK(dgram_close(s4, NULL));
    CHECK_OK(dgram_close(s6, NULL));
    CHECK_CODE(dgram_fileno(s4), DGRAM_EBADF);
    CHECK_CODE(dgram_fileno(s6), DGRAM_EBADF);
    dgram_addr a;
    CHECK_CODE(dgram_address(s4, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s6, 0, "::1", rec_on_unexpected), DGRAM_EBADF);
    test_run_for(ctx, 50);
    CHECK_EQ(r6.unexpected, 0);
    dgram_socket_free(s4);
    dgram_socket_free(s6);
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_bind_port_zero_loopback),
    TEST_ENTRY(test_bind_default_addresses),
    TEST_ENTRY(test_bind_ipv6_loopback),
    TEST_ENTRY(test_bind_localhost),
    TEST_ENTRY(test_address_before_bind),
    TEST_ENTRY(test_second_bind_ealready),
    TEST_ENTRY(test_bind_after_implicit_bind),
    TEST_ENTRY(test_eaddrinuse_then_rebind),
    TEST_ENTRY(test_reuse_addr),
    TEST_ENTRY(test_eaddrnotavail),
    TEST_ENTRY(test_bad_port_and_family),
    TEST_ENTRY(test_listening_is_async),
    TEST_ENTRY(test_listening_handler_order),
    TEST_ENTRY(test_ipv6_only_true),
    TEST_ENTRY(test_ipv6_only_false),
    TEST_ENTRY(test_buffer_sizes),
    TEST_ENTRY(test_fileno),
)
