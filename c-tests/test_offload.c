/*
 * dgram_send_batch, dgram_set_offload, dgram_get_offload and
 * dgram_offload_support: batches of
 * datagrams (runs of equal sizes going out as UDP_SEGMENT writes when GSO is
 * on) arrive as exactly the datagrams sent, in order, whatever the sender's
 * GSO and the receiver's GRO; send callbacks come once per datagram, in
 * order; bad batches are refused whole; a batch the kernel cannot take at
 * once is queued and still delivered exactly once, in order.
 *
 * Unicast only, over 127.0.0.1 and ::1 (the queued-batch test uses the
 * loopback of a private network namespace whose lo is paced by a qdisc).
 */
#include "recorder.h"
#include "test_runner.h"

#include <netinet/in.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* What this kernel offers, as dgram_offload_support found it: each case
 * reads it first. */
static uint32_t support;

#define ALL_OFFLOADS (DGRAM_OFFLOAD_GSO | DGRAM_OFFLOAD_GRO)

/* ---- payloads ------------------------------------------------------------- */

/* The bytes of datagram `seq` of `len` bytes: its sequence number, then a
 * pattern that differs from one datagram to the next. */
static void fill(uint8_t *p, uint32_t seq, size_t len) {
    for (size_t k = 0; k < len; k++)
        p[k] = (uint8_t)(seq * 131u + k * 7u + (k >> 8));
    for (size_t k = 0; k < 4 && k < len; k++)
        p[k] = (uint8_t)(seq >> (24 - 8 * k));
}

/* A batch: `n` datagrams of lens[i] bytes, with sequence numbers from
 * `first_seq`, as dgram_bufs pointing into one allocation. */
typedef struct {
    size_t n;
    uint32_t first_seq;
    dgram_buf *bufs;
    uint8_t *arena;
} batch;

static uint32_t next_seq = 1;

static batch batch_make(const size_t *lens, size_t n) {
    batch b = {n, next_seq, calloc(n ? n : 1, sizeof(dgram_buf)), NULL};
    CHECK(b.bufs != NULL);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    b.arena = malloc(total ? total : 1);
    CHECK(b.arena != NULL);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        fill(b.arena + at, next_seq++, lens[i]);
        b.bufs[i].base = lens[i] ? b.arena + at : NULL;
        b.bufs[i].len = lens[i];
        at += lens[i];
    }
    return b;
}

static void batch_free(batch *b) {
    free(b->bufs);
    free(b->arena);
    memset(b, 0, sizeof *b);
}

/* ---- a receiver that keeps every datagram ------------------------------ */

#define MAX_RX 1200

typedef struct {
    dgram_socket *socket;
    int meta;   /* message metadata is on: dgram_message_meta must answer */
    int count;  /* published last */
    size_t len[MAX_RX];
    uint8_t *data[MAX_RX];
    dgram_addr rinfo[MAX_RX];
    uint32_t gro[MAX_RX]; /* dgram_meta.gro_segment_size */
    int bad;              /* wrong handle, or dgram_message_meta misbehaved */
} rx_t;

static void rx_on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                          void *userdata) {
    rx_t *rx = userdata;
    int i = rx->count;
    if (i >= MAX_RX)
        FAIL("more than %d datagrams received", MAX_RX);
    if (s != rx->socket)
        rx->bad++;
    rx->data[i] = malloc(len ? len : 1);
    CHECK(rx->data[i] != NULL);
    if (len)
        memcpy(rx->data[i], msg, len);
    rx->len[i] = len;
    rx->rinfo[i] = *rinfo;
    dgram_meta meta;
    memset(&meta, 0x5a, sizeof meta);
    int rc = dgram_message_meta(s, &meta);
    if (rx->meta) {
        if (rc != 0)
            rx->bad++;
        rx->gro[i] = rc == 0 ? meta.gro_segment_size : 0xdead;
    } else {
        if (rc != DGRAM_EINVAL) /* read while metadata was off */
            rx->bad++;
        rx->gro[i] = 0;
    }
    test_add(&rx->count, 1);
}

static void rx_clear(rx_t *rx) {
    int n = test_load(&rx->count);
    for (int i = 0; i < n && i < MAX_RX; i++)
        free(rx->data[i]);
    memset(rx, 0, sizeof *rx);
}

/* A receiver of `type` bound to the loopback address, with GRO as in
 * `offload` (checked: what is in effect is what was asked, as far as the
 * kernel has it) and metadata as `meta`. Returns its port. */
static dgram_socket *rx_open(dgram_context *ctx, dgram_type type, uint32_t offload, bool meta,
                             rx_t *rx, uint16_t *port) {
    memset(rx, 0, sizeof *rx);
    dgram_socket_options o = test_opts(type);
    o.recv_buffer_size = 1 << 22; /* room for a whole test's datagrams */
    dgram_socket *s = test_socket_with(ctx, &o, rx_on_message, rx);
    rx->socket = s;
    CHECK_CODE(dgram_set_offload(s, offload), offload & support);
    if (meta)
        CHECK_OK(dgram_set_message_meta(s, true));
    rx->meta = meta;
    *port = test_bind(s, test_loopback(type));
    return s;
}

/* gro_seg for check_received: GRO may have coalesced runs of several sizes. */
#define GRO_ANY_RUN 0xffffffffu

/* Checks that `rx` holds exactly the datagrams of the batches `bs`, in
 * order, each from `from`:`from_port`. A GRO segment size, where reported,
 * is 0 or `gro_seg`; with gro_seg 0 none may be reported; with GRO_ANY_RUN
 * it is the size of one of the batch's datagrams, at least the datagram's
 * own (a GRO buffer holds datagrams of its segment size, the last maybe
 * shorter). Returns how many datagrams came in a GRO buffer. */
