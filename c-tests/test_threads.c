/*
 * Threads: several host threads sending on one shared socket (every
 * datagram arrives, each thread's in its own order), dgram_close from one
 * thread while another dispatches the socket's datagrams (no 'message' after
 * close returns), I/O-thread dispatch with sends from host threads and from
 * inside callbacks, and dgram_context_free from another thread while the I/O
 * thread is delivering.
 *
 * Only 127.0.0.1 is used, on ports the OS picks.
 */
#include "recorder.h"
#include "test_runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#define NTHREADS 4
#define PER_THREAD 500
#define TOTAL (NTHREADS * PER_THREAD)

/* One datagram: which thread sent it, its number in that thread, and a
 * pattern derived from both so that a corrupted datagram is noticed. */
typedef struct {
    uint32_t thread;
    uint32_t seq;
    uint8_t pattern[56];
} numbered;

static void fill(numbered *m, uint32_t thread, uint32_t seq) {
    memset(m, 0, sizeof *m);
    m->thread = thread;
    m->seq = seq;
    for (size_t i = 0; i < sizeof m->pattern; i++)
        m->pattern[i] = (uint8_t)(thread * 131 + seq * 7 + i);
}

static int well_formed(const uint8_t *msg, size_t len, numbered *out) {
    if (len != sizeof *out)
        return 0;
    memcpy(out, msg, sizeof *out);
    if (out->thread >= NTHREADS || out->seq >= PER_THREAD)
        return 0;
    numbered expect;
    fill(&expect, out->thread, out->seq);
    return memcmp(&expect, out, sizeof expect) == 0;
}

/* The kernel's count of UDP datagrams dropped for a full receive buffer,
 * to tell a kernel drop from a library one in a failure message. */
static long long udp_rcvbuf_errors(void) {
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f)
        return -1;
    char head[1024], vals[1024];
    long long result = -1;
    while (fgets(head, sizeof head, f)) {
        if (strncmp(head, "Udp:", 4) != 0 || !fgets(vals, sizeof vals, f))
            continue;
        char *hs = NULL, *vs = NULL;
        char *h = strtok_r(head, " \n", &hs);
        char *v = strtok_r(vals, " \n", &vs);
        while (h && v) {
            if (strcmp(h, "RcvbufErrors") == 0)
                result = atoll(v);
            h = strtok_r(NULL, " \n", &hs);
            v = strtok_r(NULL, " \n", &vs);
        }
        break;
    }
    fclose(f);
    return result;
}

/* Set in the test's own sender threads: no callback may run there. */
static __thread int tl_sender_thread;

/* What a receiver saw: per sending thread, the next sequence number due. */
typedef struct {
    int total;
    int per_thread[NTHREADS];
    uint32_t next[NTHREADS];
    int malformed;
    int out_of_order;
    char first_problem[160];
    int on_sender_thread;
    thread_check threads;
} receiver_state;

static void receiver_init(receiver_state *r) {
    memset(r, 0, sizeof *r);
    thread_check_init(&r->threads);
}

static void receiver_note(receiver_state *r, const uint8_t *msg, size_t len) {
    numbered m;
    thread_check_note(&r->threads);
    if (tl_sender_thread)
        test_add(&r->on_sender_thread, 1);
    if (!well_formed(msg, len, &m)) {
        if (!r->malformed && !r->out_of_order)
            snprintf(r->first_problem, sizeof r->first_problem,
                     "malformed datagram of %zu bytes after %d good ones", len, r->total);
        r->malformed++;
    } else {
        if (m.seq != r->next[m.thread]) {
            if (!r->malformed && !r->out_of_order)
                snprintf(r->first_problem, sizeof r->first_problem,
                         "thread %u: got #%u, expected #%u (%d received so far)", m.thread,
                         m.seq, r->next[m.thread], r->total);
            r->out_of_order++;
        }
        r->next[m.thread] = m.seq + 1;
        r->per_thread[m.thread]++;
    }
    test_add(&r->total, 1);
}

static void check_receiver(const receiver_state *r, int per_thread, long long drops_before) {
    if (r->malformed || r->out_of_order)
        FAIL("%s; %d malformed, %d out of order or missing; kernel receive-buffer drops "
             "during the test: %lld",
             r->first_problem, r->malformed, r->out_of_order,
             udp_rcvbuf_errors() - drops_before);
    for (int t = 0; t < NTHREADS; t++) {
        CHECK_EQ(r->per_thread[t], per_thread);
        CHECK_EQ(r->next[t], per_thread);
    }
    CHECK_EQ(r->total, NTHREADS * per_thread);
    CHECK_EQ(r->threads.mismatch, 0);
    CHECK_EQ(r->on_sender_thread, 0);
}

