/*
 * Source-specific multicast (dgram_add/drop_source_specific_membership) and
 * the outgoing multicast interface (dgram_set_multicast_interface), udp4
 * and udp6, between hosts made of network namespaces: the two of
 * test_two_hosts_or_skip, with a second address on host A, and a third host
 * C on a second link of A's, for the interface tests:
 *
 *   host B (hosts.peer_ns)   host A (the case's thread)     host C (host_c_ns)
 *   dgv1 198.51.100.2 ------ dgv0 198.51.100.1, .3
 *        2001:db8::2              2001:db8::1, 2001:db8::3
 *                            dgx0 203.0.113.1 ------------- dgx1 203.0.113.2
 *                                 2001:db8:1::1                  2001:db8:1::2
 *
 * A socket belongs to the namespace of the thread that creates it, so a
 * socket "on host B" is created after test_netns_enter(hosts.peer_ns).
 * Datagrams sent one after another by host A over one link arrive in that
 * order, so a datagram that arrives proves that one sent before it over the
 * same link and not received was filtered, not late.
 *
 * qemu-user (the cross builds' test bed) passes neither IP_MULTICAST_IF,
 * IPV6_MULTICAST_IF nor MCAST_JOIN_SOURCE_GROUP through: where the system
 * refuses an option with ENOPROTOOPT (checked on a socket of our own), the
 * test checks that the library reports exactly that, and says so.
 *
 * Every case makes these namespaces afresh (hosts_setup); nothing is sent
 * outside them, and a case exits 77 (skip) when it cannot make them.
 */
#include "recorder.h"
#include "test_runner.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

static test_two_hosts hosts;
static int host_c_ns;

#define HOST_A 0
#define HOST_B 1
#define HOST_C 2

#define SSM4_GROUP "232.1.2.3"
#define SSM6_GROUP "ff3e::8000:1"

/* Leaving a (source, group) whose group the socket has not joined is the
 * kernel's EINVAL (unlike dgram_drop_membership's EADDRNOTAVAIL, which
 * here is the answer for a source not joined in a group that is). */
#define SSM_NOT_JOINED DGRAM_EINVAL

/* Whether the system takes these options (see the top). */
static int has_ip_multicast_if, has_ipv6_multicast_if, has_ipv6_ssm;

/* Send completions (send_and_wait). */
static send_rec sends;

static void enter_host(int host) {
    test_netns_enter(host == HOST_B ? hosts.peer_ns : host == HOST_C ? host_c_ns : hosts.self_ns);
}

static char host_name(int host) { return host == HOST_B ? 'B' : host == HOST_C ? 'C' : 'A'; }

/* ---- the hosts and links ------------------------------------------------- */

/* Whether `ifname` in the calling thread's namespace is operationally up
 * (IFF_RUNNING: carrier on both ends of the veth pair). */
static int link_running(const char *ifname) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    CHECK(ioctl(fd, SIOCGIFFLAGS, &ifr) == 0);
    close(fd);
    return (ifr.ifr_flags & IFF_RUNNING) != 0;
}

/* Waits until `ifname` on `host` is up: a datagram sent before the veth
 * carrier is up may be dropped, which would make a "received" check flaky. */
static void wait_link(int host, const char *ifname) {
    enter_host(host);
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (!link_running(ifname)) {
        if (test_now_ms() > deadline)
            FAIL("%s on host %c never came up", ifname, host_name(host));
        test_sleep_ms(5);
    }
    enter_host(HOST_A);
}

/* The index of interface `ifname` on `host`. */
static unsigned ifindex_on(int host, const char *ifname) {
    enter_host(host);
    unsigned index = if_nametoindex(ifname);
    enter_host(HOST_A);
    if (index == 0)
        FAIL("no interface %s on host %c", ifname, host_name(host));
    return index;
}

/* Host C: a namespace of its own with lo up, joined to host A by dgx1 --
 * dgx0. Called with the calling thread in host A. */
static void make_host_c(void) {
    int a = test_netns_push();
    CHECK(a >= 0); /* test_two_hosts_or_skip made namespaces already */
    host_c_ns = test_netns_current();
    test_netns_enter(a);
    close(a);
    char c[64];
    snprintf(c, sizeof c, "/proc/%d/fd/%d", (int)getpid(), host_c_ns);
    test_sh("ip link add dgx0 type veth peer name dgx1 netns %s", c);
    test_sh("ip addr add 203.0.113.1/24 dev dgx0 && ip -6 addr add 2001:db8:1::1/64 dev dgx0 nodad"
            " && ip link set dgx0 up");
    test_sh("nsenter --net=%s sh -c 'ip addr add 203.0.113.2/24 dev dgx1 && "
            "ip -6 addr add 2001:db8:1::2/64 dev dgx1 nodad && ip link set dgx1 up'",
            c);
}

