/*
 * dgramjs: a small JavaScript host (Duktape) with the IoT.js `dgram` module
 * on libdgram.
 *
 *   dgramjs script.js [args...]
 *
 * The C side is thin: a `native` object (sockets as integer handles mapping
 * to dgram_* calls, a clock, file reading, printing, exit) and the event loop:
 * poll() on dgram_context_fd() with the nearest JS timer as timeout, then
 * dgram_context_dispatch() and the due timers, until dgram_context_active()
 * is 0 (unref'd sockets do not count) and no referenced timer or nextTick
 * callback waits. Everything a script sees (process, console, timers,
 * Buffer, require, events, assert, dgram) is JavaScript from hosts/js/lib,
 * compiled into the binary (builtins.c).
 *
 * Every entry into JavaScript goes through one protected call into the
 * `host` object made by lib/bootstrap.js. When an exception escapes it, or
 * process.exit() is called, the host stops calling JavaScript (library
 * callbacks still running in the same dispatch return at once), emits
 * process 'exit' and tears everything down: every dgram_socket is freed,
 * then the context, then the Duktape heap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dgram.h>
#include <duktape.h>

#include "builtins.h"

extern char **environ;

static struct {
    duk_context *duk;
    dgram_context *ctx;
    dgram_socket **socks; /* by handle; slot 0 unused; NULL once freed */
    size_t nsocks;        /* slots allocated */
    size_t next_id;       /* next handle to give out */
    int stopping;         /* no more JavaScript: exit requested or fatal error */
    int exit_requested;   /* process.exit() was called */
    int exit_code;
} H;

/* Thrown by native.exit to unwind the JavaScript stack; never printed. */
static const char EXIT_SENTINEL[] = "dgramjs: process.exit";

static void fatal_handler(void *udata, const char *msg) {
    (void)udata;
    fprintf(stderr, "dgramjs: fatal Duktape error: %s\n", msg ? msg : "(null)");
    fflush(stderr);
    abort();
}

/* ---- calling into JavaScript ------------------------------------------ */

/* Prints the value on top of the stack as an uncaught exception. */
static void report_exception(duk_context *d) {
    fflush(stdout);
    fprintf(stderr, "Uncaught %s\n", duk_safe_to_stacktrace(d, -1));
    fflush(stderr);
}

/* Starts a call of host[method]: pushes the host object and the key. Push
 * the arguments next, then call host_call_end(nargs). */
static void host_call_begin(const char *method) {
    duk_context *d = H.duk;
    duk_push_global_stash(d);
    duk_get_prop_string(d, -1, "host");
    duk_remove(d, -2);
    duk_push_string(d, method);
}

/* Calls host[method](args...). Leaves the result on the stack (undefined
 * after an exception) and returns 0, or 1 when an exception escaped: it is
 * printed (unless it is process.exit unwinding) and the host stops. */
static int host_call_end(int nargs) {
    duk_context *d = H.duk;
    int rc = duk_pcall_prop(d, -(nargs + 2), nargs);
    duk_remove(d, -2); /* the host object */
    if (rc == DUK_EXEC_SUCCESS)
        return 0;
    if (!H.exit_requested) {
        report_exception(d);
        H.exit_code = 1;
    }
    H.stopping = 1;
    duk_pop(d);
    duk_push_undefined(d);
    return 1;
}

/* ---- sockets by handle ----------------------------------------------- */

static dgram_socket *sock_get(duk_context *d, duk_idx_t idx) {
    duk_int_t id = duk_get_int(d, idx);
    if (id <= 0 || (size_t)id >= H.next_id)
        return NULL;
    return H.socks[id];
}

static void sock_forget(size_t id) {
    if (id > 0 && id < H.next_id && H.socks[id]) {
        dgram_socket_free(H.socks[id]);
        H.socks[id] = NULL;
    }
}

