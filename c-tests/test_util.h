/*
 * Shared helpers for libdgram's C tests: assertions that print where and
 * what, a watchdog, event-loop helpers, contexts and sockets made and bound
 * in one call, checks of addresses, socket options and closed sockets, and
 * network namespaces that clean themselves up. The recorders that callbacks
 * fill in are in recorder.h.
 *
 * Every case runs in a process of its own (test_runner.h); a failed
 * assertion exits 1, a case that cannot run here exits TEST_SKIP (77,
 * CTest's SKIP_RETURN_CODE) after saying why. No timing is asserted anywhere: waits have generous limits that only
 * turn a hang into a failure.
 */
#ifndef DGRAM_TEST_UTIL_H
#define DGRAM_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dgram.h"

#define TEST_SKIP 77

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        exit(1);                                                               \
    } while (0)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            FAIL("%s", #cond);                                                 \
    } while (0)

/* Compares two integers (any integer type), printing both on failure. */
#define CHECK_EQ(actual, expected)                                             \
    do {                                                                       \
        long long a_ = (long long)(actual), e_ = (long long)(expected);        \
        if (a_ != e_)                                                          \
            FAIL("%s == %lld, expected %s == %lld", #actual, a_, #expected,    \
                 e_);                                                          \
    } while (0)

/* Compares a library result code, printing the codes' names on failure. */
#define CHECK_CODE(actual, expected)                                           \
    do {                                                                       \
        int a_ = (int)(actual), e_ = (int)(expected);                          \
        if (a_ != e_)                                                          \
            FAIL("%s returned %d (%s), expected %d (%s)", #actual, a_,         \
                 dgram_err_name(a_), e_, dgram_err_name(e_));                  \
    } while (0)

#define CHECK_OK(call) CHECK_CODE(call, 0)

#define CHECK_STR(actual, expected)                                            \
    do {                                                                       \
        const char *a_ = (actual), *e_ = (expected);                           \
        if (a_ == NULL || strcmp(a_, e_) != 0)                                 \
            FAIL("%s == \"%s\", expected \"%s\"", #actual,                     \
                 a_ ? a_ : "(null)", e_);                                      \
    } while (0)

#define CHECK_MEM(actual, expected, len)                                       \
    do {                                                                       \
        if (memcmp((actual), (expected), (len)) != 0)                          \
            FAIL("%s differs from %s over %zu bytes", #actual, #expected,      \
                 (size_t)(len));                                               \
    } while (0)

/* Checks a dgram_addr (a local address, an rinfo, an error's address):
 * its text, port and family. */
#define CHECK_ADDR(actual, want_text, want_port, want_family)                 \
    do {                                                                       \
        const dgram_addr *addr_ = (actual);                                    \
        CHECK_STR(addr_->address, (want_text));                                \
        CHECK_EQ(addr_->port, (want_port));                                    \
        CHECK_EQ(addr_->family, (want_family));                                \
    } while (0)

/* Reports the test skipped (CTest's SKIP_RETURN_CODE), or failed when
 * DGRAM_TESTS_NO_SKIP is set: CI runs as root and must run every test. */
static inline void test_skip(const char *fmt, ...) {
    int strict = getenv("DGRAM_TESTS_NO_SKIP") != NULL;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, strict ? "FAIL (DGRAM_TESTS_NO_SKIP is set): " : "SKIP: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(strict ? 1 : TEST_SKIP);
}

/* Kills the test after `seconds`, so a hang fails instead of blocking CTest. */
static inline void test_watchdog(unsigned seconds) { alarm(seconds); }

