/*
 * Host names in bind, send and connect: looked up on the context's resolver
 * thread (getaddrinfo), in call order with the socket's other operations;
 * failures as DGRAM_ENOTFOUND with syscall "getaddrinfo" and the host name;
 * malformed names refused at once; "localhost" never looked up.
 *
 * No lookup may leave the machine: before anything else, the process moves
 * into its own network namespace (only lo) and its own mount namespace, in
 * which /etc/hosts and /etc/nsswitch.conf ("hosts: files") are files of its
 * own, bind-mounted over the real ones. Both namespaces vanish with the
 * process.
 *
 * The "gate" makes a pending lookup deterministic: while it is held,
 * /etc/hosts is a FIFO, and the resolver thread blocks in getaddrinfo,
 * opening it, until the test lets it go on. Everything a pending lookup
 * implies (exact send queue figures, later operations waiting behind it,
 * EALREADY, ENOTCONN, cancellation by close, a context freed meanwhile) is
 * asserted while the lookup certainly cannot have finished, with no race
 * against a fast resolver. A held lookup then fails, so only names that do
 * not exist are held; lookups after it read the hosts file as usual.
 */
#include "recorder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>

static dgram_context *ctx;

/* The test's /etc/hosts. dgram-test-v6only has an IPv6 address only
 * (nothing is ever sent there: udp6 sockets do not look it up), unlike
 * dgram-test-six, which glibc also gives IPv4 lookups as 127.0.0.1 (its
 * files backend maps a ::1 line for them). */
static const char hosts_text[] = "127.0.0.1 localhost\n"
                                 "127.0.0.2 dgram-test-a\n"
                                 "127.0.0.3 dgram-test-b\n"
                                 "::1 dgram-test-six\n"
                                 "2001:db8::6 dgram-test-v6only\n";
static const char nsswitch_text[] = "hosts: files\n";

/* ---- the private name service ------------------------------------------- */

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    CHECK_EQ(write(fd, text, len), (ssize_t)len);
    CHECK(close(fd) == 0);
}

static void check_file(const char *path, const char *text) {
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(n >= 0);
    buf[n] = '\0';
    CHECK_STR(buf, text);
}

/* Bind-mounts a new file over `target`: a FIFO when `text` is NULL, else a
 * file holding `text`. Its name is removed at once (the mount holds it), so
 * nothing stays behind in /tmp whatever happens to the test. */
static void mount_new_file(const char *target, const char *text) {
    char dir[] = "/tmp/dgram-names-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/file", dir);
    if (text)
        write_file(path, text);
    else if (mkfifo(path, 0600) != 0)
        FAIL("mkfifo %s: %s", path, strerror(errno));
    int rc = mount(path, target, "none", MS_BIND, NULL);
    int mount_errno = errno;
    CHECK(unlink(path) == 0);
    CHECK(rmdir(dir) == 0);
    if (rc != 0)
        FAIL("mount --bind %s %s: %s", path, target, strerror(mount_errno));
}

/* Moves the process into a new network namespace and a new mount namespace
 * whose /etc/hosts and /etc/nsswitch.conf are the test's: no lookup can
 * reach a DNS server, or any other host. Call first in main(), before any
 * thread exists (unshare(CLONE_NEWNS) needs that). */
static void private_name_service_or_skip(void) {
    test_netns_isolate_or_skip();
    if (unshare(CLONE_NEWNS) != 0)
        test_skip("unshare(CLONE_NEWNS) failed: %s", strerror(errno));
    /* Mounts made here must not propagate back to the real system. */
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
        test_skip("mount --make-rprivate /: %s", strerror(errno));
    if (access("/etc/hosts", F_OK) != 0 || access("/etc/nsswitch.conf", F_OK) != 0)
        test_skip("needs /etc/hosts and /etc/nsswitch.conf to mount over");

    mount_new_file("/etc/nsswitch.conf", nsswitch_text);
    mount_new_file("/etc/hosts", hosts_text);
    check_file("/etc/hosts", hosts_text);
    check_file("/etc/nsswitch.conf", nsswitch_text);
}

/* ---- recorders -------------------------------------------------------------- */

/* An error as a callback saw it, copied (err->hostname lives only during
 * the callback). */
typedef struct {
    int code; /* 0: no error */
    const char *syscall;
    dgram_addr addr;
    bool has_hostname;
    char hostname[256];
} error_copy;

static void copy_error(error_copy *out, const dgram_error *err) {
    memset(out, 0, sizeof *out);
    if (err == NULL)
        return;
    out->code = err->code;
    out->syscall = err->syscall;
    out->addr = err->addr;
    if (err->hostname) {
        out->has_hostname = true;
        snprintf(out->hostname, sizeof out->hostname, "%s", err->hostname);
    }
}

/* One socket: its datagrams (inbox, plus each one's first byte in arrival
 * order) and its events, one letter each: L listening, C connect, E error,
 * X close, and the letters of its sends' completions. */
typedef struct {
    dgram_socket *s;
    inbox in;
    event_log arrivals;
    event_log events;
    int listenings, connects, errors, closes;
    error_copy error; /* the last 'error' */
} peer;

static void peer_on_message(dgram_socket *s, const uint8_t *msg, size_t len,
                            const dgram_addr *rinfo, void *userdata) {
    peer *p = userdata;
    event_log_add(&p->arrivals, len ? (char)msg[0] : '0');
    inbox_store(&p->in, s, msg, len, rinfo);
}

static void peer_on_listening(dgram_socket *s, void *userdata) {
    (void)s;
    peer *p = userdata;
    event_log_add(&p->events, 'L');
    test_add(&p->listenings, 1);
}

static void peer_on_connect(dgram_socket *s, void *userdata) {
    (void)s;
    peer *p = userdata;
    event_log_add(&p->events, 'C');
    test_add(&p->connects, 1);
}

static void peer_on_error(dgram_socket *s, const dgram_error *err, void *userdata) {
    (void)s;
    peer *p = userdata;
    CHECK(err != NULL);
    copy_error(&p->error, err);
    event_log_add(&p->events, 'E');
    test_add(&p->errors, 1);
}

