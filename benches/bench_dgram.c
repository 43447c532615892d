/*
 * libdgram as a benchmark contender, in either dispatch mode
 * (--dispatch host: callbacks run on this program's main thread, which polls
 * dgram_context_fd() and calls dgram_context_dispatch(); --dispatch run:
 * the same thread, looping in dgram_context_run(); --dispatch io:
 * callbacks run on the library's I/O thread while the main thread sleeps).
 *
 *   bench_dgram recv --dispatch D --count N [--sockets K] [--offload O]
 *       K sockets on one context (default 1), traffic goes to the last one.
 *   bench_dgram send --dispatch D --port P --count N --size S [--batch B] [--offload O]
 *       dgram_send() with a NULL callback in a tight loop; with --batch B,
 *       dgram_send_batch() of B datagrams per call, NULL callback.
 *   --offload gso|gro|off: dgram_set_offload() on the socket with
 *       DGRAM_OFFLOAD_GSO, DGRAM_OFFLOAD_GRO or 0 (without it the socket
 *       keeps the library's default). The flags it returns (those in effect)
 *       are checked against dgram_offload_support() and reported in the
 *       RESULT line as offload=<flags>.
 *   bench_dgram echo --dispatch D
 *   bench_dgram ping --dispatch D --port P --count N --warmup W
 *       Host dispatch: the client polls the context fd between its sends.
 *       I/O-thread dispatch: the message callback signals a condition
 *       variable the main thread waits on.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <dgram.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- shared by every subcommand ---------------------------------------- */

static bool host_dispatch; /* --dispatch host or run (true), or io (false) */
static bool host_run;      /* --dispatch run: the loop is dgram_context_run */

static dgram_context *make_context(int argc, char **argv)
{
    const char *mode = arg_str(argc, argv, "--dispatch", "host");
    dgram_context_options opts;
    memset(&opts, 0, sizeof opts);
    if (strcmp(mode, "host") == 0) {
        host_dispatch = true;
        opts.dispatch = DGRAM_DISPATCH_HOST;
    } else if (strcmp(mode, "run") == 0) {
        host_dispatch = true;
        host_run = true;
        opts.dispatch = DGRAM_DISPATCH_HOST;
    } else if (strcmp(mode, "io") == 0) {
        host_dispatch = false;
        opts.dispatch = DGRAM_DISPATCH_IO_THREAD;
    } else {
        die(false, "--dispatch must be host, run or io");
    }
    dgram_context *ctx = dgram_context_new(&opts);
    if (!ctx) {
        die(false, "dgram_context_new failed");
    }
    return ctx;
}

/* A udp4 socket bound to 127.0.0.1 on a port the OS picks. */
static dgram_socket *make_socket(dgram_context *ctx, dgram_message_cb on_message, void *userdata, int rcvbuf)
{
    dgram_socket_options opts;
    memset(&opts, 0, sizeof opts);
    opts.type = DGRAM_UDP4;
    opts.recv_buffer_size = rcvbuf;
    dgram_socket *s;
    int r = dgram_create_socket(ctx, &opts, on_message, userdata, &s);
    if (r != 0) {
        die(false, "dgram_create_socket: %s", dgram_err_name(r));
    }
    r = dgram_bind(s, 0, BENCH_ADDR, NULL);
    if (r != 0) {
        die(false, "dgram_bind: %s", dgram_err_name(r));
    }
    return s;
}

/* Applies --offload (if given) to `s`; returns the flags in effect as
 * dgram_set_offload reports them, or -1 when --offload was not given. */
static int apply_offload(dgram_socket *s, int argc, char **argv)
{
    const char *want = arg_str(argc, argv, "--offload", NULL);
    if (!want) {
        return -1;
    }
    uint32_t flags;
    if (strcmp(want, "gso") == 0) {
        flags = DGRAM_OFFLOAD_GSO;
    } else if (strcmp(want, "gro") == 0) {
        flags = DGRAM_OFFLOAD_GRO;
    } else if (strcmp(want, "off") == 0) {
        flags = 0;
    } else {
        die(false, "--offload must be gso, gro or off");
    }
    int r = dgram_set_offload(s, flags);
    if (r < 0) {
        die(false, "dgram_set_offload: %s", dgram_err_name(r));
    }
    /* What the kernel has must now be on, and nothing else. */
    uint32_t expect = flags & dgram_offload_support();
    if ((uint32_t)r != expect) {
        die(false, "dgram_set_offload(%s) returned %d, expected %u", want, r, expect);
    }
    if (expect != flags) {
        fprintf(stderr, "bench_dgram: this kernel lacks the offload asked for (%s): it stays off\n", want);
    }
    return r;
}

static int socket_port(const dgram_socket *s)
{
    dgram_addr addr;
    int r = dgram_address(s, &addr);
    if (r != 0) {
        die(false, "dgram_address: %s", dgram_err_name(r));
    }
    return addr.port;
}

/* Lets events happen for up to `timeout_ms`: in host dispatch, waits for the
 * context fd and dispatches what is queued (with --dispatch run, calls
 * dgram_context_run, whose wait is the context's own epoll_wait); in
 * I/O-thread dispatch, sleeps. Returns false on a timeout in host dispatch. */
