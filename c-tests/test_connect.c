/*
 * Connected sockets (Node socket.connect / disconnect / remoteAddress):
 * 'listening' then 'connect' on an unbound socket (persistent handler, then
 * the one-shot callback), the peer's address, sends to the peer (send,
 * sendv, send_batch) and the DGRAM_EISCONN of any destination, argument and
 * state errors, reception from the peer only, the ICMP port unreachable as
 * an 'error' event with DGRAM_ECONNREFUSED, disconnect keeping the local
 * port, 'connect' dropped by a close before dispatch, and I/O-thread
 * dispatch.
 *
 * Unicast only, over 127.0.0.1 and ::1, with ports chosen by the OS.
 */
#include "recorder.h"
#include "test_runner.h"

#include <netinet/in.h>

/* ---- helpers ------------------------------------------------------------- */

/* A bound socket of `type` on the loopback address, 'listening' delivered. */
static dgram_socket *peer_socket(dgram_context *ctx, dgram_type type, sock_rec *r, uint16_t *port) {
    dgram_socket *s = rec_socket(ctx, type, r);
    *port = rec_bind_wait(ctx, s, r, 0, test_loopback(type));
    CHECK_STR(r->log.text, "lL");
    return s;
}

/* Host dispatch: connects `s` to the loopback address of `type`:`port` and
 * runs until the one-shot 'connect'. */
static void connect_wait(dgram_context *ctx, dgram_socket *s, sock_rec *r, dgram_type type,
                         uint16_t port) {
    int before = test_load(&r->connect_once);
    CHECK_OK(dgram_connect(s, port, test_loopback(type), rec_on_connect_once));
    RUN_UNTIL(ctx, r->connect_once, before + 1);
}

static dgram_family family_of(dgram_type type) {
    return type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6;
}

/* Checks datagram `i` of `r`: the text `text`, from the loopback address of
 * `type`, port `port`. */
static void check_msg(const sock_rec *r, int i, const char *text, dgram_type type, uint16_t port) {
    rec_check_text(r, i, text, test_loopback(type), port, family_of(type));
}

static void check_remote(const dgram_socket *s, dgram_type type, uint16_t port) {
    dgram_addr a;
    memset(&a, 0x5a, sizeof a); /* every field must be written */
    CHECK_OK(dgram_remote_address(s, &a));
    CHECK_ADDR(&a, test_loopback(type), port, family_of(type));
}

/* A loopback port where nothing listens: a plain socket binds it, reads
 * it, and closes it at once (close(2) is synchronous, unlike a library
 * socket whose fd the I/O thread may still hold for a moment). */
static uint16_t dead_port(dgram_type type) {
    int fd;
    uint16_t port;
    if (type == DGRAM_UDP4) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
        socklen_t len = sizeof a;
        CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
        port = ntohs(a.sin_port);
    } else {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
        socklen_t len = sizeof a;
        CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
        port = ntohs(a.sin6_port);
    }
    CHECK(close(fd) == 0);
    CHECK(port != 0);
    return port;
}

/* ---- tests ---------------------------------------------------------------- */

/* connect on an unbound socket: nothing inside the call; then 'listening'
 * (the implicit bind's, persistent handler only) and 'connect' (persistent,
 * then one-shot), once each; the socket has a local port and the peer. */