static void push_addr_fields(duk_context *d, const dgram_addr *a) {
    duk_push_string(d, a->address);
    duk_push_string(d, a->family == DGRAM_IPV6 ? "IPv6" : "IPv4");
    duk_push_uint(d, a->port);
}

/* code, syscall, address, port, hostname (undefined unless a lookup failed). */
static void push_error_fields(duk_context *d, const dgram_error *e) {
    duk_push_int(d, e->code);
    duk_push_string(d, e->syscall ? e->syscall : "");
    duk_push_string(d, e->addr.address);
    duk_push_uint(d, e->addr.port);
    if (e->hostname)
        duk_push_string(d, e->hostname);
    else
        duk_push_undefined(d);
}

/* ---- library callbacks (host dispatch: on this thread) ---------------- */

static void on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                       void *userdata) {
    (void)s;
    if (H.stopping)
        return;
    duk_context *d = H.duk;
    host_call_begin("onMessage");
    duk_push_uint(d, (duk_uint_t)(uintptr_t)userdata);
    void *p = duk_push_fixed_buffer(d, len);
    if (len)
        memcpy(p, msg, len);
    duk_push_buffer_object(d, -1, 0, len, DUK_BUFOBJ_NODEJS_BUFFER);
    duk_remove(d, -2);
    push_addr_fields(d, rinfo);
    host_call_end(5);
    duk_pop(d);
}

static void on_listening(dgram_socket *s, void *userdata) {
    (void)s;
    if (H.stopping)
        return;
    host_call_begin("onListening");
    duk_push_uint(H.duk, (duk_uint_t)(uintptr_t)userdata);
    host_call_end(1);
    duk_pop(H.duk);
}

static void on_connect(dgram_socket *s, void *userdata) {
    (void)s;
    if (H.stopping)
        return;
    host_call_begin("onConnect");
    duk_push_uint(H.duk, (duk_uint_t)(uintptr_t)userdata);
    host_call_end(1);
    duk_pop(H.duk);
}

static void on_close(dgram_socket *s, void *userdata) {
    (void)s;
    size_t id = (size_t)(uintptr_t)userdata;
    if (!H.stopping) {
        host_call_begin("onClose");
        duk_push_uint(H.duk, (duk_uint_t)id);
        host_call_end(1);
        duk_pop(H.duk);
    }
    /* 'close' is the socket's last event: release the handle now. */
    sock_forget(id);
}

static void on_error(dgram_socket *s, const dgram_error *err, void *userdata) {
    (void)s;
    if (H.stopping)
        return;
    host_call_begin("onError");
    duk_push_uint(H.duk, (duk_uint_t)(uintptr_t)userdata);
    push_error_fields(H.duk, err);
    host_call_end(6);
    duk_pop(H.duk);
}

static void on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    if (H.stopping)
        return;
    (void)s;
    duk_context *d = H.duk;
    host_call_begin("onSent");
    duk_push_uint(d, (duk_uint_t)(uintptr_t)send_data);
    duk_push_number(d, (double)length);
    if (err) {
        push_error_fields(d, err);
    } else {
        duk_push_int(d, 0);
        duk_push_string(d, "send");
        duk_push_string(d, "");
        duk_push_uint(d, 0);
        duk_push_undefined(d);
    }
    host_call_end(7);
    duk_pop(d);
}

/* ---- native functions -------------------------------------------------- */

/* print(fd, text): writes text as is to stdout (1) or stderr (2). */
static duk_ret_t n_print(duk_context *d) {
    int fd = duk_get_int(d, 0);
    duk_size_t len;
    const char *s = duk_safe_to_lstring(d, 1, &len);
    FILE *f = fd == 2 ? stderr : stdout;
    fwrite(s, 1, len, f);
    fflush(f);
    return 0;
}