static int check_received(const rx_t *rx, const batch *bs, size_t nb, const char *from,
                          uint16_t from_port, dgram_family family, uint32_t gro_seg) {
    size_t total = 0;
    for (size_t b = 0; b < nb; b++)
        total += bs[b].n;
    CHECK_EQ(test_load(&rx->count), total);
    CHECK_EQ(rx->bad, 0);
    int coalesced = 0, i = 0;
    for (size_t b = 0; b < nb; b++) {
        for (size_t k = 0; k < bs[b].n; k++, i++) {
            if (rx->len[i] != bs[b].bufs[k].len)
                FAIL("datagram %d: %zu bytes, expected %zu", i, rx->len[i], bs[b].bufs[k].len);
            if (bs[b].bufs[k].len && memcmp(rx->data[i], bs[b].bufs[k].base, rx->len[i]) != 0)
                FAIL("datagram %d (seq %u): bytes differ", i, (unsigned)(bs[b].first_seq + k));
            CHECK_ADDR(&rx->rinfo[i], from, from_port, family);
            uint32_t gro = rx->gro[i];
            if (gro != 0 && gro_seg == GRO_ANY_RUN && gro >= rx->len[i]) {
                for (size_t c = 0; c < bs[b].n; c++)
                    if (bs[b].bufs[c].len == gro)
                        gro = 0; /* a size of the batch: fine */
            }
            if (gro != 0 && gro != gro_seg)
                FAIL("datagram %d: gro_segment_size %u, expected 0 or %u", i, (unsigned)rx->gro[i],
                     (unsigned)gro_seg);
            coalesced += rx->gro[i] != 0;
        }
    }
    return coalesced;
}

/* ---- send completions ------------------------------------------------------ */

#define MAX_TX 1100

typedef struct {
    dgram_socket *socket;
    int count; /* published last */
    int errors;
    int first_error;
    size_t len[MAX_TX];
    int bad; /* wrong handle or send_data */
    int in_call; /* set while the test is inside a call that accepts sends */
    int during_call; /* callbacks that ran inside such a call */
    /* Paced test: at each callback the queue holds at most the datagrams
     * after this one, `total` in all. */
    int total;
    int queue_over;
} tx_rec;

static void tx_on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    tx_rec *r = send_data;
    CHECK(r != NULL);
    if (s != r->socket)
        r->bad++;
    if (r->in_call)
        r->during_call++;
    int i = r->count;
    if (i >= MAX_TX)
        FAIL("more than %d send callbacks", MAX_TX);
    r->len[i] = length;
    if (err) {
        if (!r->errors)
            r->first_error = err->code;
        r->errors++;
    }
    if (r->total) {
        int queued = dgram_send_queue_count(s);
        if (queued < 0 || queued > r->total - i - 1)
            r->queue_over++;
    }
    test_add(&r->count, 1);
}

/* Checks that `r` got exactly one successful callback per datagram of the
 * batches `bs`, in order, with its length. */
static void check_completions(const tx_rec *r, const batch *bs, size_t nb) {
    size_t total = 0;
    for (size_t b = 0; b < nb; b++)
        total += bs[b].n;
    CHECK_EQ(test_load(&r->count), total);
    if (r->errors)
        FAIL("%d send callbacks with an error, the first %s", r->errors, dgram_err_name(r->first_error));
    CHECK_EQ(r->bad, 0);
    CHECK_EQ(r->during_call, 0);
    int i = 0;
    for (size_t b = 0; b < nb; b++)
        for (size_t k = 0; k < bs[b].n; k++, i++)
            if (r->len[i] != bs[b].bufs[k].len)
                FAIL("send callback %d: length %zu, expected %zu", i, r->len[i], bs[b].bufs[k].len);
}

/* ---- dgram_offload_support and dgram_set_offload ------------------------- */

static void test_offload_support(void) {
    support = dgram_offload_support();
    CHECK_EQ(DGRAM_SEND_BATCH_MAX, 1024); /* as documented */
    printf("  support: %s%s%s\n", support & DGRAM_OFFLOAD_GSO ? "GSO " : "",
           support & DGRAM_OFFLOAD_GRO ? "GRO " : "", support ? "" : "none");
    CHECK_EQ(support & ~(uint32_t)ALL_OFFLOADS, 0);
    CHECK_EQ(dgram_offload_support(), support); /* found once per process */
}

/* The UDP_GRO option as the kernel has it, or -1 where getsockopt does not
 * know it (kernels before 5.x answer ENOPROTOOPT). */
static int udp_gro_option(dgram_socket *s) {
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(dgram_fileno(s), SOL_UDP, UDP_GRO, &value, &len) != 0) {
        CHECK_EQ(errno, ENOPROTOOPT);
        return -1;
    }
    return value != 0;
}

static void check_gro_option(dgram_socket *s, uint32_t in_effect) {
    int got = udp_gro_option(s);
    if (got >= 0)
        CHECK_EQ(got, (in_effect & DGRAM_OFFLOAD_GRO) != 0);
}

