/*
 * libuv as a benchmark contender (the event loop Node and IoT.js hosts use).
 *
 *   bench_uv recv --count N [--mmsg 1]
 *       uv_udp_recv_start; with --mmsg 1 the handle is made with
 *       UV_UDP_RECVMMSG and alloc_cb hands out a 20 x 64 KiB buffer, which
 *       libuv needs to receive up to 20 datagrams per recvmmsg call.
 *   bench_uv send --port P --count N --size S     uv_udp_try_send loop
 *   bench_uv echo
 *   bench_uv ping --port P --count N --warmup W
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

/* libuv's unit for recvmmsg: each datagram slot of the buffer is 64 KiB. */
#define UV_SLOT (64 * 1024)
#define UV_MMSG_SLOTS 20

static uv_loop_t loop;
static uv_udp_t udp;
static uv_timer_t timer;

static void check(int r, const char *what)
{
    if (r < 0) {
        die(false, "%s: %s", what, uv_strerror(r));
    }
}

/* Creates the loop and the UDP handle bound to 127.0.0.1:0; returns the port. */
static int setup_udp(unsigned flags)
{
    check(uv_loop_init(&loop), "uv_loop_init");
    check(uv_udp_init_ex(&loop, &udp, AF_INET | flags), "uv_udp_init_ex");
    struct sockaddr_in sa;
    loopback_addr(&sa, 0);
    check(uv_udp_bind(&udp, (const struct sockaddr *)&sa, 0), "uv_udp_bind");
    struct sockaddr_in bound;
    int len = sizeof bound;
    check(uv_udp_getsockname(&udp, (struct sockaddr *)&bound, &len), "uv_udp_getsockname");
    return ntohs(bound.sin_port);
}

static void close_all(void)
{
    uv_close((uv_handle_t *)&udp, NULL);
    if (timer.loop) { /* the timer was initialised */
        uv_close((uv_handle_t *)&timer, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* One static receive buffer: plain mode uses one slot, mmsg mode all. */
static char recv_buffer[UV_SLOT * UV_MMSG_SLOTS];
static size_t recv_buffer_len = UV_SLOT;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(recv_buffer, (unsigned)recv_buffer_len);
}

/* ---- recv ---------------------------------------------------------------- */

static struct rx_stats rx;

static void on_rx(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)h;
    (void)buf;
    (void)flags; /* UV_UDP_MMSG_CHUNK / UV_UDP_MMSG_FREE: the buffer is static */
    if (nread > 0 || (nread == 0 && addr)) {
        rx_count(&rx, (size_t)nread);
    } else if (nread < 0) {
        die(false, "recv: %s", uv_strerror((int)nread));
    }
}

static void on_rx_tick(uv_timer_t *t)
{
    (void)t;
    if (rx_should_stop(&rx)) {
        uv_udp_recv_stop(&udp);
        uv_stop(&loop);
    }
}

static int cmd_recv(int argc, char **argv)
{
    rx_init(&rx, argc, argv);
    install_signal_handlers();
    bool mmsg = arg_long(argc, argv, "--mmsg", 0) != 0;
    int port = setup_udp(mmsg ? UV_UDP_RECVMMSG : 0);
    if (mmsg) {
        recv_buffer_len = sizeof recv_buffer;
    }
    int rcvbuf = BENCH_RCVBUF;
    check(uv_recv_buffer_size((uv_handle_t *)&udp, &rcvbuf), "uv_recv_buffer_size(set)");
    rcvbuf = 0; /* 0: read the current value */
    check(uv_recv_buffer_size((uv_handle_t *)&udp, &rcvbuf), "uv_recv_buffer_size(get)");
    check(uv_udp_recv_start(&udp, on_alloc, on_rx), "uv_udp_recv_start");
    check(uv_timer_init(&loop, &timer), "uv_timer_init");
    check(uv_timer_start(&timer, on_rx_tick, 10, 10), "uv_timer_start");
    announce_port(port);

    uv_run(&loop, UV_RUN_DEFAULT);
    char extra[64];
    snprintf(extra, sizeof extra, "rcvbuf=%d mmsg=%d", rcvbuf, uv_udp_using_recvmmsg(&udp));
    rx_report(&rx, extra);
    close_all();
    return 0;
}

/* ---- send ---------------------------------------------------------------- */

static int cmd_send(int argc, char **argv)
{
    struct tx_stats tx;
    tx_init(&tx, argc, argv);
    int port = (int)arg_long(argc, argv, "--port", 0);
    size_t size = (size_t)arg_long(argc, argv, "--size", 64);
    static char payload[BENCH_MAX_DGRAM];
    if (size > sizeof payload) {
        die(false, "--size too large");
    }
    setup_udp(0);
    struct sockaddr_in to;
    loopback_addr(&to, port);
    uv_buf_t buf = uv_buf_init(payload, (unsigned)size);

    tx_start(&tx);
    for (long i = 0; i < tx.attempts; i++) {
        if (i == tx.warmup) {
            tx_window_start(&tx);
        }
        int r = uv_udp_try_send(&udp, &buf, 1, (const struct sockaddr *)&to);
        if (r >= 0) {
            tx.ok++;
        } else if (r == UV_EAGAIN || r == UV_ENOBUFS || r == UV_EINTR) {
            tx.errors++;
        } else {
            check(r, "uv_udp_try_send");
        }
    }
    tx_report(&tx);
    close_all();
    return 0;
}

/* ---- echo ---------------------------------------------------------------- */

static void on_echo(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)flags;
    if (nread >= 0 && addr) {
        uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
        uv_udp_try_send(h, &out, 1, addr);
    }
}

