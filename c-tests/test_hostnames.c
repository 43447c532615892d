/*
 * Host names in bind, send and connect: looked up on the context's resolver
 * thread (getaddrinfo), in call order with the socket's other operations;
 * failures as DGRAM_ENOTFOUND with syscall "getaddrinfo" and the host name;
 * malformed names refused at once; "localhost" never looked up.
 *
 * No lookup may leave the machine: before anything else, each case moves its
 * process into a network namespace of its own (only lo) and a mount
 * namespace of its own, in which /etc/hosts and /etc/nsswitch.conf
 * ("hosts: files") are files of the case's, bind-mounted over the real ones.
 * Both namespaces vanish with the process.
 *
 * The "gate" makes a pending lookup deterministic: while it is held,
 * /etc/hosts is a FIFO, and the resolver thread blocks in getaddrinfo,
 * opening it, until the test lets it go on. Everything a pending lookup
 * implies (exact send queue figures, later operations waiting behind it,
 * EALREADY, ENOTCONN, cancellation by close, a context freed meanwhile) is
 * asserted while the lookup certainly cannot have finished, with no race
 * against a fast resolver. A held lookup then fails, so only names that do
 * not exist are held; lookups after it read the hosts file as usual.
 *
 * Each socket records into a sock_rec (recorder.h), and each send into a
 * send_slot of its own, whose completion adds S (sent) or X (failed) to
 * that socket's log ("XlSS": a send failed, then 'listening', then two
 * sends completed) and whose seq tells which send completed when. Sends
 * are named by their text's first letter ("X held", "A by name"): the
 * ones named X fail.
 */
#include "recorder.h"
#include "test_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>

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

/* The private network namespace's fd, while a case holds it. */
static int names_netns = -1;

/* The gate's FIFO (an O_PATH fd) while the gate is held: see gate_hold. */
static int gate_fd = -1;

/* Closes a namespace fd the case holds and marks it closed. The namespace
 * itself goes with the last thread and socket in it, at the latest when the
 * case's process exits. */
static void netns_close(int *fd) {
    if (*fd >= 0) {
        CHECK(close(*fd) == 0);
        *fd = -1;
    }
}

/* Moves the process into a new network namespace and a new mount namespace
 * whose /etc/hosts and /etc/nsswitch.conf are the test's: no lookup can
 * reach a DNS server, or any other host. Call first in a case, before any
 * thread exists (unshare(CLONE_NEWNS) needs that). */
