/*
 * The traffic side of the benchmarks, always a separate process from the
 * contender being measured.
 *
 *   sender blast --port P [--count N] [--size S] [--batch B] [--rate R]
 *       Sends N datagrams of S bytes to 127.0.0.1:P with sendmmsg, B per call
 *       (default 64). With --rate R (datagrams/s) the bursts are paced so the
 *       average rate is R: used under callgrind, where nothing may be dropped.
 *       Prints "RESULT sent=N ...".
 *   sender sink
 *       Binds 127.0.0.1:0, prints "PORT n", drains everything with recvmmsg
 *       until SIGTERM, then prints "RESULT received=N".
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

static int blast(int argc, char **argv)
{
    int port = (int)arg_long(argc, argv, "--port", 0);
    long count = arg_long(argc, argv, "--count", 1000000);
    long size = arg_long(argc, argv, "--size", 64);
    long batch = arg_long(argc, argv, "--batch", 64);
    long rate = arg_long(argc, argv, "--rate", 0);
    if (port <= 0 || port > 65535 || size < 1 || size > BENCH_MAX_DGRAM || batch < 1 || batch > MAX_BATCH) {
        die(false, "blast: bad --port, --size or --batch");
    }

    int fd = udp_socket_bound(0);
    struct sockaddr_in to;
    loopback_addr(&to, port);

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
        if (period) {
            while (now_ns() < next) {
                struct timespec ts = {0, 200000}; /* 0.2 ms */
                nanosleep(&ts, NULL);
            }
            next += period;
        }
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
    printf("RESULT sent=%ld errors=%ld wall_s=%.6f\n", sent, errors, wall);
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
    fprintf(stderr, "usage: sender blast --port P [--count N --size S --batch B --rate R] | sender sink\n");
    return 2;
}
