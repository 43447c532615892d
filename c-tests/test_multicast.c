/*
 * Multicast: addMembership / dropMembership, multicast TTL and loopback,
 * udp4 and udp6, between two hosts made of network namespaces joined by a
 * veth pair (test_two_hosts_or_skip):
 *   host A = the case thread's namespace: dgv0, 198.51.100.1, 2001:db8::1
 *   host B = hosts.peer_ns:               dgv1, 198.51.100.2, 2001:db8::2
 * A socket belongs to the namespace of the thread that creates it, so a
 * socket "on host B" is created after test_netns_enter(hosts.peer_ns); one
 * context holds sockets of both hosts.
 *
 * Every case makes these namespaces afresh (hosts_setup); nothing is sent
 * outside them, and a case exits 77 (skip) when it cannot make them.
 */
#include "recorder.h"
#include "test_runner.h"

#include <net/if.h>

static test_two_hosts hosts;

#define HOST_A 0
#define HOST_B 1

/* Send completions (send_and_wait). */
static send_rec sends;

static void enter_host(int host) { test_netns_enter(host == HOST_B ? hosts.peer_ns : hosts.self_ns); }

/* A socket on `host` (made in that host's namespace), recording into `in`
 * (NULL: no message callback). */
static dgram_socket *make(dgram_context *ctx, int host, dgram_type type, bool reuse_addr,
                          inbox *in) {
    return inbox_socket_on_host(ctx, &hosts, host == HOST_B, type, reuse_addr, in);
}

/* Sends `text` to address:port and waits for the send callback. */
static void send_wait(dgram_context *ctx, dgram_socket *s, const char *text, const char *address,
                      uint16_t port) {
    send_and_wait(ctx, s, text, strlen(text), port, address, &sends);
}

/* Calls add/drop membership with the calling thread in `host`'s namespace
 * (an interface *name* is looked up in the calling thread's namespace, as
 * with libuv and Node). */
static int membership(int host, dgram_socket *s, bool join, const char *group, const char *iface) {
    enter_host(host);
    int rc = join ? dgram_add_membership(s, group, iface) : dgram_drop_membership(s, group, iface);
    enter_host(HOST_A);
    return rc;
}

/* The two hosts, made first thing in a case (before any thread or context
 * exists), and the case's context, with the calling thread in host A. */
static dgram_context *hosts_setup(void) {
    hosts = test_two_hosts_or_skip();
    return test_context(DGRAM_DISPATCH_HOST, 0);
}

/* Ends a case: its context, once the case freed its sockets, and the
 * namespaces. */
static void hosts_finish(dgram_context *ctx) {
    test_context_finish(ctx);
    close(hosts.self_ns);
    close(hosts.peer_ns);
}

/* ---- the namespaces themselves ------------------------------------------ */