/* A udp4 socket with a 4 MiB receive buffer, bound to 127.0.0.1. */
static dgram_socket *make_receiver(dgram_context *ctx, dgram_message_cb cb, void *ud) {
    dgram_socket_options o = test_opts(DGRAM_UDP4);
    o.recv_buffer_size = 4 << 20;
    dgram_socket *s = test_socket_with(ctx, &o, cb, ud);
    test_bind(s, "127.0.0.1");
    return s;
}

/* make_receiver for a socket whose every handler records into `r`, with
 * `action` and `user` set before bind: under I/O-thread dispatch its
 * callbacks may run from then on. */
static dgram_socket *make_rec_receiver(dgram_context *ctx, sock_rec *r, sock_rec_action action,
                                       void *user) {
    dgram_socket_options o = test_opts(DGRAM_UDP4);
    o.recv_buffer_size = 4 << 20;
    dgram_socket *s = rec_socket_with(ctx, &o, r);
    rec_set_action(r, action, user);
    test_bind(s, "127.0.0.1");
    return s;
}

/* How many datagrams may be in flight towards `s` without any risk of the
 * kernel dropping one: its receive buffer (as the kernel reports it) over a
 * generous 2 KiB per small datagram, at most 512. On this machine the 4 MiB
 * asked for is granted; where net.core.rmem_max is lower, the window shrinks
 * instead of the check weakening. */
static int flow_window(dgram_socket *s) {
    int window = test_sockopt_int(s, SOL_SOCKET, SO_RCVBUF) / 2048;
    if (window > 512)
        window = 512;
    CHECK(window >= 16);
    return window;
}

/* ---- four threads, one socket ---------------------------------------------- */

/* Per sending thread: how its send callbacks went. */
typedef struct {
    int ok, failed, wrong_length, wrong_order;
    uint32_t next; /* send callbacks of one thread also come in its order */
} send_tally;

typedef struct {
    send_tally *tally;
    uint32_t seq;
} send_token;

/* One sender thread: sends `count` numbered datagrams (thread number `id`)
 * on `sock` to 127.0.0.1:port, the i-th with callback `cb` and send_data
 * &tokens[i]. */
typedef struct {
    int id;
    dgram_socket *sock;
    uint16_t port;
    int count;
    dgram_send_cb cb;
    send_token *tokens; /* `count` of them, this thread's */
    send_tally *tally;  /* this thread's */
    int first_error; /* atomic: the main thread may report it before the join */
    int sent;        /* atomic, as first_error */
    /* Flow control, when set: at most `window` datagrams in flight. */
    const int *received;
    int *sent_total;
    int window;
} sender_arg;

static send_token tokens[NTHREADS * PER_THREAD];
/* The socket whose 'listening' must come before any send callback, when
 * the case checks that (its sends bind it implicitly). */
static const sock_rec *g_listening;
static int send_cb_before_listening;
static thread_check sender_cb_threads;

static void shared_on_send(dgram_socket *s, const dgram_error *err, size_t len, void *data) {
    (void)s;
    send_token *tok = data;
    thread_check_note(&sender_cb_threads);
    if (g_listening && !test_load(&g_listening->listen_p))
        send_cb_before_listening++;
    if (len != sizeof(numbered))
        test_add(&tok->tally->wrong_length, 1);
    if (tok->seq != tok->tally->next)
        test_add(&tok->tally->wrong_order, 1);
    tok->tally->next = tok->seq + 1;
    test_add(err ? &tok->tally->failed : &tok->tally->ok, 1);
}

static void *sender_main(void *p) {
    sender_arg *a = p;
    tl_sender_thread = 1;
    for (uint32_t i = 0; i < (uint32_t)a->count; i++) {
        if (a->window) {
            long long deadline = test_now_ms() + TEST_WAIT_MS;
            while (test_load(a->sent_total) - test_load(a->received) >= a->window) {
                if (test_now_ms() > deadline)
                    return NULL; /* the main thread reports the shortfall */
                test_sleep_ms(1);
            }
        }
        numbered m;
        fill(&m, (uint32_t)a->id, i);
        a->tokens[i].tally = a->tally;
        a->tokens[i].seq = i;
        int rc = dgram_send(a->sock, &m, sizeof m, a->port, "127.0.0.1", a->cb, &a->tokens[i]);
        if (rc != 0) {
            test_store(&a->first_error, rc);
            return NULL;
        }
        test_add(&a->sent, 1);
        test_add(a->sent_total, 1);
    }
    return NULL;
}

/* Starts NTHREADS sender threads: thread t gets a copy of `common` with id
 * t, tally &tallies[t] and the tokens from all_tokens[t * common->count]. */