/* Whether the system knows socket option level/name: a socket of our own
 * gets `value`; only ENOPROTOOPT means no (a bad value is still an answer). */
static int system_has_option(int family, int level, int name, const void *value, socklen_t len) {
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int rc = setsockopt(fd, level, name, value, len);
    int err = errno;
    close(fd);
    return rc == 0 || err != ENOPROTOOPT;
}

static void probe_system(void) {
    struct in_addr any = {htonl(INADDR_ANY)};
    int index = 0;
    struct group_source_req req;
    memset(&req, 0, sizeof req); /* family 0: EINVAL where the option is known */
    has_ip_multicast_if = system_has_option(AF_INET, IPPROTO_IP, IP_MULTICAST_IF, &any, sizeof any);
    has_ipv6_multicast_if =
        system_has_option(AF_INET6, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index);
    has_ipv6_ssm = system_has_option(AF_INET6, IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, &req, sizeof req);
    if (!has_ip_multicast_if || !has_ipv6_multicast_if || !has_ipv6_ssm)
        printf("  (this system refuses with ENOPROTOOPT:%s%s%s; checked as that)\n",
               has_ip_multicast_if ? "" : " IP_MULTICAST_IF",
               has_ipv6_multicast_if ? "" : " IPV6_MULTICAST_IF",
               has_ipv6_ssm ? "" : " MCAST_JOIN_SOURCE_GROUP (IPv6)");
}

/* The hosts and links of the top, made first thing in a case (before any
 * thread or context exists), and the case's context, with the calling
 * thread left in host A. */
static dgram_context *hosts_setup(void) {
    hosts = test_two_hosts_or_skip();
    /* A second address on A's end of the link, for a second source. */
    test_sh("ip addr add 198.51.100.3/24 dev dgv0 && ip -6 addr add 2001:db8::3/64 dev dgv0 nodad");
    make_host_c(); /* test_two_hosts_or_skip waited for dgv0 and dgv1 already */
    wait_link(HOST_A, "dgx0");
    wait_link(HOST_C, "dgx1");
    probe_system();
    return test_context(DGRAM_DISPATCH_HOST, 0);
}

/* Ends a case: its context, once the case freed its sockets, and the
 * namespaces. */
static void hosts_finish(dgram_context *ctx) {
    test_context_finish(ctx);
    close(hosts.self_ns);
    close(hosts.peer_ns);
    close(host_c_ns);
}

/* ---- sockets and datagrams ----------------------------------------------- */

/* A receiver on `host`, bound to the any address on `port` (0: one the OS
 * picks), recording into `in`. Returns its port. */
static dgram_socket *receiver_on(dgram_context *ctx, int host, dgram_type type, inbox *in,
                                 uint16_t *port) {
    dgram_socket_options opts = test_opts(type);
    opts.reuse_addr = true;
    enter_host(host);
    dgram_socket *s = inbox_socket(ctx, &opts, in);
    enter_host(HOST_A);
    *port = test_bind_wait(ctx, s, *port, type == DGRAM_UDP4 ? "0.0.0.0" : "::");
    return s;
}

/* A socket on host A bound to `address` (NULL: any) on an OS-chosen port,
 * with no message callback. */
static dgram_socket *sender_on_a(dgram_context *ctx, dgram_type type, const char *address) {
    enter_host(HOST_A);
    dgram_socket *s = test_socket(ctx, type, NULL, NULL);
    test_bind_wait(ctx, s, 0, address);
    return s;
}

/* A socket on `host`, never bound. */
static dgram_socket *unbound_on(dgram_context *ctx, int host, dgram_type type) {
    enter_host(host);
    dgram_socket *s = test_socket(ctx, type, NULL, NULL);
    enter_host(HOST_A);
    return s;
}

static void send_text(dgram_context *ctx, dgram_socket *s, const char *text, const char *address,
                      uint16_t port) {
    send_and_wait(ctx, s, text, strlen(text), port, address, &sends);
}

/* Sends `text` from `s` and waits until `in` holds `count` datagrams, the
 * last being `text` from `from` (or, when not NULL, `alt_from`: IPv6
 * source selection may take either global address of host A's dgv0) and
 * the port of `s`. */
static void send_expect_alt(dgram_context *ctx, dgram_socket *s, const char *text,
                            const char *address, uint16_t port, inbox *in, int count,
                            const char *from, const char *alt_from, dgram_family family) {
    send_text(ctx, s, text, address, port);
    RUN_UNTIL(ctx, in->count, count);
    if (alt_from && strcmp(in->rinfo.address, alt_from) == 0)
        from = alt_from;
    check_inbox_text(in, count, text, from, test_port(s), family);
}