/* now(): monotonic milliseconds. */
static duk_ret_t n_now(duk_context *d) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    duk_push_number(d, (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
    return 1;
}

/* exit(code): stop running JavaScript and leave with `code`. */
static duk_ret_t n_exit(duk_context *d) {
    H.exit_code = duk_get_int_default(d, 0, 0);
    H.exit_requested = 1;
    H.stopping = 1;
    duk_push_string(d, EXIT_SENTINEL);
    return duk_throw(d);
}

/* readFile(path): the file's text, or undefined when it cannot be read. */
static duk_ret_t n_read_file(duk_context *d) {
    const char *path = duk_require_string(d, 0);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return 0;
    }
    duk_push_lstring(d, buf, len);
    free(buf);
    return 1;
}

/* isFile(path): true for an existing regular file. */
static duk_ret_t n_is_file(duk_context *d) {
    struct stat st;
    duk_push_boolean(d, stat(duk_require_string(d, 0), &st) == 0 && S_ISREG(st.st_mode));
    return 1;
}

/* realpath(path): the canonical absolute path, or undefined. */
static duk_ret_t n_realpath(duk_context *d) {
    char *r = realpath(duk_require_string(d, 0), NULL);
    if (!r)
        return 0;
    duk_push_string(d, r);
    free(r);
    return 1;
}

static duk_ret_t n_cwd(duk_context *d) {
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf))
        return 0;
    duk_push_string(d, buf);
    return 1;
}

/* builtin(name): the source of lib/<name>.js, or undefined. */
static duk_ret_t n_builtin(duk_context *d) {
    const char *name = duk_require_string(d, 0);
    for (const dgramjs_builtin *b = dgramjs_builtins; b->name; b++) {
        if (strcmp(b->name, name) == 0) {
            duk_push_lstring(d, b->source, b->length);
            return 1;
        }
    }
    return 0;
}

/* compile(source, filename): compiles `source`, which must be one function
 * expression, and returns the function. Syntax errors are thrown. */
static duk_ret_t n_compile(duk_context *d) {
    duk_require_string(d, 0);
    duk_require_string(d, 1);
    duk_compile(d, DUK_COMPILE_FUNCTION);
    return 1;
}

/* createSocket(udp6, reuseAddr, ipv6Only, recvBufferSize, sendBufferSize):
 * a handle (> 0) or a negative DGRAM_E* code. */
static duk_ret_t n_create_socket(duk_context *d) {
    dgram_socket_options o;
    memset(&o, 0, sizeof o);
    o.type = duk_to_boolean(d, 0) ? DGRAM_UDP6 : DGRAM_UDP4;
    o.reuse_addr = duk_to_boolean(d, 1);
    o.ipv6_only = duk_to_boolean(d, 2);
    o.recv_buffer_size = duk_get_int_default(d, 3, 0);
    o.send_buffer_size = duk_get_int_default(d, 4, 0);
    if (H.next_id >= (size_t)INT32_MAX) {
        duk_push_int(d, DGRAM_EMFILE);
        return 1;
    }
    if (H.next_id >= H.nsocks) {
        size_t n = H.nsocks ? H.nsocks * 2 : 16;
        dgram_socket **ns = realloc(H.socks, n * sizeof *ns);
        if (!ns) {
            duk_push_int(d, DGRAM_ENOMEM);
            return 1;
        }
        memset(ns + H.nsocks, 0, (n - H.nsocks) * sizeof *ns);
        H.socks = ns;
        H.nsocks = n;
    }
    size_t id = H.next_id;
    dgram_socket *s = NULL;
    int rc = dgram_create_socket(H.ctx, &o, on_message, (void *)(uintptr_t)id, &s);
    if (rc < 0) {
        duk_push_int(d, rc);
        return 1;
    }
    dgram_on_listening(s, on_listening);
    dgram_on_connect(s, on_connect);
    dgram_on_close(s, on_close);
    dgram_on_error(s, on_error);
    H.socks[id] = s;
    H.next_id++;
    duk_push_uint(d, (duk_uint_t)id);
    return 1;
}