static void test_set_offload(void) {
    support = dgram_offload_support();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static const dgram_type types[2] = {DGRAM_UDP4, DGRAM_UDP6};
    static const uint32_t unknown[] = {4, 8, 0x100, 0x80000000u, DGRAM_OFFLOAD_GSO | 4,
                                       ALL_OFFLOADS | 0x10, 0xffffffffu};
    for (int t = 0; t < 2; t++) {
        for (int bound = 0; bound <= 1; bound++) {
            dgram_socket *s = test_socket(ctx, types[t], NULL, NULL);
            if (bound)
                test_bind(s, test_loopback(types[t]));
            /* By default GSO is on where the kernel has it, GRO off. */
            CHECK_EQ(dgram_get_offload(s), support & DGRAM_OFFLOAD_GSO);
            check_gro_option(s, 0);
            /* Each set in turn: what is in effect is what was asked, less
             * what the kernel lacks, except that GRO, once on, stays on (the
             * header: buffers coalesced before could not be split after);
             * the option follows. */
            static const uint32_t sets[] = {DGRAM_OFFLOAD_GSO, 0, DGRAM_OFFLOAD_GSO, DGRAM_OFFLOAD_GRO, 0,
                                            DGRAM_OFFLOAD_GSO, ALL_OFFLOADS, 0};
            uint32_t gro_since = 0;
            for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
                int rc = dgram_set_offload(s, sets[i]);
                gro_since |= sets[i] & DGRAM_OFFLOAD_GRO;
                CHECK_EQ(rc, (sets[i] | gro_since) & support);
                CHECK_EQ(dgram_get_offload(s), rc);
                check_gro_option(s, (uint32_t)rc);
            }
            CHECK_EQ(dgram_set_offload(s, ALL_OFFLOADS), ALL_OFFLOADS & support);
            /* Unknown bits: refused, nothing changed. */
            for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
                CHECK_CODE(dgram_set_offload(s, unknown[i]), DGRAM_EINVAL);
                CHECK_EQ(dgram_get_offload(s), ALL_OFFLOADS & support);
                check_gro_option(s, ALL_OFFLOADS & support);
            }
            CHECK_CODE(dgram_set_offload(s, 0), support & DGRAM_OFFLOAD_GRO);
            check_gro_option(s, support & DGRAM_OFFLOAD_GRO);
            for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
                CHECK_CODE(dgram_set_offload(s, unknown[i]), DGRAM_EINVAL);
            CHECK_EQ(dgram_get_offload(s), support & DGRAM_OFFLOAD_GRO);
            check_gro_option(s, support & DGRAM_OFFLOAD_GRO);

            CHECK_OK(dgram_close(s, NULL));
            CHECK_CODE(dgram_set_offload(s, 0), DGRAM_EBADF);
            CHECK_CODE(dgram_set_offload(s, ALL_OFFLOADS), DGRAM_EBADF);
            CHECK_CODE(dgram_set_offload(s, 0xffffffffu), DGRAM_EBADF);
            CHECK_CODE(dgram_get_offload(s), DGRAM_EBADF);
            dgram_socket_free(s);
        }
    }
    CHECK_CODE(dgram_set_offload(NULL, 0), DGRAM_EINVAL);
    CHECK_CODE(dgram_set_offload(NULL, DGRAM_OFFLOAD_GSO), DGRAM_EINVAL);
    CHECK_CODE(dgram_get_offload(NULL), DGRAM_EINVAL);
    test_run_for(ctx, 20);
    test_context_finish(ctx);
}

/* ---- batches through every offload combination -------------------------- */

/* Sends the batch `lens` from a `type` socket with `tx_offload` to one with
 * `rx_offload` (metadata as `meta`), and checks what arrives and the
 * counters. Returns how many datagrams came in a GRO buffer. */