static void test_sockets_belong_to_their_host(void) {
    dgram_context *ctx = hosts_setup();
    /* 198.51.100.2 is local only on host B, 198.51.100.1 only on host A. */
    dgram_socket *b = make(ctx, HOST_B, DGRAM_UDP4, false, NULL);
    dgram_socket *a = make(ctx, HOST_A, DGRAM_UDP4, false, NULL);
    CHECK_CODE(dgram_bind(a, 0, "198.51.100.2", NULL), DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(dgram_bind(b, 0, "198.51.100.1", NULL), DGRAM_EADDRNOTAVAIL);
    test_bind_wait(ctx, b, 0, "198.51.100.2");
    test_bind_wait(ctx, a, 0, "198.51.100.1");
    dgram_socket_free(a);
    dgram_socket_free(b);
    hosts_finish(ctx);
}

/* ---- udp4: join, receive, drop, not received ---------------------------- */

static void test_udp4_membership(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    dgram_socket *rx = make(ctx, HOST_B, DGRAM_UDP4, true, &in);
    uint16_t port = test_bind_wait(ctx, rx, 0, "0.0.0.0");
    CHECK_OK(dgram_add_membership(rx, "239.255.0.1", "198.51.100.2"));

    dgram_socket *tx = make(ctx, HOST_A, DGRAM_UDP4, false, NULL);
    CHECK_OK(dgram_set_multicast_ttl(tx, 1));
    test_bind_wait(ctx, tx, 0, NULL);
    uint16_t tx_port = test_port(tx);

    send_wait(ctx, tx, "hello group", "239.255.0.1", port);
    RUN_UNTIL(ctx, in.count, 1);
    check_inbox_text(&in, 1, "hello group", "198.51.100.1", tx_port, DGRAM_IPV4);

    /* After the drop, the next datagram does not arrive. */
    CHECK_OK(dgram_drop_membership(rx, "239.255.0.1", "198.51.100.2"));
    send_wait(ctx, tx, "after drop", "239.255.0.1", port);
    test_run_for(ctx, 200);
    CHECK_EQ(in.count, 1);

    /* Control: joined again, the next one arrives (so the one above would
     * have arrived had the membership remained). */
    CHECK_OK(dgram_add_membership(rx, "239.255.0.1", "198.51.100.2"));
    send_wait(ctx, tx, "joined again", "239.255.0.1", port);
    RUN_UNTIL(ctx, in.count, 2);
    check_inbox_text(&in, 2, "joined again", "198.51.100.1", tx_port, DGRAM_IPV4);
    test_run_for(ctx, 50);
    CHECK_EQ(in.count, 2);

    CHECK_OK(dgram_drop_membership(rx, "239.255.0.1", "198.51.100.2"));
    /* Dropping a group no longer (or never) joined. */
    CHECK_CODE(dgram_drop_membership(rx, "239.255.0.1", "198.51.100.2"), DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(dgram_drop_membership(rx, "239.255.0.99", "198.51.100.2"), DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(dgram_drop_membership(rx, "239.255.0.99", NULL), DGRAM_EADDRNOTAVAIL);
    /* Never joined, on a socket never bound. */
    dgram_socket *fresh = make(ctx, HOST_B, DGRAM_UDP4, false, NULL);
    CHECK_CODE(dgram_drop_membership(fresh, "239.255.0.1", "198.51.100.2"), DGRAM_EADDRNOTAVAIL);
    dgram_socket_free(fresh);

    dgram_socket_free(rx);
    dgram_socket_free(tx);
    hosts_finish(ctx);
}

/* Membership before bind (the OS socket exists from dgram_create_socket),
 * and with a NULL interface: the kernel picks it by route (224.0.0.0/4 via
 * dgv1 on host B). */
static void test_udp4_membership_before_bind_default_iface(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    dgram_socket *rx = make(ctx, HOST_B, DGRAM_UDP4, true, &in);
    CHECK_OK(dgram_add_membership(rx, "239.255.0.4", NULL));
    uint16_t port = test_bind_wait(ctx, rx, 0, NULL);

    dgram_socket *tx = make(ctx, HOST_A, DGRAM_UDP4, false, NULL);
    CHECK_OK(dgram_set_multicast_ttl(tx, 1));
    test_bind_wait(ctx, tx, 0, NULL);
    send_wait(ctx, tx, "default iface", "239.255.0.4", port);
    RUN_UNTIL(ctx, in.count, 1);
    check_inbox_text(&in, 1, "default iface", "198.51.100.1", test_port(tx), DGRAM_IPV4);

    CHECK_OK(dgram_drop_membership(rx, "239.255.0.4", NULL));
    CHECK_CODE(dgram_drop_membership(rx, "239.255.0.4", NULL), DGRAM_EADDRNOTAVAIL);
    dgram_socket_free(rx);
    dgram_socket_free(tx);
    hosts_finish(ctx);
}

/* ---- multicast loopback on the sending host ----------------------------- */

static void test_multicast_loopback(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    dgram_socket *s = make(ctx, HOST_A, DGRAM_UDP4, true, &in);
    uint16_t port = test_bind_wait(ctx, s, 0, "0.0.0.0");
    CHECK_OK(dgram_add_membership(s, "239.255.0.3", "198.51.100.1"));
    CHECK_OK(dgram_set_multicast_ttl(s, 1));

    CHECK_OK(dgram_set_multicast_loopback(s, true));
    send_wait(ctx, s, "loop on", "239.255.0.3", port);
    RUN_UNTIL(ctx, in.count, 1);
    check_inbox_text(&in, 1, "loop on", "198.51.100.1", port, DGRAM_IPV4);

    CHECK_OK(dgram_set_multicast_loopback(s, false));
    send_wait(ctx, s, "loop off", "239.255.0.3", port);
    test_run_for(ctx, 200);
    CHECK_EQ(in.count, 1);

    CHECK_OK(dgram_set_multicast_loopback(s, true));
    send_wait(ctx, s, "loop on again", "239.255.0.3", port);
    RUN_UNTIL(ctx, in.count, 2);
    check_inbox_text(&in, 2, "loop on again", "198.51.100.1", port, DGRAM_IPV4);
    test_run_for(ctx, 50);
    CHECK_EQ(in.count, 2);

    dgram_socket_free(s);
    hosts_finish(ctx);
}

/* ---- two receivers sharing a port --------------------------------------- */

static void test_two_receivers_share_port(void) {
    dgram_context *ctx = hosts_setup();
    inbox in1, in2;
    dgram_socket *r1 = make(ctx, HOST_B, DGRAM_UDP4, true, &in1);
    dgram_socket *r2 = make(ctx, HOST_B, DGRAM_UDP4, true, &in2);
    uint16_t port = test_bind_wait(ctx, r1, 0, "0.0.0.0");
    test_bind_wait(ctx, r2, port, "0.0.0.0");
    CHECK_OK(dgram_add_membership(r1, "239.255.0.2", "198.51.100.2"));
    CHECK_OK(dgram_add_membership(r2, "239.255.0.2", "198.51.100.2"));

    dgram_socket *tx = make(ctx, HOST_A, DGRAM_UDP4, false, NULL);
    CHECK_OK(dgram_set_multicast_ttl(tx, 1));
    test_bind_wait(ctx, tx, 0, NULL);
    send_wait(ctx, tx, "to both", "239.255.0.2", port);
    RUN_UNTIL(ctx, in1.count, 1);
    RUN_UNTIL(ctx, in2.count, 1);
    test_run_for(ctx, 100);
    check_inbox_text(&in1, 1, "to both", "198.51.100.1", test_port(tx), DGRAM_IPV4);
    check_inbox_text(&in2, 1, "to both", "198.51.100.1", test_port(tx), DGRAM_IPV4);

    dgram_socket_free(r1);
    dgram_socket_free(r2);
    dgram_socket_free(tx);
    hosts_finish(ctx);
}

/* ---- udp6 ---------------------------------------------------------------- */

static void udp6_round(dgram_context *ctx, dgram_socket *tx, inbox *in, uint16_t port,
                       const char *group, const char *text, int want) {
    send_wait(ctx, tx, text, group, port);
    RUN_UNTIL(ctx, in->count, want);
    check_inbox_text(in, want, text, "2001:db8::1", test_port(tx), DGRAM_IPV6);
}

static void test_udp6_membership(void) {
    dgram_context *ctx = hosts_setup();
    inbox in;
    dgram_socket *rx = make(ctx, HOST_B, DGRAM_UDP6, true, &in);
    uint16_t port = test_bind_wait(ctx, rx, 0, "::");

    dgram_socket *tx = make(ctx, HOST_A, DGRAM_UDP6, false, NULL);
    CHECK_OK(dgram_set_multicast_ttl(tx, 1));
    test_bind_wait(ctx, tx, 0, NULL);

    /* Interface by name. */
    CHECK_CODE(membership(HOST_B, rx, true, "ff0e::1:2", "dgv1"), 0);
    udp6_round(ctx, tx, &in, port, "ff0e::1:2", "v6 by name", 1);
    CHECK_CODE(membership(HOST_B, rx, false, "ff0e::1:2", "dgv1"), 0);
    send_wait(ctx, tx, "v6 dropped", "ff0e::1:2", port);
    test_run_for(ctx, 200);
    CHECK_EQ(in.count, 1);
    CHECK_CODE(membership(HOST_B, rx, false, "ff0e::1:2", "dgv1"), DGRAM_EADDRNOTAVAIL);

    /* Interface as an address with a zone. */
    CHECK_CODE(membership(HOST_B, rx, true, "ff0e::1:2", "::%dgv1"), 0);
    udp6_round(ctx, tx, &in, port, "ff0e::1:2", "v6 by zone", 2);
    CHECK_CODE(membership(HOST_B, rx, false, "ff0e::1:2", "::%dgv1"), 0);
    CHECK_CODE(membership(HOST_B, rx, false, "ff0e::1:2", "::%dgv1"), DGRAM_EADDRNOTAVAIL);

    /* Names are looked up in the socket's own namespace, whatever the
     * calling thread's: from host A's thread, "dgv1" is B's interface, and
     * "dgv0" (which exists only on A) does not exist for this socket. */
    CHECK_OK(dgram_add_membership(rx, "ff0e::1:8", "dgv1"));
    udp6_round(ctx, tx, &in, port, "ff0e::1:8", "v6 name from A", 3);
    CHECK_OK(dgram_drop_membership(rx, "ff0e::1:8", "::%dgv1"));
    CHECK_CODE(dgram_add_membership(rx, "ff0e::1:8", "dgv0"), DGRAM_ENODEV);
    CHECK_CODE(dgram_add_membership(rx, "ff0e::1:8", "::%dgv0"), DGRAM_ENODEV);

    /* Interface by index, and a site-local-scope group. */
    enter_host(HOST_B);
    unsigned index = if_nametoindex("dgv1");
    enter_host(HOST_A);
    CHECK(index != 0);
    char index_text[16];
    snprintf(index_text, sizeof index_text, "%u", index);
    CHECK_OK(dgram_add_membership(rx, "ff05::1:5", index_text));
    udp6_round(ctx, tx, &in, port, "ff05::1:5", "v6 by index", 4);
    CHECK_OK(dgram_drop_membership(rx, "ff05::1:5", index_text));
    send_wait(ctx, tx, "v6 index dropped", "ff05::1:5", port);
    test_run_for(ctx, 200);
    CHECK_EQ(in.count, 4);
    CHECK_CODE(dgram_drop_membership(rx, "ff05::1:5", index_text), DGRAM_EADDRNOTAVAIL);

    /* NULL interface: the kernel picks it by route (ff00::/8 via dgv1). */
    CHECK_OK(dgram_add_membership(rx, "ff0e::1:6", NULL));
    udp6_round(ctx, tx, &in, port, "ff0e::1:6", "v6 default iface", 5);
    CHECK_OK(dgram_drop_membership(rx, "ff0e::1:6", NULL));
    CHECK_CODE(dgram_drop_membership(rx, "ff0e::1:6", NULL), DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(dgram_drop_membership(rx, "ff0e::1:7", NULL), DGRAM_EADDRNOTAVAIL);

    test_run_for(ctx, 50);
    CHECK_EQ(in.count, 5);
    dgram_socket_free(rx);
    dgram_socket_free(tx);
    hosts_finish(ctx);
}

/* ---- bad groups and interfaces ------------------------------------------ */

static void test_membership_errors(void) {
    dgram_context *ctx = hosts_setup();
    dgram_socket *v4 = make(ctx, HOST_B, DGRAM_UDP4, false, NULL);
    dgram_socket *v6 = make(ctx, HOST_B, DGRAM_UDP6, false, NULL);

    /* A udp6 interface name that does not exist. */
    CHECK_CODE(membership(HOST_B, v6, true, "ff0e::1:2", "nosuchif0"), DGRAM_ENODEV);
    CHECK_CODE(membership(HOST_B, v6, true, "ff0e::1:2", "::%nosuchif0"), DGRAM_ENODEV);
    /* A well-formed udp4 interface address that is not local: the kernel
     * answers ENODEV (observed on Linux: ip_mc_find_dev finds no device). */
    CHECK_CODE(dgram_add_membership(v4, "239.255.0.1", "203.0.113.9"), DGRAM_ENODEV);
    /* The address of the other host is not local here either. */
    CHECK_CODE(dgram_add_membership(v4, "239.255.0.1", "198.51.100.1"), DGRAM_ENODEV);

    /* Malformed interfaces. */
    CHECK_CODE(dgram_add_membership(v4, "239.255.0.1", "dgv1"), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v4, "239.255.0.1", "2001:db8::2"), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v4, "239.255.0.1", ""), DGRAM_EINVAL);
    CHECK_CODE(membership(HOST_B, v6, true, "ff0e::1:2", "zz%dgv1"), DGRAM_EINVAL);
    CHECK_CODE(membership(HOST_B, v6, true, "ff0e::1:2", ""), DGRAM_EINVAL);

    /* Groups that are not multicast addresses of the socket's family. */
    CHECK_CODE(dgram_add_membership(v4, "198.51.100.2", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v4, "ff0e::1:2", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v4, "not an address", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v4, NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_drop_membership(v4, "198.51.100.2", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v6, "2001:db8::2", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_add_membership(v6, "239.255.0.1", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_drop_membership(v6, "2001:db8::2", NULL), DGRAM_EINVAL);

    /* None of the failures left a membership behind. */
    CHECK_CODE(dgram_drop_membership(v4, "239.255.0.1", NULL), DGRAM_EADDRNOTAVAIL);
    CHECK_CODE(membership(HOST_B, v6, false, "ff0e::1:2", "dgv1"), DGRAM_EADDRNOTAVAIL);

    /* A closed socket answers EBADF whatever the arguments. */
    CHECK_OK(dgram_close(v4, NULL));
    CHECK_CODE(dgram_add_membership(v4, "239.255.0.1", "198.51.100.2"), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(v4, "198.51.100.2", "bad"), DGRAM_EBADF);
    CHECK_CODE(dgram_drop_membership(v4, "239.255.0.1", NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(NULL, "239.255.0.1", NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_drop_membership(NULL, "239.255.0.1", NULL), DGRAM_EINVAL);

    dgram_socket_free(v4);
    dgram_socket_free(v6);
    hosts_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_sockets_belong_to_their_host),
    TEST_ENTRY(test_udp4_membership),
    TEST_ENTRY(test_udp4_membership_before_bind_default_iface),
    TEST_ENTRY(test_multicast_loopback),
    TEST_ENTRY(test_two_receivers_share_port),
    TEST_ENTRY(test_udp6_membership),
    TEST_ENTRY(test_membership_errors),
)
