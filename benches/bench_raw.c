/*
 * The raw-socket baselines: what the kernel allows with no library at all.
 *
 *   bench_raw recv --count N       blocking recvmmsg loop (64 per call): the ceiling
 *   bench_raw send --port P --count N --size S   sendto loop
 *   bench_raw echo                 blocking recvfrom/sendto echo server
 *   bench_raw ping --port P --count N --warmup W  blocking sendto/recv client
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define BATCH 64

/* Sets a receive timeout, so blocking receives return to check the stop rules. */
static void set_rcvtimeo(int fd, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        die(true, "SO_RCVTIMEO");
    }
}

static int cmd_recv(int argc, char **argv)
{
    struct rx_stats rx;
    rx_init(&rx, argc, argv);
    install_signal_handlers();

    int fd = udp_socket_bound(0);
    int rcvbuf = BENCH_RCVBUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    socklen_t optlen = sizeof rcvbuf;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen);
    set_rcvtimeo(fd, 10);

    static char bufs[BATCH][BENCH_MAX_DGRAM];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    announce_port(local_port(fd));

    while (!rx_should_stop(&rx)) {
        /* MSG_WAITFORONE: block for the first datagram, then take what is there. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            die(true, "recvmmsg");
        }
        for (int i = 0; i < n; i++) {
            rx_count(&rx, msgs[i].msg_len);
        }
    }
    char extra[64];
    snprintf(extra, sizeof extra, "rcvbuf=%d", rcvbuf);
    rx_report(&rx, extra);
    return 0;
}

static int cmd_send(int argc, char **argv)
{
    struct tx_stats tx;
    tx_init(&tx, argc, argv);
    int port = (int)arg_long(argc, argv, "--port", 0);
    size_t size = (size_t)arg_long(argc, argv, "--size", 64);
    if (size > BENCH_MAX_DGRAM) {
        die(false, "--size too large");
    }
    int fd = udp_socket_bound(0);
    struct sockaddr_in to;
    loopback_addr(&to, port);
    static char payload[BENCH_MAX_DGRAM];

    tx_start(&tx);
    for (long i = 0; i < tx.attempts; i++) {
        if (i == tx.warmup) {
            tx_window_start(&tx);
        }
        if (sendto(fd, payload, size, 0, (struct sockaddr *)&to, sizeof to) >= 0) {
            tx.ok++;
        } else if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
            tx.errors++;
        } else {
            die(true, "sendto");
        }
    }
    tx_report(&tx);
    return 0;
}

static int cmd_echo(void)
{
    install_signal_handlers();
    int fd = udp_socket_bound(0);
    set_rcvtimeo(fd, 100);
    announce_port(local_port(fd));
    char buf[BENCH_MAX_DGRAM];
    while (!stop_requested) {
        struct sockaddr_in from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
        if (n >= 0) {
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen);
        }
    }
    return 0;
}

static int cmd_ping(int argc, char **argv)
{
    struct rtt_stats rtt;
    rtt_init(&rtt, argc, argv);
    int port = (int)arg_long(argc, argv, "--port", 0);
    int fd = udp_socket_bound(0);
    set_rcvtimeo(fd, 5000);
    struct sockaddr_in to;
    loopback_addr(&to, port);
    char out[64] = {0}, in[BENCH_MAX_DGRAM];

    for (long i = 0; i < rtt_total(&rtt); i++) {
        uint64_t t0 = now_ns();
        if (sendto(fd, out, sizeof out, 0, (struct sockaddr *)&to, sizeof to) < 0) {
            die(true, "sendto");
        }
        if (recv(fd, in, sizeof in, 0) < 0) {
            die(true, "recv (round trip %ld)", i);
        }
        rtt_record(&rtt, i, t0);
    }
    rtt_report(&rtt);
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
    fprintf(stderr, "usage: bench_raw recv|send|echo|ping [--options]\n");
    return 2;
}