static void start_senders(sender_arg args[NTHREADS], pthread_t th[NTHREADS],
                          const sender_arg *common, send_tally *tallies, send_token *all_tokens) {
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = *common;
        args[t].id = t;
        args[t].tally = &tallies[t];
        args[t].tokens = &all_tokens[t * common->count];
        CHECK(pthread_create(&th[t], NULL, sender_main, &args[t]) == 0);
    }
}

static void shared_on_message(dgram_socket *s, const uint8_t *msg, size_t len,
                              const dgram_addr *rinfo, void *ud) {
    (void)s;
    (void)rinfo;
    receiver_note(ud, msg, len);
}

static void test_four_threads_one_socket(void) {
    long long drops_before = udp_rcvbuf_errors();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static receiver_state recv;
    receiver_init(&recv);
    thread_check_init(&sender_cb_threads);
    dgram_socket *r = make_receiver(ctx, shared_on_message, &recv);
    uint16_t port = test_port(r);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);

    /* The shared socket is bound implicitly by whichever thread sends first. */
    static sock_rec srec;
    dgram_socket *s = rec_socket_with(ctx, NULL, &srec);
    g_listening = &srec;

    static send_tally tally[NTHREADS];
    memset(tally, 0, sizeof tally);
    sender_arg args[NTHREADS];
    pthread_t th[NTHREADS];
    int sent_total = 0;
    sender_arg common = {.sock = s, .port = port, .count = PER_THREAD, .cb = shared_on_send,
                         .received = &recv.total, .sent_total = &sent_total,
                         .window = flow_window(r)};
    start_senders(args, th, &common, tally, tokens);
    /* Dispatch on this thread while they send. */
    long long deadline = test_now_ms() + 4 * TEST_WAIT_MS;
    int sends_done = 0;
    while (test_load(&recv.total) < TOTAL || sends_done < TOTAL) {
        int rc = dgram_context_run(ctx, 20);
        CHECK(rc >= 0);
        sends_done = 0;
        for (int t = 0; t < NTHREADS; t++)
            sends_done += tally[t].ok + tally[t].failed;
        if (test_now_ms() > deadline) {
            for (int t = 0; t < NTHREADS; t++)
                fprintf(stderr, "thread %d: sent %d (error %s), received %d, next due #%u\n",
                        t, test_load(&args[t].sent),
                        dgram_err_name(test_load(&args[t].first_error)), recv.per_thread[t],
                        recv.next[t]);
            check_receiver(&recv, PER_THREAD, drops_before);
            FAIL("timed out: received %d of %d, %d send callbacks", recv.total, TOTAL,
                 sends_done);
        }
    }
    for (int t = 0; t < NTHREADS; t++) {
        CHECK(pthread_join(th[t], NULL) == 0);
        CHECK_CODE(args[t].first_error, 0);
        CHECK_EQ(args[t].sent, PER_THREAD);
    }
    check_receiver(&recv, PER_THREAD, drops_before);
    for (int t = 0; t < NTHREADS; t++) {
        CHECK_EQ(tally[t].ok, PER_THREAD);
        CHECK_EQ(tally[t].failed, 0);
        CHECK_EQ(tally[t].wrong_length, 0);
        CHECK_EQ(tally[t].wrong_order, 0);
    }
    /* One implicit bind, one 'listening', before any send callback. */
    CHECK_EQ(srec.listen_p, 1);
    CHECK_EQ(send_cb_before_listening, 0);
    /* Host dispatch: every callback ran here. */
    CHECK(pthread_equal(recv.threads.owner, pthread_self()));
    CHECK(pthread_equal(sender_cb_threads.owner, pthread_self()));
    CHECK_EQ(sender_cb_threads.mismatch, 0);

    /* Every datagram came from the shared socket's one port. */
    test_run_for(ctx, 50);
    CHECK_EQ(recv.total, TOTAL);
    /* The shared socket saw its 'listening' and nothing else. */
    CHECK_STR(srec.log.text, "l");
    CHECK_EQ(srec.bad, 0);
    dgram_socket_free(s);
    dgram_socket_free(r);
    CHECK_EQ(dgram_context_active(ctx), 0);
    test_context_finish(ctx);
}

/* ---- close from a thread while another dispatches --------------------------- */

/* What the race needs beyond the receiver's sock_rec: its `user`, with
 * race_action as its `action`. */
typedef struct {
    int closed_flag;    /* set right after dgram_close returned; atomic */
    int after_close;    /* message callbacks that ran with the flag set; atomic */
    int close_rc;       /* read after the join */
    int close_on_wrong_thread;
    pthread_t dispatcher;
} close_race;