static void connect_unbound(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr;
    uint16_t pport;
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    dgram_addr a;
    CHECK_CODE(dgram_address(c, &a), DGRAM_EBADF); /* not bound yet */
    CHECK_EQ(dgram_context_active(ctx), 1);

    CHECK_OK(dgram_connect(c, pport, test_loopback(type), rec_on_connect_once));
    CHECK_STR(cr.log.text, "");
    /* bound + undelivered 'listening' and 'connect' */
    CHECK_EQ(dgram_context_active(ctx), 1 + 3);
    /* a numeric connect is done when the call returns */
    check_remote(c, type, pport);

    RUN_UNTIL(ctx, cr.connect_once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(cr.log.text, "lkK");
    CHECK_EQ(cr.listen_p, 1);
    CHECK_EQ(cr.listen_once, 0);
    CHECK_EQ(cr.connect_p, 1);
    CHECK_EQ(cr.connect_once, 1);
    CHECK_EQ(dgram_context_active(ctx), 2);
    /* the kernel picked the source for the route to the peer: loopback */
    uint16_t cport = test_check_bound(c, test_loopback(type), 0, family_of(type));
    CHECK(cport != pport);
    check_remote(c, type, pport);
    CHECK_STR(pr.log.text, "lL"); /* connecting sends nothing to the peer */
    CHECK_EQ(pr.bad + cr.bad, 0);

    dgram_socket_free(c);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_connect_unbound_udp4(void) { connect_unbound(DGRAM_UDP4); }
static void test_connect_unbound_udp6(void) { connect_unbound(DGRAM_UDP6); }

/* connect on a bound socket: only 'connect' follows; the local address
 * stays the one bound. A NULL address means the loopback address; without
 * a persistent handler only the one-shot runs, and a NULL one-shot is fine. */
static void connect_bound(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr;
    uint16_t pport;
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    uint16_t cport = rec_bind_wait(ctx, c, &cr, 0, test_loopback(type));

    CHECK_OK(dgram_connect(c, pport, NULL, rec_on_connect_once));
    check_remote(c, type, pport);
    RUN_UNTIL(ctx, cr.connect_once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(cr.log.text, "lLkK");
    test_check_bound(c, test_loopback(type), cport, family_of(type));

    /* persistent handler cleared, one-shot NULL: a 'connect' nobody sees */
    sock_rec r2;
    dgram_socket *c2 = rec_socket(ctx, type, &r2);
    CHECK_OK(dgram_on_connect(c2, NULL));
    rec_bind_wait(ctx, c2, &r2, 0, test_loopback(type));
    CHECK_OK(dgram_connect(c2, pport, NULL, NULL));
    test_run_for(ctx, 50);
    CHECK_STR(r2.log.text, "lL");
    CHECK_EQ(r2.connect_p + r2.connect_once, 0);
    check_remote(c2, type, pport);
    CHECK_EQ(dgram_context_active(ctx), 3); /* three bound sockets, nothing pending */
    CHECK_EQ(pr.bad + cr.bad + r2.bad, 0);

    dgram_socket_free(c2);
    dgram_socket_free(c);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_connect_bound_udp4(void) { connect_bound(DGRAM_UDP4); }
static void test_connect_bound_udp6(void) { connect_bound(DGRAM_UDP6); }

/* remote_address and disconnect on a socket that is not connected:
 * DGRAM_ENOTCONN, bound or not; NULL `out` and NULL handles are EINVAL. */
static void not_connected(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, type, &r);
    dgram_addr a;
    memset(&a, 0x5a, sizeof a);
    CHECK_CODE(dgram_remote_address(s, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(s), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_remote_address(s, NULL), DGRAM_EINVAL);
    rec_bind_wait(ctx, s, &r, 0, test_loopback(type));
    CHECK_CODE(dgram_remote_address(s, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(s), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_remote_address(s, NULL), DGRAM_EINVAL);

    CHECK_CODE(dgram_connect(NULL, 9, NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_disconnect(NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_remote_address(NULL, &a), DGRAM_EINVAL);
    CHECK_CODE(dgram_on_connect(NULL, rec_on_connect), DGRAM_EINVAL);

    /* connected: NULL out is still EINVAL */
    uint16_t dead = dead_port(type);
    CHECK_OK(dgram_connect(s, dead, NULL, NULL));
    CHECK_CODE(dgram_remote_address(s, NULL), DGRAM_EINVAL);
    check_remote(s, type, dead);
    test_run_for(ctx, 20);
    CHECK_STR(r.log.text, "lLk");
    CHECK_EQ(r.bad, 0);
    dgram_socket_free(s);
    test_context_finish(ctx);
}
static void test_not_connected_udp4(void) { not_connected(DGRAM_UDP4); }
static void test_not_connected_udp6(void) { not_connected(DGRAM_UDP6); }

/* Sends on a connected socket: port 0 and NULL address reach the peer
 * (exact bytes; the peer sees the client's port) with send, sendv and
 * send_batch; any destination is DGRAM_EISCONN, with no callback. */
static void send_to_peer(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr;
    uint16_t pport;
    const char *lo = test_loopback(type);
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    connect_wait(ctx, c, &cr, type, pport);
    uint16_t cport = test_port(c);
    send_rec sr;
    memset(&sr, 0, sizeof sr);

    send_and_wait(ctx, c, "to the peer", 11, 0, NULL, &sr);
    RUN_UNTIL(ctx, pr.count, 1);
    check_msg(&pr, 0, "to the peer", type, cport);

    /* any destination: EISCONN, no completion */
    CHECK_CODE(dgram_send(c, "x", 1, pport, lo, send_rec_on_sent, &sr), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(c, "x", 1, pport, NULL, send_rec_on_sent, &sr), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(c, "x", 1, 0, lo, send_rec_on_sent, &sr), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(c, "x", 1, 9, lo, NULL, NULL), DGRAM_EISCONN);
    dgram_buf piece = {"x", 1};
    CHECK_CODE(dgram_sendv(c, &piece, 1, pport, lo, send_rec_on_sent, &sr), DGRAM_EISCONN);
    CHECK_CODE(dgram_sendv(c, &piece, 1, pport, NULL, send_rec_on_sent, &sr), DGRAM_EISCONN);
    CHECK_CODE(dgram_send_batch(c, &piece, 1, pport, lo, send_rec_on_sent, &sr), DGRAM_EISCONN);
    CHECK_CODE(dgram_send_batch(c, &piece, 1, pport, NULL, send_rec_on_sent, &sr), DGRAM_EISCONN);

    /* sendv: one datagram of the pieces */
    dgram_buf pieces[2] = {{"two ", 4}, {"pieces", 6}};
    CHECK_OK(dgram_sendv(c, pieces, 2, 0, NULL, send_rec_on_sent, &sr));
    RUN_UNTIL(ctx, pr.count, 2);
    check_msg(&pr, 1, "two pieces", type, cport);

    /* send_batch: three datagrams, in order, one completion each */
    dgram_buf batch[3] = {{"one", 3}, {"two", 3}, {"three", 5}};
    CHECK_OK(dgram_send_batch(c, batch, 3, 0, NULL, send_rec_on_sent, &sr));
    RUN_UNTIL(ctx, pr.count, 5);
    check_msg(&pr, 2, "one", type, cport);
    check_msg(&pr, 3, "two", type, cport);
    check_msg(&pr, 4, "three", type, cport);
    RUN_UNTIL(ctx, sr.count, 5);
    test_run_for(ctx, 100);
    CHECK_EQ(sr.count, 5); /* 1 send + 1 sendv + 3 batch; none for the refusals */
    CHECK_EQ(sr.errors, 0);
    CHECK_EQ(sr.length, 5); /* the last: "three" */
    CHECK_EQ(pr.count, 5);
    CHECK_EQ(cr.count, 0);
    CHECK_STR(cr.log.text, "lkK");
    CHECK_STR(pr.log.text, "lLMMMMM");
    CHECK_EQ(pr.bad + cr.bad, 0);

    dgram_socket_free(c);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_send_to_peer_udp4(void) { send_to_peer(DGRAM_UDP4); }
static void test_send_to_peer_udp6(void) { send_to_peer(DGRAM_UDP6); }

/* connect's argument and state errors: bad ports and addresses are EINVAL
 * and leave the socket unbound and unconnected; a second connect is
 * EISCONN and changes nothing; only one 'connect' comes. */
static void connect_errors(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr;
    uint16_t pport;
    const char *lo = test_loopback(type);
    const char *other_family = type == DGRAM_UDP4 ? "::1" : "127.0.0.1";
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *c = rec_socket(ctx, type, &cr);

    CHECK_CODE(dgram_connect(c, 0, lo, rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, 65536, lo, rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, -1, lo, rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, INT32_MAX, NULL, NULL), DGRAM_EINVAL);
    /* malformed text (none of it a host name, so no lookup is made) */
    CHECK_CODE(dgram_connect(c, pport, "not an address", rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, pport, "256.0.0.1", rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, pport, "127.0.0.1:80", rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, pport, "", rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, pport, ":::", rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, pport, other_family, rec_on_connect_once), DGRAM_EINVAL);
    /* nothing happened: not bound, not connected, no event */
    dgram_addr a;
    CHECK_CODE(dgram_address(c, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_remote_address(c, &a), DGRAM_ENOTCONN);
    test_run_for(ctx, 20);
    CHECK_STR(cr.log.text, "");
    CHECK_EQ(dgram_context_active(ctx), 1);

    connect_wait(ctx, c, &cr, type, pport);
    CHECK_CODE(dgram_connect(c, pport, lo, rec_on_connect_once), DGRAM_EISCONN);
    CHECK_CODE(dgram_connect(c, pport + 1 > 65535 ? 1 : pport + 1, lo, rec_on_connect_once),
               DGRAM_EISCONN);
    CHECK_CODE(dgram_connect(c, pport, NULL, NULL), DGRAM_EISCONN);
    /* arguments are checked before the state */
    CHECK_CODE(dgram_connect(c, 0, lo, rec_on_connect_once), DGRAM_EINVAL);
    CHECK_CODE(dgram_connect(c, pport, "not an address", NULL), DGRAM_EINVAL);
    check_remote(c, type, pport);
    test_run_for(ctx, 50);
    CHECK_STR(cr.log.text, "lkK");
    CHECK_EQ(cr.connect_once, 1);
    CHECK_EQ(pr.bad + cr.bad, 0);

    dgram_socket_free(c);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_connect_errors_udp4(void) { connect_errors(DGRAM_UDP4); }
static void test_connect_errors_udp6(void) { connect_errors(DGRAM_UDP6); }

/* A closed socket, connected or not, answers DGRAM_EBADF to connect,
 * disconnect, remote_address and on_connect, whatever the arguments. */
static void closed_socket(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr, ur;
    uint16_t pport;
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    dgram_socket *u = rec_socket(ctx, type, &ur); /* never connected */
    connect_wait(ctx, c, &cr, type, pport);
    CHECK_OK(dgram_close(c, rec_on_close_once));
    CHECK_OK(dgram_close(u, NULL));
    dgram_socket *both[2] = {c, u};
    for (int i = 0; i < 2; i++) {
        dgram_socket *s = both[i];
        dgram_addr a;
        CHECK_CODE(dgram_connect(s, pport, test_loopback(type), rec_on_connect_once), DGRAM_EBADF);
        CHECK_CODE(dgram_connect(s, pport, NULL, NULL), DGRAM_EBADF);
        CHECK_CODE(dgram_connect(s, 0, "not an address", NULL), DGRAM_EBADF);
        CHECK_CODE(dgram_connect(s, 65536, NULL, NULL), DGRAM_EBADF);
        CHECK_CODE(dgram_disconnect(s), DGRAM_EBADF);
        CHECK_CODE(dgram_remote_address(s, &a), DGRAM_EBADF);
        CHECK_CODE(dgram_remote_address(s, NULL), DGRAM_EBADF);
        CHECK_CODE(dgram_on_connect(s, rec_on_connect), DGRAM_EBADF);
        CHECK_CODE(dgram_on_connect(s, NULL), DGRAM_EBADF);
        test_check_all_ebadf(s, type);
    }
    RUN_UNTIL(ctx, cr.close_once, 1);
    RUN_UNTIL(ctx, ur.close_p, 1);
    test_run_for(ctx, 50);
    CHECK_STR(cr.log.text, "lkKcC");
    CHECK_STR(ur.log.text, "c");
    CHECK_EQ(pr.bad + cr.bad + ur.bad, 0);
    dgram_socket_free(u);
    dgram_socket_free(c);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_closed_socket_udp4(void) { closed_socket(DGRAM_UDP4); }
static void test_closed_socket_udp6(void) { closed_socket(DGRAM_UDP6); }

/* A connected socket receives from its peer only: a third socket's
 * datagrams to it are not delivered (though they were sent), the peer's
 * sent after them are; after disconnect the third's arrive too. */
static void only_from_peer(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr, tr;
    uint16_t pport, tport;
    const char *lo = test_loopback(type);
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *third = peer_socket(ctx, type, &tr, &tport);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    connect_wait(ctx, c, &cr, type, pport);
    uint16_t cport = test_port(c);
    send_rec tsr, psr;
    memset(&tsr, 0, sizeof tsr);
    memset(&psr, 0, sizeof psr);

    send_and_wait(ctx, third, "from third", 10, cport, lo, &tsr);
    send_and_wait(ctx, peer, "from peer", 9, cport, lo, &psr);
    RUN_UNTIL(ctx, cr.count, 1);
    send_and_wait(ctx, third, "third again", 11, cport, lo, &tsr);
    send_and_wait(ctx, peer, "peer again", 10, cport, lo, &psr);
    RUN_UNTIL(ctx, cr.count, 2);
    test_run_for(ctx, 100);
    CHECK_EQ(cr.count, 2);
    check_msg(&cr, 0, "from peer", type, pport);
    check_msg(&cr, 1, "peer again", type, pport);

    /* disconnected: the third socket gets through */
    CHECK_OK(dgram_disconnect(c));
    send_and_wait(ctx, third, "third at last", 13, cport, lo, &tsr);
    RUN_UNTIL(ctx, cr.count, 3);
    test_run_for(ctx, 50);
    CHECK_EQ(cr.count, 3);
    check_msg(&cr, 2, "third at last", type, tport);
    CHECK_EQ(tsr.errors + psr.errors, 0);
    CHECK_STR(cr.log.text, "lkKMMM");
    CHECK_EQ(pr.count + tr.count, 0);
    CHECK_EQ(pr.bad + cr.bad + tr.bad, 0);

    dgram_socket_free(c);
    dgram_socket_free(third);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_only_from_peer_udp4(void) { only_from_peer(DGRAM_UDP4); }
static void test_only_from_peer_udp6(void) { only_from_peer(DGRAM_UDP6); }

/* Connected to a port where nothing listens: each send (without callback)
 * draws an ICMP port unreachable, which comes as one 'error' event with
 * DGRAM_ECONNREFUSED naming the peer; the socket stays connected. */
static void icmp_refused(dgram_type type) {
    /* In a namespace of its own where it can: there the dead port stays
     * dead and the kernel's ICMP rate limit is this case's alone, whatever
     * runs beside it. */
    int orig = test_netns_push();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec cr;
    dgram_socket *c = rec_socket(ctx, type, &cr);
    uint16_t dead = dead_port(type);
    connect_wait(ctx, c, &cr, type, dead);

    /* One send at a time: the kernel keeps one pending error, which the
     * I/O thread's read takes (a send made while it is still pending
     * would fail with it instead). */
    for (int i = 1; i <= 2; i++) {
        CHECK_OK(dgram_send(c, "ping", 4, 0, NULL, NULL, NULL));
        RUN_UNTIL(ctx, cr.errors, i);
        CHECK_CODE(cr.err_code, DGRAM_ECONNREFUSED);
        CHECK_STR(cr.err_syscall, "recvmsg");
        CHECK_ADDR(&cr.err_addr, test_loopback(type), dead, family_of(type));
    }
    test_run_for(ctx, 100);
    CHECK_EQ(cr.errors, 2);
    CHECK_STR(cr.log.text, "lkKEE");
    check_remote(c, type, dead);
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(cr.bad, 0);
    dgram_socket_free(c);
    test_context_finish(ctx);
    if (orig >= 0)
        close(orig);
}
static void test_icmp_refused_udp4(void) { icmp_refused(DGRAM_UDP4); }
static void test_icmp_refused_udp6(void) { icmp_refused(DGRAM_UDP6); }

/* disconnect: the peer is gone (ENOTCONN, and a send without destination
 * is EINVAL), a send with a destination works, and the local address and
 * port stay what they were before connect;
 * a second disconnect is ENOTCONN; the socket may connect again.
 * `bind_to` NULL: the socket was bound implicitly by connect. */
static void disconnect_keeps_port(dgram_type type, const char *bind_to) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec pr, cr, tr;
    uint16_t pport, tport;
    const char *lo = test_loopback(type);
    dgram_socket *peer = peer_socket(ctx, type, &pr, &pport);
    dgram_socket *third = peer_socket(ctx, type, &tr, &tport);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    dgram_addr bound, before, after;
    if (bind_to) {
        rec_bind_wait(ctx, c, &cr, 0, bind_to);
        CHECK_OK(dgram_address(c, &bound));
        CHECK_STR(bound.address, bind_to);
    }
    connect_wait(ctx, c, &cr, type, pport);
    CHECK_OK(dgram_address(c, &before));
    CHECK(before.port != 0);
    if (bind_to)
        CHECK_EQ(before.port, bound.port);

    CHECK_OK(dgram_disconnect(c));
    memset(&after, 0x5a, sizeof after);
    CHECK_OK(dgram_address(c, &after));
    CHECK_EQ(after.port, before.port);
    /* the address too: the one bound, or the implicit bind's wildcard */
    CHECK_ADDR(&after, bind_to ? bind_to : (type == DGRAM_UDP4 ? "0.0.0.0" : "::"), before.port,
               family_of(type));
    dgram_addr a;
    CHECK_CODE(dgram_remote_address(c, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(c), DGRAM_ENOTCONN);
    send_rec sr;
    memset(&sr, 0, sizeof sr);
    CHECK_CODE(dgram_send(c, "x", 1, 0, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);
    dgram_buf piece = {"x", 1};
    CHECK_CODE(dgram_send_batch(c, &piece, 1, 0, NULL, send_rec_on_sent, &sr), DGRAM_EINVAL);

    /* sends with a destination go out, from the same port */
    send_and_wait(ctx, c, "after disconnect", 16, pport, lo, &sr);
    RUN_UNTIL(ctx, pr.count, 1);
    check_msg(&pr, 0, "after disconnect", type, before.port);
    send_and_wait(ctx, c, "to the third", 12, tport, NULL, &sr);
    RUN_UNTIL(ctx, tr.count, 1);
    check_msg(&tr, 0, "to the third", type, before.port);
    /* and datagrams to that port still arrive, from anyone */
    send_rec tsr;
    memset(&tsr, 0, sizeof tsr);
    send_and_wait(ctx, third, "still here?", 11, before.port, lo, &tsr);
    RUN_UNTIL(ctx, cr.count, 1);
    check_msg(&cr, 0, "still here?", type, tport);

    /* connect again, elsewhere */
    connect_wait(ctx, c, &cr, type, tport);
    check_remote(c, type, tport);
    CHECK_EQ(test_port(c), before.port);
    send_and_wait(ctx, c, "reconnected", 11, 0, NULL, &sr);
    RUN_UNTIL(ctx, tr.count, 2);
    check_msg(&tr, 1, "reconnected", type, before.port);

    test_run_for(ctx, 50);
    CHECK_EQ(sr.count, 3);
    CHECK_EQ(pr.count, 1);
    CHECK_EQ(tr.count, 2);
    CHECK_EQ(cr.count, 1);
    CHECK_STR(cr.log.text, bind_to ? "lLkKMkK" : "lkKMkK");
    CHECK_EQ(pr.bad + cr.bad + tr.bad, 0);

    dgram_socket_free(c);
    dgram_socket_free(third);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_disconnect_implicit_udp4(void) { disconnect_keeps_port(DGRAM_UDP4, NULL); }
static void test_disconnect_implicit_udp6(void) { disconnect_keeps_port(DGRAM_UDP6, NULL); }
static void test_disconnect_bound_udp4(void) { disconnect_keeps_port(DGRAM_UDP4, "127.0.0.1"); }
static void test_disconnect_bound_udp6(void) { disconnect_keeps_port(DGRAM_UDP6, "::1"); }
/* Bound to the wildcard address: connect narrows the local address to the
 * route's source, disconnect must widen it back (Linux forgets both). */
static void test_disconnect_wildcard_udp4(void) { disconnect_keeps_port(DGRAM_UDP4, "0.0.0.0"); }
static void test_disconnect_wildcard_udp6(void) { disconnect_keeps_port(DGRAM_UDP6, "::"); }

/* connect, then close before dispatching: the 'listening' and 'connect'
 * never come, 'close' does, once (as for a bind closed before dispatch). */
static void connect_then_close(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec cr, br;
    uint16_t dead = dead_port(type);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    CHECK_OK(dgram_connect(c, dead, NULL, rec_on_connect_once));
    CHECK_EQ(dgram_context_active(ctx), 3); /* bound, 'listening', 'connect' */
    CHECK_OK(dgram_close(c, rec_on_close_once));
    CHECK_EQ(dgram_context_active(ctx), 1); /* the 'close' alone */
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
    RUN_UNTIL(ctx, cr.close_once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(cr.log.text, "cC");
    CHECK_EQ(dgram_context_active(ctx), 0);

    /* a bound socket whose 'listening' came: only the 'connect' is dropped */
    dgram_socket *b = rec_socket(ctx, type, &br);
    rec_bind_wait(ctx, b, &br, 0, test_loopback(type));
    CHECK_OK(dgram_connect(b, dead, NULL, rec_on_connect_once));
    CHECK_EQ(dgram_context_active(ctx), 2);
    CHECK_OK(dgram_close(b, rec_on_close_once));
    RUN_UNTIL(ctx, br.close_once, 1);
    test_run_for(ctx, 50);
    CHECK_STR(br.log.text, "lLcC");
    CHECK_EQ(dgram_context_active(ctx), 0);
    CHECK_EQ(cr.bad + br.bad, 0);
    dgram_socket_free(b);
    dgram_socket_free(c);
    test_context_finish(ctx);
}
static void test_connect_then_close_udp4(void) { connect_then_close(DGRAM_UDP4); }
static void test_connect_then_close_udp6(void) { connect_then_close(DGRAM_UDP6); }

/* I/O-thread dispatch: the same events, in the same order, on the I/O
 * thread; a send to the peer and the peer's reply. */
static void io_thread(dgram_type type) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    sock_rec pr, cr;
    const char *lo = test_loopback(type);
    dgram_socket *peer = rec_socket(ctx, type, &pr);
    CHECK_OK(dgram_bind(peer, 0, lo, rec_on_listening_once));
    WAIT_UNTIL(pr.listen_once, 1);
    uint16_t pport = test_port(peer);
    dgram_socket *c = rec_socket(ctx, type, &cr);
    CHECK_OK(dgram_connect(c, pport, lo, rec_on_connect_once));
    WAIT_UNTIL(cr.connect_once, 1);
    CHECK_STR(cr.log.text, "lkK");
    uint16_t cport = test_check_bound(c, lo, 0, family_of(type));
    check_remote(c, type, pport);

    send_rec sr;
    memset(&sr, 0, sizeof sr);
    CHECK_OK(dgram_send(c, "io thread", 9, 0, NULL, send_rec_on_sent, &sr));
    WAIT_UNTIL(pr.count, 1);
    check_msg(&pr, 0, "io thread", type, cport);
    CHECK_OK(dgram_send(peer, "reply", 5, cport, lo, NULL, NULL));
    WAIT_UNTIL(cr.count, 1);
    check_msg(&cr, 0, "reply", type, pport);
    WAIT_UNTIL(sr.count, 1);
    CHECK_EQ(sr.errors, 0);
    CHECK_EQ(sr.length, 9);
    CHECK_CODE(dgram_send(c, "x", 1, pport, lo, NULL, NULL), DGRAM_EISCONN);

    CHECK_OK(dgram_close(c, rec_on_close_once));
    WAIT_UNTIL(cr.close_once, 1);
    test_sleep_ms(50);
    CHECK_STR(cr.log.text, "lkKMcC");
    CHECK_EQ(pr.count, 1);
    CHECK_EQ(pr.bad + cr.bad, 0);
    dgram_socket_free(c);
    dgram_socket_free(peer);
    test_context_finish(ctx);
}
static void test_io_thread_udp4(void) { io_thread(DGRAM_UDP4); }
static void test_io_thread_udp6(void) { io_thread(DGRAM_UDP6); }

TEST_LIST(
    TEST_ENTRY(test_connect_unbound_udp4),
    TEST_ENTRY(test_connect_unbound_udp6),
    TEST_ENTRY(test_connect_bound_udp4),
    TEST_ENTRY(test_connect_bound_udp6),
    TEST_ENTRY(test_not_connected_udp4),
    TEST_ENTRY(test_not_connected_udp6),
    TEST_ENTRY(test_send_to_peer_udp4),
    TEST_ENTRY(test_send_to_peer_udp6),
    TEST_ENTRY(test_connect_errors_udp4),
    TEST_ENTRY(test_connect_errors_udp6),
    TEST_ENTRY(test_closed_socket_udp4),
    TEST_ENTRY(test_closed_socket_udp6),
    TEST_ENTRY(test_only_from_peer_udp4),
    TEST_ENTRY(test_only_from_peer_udp6),
    TEST_ENTRY(test_icmp_refused_udp4),
    TEST_ENTRY(test_icmp_refused_udp6),
    TEST_ENTRY(test_connect_then_close_udp4),
    TEST_ENTRY(test_connect_then_close_udp6),
    TEST_ENTRY(test_io_thread_udp4),
    TEST_ENTRY(test_io_thread_udp6),
    TEST_ENTRY(test_disconnect_bound_udp4),
    TEST_ENTRY(test_disconnect_bound_udp6),
    TEST_ENTRY(test_disconnect_implicit_udp4),
    TEST_ENTRY(test_disconnect_implicit_udp6),
    TEST_ENTRY(test_disconnect_wildcard_udp4),
    TEST_ENTRY(test_disconnect_wildcard_udp6),
)