static void send_expect(dgram_context *ctx, dgram_socket *s, const char *text, const char *address,
                        uint16_t port, inbox *in, int count, const char *from,
                        dgram_family family) {
    send_expect_alt(ctx, s, text, address, port, in, count, from, NULL, family);
}

/* Proves that `in` got nothing after its `count` datagrams from what `s`
 * sent before: a unicast marker from `s` follows the same path, so once it
 * is in, anything sent before it would be too. */
static void expect_nothing_before_marker(dgram_context *ctx, dgram_socket *s,
                                         const char *b_address, uint16_t port, inbox *in,
                                         int count, const char *from, dgram_family family) {
    send_expect(ctx, s, "marker", b_address, port, in, count + 1, from, family);
    test_run_for(ctx, 20);
    CHECK_EQ(test_load(&in->count), count + 1);
}

/* ---- udp4 SSM -------------------------------------------------------------- */

/* Joined to (198.51.100.1, G), host B receives what .1 sends to G and not
 * what .3 (another address of the same host A, on the same link) sends. */
static void test_udp4_ssm_filters_by_source(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    uint16_t port = 0;
    dgram_socket *rx = receiver_on(ctx, HOST_B, DGRAM_UDP4, &in, &port);
    CHECK_OK(dgram_add_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));

    dgram_socket *tx1 = sender_on_a(ctx, DGRAM_UDP4, "198.51.100.1");
    dgram_socket *tx3 = sender_on_a(ctx, DGRAM_UDP4, "198.51.100.3");

    /* .3 first: had it passed, it would be in before .1's and the count 2. */
    send_text(ctx, tx3, "from .3", SSM4_GROUP, port);
    send_expect(ctx, tx1, "from .1", SSM4_GROUP, port, &in, 1, "198.51.100.1", DGRAM_IPV4);
    send_text(ctx, tx3, "from .3 again", SSM4_GROUP, port);
    send_expect(ctx, tx1, "from .1 again", SSM4_GROUP, port, &in, 2, "198.51.100.1", DGRAM_IPV4);
    /* .3 itself is not refused: its unicast gets through. */
    send_text(ctx, tx3, "from .3 last", SSM4_GROUP, port);
    expect_nothing_before_marker(ctx, tx3, "198.51.100.2", port, &in, 2, "198.51.100.3", DGRAM_IPV4);

    dgram_socket_free(tx1);
    dgram_socket_free(tx3);
    dgram_socket_free(rx);
    hosts_finish(ctx);
}

/* After the drop, what .1 sends to G no longer arrives; dropping again is
 * refused. */
static void test_udp4_ssm_drop(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    uint16_t port = 0;
    dgram_socket *rx = receiver_on(ctx, HOST_B, DGRAM_UDP4, &in, &port);
    dgram_socket *tx1 = sender_on_a(ctx, DGRAM_UDP4, "198.51.100.1");

    CHECK_OK(dgram_add_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));
    send_expect(ctx, tx1, "joined", SSM4_GROUP, port, &in, 1, "198.51.100.1", DGRAM_IPV4);

    CHECK_OK(dgram_drop_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));
    send_text(ctx, tx1, "after drop", SSM4_GROUP, port);
    expect_nothing_before_marker(ctx, tx1, "198.51.100.2", port, &in, 1, "198.51.100.1", DGRAM_IPV4);

    /* Leaving what is no longer joined, or never was. */
    CHECK_CODE(dgram_drop_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"),
               SSM_NOT_JOINED);
    CHECK_CODE(dgram_drop_source_specific_membership(rx, "198.51.100.1", "232.1.2.99", "198.51.100.2"),
               SSM_NOT_JOINED);
    dgram_socket *fresh = unbound_on(ctx, HOST_B, DGRAM_UDP4);
    CHECK_CODE(dgram_drop_source_specific_membership(fresh, "198.51.100.1", SSM4_GROUP, "198.51.100.2"),
               SSM_NOT_JOINED);
    dgram_socket_free(fresh);

    /* Control: joined again, the same datagram arrives. */
    CHECK_OK(dgram_add_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));
    send_expect(ctx, tx1, "joined again", SSM4_GROUP, port, &in, 3, "198.51.100.1", DGRAM_IPV4);

    dgram_socket_free(tx1);
    dgram_socket_free(rx);
    hosts_finish(ctx);
}

/* Two sources of one group: both arrive; dropping one leaves the other;
 * leaving a source not joined, in a group that is, is the kernel's
 * EADDRNOTAVAIL. */