static bool pump(dgram_context *ctx, int timeout_ms)
{
    if (host_run) {
        int n = dgram_context_run(ctx, timeout_ms);
        if (n < 0) {
            die(false, "dgram_context_run: %s", dgram_err_name(n));
        }
        return n > 0;
    }
    if (host_dispatch) {
        struct pollfd pfd = {.fd = dgram_context_fd(ctx), .events = POLLIN};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno != EINTR) {
            die(true, "poll");
        }
        int n = dgram_context_dispatch(ctx, 0);
        if (n < 0) {
            die(false, "dgram_context_dispatch: %s", dgram_err_name(n));
        }
        return r > 0;
    }
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return true;
}

/* ---- recv ---------------------------------------------------------------- */

static void on_rx(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo, void *userdata)
{
    (void)s;
    (void)msg;
    (void)rinfo;
    rx_count(userdata, len);
}

static int cmd_recv(int argc, char **argv)
{
    struct rx_stats rx;
    rx_init(&rx, argc, argv);
    install_signal_handlers();
    long nsockets = arg_long(argc, argv, "--sockets", 1);
    if (nsockets < 1) {
        die(false, "--sockets must be >= 1");
    }
    raise_nofile(nsockets + 64);

    dgram_context *ctx = make_context(argc, argv);
    dgram_socket **socks = calloc((size_t)nsockets, sizeof *socks);
    if (!socks) {
        die(false, "out of memory");
    }
    for (long i = 0; i < nsockets; i++) {
        socks[i] = make_socket(ctx, on_rx, &rx, BENCH_RCVBUF);
    }
    dgram_socket *target = socks[nsockets - 1];
    int offload = apply_offload(target, argc, argv);
    int rcvbuf = 0;
    socklen_t optlen = sizeof rcvbuf;
    getsockopt(dgram_fileno(target), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen);
    /* Let 'listening' events pass before the traffic starts. */
    pump(ctx, 0);
    announce_port(socket_port(target));

    while (!rx_should_stop(&rx)) {
        pump(ctx, 10);
    }
    /* Closing waits for a callback running on the I/O thread, so the counts
     * are final (and no longer written) when they are reported. */
    dgram_close(target, NULL);
    char extra[64];
    snprintf(extra, sizeof extra, "rcvbuf=%d offload=%d", rcvbuf, offload);
    rx_report(&rx, extra);

    for (long i = 0; i < nsockets; i++) {
        dgram_socket_free(socks[i]);
    }
    free(socks);
    dgram_context_free(ctx);
    return 0;
}

/* ---- send ---------------------------------------------------------------- */

/* Waits until every accepted send has been written and completed: nothing
 * queued in the socket, and nothing but the bound socket keeping the context
 * active (every completion delivered). At most 10 s. */
static void wait_sends_done(dgram_context *ctx, dgram_socket *s)
{
    uint64_t deadline = now_ns() + 10000000000u;
    while ((dgram_send_queue_count(s) > 0 || dgram_context_active(ctx) > 1) && now_ns() < deadline) {
        pump(ctx, 1);
    }
}

/* A send was refused (ENOBUFS/EAGAIN: the socket's queue is full): let the
 * queue drain a little, then go on with the next send. */
static void refused(dgram_context *ctx)
{
    if (host_dispatch) {
        dgram_context_dispatch(ctx, 0);
    }
    sched_yield();
}

/* --batch B: dgram_send_batch of B datagrams (separate buffers) per call.
 * A refused batch counts its datagrams as errors and is not retried, as a
 * refused dgram_send is not. */
static void send_batches(dgram_context *ctx, dgram_socket *s, struct tx_stats *tx, int port, size_t size,
                         long batch)
{
    uint8_t *payload = calloc((size_t)batch, size ? size : 1);
    dgram_buf *msgs = calloc((size_t)batch, sizeof *msgs);
    if (!payload || !msgs) {
        die(false, "out of memory");
    }
    for (long i = 0; i < batch; i++) {
        msgs[i].base = payload + (size_t)i * size;
        msgs[i].len = size;
    }
    bool window = false;
    long undispatched = 0;
    for (long done = 0; done < tx->attempts;) {
        if (!window && done >= tx->warmup) {
            tx_window_start(tx);
            window = true;
        }
        long n = tx->attempts - done < batch ? tx->attempts - done : batch;
        int r = dgram_send_batch(s, msgs, (size_t)n, port, BENCH_ADDR, NULL, NULL);
        if (r == 0) {
            tx->ok += n;
        } else if (r == DGRAM_ENOBUFS || r == DGRAM_EAGAIN) {
            tx->errors += n;
            refused(ctx);
        } else {
            die(false, "dgram_send_batch: %s", dgram_err_name(r));
        }
        done += n;
        /* A host loop runs between calls (every 256 datagrams, as for dgram_send). */
        undispatched += n;
        if (host_dispatch && undispatched >= 256) {
            dgram_context_dispatch(ctx, 0);
            undispatched = 0;
        }
    }
    free(msgs);
    free(payload);
}