/* The address argument at idx: NULL for undefined/null. */
static const char *opt_string(duk_context *d, duk_idx_t idx) {
    if (duk_is_null_or_undefined(d, idx))
        return NULL;
    return duk_to_string(d, idx);
}

/* bind(h, port, address|null): 0 or a negative code. */
static duk_ret_t n_bind(duk_context *d) {
    dgram_socket *s = sock_get(d, 0);
    if (!s) {
        duk_push_int(d, DGRAM_EBADF);
        return 1;
    }
    duk_push_int(d, dgram_bind(s, duk_get_int(d, 1), opt_string(d, 2), NULL));
    return 1;
}

/* send(h, [buffers], port, address|null, req): 0 or a negative code. With
 * req > 0 the completion comes to host.onSent(req, ...); with req 0 an I/O
 * error becomes the socket's 'error' event. */
static duk_ret_t n_send(duk_context *d) {
    dgram_socket *s = sock_get(d, 0);
    if (!s) {
        duk_push_int(d, DGRAM_EBADF);
        return 1;
    }
    duk_size_t n = duk_get_length(d, 1);
    dgram_buf stackbufs[8];
    dgram_buf *bufs = n <= 8 ? stackbufs : malloc(n * sizeof *bufs);
    if (!bufs) {
        duk_push_int(d, DGRAM_ENOMEM);
        return 1;
    }
    for (duk_size_t i = 0; i < n; i++) {
        duk_size_t sz = 0;
        duk_get_prop_index(d, 1, (duk_uarridx_t)i);
        void *p = duk_get_buffer_data(d, -1, &sz);
        duk_pop(d); /* the array still holds the buffer */
        bufs[i].base = p;
        bufs[i].len = p ? sz : 0;
    }
    int port = duk_get_int(d, 2);
    const char *addr = opt_string(d, 3);
    uintptr_t req = (uintptr_t)duk_get_uint(d, 4);
    int rc = dgram_sendv(s, bufs, n, port, addr, req ? on_sent : NULL, (void *)req);
    if (bufs != stackbufs)
        free(bufs);
    duk_push_int(d, rc);
    return 1;
}

/* close(h): 0 or a negative code; 'close' follows (host.onClose). */
static duk_ret_t n_close(duk_context *d) {
    dgram_socket *s = sock_get(d, 0);
    duk_push_int(d, s ? dgram_close(s, NULL) : DGRAM_EBADF);
    return 1;
}

/* Pushes {address, family, port} for `a`, or the code when rc < 0. */
static duk_ret_t push_addr_result(duk_context *d, int rc, const dgram_addr *a) {
    if (rc < 0) {
        duk_push_int(d, rc);
        return 1;
    }
    duk_push_object(d);
    duk_push_string(d, a->address);
    duk_put_prop_string(d, -2, "address");
    duk_push_string(d, a->family == DGRAM_IPV6 ? "IPv6" : "IPv4");
    duk_put_prop_string(d, -2, "family");
    duk_push_uint(d, a->port);
    duk_put_prop_string(d, -2, "port");
    return 1;
}

/* address(h): {address, family, port} or a negative code. */
static duk_ret_t n_address(duk_context *d) {
    dgram_socket *s = sock_get(d, 0);
    dgram_addr a;
    return push_addr_result(d, s ? dgram_address(s, &a) : DGRAM_EBADF, &a);
}

/* remoteAddress(h): the connected peer {address, family, port} or a code. */
static duk_ret_t n_remote_address(duk_context *d) {
    dgram_socket *s = sock_get(d, 0);
    dgram_addr a;
    return push_addr_result(d, s ? dgram_remote_address(s, &a) : DGRAM_EBADF, &a);
}

#define SOCK_OR_EBADF(d, s)                                                                       \
    dgram_socket *s = sock_get(d, 0);                                                             \
    if (!s) {                                                                                     \
        duk_push_int(d, DGRAM_EBADF);                                                             \
        return 1;                                                                                 \
    }