static void race_action(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    close_race *c = r->user;
    if (letter == 'M' && test_load(&c->closed_flag))
        test_add(&c->after_close, 1);
    if ((letter == 'c' || letter == 'C') && !pthread_equal(c->dispatcher, pthread_self()))
        test_add(&c->close_on_wrong_thread, 1);
}

/* Closes the socket recorded in `p` (a sock_rec) once 50 datagrams came. */
static void *closer_main(void *p) {
    sock_rec *r = p;
    close_race *c = r->user;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (test_load(&r->count) < 50 && test_now_ms() < deadline)
        test_sleep_ms(1);
    int rc = dgram_close(r->s, rec_on_close_once);
    test_add(&c->closed_flag, 1);
    c->close_rc = rc;
    return NULL;
}

typedef struct {
    dgram_socket *sock;
    uint16_t port;
    int stop;
    int sent;
    int first_error;
} flooder;

static void *flood_main(void *p) {
    flooder *f = p;
    tl_sender_thread = 1;
    uint8_t payload[32];
    memset(payload, 0xab, sizeof payload);
    while (!test_load(&f->stop)) {
        for (int i = 0; i < 16; i++) {
            int rc = dgram_send(f->sock, payload, sizeof payload, f->port, "127.0.0.1", NULL, NULL);
            if (rc != 0 && rc != DGRAM_ENOBUFS && !f->first_error)
                f->first_error = rc;
            f->sent++;
        }
        test_sleep_ms(1);
    }
    return NULL;
}

static void test_close_from_thread_while_dispatching(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_context *fctx = test_context(DGRAM_DISPATCH_HOST, 0); /* the flooder's, never dispatched */
    dgram_socket *fs = test_socket_with(fctx, NULL, NULL, NULL);
    test_bind(fs, "127.0.0.1");
    for (int round = 0; round < 5; round++) {
        sock_rec r;
        close_race c;
        memset(&c, 0, sizeof c);
        c.dispatcher = pthread_self();
        dgram_socket *sock = make_rec_receiver(ctx, &r, race_action, &c);
        CHECK_EQ(dgram_context_dispatch(ctx, 0), 1);
        flooder f;
        memset(&f, 0, sizeof f);
        f.sock = fs;
        f.port = test_port(sock);
        pthread_t ft, ct;
        CHECK(pthread_create(&ft, NULL, flood_main, &f) == 0);
        CHECK(pthread_create(&ct, NULL, closer_main, &r) == 0);
        RUN_UNTIL(ctx, r.close_once, 1);
        test_run_for(ctx, 30); /* datagrams still arrive at the port: none delivered */
        test_add(&f.stop, 1);
        CHECK(pthread_join(ft, NULL) == 0);
        CHECK(pthread_join(ct, NULL) == 0);
        test_run_for(ctx, 20);
        printf("    round %d: %d datagrams delivered before close\n", round, r.count);
        CHECK_OK(c.close_rc);
        CHECK_CODE(f.first_error, 0);
        CHECK(r.count >= 50);
        CHECK_EQ(c.after_close, 0);
        CHECK_EQ(r.close_once, 1);
        CHECK_EQ(r.close_p, 1);
        CHECK_EQ(c.close_on_wrong_thread, 0);
        CHECK_EQ(r.bad, 0);
        CHECK_CODE(dgram_close(sock, NULL), DGRAM_EBADF);
        CHECK_EQ(dgram_context_active(ctx), 0);
        dgram_socket_free(sock);
    }
    dgram_socket_free(fs);
    test_context_finish(fctx);
    test_context_finish(ctx);
}

/* ---- I/O-thread dispatch, sends from host threads and callbacks -------------- */

#define IO_PER_THREAD 200

typedef struct {
    thread_check threads;
    int on_sender_thread;
    int on_main_thread;
    pthread_t main_thread;
    int echoed;
    int echo_send_fail;
    int echo_cb_ok, echo_cb_err;
    int server_messages;
    int chained; /* sends made from a send callback */
    int chained_ok;
} io_state;

static io_state io;
static receiver_state io_client;

static void io_note_thread(void) {
    thread_check_note(&io.threads);
    if (tl_sender_thread)
        test_add(&io.on_sender_thread, 1);
    if (pthread_equal(io.main_thread, pthread_self()))
        test_add(&io.on_main_thread, 1);
}

static void io_echo_done(dgram_socket *s, const dgram_error *err, size_t len, void *data) {
    (void)s;
    (void)data;
    io_note_thread();
    if (err || len != sizeof(numbered))
        test_add(&io.echo_cb_err, 1);
    else
        test_add(&io.echo_cb_ok, 1);
}

