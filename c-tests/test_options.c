/*
 * Socket options: every set* function (and the reuse_addr / ipv6_only
 * creation options) checked by reading the option back with getsockopt on
 * dgram_fileno(s), on udp4 and udp6, before and after bind.
 *
 * Nothing here leaves the machine: the only datagrams sent go to 127.0.0.1
 * and ::1 (to check that the TTL set is the one the packets carry).
 * Multicast memberships are covered in test_multicast.c.
 */
#include "recorder.h"
#include "test_runner.h"

#include <netinet/in.h>
#include <sys/time.h>

static const dgram_type TYPES[2] = {DGRAM_UDP4, DGRAM_UDP6};

/* A socket of `type`, bound to the loopback address on an OS-chosen port
 * when `bound`; the fd must stay the same across bind (the OS socket is
 * made by dgram_create_socket). */
static dgram_socket *make(dgram_context *ctx, dgram_type type, bool bound, bool reuse_addr,
                          bool ipv6_only) {
    dgram_socket_options opts = test_opts(type);
    opts.reuse_addr = reuse_addr;
    opts.ipv6_only = ipv6_only;
    dgram_socket *s = test_socket_with(ctx, &opts, NULL, NULL);
    int fd = dgram_fileno(s);
    CHECK(fd >= 0);
    if (bound) {
        test_bind_wait(ctx, s, 0, test_loopback(type));
        CHECK_EQ(dgram_fileno(s), fd);
    }
    return s;
}

/* Runs `fn` on udp4 and udp6 sockets, unbound and bound, in a context of
 * its own. */
static void for_each_socket(void (*fn)(dgram_socket *s, dgram_type type, bool bound)) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int t = 0; t < 2; t++) {
        for (int bound = 0; bound <= 1; bound++) {
            printf("    %s, %s\n", test_type_name(TYPES[t]), bound ? "bound" : "not bound");
            dgram_socket *s = make(ctx, TYPES[t], bound, false, false);
            fn(s, TYPES[t], bound);
            dgram_socket_free(s);
        }
    }
    test_context_finish(ctx);
}

/* ---- setBroadcast ---------------------------------------------------- */

static void broadcast_case(dgram_socket *s, dgram_type type, bool bound) {
    (void)type;
    (void)bound;
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_BROADCAST), 0); /* Node default: off */
    CHECK_OK(dgram_set_broadcast(s, true));
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_BROADCAST), 1);
    CHECK_OK(dgram_set_broadcast(s, true)); /* idempotent */
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_BROADCAST), 1);
    CHECK_OK(dgram_set_broadcast(s, false));
    CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_BROADCAST), 0);
}

static void test_set_broadcast(void) {
    for_each_socket(broadcast_case);
}

/* ---- setTTL ------------------------------------------------------------ */

/* The protocol level of the IP options of `t`: IPPROTO_IP or IPPROTO_IPV6. */
static int ip_level(dgram_type t) { return t == DGRAM_UDP4 ? IPPROTO_IP : IPPROTO_IPV6; }
static int ttl_name(dgram_type t) { return t == DGRAM_UDP4 ? IP_TTL : IPV6_UNICAST_HOPS; }

static void ttl_case(dgram_socket *s, dgram_type type, bool bound) {
    (void)bound;
    static const int32_t good[] = {1, 64, 255, 2, 200};
    /* Out of range: DGRAM_EINVAL, and the value stays 200. */
    static const int32_t bad[] = {0, 256, -1, 1000, INT32_MIN, INT32_MAX};
    test_check_int_setter(s, dgram_set_ttl, ip_level(type), ttl_name(type), good,
                          sizeof good / sizeof good[0], bad, sizeof bad / sizeof bad[0]);
}

static void test_set_ttl(void) {
    for_each_socket(ttl_case);
}

/* ---- setMulticastTTL ---------------------------------------------------- */