static void on_stop_tick(uv_timer_t *t)
{
    (void)t;
    if (stop_requested) {
        uv_stop(&loop);
    }
}

static int cmd_echo(void)
{
    install_signal_handlers();
    int port = setup_udp(0);
    check(uv_udp_recv_start(&udp, on_alloc, on_echo), "uv_udp_recv_start");
    check(uv_timer_init(&loop, &timer), "uv_timer_init");
    check(uv_timer_start(&timer, on_stop_tick, 100, 100), "uv_timer_start");
    announce_port(port);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_udp_recv_stop(&udp);
    close_all();
    return 0;
}

/* ---- ping ---------------------------------------------------------------- */

static struct {
    struct rtt_stats rtt;
    struct sockaddr_in to;
    long i;          /* current round trip */
    uint64_t t0;     /* its start */
    long checked;    /* round trip seen by the last watchdog tick */
} ping;

static void ping_send(void)
{
    static char out[64];
    uv_buf_t buf = uv_buf_init(out, sizeof out);
    ping.t0 = now_ns();
    int r = uv_udp_try_send(&udp, &buf, 1, (const struct sockaddr *)&ping.to);
    if (r < 0) {
        die(false, "uv_udp_try_send: %s", uv_strerror(r));
    }
}

static void on_pong(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)h;
    (void)buf;
    (void)flags;
    if (nread < 0) {
        die(false, "recv: %s", uv_strerror((int)nread));
    }
    if (!addr) {
        return; /* nothing more to read */
    }
    rtt_record(&ping.rtt, ping.i, ping.t0);
    if (++ping.i < rtt_total(&ping.rtt)) {
        ping_send();
    } else {
        uv_stop(&loop);
    }
}

/* Every 5 s: fail if no round trip completed since the last tick. */
static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    if (ping.i == ping.checked) {
        die(false, "no reply for round trip %ld", ping.i);
    }
    ping.checked = ping.i;
}

static int cmd_ping(int argc, char **argv)
{
    rtt_init(&ping.rtt, argc, argv);
    loopback_addr(&ping.to, (int)arg_long(argc, argv, "--port", 0));
    ping.checked = -1;
    setup_udp(0);
    check(uv_udp_recv_start(&udp, on_alloc, on_pong), "uv_udp_recv_start");
    check(uv_timer_init(&loop, &timer), "uv_timer_init");
    check(uv_timer_start(&timer, on_watchdog, 5000, 5000), "uv_timer_start");
    ping_send();
    uv_run(&loop, UV_RUN_DEFAULT);
    rtt_report(&ping.rtt);
    uv_udp_recv_stop(&udp);
    close_all();
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "recv") == 0) {
        return cmd_recv(argc, argv);
    }
    if (strcmp(cmd, "send") == 0) {
        return cmd_send(argc, argv);
    }
    if (strcmp(cmd, "echo") == 0) {
        return cmd_echo();
    }
    if (strcmp(cmd, "ping") == 0) {
        return cmd_ping(argc, argv);
    }
    fprintf(stderr, "usage: bench_uv recv|send|echo|ping [--options]\n");
    return 2;
}