static void peer_on_close(dgram_socket *s, void *userdata) {
    (void)s;
    peer *p = userdata;
    event_log_add(&p->events, 'X');
    test_add(&p->closes, 1);
}

/* A socket of `type` recording into `p`, with every handler set. */
static dgram_socket *peer_socket(peer *p, dgram_type type) {
    memset(p, 0, sizeof *p);
    p->s = test_socket(ctx, type, peer_on_message, p);
    p->in.socket = p->s;
    CHECK_OK(dgram_on_listening(p->s, peer_on_listening));
    CHECK_OK(dgram_on_connect(p->s, peer_on_connect));
    CHECK_OK(dgram_on_error(p->s, peer_on_error));
    CHECK_OK(dgram_on_close(p->s, peer_on_close));
    return p->s;
}

/* One send's completion, noted by letter in its socket's events. */
typedef struct {
    peer *owner;
    char letter;
    int count;
    size_t length;
    error_copy err;
} sent;

static void on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    sent *x = send_data;
    CHECK(s == x->owner->s);
    copy_error(&x->err, err);
    x->length = length;
    event_log_add(&x->owner->events, x->letter);
    test_add(&x->count, 1);
}

/* Sends `text` from p to address:port, completing into `x` (letter: the
 * text's first byte, lower-cased). Returns dgram_send's result. */
static int send_text(peer *p, sent *x, const char *text, uint16_t port, const char *address) {
    memset(x, 0, sizeof *x);
    x->owner = p;
    x->letter = (char)(text[0] | 0x20);
    return dgram_send(p->s, text, strlen(text), port, address, on_sent, x);
}

static void check_sent_ok(const sent *x, const char *text) {
    CHECK_EQ(x->count, 1);
    CHECK_CODE(x->err.code, 0);
    CHECK_EQ(x->length, strlen(text));
}

/* A lookup failure as the header describes it: the code, syscall
 * "getaddrinfo", the name, and no address. */
static void check_lookup_error(const error_copy *e, int code, const char *name) {
    CHECK_CODE(e->code, code);
    CHECK_STR(e->syscall, "getaddrinfo");
    CHECK(e->has_hostname);
    CHECK_STR(e->hostname, name);
    CHECK_STR(e->addr.address, "");
    CHECK_EQ(e->addr.port, 0);
}

static void check_queue(dgram_socket *s, int count, int bytes) {
    CHECK_EQ(dgram_send_queue_count(s), count);
    CHECK_EQ(dgram_send_queue_size(s), bytes);
}

/* A receiver bound to address:0; returns its port. */
static uint16_t receiver(peer *p, dgram_type type, const char *address) {
    peer_socket(p, type);
    uint16_t port = test_bind(p->s, address);
    RUN_UNTIL(ctx, p->listenings, 1);
    return port;
}

/* ---- the gate: lookups that wait for the test ------------------------------
 *
 * While the gate is held, /etc/hosts is a FIFO: the lookup that reaches it
 * blocks in open(2) until the test opens the other end. It then fails (glibc
 * 2.33 and later refuse a file they cannot seek, older ones read an empty
 * file), so a held lookup always ends "not found": the tests hold only
 * lookups of names that do not exist anyway. Lookups after it read the
 * hosts file again. */

/* An O_PATH fd of the FIFO while the gate is held. */
static int gate_fd = -1;

/* From now on the next lookup blocks in getaddrinfo until gate_release. At
 * most one lookup may reach the gate, and none may be under way when it is
 * called. (A mount cannot go on top of one whose file was unlinked, so the
 * hosts file is swapped out rather than covered.) */
static void gate_hold(void) {
    CHECK(gate_fd < 0);
    CHECK(umount2("/etc/hosts", MNT_DETACH) == 0);
    mount_new_file("/etc/hosts", NULL);
    gate_fd = open("/etc/hosts", O_PATH | O_CLOEXEC);
    CHECK(gate_fd >= 0);
}

/* Opens the FIFO's write end without blocking: -1 (ENXIO) while no lookup
 * waits in open(2) on it, which has no effect on the FIFO. */
static int gate_open_writer(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", gate_fd);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno != ENXIO)
        FAIL("open the gate's FIFO: %s", strerror(errno));
    return fd;
}

/* Puts the hosts file back in place of the FIFO: lookups from now on read
 * it, while a lookup blocked on the FIFO stays blocked. */
static void gate_remove(void) {
    CHECK(umount2("/etc/hosts", MNT_DETACH) == 0);
    mount_new_file("/etc/hosts", hosts_text);
}

/* Ends a gate that no lookup reached (the caller knows that none started:
 * whatever would have needed one has completed). */
static void gate_release_unused(void) {
    int writer = gate_open_writer();
    if (writer >= 0)
        FAIL("a lookup is waiting at the gate, where none was expected");
    gate_remove();
    CHECK(close(gate_fd) == 0);
    gate_fd = -1;
    check_file("/etc/hosts", hosts_text);
}

/* 1 when a resolver thread ("dgram-resolve") is blocked in open(2) of a
 * path (openat(AT_FDCWD, ...), as /proc/self/task/TID/syscall shows it),
 * which during a lookup happens only at the gate; 0 when not; -1 when no
 * thread of that name can be seen. */
static int resolver_at_gate(void) {
    DIR *dir = opendir("/proc/self/task");
    CHECK(dir != NULL);
    int result = -1;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], text[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        bool named = fgets(text, sizeof text, f) && strcmp(text, "dgram-resolve\n") == 0;
        fclose(f);
        if (!named)
            continue;
        if (result < 0)
            result = 0;
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        f = fopen(path, "re");
        if (!f)
            continue;
        long nr;
        unsigned long long arg;
        if (fgets(text, sizeof text, f) && sscanf(text, "%ld %llx", &nr, &arg) == 2 &&
            (arg == 0xffffff9cULL || arg == 0xffffffffffffff9cULL))
            result = 1;
        fclose(f);
    }
    closedir(dir);
    return result;
}

/* Waits until the lookup held by the gate is under way: the resolver thread
 * is inside getaddrinfo, blocked on the FIFO. Best effort: false (with a
 * note) where the thread cannot be observed; the callers' assertions hold
 * either way, this only makes sure they test the lookup in flight. */
