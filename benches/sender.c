/*
 * The traffic side of the benchmarks, always a separate process from the
 * contender being measured.
 *
 *   sender blast --port P [--count N] [--size S] [--batch B] [--rate R] [--gso 1]
 *       Sends N datagrams of S bytes to 127.0.0.1:P with sendmmsg, B per call
 *       (default 64). With --rate R (datagrams/s) the bursts are paced so the
 *       average rate is R: used under callgrind, where nothing may be dropped.
 *       With --gso 1 it sends them instead as UDP_SEGMENT (GSO) writes of as
 *       many S-byte segments as one write takes (54 of 1200 B), one sendmsg
 *       each (paced per write with --rate): on loopback such a write reaches
 *       a UDP_GRO socket as one coalesced buffer, and is split into
 *       datagrams for any other socket.
 *       Prints "RESULT sent=N errors=E wall_s=T gso=0|1" (N in datagrams).
 *   sender sink
 *       Binds 127.0.0.1:0, prints "PORT n", drains everything with recvmmsg
 *       (no UDP_GRO, so every datagram is read on its own) until SIGTERM,
 *       then reads what is still queued and prints "RESULT received=N".
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define MAX_BATCH 256

/* Paced mode: sleeps until `*next`, then moves it on by `period` ns (no-op
 * for period 0). */
static void pace(uint64_t period, uint64_t *next)
{
    if (!period) {
        return;
    }
    while (now_ns() < *next) {
        struct timespec ts = {0, 200000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
    *next += period;
}

/* One UDP_SEGMENT write of `segments` segments of `size` bytes from
 * `payload` (contiguous, one iovec). Returns sendmsg's result. */
static ssize_t send_gso(int fd, const struct sockaddr_in *to, const char *payload, long size, long segments)
{
    struct iovec iov = {(void *)payload, (size_t)(size * segments)};
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {
        .msg_name = (void *)to,
        .msg_namelen = sizeof *to,
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    if (segments > 1) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)size;
        memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    }
    return sendmsg(fd, &msg, 0);
}

/* --gso 1: N datagrams as UDP_SEGMENT writes. Falls back to one datagram
 * per write (and says gso=0) when the kernel refuses the first one. */
static int blast_gso(int fd, const struct sockaddr_in *to, long count, long size, long rate)
{
    long per_write = gso_segments(size);
    /* Paced mode: one write of `per_write` every `period` ns. */
    uint64_t period = rate > 0 ? (uint64_t)(1e9 * (double)per_write / (double)rate) : 0;
    static char payload[65536];
    memset(payload, 'x', sizeof payload);
    bool gso = true;
    uint64_t t0 = now_ns(), next = t0;
    long sent = 0, errors = 0;
    while (sent < count) {
        pace(period, &next);
        long n = count - sent < per_write ? count - sent : per_write;
        if (send_gso(fd, to, payload, size, n) >= 0) {
            sent += n;
        } else if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
            errors++; /* the kernel said "later": retry the same write */
        } else if (gso && sent == 0 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT ||
                                        errno == EOPNOTSUPP)) {
            fprintf(stderr, "sender: UDP_SEGMENT refused (%s): sending one datagram per write\n",
                    strerror(errno));
            gso = false;
            per_write = 1;
            period = rate > 0 ? (uint64_t)(1e9 / (double)rate) : 0;
        } else {
            die(true, "sendmsg (UDP_SEGMENT)");
        }
    }
    double wall = (double)(now_ns() - t0) / 1e9;
    printf("RESULT sent=%ld errors=%ld wall_s=%.6f gso=%d\n", sent, errors, wall, gso ? 1 : 0);
    return 0;
}

static int blast(int argc, char **argv)
{
    int port = (int)arg_long(argc, argv, "--port", 0);
    long count = arg_long(argc, argv, "--count", 1000000);
    long size = arg_long(argc, argv, "--size", 64);
    long batch = arg_long(argc, argv, "--batch", 64);
    long rate = arg_long(argc, argv, "--rate", 0);
    bool gso = arg_long(argc, argv, "--gso", 0) != 0;
    if (port <= 0 || port > 65535 || size < 1 || size > BENCH_MAX_DGRAM || batch < 1 || batch > MAX_BATCH) {
        die(false, "blast: bad --port, --size or --batch");
    }

    int fd = udp_socket_bound(0);
    struct sockaddr_in to;
    loopback_addr(&to, port);
    if (gso) {
        return blast_gso(fd, &to, count, size, rate);
    }

    /* One payload and one header array, reused for every call. */
    static char payload[BENCH_MAX_DGRAM];
    memset(payload, 'x', sizeof payload);
    static struct iovec iov[MAX_BATCH];
    static struct mmsghdr msgs[MAX_BATCH];
    for (long i = 0; i < batch; i++) {
        iov[i].iov_base = payload;
        iov[i].iov_len = (size_t)size;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    /* Paced mode: one burst of `batch` every `period` ns. */
    uint64_t period = rate > 0 ? (uint64_t)(1e9 * (double)batch / (double)rate) : 0;
    uint64_t t0 = now_ns(), next = t0;
    long sent = 0, errors = 0;
    while (sent < count) {
        pace(period, &next);
        unsigned n = (unsigned)(count - sent < batch ? count - sent : batch);
        int r = sendmmsg(fd, msgs, n, 0);
        if (r > 0) {
            sent += r;
        } else if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
            errors++; /* the kernel said "later": retry the same batch */
        } else {
            die(true, "sendmmsg");
        }
    }
    double wall = (double)(now_ns() - t0) / 1e9;
    printf("RESULT sent=%ld errors=%ld wall_s=%.6f gso=0\n", sent, errors, wall);
    return 0;
}

static int sink(void)
{
    install_signal_handlers();
    int fd = udp_socket_bound(0);
    int rcvbuf = BENCH_RCVBUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    /* Wake up now and then to notice SIGTERM even if it raced the call. */
    struct timeval tv = {0, 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    announce_port(local_port(fd));

    static char bufs[64][BENCH_MAX_DGRAM];
    static struct iovec iov[64];
    static struct mmsghdr msgs[64];
    for (int i = 0; i < 64; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long received = 0;
    while (!stop_requested) {
        int r = recvmmsg(fd, msgs, 64, MSG_WAITFORONE, NULL);
        if (r > 0) {
            received += r;
        } else if (errno != EAGAIN && errno != EINTR) {
            die(true, "recvmmsg");
        }
    }
    /* The sender has finished before SIGTERM: count what is still queued. */
    for (;;) {
        int r = recvmmsg(fd, msgs, 64, MSG_DONTWAIT, NULL);
        if (r > 0) {
            received += r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    printf("RESULT received=%ld\n", received);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "blast") == 0) {
        return blast(argc, argv);
    }
    if (strcmp(cmd, "sink") == 0) {
        return sink();
    }
    fprintf(stderr, "usage: sender blast --port P [--count N --size S --batch B --rate R --gso 1] | sender sink\n");
    return 2;
}