static int mttl_name(dgram_type t) { return t == DGRAM_UDP4 ? IP_MULTICAST_TTL : IPV6_MULTICAST_HOPS; }

static void multicast_ttl_case(dgram_socket *s, dgram_type type, bool bound) {
    (void)bound;
    int level = ip_level(type), name = mttl_name(type);
    CHECK_EQ(test_sockopt_int(s, level, name), 1); /* the system default, as in Node */
    static const int32_t good[] = {0, 7, 255, 1, 0, 42};
    /* Out of range: DGRAM_EINVAL, and the value stays 42. */
    static const int32_t bad[] = {-1, 256, -2, 65536, INT32_MIN, INT32_MAX};
    test_check_int_setter(s, dgram_set_multicast_ttl, level, name, good,
                          sizeof good / sizeof good[0], bad, sizeof bad / sizeof bad[0]);
    /* Setting the multicast TTL leaves the unicast one alone and vice versa. */
    CHECK_OK(dgram_set_ttl(s, 99));
    CHECK_OK(dgram_set_multicast_ttl(s, 3));
    CHECK_EQ(test_sockopt_int(s, ip_level(type), ttl_name(type)), 99);
    CHECK_EQ(test_sockopt_int(s, level, name), 3);
}

static void test_set_multicast_ttl(void) {
    for_each_socket(multicast_ttl_case);
}

/* ---- setMulticastLoopback --------------------------------------------- */

static void multicast_loop_case(dgram_socket *s, dgram_type type, bool bound) {
    (void)bound;
    int level = ip_level(type);
    int name = type == DGRAM_UDP4 ? IP_MULTICAST_LOOP : IPV6_MULTICAST_LOOP;
    CHECK_EQ(test_sockopt_int(s, level, name), 1); /* system default: on */
    CHECK_OK(dgram_set_multicast_loopback(s, false));
    CHECK_EQ(test_sockopt_int(s, level, name), 0);
    CHECK_OK(dgram_set_multicast_loopback(s, false));
    CHECK_EQ(test_sockopt_int(s, level, name), 0);
    CHECK_OK(dgram_set_multicast_loopback(s, true));
    CHECK_EQ(test_sockopt_int(s, level, name), 1);
}

static void test_set_multicast_loopback(void) {
    for_each_socket(multicast_loop_case);
}

/* ---- options set before bind survive bind ------------------------------ */

static void test_options_survive_bind(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int t = 0; t < 2; t++) {
        dgram_type type = TYPES[t];
        dgram_socket *s = make(ctx, type, false, false, false);
        int fd = dgram_fileno(s);
        CHECK_OK(dgram_set_broadcast(s, true));
        CHECK_OK(dgram_set_ttl(s, 17));
        CHECK_OK(dgram_set_multicast_ttl(s, 9));
        CHECK_OK(dgram_set_multicast_loopback(s, false));
        test_bind_wait(ctx, s, 0, test_loopback(type));
        CHECK_EQ(dgram_fileno(s), fd);
        CHECK_EQ(test_sockopt_int(s, SOL_SOCKET, SO_BROADCAST), 1);
        CHECK_EQ(test_sockopt_int(s, ip_level(type), ttl_name(type)), 17);
        CHECK_EQ(test_sockopt_int(s, ip_level(type), mttl_name(type)), 9);
        CHECK_EQ(test_sockopt_int(s, ip_level(type),
                                  type == DGRAM_UDP4 ? IP_MULTICAST_LOOP : IPV6_MULTICAST_LOOP),
                 0);
        dgram_socket_free(s);
    }
    test_context_finish(ctx);
}

/* ---- reuse_addr --------------------------------------------------------- */