static duk_ret_t n_set_broadcast(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_broadcast(s, duk_to_boolean(d, 1)));
    return 1;
}

static duk_ret_t n_set_ttl(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_ttl(s, duk_get_int(d, 1)));
    return 1;
}

static duk_ret_t n_set_multicast_ttl(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_multicast_ttl(s, duk_get_int(d, 1)));
    return 1;
}

static duk_ret_t n_set_multicast_loopback(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_multicast_loopback(s, duk_to_boolean(d, 1)));
    return 1;
}

static duk_ret_t n_add_membership(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_add_membership(s, duk_to_string(d, 1), opt_string(d, 2)));
    return 1;
}

static duk_ret_t n_drop_membership(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_drop_membership(s, duk_to_string(d, 1), opt_string(d, 2)));
    return 1;
}

/* connect(h, port, address|null): 0 or a negative code; 'connect' follows
 * (host.onConnect), or for a host name an 'error' when the lookup fails. */
static duk_ret_t n_connect(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_connect(s, duk_get_int(d, 1), opt_string(d, 2), NULL));
    return 1;
}

static duk_ret_t n_disconnect(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_disconnect(s));
    return 1;
}

static duk_ret_t n_set_multicast_interface(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_multicast_interface(s, duk_to_string(d, 1)));
    return 1;
}

/* add/dropSourceSpecificMembership(h, source, group, iface|null) */
static duk_ret_t n_add_ssm(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_add_source_specific_membership(s, duk_to_string(d, 1), duk_to_string(d, 2),
                                                         opt_string(d, 3)));
    return 1;
}

static duk_ret_t n_drop_ssm(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_drop_source_specific_membership(s, duk_to_string(d, 1), duk_to_string(d, 2),
                                                          opt_string(d, 3)));
    return 1;
}

/* set{Recv,Send}BufferSize(h, size): 0 or a code; size 1..INT_MAX (dgram.js checks). */
static duk_ret_t n_set_recv_buffer_size(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_recv_buffer_size(s, duk_get_int(d, 1)));
    return 1;
}

static duk_ret_t n_set_send_buffer_size(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_set_send_buffer_size(s, duk_get_int(d, 1)));
    return 1;
}

/* get{Recv,Send}BufferSize(h): the size in bytes or a negative code. */
static duk_ret_t n_get_recv_buffer_size(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_get_recv_buffer_size(s));
    return 1;
}

static duk_ret_t n_get_send_buffer_size(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_get_send_buffer_size(s));
    return 1;
}

/* sendQueue{Size,Count}(h): bytes / datagrams not yet handed to the kernel. */
static duk_ret_t n_send_queue_size(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_send_queue_size(s));
    return 1;
}

static duk_ret_t n_send_queue_count(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_send_queue_count(s));
    return 1;
}

/* ref(h) / unref(h): whether the socket keeps the loop alive (see run_loop). */
static duk_ret_t n_ref(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_socket_ref(s));
    return 1;
}

static duk_ret_t n_unref(duk_context *d) {
    SOCK_OR_EBADF(d, s);
    duk_push_int(d, dgram_socket_unref(s));
    return 1;
}

/* native.codes: every DGRAM_E* code the library knows, by name (EBADF: -9,
 * ...), so that the JavaScript side never keeps its own copy of the table.
 * The codes are negated errno values, or -3000 and beyond for lookups. */
static void push_error_codes(duk_context *d) {
    duk_push_object(d);
    for (int code = -1; code >= -4095; code--) {
        const char *name = dgram_err_name(code);
        if (strcmp(name, "UNKNOWN") != 0) {
            duk_push_int(d, code);
            duk_put_prop_string(d, -2, name);
        }
    }
}

static duk_ret_t n_err_name(duk_context *d) {
    duk_push_string(d, dgram_err_name(duk_get_int(d, 0)));
    return 1;
}

