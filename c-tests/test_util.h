/*
 * Shared helpers for libdgram's C tests: assertions that print where and
 * what, a watchdog, event-loop helpers, and network namespaces that clean
 * themselves up.
 *
 * Every test program is one process; a failed assertion exits 1, a test that
 * cannot run here exits TEST_SKIP (77, CTest's SKIP_RETURN_CODE) after saying
 * why. No timing is asserted anywhere: waits have generous limits that only
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

/* Creates a socket of `type` with default options. */
static inline dgram_socket *test_socket(dgram_context *ctx, dgram_type type,
                                        dgram_message_cb on_message,
                                        void *userdata) {
    dgram_socket_options opts;
    memset(&opts, 0, sizeof opts);
    opts.type = type;
    dgram_socket *s = NULL;
    CHECK_OK(dgram_create_socket(ctx, &opts, on_message, userdata, &s));
    CHECK(s != NULL);
    return s;
}

/* The port a bound socket got. */
static inline uint16_t test_port(dgram_socket *s) {
    dgram_addr a;
    CHECK_OK(dgram_address(s, &a));
    return a.port;
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
 * Call it first in main(), before any thread or context exists. Exits with
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
 * Call first in main(), before any thread or context exists. Exits with
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
    return hosts;
}

#endif /* DGRAM_TEST_UTIL_H */