static void test_reuse_addr(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int t = 0; t < 2; t++) {
        dgram_type type = TYPES[t];
        for (int bound = 0; bound <= 1; bound++) {
            dgram_socket *on = make(ctx, type, bound, true, false);
            dgram_socket *off = make(ctx, type, bound, false, false);
            CHECK_EQ(test_sockopt_int(on, SOL_SOCKET, SO_REUSEADDR), 1);
            CHECK_EQ(test_sockopt_int(off, SOL_SOCKET, SO_REUSEADDR), 0);
            dgram_socket_free(on);
            dgram_socket_free(off);
        }
        /* Effect: two reuse_addr sockets share a port; without it the
         * second bind is EADDRINUSE. */
        dgram_socket *a = make(ctx, type, true, true, false);
        uint16_t port = test_port(a);
        dgram_socket *b = make(ctx, type, false, true, false);
        CHECK_EQ(test_bind_wait(ctx, b, port, test_loopback(type)), port);
        dgram_socket *c = make(ctx, type, false, false, false);
        CHECK_CODE(dgram_bind(c, port, test_loopback(type), NULL), DGRAM_EADDRINUSE);
        CHECK_EQ(test_sockopt_int(c, SOL_SOCKET, SO_REUSEADDR), 0);
        dgram_socket_free(a);
        dgram_socket_free(b);
        dgram_socket_free(c);
    }
    test_context_finish(ctx);
}

/* ---- ipv6_only ---------------------------------------------------------- */

/* A socket of `type` bound to the wildcard address on `port`, or, when
 * `expect` is an error code, one whose bind there fails with it (and whose
 * callback never runs). */
static dgram_socket *bind_any(dgram_context *ctx, dgram_type type, bool ipv6_only, int port,
                              int expect) {
    dgram_socket *s = make(ctx, type, false, false, ipv6_only);
    if (expect == 0) {
        test_bind_wait(ctx, s, port, NULL);
    } else {
        int before = test_load(&test_listenings);
        CHECK_CODE(dgram_bind(s, port, NULL, test_count_listening), expect);
        test_run_for(ctx, 20);
        CHECK_EQ(test_load(&test_listenings), before);
    }
    return s;
}

static void test_ipv6_only(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    /* Unbound, then bound to [::] (binding to a specific IPv6 address such
     * as ::1 makes the kernel itself set IPV6_V6ONLY, so the wildcard is the
     * bound case that shows the option as set). */
    for (int bound = 0; bound <= 1; bound++) {
        dgram_socket *on = bound ? bind_any(ctx, DGRAM_UDP6, true, 0, 0)
                                 : make(ctx, DGRAM_UDP6, false, false, true);
        dgram_socket *off = bound ? bind_any(ctx, DGRAM_UDP6, false, 0, 0)
                                  : make(ctx, DGRAM_UDP6, false, false, false);
        CHECK_EQ(test_sockopt_int(on, IPPROTO_IPV6, IPV6_V6ONLY), 1);
        CHECK_EQ(test_sockopt_int(off, IPPROTO_IPV6, IPV6_V6ONLY), 0);
        dgram_socket_free(on);
        dgram_socket_free(off);
    }
    /* ipv6_only is ignored on udp4: the socket is made and works. */
    dgram_socket *v4 = make(ctx, DGRAM_UDP4, true, false, true);
    CHECK_EQ(test_sockopt_int(v4, SOL_SOCKET, SO_REUSEADDR), 0);
    dgram_socket_free(v4);

    /* Effect (bind only, nothing sent to the wildcard): a v6-only socket on
     * [::]:P leaves 0.0.0.0:P free; a dual-stack one takes it too. */
    dgram_socket *only = bind_any(ctx, DGRAM_UDP6, true, 0, 0);
    uint16_t port = test_port(only);
    dgram_socket *four = bind_any(ctx, DGRAM_UDP4, false, port, 0);
    CHECK_EQ(test_port(four), port);
    dgram_socket_free(only);
    dgram_socket_free(four);

    dgram_socket *dual = bind_any(ctx, DGRAM_UDP6, false, 0, 0);
    port = test_port(dual);
    dgram_socket *clash = bind_any(ctx, DGRAM_UDP4, false, port, DGRAM_EADDRINUSE);
    dgram_socket_free(dual);
    dgram_socket_free(clash);
    test_context_finish(ctx);
}