static bool wait_for_lookup_at_gate(void) {
    long long start = test_now_ms();
    for (;;) {
        int at = resolver_at_gate();
        if (at == 1)
            return true;
        long long waited = test_now_ms() - start;
        if ((at < 0 && waited > 2000) || waited > 5000) {
            printf("  note: cannot see the resolver thread blocked at the gate\n");
            return false;
        }
        test_sleep_ms(1);
    }
}

/* Lets a lookup waiting in open(2) on the FIFO go on (and fail); false
 * when none waits there. */
static bool gate_pump(void) {
    int writer = gate_open_writer();
    if (writer < 0)
        return false;
    CHECK(close(writer) == 0);
    return true;
}

/* Ends the gate, and returns once the lookup it held is over: the hosts
 * file comes back (a lookup that had not reached the FIFO yet reads it
 * instead), a lookup at the FIFO is let go, and a sentinel lookup queued
 * behind it on ctx's resolver thread (a name that does not exist, so
 * nothing is sent) has completed, dispatching ctx meanwhile. */
static void gate_release(void) {
    gate_remove();
    peer sentinel;
    peer_socket(&sentinel, DGRAM_UDP4);
    sent x;
    CHECK_OK(send_text(&sentinel, &x, "sentinel", 9, "no-such-host.invalid"));
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (test_load(&x.count) < 1) {
        gate_pump();
        int rc = dgram_context_run(ctx, 5);
        if (rc < 0)
            FAIL("dgram_context_run: %s", dgram_err_name(rc));
        if (test_now_ms() > deadline)
            FAIL("timed out waiting for the lookups behind the gate");
    }
    CHECK_CODE(x.err.code, DGRAM_ENOTFOUND);
    dgram_socket_free(sentinel.s);
    CHECK(close(gate_fd) == 0);
    gate_fd = -1;
}

/* ---- send ---------------------------------------------------------------- */

/* A send to a name from an unbound socket: bound first ('listening' before
 * the send's callback), then the datagram reaches the name's address. */