static int cmd_send(int argc, char **argv)
{
    struct tx_stats tx;
    tx_init(&tx, argc, argv);
    int port = (int)arg_long(argc, argv, "--port", 0);
    size_t size = (size_t)arg_long(argc, argv, "--size", 64);
    long batch = arg_long(argc, argv, "--batch", 0);
    static uint8_t payload[BENCH_MAX_DGRAM];
    if (size > sizeof payload) {
        die(false, "--size too large");
    }
    if (batch < 0 || batch > 1024) {
        die(false, "--batch must be 0 (dgram_send) to 1024 (dgram_send_batch's limit)");
    }
    dgram_context *ctx = make_context(argc, argv);
    dgram_socket *s = make_socket(ctx, NULL, NULL, 0);
    int offload = apply_offload(s, argc, argv);
    pump(ctx, 0);

    tx_start(&tx);
    if (batch > 0) {
        send_batches(ctx, s, &tx, port, size, batch);
    } else {
        for (long i = 0; i < tx.attempts; i++) {
            if (i == tx.warmup) {
                tx_window_start(&tx);
            }
            int r = dgram_send(s, payload, size, port, BENCH_ADDR, NULL, NULL);
            if (r == 0) {
                tx.ok++;
            } else if (r == DGRAM_ENOBUFS || r == DGRAM_EAGAIN) {
                /* Queue full: count it, let the queue drain a little, go on. */
                tx.errors++;
                refused(ctx);
            } else {
                die(false, "dgram_send: %s", dgram_err_name(r));
            }
            /* A host loop would run between sends; completions (even without a
             * callback) wait in the queue until dispatched. */
            if (host_dispatch && (i & 255) == 255) {
                dgram_context_dispatch(ctx, 0);
            }
        }
    }
    /* The sends are done when every datagram is written and its completion
     * delivered: the clock stops there. */
    wait_sends_done(ctx, s);
    char extra[32];
    snprintf(extra, sizeof extra, "offload=%d", offload);
    tx_report_extra(&tx, extra);
    dgram_socket_free(s);
    dgram_context_free(ctx);
    return 0;
}

/* ---- echo ---------------------------------------------------------------- */

static void on_echo(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo, void *userdata)
{
    (void)userdata;
    dgram_send(s, msg, len, rinfo->port, rinfo->address, NULL, NULL);
}

static int cmd_echo(int argc, char **argv)
{
    install_signal_handlers();
    dgram_context *ctx = make_context(argc, argv);
    dgram_socket *s = make_socket(ctx, on_echo, NULL, 0);
    announce_port(socket_port(s));
    while (!stop_requested) {
        pump(ctx, 100);
    }
    dgram_socket_free(s);
    dgram_context_free(ctx);
    return 0;
}

/* ---- ping ---------------------------------------------------------------- */

/* The reply flag: set by the message callback, cleared by the client. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool got;
} reply = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static void on_reply(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo, void *userdata)
{
    (void)s;
    (void)msg;
    (void)len;
    (void)rinfo;
    (void)userdata;
    if (host_dispatch) {
        reply.got = true; /* same thread as the waiting client */
        return;
    }
    pthread_mutex_lock(&reply.lock);
    reply.got = true;
    pthread_cond_signal(&reply.cond);
    pthread_mutex_unlock(&reply.lock);
}

/* Waits for the reply flag; false after 5 s without it. */
static bool wait_reply(dgram_context *ctx)
{
    if (host_dispatch) {
        while (!reply.got) {
            if (!pump(ctx, 5000) && !reply.got) {
                return false;
            }
        }
        reply.got = false;
        return true;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&reply.lock);
    int r = 0;
    while (!reply.got && r == 0) {
        r = pthread_cond_timedwait(&reply.cond, &reply.lock, &deadline);
    }
    bool got = reply.got;
    reply.got = false;
    pthread_mutex_unlock(&reply.lock);
    return got;
}

static int cmd_ping(int argc, char **argv)
{
    struct rtt_stats rtt;
    rtt_init(&rtt, argc, argv);
    int port = (int)arg_long(argc, argv, "--port", 0);
    dgram_context *ctx = make_context(argc, argv);
    dgram_socket *s = make_socket(ctx, on_reply, NULL, 0);
    pump(ctx, 0);
    uint8_t out[64] = {0};

    for (long i = 0; i < rtt_total(&rtt); i++) {
        uint64_t t0 = now_ns();
        int r = dgram_send(s, out, sizeof out, port, BENCH_ADDR, NULL, NULL);
        if (r != 0) {
            die(false, "dgram_send: %s", dgram_err_name(r));
        }
        if (!wait_reply(ctx)) {
            die(false, "no reply for round trip %ld", i);
        }
        rtt_record(&rtt, i, t0);
    }
    rtt_report(&rtt);
    dgram_socket_free(s);
    dgram_context_free(ctx);
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
        return cmd_echo(argc, argv);
    }
    if (strcmp(cmd, "ping") == 0) {
        return cmd_ping(argc, argv);
    }
    fprintf(stderr, "usage: bench_dgram recv|send|echo|ping --dispatch host|io [--options]\n");
    return 2;
}