/* ---- the TTL set is the one the datagrams carry (loopback only) -------- */

/* A plain kernel socket on the loopback address asking for the TTL / hop
 * limit of each datagram it receives. */
static int ttl_receiver(dgram_type type, uint16_t *port) {
    int fam = type == DGRAM_UDP4 ? AF_INET : AF_INET6;
    int fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int one = 1;
    if (type == DGRAM_UDP4)
        CHECK_EQ(setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one), 0);
    else
        CHECK_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one), 0);
    struct timeval tv = {10, 0};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (type == DGRAM_UDP4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        len = sizeof *sin6;
    }
    CHECK_EQ(bind(fd, (struct sockaddr *)&ss, len), 0);
    len = sizeof ss;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(type == DGRAM_UDP4 ? ((struct sockaddr_in *)&ss)->sin_port
                                     : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Receives one datagram and returns the TTL / hop limit it carried. */
static int recv_ttl(int fd, dgram_type type) {
    char data[16];
    union {
        char buf[CMSG_SPACE(sizeof(int)) * 4];
        struct cmsghdr align;
    } control;
    struct iovec iov = {data, sizeof data};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0)
        FAIL("recvmsg: %s", strerror(errno));
    CHECK_EQ(n, 5);
    CHECK_MEM(data, "hello", 5);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if ((type == DGRAM_UDP4 && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
            (type == DGRAM_UDP6 && c->cmsg_level == IPPROTO_IPV6 &&
             c->cmsg_type == IPV6_HOPLIMIT)) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof v);
            return v;
        }
    }
    FAIL("no TTL/hop-limit control message");
    return -1;
}

static void test_ttl_on_the_wire(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    send_rec sends;
    memset(&sends, 0, sizeof sends);
    for (int t = 0; t < 2; t++) {
        dgram_type type = TYPES[t];
        uint16_t port;
        int rfd = ttl_receiver(type, &port);
        dgram_socket *s = make(ctx, type, false, false, false);
        static const int ttls[] = {7, 1, 255};
        for (int i = 0; i < 3; i++) {
            CHECK_OK(dgram_set_ttl(s, ttls[i]));
            send_and_wait(ctx, s, "hello", 5, port, test_loopback(type), &sends);
            CHECK_EQ(sends.errors, 0);
            CHECK_EQ(recv_ttl(rfd, type), ttls[i]);
        }
        dgram_socket_free(s);
        close(rfd);
    }
    test_context_finish(ctx);
}

/* ---- closed socket and NULL handle -------------------------------------- */

static void test_options_on_closed_socket(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int t = 0; t < 2; t++) {
        for (int bound = 0; bound <= 1; bound++) {
            dgram_socket *s = make(ctx, TYPES[t], bound, false, false);
            CHECK_OK(dgram_close(s, NULL));
            /* every setter and dgram_fileno among them; closed wins over range */
            test_check_all_ebadf(s, TYPES[t]);
            dgram_socket_free(s);
        }
    }
    CHECK_CODE(dgram_fileno(NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_broadcast(NULL, true), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_ttl(NULL, 64), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_ttl(NULL, 1), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_loopback(NULL, true), DGRAM_EINVAL);
    /* Freeing without waiting for 'close' leaves nothing to dispatch. */
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_run_for(ctx, 20);
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_set_broadcast),
    TEST_ENTRY(test_set_ttl),
    TEST_ENTRY(test_set_multicast_ttl),
    TEST_ENTRY(test_set_multicast_loopback),
    TEST_ENTRY(test_options_survive_bind),
    TEST_ENTRY(test_reuse_addr),
    TEST_ENTRY(test_ipv6_only),
    TEST_ENTRY(test_ttl_on_the_wire),
    TEST_ENTRY(test_options_on_closed_socket),
)
