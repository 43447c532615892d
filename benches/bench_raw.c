/*
 * The raw-socket baselines: what the kernel allows with no library at all.
 *
 *   bench_raw recv --count N [--gro 1]
 *       blocking recvmmsg loop (64 per call): the ceiling. With --gro 1 the
 *       socket has UDP_GRO and 64 KiB buffers, and each coalesced buffer is
 *       counted as the datagrams it holds (its UDP_GRO cmsg gives their size).
 *   bench_raw send --port P --count N --size S   sendto loop
 *   bench_raw send --port P --count N --size S --batch B [--gso 1]
 *       sendmmsg of B datagrams per call (each its own buffer and iovec);
 *       with --gso 1 each run of up to 54 (1200 B) of them is one message
 *       with a UDP_SEGMENT cmsg, as dgram_send_batch does.
 *   bench_raw echo                 blocking recvfrom/sendto echo server
 *   bench_raw ping --port P --count N --warmup W  blocking sendto/recv client
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

#define BATCH 64

/* Sets a receive timeout, so blocking receives return to check the stop rules. */
static void set_rcvtimeo(int fd, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        die(true, "SO_RCVTIMEO");
    }
}

/* Datagrams in one received buffer of `len` bytes: a UDP_GRO buffer (its
 * cmsg gives the segment size) holds ceil(len / size), the last one may be
 * shorter; anything else is one datagram. Counts each with rx_count. */
static void count_buffer(struct rx_stats *rx, struct msghdr *hdr, size_t len)
{
    int segment = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(hdr); cm; cm = CMSG_NXTHDR(hdr, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
            memcpy(&segment, CMSG_DATA(cm), sizeof segment);
        }
    }
    if (segment <= 0 || (size_t)segment >= len) {
        rx_count(rx, len);
        return;
    }
    for (size_t off = 0; off < len; off += (size_t)segment) {
        rx_count(rx, len - off < (size_t)segment ? len - off : (size_t)segment);
    }
}