static void test_udp4_ssm_two_sources(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    uint16_t port = 0;
    dgram_socket *rx = receiver_on(ctx, HOST_B, DGRAM_UDP4, &in, &port);
    dgram_socket *tx1 = sender_on_a(ctx, DGRAM_UDP4, "198.51.100.1");
    dgram_socket *tx3 = sender_on_a(ctx, DGRAM_UDP4, "198.51.100.3");

    CHECK_OK(dgram_add_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));
    CHECK_OK(dgram_add_source_specific_membership(rx, "198.51.100.3", SSM4_GROUP, "198.51.100.2"));
    send_expect(ctx, tx1, "one", SSM4_GROUP, port, &in, 1, "198.51.100.1", DGRAM_IPV4);
    send_expect(ctx, tx3, "three", SSM4_GROUP, port, &in, 2, "198.51.100.3", DGRAM_IPV4);

    CHECK_OK(dgram_drop_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));
    CHECK_CODE(dgram_drop_source_specific_membership(rx, "198.51.100.1", SSM4_GROUP, "198.51.100.2"),
               DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(dgram_drop_source_specific_membership(rx, "198.51.100.9", SSM4_GROUP, "198.51.100.2"),
               DGRAM_EADDRNOTAVAIL);
    send_text(ctx, tx1, "one dropped", SSM4_GROUP, port);
    send_expect(ctx, tx3, "three kept", SSM4_GROUP, port, &in, 3, "198.51.100.3", DGRAM_IPV4);

    CHECK_OK(dgram_drop_source_specific_membership(rx, "198.51.100.3", SSM4_GROUP, "198.51.100.2"));
    send_text(ctx, tx3, "three dropped", SSM4_GROUP, port);
    expect_nothing_before_marker(ctx, tx3, "198.51.100.2", port, &in, 3, "198.51.100.3", DGRAM_IPV4);

    dgram_socket_free(tx1);
    dgram_socket_free(tx3);
    dgram_socket_free(rx);
    hosts_finish(ctx);
}

/* ---- udp6 SSM -------------------------------------------------------------- */

/* Where the system has no IPv6 SSM: the library reports the system's
 * ENOPROTOOPT for a join, and joins nothing. Returns 1 when so. */
static int udp6_ssm_unavailable(dgram_socket *rx) {
    if (has_ipv6_ssm)
        return 0;
    printf("  (no IPv6 SSM on this system: checking ENOPROTOOPT only)\n");
    CHECK_CODE(dgram_add_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, "dgv1"),
               DGRAM_ENOPROTOOPT);
    return 1;
}

/* As for udp4, over MLDv2 source filters, with the interface by name
 * ("dgv1": B's socket looks it up in its own namespace). */
static void test_udp6_ssm_filters_by_source(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    uint16_t port = 0;
    dgram_socket *rx = receiver_on(ctx, HOST_B, DGRAM_UDP6, &in, &port);
    if (udp6_ssm_unavailable(rx)) {
        dgram_socket_free(rx);
        hosts_finish(ctx);
        return;
    }
    CHECK_OK(dgram_add_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, "dgv1"));

    dgram_socket *tx1 = sender_on_a(ctx, DGRAM_UDP6, "2001:db8::1");
    dgram_socket *tx3 = sender_on_a(ctx, DGRAM_UDP6, "2001:db8::3");

    send_text(ctx, tx3, "from ::3", SSM6_GROUP, port);
    send_expect(ctx, tx1, "from ::1", SSM6_GROUP, port, &in, 1, "2001:db8::1", DGRAM_IPV6);
    send_text(ctx, tx3, "from ::3 again", SSM6_GROUP, port);
    send_expect(ctx, tx1, "from ::1 again", SSM6_GROUP, port, &in, 2, "2001:db8::1", DGRAM_IPV6);
    send_text(ctx, tx3, "from ::3 last", SSM6_GROUP, port);
    expect_nothing_before_marker(ctx, tx3, "2001:db8::2", port, &in, 2, "2001:db8::3", DGRAM_IPV6);

    dgram_socket_free(tx1);
    dgram_socket_free(tx3);
    dgram_socket_free(rx);
    hosts_finish(ctx);
}