static inline long long test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void test_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Atomic counters, for flags set on the I/O thread and read on another. */
static inline int test_load(const int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void test_add(int *p, int n) { __atomic_add_fetch(p, n, __ATOMIC_SEQ_CST); }
static inline void test_store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/* Longest any wait may take before it counts as a hang. */
#define TEST_WAIT_MS 10000

/* Host dispatch: runs the context until *counter >= want, failing after
 * TEST_WAIT_MS. */
#define RUN_UNTIL(ctx, counter, want)                                          \
    do {                                                                       \
        long long deadline_ = test_now_ms() + TEST_WAIT_MS;                    \
        while (test_load(&(counter)) < (want)) {                               \
            int rc_ = dgram_context_run((ctx), 50);                            \
            if (rc_ < 0)                                                       \
                FAIL("dgram_context_run: %s", dgram_err_name(rc_));            \
            if (test_now_ms() > deadline_)                                     \
                FAIL("timed out waiting for %s >= %d (now %d)", #counter,      \
                     (int)(want), test_load(&(counter)));                      \
        }                                                                      \
    } while (0)

/* I/O-thread dispatch: waits (without dispatching) until *counter >= want. */
#define WAIT_UNTIL(counter, want)                                              \
    do {                                                                       \
        long long deadline_ = test_now_ms() + TEST_WAIT_MS;                    \
        while (test_load(&(counter)) < (want)) {                               \
            if (test_now_ms() > deadline_)                                     \
                FAIL("timed out waiting for %s >= %d (now %d)", #counter,      \
                     (int)(want), test_load(&(counter)));                      \
            test_sleep_ms(1);                                                  \
        }                                                                      \
    } while (0)

/* Dispatches for `ms` milliseconds whatever arrives (to show that nothing
 * more arrives). */
static inline void test_run_for(dgram_context *ctx, int ms) {
    long long end = test_now_ms() + ms;
    while (test_now_ms() < end) {
        int rc = dgram_context_dispatch(ctx, 0);
        if (rc < 0)
            FAIL("dgram_context_dispatch: %s", dgram_err_name(rc));
        test_sleep_ms(2);
    }
}

/* Contexts made by test_context() and not yet finished, on any thread:
 * test_runner.h fails a case that returns with one still open. */
static int test_open_contexts;

/* Creates a context with `dispatch` mode and `max_pending_events` (0: the
 * default). End it with test_context_finish(). */
static inline dgram_context *test_context(dgram_dispatch dispatch,
                                          uint32_t max_pending_events) {
    dgram_context_options o;
    memset(&o, 0, sizeof o);
    o.dispatch = dispatch;
    o.max_pending_events = max_pending_events;
    dgram_context *ctx = dgram_context_new(&o);
    CHECK(ctx != NULL);
    test_add(&test_open_contexts, 1);
    return ctx;
}

/* Ends a context made by test_context(): dispatches (host mode) or waits
 * (I/O-thread mode) until nothing is left active, for at most TEST_WAIT_MS,
 * checks that dgram_context_active is 0 and frees the context. A case
 * closes or frees its sockets first: a bound socket left open fails here. */
static inline void test_context_finish(dgram_context *ctx) {
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (dgram_context_active(ctx) != 0 && test_now_ms() < deadline) {
        int rc = dgram_context_run(ctx, 10);
        if (rc < 0)
            FAIL("dgram_context_run: %s", dgram_err_name(rc));
        if (rc == 0)
            test_sleep_ms(1);
    }
    if (dgram_context_active(ctx) != 0)
        FAIL("context still active (%u) at the end of the case",
             dgram_context_active(ctx));
    dgram_context_free(ctx);
    test_add(&test_open_contexts, -1);
}

/* For a context made by test_context() that the case freed some other way
 * (from inside a callback, or to test dgram_context_free itself). */
static inline void test_context_forget(dgram_context *ctx) {
    (void)ctx;
    test_add(&test_open_contexts, -1);
}

/* Default socket options of `type`, to adjust before test_socket_with. */
static inline dgram_socket_options test_opts(dgram_type type) {
    dgram_socket_options opts;
    memset(&opts, 0, sizeof opts);
    opts.type = type;
    return opts;
}

/* Creates a socket with `opts` (passed as is: NULL means udp4 defaults). */
static inline dgram_socket *test_socket_with(dgram_context *ctx,
                                             const dgram_socket_options *opts,
                                             dgram_message_cb on_message,
                                             void *userdata) {
    dgram_socket *s = NULL;
    CHECK_OK(dgram_create_socket(ctx, opts, on_message, userdata, &s));
    CHECK(s != NULL);
    return s;
}

/* Creates a socket of `type` with default options. */
static inline dgram_socket *test_socket(dgram_context *ctx, dgram_type type,
                                        dgram_message_cb on_message,
                                        void *userdata) {
    dgram_socket_options opts = test_opts(type);
    return test_socket_with(ctx, &opts, on_message, userdata);
}

/* The loopback address of `type`: "127.0.0.1" or "::1". */
static inline const char *test_loopback(dgram_type type) {
    return type == DGRAM_UDP4 ? "127.0.0.1" : "::1";
}

/* The name of `type`: "udp4" or "udp6". */
static inline const char *test_type_name(dgram_type type) {
    return type == DGRAM_UDP4 ? "udp4" : "udp6";
}

/* The port a bound socket got. */
static inline uint16_t test_port(dgram_socket *s) {
    dgram_addr a;
    CHECK_OK(dgram_address(s, &a));
    return a.port;
}

/* Binds `s` to `address` on a port the OS picks, with no callback and
 * without waiting for 'listening'; returns the port (never 0). */
static inline uint16_t test_bind(dgram_socket *s, const char *address) {
    CHECK_OK(dgram_bind(s, 0, address, NULL));
    uint16_t port = test_port(s);
    CHECK(port != 0);
    return port;
}

/* Checks the local address of a bound socket (dgram_address): `address`,
 * `family`, and `port`, where 0 means "any port but 0". Returns the port. */
static inline uint16_t test_check_bound(dgram_socket *s, const char *address,
                                        uint16_t port, dgram_family family) {
    dgram_addr a;
    memset(&a, 0x5a, sizeof a); /* dgram_address must write every field */
    CHECK_OK(dgram_address(s, &a));
    CHECK(a.port != 0);
    CHECK_ADDR(&a, address, port ? port : a.port, family);
    return a.port;
}

/* Reads an int socket option from the library socket's fd (getsockopt on
 * dgram_fileno), failing the test if it cannot. */
static inline int test_sockopt_int(dgram_socket *s, int level, int name) {
    int fd = dgram_fileno(s);
    CHECK(fd >= 0);
    int value = -12345;
    socklen_t len = sizeof value;
    if (getsockopt(fd, level, name, &value, &len) != 0)
        FAIL("getsockopt(%d, %d): %s", level, name, strerror(errno));
    CHECK_EQ(len, sizeof value);
    return value;
}

/* Checks an integer option setter (dgram_set_ttl, dgram_set_multicast_ttl)
 * against the option it sets: each of `good`, in turn, is accepted and read
 * back with getsockopt(level, name); then each of `bad` is DGRAM_EINVAL and
 * leaves the last good value in place. */
static inline void test_check_int_setter(dgram_socket *s,
                                         int (*set)(dgram_socket *, int32_t),
                                         int level, int name,
                                         const int32_t *good, size_t ngood,
                                         const int32_t *bad, size_t nbad) {
    for (size_t i = 0; i < ngood; i++) {
        int rc = set(s, good[i]);
        if (rc != 0)
            FAIL("setting %d returned %s", (int)good[i], dgram_err_name(rc));
        CHECK_EQ(test_sockopt_int(s, level, name), good[i]);
    }
    for (size_t i = 0; i < nbad; i++) {
        int rc = set(s, bad[i]);
        if (rc != DGRAM_EINVAL)
            FAIL("setting %d returned %s, expected EINVAL", (int)bad[i],
                 dgram_err_name(rc));
        CHECK(ngood > 0);
        CHECK_EQ(test_sockopt_int(s, level, name), good[ngood - 1]);
    }
}

/* Waits (without dispatching) until dgram_context_active(ctx) is `want`,
 * then checks that it stays there for 20 ms. Datagrams waiting for dispatch
 * are not in it: they wait in the socket's kernel buffer (see
 * test_wait_queued). */
static inline void test_wait_active(dgram_context *ctx, uint32_t want) {
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (dgram_context_active(ctx) != want) {
        if (test_now_ms() > deadline)
            FAIL("timed out waiting for dgram_context_active == %u (now %u)",
                 want, dgram_context_active(ctx));
        test_sleep_ms(1);
    }
    test_sleep_ms(20);
    CHECK_EQ(dgram_context_active(ctx), want);
}

/* Waits (without dispatching) until datagrams wait in `s`'s kernel receive
 * buffer, where they stay until the host dispatches (host mode), then 20 ms
 * more for any still on their way over loopback. */
static inline void test_wait_queued(dgram_socket *s) {
    struct pollfd p = {.fd = dgram_fileno(s), .events = POLLIN};
    if (p.fd < 0)
        FAIL("dgram_fileno: %s", dgram_err_name(p.fd));
    int n = poll(&p, 1, TEST_WAIT_MS);
    if (n != 1 || !(p.revents & POLLIN))
        FAIL("timed out waiting for a datagram in the socket's buffer");
    test_sleep_ms(20);
}

/* Callbacks that do nothing, for calls that must be refused before any
 * callback could run. */
static inline void test_ignore_message(dgram_socket *s, const uint8_t *msg,
                                       size_t len, const dgram_addr *rinfo,
                                       void *userdata) {
    (void)s, (void)msg, (void)len, (void)rinfo, (void)userdata;
}
static inline void test_ignore_event(dgram_socket *s, void *userdata) {
    (void)s, (void)userdata;
}
static inline void test_ignore_error(dgram_socket *s, const dgram_error *err,
                                     void *userdata) {
    (void)s, (void)err, (void)userdata;
}
static inline void test_ignore_sent(dgram_socket *s, const dgram_error *err,
                                    size_t length, void *send_data) {
    (void)s, (void)err, (void)length, (void)send_data;
}

/* Every call on `s`, a socket of `type` that is closed or whose context was
 * freed, answers DGRAM_EBADF: with good arguments and with bad ones (a
 * closed socket wins over bad arguments), with and without callbacks. */
static inline void test_check_all_ebadf(dgram_socket *s, dgram_type type) {
    static uint8_t big[70000]; /* over the largest datagram */
    const char *lo = test_loopback(type);
    const char *group = type == DGRAM_UDP4 ? "239.255.0.1" : "ff05::1:3";
    dgram_addr a;
    dgram_buf one = {"x", 1}, null_base = {NULL, 7};
    dgram_buf two[2] = {{"ab", 2}, {"cd", 2}};

    CHECK_CODE(dgram_bind(s, 0, lo, test_ignore_event), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, 0, "127.0.0.1", NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, 0, NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, 0, NULL, test_ignore_event), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, -1, "not an address", NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, -1, "garbage", test_ignore_event), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(s, 65536, "::1", NULL), DGRAM_EBADF);

    CHECK_CODE(dgram_send(s, "x", 1, 9, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, "x", 1, 9, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, "x", 1, 9, "127.0.0.1", test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, "x", 1, 9, NULL, NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, NULL, 0, 9, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, NULL, 0, 9, NULL, NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, "x", 1, 0, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, "x", 1, 70000, "garbage", test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, big, sizeof big, 9, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, NULL, 5, 9, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, NULL, 5, -1, "garbage", test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_send(s, NULL, 100000, 0, NULL, NULL, NULL), DGRAM_EBADF);

    CHECK_CODE(dgram_sendv(s, two, 2, 9, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_sendv(s, &one, 1, 9, "127.0.0.1", NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_sendv(s, &null_base, 1, 9, NULL, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_sendv(s, NULL, 0, 9, lo, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_sendv(s, NULL, 0, 9, NULL, test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_sendv(s, NULL, 3, 0, "garbage", test_ignore_sent, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_sendv(s, NULL, 3, -1, "garbage", test_ignore_sent, NULL), DGRAM_EBADF);

    memset(&a, 0x5a, sizeof a);
    CHECK_CODE(dgram_address(s, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_address(s, NULL), DGRAM_EBADF);

    CHECK_CODE(dgram_set_broadcast(s, true), DGRAM_EBADF);
    CHECK_CODE(dgram_set_broadcast(s, false), DGRAM_EBADF);
    CHECK_CODE(dgram_set_ttl(s, 64), DGRAM_EBADF);
    CHECK_CODE(dgram_set_ttl(s, 0), DGRAM_EBADF);
    CHECK_CODE(dgram_set_ttl(s, 256), DGRAM_EBADF);
    CHECK_CODE(dgram_set_ttl(s, INT32_MIN), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_ttl(s, 1), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_ttl(s, -1), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_ttl(s, 300), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_loopback(s, true), DGRAM_EBADF);
    CHECK_CODE(dgram_set_multicast_loopback(s, false), DGRAM_EBADF);

    CHECK_CODE(dgram_add_membership(s, group, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(s, "239.255.0.1", NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(s, NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(s, NULL, "eth0"), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(s, "garbage", "garbage"), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(s, lo, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_add_membership(s, "127.0.0.1", NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_drop_membership(s, group, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_drop_membership(s, NULL, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_drop_membership(s, "garbage", "garbage"), DGRAM_EBADF);

    CHECK_CODE(dgram_on_message(s, test_ignore_message), DGRAM_EBADF);
    CHECK_CODE(dgram_on_message(s, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_on_listening(s, test_ignore_event), DGRAM_EBADF);
    CHECK_CODE(dgram_on_listening(s, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_on_close(s, test_ignore_event), DGRAM_EBADF);
    CHECK_CODE(dgram_on_close(s, NULL), DGRAM_EBADF);
    CHECK_CODE(dgram_on_error(s, test_ignore_error), DGRAM_EBADF);
    CHECK_CODE(dgram_on_error(s, NULL), DGRAM_EBADF);

    CHECK_CODE(dgram_fileno(s), DGRAM_EBADF);
    CHECK_CODE(dgram_close(s, test_ignore_event), DGRAM_EBADF);
    CHECK_CODE(dgram_close(s, NULL), DGRAM_EBADF);
}

/* ---- network namespaces -------------------------------------------------
 *
 * Tests that send broadcast or multicast run only inside namespaces they make
 * themselves. The namespaces here are anonymous: they are held by this
 * process's file descriptors and vanish when it exits, however it exits, so
 * nothing is left behind even when a test fails or crashes.
 */

/* Runs a shell command (for `ip`), failing the test if it fails. */
static inline void test_sh(const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        FAIL("command failed (%d): %s", rc, cmd);
}

static inline void test_link_up(const char *ifname) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    CHECK(ioctl(fd, SIOCGIFFLAGS, &ifr) == 0);
    ifr.ifr_flags |= IFF_UP;
    CHECK(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0);
    close(fd);
}

/* Opens the calling thread's network namespace (an fd that keeps it alive;
 * not close-on-exec, so `ip` and `nsenter` children can name it). */
static inline int test_netns_current(void) {
    int fd = open("/proc/thread-self/ns/net", O_RDONLY);
    CHECK(fd >= 0);
    return fd;
}

/* Moves the calling thread into namespace `fd`. Sockets created afterwards
 * on this thread belong to it. */
static inline void test_netns_enter(int fd) {
    if (setns(fd, CLONE_NEWNET) != 0)
        FAIL("setns: %s", strerror(errno));
}

/* Moves the whole process into a new network namespace with only `lo`, up.
 * Call it first in a case, before any thread or context exists. Exits with
 * TEST_SKIP when namespaces cannot be made here. Returns the namespace's fd. */
static inline int test_netns_isolate_or_skip(void) {
    if (geteuid() != 0)
        test_skip("needs root to make a network namespace (unshare -n)");
    if (unshare(CLONE_NEWNET) != 0)
        test_skip("unshare(CLONE_NEWNET) failed: %s", strerror(errno));
    test_link_up("lo");
    return test_netns_current();
}

/* Two hosts joined by a veth pair, each in its own anonymous namespace:
 *   host A (this thread's namespace after the call): dgv0, 198.51.100.1/24,
 *     2001:db8::1/64
 *   host B (fd `peer_ns`): dgv1, 198.51.100.2/24, 2001:db8::2/64
 * Both have lo up and a route for IPv4 multicast (224.0.0.0/4) via the veth.
 * Call first in a case, before any thread or context exists. Exits with
 * TEST_SKIP when namespaces or `ip` are not available. */
typedef struct {
    int self_ns;
    int peer_ns;
} test_two_hosts;

static inline test_two_hosts test_two_hosts_or_skip(void) {
    test_two_hosts hosts;
    if (system("command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1") != 0)
        test_skip("needs `ip` (iproute2) and `nsenter` (util-linux)");
    test_netns_isolate_or_skip(); /* host B's namespace, for now */
    hosts.peer_ns = test_netns_current();
    if (unshare(CLONE_NEWNET) != 0)
        test_skip("unshare(CLONE_NEWNET) failed: %s", strerror(errno));
    test_link_up("lo");
    hosts.self_ns = test_netns_current();
    char peer[64];
    snprintf(peer, sizeof peer, "/proc/%d/fd/%d", (int)getpid(), hosts.peer_ns);
    test_sh("ip link add dgv0 type veth peer name dgv1 netns %s", peer);
    test_sh("ip addr add 198.51.100.1/24 dev dgv0 && ip -6 addr add 2001:db8::1/64 dev dgv0 nodad"
            " && ip link set dgv0 up && ip route add 224.0.0.0/4 dev dgv0");
    test_sh("nsenter --net=%s sh -c 'ip addr add 198.51.100.2/24 dev dgv1 && "
            "ip -6 addr add 2001:db8::2/64 dev dgv1 nodad && ip link set dgv1 up && "
            "ip route add 224.0.0.0/4 dev dgv1'",
            peer);
    /* A veth carries nothing until both ends report the carrier (LOWER_UP),
     * a moment after `up`: a datagram sent before is dropped silently. */
    test_sh("for i in $(seq 500); do ip link show dgv0 | grep -q LOWER_UP && "
            "nsenter --net=%s ip link show dgv1 | grep -q LOWER_UP && exit 0; sleep 0.01; done; exit 1",
            peer);
    return hosts;
}

/* Moves the calling thread into a new network namespace with only `lo`,
 * up; sockets it creates from now on belong there, and so do the `ip`
 * commands it runs. Returns the fd of the namespace to come back to (with
 * test_netns_enter), or -1 (nothing changed) when that is not possible here:
 * not root, no `ip`, or unshare refused. */
static inline int test_netns_push(void) {
    if (geteuid() != 0)
        return -1;
    if (system("command -v ip >/dev/null 2>&1") != 0)
        return -1;
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0)
        return -1;
    if (unshare(CLONE_NEWNET) != 0) {
        close(orig);
        return -1;
    }
    test_link_up("lo");
    return orig;
}

/* ---- a private namespace whose loopback holds datagrams back ---------------
 *
 * Moves the calling thread into a new network namespace with `lo` up and a
 * token-bucket qdisc on it (8 kbit/s after a 70000-byte burst): a datagram
 * that waits in the qdisc keeps its bytes charged to the sending socket, so
 * with a small SO_SNDBUF the next send gets EAGAIN and the library queues
 * it. Sockets created before test_slow_lo_leave() live in that namespace (and keep
 * it alive). Returns the fd of the original namespace, or -1 (nothing
 * changed) when this is not possible here. */
static inline int test_slow_lo_unavailable(const char *why) {
    /* CI must run the variants that really queue, not fall back. */
    if (getenv("DGRAM_TESTS_NO_SKIP") != NULL)
        FAIL("no private namespace with a slow lo (%s) and DGRAM_TESTS_NO_SKIP is set", why);
    return -1;
}

static inline int test_slow_lo_enter(void) {
    if (system("command -v tc >/dev/null 2>&1") != 0)
        return test_slow_lo_unavailable("no tc");
    int orig = test_netns_push();
    if (orig < 0)
        return test_slow_lo_unavailable("no network namespace");
    if (system("tc qdisc add dev lo root tbf rate 8kbit burst 70000 limit 20000000"
               " >/dev/null 2>&1") != 0) {
        test_netns_enter(orig);
        close(orig);
        return test_slow_lo_unavailable("tc refused the tbf qdisc");
    }
    return orig;
}

static inline void test_slow_lo_leave(int orig) {
    if (orig >= 0) {
        test_netns_enter(orig);
        close(orig);
    }
}

#endif /* DGRAM_TEST_UTIL_H */