/* The server echoes every datagram from inside its message callback. */
static void io_server_message(dgram_socket *s, const uint8_t *msg, size_t len,
                              const dgram_addr *rinfo, void *ud) {
    (void)ud;
    io_note_thread();
    test_add(&io.server_messages, 1);
    int rc = dgram_send(s, msg, len, rinfo->port, rinfo->address, io_echo_done, NULL);
    if (rc != 0)
        test_add(&io.echo_send_fail, 1);
    else
        test_add(&io.echoed, 1);
}

static void io_client_message(dgram_socket *s, const uint8_t *msg, size_t len,
                              const dgram_addr *rinfo, void *ud) {
    (void)s;
    (void)rinfo;
    (void)ud;
    io_note_thread();
    receiver_note(&io_client, msg, len);
}

static send_tally io_tally[NTHREADS];
static send_token io_tokens[NTHREADS * IO_PER_THREAD];

static void io_client_sent(dgram_socket *s, const dgram_error *err, size_t len, void *data) {
    io_note_thread();
    shared_on_send(s, err, len, data);
}

/* A send from a send callback: three more, each from the previous one's. */
static void io_chain_sent(dgram_socket *s, const dgram_error *err, size_t len, void *data) {
    io_note_thread();
    uint16_t port = (uint16_t)(uintptr_t)data;
    if (!err && len == 5)
        test_add(&io.chained_ok, 1);
    if (test_load(&io.chained) < 3) {
        test_add(&io.chained, 1);
        if (dgram_send(s, "chain", 5, port, "127.0.0.1", io_chain_sent, data) != 0)
            test_add(&io.echo_send_fail, 1);
    }
}

static void test_io_thread_sends_from_threads_and_callbacks(void) {
    long long drops_before = udp_rcvbuf_errors();
    memset(&io, 0, sizeof io);
    thread_check_init(&io.threads);
    io.main_thread = pthread_self();
    receiver_init(&io_client);
    memset(io_tally, 0, sizeof io_tally);
    thread_check_init(&sender_cb_threads);
    g_listening = NULL; /* the client is bound before its sends */
    send_cb_before_listening = 0;

    dgram_context *ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_socket *server = make_receiver(ctx, io_server_message, NULL);
    dgram_socket *client = make_receiver(ctx, io_client_message, NULL);
    uint16_t sport = test_port(server);
    int window = flow_window(server) < flow_window(client) ? flow_window(server) : flow_window(client);

    /* Flow control: echoes outstanding stay far below the buffers. */
    sender_arg args[NTHREADS];
    pthread_t th[NTHREADS];
    int sent_total = 0;
    sender_arg common = {.sock = client, .port = sport, .count = IO_PER_THREAD,
                         .cb = io_client_sent, .received = &io_client.total,
                         .sent_total = &sent_total, .window = window};
    start_senders(args, th, &common, io_tally, io_tokens);
    /* And a chain of sends from send callbacks, on the server socket, to a
     * third socket. */
    dgram_socket *sink = make_receiver(ctx, NULL, NULL);
    CHECK_OK(dgram_on_message(sink, NULL));
    uint16_t sink_port = test_port(sink);
    CHECK_OK(dgram_send(server, "chain", 5, sink_port, "127.0.0.1", io_chain_sent,
                        (void *)(uintptr_t)sink_port));

    for (int t = 0; t < NTHREADS; t++)
        CHECK(pthread_join(th[t], NULL) == 0);
    for (int t = 0; t < NTHREADS; t++) {
        CHECK_CODE(args[t].first_error, 0);
        CHECK_EQ(args[t].sent, IO_PER_THREAD);
    }
    WAIT_UNTIL(io_client.total, NTHREADS * IO_PER_THREAD);
    WAIT_UNTIL(io.echo_cb_ok, NTHREADS * IO_PER_THREAD);
    WAIT_UNTIL(io.chained_ok, 4);
    for (int t = 0; t < NTHREADS; t++)
        WAIT_UNTIL(io_tally[t].ok, IO_PER_THREAD);
    test_sleep_ms(50);
    check_receiver(&io_client, IO_PER_THREAD, drops_before);
    CHECK_EQ(io.server_messages, NTHREADS * IO_PER_THREAD);
    CHECK_EQ(io.echoed, NTHREADS * IO_PER_THREAD);
    CHECK_EQ(io.echo_send_fail, 0);
    CHECK_EQ(io.echo_cb_err, 0);
    CHECK_EQ(io.chained, 3);
    CHECK_EQ(io.chained_ok, 4);
    for (int t = 0; t < NTHREADS; t++) {
        CHECK_EQ(io_tally[t].ok, IO_PER_THREAD);
        CHECK_EQ(io_tally[t].failed, 0);
        CHECK_EQ(io_tally[t].wrong_length, 0);
        CHECK_EQ(io_tally[t].wrong_order, 0);
    }
    /* Every callback ran on one thread: the I/O thread, neither this one nor
     * a sender. */
    CHECK_EQ(io.threads.mismatch, 0);
    CHECK_EQ(io.on_sender_thread, 0);
    CHECK_EQ(io.on_main_thread, 0);
    CHECK(pthread_equal(io.threads.owner, io_client.threads.owner));
    CHECK(pthread_equal(io.threads.owner, sender_cb_threads.owner));
    CHECK_EQ(sender_cb_threads.mismatch, 0);

    dgram_socket_free(server);
    dgram_socket_free(client);
    dgram_socket_free(sink);
    test_context_finish(ctx);
}