static void test_udp6_ssm_drop(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    uint16_t port = 0;
    dgram_socket *rx = receiver_on(ctx, HOST_B, DGRAM_UDP6, &in, &port);
    if (udp6_ssm_unavailable(rx)) {
        dgram_socket_free(rx);
        hosts_finish(ctx);
        return;
    }
    dgram_socket *tx1 = sender_on_a(ctx, DGRAM_UDP6, "2001:db8::1");

    CHECK_OK(dgram_add_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, "dgv1"));
    send_expect(ctx, tx1, "joined", SSM6_GROUP, port, &in, 1, "2001:db8::1", DGRAM_IPV6);

    /* Left with the interface in another of its forms ("::%name"). */
    CHECK_OK(dgram_drop_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, "::%dgv1"));
    send_text(ctx, tx1, "after drop", SSM6_GROUP, port);
    expect_nothing_before_marker(ctx, tx1, "2001:db8::2", port, &in, 1, "2001:db8::1", DGRAM_IPV6);

    CHECK_CODE(dgram_drop_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, "dgv1"),
               SSM_NOT_JOINED);
    CHECK_CODE(dgram_drop_source_specific_membership(rx, "2001:db8::1", "ff3e::8000:99", "dgv1"),
               SSM_NOT_JOINED);
    dgram_socket *fresh = unbound_on(ctx, HOST_B, DGRAM_UDP6);
    CHECK_CODE(dgram_drop_source_specific_membership(fresh, "2001:db8::1", SSM6_GROUP, "dgv1"),
               SSM_NOT_JOINED);
    dgram_socket_free(fresh);

    /* Control: joined again (interface by index), it arrives; a second
     * source of the joined group that is not joined is EADDRNOTAVAIL. */
    char index[16];
    snprintf(index, sizeof index, "%u", ifindex_on(HOST_B, "dgv1"));
    CHECK_OK(dgram_add_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, index));
    send_expect(ctx, tx1, "joined again", SSM6_GROUP, port, &in, 3, "2001:db8::1", DGRAM_IPV6);
    CHECK_CODE(dgram_drop_source_specific_membership(rx, "2001:db8::9", SSM6_GROUP, index),
               DGRAM_EADDRNOTAVAIL);
    CHECK_OK(dgram_drop_source_specific_membership(rx, "2001:db8::1", SSM6_GROUP, index));

    dgram_socket_free(tx1);
    dgram_socket_free(rx);
    hosts_finish(ctx);
}

/* ---- SSM bad input ------------------------------------------------------- */

static void test_ssm_bad_input(void) {
    dgram_context *ctx = hosts_setup();
    dgram_socket *v4 = unbound_on(ctx, HOST_B, DGRAM_UDP4);
    dgram_socket *v6 = unbound_on(ctx, HOST_B, DGRAM_UDP6);
    int (*ops[2])(dgram_socket *, const char *, const char *, const char *) = {
        dgram_add_source_specific_membership, dgram_drop_source_specific_membership};

    for (int i = 0; i < 2; i++) {
        /* The source must be unicast, the group multicast, both of the
         * socket's family; neither may be NULL or malformed. */
        CHECK_CODE(ops[i](v4, "239.1.1.1", SSM4_GROUP, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "232.1.1.1", SSM4_GROUP, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "0.0.0.0", SSM4_GROUP, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "198.51.100.1", "198.51.100.9", "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, NULL, SSM4_GROUP, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "198.51.100.1", NULL, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, NULL, NULL, NULL), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "2001:db8::1", SSM4_GROUP, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "198.51.100.1", SSM6_GROUP, "198.51.100.2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "2001:db8::1", SSM6_GROUP, NULL), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "not an address", SSM4_GROUP, NULL), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "198.51.100.1", "232.1.2", NULL), DGRAM_EINVAL);
        /* A malformed udp4 interface (a name, an IPv6 address). */
        CHECK_CODE(ops[i](v4, "198.51.100.1", SSM4_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "198.51.100.1", SSM4_GROUP, "2001:db8::2"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v4, "198.51.100.1", SSM4_GROUP, ""), DGRAM_EINVAL);

        CHECK_CODE(ops[i](v6, "ff02::1", SSM6_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "ff3e::8000:2", SSM6_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "::", SSM6_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "2001:db8::1", "2001:db8::9", "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, NULL, SSM6_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "2001:db8::1", NULL, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "198.51.100.1", SSM6_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "2001:db8::1", SSM4_GROUP, "dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "198.51.100.1", SSM4_GROUP, NULL), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "2001:db8::1", SSM6_GROUP, "zz%dgv1"), DGRAM_EINVAL);
        CHECK_CODE(ops[i](v6, "2001:db8::1", SSM6_GROUP, ""), DGRAM_EINVAL);
        /* A well-formed interface name that does not exist. */
        CHECK_CODE(ops[i](v6, "2001:db8::1", SSM6_GROUP, "nosuchif0"), DGRAM_ENODEV);
        CHECK_CODE(ops[i](v6, "2001:db8::1", SSM6_GROUP, "::%nosuchif0"), DGRAM_ENODEV);
        /* NULL handle. */
        CHECK_CODE(ops[i](NULL, "198.51.100.1", SSM4_GROUP, NULL), DGRAM_EINVAL);
    }
    /* A well-formed udp4 interface address that is not local: the kernel's
     * answer, ENODEV, as for dgram_add_membership. */
    CHECK_CODE(dgram_add_source_specific_membership(v4, "198.51.100.1", SSM4_GROUP, "203.0.113.9"),
               DGRAM_ENODEV);
    CHECK_CODE(dgram_add_source_specific_membership(v4, "198.51.100.1", SSM4_GROUP, "198.51.100.1"),
               DGRAM_ENODEV);

    /* None of the failures left a membership behind. */
    CHECK_CODE(dgram_drop_source_specific_membership(v4, "198.51.100.1", SSM4_GROUP, "198.51.100.2"),
               SSM_NOT_JOINED);
    if (has_ipv6_ssm)
        CHECK_CODE(dgram_drop_source_specific_membership(v6, "2001:db8::1", SSM6_GROUP, "dgv1"),
                   SSM_NOT_JOINED);

    /* A closed socket answers EBADF whatever the arguments; the join it had
     * does not matter. */
    CHECK_OK(dgram_add_source_specific_membership(v4, "198.51.100.1", SSM4_GROUP, "198.51.100.2"));
    CHECK_OK(dgram_close(v4, NULL));
    CHECK_OK(dgram_close(v6, NULL));
    for (int i = 0; i < 2; i++) {
        CHECK_CODE(ops[i](v4, "198.51.100.1", SSM4_GROUP, "198.51.100.2"), DGRAM_EBADF);
        CHECK_CODE(ops[i](v4, "239.1.1.1", "198.51.100.9", "bad"), DGRAM_EBADF);
        CHECK_CODE(ops[i](v4, NULL, NULL, NULL), DGRAM_EBADF);
        CHECK_CODE(ops[i](v6, "2001:db8::1", SSM6_GROUP, "dgv1"), DGRAM_EBADF);
        CHECK_CODE(ops[i](v6, "ff02::1", "2001:db8::9", "nosuchif0"), DGRAM_EBADF);
        CHECK_CODE(ops[i](v6, NULL, NULL, NULL), DGRAM_EBADF);
    }
    dgram_socket_free(v4);
    dgram_socket_free(v6);
    hosts_finish(ctx);
}