static duk_ret_t n_strerror(duk_context *d) {
    duk_push_string(d, dgram_strerror(duk_get_int(d, 0)));
    return 1;
}

/* active(): dgram_context_active, for tests and diagnostics. */
static duk_ret_t n_active(duk_context *d) {
    duk_push_uint(d, dgram_context_active(H.ctx));
    return 1;
}

/* openSockets(): how many handles are not yet freed (tests). */
static duk_ret_t n_open_sockets(duk_context *d) {
    duk_uint_t n = 0;
    for (size_t i = 1; i < H.next_id; i++)
        n += H.socks[i] != NULL;
    duk_push_uint(d, n);
    return 1;
}

static const duk_function_list_entry native_funcs[] = {
    {"print", n_print, 2},
    {"now", n_now, 0},
    {"exit", n_exit, 1},
    {"readFile", n_read_file, 1},
    {"isFile", n_is_file, 1},
    {"realpath", n_realpath, 1},
    {"cwd", n_cwd, 0},
    {"builtin", n_builtin, 1},
    {"compile", n_compile, 2},
    {"createSocket", n_create_socket, 5},
    {"bind", n_bind, 3},
    {"send", n_send, 5},
    {"close", n_close, 1},
    {"address", n_address, 1},
    {"setBroadcast", n_set_broadcast, 2},
    {"setTTL", n_set_ttl, 2},
    {"setMulticastTTL", n_set_multicast_ttl, 2},
    {"setMulticastLoopback", n_set_multicast_loopback, 2},
    {"addMembership", n_add_membership, 3},
    {"dropMembership", n_drop_membership, 3},
    {"connect", n_connect, 3},
    {"disconnect", n_disconnect, 1},
    {"remoteAddress", n_remote_address, 1},
    {"setMulticastInterface", n_set_multicast_interface, 2},
    {"addSourceSpecificMembership", n_add_ssm, 4},
    {"dropSourceSpecificMembership", n_drop_ssm, 4},
    {"setRecvBufferSize", n_set_recv_buffer_size, 2},
    {"setSendBufferSize", n_set_send_buffer_size, 2},
    {"getRecvBufferSize", n_get_recv_buffer_size, 1},
    {"getSendBufferSize", n_get_send_buffer_size, 1},
    {"sendQueueSize", n_send_queue_size, 1},
    {"sendQueueCount", n_send_queue_count, 1},
    {"ref", n_ref, 1},
    {"unref", n_unref, 1},
    {"errName", n_err_name, 1},
    {"strerror", n_strerror, 1},
    {"active", n_active, 0},
    {"openSockets", n_open_sockets, 0},
    {NULL, NULL, 0},
};

/* ---- start-up, loop, teardown ----------------------------------------- */

/* Runs lib/bootstrap.js: a function (native, argv, env) returning the host
 * object, kept in the global stash. Returns 0 on success. */
static int bootstrap(int argc, char **argv) {
    duk_context *d = H.duk;
    duk_push_global_stash(d);
    const dgramjs_builtin *b = dgramjs_builtins;
    while (b->name && strcmp(b->name, "bootstrap") != 0)
        b++;
    if (!b->name) {
        fprintf(stderr, "dgramjs: bootstrap.js missing from the build\n");
        return -1;
    }
    duk_push_lstring(d, b->source, b->length);
    duk_push_string(d, "bootstrap.js");
    if (duk_pcompile(d, DUK_COMPILE_FUNCTION) != 0) {
        report_exception(d);
        return -1;
    }
    duk_push_object(d);
    duk_put_function_list(d, -1, native_funcs);
    push_error_codes(d);
    duk_put_prop_string(d, -2, "codes");
    duk_push_array(d);
    duk_push_string(d, argv[0]);
    duk_put_prop_index(d, -2, 0);
    for (int i = 1; i < argc; i++) {
        duk_push_string(d, argv[i]);
        duk_put_prop_index(d, -2, (duk_uarridx_t)i);
    }
    duk_push_object(d);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        duk_push_lstring(d, *e, (duk_size_t)(eq - *e));
        duk_push_string(d, eq + 1);
        duk_put_prop(d, -3);
    }
    if (duk_pcall(d, 3) != 0) {
        report_exception(d);
        return -1;
    }
    duk_put_prop_string(d, -2, "host");
    duk_pop(d);
    return 0;
}