/* ---- dgram_context_free from another thread while delivering ----------------- */

/* The two receivers of a round, and what the race needs beyond their
 * sock_recs: each one's `user`, with free_race_action as its `action`. */
typedef struct {
    dgram_context *ctx;
    sock_rec rec[2];
    int freed_flag;    /* set right after dgram_context_free returned; atomic */
    int after_free;    /* message callbacks that ran with the flag set; atomic */
} free_race;

static void free_race_action(sock_rec *r, dgram_socket *s, char letter) {
    (void)s;
    free_race *f = r->user;
    if (letter != 'M')
        return;
    if (test_load(&f->freed_flag))
        test_add(&f->after_free, 1);
    /* A little work, so that the free often lands inside a callback. */
    volatile unsigned x = 0;
    for (int i = 0; i < 2000; i++)
        x += (unsigned)i;
}

static int free_race_delivered(free_race *f) {
    return test_load(&f->rec[0].count) + test_load(&f->rec[1].count);
}

static void *freer_main(void *p) {
    free_race *f = p;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (free_race_delivered(f) < 30 && test_now_ms() < deadline)
        test_sleep_ms(1);
    dgram_context_free(f->ctx);
    test_add(&f->freed_flag, 1);
    return NULL;
}

static void test_context_free_from_thread_while_delivering(void) {
    dgram_context *fctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket *fs = test_socket_with(fctx, NULL, NULL, NULL);
    test_bind(fs, "127.0.0.1");
    for (int round = 0; round < 5; round++) {
        free_race f;
        memset(&f, 0, sizeof f);
        f.ctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
        dgram_socket *r = make_rec_receiver(f.ctx, &f.rec[0], free_race_action, &f);
        dgram_socket *r2 = make_rec_receiver(f.ctx, &f.rec[1], free_race_action, &f);
        flooder fl, fl2;
        memset(&fl, 0, sizeof fl);
        memset(&fl2, 0, sizeof fl2);
        fl.sock = fs;
        fl.port = test_port(r);
        fl2.sock = fs;
        fl2.port = test_port(r2);
        pthread_t ft, ft2, freer;
        CHECK(pthread_create(&ft, NULL, flood_main, &fl) == 0);
        CHECK(pthread_create(&ft2, NULL, flood_main, &fl2) == 0);
        CHECK(pthread_create(&freer, NULL, freer_main, &f) == 0);
        CHECK(pthread_join(freer, NULL) == 0);
        test_context_forget(f.ctx);
        int seen = free_race_delivered(&f);
        CHECK(seen >= 30);
        printf("    round %d: %d datagrams delivered before free\n", round, seen);
        test_sleep_ms(100); /* the flooders keep sending to the closed ports */
        CHECK_EQ(free_race_delivered(&f), seen);
        CHECK_EQ(test_load(&f.after_free), 0);
        CHECK_EQ(f.rec[0].bad + f.rec[1].bad, 0);
        test_add(&fl.stop, 1);
        test_add(&fl2.stop, 1);
        CHECK(pthread_join(ft, NULL) == 0);
        CHECK(pthread_join(ft2, NULL) == 0);
        CHECK_CODE(fl.first_error, 0);
        CHECK_CODE(fl2.first_error, 0);
        CHECK_CODE(dgram_close(r, NULL), DGRAM_EBADF);
        CHECK_CODE(dgram_fileno(r2), DGRAM_EBADF);
        dgram_socket_free(r);
        dgram_socket_free(r2);
    }
    dgram_socket_free(fs);
    test_context_finish(fctx);
}

/* No lost wake-up: a sender thread (a plain kernel socket, so that every
 * event is a datagram arriving from outside the library) sends one datagram
 * at a time, each only after the previous one was delivered, while the main
 * thread blocks in dgram_context_run(ctx, -1) with no timeout. Every round
 * races the datagram's arrival against the dispatcher ending its round
 * (lowering and re-arming the context fd) and waiting again; a lost
 * wake-up leaves run() blocked forever and the watchdog fails the test. */
#define LOCKSTEP_ROUNDS 20000
static int lockstep_received;