/* ---- dgram_set_multicast_interface ------------------------------------------ */

/* IP_MULTICAST_IF as the kernel has it (the address given, or 0.0.0.0). */
static void check_mcast_if_v4(dgram_socket *s, const char *want) {
    struct in_addr got;
    socklen_t len = sizeof got;
    memset(&got, 0x5a, sizeof got);
    CHECK(getsockopt(dgram_fileno(s), IPPROTO_IP, IP_MULTICAST_IF, &got, &len) == 0);
    CHECK_EQ(len, sizeof got);
    char text[INET_ADDRSTRLEN];
    CHECK(inet_ntop(AF_INET, &got, text, sizeof text) != NULL);
    CHECK_STR(text, want);
}

/* IPV6_MULTICAST_IF as the kernel has it (an interface index, 0: none). */
static int mcast_if_v6(dgram_socket *s) { return test_sockopt_int(s, IPPROTO_IPV6, IPV6_MULTICAST_IF); }

/* B (on dgv0's link) and C (on dgx0's) both joined to the group: each
 * datagram from A reaches exactly the host on the link it left by. Since
 * sends alternate between the links and each arrival is checked to be the
 * next one on its host, a datagram that took the wrong link would show up
 * as one too many on the other host. */
static void test_udp4_multicast_interface(void) {
    dgram_context *ctx = hosts_setup();
    const char *group = "239.255.1.1";
    inbox b, c;
    uint16_t port = 0;
    dgram_socket *rb = receiver_on(ctx, HOST_B, DGRAM_UDP4, &b, &port);
    dgram_socket *rc = receiver_on(ctx, HOST_C, DGRAM_UDP4, &c, &port);
    CHECK_OK(dgram_add_membership(rb, group, "198.51.100.2"));
    CHECK_OK(dgram_add_membership(rc, group, "203.0.113.2"));
    /* Bound to the any address, so the source is the chosen link's. */
    dgram_socket *tx = sender_on_a(ctx, DGRAM_UDP4, "0.0.0.0");
    if (!has_ip_multicast_if) {
        printf("  (no IP_MULTICAST_IF on this system: checking ENOPROTOOPT only)\n");
        CHECK_CODE(dgram_set_multicast_interface(tx, "203.0.113.1"), DGRAM_ENOPROTOOPT);
        CHECK_CODE(dgram_set_multicast_interface(tx, "0.0.0.0"), DGRAM_ENOPROTOOPT);
    } else {
        check_mcast_if_v4(tx, "0.0.0.0");
        /* Against the route (224.0.0.0/4 by dgv0 on host A). */
        CHECK_OK(dgram_set_multicast_interface(tx, "203.0.113.1"));
        check_mcast_if_v4(tx, "203.0.113.1");
        send_expect(ctx, tx, "by dgx", group, port, &c, 1, "203.0.113.1", DGRAM_IPV4);

        CHECK_OK(dgram_set_multicast_interface(tx, "198.51.100.1"));
        check_mcast_if_v4(tx, "198.51.100.1");
        send_expect(ctx, tx, "by dgv", group, port, &b, 1, "198.51.100.1", DGRAM_IPV4);

        CHECK_OK(dgram_set_multicast_interface(tx, "203.0.113.1"));
        send_expect(ctx, tx, "by dgx again", group, port, &c, 2, "203.0.113.1", DGRAM_IPV4);

        /* The system's choice again: the route, by dgv0. */
        CHECK_OK(dgram_set_multicast_interface(tx, "0.0.0.0"));
        check_mcast_if_v4(tx, "0.0.0.0");
        send_expect(ctx, tx, "by route", group, port, &b, 2, "198.51.100.1", DGRAM_IPV4);

        CHECK_OK(dgram_set_multicast_interface(tx, "203.0.113.1"));
        send_expect(ctx, tx, "by dgx last", group, port, &c, 3, "203.0.113.1", DGRAM_IPV4);
        test_run_for(ctx, 20);
        CHECK_EQ(test_load(&b.count), 2);
        CHECK_EQ(test_load(&c.count), 3);

        /* Before bind too: the OS socket exists from creation. */
        dgram_socket *early = unbound_on(ctx, HOST_A, DGRAM_UDP4);
        CHECK_OK(dgram_set_multicast_interface(early, "203.0.113.1"));
        check_mcast_if_v4(early, "203.0.113.1");
        dgram_socket_free(early);
    }
    dgram_socket_free(tx);
    dgram_socket_free(rb);
    dgram_socket_free(rc);
    hosts_finish(ctx);
}