static int batch_round(dgram_context *ctx, dgram_type type, uint32_t tx_offload,
                       uint32_t rx_offload, bool meta, const size_t *lens, size_t n,
                       uint32_t gro_seg) {
    static rx_t rx;
    uint16_t port;
    dgram_socket *r = rx_open(ctx, type, rx_offload, meta, &rx, &port);
    dgram_socket *s = test_socket(ctx, type, NULL, NULL);
    CHECK_CODE(dgram_set_offload(s, tx_offload), tx_offload & support);
    uint16_t sport = test_bind(s, test_loopback(type));

    batch b = batch_make(lens, n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += lens[i];
    CHECK_OK(dgram_send_batch(s, b.bufs, n, port, test_loopback(type), NULL, NULL));
    RUN_UNTIL(ctx, rx.count, (int)n);
    test_run_for(ctx, 20);
    int coalesced = check_received(&rx, &b, 1, test_loopback(type), sport,
                                   type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6,
                                   (rx_offload & support & DGRAM_OFFLOAD_GRO) ? gro_seg : 0);

    dgram_stats st;
    CHECK_OK(dgram_socket_stats(s, &st));
    CHECK_EQ(st.datagrams_sent, n);
    CHECK_EQ(st.bytes_sent, bytes);
    CHECK_EQ(st.send_errors, 0);
    CHECK_OK(dgram_socket_stats(r, &st));
    CHECK_EQ(st.datagrams_received, n);
    CHECK_EQ(st.bytes_received, bytes);
    CHECK_EQ(st.dropped_by_kernel, 0);
    CHECK_EQ(dgram_send_queue_count(s), 0);
    CHECK_EQ(dgram_send_queue_size(s), 0);
    /* Loopback takes UDP_SEGMENT writes: GSO stayed on where it was. */
    CHECK_EQ(dgram_get_offload(s), tx_offload & support);
    CHECK_EQ(dgram_get_offload(r), rx_offload & support);

    batch_free(&b);
    dgram_socket_free(s);
    dgram_socket_free(r);
    rx_clear(&rx);
    return coalesced;
}

static const char *offload_name(uint32_t flags, uint32_t bit) {
    return (flags & support & bit) ? "on" : "off";
}

/* Runs the batch through GSO on/off at the sender and GRO on/off at the
 * receiver (metadata on), and once more with GRO on and metadata off.
 * `gro_seg` as for check_received. */
static void batch_all_offloads(dgram_context *ctx, dgram_type type, const size_t *lens, size_t n,
                               uint32_t gro_seg) {
    for (int gso = 1; gso >= 0; gso--) {
        for (int gro = 1; gro >= 0; gro--) {
            uint32_t tx = gso ? DGRAM_OFFLOAD_GSO : 0, rx = gro ? DGRAM_OFFLOAD_GRO : 0;
            int coalesced = batch_round(ctx, type, tx, rx, true, lens, n, gro_seg);
            printf("    %s GSO %s, GRO %s: %zu datagrams, %d from GRO buffers\n",
                   test_type_name(type), offload_name(tx, DGRAM_OFFLOAD_GSO),
                   offload_name(rx, DGRAM_OFFLOAD_GRO), n, coalesced);
        }
    }
    batch_round(ctx, type, DGRAM_OFFLOAD_GSO, DGRAM_OFFLOAD_GRO, false, lens, n, gro_seg);
}

/* 100 datagrams of 1200 bytes and a last one of 300: GSO runs of equal
 * sizes whose last may be shorter. */
static void test_batch_equal_sizes(void) {
    support = dgram_offload_support();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    size_t lens[101];
    for (int i = 0; i < 100; i++)
        lens[i] = 1200;
    lens[100] = 300;
    batch_all_offloads(ctx, DGRAM_UDP4, lens, 101, 1200);
    batch_all_offloads(ctx, DGRAM_UDP6, lens, 101, 1200);
    test_context_finish(ctx);
}

/* Sizes that break runs: a shorter one ends a run, an empty one goes
 * alone, a longer one starts a new run. */
static void test_batch_mixed_sizes(void) {
    support = dgram_offload_support();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static const size_t mixed[] = {1200, 1200, 500, 1200, 1200, 0, 7};
    batch_all_offloads(ctx, DGRAM_UDP4, mixed, sizeof mixed / sizeof mixed[0], 1200);
    batch_all_offloads(ctx, DGRAM_UDP6, mixed, sizeof mixed / sizeof mixed[0], 1200);
    /* Growing, equal, shrinking, empty ones together, and the largest. */
    static const size_t odd[] = {1, 2, 3, 3, 3, 0, 0, 1200, 1201, 1201, 9000, 9000, 9000, 8999,
                                 9000, 65507, 65507, 4, 0};
    batch_all_offloads(ctx, DGRAM_UDP4, odd, sizeof odd / sizeof odd[0], GRO_ANY_RUN);
    /* Empty datagrams only. */
    static const size_t empty[] = {0, 0, 0};
    batch_round(ctx, DGRAM_UDP4, DGRAM_OFFLOAD_GSO, DGRAM_OFFLOAD_GRO, true, empty, 3, GRO_ANY_RUN);
    batch_round(ctx, DGRAM_UDP6, DGRAM_OFFLOAD_GSO, 0, true, empty, 3, GRO_ANY_RUN);
    test_context_finish(ctx);
}

/* ---- send callbacks -------------------------------------------------------- */

/* The callback is called once per datagram, in order, after the call, with
 * each datagram's length, err NULL and the send_data given. Without one,
 * nothing waits for dispatch. The sender has a context of its own so that
 * dgram_context_active counts its events only. */
static void test_batch_callbacks(void) {
    support = dgram_offload_support();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static rx_t rx;
    static tx_rec rec;
    for (int gso = 1; gso >= 0; gso--) {
        uint16_t port;
        dgram_socket *r = rx_open(ctx, DGRAM_UDP4, 0, false, &rx, &port);
        dgram_context *sctx = test_context(DGRAM_DISPATCH_HOST, 0);
        dgram_socket *s = test_socket_with(sctx, NULL, NULL, NULL);
        CHECK_CODE(dgram_set_offload(s, gso ? DGRAM_OFFLOAD_GSO : 0), (gso ? DGRAM_OFFLOAD_GSO : 0) & support);
        uint16_t sport = test_bind(s, "127.0.0.1");
        test_run_for(sctx, 20); /* 'listening' */
        CHECK_EQ(dgram_context_active(sctx), 1);

        static const size_t lens[] = {1200, 1200, 1200, 1000, 1200, 7, 7, 0, 65507, 300, 300};
        enum { N = sizeof lens / sizeof lens[0] };
        batch b[2] = {batch_make(lens, N), batch_make(lens, N)};

        /* Without a callback: nothing for dispatch. */
        CHECK_OK(dgram_send_batch(s, b[0].bufs, N, port, "127.0.0.1", NULL, NULL));
        CHECK_EQ(dgram_context_active(sctx), 1);

        memset(&rec, 0, sizeof rec);
        rec.socket = s;
        rec.in_call = 1;
        CHECK_OK(dgram_send_batch(s, b[1].bufs, N, port, "127.0.0.1", tx_on_sent, &rec));
        rec.in_call = 0;
        CHECK_EQ(test_load(&rec.count), 0);
        CHECK_EQ(dgram_context_active(sctx), 1 + N);
        RUN_UNTIL(sctx, rec.count, N);
        test_run_for(sctx, 20);
        check_completions(&rec, &b[1], 1);
        CHECK_EQ(dgram_context_active(sctx), 1);

        RUN_UNTIL(ctx, rx.count, 2 * N);
        test_run_for(ctx, 20);
        check_received(&rx, b, 2, "127.0.0.1", sport, DGRAM_IPV4, 0);

        batch_free(&b[0]);
        batch_free(&b[1]);
        dgram_socket_free(s);
        test_context_finish(sctx);
        dgram_socket_free(r);
        rx_clear(&rx);
    }
    test_context_finish(ctx);
}

/* ---- destinations ---------------------------------------------------------- */

/* "localhost", the default address (NULL), and a connected socket's peer. */
static void test_batch_destinations(void) {
    support = dgram_offload_support();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static rx_t rx;
    static const dgram_type types[2] = {DGRAM_UDP4, DGRAM_UDP6};
    static const size_t lens[] = {1200, 1200, 100};
    for (int t = 0; t < 2; t++) {
        dgram_type type = types[t];
        dgram_family family = type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6;
        const char *lo = test_loopback(type);
        uint16_t port;
        dgram_socket *r = rx_open(ctx, type, 0, false, &rx, &port);
        dgram_socket *s = test_socket(ctx, type, NULL, NULL);
        uint16_t sport = test_bind(s, lo);
        batch b[3] = {batch_make(lens, 3), batch_make(lens, 3), batch_make(lens, 3)};
        CHECK_OK(dgram_send_batch(s, b[0].bufs, 3, port, "localhost", NULL, NULL));
        CHECK_OK(dgram_send_batch(s, b[1].bufs, 3, port, NULL, NULL, NULL));
        CHECK_OK(dgram_connect(s, port, lo, NULL));
        CHECK_CODE(dgram_send_batch(s, b[2].bufs, 3, port, lo, NULL, NULL), DGRAM_EISCONN);
        CHECK_CODE(dgram_send_batch(s, b[2].bufs, 3, 0, lo, NULL, NULL), DGRAM_EISCONN);
        CHECK_CODE(dgram_send_batch(s, b[2].bufs, 3, port, NULL, NULL, NULL), DGRAM_EISCONN);
        CHECK_OK(dgram_send_batch(s, b[2].bufs, 3, 0, NULL, NULL, NULL));
        RUN_UNTIL(ctx, rx.count, 9);
        test_run_for(ctx, 20);
        check_received(&rx, b, 3, lo, sport, family, 0);
        for (int i = 0; i < 3; i++)
            batch_free(&b[i]);
        dgram_socket_free(s);
        dgram_socket_free(r);
        rx_clear(&rx);
    }
    test_context_finish(ctx);
}

/* ---- bad input ------------------------------------------------------------- */

/* A private network namespace (only lo), so that a host name the library
 * should refuse could not become a DNS query that leaves the machine even
 * if it did not. Returns the fd to come back with, or -1. */
static int private_netns(void) {
    int orig = test_netns_push();
    if (orig < 0) {
        if (getenv("DGRAM_TESTS_NO_SKIP"))
            FAIL("cannot make a network namespace here (DGRAM_TESTS_NO_SKIP is set)");
        printf("  (no private network namespace here: host name check skipped)\n");
    }
    return orig;
}

static void test_batch_bad_input(void) {
    support = dgram_offload_support();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static rx_t rx;
    static dgram_buf many[DGRAM_SEND_BATCH_MAX + 1];
    static uint8_t big[65528];
    for (int i = 0; i <= DGRAM_SEND_BATCH_MAX; i++)
        many[i] = (dgram_buf){"x", 1};
    uint16_t port;
    dgram_socket *r = rx_open(ctx, DGRAM_UDP4, 0, false, &rx, &port);
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    dgram_socket *s6 = test_socket(ctx, DGRAM_UDP6, NULL, NULL);

    /* count 0 does nothing, not even the implicit bind. */
    dgram_addr a;
    CHECK_OK(dgram_send_batch(s, NULL, 0, port, "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_send_batch(s, many, 0, port, "127.0.0.1", tx_on_sent, NULL));
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);

    dgram_buf null_piece[3] = {{"ab", 2}, {NULL, 5}, {"cd", 2}};
    dgram_buf null_empty[2] = {{NULL, 0}, {"ef", 2}};
    dgram_buf too_big[3] = {{"ab", 2}, {big, 65508}, {"cd", 2}};
    dgram_buf largest[1] = {{big, 65507}};
    dgram_buf too_big6[2] = {{big, 65528}, {"cd", 2}};
    dgram_buf two[2] = {{"ab", 2}, {"cd", 2}};

    CHECK_CODE(dgram_send_batch(s, many, DGRAM_SEND_BATCH_MAX + 1, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, many, (size_t)-1, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, NULL, 1, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, NULL, DGRAM_SEND_BATCH_MAX + 1, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, null_piece, 3, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, too_big, 3, port, "127.0.0.1", NULL, NULL), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_send_batch(s, too_big, 3, port, "127.0.0.1", tx_on_sent, NULL), DGRAM_EMSGSIZE);
    /* Ports and addresses as for dgram_send. */
    CHECK_CODE(dgram_send_batch(s, two, 2, 0, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, two, 2, -1, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, two, 2, 65536, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, two, 2, port, "::1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, two, 2, port, "not an address", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, two, 2, port, "", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s6, too_big6, 2, port, "::1", NULL, NULL), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_send_batch(s6, two, 2, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(NULL, two, 2, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    /* None of that bound the sockets or sent anything. */
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s6, &a), DGRAM_EBADF);

    /* The same once bound; then the good ones go through, and are all
     * that arrives. */
    uint16_t sport = test_bind(s, "127.0.0.1");
    CHECK_CODE(dgram_send_batch(s, too_big, 3, port, "127.0.0.1", NULL, NULL), DGRAM_EMSGSIZE);
    CHECK_CODE(dgram_send_batch(s, null_piece, 3, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(s, many, DGRAM_SEND_BATCH_MAX + 1, port, "127.0.0.1", NULL, NULL), DGRAM_EINVAL);
    CHECK_OK(dgram_send_batch(s, NULL, 0, port, "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_send_batch(s, null_empty, 2, port, "127.0.0.1", NULL, NULL));
    CHECK_OK(dgram_send_batch(s, largest, 1, port, "127.0.0.1", NULL, NULL));
    RUN_UNTIL(ctx, rx.count, 3);
    test_run_for(ctx, 50);
    CHECK_EQ(test_load(&rx.count), 3);
    CHECK_EQ(rx.len[0], 0);
    CHECK_EQ(rx.len[1], 2);
    CHECK_MEM(rx.data[1], "ef", 2);
    CHECK_EQ(rx.len[2], 65507);
    CHECK_MEM(rx.data[2], big, 65507);
    for (int i = 0; i < 3; i++)
        CHECK_ADDR(&rx.rinfo[i], "127.0.0.1", sport, DGRAM_IPV4);

    /* A host name is refused at once (connect and send to the peer
     * instead); "localhost" is not a name to look up. */
    int orig = private_netns();
    if (orig >= 0) {
        dgram_context *nctx = test_context(DGRAM_DISPATCH_HOST, 0);
        dgram_socket *n = test_socket(nctx, DGRAM_UDP4, NULL, NULL);
        CHECK_CODE(dgram_send_batch(n, two, 2, 9, "dgram-test.invalid", NULL, NULL), DGRAM_EINVAL);
        CHECK_CODE(dgram_send_batch(n, two, 2, 9, "somehost", tx_on_sent, NULL), DGRAM_EINVAL);
        CHECK_CODE(dgram_send_batch(n, two, 2, 9, "localhost.", NULL, NULL), DGRAM_EINVAL);
        CHECK_CODE(dgram_address(n, &a), DGRAM_EBADF);
        CHECK_EQ(dgram_context_active(nctx), 0);
        dgram_socket_free(n);
        test_context_finish(nctx);
        test_slow_lo_leave(orig);
    }

    /* Closed: EBADF whatever the arguments. */
    CHECK_OK(dgram_close(s, NULL));
    CHECK_OK(dgram_close(s6, NULL));
    CHECK_CODE(dgram_send_batch(s, two, 2, port, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s, two, 2, port, "127.0.0.1", tx_on_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s, NULL, 0, port, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s, NULL, 5, port, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s, many, DGRAM_SEND_BATCH_MAX + 1, -1, "garbage", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s, too_big, 3, port, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s, null_piece, 3, 0, NULL, NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s6, too_big6, 2, port, "::1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send_batch(s6, two, 2, port, "dgram-test.invalid", NULL, NULL), DGRAM_EBADF);
    test_run_for(ctx, 50);
    CHECK_EQ(test_load(&rx.count), 3);

    dgram_socket_free(s);
    dgram_socket_free(s6);
    dgram_socket_free(r);
    rx_clear(&rx);
    test_context_finish(ctx);
}

/* ---- a batch the kernel cannot take at once ------------------------------ */

/* A private network namespace whose lo passes 2 MB/s (tbf). A datagram
 * waiting in the qdisc stays charged to the sending socket, so with a small
 * SO_SNDBUF the kernel refuses the next write (EAGAIN) and the library
 * queues the rest. test_slow_lo_enter's qdisc (1 kB/s once its 70 kB burst
 * is spent) is made for sends that are cancelled, not waited for: a
 * megabyte would take a quarter of an hour. Returns the fd to come back
 * with, or -1. */
static int paced_lo_enter(void) {
    if (system("command -v tc >/dev/null 2>&1") != 0)
        return -1;
    int orig = test_netns_push();
    if (orig < 0)
        return -1;
    if (system("tc qdisc add dev lo root tbf rate 16mbit burst 20000 limit 20000000 >/dev/null 2>&1") != 0) {
        test_slow_lo_leave(orig);
        return -1;
    }
    return orig;
}

/* Keeps the calling thread, and the threads it makes from now on (the
 * context's I/O thread), on the CPU it runs on. The paced lo keeps
 * datagrams in order only on one CPU: the qdisc hands each one to the
 * backlog of the CPU that releases it (the sending thread's, or its
 * watchdog timer's), so two released on two CPUs may reach the receiver
 * swapped although the library wrote them in order. */
static void pin_to_one_cpu(void) {
    int cpu = sched_getcpu();
    CHECK(cpu >= 0);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        FAIL("sched_setaffinity: %s", strerror(errno));
}

/* Reads the send queue's count and size at one moment: retried until the
 * count is the same before and after the size (the I/O thread drains the
 * queue meanwhile; nothing is added). */
static void queue_figures(dgram_socket *s, int *count, int *size) {
    for (int tries = 0; tries < 100000; tries++) {
        int c1 = dgram_send_queue_count(s);
        int sz = dgram_send_queue_size(s);
        int c2 = dgram_send_queue_count(s);
        CHECK(c1 >= 0 && sz >= 0 && c2 >= 0);
        if (c1 == c2) {
            *count = c1;
            *size = sz;
            return;
        }
    }
    FAIL("the send queue never held still");
}

/* The bytes of the last `count` datagrams of the batches `bs`. */
static long long tail_bytes(const batch *bs, size_t nb, int count) {
    long long bytes = 0;
    for (size_t b = nb; b-- > 0 && count > 0;)
        for (size_t k = bs[b].n; k-- > 0 && count > 0; count--)
            bytes += (long long)bs[b].bufs[k].len;
    CHECK_EQ(count, 0);
    return bytes;
}

static void paced_round(dgram_context *ctx, uint32_t tx_offload) {
    static rx_t rx;
    static tx_rec rec;
    static size_t lens_a[DGRAM_SEND_BATCH_MAX], lens_c[5];
    for (int i = 0; i < DGRAM_SEND_BATCH_MAX; i++)
        lens_a[i] = 1000;
    for (int i = 0; i < 5; i++)
        lens_c[i] = 300;
    static const size_t lens_b[1] = {77};

    int orig = paced_lo_enter();
    if (orig < 0)
        test_skip("no private network namespace with a paced lo here (needs root, ip and tc)");
    uint16_t port;
    dgram_socket *r = rx_open(ctx, DGRAM_UDP4, 0, false, &rx, &port);
    dgram_socket_options o = test_opts(DGRAM_UDP4);
    o.send_buffer_size = 4096;
    dgram_socket *s = test_socket_with(ctx, &o, NULL, NULL);
    test_slow_lo_leave(orig);
    CHECK_CODE(dgram_set_offload(s, tx_offload), tx_offload & support);
    uint16_t sport = test_bind(s, "127.0.0.1");

    memset(&rec, 0, sizeof rec);
    rec.socket = s;
    batch bs[3] = {batch_make(lens_a, DGRAM_SEND_BATCH_MAX), batch_make(lens_b, 1), batch_make(lens_c, 5)};
    rec.total = DGRAM_SEND_BATCH_MAX + 1 + 5;
    long long total_bytes = tail_bytes(bs, 3, rec.total);

    rec.in_call = 1;
    CHECK_OK(dgram_send_batch(s, bs[0].bufs, DGRAM_SEND_BATCH_MAX, port, "127.0.0.1", tx_on_sent, &rec));
    rec.in_call = 0;
    /* Some of it waits in the library: at every moment, what the kernel
     * took plus what waits is the whole batch. */
    int q1 = dgram_send_queue_count(s);
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(s, &st));
    int q2 = dgram_send_queue_count(s);
    printf("    %s: %d of %d queued after the call\n", tx_offload ? "GSO" : "no GSO", q1, DGRAM_SEND_BATCH_MAX);
    CHECK(q1 > 0); /* the paced lo really made sends queue */
    CHECK(q2 <= q1);
    CHECK(q2 + (long long)st.datagrams_sent <= DGRAM_SEND_BATCH_MAX);
    CHECK(q1 + (long long)st.datagrams_sent >= DGRAM_SEND_BATCH_MAX);
    CHECK_EQ(st.send_errors, 0);
    int count, size;
    queue_figures(s, &count, &size);
    CHECK_EQ(size, tail_bytes(bs, 1, count));

    /* Sends made while the queue is not empty go behind it, in call order. */
    rec.in_call = 1;
    CHECK_OK(dgram_send(s, bs[1].bufs[0].base, bs[1].bufs[0].len, port, "127.0.0.1", tx_on_sent, &rec));
    CHECK_OK(dgram_send_batch(s, bs[2].bufs, 5, port, "127.0.0.1", tx_on_sent, &rec));
    rec.in_call = 0;
    queue_figures(s, &count, &size);
    CHECK_EQ(size, tail_bytes(bs, 3, count));

    RUN_UNTIL(ctx, rec.count, rec.total);
    RUN_UNTIL(ctx, rx.count, rec.total);
    test_run_for(ctx, 50);
    check_completions(&rec, bs, 3);
    CHECK_EQ(rec.queue_over, 0);
    check_received(&rx, bs, 3, "127.0.0.1", sport, DGRAM_IPV4, 0);
    CHECK_EQ(dgram_send_queue_count(s), 0);
    CHECK_EQ(dgram_send_queue_size(s), 0);
    CHECK_OK(dgram_socket_stats(s, &st));
    CHECK_EQ(st.datagrams_sent, rec.total);
    CHECK_EQ(st.bytes_sent, total_bytes);
    CHECK_EQ(st.send_errors, 0);

    for (int i = 0; i < 3; i++)
        batch_free(&bs[i]);
    dgram_socket_free(s);
    dgram_socket_free(r);
    rx_clear(&rx);
}

static void test_batch_queued(void) {
    support = dgram_offload_support();
    pin_to_one_cpu();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    paced_round(ctx, DGRAM_OFFLOAD_GSO);
    paced_round(ctx, 0);
    test_context_finish(ctx);
}

/* GRO buffers already in the kernel's queue when the host asks for GRO off
 * still arrive split into their datagrams (found by the fuzzer: with the
 * option off, the kernel handed a 64,800-byte buffer over as one datagram,
 * without its segment size). A context that queues one datagram keeps the
 * later buffers in the kernel until dispatch, so they are read after the
 * call. */
static void test_gro_stays_on(void) {
    support = dgram_offload_support();
    if ((support & ALL_OFFLOADS) != ALL_OFFLOADS) {
        printf("  (this kernel lacks GSO or GRO: nothing to check)\n");
        return;
    }
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    dgram_context *rx_ctx = test_context(DGRAM_DISPATCH_HOST, 1);
    static rx_t rx;
    uint16_t port;
    dgram_socket *r = rx_open(rx_ctx, DGRAM_UDP4, DGRAM_OFFLOAD_GRO, true, &rx, &port);
    dgram_socket *s = test_socket(ctx, DGRAM_UDP4, NULL, NULL);
    uint16_t sport = test_bind(s, "127.0.0.1");

    enum { ROUNDS = 3, PER_ROUND = 54 };
    size_t lens[PER_ROUND];
    for (size_t i = 0; i < PER_ROUND; i++)
        lens[i] = 1200;
    batch bs[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        bs[k] = batch_make(lens, PER_ROUND);
        CHECK_OK(dgram_send_batch(s, bs[k].bufs, PER_ROUND, port, "127.0.0.1", NULL, NULL));
    }
    CHECK_EQ(dgram_set_offload(r, 0), DGRAM_OFFLOAD_GRO);
    RUN_UNTIL(rx_ctx, rx.count, ROUNDS * PER_ROUND);
    test_run_for(rx_ctx, 20);
    int coalesced = check_received(&rx, bs, ROUNDS, "127.0.0.1", sport, DGRAM_IPV4, 1200);
    printf("  %d of %d datagrams came in GRO buffers\n", coalesced, ROUNDS * PER_ROUND);
    for (int k = 0; k < ROUNDS; k++)
        batch_free(&bs[k]);
    dgram_socket_free(s);
    dgram_socket_free(r);
    rx_clear(&rx);
    test_context_finish(rx_ctx);
    test_context_finish(ctx);
}

/* GRO turned on while GSO buffers keep arriving: every datagram still comes
 * alone and exact, none lost. The library must switch to splitting exactly
 * when the kernel starts coalescing: a read already under way when GRO goes
 * on took the old mode, without control messages, so the kernel must not
 * coalesce before it ends (found by the fuzzer: the buffer such a read
 * returned came as one 64,800-byte datagram). That window is a few
 * instructions wide, and this test did not hit it in 6 runs of the old code;
 * the fuzzer's input is kept in fuzz/regressions/gro-on-during-read. What
 * this test pins down is the switch itself, mid-flow. */
enum { FLOW_BATCHES = 60, FLOW_PER_BATCH = 54, FLOW_LEN = 1200 };

typedef struct {
    dgram_socket *rx;
    int count;
    int bad;
    uint16_t port;
} flow_rx;

static void flow_on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                            void *userdata) {
    (void)rinfo;
    flow_rx *f = userdata;
    uint8_t want[FLOW_LEN];
    if (s != f->rx || len != FLOW_LEN) {
        f->bad++;
    } else {
        uint32_t seq = (uint32_t)msg[0] << 24 | (uint32_t)msg[1] << 16 | (uint32_t)msg[2] << 8 | msg[3];
        fill(want, seq, FLOW_LEN);
        if (memcmp(msg, want, FLOW_LEN) != 0)
            f->bad++;
    }
    test_add(&f->count, 1);
}

static void *flow_sender(void *arg) {
    flow_rx *f = arg;
    dgram_context *sctx = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    dgram_socket *s = test_socket(sctx, DGRAM_UDP4, NULL, NULL);
    size_t lens[FLOW_PER_BATCH];
    for (size_t i = 0; i < FLOW_PER_BATCH; i++)
        lens[i] = FLOW_LEN;
    for (int k = 0; k < FLOW_BATCHES; k++) {
        batch b = batch_make(lens, FLOW_PER_BATCH);
        CHECK_OK(dgram_send_batch(s, b.bufs, FLOW_PER_BATCH, f->port, "127.0.0.1", NULL, NULL));
        batch_free(&b);
        test_sleep_ms(1);
    }
    while (dgram_send_queue_count(s) > 0)
        test_sleep_ms(1);
    dgram_socket_free(s);
    test_context_finish(sctx);
    return NULL;
}

static void test_gro_on_while_flowing(void) {
    support = dgram_offload_support();
    if ((support & ALL_OFFLOADS) != ALL_OFFLOADS) {
        printf("  (this kernel lacks GSO or GRO: nothing to check)\n");
        return;
    }
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    for (int round = 0; round < 5; round++) {
        static flow_rx f;
        memset(&f, 0, sizeof f);
        dgram_socket_options o = test_opts(DGRAM_UDP4);
        o.recv_buffer_size = 1 << 22;
        f.rx = test_socket_with(ctx, &o, flow_on_message, &f);
        f.port = test_bind(f.rx, "127.0.0.1");
        pthread_t sender;
        CHECK(pthread_create(&sender, NULL, flow_sender, &f) == 0);
        RUN_UNTIL(ctx, f.count, FLOW_PER_BATCH * (1 + round));
        CHECK_EQ(dgram_set_offload(f.rx, DGRAM_OFFLOAD_GRO), DGRAM_OFFLOAD_GRO);
        RUN_UNTIL(ctx, f.count, FLOW_BATCHES * FLOW_PER_BATCH);
        CHECK(pthread_join(sender, NULL) == 0);
        test_run_for(ctx, 20);
        CHECK_EQ(f.count, FLOW_BATCHES * FLOW_PER_BATCH);
        CHECK_EQ(f.bad, 0);
        dgram_stats st;
        CHECK_OK(dgram_socket_stats(f.rx, &st));
        CHECK_EQ(st.dropped_by_kernel, 0);
        dgram_socket_free(f.rx);
    }
    test_context_finish(ctx);
}

TEST_LIST(
    TEST_ENTRY(test_offload_support),
    TEST_ENTRY(test_set_offload),
    TEST_ENTRY(test_batch_equal_sizes),
    TEST_ENTRY(test_batch_mixed_sizes),
    TEST_ENTRY(test_batch_callbacks),
    TEST_ENTRY(test_batch_destinations),
    TEST_ENTRY(test_batch_bad_input),
    TEST_ENTRY(test_batch_queued),
    TEST_ENTRY(test_gro_stays_on),
    TEST_ENTRY(test_gro_on_while_flowing),
)