static int cmd_recv(int argc, char **argv)
{
    struct rx_stats rx;
    rx_init(&rx, argc, argv);
    install_signal_handlers();
    bool gro = arg_long(argc, argv, "--gro", 0) != 0;

    int fd = udp_socket_bound(0);
    int rcvbuf = BENCH_RCVBUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    socklen_t optlen = sizeof rcvbuf;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen);
    set_rcvtimeo(fd, 10);
    int one = 1;
    if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) != 0) {
        fprintf(stderr, "bench_raw: UDP_GRO not available (%s)\n", strerror(errno));
        gro = false;
    }

    /* 64 slots: 2 KiB each, or 64 KiB each with UDP_GRO (4 MiB, only
     * touched pages resident). */
    size_t slot = gro ? BENCH_GRO_BUF : BENCH_MAX_DGRAM;
    char *bufs = malloc(BATCH * slot);
    if (!bufs) {
        die(false, "out of memory");
    }
    union control {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    };
    static union control controls[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs + (size_t)i * slot;
        iov[i].iov_len = slot;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    announce_port(local_port(fd));

    uint64_t buffers = 0; /* buffers read: datagrams, or coalesced GRO buffers */
    while (!rx_should_stop(&rx)) {
        if (gro) {
            for (int i = 0; i < BATCH; i++) {
                msgs[i].msg_hdr.msg_control = controls[i].buf;
                msgs[i].msg_hdr.msg_controllen = sizeof controls[i].buf;
            }
        }
        /* MSG_WAITFORONE: block for the first datagram, then take what is there. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            die(true, "recvmmsg");
        }
        for (int i = 0; i < n; i++) {
            if (gro) {
                count_buffer(&rx, &msgs[i].msg_hdr, msgs[i].msg_len);
            } else {
                rx_count(&rx, msgs[i].msg_len);
            }
        }
        buffers += n > 0 ? (uint64_t)n : 0;
    }
    char extra[96];
    snprintf(extra, sizeof extra, "rcvbuf=%d offload=%d buffers=%llu", rcvbuf, gro ? 2 : 0,
             (unsigned long long)buffers);
    rx_report(&rx, extra);
    free(bufs);
    return 0;
}

/* --batch B: sendmmsg of B datagrams per call, with --gso 1 as UDP_SEGMENT
 * runs. A refused call (ENOBUFS/EAGAIN) counts its unsent datagrams as
 * errors and the loop goes on, as the sendto loop does. */
static int cmd_send_batch(int argc, char **argv, long batch)
{
    struct tx_stats tx;
    tx_init(&tx, argc, argv);
    int port = (int)arg_long(argc, argv, "--port", 0);
    size_t size = (size_t)arg_long(argc, argv, "--size", 64);
    bool gso = arg_long(argc, argv, "--gso", 0) != 0;
    if (size > BENCH_MAX_DGRAM || size == 0 || batch < 1 || batch > 1024) {
        die(false, "bad --size or --batch");
    }
    int fd = udp_socket_bound(0);
    struct sockaddr_in to;
    loopback_addr(&to, port);
    /* Probe: the kernel has UDP_SEGMENT when the socket option exists. */
    int seg_opt = (int)size;
    if (gso && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg_opt, sizeof seg_opt) != 0) {
        fprintf(stderr, "bench_raw: UDP_SEGMENT not available (%s)\n", strerror(errno));
        gso = false;
    }
    if (gso) {
        seg_opt = 0; /* segment only where a cmsg says so */
        setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg_opt, sizeof seg_opt);
    }

    /* The batch: B separate buffers (as a caller's datagrams are), one
     * iovec each, grouped into messages of `per_msg` datagrams. */
    long per_msg = gso ? gso_segments((long)size) : 1;
    long nmsgs = (batch + per_msg - 1) / per_msg;
    char *payload = calloc((size_t)batch, size);
    struct iovec *iov = calloc((size_t)batch, sizeof *iov);
    struct mmsghdr *msgs = calloc((size_t)nmsgs, sizeof *msgs);
    union control {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } *controls = calloc((size_t)nmsgs, sizeof *controls);
    if (!payload || !iov || !msgs || !controls) {
        die(false, "out of memory");
    }
    for (long i = 0; i < batch; i++) {
        iov[i].iov_base = payload + (size_t)i * size;
        iov[i].iov_len = size;
    }
    for (long m = 0; m < nmsgs; m++) {
        long first = m * per_msg;
        long len = batch - first < per_msg ? batch - first : per_msg;
        struct msghdr *hdr = &msgs[m].msg_hdr;
        hdr->msg_name = &to;
        hdr->msg_namelen = sizeof to;
        hdr->msg_iov = &iov[first];
        hdr->msg_iovlen = (size_t)len;
        if (len > 1) {
            hdr->msg_control = controls[m].buf;
            hdr->msg_controllen = sizeof controls[m].buf;
            struct cmsghdr *cm = CMSG_FIRSTHDR(hdr);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)size;
            memcpy(CMSG_DATA(cm), &seg, sizeof seg);
        }
    }

    tx_start(&tx);
    bool window = false;
    for (long done = 0; done < tx.attempts;) {
        if (!window && done >= tx.warmup) {
            tx_window_start(&tx);
            window = true;
        }
        /* The last call of the run may be a partial batch: fewer messages,
         * the last of them shorter (restored afterwards). */
        long want = tx.attempts - done < batch ? tx.attempts - done : batch;
        long m_count = (want + per_msg - 1) / per_msg;
        long last_len = want - (m_count - 1) * per_msg;
        size_t saved_iovlen = msgs[m_count - 1].msg_hdr.msg_iovlen;
        msgs[m_count - 1].msg_hdr.msg_iovlen = (size_t)last_len;
        long m = 0;
        while (m < m_count) {
            int r = sendmmsg(fd, msgs + m, (unsigned)(m_count - m), 0);
            if (r > 0) {
                for (int k = 0; k < r; k++, m++) {
                    tx.ok += (long)msgs[m].msg_hdr.msg_iovlen;
                }
            } else if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
                for (; m < m_count; m++) {
                    tx.errors += (long)msgs[m].msg_hdr.msg_iovlen;
                }
            } else {
                die(true, "sendmmsg%s", gso ? " (UDP_SEGMENT)" : "");
            }
        }
        msgs[m_count - 1].msg_hdr.msg_iovlen = saved_iovlen;
        done += want;
    }
    char extra[32];
    snprintf(extra, sizeof extra, "offload=%d", gso ? 1 : 0);
    tx_report_extra(&tx, extra);
    free(controls);
    free(msgs);
    free(iov);
    free(payload);
    return 0;
}

static int cmd_send(int argc, char **argv)
{
    long batch = arg_long(argc, argv, "--batch", 0);
    if (batch > 0) {
        return cmd_send_batch(argc, argv, batch);
    }
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