static void test_udp6_multicast_interface(void) {
    dgram_context *ctx = hosts_setup();
    const char *group = "ff0e::1:9";
    int dgv0 = (int)ifindex_on(HOST_A, "dgv0"), dgx0 = (int)ifindex_on(HOST_A, "dgx0");
    inbox b, c;
    uint16_t port = 0;
    dgram_socket *rb = receiver_on(ctx, HOST_B, DGRAM_UDP6, &b, &port);
    dgram_socket *rc = receiver_on(ctx, HOST_C, DGRAM_UDP6, &c, &port);
    CHECK_OK(dgram_add_membership(rb, group, "dgv1"));
    CHECK_OK(dgram_add_membership(rc, group, "dgx1"));
    dgram_socket *tx = sender_on_a(ctx, DGRAM_UDP6, "::");
    if (!has_ipv6_multicast_if) {
        printf("  (no IPV6_MULTICAST_IF on this system: checking ENOPROTOOPT only)\n");
        CHECK_CODE(dgram_set_multicast_interface(tx, "::%dgv0"), DGRAM_ENOPROTOOPT);
        CHECK_CODE(dgram_set_multicast_interface(tx, "::"), DGRAM_ENOPROTOOPT);
    } else {
        CHECK_EQ(mcast_if_v6(tx), 0);
        /* Node's form. The source is a global address of the link chosen. */
        CHECK_OK(dgram_set_multicast_interface(tx, "::%dgx0"));
        CHECK_EQ(mcast_if_v6(tx), dgx0);
        send_expect(ctx, tx, "by dgx", group, port, &c, 1, "2001:db8:1::1", DGRAM_IPV6);

        CHECK_OK(dgram_set_multicast_interface(tx, "::%dgv0"));
        CHECK_EQ(mcast_if_v6(tx), dgv0);
        send_expect_alt(ctx, tx, "by dgv", group, port, &b, 1, "2001:db8::1", "2001:db8::3", DGRAM_IPV6);

        /* An index, and a name. */
        char index[16];
        snprintf(index, sizeof index, "%d", dgx0);
        CHECK_OK(dgram_set_multicast_interface(tx, index));
        CHECK_EQ(mcast_if_v6(tx), dgx0);
        send_expect(ctx, tx, "by dgx index", group, port, &c, 2, "2001:db8:1::1", DGRAM_IPV6);

        CHECK_OK(dgram_set_multicast_interface(tx, "dgv0"));
        CHECK_EQ(mcast_if_v6(tx), dgv0);
        send_expect_alt(ctx, tx, "by dgv name", group, port, &b, 2, "2001:db8::1", "2001:db8::3",
                        DGRAM_IPV6);

        CHECK_OK(dgram_set_multicast_interface(tx, "dgx0"));
        send_expect(ctx, tx, "by dgx name", group, port, &c, 3, "2001:db8:1::1", DGRAM_IPV6);
        test_run_for(ctx, 20);
        CHECK_EQ(test_load(&b.count), 2);
        CHECK_EQ(test_load(&c.count), 3);

        /* "::": the system's choice. */
        CHECK_OK(dgram_set_multicast_interface(tx, "::"));
        CHECK_EQ(mcast_if_v6(tx), 0);
    }
    dgram_socket_free(tx);
    dgram_socket_free(rb);
    dgram_socket_free(rc);
    hosts_finish(ctx);
}