static void lockstep_on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                                void *userdata) {
    (void)s;
    (void)rinfo;
    (void)userdata;
    uint32_t seq;
    CHECK_EQ(len, sizeof seq);
    memcpy(&seq, msg, sizeof seq);
    CHECK_EQ(seq, (uint32_t)test_load(&lockstep_received));
    test_add(&lockstep_received, 1);
}

static uint16_t lockstep_port;

static long long test_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *lockstep_sender(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(lockstep_port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (uint32_t seq = 0; seq < LOCKSTEP_ROUNDS; seq++) {
        CHECK_EQ(sendto(fd, &seq, sizeof seq, 0, (struct sockaddr *)&to, sizeof to), sizeof seq);
        while (test_load(&lockstep_received) <= (int)seq)
            sched_yield();
    }
    close(fd);
    return NULL;
}

static void test_no_lost_wakeups(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_socket *rx = test_socket(ctx, DGRAM_UDP4, lockstep_on_message, NULL);
    lockstep_port = test_bind(rx, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 1); /* 'listening' */
    pthread_t sender;
    CHECK_EQ(pthread_create(&sender, NULL, lockstep_sender, NULL), 0);
    while (test_load(&lockstep_received) < LOCKSTEP_ROUNDS) {
        /* A delay that sweeps 0..63 us, so that over the rounds the
         * datagram lands at every point of the dispatcher's re-arm. */
        long long spin_until = test_now_us() + test_load(&lockstep_received) % 64;
        while (test_now_us() < spin_until)
            ;
        int rc = dgram_context_run(ctx, -1);
        CHECK(rc >= 1);
    }
    CHECK_EQ(pthread_join(sender, NULL), 0);
    CHECK_EQ(lockstep_received, LOCKSTEP_ROUNDS);
    dgram_socket_free(rx);
    test_context_finish(ctx);
}

/* ---- close and free wait for the running callback only ---------------------- */

#define SLOW_DATAGRAMS 100
#define SLOW_CALLBACK_MS 10

enum slow_end { SLOW_CLOSE, SLOW_FREE };

typedef struct {
    sock_rec *r;
    enum slow_end how;
    int before;  /* datagrams delivered (or being delivered) just before the call */
    int after;   /* ... just after it returned */
    int rc;
} slow_closer;

/* Each datagram's callback takes a while, so that a close arrives while
 * one runs and many wait behind it. */
static void slow_message(sock_rec *r, dgram_socket *s, char letter) {
    (void)r, (void)s;
    if (letter == 'M')
        test_sleep_ms(SLOW_CALLBACK_MS);
}

static void *slow_closer_main(void *p) {
    slow_closer *c = p;
    while (test_load(&c->r->count) < 1)
        test_sleep_ms(1);
    dgram_socket *s = c->r->s;
    test_store(&c->before, test_load(&c->r->count));
    if (c->how == SLOW_CLOSE) {
        c->rc = dgram_close(s, NULL);
    } else {
        dgram_socket_free(s);
        /* After the free returned: a callback that began while it waited
         * for the running one is allowed (it may be "the one after it"),
         * one after the return is not. The free's wait orders this write
         * after every callback that ran. */
        c->r->freed = 1;
        c->rc = 0;
    }
    test_store(&c->after, test_load(&c->r->count));
    return NULL;
}

/* 100 datagrams wait, each callback takes 10 ms; another thread closes or
 * frees the socket once the first runs. The call must return when the
 * callback running then (or, if the call came just as one ended, the one
 * after it) has returned, not after the whole dispatch, and nothing of
 * the socket is delivered afterwards: neither the rest of the datagrams
 * already read nor those still in the kernel buffer. */
static void close_during_slow_callbacks(dgram_dispatch mode, enum slow_end how) {
    dgram_context *ctx = test_context(mode, 0);
    sock_rec r;
    dgram_socket *s = rec_socket(ctx, DGRAM_UDP4, &r);
    rec_set_action(&r, slow_message, NULL);
    uint16_t port = test_bind(s, "127.0.0.1");
    if (mode == DGRAM_DISPATCH_HOST)
        RUN_UNTIL(ctx, r.listen_p, 1);
    else
        WAIT_UNTIL(r.listen_p, 1);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    slow_closer c = {.r = &r, .how = how};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, slow_closer_main, &c), 0);
    for (int i = 0; i < SLOW_DATAGRAMS; i++)
        CHECK_EQ(sendto(fd, "slow", 4, 0, (struct sockaddr *)&to, sizeof to), 4);
    close(fd);
    if (mode == DGRAM_DISPATCH_HOST) {
        /* All 100 wait in the kernel buffer (only the socket counts), then
         * one dispatch, whose reads (four of up to 32) could take them all. */
        test_wait_queued(s);
        test_wait_active(ctx, 1);
        CHECK(dgram_context_dispatch(ctx, 0) >= 1);
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_OK(c.rc);
    /* At most the one running when the call was made and the next: the
     * call may come just as one ends, and a closer slowed down on its way to
     * the lock (valgrind runs one thread at a time) may reach it only once
     * the next has begun. Waiting for the whole dispatch would be ~100. */
    if (c.after > c.before + 2)
        FAIL("the %s returned after %d more callbacks, expected at most 2",
             how == SLOW_CLOSE ? "close" : "free", c.after - c.before);
    test_sleep_ms(50);
    if (mode == DGRAM_DISPATCH_HOST)
        test_run_for(ctx, 50);
    CHECK_EQ(test_load(&r.count), c.after);
    CHECK(c.after < SLOW_DATAGRAMS);
    CHECK_EQ(r.bad, 0);
    CHECK_EQ(r.after_free, 0);
    if (how == SLOW_CLOSE)
        dgram_socket_free(s);
    test_context_finish(ctx);
}