static void test_send_to_name(void) {
    peer rx, tx;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.2");
    peer_socket(&tx, DGRAM_UDP4);
    sent a;
    CHECK_OK(send_text(&tx, &a, "A via dgram-test-a", port, "dgram-test-a"));
    RUN_UNTIL(ctx, a.count, 1);
    check_sent_ok(&a, "A via dgram-test-a");
    RUN_UNTIL(ctx, rx.in.count, 1);
    check_inbox_text(&rx.in, 1, "A via dgram-test-a", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    CHECK_STR(tx.events.text, "La");
    check_queue(tx.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.in.count, 1);
    dgram_socket_free(tx.s);
    dgram_socket_free(rx.s);
}

/* Sends made right after a send to a name keep their call order, on the
 * wire and in their callbacks. */
static void test_send_order_behind_name(void) {
    peer rx, tx;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.2");
    peer_socket(&tx, DGRAM_UDP4);
    sent a, b, c;
    CHECK_OK(send_text(&tx, &a, "A first, by name", port, "dgram-test-a"));
    CHECK_OK(send_text(&tx, &b, "B second", port, "127.0.0.2"));
    CHECK_OK(send_text(&tx, &c, "C third", port, "127.0.0.2"));
    RUN_UNTIL(ctx, c.count, 1);
    RUN_UNTIL(ctx, rx.in.count, 3);
    check_sent_ok(&a, "A first, by name");
    check_sent_ok(&b, "B second");
    check_sent_ok(&c, "C third");
    CHECK_STR(tx.events.text, "Labc");
    CHECK_STR(rx.arrivals.text, "ABC");
    check_inbox_text(&rx.in, 3, "C third", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    check_queue(tx.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.in.count, 3);
    dgram_socket_free(tx.s);
    dgram_socket_free(rx.s);
}

/* While a lookup is held, the sends behind it wait too (a second name, a
 * numeric address): all three are counted, exactly, in the send queue,
 * none goes out and the socket is not bound yet. Then the held one fails,
 * and the others go, in order. */
static void test_sends_wait_behind_held_lookup(void) {
    peer rx, tx;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.2");
    peer_socket(&tx, DGRAM_UDP4);
    sent x, a, b;
    gate_hold();
    CHECK_OK(send_text(&tx, &x, "X held, then not found", port, "no-such-host.invalid"));
    check_queue(tx.s, 1, (int)strlen("X held, then not found"));
    CHECK_OK(send_text(&tx, &a, "A by name", port, "dgram-test-a"));
    CHECK_OK(send_text(&tx, &b, "B by number", port, "127.0.0.2"));
    int bytes = (int)(strlen("X held, then not found") + strlen("A by name") + strlen("B by number"));
    check_queue(tx.s, 3, bytes);
    wait_for_lookup_at_gate();
    test_run_for(ctx, 50);
    check_queue(tx.s, 3, bytes);
    CHECK_STR(tx.events.text, "");
    CHECK_EQ(rx.in.count, 0);
    dgram_addr local;
    CHECK_CODE(dgram_address(tx.s, &local), DGRAM_EBADF); /* not bound yet */
    gate_release();
    RUN_UNTIL(ctx, b.count, 1);
    RUN_UNTIL(ctx, rx.in.count, 2);
    CHECK_STR(tx.events.text, "xLab");
    check_lookup_error(&x.err, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_EQ(x.length, strlen("X held, then not found"));
    check_sent_ok(&a, "A by name");
    check_sent_ok(&b, "B by number");
    CHECK_STR(rx.arrivals.text, "AB");
    check_inbox_text(&rx.in, 2, "B by number", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    check_queue(tx.s, 0, 0);
    dgram_socket_free(tx.s);
    dgram_socket_free(rx.s);
}

/* A name that does not resolve fails its send with ENOTFOUND (accepted
 * first); the next send, numeric, still goes, and completes after it. */
static void test_send_to_unknown_name(void) {
    peer rx, tx;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.1");
    peer_socket(&tx, DGRAM_UDP4);
    sent x, y;
    CHECK_OK(send_text(&tx, &x, "X lost", port, "no-such-host.invalid"));
    CHECK_OK(send_text(&tx, &y, "Y found", port, "127.0.0.1"));
    RUN_UNTIL(ctx, y.count, 1);
    CHECK_EQ(x.count, 1);
    check_lookup_error(&x.err, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_EQ(x.length, strlen("X lost"));
    check_sent_ok(&y, "Y found");
    RUN_UNTIL(ctx, rx.in.count, 1);
    check_inbox_text(&rx.in, 1, "Y found", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    /* The failed send bound nothing; the numeric one did. */
    CHECK_STR(tx.events.text, "xLy");
    CHECK_EQ(tx.errors, 0); /* a send with a callback reports there only */
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(tx.s, &st));
    CHECK_EQ(st.send_errors, 1);
    CHECK_EQ(st.datagrams_sent, 1);
    CHECK_EQ(st.bytes_sent, strlen("Y found"));
    check_queue(tx.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.in.count, 1);
    dgram_socket_free(tx.s);
    dgram_socket_free(rx.s);
}

/* A failed lookup of a send without a callback comes as an 'error' event. */
static void test_send_to_unknown_name_without_callback(void) {
    peer tx;
    peer_socket(&tx, DGRAM_UDP4);
    CHECK_OK(dgram_send(tx.s, "lost", 4, 9, "no-such-host.invalid", NULL, NULL));
    RUN_UNTIL(ctx, tx.errors, 1);
    check_lookup_error(&tx.error, DGRAM_ENOTFOUND, "no-such-host.invalid");
    test_run_for(ctx, 20);
    CHECK_STR(tx.events.text, "E");
    dgram_socket_free(tx.s);
}

/* A name with addresses of the other family only does not resolve for the
 * socket: udp4 to an IPv6-only name, udp6 to an IPv4-only one. */
static void test_send_to_name_of_other_family(void) {
    peer tx4, tx6;
    peer_socket(&tx4, DGRAM_UDP4);
    peer_socket(&tx6, DGRAM_UDP6);
    sent a, b;
    CHECK_OK(send_text(&tx4, &a, "a", 9, "dgram-test-v6only"));
    CHECK_OK(send_text(&tx6, &b, "b", 9, "dgram-test-a"));
    RUN_UNTIL(ctx, a.count, 1);
    RUN_UNTIL(ctx, b.count, 1);
    check_lookup_error(&a.err, DGRAM_ENOTFOUND, "dgram-test-v6only");
    check_lookup_error(&b.err, DGRAM_ENOTFOUND, "dgram-test-a");
    CHECK_EQ(a.length, 1);
    CHECK_EQ(b.length, 1);
    CHECK_STR(tx4.events.text, "a");
    CHECK_STR(tx6.events.text, "b");
    dgram_socket_free(tx4.s);
    dgram_socket_free(tx6.s);
}

/* Closing a socket whose send waits for a lookup (held at the gate)
 * cancels it and the send queued behind it, in order, before 'close'; the
 * answer that comes afterwards is nobody's. */
static void test_close_cancels_send_waiting_for_lookup(void) {
    peer tx;
    peer_socket(&tx, DGRAM_UDP4);
    sent a, b;
    gate_hold();
    CHECK_OK(send_text(&tx, &a, "A waits for its name", 9, "no-such-host.invalid"));
    CHECK_OK(send_text(&tx, &b, "B waits behind it", 9, "127.0.0.1"));
    wait_for_lookup_at_gate();
    CHECK_OK(dgram_close(tx.s, NULL));
    RUN_UNTIL(ctx, tx.closes, 1);
    CHECK_STR(tx.events.text, "abX");
    CHECK_CODE(a.err.code, DGRAM_ECANCELED);
    CHECK_EQ(a.length, strlen("A waits for its name"));
    CHECK(!a.err.has_hostname);
    CHECK_CODE(b.err.code, DGRAM_ECANCELED);
    CHECK_EQ(b.length, strlen("B waits behind it"));
    gate_release();
    test_run_for(ctx, 50);
    CHECK_STR(tx.events.text, "abX");
    CHECK_EQ(a.count, 1);
    CHECK_EQ(b.count, 1);
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(tx.s, &st));
    CHECK_EQ(st.send_errors, 2);
    CHECK_EQ(st.datagrams_sent, 0);
    CHECK_CODE(dgram_send_queue_count(tx.s), DGRAM_EBADF);
    dgram_socket_free(tx.s);
}

/* ---- bind ------------------------------------------------------------------ */

/* bind to a name: 'listening' once the lookup is done, bound to its
 * address; a second bind is EALREADY whether the lookup is done or not. */
static void test_bind_to_name(void) {
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    CHECK_OK(dgram_bind(p.s, 0, "dgram-test-b", NULL));
    CHECK_CODE(dgram_bind(p.s, 0, "dgram-test-b", NULL), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(p.s, 0, "127.0.0.1", NULL), DGRAM_EALREADY);
    RUN_UNTIL(ctx, p.listenings, 1);
    uint16_t port = test_check_bound(p.s, "127.0.0.3", 0, DGRAM_IPV4);
    CHECK_CODE(dgram_bind(p.s, 0, "dgram-test-b", NULL), DGRAM_EALREADY);

    /* It receives there. */
    peer tx;
    peer_socket(&tx, DGRAM_UDP4);
    sent x;
    CHECK_OK(send_text(&tx, &x, "to dgram-test-b", port, "127.0.0.3"));
    RUN_UNTIL(ctx, p.in.count, 1);
    check_inbox_text(&p.in, 1, "to dgram-test-b", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    test_run_for(ctx, 20);
    CHECK_STR(p.events.text, "L");
    CHECK_EQ(p.errors, 0);
    dgram_socket_free(tx.s);
    dgram_socket_free(p.s);
}

/* bind to a name with no address: while its lookup is held the socket is
 * not bound and binds are EALREADY; then an 'error' event and no
 * 'listening'; the socket may be bound again afterwards. */
static void test_bind_to_unknown_name(void) {
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    gate_hold();
    int listenings = test_load(&test_listenings);
    CHECK_OK(dgram_bind(p.s, 0, "no-such-host.invalid", test_count_listening));
    wait_for_lookup_at_gate();
    dgram_addr a;
    CHECK_CODE(dgram_address(p.s, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(p.s, 0, "no-such-host.invalid", NULL), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(p.s, 0, "127.0.0.1", NULL), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(p.s, 0, NULL, NULL), DGRAM_EALREADY);
    test_run_for(ctx, 20);
    CHECK_STR(p.events.text, "");
    gate_release();
    RUN_UNTIL(ctx, p.errors, 1);
    check_lookup_error(&p.error, DGRAM_ENOTFOUND, "no-such-host.invalid");
    test_run_for(ctx, 50);
    CHECK_STR(p.events.text, "E");
    CHECK_EQ(test_listenings, listenings); /* the one-shot never runs */
    CHECK_CODE(dgram_address(p.s, &a), DGRAM_EBADF);

    test_bind(p.s, "127.0.0.1");
    RUN_UNTIL(ctx, p.listenings, 1);
    CHECK_STR(p.events.text, "EL");
    CHECK_EQ(test_listenings, listenings);
    dgram_socket_free(p.s);
}

/* A send made right after a bind to a name waits for that bind, and goes
 * out from the name's address. */
static void test_send_waits_for_bind_to_name(void) {
    peer rx, p;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.1");
    peer_socket(&p, DGRAM_UDP4);
    CHECK_OK(dgram_bind(p.s, 0, "dgram-test-b", NULL));
    sent a;
    CHECK_OK(send_text(&p, &a, "A from dgram-test-b", port, "127.0.0.1"));
    RUN_UNTIL(ctx, a.count, 1);
    check_sent_ok(&a, "A from dgram-test-b");
    CHECK_STR(p.events.text, "La");
    uint16_t local = test_check_bound(p.s, "127.0.0.3", 0, DGRAM_IPV4);
    RUN_UNTIL(ctx, rx.in.count, 1);
    check_inbox_text(&rx.in, 1, "A from dgram-test-b", "127.0.0.3", local, DGRAM_IPV4);
    dgram_socket_free(p.s);
    dgram_socket_free(rx.s);
}

/* A send waiting behind a bind whose lookup fails still completes, once:
 * after the bind's 'error', the socket is bound as for any send on an
 * unbound socket (0.0.0.0, with 'listening'), and the datagram goes. */
static void test_send_behind_failed_bind_lookup(void) {
    peer rx, p;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.1");
    peer_socket(&p, DGRAM_UDP4);
    gate_hold();
    CHECK_OK(dgram_bind(p.s, 0, "no-such-host.invalid", NULL));
    sent a;
    CHECK_OK(send_text(&p, &a, "A behind a failed bind", port, "127.0.0.1"));
    check_queue(p.s, 1, (int)strlen("A behind a failed bind"));
    wait_for_lookup_at_gate();
    gate_release();
    RUN_UNTIL(ctx, a.count, 1);
    CHECK_STR(p.events.text, "ELa");
    check_lookup_error(&p.error, DGRAM_ENOTFOUND, "no-such-host.invalid");
    check_sent_ok(&a, "A behind a failed bind");
    uint16_t local = test_check_bound(p.s, "0.0.0.0", 0, DGRAM_IPV4);
    RUN_UNTIL(ctx, rx.in.count, 1);
    check_inbox_text(&rx.in, 1, "A behind a failed bind", "127.0.0.1", local, DGRAM_IPV4);
    dgram_socket_free(p.s);
    dgram_socket_free(rx.s);
}

/* Closing a socket whose bind waits for its lookup: 'close' only, neither
 * 'listening' nor 'error', also once the lookup has failed. */
static void test_close_during_bind_lookup(void) {
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    gate_hold();
    CHECK_OK(dgram_bind(p.s, 0, "no-such-host.invalid", NULL));
    wait_for_lookup_at_gate();
    CHECK_OK(dgram_close(p.s, NULL));
    gate_release();
    RUN_UNTIL(ctx, p.closes, 1);
    test_run_for(ctx, 20);
    CHECK_STR(p.events.text, "X");
    dgram_socket_free(p.s);
}

/* Freeing a socket whose send waits for a lookup: no callback at all. */
static void test_free_during_send_lookup(void) {
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    gate_hold();
    sent a;
    CHECK_OK(send_text(&p, &a, "A freed", 9, "no-such-host.invalid"));
    wait_for_lookup_at_gate();
    dgram_socket_free(p.s);
    gate_release();
    test_run_for(ctx, 20);
    CHECK_EQ(a.count, 0);
    CHECK_STR(p.events.text, "");
}

/* ---- connect --------------------------------------------------------------- */

/* connect to a name, and a send to the peer made at once: 'listening',
 * 'connect', then the send, which reaches the name's address. A second
 * connect is EISCONN whether the lookup is done or not. */
static void test_connect_to_name(void) {
    peer rx, p;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.2");
    peer_socket(&p, DGRAM_UDP4);
    CHECK_OK(dgram_connect(p.s, port, "dgram-test-a", NULL));
    CHECK_CODE(dgram_connect(p.s, port, "127.0.0.2", NULL), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(p.s, "x", 1, port, "127.0.0.2", NULL, NULL), DGRAM_EISCONN);
    sent s;
    CHECK_OK(send_text(&p, &s, "S to the peer", 0, NULL));
    RUN_UNTIL(ctx, s.count, 1);
    CHECK_STR(p.events.text, "LCs");
    check_sent_ok(&s, "S to the peer");
    dgram_addr a;
    memset(&a, 0, sizeof a);
    CHECK_OK(dgram_remote_address(p.s, &a));
    CHECK_ADDR(&a, "127.0.0.2", port, DGRAM_IPV4);
    RUN_UNTIL(ctx, rx.in.count, 1);
    check_inbox_text(&rx.in, 1, "S to the peer", "127.0.0.1", test_port(p.s), DGRAM_IPV4);
    check_queue(p.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.in.count, 1);
    CHECK_STR(p.events.text, "LCs");
    dgram_socket_free(p.s);
    dgram_socket_free(rx.s);
}

/* connect to a name with no address: while its lookup is held the socket
 * is not connected (ENOTCONN) but connecting (EISCONN), and a send to the
 * peer waits; then an 'error' event, the waiting send fails with ENOTCONN,
 * and the socket can connect again. */
static void test_connect_to_unknown_name(void) {
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    gate_hold();
    CHECK_OK(dgram_connect(p.s, 9, "no-such-host.invalid", NULL));
    sent s;
    CHECK_OK(send_text(&p, &s, "S for no peer", 0, NULL));
    wait_for_lookup_at_gate();
    dgram_addr a;
    CHECK_CODE(dgram_remote_address(p.s, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(p.s), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_connect(p.s, 9, "127.0.0.1", NULL), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(p.s, "x", 1, 9, "127.0.0.1", NULL, NULL), DGRAM_EISCONN);
    check_queue(p.s, 1, (int)strlen("S for no peer"));
    test_run_for(ctx, 20);
    CHECK_STR(p.events.text, "");
    gate_release();
    RUN_UNTIL(ctx, s.count, 1);
    CHECK_STR(p.events.text, "Es");
    check_lookup_error(&p.error, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_CODE(s.err.code, DGRAM_ENOTCONN);
    CHECK_EQ(s.length, strlen("S for no peer"));
    CHECK_CODE(dgram_remote_address(p.s, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(p.s), DGRAM_ENOTCONN);
    check_queue(p.s, 0, 0);
    /* Not connected: a send needs a destination again. */
    CHECK_CODE(dgram_send(p.s, "x", 1, 0, NULL, NULL, NULL), DGRAM_EINVAL);

    /* And it may connect now. */
    peer rx;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.1");
    CHECK_OK(dgram_connect(p.s, port, "127.0.0.1", NULL));
    RUN_UNTIL(ctx, p.connects, 1);
    CHECK_STR(p.events.text, "EsLC");
    CHECK_OK(dgram_remote_address(p.s, &a));
    CHECK_ADDR(&a, "127.0.0.1", port, DGRAM_IPV4);
    dgram_socket_free(rx.s);
    dgram_socket_free(p.s);
}

/* The same without holding the lookup: 'error', then ENOTCONN. */
static void test_connect_to_unknown_name_unheld(void) {
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    CHECK_OK(dgram_connect(p.s, 9, "no-such-host.invalid", NULL));
    RUN_UNTIL(ctx, p.errors, 1);
    check_lookup_error(&p.error, DGRAM_ENOTFOUND, "no-such-host.invalid");
    dgram_addr a;
    CHECK_CODE(dgram_remote_address(p.s, &a), DGRAM_ENOTCONN);
    test_run_for(ctx, 20);
    CHECK_STR(p.events.text, "E");
    dgram_socket_free(p.s);
}

/* ---- send_batch and dgram_context_active ---------------------------------- */

static void batch_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    (void)s;
    event_log *log = send_data;
    /* A letter per completion: the datagram's length as 'a' + length, upper
     * case when it failed. */
    event_log_add(log, (char)((err ? 'A' : 'a') + (int)length));
}

/* dgram_send_batch takes no host name (but "localhost"), and a batch made
 * while a send waits for a lookup waits behind it, counted in the queue,
 * then goes in order. */
static void test_batch_behind_held_lookup(void) {
    peer rx, tx;
    uint16_t port = receiver(&rx, DGRAM_UDP4, "127.0.0.1");
    peer_socket(&tx, DGRAM_UDP4);
    event_log log;
    memset(&log, 0, sizeof log);
    const dgram_buf batch[] = {{"B", 1}, {"Cc", 2}, {"Ddd", 3}};
    CHECK_CODE(dgram_send_batch(tx.s, batch, 3, port, "dgram-test-a", batch_sent, &log),
               DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(tx.s, batch, 3, port, "no-such-host.invalid", NULL, NULL),
               DGRAM_EINVAL);
    check_queue(tx.s, 0, 0);

    gate_hold();
    sent x;
    CHECK_OK(send_text(&tx, &x, "X held", port, "no-such-host.invalid"));
    CHECK_OK(dgram_send_batch(tx.s, batch, 3, port, "localhost", batch_sent, &log));
    check_queue(tx.s, 4, (int)strlen("X held") + 6);
    wait_for_lookup_at_gate();
    test_run_for(ctx, 20);
    CHECK_EQ(rx.in.count, 0);
    CHECK_STR(log.text, "");
    gate_release();
    RUN_UNTIL(ctx, rx.in.count, 3);
    CHECK_STR(rx.arrivals.text, "BCD");
    check_inbox_text(&rx.in, 3, "Ddd", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    CHECK_STR(tx.events.text, "xL");
    check_lookup_error(&x.err, DGRAM_ENOTFOUND, "no-such-host.invalid");
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (log.len < 3 && test_now_ms() < deadline)
        dgram_context_run(ctx, 10);
    CHECK_STR(log.text, "bcd");
    check_queue(tx.s, 0, 0);
    dgram_socket_free(tx.s);
    dgram_socket_free(rx.s);
}

/* A pending lookup keeps the context active (a host loop must not end
 * while it runs), also for an unreferenced socket; once its completion is
 * dispatched, nothing is left. */
static void test_lookup_keeps_context_active(void) {
    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 0);
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    CHECK_OK(dgram_socket_unref(p.s));
    gate_hold();
    sent a;
    CHECK_OK(send_text(&p, &a, "A pending", 9, "no-such-host.invalid"));
    CHECK_EQ(dgram_context_active(ctx), 1);
    wait_for_lookup_at_gate();
    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(a.count, 0);
    gate_release(); /* dispatches ctx until a lookup behind this one is done */
    RUN_UNTIL(ctx, a.count, 1);
    check_lookup_error(&a.err, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_EQ(dgram_context_active(ctx), 0);
    /* The same host loop as in the header ends on its own. */
    while (dgram_context_active(ctx) && dgram_context_run(ctx, -1) >= 0) {
    }
    dgram_socket_free(p.s);
}

/* ---- udp6 ------------------------------------------------------------------ */

/* An IPv6 name, for bind, send and connect: dgram-test-six is ::1. */
static void test_udp6_names(void) {
    peer rx, tx;
    peer_socket(&rx, DGRAM_UDP6);
    CHECK_OK(dgram_bind(rx.s, 0, "dgram-test-six", NULL));
    RUN_UNTIL(ctx, rx.listenings, 1);
    uint16_t port = test_check_bound(rx.s, "::1", 0, DGRAM_IPV6);

    peer_socket(&tx, DGRAM_UDP6);
    sent a;
    CHECK_OK(send_text(&tx, &a, "A over IPv6", port, "dgram-test-six"));
    RUN_UNTIL(ctx, rx.in.count, 1);
    check_inbox_text(&rx.in, 1, "A over IPv6", "::1", test_port(tx.s), DGRAM_IPV6);
    RUN_UNTIL(ctx, a.count, 1);
    check_sent_ok(&a, "A over IPv6");

    peer c;
    peer_socket(&c, DGRAM_UDP6);
    CHECK_OK(dgram_connect(c.s, port, "dgram-test-six", NULL));
    RUN_UNTIL(ctx, c.connects, 1);
    dgram_addr remote;
    CHECK_OK(dgram_remote_address(c.s, &remote));
    CHECK_ADDR(&remote, "::1", port, DGRAM_IPV6);
    sent b;
    CHECK_OK(send_text(&c, &b, "B connected", 0, NULL));
    RUN_UNTIL(ctx, rx.in.count, 2);
    check_inbox_text(&rx.in, 2, "B connected", "::1", test_port(c.s), DGRAM_IPV6);
    RUN_UNTIL(ctx, b.count, 1);
    CHECK_STR(c.events.text, "LCb");
    dgram_socket_free(c.s);
    dgram_socket_free(tx.s);
    dgram_socket_free(rx.s);
}

/* ---- malformed names and "localhost" --------------------------------------- */

/* Text that is neither an address of the socket's family nor a well-formed
 * name (src/addr.rs is_host_name: dot-separated labels of letters, digits,
 * '-' and '_', 1..63 bytes each, 253 in all, not digits and dots only) is
 * DGRAM_EINVAL at once, from send, bind and connect, with no effect. */
static void test_malformed_names(void) {
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    long_label[64] = '\0'; /* one byte over a label's limit */
    long_name[0] = '\0';
    for (int i = 0; i < 51; i++) /* 4 + 50 * 5 = 254 bytes: one over */
        strcat(long_name, i ? ".abcd" : "abcd");
    CHECK_EQ(strlen(long_name), 254);
    const char *bad4[] = {"", "bad name", "a..b", ".a", "..", "a.b..", "x/y", "dgram-test-a:80",
                          "dgram-test-a%lo", "1.2.3", "256.0.0.1", "1.2.3.4.5", "::1", "h\xc3\xa9h\xc3\xa9",
                          long_label, long_name};
    const char *bad6[] = {"", "bad name", "a..b", "127.0.0.1", "1.2.3", "::1::2", "[::1]",
                          long_label, long_name};
    const struct {
        dgram_type type;
        const char **names;
        size_t count;
    } cases[] = {{DGRAM_UDP4, bad4, sizeof bad4 / sizeof *bad4},
                 {DGRAM_UDP6, bad6, sizeof bad6 / sizeof *bad6}};
    for (size_t c = 0; c < 2; c++) {
        peer p;
        peer_socket(&p, cases[c].type);
        for (size_t i = 0; i < cases[c].count; i++) {
            const char *name = cases[c].names[i];
            sent x;
            int rc = send_text(&p, &x, "x", 9, name);
            if (rc != DGRAM_EINVAL)
                FAIL("%s send to \"%s\" returned %s, expected EINVAL",
                     test_type_name(cases[c].type), name, dgram_err_name(rc));
            rc = dgram_bind(p.s, 0, name, NULL);
            if (rc != DGRAM_EINVAL)
                FAIL("%s bind to \"%s\" returned %s, expected EINVAL",
                     test_type_name(cases[c].type), name, dgram_err_name(rc));
            rc = dgram_connect(p.s, 9, name, NULL);
            if (rc != DGRAM_EINVAL)
                FAIL("%s connect to \"%s\" returned %s, expected EINVAL",
                     test_type_name(cases[c].type), name, dgram_err_name(rc));
        }
        /* Nothing happened: not bound, nothing queued, no event. */
        dgram_addr a;
        CHECK_CODE(dgram_address(p.s, &a), DGRAM_EBADF);
        check_queue(p.s, 0, 0);
        test_run_for(ctx, 20);
        CHECK_STR(p.events.text, "");
        dgram_socket_free(p.s);
    }
}

/* The longest well-formed name (a 63-byte label, 253 bytes in all), a
 * label starting with '-', '_' inside, and a trailing dot are names as far
 * as the library is concerned: accepted, then not found by the resolver. */
static void test_odd_but_well_formed_names(void) {
    char label63[64], name253[254];
    memset(label63, 'b', 63);
    label63[63] = '\0';
    name253[0] = '\0';
    for (int i = 0; i < 42; i++) /* 5 + 41 * 6 = 251 bytes */
        strcat(name253, i ? ".abcde" : "abcde");
    strcat(name253, ".z");
    CHECK_EQ(strlen(name253), 253);
    const char *names[] = {label63, name253, "-x", "a_b.invalid", "no-such-host.invalid."};
    peer p;
    peer_socket(&p, DGRAM_UDP4);
    sent x[5];
    for (int i = 0; i < 5; i++) {
        CHECK_OK(send_text(&p, &x[i], "x", 9, names[i]));
        x[i].letter = (char)('a' + i);
    }
    RUN_UNTIL(ctx, x[4].count, 1);
    CHECK_STR(p.events.text, "abcde");
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(x[i].count, 1);
        check_lookup_error(&x[i].err, DGRAM_ENOTFOUND, names[i]);
    }
    dgram_socket_free(p.s);
}

/* "localhost" is 127.0.0.1 (udp4) or ::1 (udp6) without any lookup: bind
 * and connect to it are done when they return, and bind, send and connect
 * complete while the gate would hold any lookup. */
static void test_localhost_needs_no_lookup(void) {
    static const dgram_type types[] = {DGRAM_UDP4, DGRAM_UDP6};
    for (int t = 0; t < 2; t++) {
        dgram_type type = types[t];
        dgram_family family = type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6;
        const char *lo = test_loopback(type);
        gate_hold();
        peer rx, tx, c;
        peer_socket(&rx, type);
        CHECK_OK(dgram_bind(rx.s, 0, "localhost", NULL));
        uint16_t port = test_check_bound(rx.s, lo, 0, family); /* at once */
        peer_socket(&tx, type);
        sent a;
        CHECK_OK(send_text(&tx, &a, "A to localhost", port, "localhost"));
        RUN_UNTIL(ctx, rx.in.count, 1);
        check_inbox_text(&rx.in, 1, "A to localhost", lo, test_port(tx.s), family);
        RUN_UNTIL(ctx, a.count, 1);
        check_sent_ok(&a, "A to localhost");
        peer_socket(&c, type);
        CHECK_OK(dgram_connect(c.s, port, "localhost", NULL));
        dgram_addr remote;
        CHECK_OK(dgram_remote_address(c.s, &remote)); /* at once */
        CHECK_ADDR(&remote, lo, port, family);
        RUN_UNTIL(ctx, c.connects, 1);
        RUN_UNTIL(ctx, rx.listenings, 1);
        CHECK_STR(rx.events.text, "L");
        gate_release_unused();
        dgram_socket_free(c.s);
        dgram_socket_free(tx.s);
        dgram_socket_free(rx.s);
    }
}

/* ---- contexts ---------------------------------------------------------------- */

/* Names work the same with callbacks on the I/O thread. */
static void test_names_io_thread(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    inbox in;
    dgram_socket *rx = inbox_socket(c, NULL, &in);
    uint16_t port = test_bind(rx, "127.0.0.2");
    peer p;
    memset(&p, 0, sizeof p);
    CHECK_OK(dgram_create_socket(c, NULL, NULL, &p, &p.s));
    sent a, x;
    CHECK_OK(send_text(&p, &x, "X lost", port, "no-such-host.invalid"));
    CHECK_OK(send_text(&p, &a, "A found", port, "dgram-test-a"));
    WAIT_UNTIL(a.count, 1);
    WAIT_UNTIL(in.count, 1);
    check_lookup_error(&x.err, DGRAM_ENOTFOUND, "no-such-host.invalid");
    check_sent_ok(&a, "A found");
    check_inbox_text(&in, 1, "A found", "127.0.0.1", test_port(p.s), DGRAM_IPV4);
    CHECK_STR(p.events.text, "xa");
    dgram_socket_free(p.s);
    dgram_socket_free(rx);
    dgram_context_free(c);
}

/* Freeing a context while its resolver is inside getaddrinfo does not wait
 * for the lookup (the watchdog turns a wait into a failure), and the answer
 * that comes later runs no callback. */
static void test_context_free_during_lookup(void) {
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    peer p;
    memset(&p, 0, sizeof p);
    CHECK_OK(dgram_create_socket(c, NULL, peer_on_message, &p, &p.s));
    CHECK_OK(dgram_on_error(p.s, peer_on_error));
    CHECK_OK(dgram_on_close(p.s, peer_on_close));
    gate_hold();
    sent a;
    CHECK_OK(send_text(&p, &a, "A never sent", 9, "no-such-host.invalid"));
    bool in_flight = wait_for_lookup_at_gate();
    dgram_context_free(c);
    CHECK_CODE(dgram_send_queue_count(p.s), DGRAM_EBADF);
    /* The freed context's resolver thread goes on alone: let it go past
     * the gate, where it waits (unless it never got there, and now never
     * will). */
    gate_remove();
    long long until = test_now_ms() + (in_flight ? TEST_WAIT_MS : 200);
    while (!gate_pump()) {
        if (test_now_ms() > until) {
            if (in_flight)
                FAIL("the lookup left the gate on its own");
            break;
        }
        test_sleep_ms(1);
    }
    CHECK(close(gate_fd) == 0);
    gate_fd = -1;
    test_sleep_ms(50);
    CHECK_EQ(test_load(&a.count), 0);
    CHECK_STR(p.events.text, "");
    dgram_socket_free(p.s);
}

int main(void) {
    test_watchdog(120);
    setvbuf(stdout, NULL, _IONBF, 0);
    private_name_service_or_skip(); /* first: before any thread exists */
    ctx = test_context(DGRAM_DISPATCH_HOST, 0);

    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"test_send_to_name", test_send_to_name},
        {"test_send_order_behind_name", test_send_order_behind_name},
        {"test_sends_wait_behind_held_lookup", test_sends_wait_behind_held_lookup},
        {"test_send_to_unknown_name", test_send_to_unknown_name},
        {"test_send_to_unknown_name_without_callback", test_send_to_unknown_name_without_callback},
        {"test_send_to_name_of_other_family", test_send_to_name_of_other_family},
        {"test_close_cancels_send_waiting_for_lookup", test_close_cancels_send_waiting_for_lookup},
        {"test_bind_to_name", test_bind_to_name},
        {"test_bind_to_unknown_name", test_bind_to_unknown_name},
        {"test_send_waits_for_bind_to_name", test_send_waits_for_bind_to_name},
        {"test_send_behind_failed_bind_lookup", test_send_behind_failed_bind_lookup},
        {"test_close_during_bind_lookup", test_close_during_bind_lookup},
        {"test_free_during_send_lookup", test_free_during_send_lookup},
        {"test_connect_to_name", test_connect_to_name},
        {"test_connect_to_unknown_name", test_connect_to_unknown_name},
        {"test_connect_to_unknown_name_unheld", test_connect_to_unknown_name_unheld},
        {"test_batch_behind_held_lookup", test_batch_behind_held_lookup},
        {"test_lookup_keeps_context_active", test_lookup_keeps_context_active},
        {"test_udp6_names", test_udp6_names},
        {"test_malformed_names", test_malformed_names},
        {"test_odd_but_well_formed_names", test_odd_but_well_formed_names},
        {"test_localhost_needs_no_lookup", test_localhost_needs_no_lookup},
        {"test_names_io_thread", test_names_io_thread},
        {"test_context_free_during_lookup", test_context_free_during_lookup},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("%s\n", tests[i].name);
        tests[i].fn();
    }

    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 0);
    dgram_context_free(ctx);
    printf("all passed\n");
    return 0;
}