/* Malformed text is refused before the system is asked; refused settings
 * leave the one in effect. */
static void test_multicast_interface_bad_input(void) {
    dgram_context *ctx = hosts_setup();
    dgram_socket *v4 = unbound_on(ctx, HOST_A, DGRAM_UDP4);
    dgram_socket *v6 = unbound_on(ctx, HOST_A, DGRAM_UDP6);
    int dgv0 = (int)ifindex_on(HOST_A, "dgv0");

    CHECK_CODE(dgram_set_multicast_interface(v4, "198.51.100.1"), has_ip_multicast_if ? 0 : DGRAM_ENOPROTOOPT);
    CHECK_CODE(dgram_set_multicast_interface(v4, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v4, "not-an-ip"), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v4, ""), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v4, "dgv0"), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v4, "198.51.100"), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v4, "2001:db8::1"), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v4, "::%dgv0"), DGRAM_EINVAL);
    /* Well-formed but not local here (the second is host B's): the
     * kernel's answer. */
    int not_local = has_ip_multicast_if ? DGRAM_EADDRNOTAVAIL : DGRAM_ENOPROTOOPT;
    CHECK_CODE(dgram_set_multicast_interface(v4, "203.0.113.99"), not_local);
    CHECK_CODE(dgram_set_multicast_interface(v4, "198.51.100.2"), not_local);
    if (has_ip_multicast_if)
        check_mcast_if_v4(v4, "198.51.100.1");

    CHECK_CODE(dgram_set_multicast_interface(v6, "::%dgv0"), has_ipv6_multicast_if ? 0 : DGRAM_ENOPROTOOPT);
    CHECK_CODE(dgram_set_multicast_interface(v6, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v6, ""), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v6, "zz%dgv0"), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v6, "::%"), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_multicast_interface(v6, "::%nosuchif"), DGRAM_ENODEV);
    CHECK_CODE(dgram_set_multicast_interface(v6, "nosuchif"), DGRAM_ENODEV);
    /* For udp6 these are well-formed interface names (Linux allows dots
     * and dashes), of interfaces that do not exist. */
    CHECK_CODE(dgram_set_multicast_interface(v6, "not-an-ip"), DGRAM_ENODEV);
    CHECK_CODE(dgram_set_multicast_interface(v6, "198.51.100.1"), DGRAM_ENODEV);
    /* B's interface does not exist for a socket of host A. */
    CHECK_CODE(dgram_set_multicast_interface(v6, "::%dgv1"), DGRAM_ENODEV);
    if (has_ipv6_multicast_if)
        CHECK_EQ(mcast_if_v6(v6), dgv0);

    CHECK_CODE(dgram_set_multicast_interface(NULL, "0.0.0.0"), DGRAM_EINVAL);
    CHECK_OK(dgram_close(v4, NULL));
    CHECK_OK(dgram_close(v6, NULL));
    CHECK_CODE(dgram_set_multicast_interface(v4, "198.51.100.1"), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_interface(v4, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_interface(v4, "not-an-ip"), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_interface(v6, "::%dgv0"), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_interface(v6, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_interface(v6, "::%nosuchif"), DGRAM_EBADF);
    dgram_socket_free(v4);
    dgram_socket_free(v6);
    hosts_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_udp4_ssm_filters_by_source),
    TEST_ENTRY(test_udp4_ssm_drop),
    TEST_ENTRY(test_udp4_ssm_two_sources),
    TEST_ENTRY(test_udp6_ssm_filters_by_source),
    TEST_ENTRY(test_udp6_ssm_drop),
    TEST_ENTRY(test_ssm_bad_input),
    TEST_ENTRY(test_udp4_multicast_interface),
    TEST_ENTRY(test_udp6_multicast_interface),
    TEST_ENTRY(test_multicast_interface_bad_input),
)