/* Calls host[method]() and returns its number (-1 when it is not one). */
static double host_number(const char *method) {
    host_call_begin(method);
    host_call_end(0);
    double v = duk_is_number(H.duk, -1) ? duk_get_number(H.duk, -1) : -1;
    duk_pop(H.duk);
    return v;
}

static void run_loop(void) {
    int fd = dgram_context_fd(H.ctx);
    while (!H.stopping) {
        /* host.nextTimeout(): ms to the nearest timer, -1 when none.
         * host.hasRef(): 1 while a timer that keeps the process alive waits. */
        double t = host_number("nextTimeout");
        if (H.stopping)
            break;
        double ref = host_number("hasRef");
        if (H.stopping)
            break;
        /* dgram_context_active leaves out unref'd sockets (socket.unref()):
         * their being bound, 'listening', 'connect' and datagrams do not
         * keep the process alive, exactly as unref'd timers do not. */
        if (dgram_context_active(H.ctx) == 0 && ref <= 0)
            break;
        int timeout = t < 0 ? -1 : (t > INT_MAX ? INT_MAX : (int)ceil(t));
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int n = poll(&p, 1, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "dgramjs: poll: %s\n", strerror(errno));
            H.exit_code = 1;
            break;
        }
        if (n > 0 && (p.revents & POLLIN)) {
            int rc = dgram_context_dispatch(H.ctx, 0);
            if (rc < 0 && !H.stopping) {
                fprintf(stderr, "dgramjs: dgram_context_dispatch: %s\n", dgram_err_name(rc));
                H.exit_code = 1;
                break;
            }
        }
        if (H.stopping)
            break;
        host_call_begin("runTimers");
        host_call_end(0);
        duk_pop(H.duk);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: %s script.js [args...]\n"
                        "Runs script.js with the IoT.js dgram module on libdgram %s.\n",
                argv[0], dgram_version());
        return argc < 2 ? 2 : 0;
    }
    H.next_id = 1;
    H.duk = duk_create_heap(NULL, NULL, NULL, NULL, fatal_handler);
    if (!H.duk) {
        fprintf(stderr, "dgramjs: cannot create the JavaScript heap\n");
        return 1;
    }
    H.ctx = dgram_context_new(NULL);
    if (!H.ctx) {
        fprintf(stderr, "dgramjs: dgram_context_new failed\n");
        duk_destroy_heap(H.duk);
        return 1;
    }
    if (bootstrap(argc, argv) != 0) {
        H.exit_code = 1;
    } else {
        host_call_begin("runMain");
        duk_push_string(H.duk, argv[1]);
        host_call_end(1);
        duk_pop(H.duk);
        run_loop();
        /* process 'exit': not after process.exit() (it emitted it already). */
        if (!H.exit_requested) {
            int fatal = H.stopping;
            H.stopping = 0;
            host_call_begin("emitExit");
            duk_push_int(H.duk, H.exit_code);
            duk_push_boolean(H.duk, fatal);
            if (host_call_end(2) == 0 && duk_is_number(H.duk, -1))
                H.exit_code = duk_get_int(H.duk, -1);
            duk_pop(H.duk);
        }
    }
    H.stopping = 1;
    for (size_t i = 1; i < H.next_id; i++)
        sock_forget(i);
    dgram_context_free(H.ctx);
    free(H.socks);
    duk_destroy_heap(H.duk);
    fflush(stdout);
    return H.exit_code;
}