static void private_name_service_or_skip(void) {
    CHECK(names_netns < 0);
    names_netns = test_netns_isolate_or_skip();
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

/* The end of a case's private name service: the case let go of any gate it
 * held (so /etc/hosts is the test's file again), and the namespace's fd is
 * closed. The mounts go with the mount namespace, when the process exits. */
static void private_name_service_end(void) {
    if (gate_fd >= 0)
        FAIL("the case ended with the gate still held");
    check_file("/etc/hosts", hosts_text);
    netns_close(&names_netns);
}

/* ---- recorders -------------------------------------------------------------- */

/* Frees the socket of `r`, checking first that every callback came with its
 * own handle. Callbacks after this one count in r->after_free. */
static void free_rec_socket(sock_rec *r) {
    CHECK_EQ(r->bad, 0);
    r->freed = 1;
    dgram_socket_free(r->s);
}

/* Checks that `r` got exactly `count` datagrams, the last one being the
 * text `text` from `from`:`port` of `family`. */
static void check_last_text(const sock_rec *r, int count, const char *text, const char *from,
                            uint16_t port, dgram_family family) {
    CHECK_EQ(test_load(&r->count), count);
    rec_check_text(r, count - 1, text, from, port, family);
}

/* A lookup failure that came as the 'error' event of `r`, as the header
 * describes it: the code, syscall "getaddrinfo", the name, and no address. */
static void check_rec_lookup_error(const sock_rec *r, int code, const char *name) {
    CHECK_CODE(r->err_code, code);
    CHECK_STR(r->err_syscall, "getaddrinfo");
    CHECK_STR(r->err_hostname, name); /* "" when the library gave none */
    CHECK_STR(r->err_addr.address, "");
    CHECK_EQ(r->err_addr.port, 0);
}

/* Sends `text` from r's socket to address:port, completing into `sl`.
 * Returns dgram_send's result. */
static int send_text(sock_rec *r, send_slot *sl, const char *text, uint16_t port,
                     const char *address) {
    return dgram_send(r->s, text, strlen(text), port, address, rec_on_sent, send_slot_init(sl, r));
}

static void check_sent_ok(const send_slot *sl, const char *text) {
    send_slot_check_ok(sl, strlen(text));
}

/* A lookup failure that came as a send's completion, as the header
 * describes it: the code, syscall "getaddrinfo", the name, and no address. */
static void check_lookup_error(const send_slot *sl, int code, const char *name) {
    CHECK_EQ(test_load(&sl->calls), 1);
    CHECK_CODE(sl->code, code);
    CHECK_STR(sl->syscall, "getaddrinfo");
    CHECK_STR(sl->hostname, name);
    CHECK_STR(sl->addr.address, "");
    CHECK_EQ(sl->addr.port, 0);
}

static void check_queue(dgram_socket *s, int count, int bytes) {
    CHECK_EQ(dgram_send_queue_count(s), count);
    CHECK_EQ(dgram_send_queue_size(s), bytes);
}

/* A receiver recording into `r`, bound to address:0 with its 'listening'
 * dispatched; returns its port. */
static uint16_t receiver(dgram_context *ctx, sock_rec *r, dgram_type type, const char *address) {
    dgram_socket *s = rec_socket(ctx, type, r);
    uint16_t port = test_bind(s, address);
    RUN_UNTIL(ctx, r->listen_p, 1);
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
static void gate_release(dgram_context *ctx) {
    gate_remove();
    sock_rec sentinel;
    rec_socket(ctx, DGRAM_UDP4, &sentinel);
    send_slot x;
    CHECK_OK(send_text(&sentinel, &x, "sentinel", 9, "no-such-host.invalid"));
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (test_load(&x.calls) < 1) {
        gate_pump();
        int rc = dgram_context_run(ctx, 5);
        if (rc < 0)
            FAIL("dgram_context_run: %s", dgram_err_name(rc));
        if (test_now_ms() > deadline)
            FAIL("timed out waiting for the lookups behind the gate");
    }
    CHECK_CODE(x.code, DGRAM_ENOTFOUND);
    CHECK_STR(sentinel.log.text, "X");
    free_rec_socket(&sentinel);
    CHECK(close(gate_fd) == 0);
    gate_fd = -1;
}

/* ---- send ---------------------------------------------------------------- */

/* A send to a name from an unbound socket: bound first ('listening' before
 * the send's callback), then the datagram reaches the name's address. */
static void test_send_to_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, tx;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.2");
    rec_socket(ctx, DGRAM_UDP4, &tx);
    send_slot a;
    CHECK_OK(send_text(&tx, &a, "A via dgram-test-a", port, "dgram-test-a"));
    RUN_UNTIL(ctx, a.calls, 1);
    check_sent_ok(&a, "A via dgram-test-a");
    RUN_UNTIL(ctx, rx.count, 1);
    check_last_text(&rx, 1, "A via dgram-test-a", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    CHECK_STR(tx.log.text, "lS");
    check_queue(tx.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.count, 1);
    free_rec_socket(&tx);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* Sends made right after a send to a name keep their call order, on the
 * wire and in their callbacks. */
static void test_send_order_behind_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, tx;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.2");
    rec_socket(ctx, DGRAM_UDP4, &tx);
    send_slot a, b, d;
    CHECK_OK(send_text(&tx, &a, "A first, by name", port, "dgram-test-a"));
    CHECK_OK(send_text(&tx, &b, "B second", port, "127.0.0.2"));
    CHECK_OK(send_text(&tx, &d, "D third", port, "127.0.0.2"));
    RUN_UNTIL(ctx, d.calls, 1);
    RUN_UNTIL(ctx, rx.count, 3);
    check_sent_ok(&a, "A first, by name");
    check_sent_ok(&b, "B second");
    check_sent_ok(&d, "D third");
    CHECK_STR(tx.log.text, "lSSS");
    CHECK_EQ(a.seq, 0);
    CHECK_EQ(b.seq, 1);
    CHECK_EQ(d.seq, 2);
    uint16_t from = test_port(tx.s);
    CHECK_EQ(rx.count, 3);
    rec_check_text(&rx, 0, "A first, by name", "127.0.0.1", from, DGRAM_IPV4);
    rec_check_text(&rx, 1, "B second", "127.0.0.1", from, DGRAM_IPV4);
    rec_check_text(&rx, 2, "D third", "127.0.0.1", from, DGRAM_IPV4);
    check_queue(tx.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.count, 3);
    free_rec_socket(&tx);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* While a lookup is held, the sends behind it wait too (a second name, a
 * numeric address): all three are counted, exactly, in the send queue,
 * none goes out and the socket is not bound yet. Then the held one fails,
 * and the others go, in order. */
static void test_sends_wait_behind_held_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, tx;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.2");
    rec_socket(ctx, DGRAM_UDP4, &tx);
    send_slot x, a, b;
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
    CHECK_STR(tx.log.text, "");
    CHECK_EQ(rx.count, 0);
    dgram_addr local;
    CHECK_CODE(dgram_address(tx.s, &local), DGRAM_EBADF); /* not bound yet */
    gate_release(ctx);
    RUN_UNTIL(ctx, b.calls, 1);
    RUN_UNTIL(ctx, rx.count, 2);
    CHECK_STR(tx.log.text, "XlSS");
    CHECK_EQ(x.seq, 0);
    CHECK_EQ(a.seq, 1);
    CHECK_EQ(b.seq, 2);
    check_lookup_error(&x, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_EQ(x.length, strlen("X held, then not found"));
    check_sent_ok(&a, "A by name");
    check_sent_ok(&b, "B by number");
    uint16_t from = test_port(tx.s);
    CHECK_EQ(rx.count, 2);
    rec_check_text(&rx, 0, "A by name", "127.0.0.1", from, DGRAM_IPV4);
    rec_check_text(&rx, 1, "B by number", "127.0.0.1", from, DGRAM_IPV4);
    check_queue(tx.s, 0, 0);
    free_rec_socket(&tx);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* A name that does not resolve fails its send with ENOTFOUND (accepted
 * first); the next send, numeric, still goes, and completes after it. */
static void test_send_to_unknown_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, tx;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.1");
    rec_socket(ctx, DGRAM_UDP4, &tx);
    send_slot x, y;
    CHECK_OK(send_text(&tx, &x, "X lost", port, "no-such-host.invalid"));
    CHECK_OK(send_text(&tx, &y, "Y found", port, "127.0.0.1"));
    RUN_UNTIL(ctx, y.calls, 1);
    CHECK_EQ(x.calls, 1);
    check_lookup_error(&x, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_EQ(x.length, strlen("X lost"));
    check_sent_ok(&y, "Y found");
    RUN_UNTIL(ctx, rx.count, 1);
    check_last_text(&rx, 1, "Y found", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    /* The failed send bound nothing; the numeric one did. */
    CHECK_STR(tx.log.text, "XlS");
    CHECK_EQ(x.seq, 0);
    CHECK_EQ(y.seq, 1);
    CHECK_EQ(tx.errors, 0); /* a send with a callback reports there only */
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(tx.s, &st));
    CHECK_EQ(st.send_errors, 1);
    CHECK_EQ(st.datagrams_sent, 1);
    CHECK_EQ(st.bytes_sent, strlen("Y found"));
    check_queue(tx.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.count, 1);
    free_rec_socket(&tx);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* A failed lookup of a send without a callback comes as an 'error' event. */
static void test_send_to_unknown_name_without_callback(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec tx;
    rec_socket(ctx, DGRAM_UDP4, &tx);
    CHECK_OK(dgram_send(tx.s, "lost", 4, 9, "no-such-host.invalid", NULL, NULL));
    RUN_UNTIL(ctx, tx.errors, 1);
    check_rec_lookup_error(&tx, DGRAM_ENOTFOUND, "no-such-host.invalid");
    test_run_for(ctx, 20);
    CHECK_STR(tx.log.text, "E");
    free_rec_socket(&tx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* A name with addresses of the other family only does not resolve for the
 * socket: udp4 to an IPv6-only name, udp6 to an IPv4-only one. */
static void test_send_to_name_of_other_family(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec tx4, tx6;
    rec_socket(ctx, DGRAM_UDP4, &tx4);
    rec_socket(ctx, DGRAM_UDP6, &tx6);
    send_slot a, b;
    CHECK_OK(send_text(&tx4, &a, "a", 9, "dgram-test-v6only"));
    CHECK_OK(send_text(&tx6, &b, "b", 9, "dgram-test-a"));
    RUN_UNTIL(ctx, a.calls, 1);
    RUN_UNTIL(ctx, b.calls, 1);
    check_lookup_error(&a, DGRAM_ENOTFOUND, "dgram-test-v6only");
    check_lookup_error(&b, DGRAM_ENOTFOUND, "dgram-test-a");
    CHECK_EQ(a.length, 1);
    CHECK_EQ(b.length, 1);
    CHECK_STR(tx4.log.text, "X");
    CHECK_STR(tx6.log.text, "X");
    free_rec_socket(&tx4);
    free_rec_socket(&tx6);
    test_context_finish(ctx);
    private_name_service_end();
}

/* Closing a socket whose send waits for a lookup (held at the gate)
 * cancels it and the send queued behind it, in order, before 'close'; the
 * answer that comes afterwards is nobody's. */
static void test_close_cancels_send_waiting_for_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec tx;
    rec_socket(ctx, DGRAM_UDP4, &tx);
    send_slot a, b;
    gate_hold();
    CHECK_OK(send_text(&tx, &a, "A waits for its name", 9, "no-such-host.invalid"));
    CHECK_OK(send_text(&tx, &b, "B waits behind it", 9, "127.0.0.1"));
    wait_for_lookup_at_gate();
    CHECK_OK(dgram_close(tx.s, NULL));
    RUN_UNTIL(ctx, tx.close_p, 1);
    CHECK_STR(tx.log.text, "XXc");
    CHECK_EQ(a.seq, 0);
    CHECK_EQ(b.seq, 1);
    CHECK_CODE(a.code, DGRAM_ECANCELED);
    CHECK_EQ(a.length, strlen("A waits for its name"));
    CHECK_STR(a.hostname, "(null)");
    CHECK_CODE(b.code, DGRAM_ECANCELED);
    CHECK_EQ(b.length, strlen("B waits behind it"));
    gate_release(ctx);
    test_run_for(ctx, 50);
    CHECK_STR(tx.log.text, "XXc");
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(b.calls, 1);
    dgram_stats st;
    CHECK_OK(dgram_socket_stats(tx.s, &st));
    CHECK_EQ(st.send_errors, 2);
    CHECK_EQ(st.datagrams_sent, 0);
    CHECK_CODE(dgram_send_queue_count(tx.s), DGRAM_EBADF);
    free_rec_socket(&tx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* ---- bind ------------------------------------------------------------------ */

/* bind to a name: 'listening' once the lookup is done, bound to its
 * address; a second bind is EALREADY whether the lookup is done or not. */
static void test_bind_to_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    CHECK_OK(dgram_bind(p.s, 0, "dgram-test-b", NULL));
    CHECK_CODE(dgram_bind(p.s, 0, "dgram-test-b", NULL), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(p.s, 0, "127.0.0.1", NULL), DGRAM_EALREADY);
    RUN_UNTIL(ctx, p.listen_p, 1);
    uint16_t port = test_check_bound(p.s, "127.0.0.3", 0, DGRAM_IPV4);
    CHECK_CODE(dgram_bind(p.s, 0, "dgram-test-b", NULL), DGRAM_EALREADY);

    /* It receives there. */
    sock_rec tx;
    rec_socket(ctx, DGRAM_UDP4, &tx);
    send_slot x;
    CHECK_OK(send_text(&tx, &x, "to dgram-test-b", port, "127.0.0.3"));
    RUN_UNTIL(ctx, p.count, 1);
    check_last_text(&p, 1, "to dgram-test-b", "127.0.0.1", test_port(tx.s), DGRAM_IPV4);
    test_run_for(ctx, 20);
    CHECK_STR(p.log.text, "lM");
    CHECK_EQ(p.errors, 0);
    free_rec_socket(&tx);
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* bind to a name with no address: while its lookup is held the socket is
 * not bound and binds are EALREADY; then an 'error' event and no
 * 'listening'; the socket may be bound again afterwards. */
static void test_bind_to_unknown_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    gate_hold();
    /* The bind's one-shot 'listening' never runs: its lookup fails. */
    CHECK_OK(dgram_bind(p.s, 0, "no-such-host.invalid", rec_on_unexpected));
    wait_for_lookup_at_gate();
    dgram_addr a;
    CHECK_CODE(dgram_address(p.s, &a), DGRAM_EBADF);
    CHECK_CODE(dgram_bind(p.s, 0, "no-such-host.invalid", NULL), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(p.s, 0, "127.0.0.1", NULL), DGRAM_EALREADY);
    CHECK_CODE(dgram_bind(p.s, 0, NULL, NULL), DGRAM_EALREADY);
    test_run_for(ctx, 20);
    CHECK_STR(p.log.text, "");
    gate_release(ctx);
    RUN_UNTIL(ctx, p.errors, 1);
    check_rec_lookup_error(&p, DGRAM_ENOTFOUND, "no-such-host.invalid");
    test_run_for(ctx, 50);
    CHECK_STR(p.log.text, "E");
    CHECK_EQ(p.unexpected, 0);
    CHECK_CODE(dgram_address(p.s, &a), DGRAM_EBADF);

    test_bind(p.s, "127.0.0.1");
    RUN_UNTIL(ctx, p.listen_p, 1);
    CHECK_STR(p.log.text, "El");
    CHECK_EQ(p.unexpected, 0);
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* A send made right after a bind to a name waits for that bind, and goes
 * out from the name's address. */
static void test_send_waits_for_bind_to_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, p;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.1");
    rec_socket(ctx, DGRAM_UDP4, &p);
    CHECK_OK(dgram_bind(p.s, 0, "dgram-test-b", NULL));
    send_slot a;
    CHECK_OK(send_text(&p, &a, "A from dgram-test-b", port, "127.0.0.1"));
    RUN_UNTIL(ctx, a.calls, 1);
    check_sent_ok(&a, "A from dgram-test-b");
    CHECK_STR(p.log.text, "lS");
    uint16_t local = test_check_bound(p.s, "127.0.0.3", 0, DGRAM_IPV4);
    RUN_UNTIL(ctx, rx.count, 1);
    check_last_text(&rx, 1, "A from dgram-test-b", "127.0.0.3", local, DGRAM_IPV4);
    free_rec_socket(&p);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* A send waiting behind a bind whose lookup fails still completes, once:
 * after the bind's 'error', the socket is bound as for any send on an
 * unbound socket (0.0.0.0, with 'listening'), and the datagram goes. */
static void test_send_behind_failed_bind_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, p;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.1");
    rec_socket(ctx, DGRAM_UDP4, &p);
    gate_hold();
    CHECK_OK(dgram_bind(p.s, 0, "no-such-host.invalid", NULL));
    send_slot a;
    CHECK_OK(send_text(&p, &a, "A behind a failed bind", port, "127.0.0.1"));
    check_queue(p.s, 1, (int)strlen("A behind a failed bind"));
    wait_for_lookup_at_gate();
    gate_release(ctx);
    RUN_UNTIL(ctx, a.calls, 1);
    CHECK_STR(p.log.text, "ElS");
    check_rec_lookup_error(&p, DGRAM_ENOTFOUND, "no-such-host.invalid");
    check_sent_ok(&a, "A behind a failed bind");
    uint16_t local = test_check_bound(p.s, "0.0.0.0", 0, DGRAM_IPV4);
    RUN_UNTIL(ctx, rx.count, 1);
    check_last_text(&rx, 1, "A behind a failed bind", "127.0.0.1", local, DGRAM_IPV4);
    free_rec_socket(&p);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* Closing a socket whose bind waits for its lookup: 'close' only, neither
 * 'listening' nor 'error', also once the lookup has failed. */
static void test_close_during_bind_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    gate_hold();
    CHECK_OK(dgram_bind(p.s, 0, "no-such-host.invalid", NULL));
    wait_for_lookup_at_gate();
    CHECK_OK(dgram_close(p.s, NULL));
    gate_release(ctx);
    RUN_UNTIL(ctx, p.close_p, 1);
    test_run_for(ctx, 20);
    CHECK_STR(p.log.text, "c");
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* Freeing a socket whose send waits for a lookup: no callback at all. */
static void test_free_during_send_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    gate_hold();
    send_slot a;
    CHECK_OK(send_text(&p, &a, "A freed", 9, "no-such-host.invalid"));
    wait_for_lookup_at_gate();
    free_rec_socket(&p);
    gate_release(ctx);
    test_run_for(ctx, 20);
    CHECK_EQ(a.calls, 0);
    CHECK_STR(p.log.text, "");
    CHECK_EQ(p.after_free, 0);
    test_context_finish(ctx);
    private_name_service_end();
}

/* ---- connect --------------------------------------------------------------- */

/* connect to a name, and a send to the peer made at once: 'listening',
 * 'connect', then the send, which reaches the name's address. A second
 * connect is EISCONN whether the lookup is done or not. */
static void test_connect_to_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, p;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.2");
    rec_socket(ctx, DGRAM_UDP4, &p);
    CHECK_OK(dgram_connect(p.s, port, "dgram-test-a", NULL));
    CHECK_CODE(dgram_connect(p.s, port, "127.0.0.2", NULL), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(p.s, "x", 1, port, "127.0.0.2", NULL, NULL), DGRAM_EISCONN);
    send_slot s;
    CHECK_OK(send_text(&p, &s, "S to the peer", 0, NULL));
    RUN_UNTIL(ctx, s.calls, 1);
    CHECK_STR(p.log.text, "lkS");
    check_sent_ok(&s, "S to the peer");
    dgram_addr a;
    memset(&a, 0, sizeof a);
    CHECK_OK(dgram_remote_address(p.s, &a));
    CHECK_ADDR(&a, "127.0.0.2", port, DGRAM_IPV4);
    RUN_UNTIL(ctx, rx.count, 1);
    check_last_text(&rx, 1, "S to the peer", "127.0.0.1", test_port(p.s), DGRAM_IPV4);
    check_queue(p.s, 0, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(rx.count, 1);
    CHECK_STR(p.log.text, "lkS");
    free_rec_socket(&p);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* connect to a name with no address: while its lookup is held the socket
 * is not connected (ENOTCONN) but connecting (EISCONN), and a send to the
 * peer waits; then an 'error' event, the waiting send fails with ENOTCONN,
 * and the socket can connect again. */
static void test_connect_to_unknown_name(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    gate_hold();
    CHECK_OK(dgram_connect(p.s, 9, "no-such-host.invalid", NULL));
    send_slot s;
    CHECK_OK(send_text(&p, &s, "S for no peer", 0, NULL));
    wait_for_lookup_at_gate();
    dgram_addr a;
    CHECK_CODE(dgram_remote_address(p.s, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(p.s), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_connect(p.s, 9, "127.0.0.1", NULL), DGRAM_EISCONN);
    CHECK_CODE(dgram_send(p.s, "x", 1, 9, "127.0.0.1", NULL, NULL), DGRAM_EISCONN);
    check_queue(p.s, 1, (int)strlen("S for no peer"));
    test_run_for(ctx, 20);
    CHECK_STR(p.log.text, "");
    gate_release(ctx);
    RUN_UNTIL(ctx, s.calls, 1);
    CHECK_STR(p.log.text, "EX");
    check_rec_lookup_error(&p, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_CODE(s.code, DGRAM_ENOTCONN);
    CHECK_EQ(s.length, strlen("S for no peer"));
    CHECK_CODE(dgram_remote_address(p.s, &a), DGRAM_ENOTCONN);
    CHECK_CODE(dgram_disconnect(p.s), DGRAM_ENOTCONN);
    check_queue(p.s, 0, 0);
    /* Not connected: a send needs a destination again. */
    CHECK_CODE(dgram_send(p.s, "x", 1, 0, NULL, NULL, NULL), DGRAM_EINVAL);

    /* And it may connect now. */
    sock_rec rx;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.1");
    CHECK_OK(dgram_connect(p.s, port, "127.0.0.1", NULL));
    RUN_UNTIL(ctx, p.connect_p, 1);
    CHECK_STR(p.log.text, "EXlk");
    CHECK_OK(dgram_remote_address(p.s, &a));
    CHECK_ADDR(&a, "127.0.0.1", port, DGRAM_IPV4);
    free_rec_socket(&rx);
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* The same without holding the lookup: 'error', then ENOTCONN. */
static void test_connect_to_unknown_name_unheld(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    CHECK_OK(dgram_connect(p.s, 9, "no-such-host.invalid", NULL));
    RUN_UNTIL(ctx, p.errors, 1);
    check_rec_lookup_error(&p, DGRAM_ENOTFOUND, "no-such-host.invalid");
    dgram_addr a;
    CHECK_CODE(dgram_remote_address(p.s, &a), DGRAM_ENOTCONN);
    test_run_for(ctx, 20);
    CHECK_STR(p.log.text, "E");
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* ---- send_batch and dgram_context_active ---------------------------------- */

static void batch_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    (void)s;
    event_log *log = send_data;
    /* A letter per completion: the datagram's length as 'a' + length, upper
     * case when it failed. Not a send_slot: the batch's one send_data comes
     * with each of its datagrams, and each one's length is what tells them
     * apart. */
    event_log_add(log, (char)((err ? 'A' : 'a') + (int)length));
}

/* dgram_send_batch takes no host name (but "localhost"), and a batch made
 * while a send waits for a lookup waits behind it, counted in the queue,
 * then goes in order. */
static void test_batch_behind_held_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, tx;
    uint16_t port = receiver(ctx, &rx, DGRAM_UDP4, "127.0.0.1");
    rec_socket(ctx, DGRAM_UDP4, &tx);
    event_log log;
    memset(&log, 0, sizeof log);
    const dgram_buf batch[] = {{"B", 1}, {"Cc", 2}, {"Ddd", 3}};
    CHECK_CODE(dgram_send_batch(tx.s, batch, 3, port, "dgram-test-a", batch_sent, &log),
               DGRAM_EINVAL);
    CHECK_CODE(dgram_send_batch(tx.s, batch, 3, port, "no-such-host.invalid", NULL, NULL),
               DGRAM_EINVAL);
    check_queue(tx.s, 0, 0);

    gate_hold();
    send_slot x;
    CHECK_OK(send_text(&tx, &x, "X held", port, "no-such-host.invalid"));
    CHECK_OK(dgram_send_batch(tx.s, batch, 3, port, "localhost", batch_sent, &log));
    check_queue(tx.s, 4, (int)strlen("X held") + 6);
    wait_for_lookup_at_gate();
    test_run_for(ctx, 20);
    CHECK_EQ(rx.count, 0);
    CHECK_STR(log.text, "");
    gate_release(ctx);
    RUN_UNTIL(ctx, rx.count, 3);
    uint16_t from = test_port(tx.s);
    CHECK_EQ(rx.count, 3);
    rec_check_text(&rx, 0, "B", "127.0.0.1", from, DGRAM_IPV4);
    rec_check_text(&rx, 1, "Cc", "127.0.0.1", from, DGRAM_IPV4);
    rec_check_text(&rx, 2, "Ddd", "127.0.0.1", from, DGRAM_IPV4);
    CHECK_STR(tx.log.text, "Xl");
    check_lookup_error(&x, DGRAM_ENOTFOUND, "no-such-host.invalid");
    long long deadline = test_now_ms() + TEST_WAIT_MS;
    while (log.len < 3 && test_now_ms() < deadline)
        dgram_context_run(ctx, 10);
    CHECK_STR(log.text, "bcd");
    check_queue(tx.s, 0, 0);
    free_rec_socket(&tx);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* A pending lookup keeps the context active (a host loop must not end
 * while it runs), also for an unreferenced socket; once its completion is
 * dispatched, nothing is left. */
static void test_lookup_keeps_context_active(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 0);
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    CHECK_OK(dgram_socket_unref(p.s));
    gate_hold();
    send_slot a;
    CHECK_OK(send_text(&p, &a, "A pending", 9, "no-such-host.invalid"));
    CHECK_EQ(dgram_context_active(ctx), 1);
    wait_for_lookup_at_gate();
    test_run_for(ctx, 20);
    CHECK_EQ(dgram_context_active(ctx), 1);
    CHECK_EQ(a.calls, 0);
    gate_release(ctx); /* dispatches ctx until a lookup behind this one is done */
    RUN_UNTIL(ctx, a.calls, 1);
    check_lookup_error(&a, DGRAM_ENOTFOUND, "no-such-host.invalid");
    CHECK_EQ(dgram_context_active(ctx), 0);
    /* The same host loop as in the header ends on its own. */
    while (dgram_context_active(ctx) && dgram_context_run(ctx, -1) >= 0) {
    }
    CHECK_STR(p.log.text, "X");
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* ---- udp6 ------------------------------------------------------------------ */

/* An IPv6 name, for bind, send and connect: dgram-test-six is ::1. */
static void test_udp6_names(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    sock_rec rx, tx;
    rec_socket(ctx, DGRAM_UDP6, &rx);
    CHECK_OK(dgram_bind(rx.s, 0, "dgram-test-six", NULL));
    RUN_UNTIL(ctx, rx.listen_p, 1);
    uint16_t port = test_check_bound(rx.s, "::1", 0, DGRAM_IPV6);

    rec_socket(ctx, DGRAM_UDP6, &tx);
    send_slot a;
    CHECK_OK(send_text(&tx, &a, "A over IPv6", port, "dgram-test-six"));
    RUN_UNTIL(ctx, rx.count, 1);
    check_last_text(&rx, 1, "A over IPv6", "::1", test_port(tx.s), DGRAM_IPV6);
    RUN_UNTIL(ctx, a.calls, 1);
    check_sent_ok(&a, "A over IPv6");

    sock_rec c;
    rec_socket(ctx, DGRAM_UDP6, &c);
    CHECK_OK(dgram_connect(c.s, port, "dgram-test-six", NULL));
    RUN_UNTIL(ctx, c.connect_p, 1);
    dgram_addr remote;
    CHECK_OK(dgram_remote_address(c.s, &remote));
    CHECK_ADDR(&remote, "::1", port, DGRAM_IPV6);
    send_slot b;
    CHECK_OK(send_text(&c, &b, "B connected", 0, NULL));
    RUN_UNTIL(ctx, rx.count, 2);
    check_last_text(&rx, 2, "B connected", "::1", test_port(c.s), DGRAM_IPV6);
    RUN_UNTIL(ctx, b.calls, 1);
    CHECK_STR(c.log.text, "lkS");
    free_rec_socket(&c);
    free_rec_socket(&tx);
    free_rec_socket(&rx);
    test_context_finish(ctx);
    private_name_service_end();
}

/* ---- malformed names and "localhost" --------------------------------------- */

/* Text that is neither an address of the socket's family nor a well-formed
 * name (src/addr.rs is_host_name: dot-separated labels of letters, digits,
 * '-' and '_', 1..63 bytes each, 253 in all, not digits and dots only) is
 * DGRAM_EINVAL at once, from send, bind and connect, with no effect. It
 * still runs behind the private name service: were one of these names
 * looked up after all, "1.2.3" alone would be a public address. */
static void test_malformed_names(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
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
        sock_rec p;
        rec_socket(ctx, cases[c].type, &p);
        for (size_t i = 0; i < cases[c].count; i++) {
            const char *name = cases[c].names[i];
            send_slot x;
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
        CHECK_STR(p.log.text, "");
        free_rec_socket(&p);
    }
    test_context_finish(ctx);
    private_name_service_end();
}

/* The longest well-formed name (a 63-byte label, 253 bytes in all), a
 * label starting with '-', '_' inside, and a trailing dot are names as far
 * as the library is concerned: accepted, then not found by the resolver. */
static void test_odd_but_well_formed_names(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    char label63[64], name253[254];
    memset(label63, 'b', 63);
    label63[63] = '\0';
    name253[0] = '\0';
    for (int i = 0; i < 42; i++) /* 5 + 41 * 6 = 251 bytes */
        strcat(name253, i ? ".abcde" : "abcde");
    strcat(name253, ".z");
    CHECK_EQ(strlen(name253), 253);
    const char *names[] = {label63, name253, "-x", "a_b.invalid", "no-such-host.invalid."};
    sock_rec p;
    rec_socket(ctx, DGRAM_UDP4, &p);
    send_slot x[5];
    for (int i = 0; i < 5; i++)
        CHECK_OK(send_text(&p, &x[i], "x", 9, names[i]));
    RUN_UNTIL(ctx, x[4].calls, 1);
    CHECK_STR(p.log.text, "XXXXX");
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(x[i].seq, i); /* the sends' order */
        check_lookup_error(&x[i], DGRAM_ENOTFOUND, names[i]);
    }
    free_rec_socket(&p);
    test_context_finish(ctx);
    private_name_service_end();
}

/* "localhost" is 127.0.0.1 (udp4) or ::1 (udp6) without any lookup: bind
 * and connect to it are done when they return, and bind, send and connect
 * complete while the gate would hold any lookup. */
static void test_localhost_needs_no_lookup(void) {
    private_name_service_or_skip();
    dgram_context *ctx = test_context(DGRAM_DISPATCH_HOST, 0);
    static const dgram_type types[] = {DGRAM_UDP4, DGRAM_UDP6};
    for (int t = 0; t < 2; t++) {
        dgram_type type = types[t];
        dgram_family family = type == DGRAM_UDP4 ? DGRAM_IPV4 : DGRAM_IPV6;
        const char *lo = test_loopback(type);
        gate_hold();
        sock_rec rx, tx, c;
        rec_socket(ctx, type, &rx);
        CHECK_OK(dgram_bind(rx.s, 0, "localhost", NULL));
        uint16_t port = test_check_bound(rx.s, lo, 0, family); /* at once */
        rec_socket(ctx, type, &tx);
        send_slot a;
        CHECK_OK(send_text(&tx, &a, "A to localhost", port, "localhost"));
        RUN_UNTIL(ctx, rx.count, 1);
        check_last_text(&rx, 1, "A to localhost", lo, test_port(tx.s), family);
        RUN_UNTIL(ctx, a.calls, 1);
        check_sent_ok(&a, "A to localhost");
        rec_socket(ctx, type, &c);
        CHECK_OK(dgram_connect(c.s, port, "localhost", NULL));
        dgram_addr remote;
        CHECK_OK(dgram_remote_address(c.s, &remote)); /* at once */
        CHECK_ADDR(&remote, lo, port, family);
        RUN_UNTIL(ctx, c.connect_p, 1);
        RUN_UNTIL(ctx, rx.listen_p, 1);
        CHECK_STR(rx.log.text, "lM");
        gate_release_unused();
        free_rec_socket(&c);
        free_rec_socket(&tx);
        free_rec_socket(&rx);
    }
    test_context_finish(ctx);
    private_name_service_end();
}

/* ---- contexts ---------------------------------------------------------------- */

/* Names work the same with callbacks on the I/O thread. */
static void test_names_io_thread(void) {
    private_name_service_or_skip();
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    sock_rec rx;
    rec_socket(c, DGRAM_UDP4, &rx);
    uint16_t port = test_bind(rx.s, "127.0.0.2");
    /* A sender with no handlers: its log holds its sends' letters only. */
    sock_rec p;
    memset(&p, 0, sizeof p);
    CHECK_OK(dgram_create_socket(c, NULL, NULL, &p, &p.s));
    send_slot a, x;
    CHECK_OK(send_text(&p, &x, "X lost", port, "no-such-host.invalid"));
    CHECK_OK(send_text(&p, &a, "A found", port, "dgram-test-a"));
    WAIT_UNTIL(a.calls, 1);
    WAIT_UNTIL(rx.count, 1);
    check_lookup_error(&x, DGRAM_ENOTFOUND, "no-such-host.invalid");
    check_sent_ok(&a, "A found");
    check_last_text(&rx, 1, "A found", "127.0.0.1", test_port(p.s), DGRAM_IPV4);
    CHECK_STR(p.log.text, "XS");
    CHECK_EQ(x.seq, 0);
    CHECK_EQ(a.seq, 1);
    free_rec_socket(&p);
    free_rec_socket(&rx);
    test_context_finish(c);
    private_name_service_end();
}

/* Freeing a context while its resolver is inside getaddrinfo does not wait
 * for the lookup (the watchdog turns a wait into a failure), and the answer
 * that comes later runs no callback. */
static void test_context_free_during_lookup(void) {
    private_name_service_or_skip();
    dgram_context *c = test_context(DGRAM_DISPATCH_IO_THREAD, 0);
    sock_rec p;
    rec_socket_with(c, NULL, &p);
    gate_hold();
    send_slot a;
    CHECK_OK(send_text(&p, &a, "A never sent", 9, "no-such-host.invalid"));
    bool in_flight = wait_for_lookup_at_gate();
    dgram_context_free(c); /* what this case tests */
    test_context_forget(c);
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
    CHECK_EQ(test_load(&a.calls), 0);
    CHECK_STR(p.log.text, "");
    free_rec_socket(&p);
    private_name_service_end();
}

TEST_LIST(
    TEST_ENTRY(test_send_to_name),
    TEST_ENTRY(test_send_order_behind_name),
    TEST_ENTRY(test_sends_wait_behind_held_lookup),
    TEST_ENTRY(test_send_to_unknown_name),
    TEST_ENTRY(test_send_to_unknown_name_without_callback),
    TEST_ENTRY(test_send_to_name_of_other_family),
    TEST_ENTRY(test_close_cancels_send_waiting_for_lookup),
    TEST_ENTRY(test_bind_to_name),
    TEST_ENTRY(test_bind_to_unknown_name),
    TEST_ENTRY(test_send_waits_for_bind_to_name),
    TEST_ENTRY(test_send_behind_failed_bind_lookup),
    TEST_ENTRY(test_close_during_bind_lookup),
    TEST_ENTRY(test_free_during_send_lookup),
    TEST_ENTRY(test_connect_to_name),
    TEST_ENTRY(test_connect_to_unknown_name),
    TEST_ENTRY(test_connect_to_unknown_name_unheld),
    TEST_ENTRY(test_batch_behind_held_lookup),
    TEST_ENTRY(test_lookup_keeps_context_active),
    TEST_ENTRY(test_udp6_names),
    TEST_ENTRY(test_malformed_names),
    TEST_ENTRY(test_odd_but_well_formed_names),
    TEST_ENTRY(test_localhost_needs_no_lookup),
    TEST_ENTRY(test_names_io_thread),
    TEST_ENTRY(test_context_free_during_lookup),
)