static void test_close_waits_for_running_callback_only_host(void) {
    close_during_slow_callbacks(DGRAM_DISPATCH_HOST, SLOW_CLOSE);
}
static void test_free_waits_for_running_callback_only_host(void) {
    close_during_slow_callbacks(DGRAM_DISPATCH_HOST, SLOW_FREE);
}
static void test_close_waits_for_running_callback_only_io_thread(void) {
    close_during_slow_callbacks(DGRAM_DISPATCH_IO_THREAD, SLOW_CLOSE);
}

/* ---- a close that waits while the callback frees the socket ------------- */

typedef struct {
    dgram_socket *s;
    int in_callback; /* the message callback has started */
    int closed_rc;   /* what the other thread's dgram_close returned */
    int close_done;
} close_free_race;

static close_free_race cfr;

/* A message callback of another socket that frees `cfr.s`, after the other
 * thread has had time to enter dgram_close(cfr.s) and wait for this
 * callback. Nothing but the handle holds cfr.s then: it is not being read. */
static void free_other_after_a_while(dgram_socket *s, const uint8_t *msg, size_t len,
                                     const dgram_addr *rinfo, void *u) {
    (void)s, (void)msg, (void)len, (void)rinfo, (void)u;
    test_store(&cfr.in_callback, 1);
    test_sleep_ms(100);
    CHECK_EQ(test_load(&cfr.close_done), 0); /* it is still waiting */
    dgram_socket_free(cfr.s);
}

static void *close_when_in_callback(void *arg) {
    (void)arg;
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (!test_load(&cfr.in_callback)) {
        if (test_now_ms() > deadline)
            FAIL("the message callback never started");
        test_sleep_ms(1);
    }
    test_store(&cfr.closed_rc, dgram_close(cfr.s, NULL));
    test_store(&cfr.close_done, 1);
    return NULL;
}

/* dgram_close(s) on one thread waits for the callback running on another,
 * which frees s: the close must not touch the freed socket (the memcheck_
 * run of this case sees any such access) and answers DGRAM_EBADF, s being
 * closed by the free. */
static void test_close_waiting_while_callback_frees(void) {
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    cfr.s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    test_bind(cfr.s, "127.0.0.1");
    dgram_socket *rx = test_socket(ctx, DGRAM_UDP4, free_other_after_a_while, NULL);
    uint16_t port = test_bind(rx, "127.0.0.1");
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 2); /* the 'listening's */
    dgram_socket *tx = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    CHECK_OK(dgram_send(tx, "x", 1, port, "127.0.0.1", NULL, NULL));
    test_wait_queued(rx);
    pthread_t closer;
    CHECK_EQ(pthread_create(&closer, NULL, close_when_in_callback, NULL), 0);
    CHECK_EQ(dgram_context_dispatch(ctx, 0), 2); /* tx's 'listening', the datagram */
    CHECK_EQ(pthread_join(closer, NULL), 0);
    CHECK_EQ(test_load(&cfr.closed_rc), DGRAM_EBADF);
    test_run_for(ctx, 50);
    dgram_socket_free(tx);
    dgram_socket_free(rx);
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_four_threads_one_socket),
    TEST_ENTRY(test_close_from_thread_while_dispatching),
    TEST_ENTRY(test_close_waits_for_running_callback_only_host),
    TEST_ENTRY(test_free_waits_for_running_callback_only_host),
    TEST_ENTRY(test_close_waits_for_running_callback_only_io_thread),
    TEST_ENTRY(test_io_thread_sends_from_threads_and_callbacks),
    TEST_ENTRY(test_context_free_from_thread_while_delivering),
    TEST_ENTRY(test_no_lost_wakeups),
    TEST_ENTRY(test_close_waiting_while_callback_frees),
)
