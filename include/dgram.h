/*
 * libdgram: UDP datagram sockets for C and C++ hosts, with the semantics of
 * the IoT.js (and Node) `dgram` module.
 *
 * OBJECTS
 *   dgram_context  one background I/O thread, its sockets and its event queue.
 *   dgram_socket   one UDP socket (IoT.js dgram.Socket) of a context.
 *   Both are opaque handles, created by dgram_context_new / dgram_create_socket
 *   and released by dgram_context_free / dgram_socket_free, exactly once each,
 *   in any order. A closed socket (or one whose context was freed) stays a
 *   valid handle answering DGRAM_EBADF until it is freed.
 *
 * RESULTS
 *   Every int-returning function returns 0 (or a count or fd) on success and a
 *   negative DGRAM_E* code on failure; the codes are errno names, negated.
 *   Which error wins: a NULL handle is DGRAM_EINVAL; then a closed socket is
 *   DGRAM_EBADF whatever the other arguments; then the arguments are checked
 *   (DGRAM_EINVAL, DGRAM_EMSGSIZE); then the socket's state. Bad input never
 *   crashes the library: every pointer may be NULL, every number out of range.
 *   Strings must be NUL-terminated.
 *
 * EVENTS AND THREADS
 *   Events (listening, message, close, error, send completions) are queued by
 *   the library and delivered by calling your callbacks:
 *   - DGRAM_DISPATCH_HOST (default): on the thread that calls
 *     dgram_context_dispatch or dgram_context_run. Put dgram_context_fd into
 *     your own poll/epoll/libuv loop and dispatch when it is readable.
 *   - DGRAM_DISPATCH_IO_THREAD: on the context's I/O thread.
 *   A callback never runs inside the call that caused it (bind's listening
 *   and send's completion always come later). Events of one socket come in
 *   the order they happened; there is no order between sockets.
 *   Every function may be called from any thread, and from inside any
 *   callback (close or free a socket from its own message callback, send from
 *   a send callback, free the context), except that dispatch does not nest:
 *   dgram_context_dispatch/run inside a callback (in either mode), or while
 *   another thread dispatches the same context, returns DGRAM_EBUSY at once.
 *   When a callback frees the context, the dispatch/run call that ran it
 *   returns DGRAM_EBADF, and the handle must not be used again.
 *   dgram_close from another thread waits for a callback of the same context
 *   that is running at that moment, so a callback must not block waiting for
 *   a thread that is closing a socket.
 *   Callbacks must return normally: no longjmp out of them, no C++ exception
 *   through them.
 *
 * MEMORY
 *   Data passed in (messages, strings, option structs) is copied or used
 *   before the call returns; the caller keeps ownership. Pointers passed to
 *   callbacks (msg, rinfo, err) belong to the library and are valid only
 *   during the callback. Strings returned by dgram_err_name, dgram_strerror,
 *   dgram_version and dgram_error.syscall are static.
 */


#ifndef DGRAM_H
#define DGRAM_H

/* This file is generated from the Rust sources by cbindgen (build.rs). Do not edit it by hand. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The version of this header: compare with dgram_version() at run time. */
#define DGRAM_VERSION_MAJOR 0
#define DGRAM_VERSION_MINOR 1
#define DGRAM_VERSION_PATCH 0


/**
 * Success.
 */
#define DGRAM_OK 0

/**
 * Operation not permitted.
 */
#define DGRAM_EPERM (-1)

/**
 * Interrupted system call (never returned by the library: it retries).
 */
#define DGRAM_EINTR (-4)

/**
 * I/O error.
 */
#define DGRAM_EIO (-5)

/**
 * Bad socket: the socket is closed, or not bound where binding is required
 * (`dgram_address`).
 */
#define DGRAM_EBADF (-9)

/**
 * Resource temporarily unavailable.
 */
#define DGRAM_EAGAIN (-11)

/**
 * Out of memory.
 */
#define DGRAM_ENOMEM (-12)

/**
 * Permission denied: a privileged port, or broadcast without `dgram_set_broadcast`.
 */
#define DGRAM_EACCES (-13)

/**
 * Busy: dispatch called from inside a callback, or while another thread dispatches the same context.
 */
#define DGRAM_EBUSY (-16)

/**
 * No such device: an interface name that does not exist.
 */
#define DGRAM_ENODEV (-19)

/**
 * Invalid argument: a NULL pointer, a malformed address, a port or value out of range.
 */
#define DGRAM_EINVAL (-22)

/**
 * Too many open files in the system.
 */
#define DGRAM_ENFILE (-23)

/**
 * Too many open files in this process.
 */
#define DGRAM_EMFILE (-24)

/**
 * Message too long for a datagram (over 65507 bytes on IPv4, 65527 on IPv6).
 */
#define DGRAM_EMSGSIZE (-90)

/**
 * Protocol option not available.
 */
#define DGRAM_ENOPROTOOPT (-92)

/**
 * Protocol not supported.
 */
#define DGRAM_EPROTONOSUPPORT (-93)

/**
 * Operation not supported.
 */
#define DGRAM_EOPNOTSUPP (-95)

/**
 * Address family not supported (for example udp6 on a kernel without IPv6).
 */
#define DGRAM_EAFNOSUPPORT (-97)

/**
 * Address already in use.
 */
#define DGRAM_EADDRINUSE (-98)

/**
 * Address not available: not a local address, or a multicast group not joined.
 */
#define DGRAM_EADDRNOTAVAIL (-99)

/**
 * Network is down.
 */
#define DGRAM_ENETDOWN (-100)

/**
 * Network is unreachable: no route to the destination.
 */
#define DGRAM_ENETUNREACH (-101)

/**
 * Connection reset by peer.
 */
#define DGRAM_ECONNRESET (-104)

/**
 * No buffer space: the socket's send queue is full.
 */
#define DGRAM_ENOBUFS (-105)

/**
 * Socket is connected.
 */
#define DGRAM_EISCONN (-106)

/**
 * Socket is not connected.
 */
#define DGRAM_ENOTCONN (-107)

/**
 * Timed out.
 */
#define DGRAM_ETIMEDOUT (-110)

/**
 * Connection refused: the destination port is closed (ICMP port unreachable).
 */
#define DGRAM_ECONNREFUSED (-111)

/**
 * Host is down.
 */
#define DGRAM_EHOSTDOWN (-112)

/**
 * No route to host.
 */
#define DGRAM_EHOSTUNREACH (-113)

/**
 * Already done: a second bind (explicit or implicit) on the same socket.
 */
#define DGRAM_EALREADY (-114)

/**
 * Canceled: a send that was still queued when its socket closed.
 */
#define DGRAM_ECANCELED (-125)

/**
 * An OS error this table does not know; `dgram_err_name` says "UNKNOWN".
 */
#define DGRAM_EUNKNOWN (-4094)

/**
 * The library failed internally (a Rust panic was caught at the C boundary).
 * The call had no effect that can be relied on; please report it.
 */
#define DGRAM_EINTERNAL (-4095)







/**
 * Size of `dgram_addr.address`, terminating NUL included (INET6_ADDRSTRLEN).
 */
#define DGRAM_ADDRSTRLEN 46

/**
 * On which thread callbacks run.
 */
typedef enum {
  /**
   * Callbacks run on the host's thread, inside `dgram_context_dispatch` or
   * `dgram_context_run` (the default: what a single-threaded JS engine or a
   * libuv loop needs).
   */
  DGRAM_DISPATCH_HOST = 0,
  /**
   * Callbacks run on the context's I/O thread; the host does not dispatch.
   */
  DGRAM_DISPATCH_IO_THREAD = 1,
} dgram_dispatch;

/**
 * Socket type, as in `dgram.createSocket(type)`.
 */
typedef enum {
  /**
   * IPv4 ("udp4").
   */
  DGRAM_UDP4 = 0,
  /**
   * IPv6 ("udp6"); receives IPv4 too (as ::ffff:a.b.c.d) unless `ipv6_only`.
   */
  DGRAM_UDP6 = 1,
} dgram_type;

/**
 * Address family of a `dgram_addr` (rinfo.family: "IPv4" or "IPv6").
 */
typedef enum {
  /**
   * An IPv4 address.
   */
  DGRAM_IPV4 = 4,
  /**
   * An IPv6 address.
   */
  DGRAM_IPV6 = 6,
} dgram_family;

/**
 * A context: one background I/O thread, its sockets and its event queue.
 *
 * Created by `dgram_context_new`, released by `dgram_context_free`. Every
 * function taking a context may be called from any thread.
 */
typedef struct dgram_context dgram_context;

/**
 * A UDP socket of a context (the IoT.js `dgram.Socket`).
 *
 * Created by `dgram_create_socket`, released by exactly one
 * `dgram_socket_free`. A closed socket, or one whose context was freed, stays
 * a valid handle that answers `DGRAM_EBADF` until it is freed.
 */
typedef struct dgram_socket dgram_socket;

/**
 * Options for `dgram_context_new`. Zero-initialise it, then set what you need.
 */
typedef struct {
  /**
   * Where callbacks run (default `DGRAM_DISPATCH_HOST`).
   */
  dgram_dispatch dispatch;
  /**
   * How many received datagrams may wait for dispatch in the library; 0
   * means the default, 8192. At that mark the I/O thread stops reading the
   * sockets until dispatch has brought the queue down to half: further
   * datagrams wait in each socket's kernel receive buffer (size it with
   * `dgram_socket_options.recv_buffer_size`), and the kernel drops what
   * overflows that. The library itself never drops a datagram it has read.
   * Other events (listening, send completions, errors, close) do not
   * count against this bound.
   *
   * Memory: received datagrams wait in batches of up to 32 slots of 64 KiB
   * of address space each (2 MiB per batch), of which only the pages the
   * datagrams touch become resident; a batch that has to wait is packed.
   * At most max_pending_events / 32 + 2 batches exist per context (for a
   * bound of 64 or less, one per datagram plus one), and when they all
   * wait, reading stops as at the bound (about
   * 516 MiB of address space at the default, resident only as far as
   * datagrams fill it: about 8192 x size rounded to 8 bytes, plus a page
   * per slot of the batches in use).
   */
  uint32_t max_pending_events;
} dgram_context_options;

/**
 * Options for `dgram_create_socket`. Zero-initialise it, then set what you need.
 */
typedef struct {
  /**
   * `DGRAM_UDP4` or `DGRAM_UDP6`.
   */
  dgram_type type;
  /**
   * Set SO_REUSEADDR before binding, so several sockets can share a port
   * (multicast and broadcast listeners; the IoT.js `reuseAddr` option).
   */
  bool reuse_addr;
  /**
   * udp6 only: set IPV6_V6ONLY, so the socket receives no IPv4 traffic.
   * Ignored for udp4.
   */
  bool ipv6_only;
  /**
   * SO_RCVBUF in bytes; 0 keeps the system default; negative is `DGRAM_EINVAL`.
   */
  int32_t recv_buffer_size;
  /**
   * SO_SNDBUF in bytes; 0 keeps the system default; negative is `DGRAM_EINVAL`.
   */
  int32_t send_buffer_size;
} dgram_socket_options;

/**
 * An IP address and port, as text (the IoT.js `rinfo` and `address()` object).
 */
typedef struct {
  /**
   * NUL-terminated numeric address: "127.0.0.1", "::1", "fe80::1%eth0".
   * Empty when there is no address.
   */
  char address[DGRAM_ADDRSTRLEN];
  /**
   * Port in host byte order; 0 when there is none.
   */
  uint16_t port;
  /**
   * `DGRAM_IPV4` or `DGRAM_IPV6`.
   */
  dgram_family family;
} dgram_addr;

/**
 * The 'message' event: one datagram of `len` bytes (possibly 0) from
 * `rinfo`. `msg` and `rinfo` are valid only during the callback: the library
 * reuses that memory as soon as it returns, so copy what you keep.
 */
typedef void (*dgram_message_cb)(dgram_socket *s,
                                 const uint8_t *msg,
                                 size_t len,
                                 const dgram_addr *rinfo,
                                 void *userdata);

/**
 * The 'listening' and 'close' events. `userdata` is the pointer given to
 * `dgram_create_socket`.
 */
typedef void (*dgram_event_cb)(dgram_socket *s, void *userdata);

/**
 * An error as delivered to callbacks (the IoT.js `Error` object).
 */
typedef struct {
  /**
   * A negative `DGRAM_E*` code; `dgram_err_name(code)` gives "ECONNREFUSED".
   */
  int32_t code;
  /**
   * The system call that failed ("bind", "send", "recvmsg"), a static
   * string owned by the library.
   */
  const char *syscall;
  /**
   * The address and port involved (port 0 and "" when none).
   */
  dgram_addr addr;
} dgram_error;

/**
 * The 'error' event. `err` is valid only during the callback.
 */
typedef void (*dgram_error_cb)(dgram_socket *s, const dgram_error *err, void *userdata);

/**
 * Completion of one `dgram_send`/`dgram_sendv`: `err` is NULL when the
 * datagram was handed to the kernel, else the error (valid only during the
 * callback). `length` is the message's length either way. `send_data` is the
 * pointer given to that send call.
 */
typedef void (*dgram_send_cb)(dgram_socket *s,
                              const dgram_error *err,
                              size_t length,
                              void *send_data);

/**
 * One piece of a message for `dgram_sendv` (the IoT.js Array message).
 */
typedef struct {
  /**
   * Start of the bytes; may be NULL only when `len` is 0.
   */
  const void *base;
  /**
   * Number of bytes.
   */
  size_t len;
} dgram_buf;

/**
 * A socket's counters (`dgram_socket_stats`). Counted from the socket's
 * creation; they keep their final values once it is closed.
 */
typedef struct {
  /**
   * Datagrams handed to the message callback, or read while no message
   * callback was set. Datagrams discarded because the socket was closed
   * before dispatch are counted nowhere.
   */
  uint64_t datagrams_received;
  /**
   * Their payload bytes.
   */
  uint64_t bytes_received;
  /**
   * Sends the kernel took (completed without error).
   */
  uint64_t datagrams_sent;
  /**
   * Their payload bytes.
   */
  uint64_t bytes_sent;
  /**
   * Datagrams libdgram read and then discarded because the host's queue
   * was full. Always 0: at `max_pending_events` libdgram stops reading
   * instead, and what the socket's kernel buffer cannot hold meanwhile is
   * counted in `dropped_by_kernel`. Kept for API compatibility.
   */
  uint64_t dropped_queue_full;
  /**
   * The kernel's drop counter for this socket: datagrams that arrived
   * while its receive buffer was full (the counter Linux reports with
   * SO_RXQ_OVFL, read here with SO_MEMINFO). 0 where the system does not
   * report it. Drops before the datagram reached a socket (for instance
   * in the per-CPU backlog, /proc/net/softnet_stat) are not in it.
   */
  uint64_t dropped_by_kernel;
  /**
   * Sends that ended with an error, including those cancelled by close
   * (`DGRAM_ECANCELED`) or by freeing the socket or its context.
   */
  uint64_t send_errors;
} dgram_stats;





#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Creates a context and starts its I/O thread.
 *
 * `opts` may be NULL for the defaults (host dispatch, 8192 pending
 * datagrams). Returns NULL when `opts->dispatch` is not a `dgram_dispatch`
 * value or the system refuses the thread or its file descriptors.
 * Release it with `dgram_context_free`.
 */
dgram_context *dgram_context_new(const dgram_context_options *opts);

/**
 * The context's notification fd, for the host's own poll/epoll/libuv loop:
 * readable while events wait for `dgram_context_dispatch` (host dispatch
 * mode; in I/O-thread mode it never becomes readable). Owned by the context:
 * do not close it, and do not read from it. `DGRAM_EINVAL` for NULL.
 */
int dgram_context_fd(const dgram_context *ctx);

/**
 * Runs the callbacks of waiting events on the calling thread, without
 * blocking: at most `max_events` of them, or with 0 all those queued when
 * the call began. Returns how many events were processed (those with no
 * callback set included; datagrams discarded because their socket closed
 * are not counted), or a negative code: `DGRAM_EBUSY` when called from
 * inside a callback or while another thread dispatches this context,
 * `DGRAM_EBADF` when a callback it ran freed the context (the handle is
 * gone: do not use it again), `DGRAM_EINVAL` for NULL. In I/O-thread mode
 * it returns 0 at once (`DGRAM_EBUSY` from inside a callback).
 */
int dgram_context_dispatch(dgram_context *ctx, uint32_t max_events);

/**
 * Waits until at least one event was dispatched or `timeout_ms` passed
 * (negative: no limit; 0: just dispatch what is there), then returns the number
 * dispatched (0 on timeout). Returns 0 at once when nothing is active
 * (`dgram_context_active` is 0), whatever the timeout, and in I/O-thread
 * mode (`DGRAM_EBUSY` from inside a callback). `DGRAM_EBUSY` and
 * `DGRAM_EINVAL` as for `dgram_context_dispatch`; `DGRAM_EBADF` when the
 * context is freed (by a callback this call ran, or by another thread)
 * while this call runs: the handle must not be used after that.
 * A host loop: `while (dgram_context_active(ctx) && dgram_context_run(ctx, -1) >= 0) {}`
 */
int dgram_context_run(dgram_context *ctx, int32_t timeout_ms);

/**
 * How much keeps this context's host loop alive: bound open sockets, plus
 * sends not yet completed, plus events not yet delivered. 0 means nothing is
 * left to do (as a libuv or Node loop decides to exit). A socket created but
 * never bound does not count; a closed socket counts only its pending 'close'
 * and send completions; a freed socket not at all. 0 for NULL.
 */
uint32_t dgram_context_active(const dgram_context *ctx);

/**
 * Closes every socket of the context (no callback runs afterwards), stops
 * and joins its I/O thread, and releases it. NULL is fine. Socket handles
 * stay valid, answering `DGRAM_EBADF`, until each is passed to
 * `dgram_socket_free`. May be called from inside a callback; the context
 * handle must not be used afterwards.
 */
void dgram_context_free(dgram_context *ctx);

/**
 * Creates a socket (`dgram.createSocket`). The OS socket is made now, on
 * the calling thread (so in that thread's network namespace), so options and
 * memberships may be set before bind.
 *
 * `opts` NULL means udp4 with defaults. `on_message` (nullable) is the
 * 'message' handler; `userdata` is passed back to every event callback of
 * this socket. On success `*out` receives the handle, to be released by
 * exactly one `dgram_socket_free`; on failure `*out` is set to NULL.
 * Errors: `DGRAM_EINVAL` (NULL `ctx` or `out`, a `type` that is not a
 * `dgram_type`, a negative buffer size), or the system's answer
 * (`DGRAM_EAFNOSUPPORT`, `DGRAM_EMFILE`, ...).
 */
int dgram_create_socket(dgram_context *ctx,
                        const dgram_socket_options *opts,
                        dgram_message_cb on_message,
                        void *userdata,
                        dgram_socket **out);

/**
 * Sets (or with NULL clears) the persistent 'message' handler.
 * `DGRAM_EBADF` on a closed socket.
 */
int dgram_on_message(dgram_socket *s, dgram_message_cb cb);

/**
 * Sets (or with NULL clears) the persistent 'listening' handler. It runs
 * before the one-shot callback given to `dgram_bind`.
 */
int dgram_on_listening(dgram_socket *s, dgram_event_cb cb);

/**
 * Sets (or with NULL clears) the persistent 'close' handler. It runs before
 * the one-shot callback given to `dgram_close`.
 */
int dgram_on_close(dgram_socket *s, dgram_event_cb cb);

/**
 * Sets (or with NULL clears) the 'error' handler: asynchronous errors with
 * no other place to go (a failed send without a callback, a receive error).
 * Without a handler such errors are dropped.
 */
int dgram_on_error(dgram_socket *s, dgram_error_cb cb);

/**
 * Binds the socket (`socket.bind`). `port` 0 lets the OS pick; `address`
 * NULL means every interface (0.0.0.0 or ::). Validation and bind(2) happen
 * now and their errors are the result: `DGRAM_EINVAL` (bad port or address,
 * or a literal of the other family), `DGRAM_EADDRINUSE`,
 * `DGRAM_EADDRNOTAVAIL`, `DGRAM_EACCES`, `DGRAM_EALREADY` (already bound,
 * also implicitly by a send), `DGRAM_EBADF` (closed). After a failed bind,
 * bind may be called again. On success 'listening' follows, asynchronously:
 * first the persistent handler, then `on_listening` (nullable, one-shot;
 * never called when bind fails).
 */
int dgram_bind(dgram_socket *s, int32_t port, const char *address, dgram_event_cb on_listening);

/**
 * Sends one datagram of `len` bytes (`socket.send`) to `address`:`port`.
 * `address` NULL means 127.0.0.1 (udp4) or ::1 (udp6). The bytes are sent
 * or copied before this returns, so `msg` may be reused at once; `len` 0
 * sends an empty datagram (`msg` may then be NULL).
 *
 * An unbound socket is first bound to 0.0.0.0 (or ::) on a random port, and
 * its 'listening' comes before this send's callback. Sends of one socket go
 * out in call order.
 *
 * Result: 0 when the datagram was accepted; `DGRAM_EINVAL` (port outside
 * 1..65535, bad address, `msg` NULL with `len` > 0), `DGRAM_EMSGSIZE` (over
 * 65507 bytes on udp4, 65527 on udp6), `DGRAM_ENOBUFS` (the socket's send
 * queue is full: at least 1024 datagrams and 1 MiB wait; or 65536 of its
 * completions wait for dispatch), `DGRAM_EBADF`.
 * An accepted send completes exactly once, asynchronously: `cb` (nullable)
 * gets NULL or the I/O error; without `cb` an I/O error becomes an 'error'
 * event. The callback does not come if the socket is freed first.
 * `send_data` is passed back to `cb`.
 */
int dgram_send(dgram_socket *s,
               const void *msg,
               size_t len,
               int32_t port,
               const char *address,
               dgram_send_cb cb,
               void *send_data);

/**
 * Sends the `nbufs` pieces of `bufs`, concatenated, as ONE datagram (the
 * IoT.js Array message). `nbufs` 0 sends an empty datagram (`bufs` may then
 * be NULL). `DGRAM_EINVAL` when `bufs` is NULL with `nbufs` > 0 or a piece
 * has a NULL `base` with `len` > 0; otherwise exactly as `dgram_send`.
 */
int dgram_sendv(dgram_socket *s,
                const dgram_buf *bufs,
                size_t nbufs,
                int32_t port,
                const char *address,
                dgram_send_cb cb,
                void *send_data);

/**
 * Closes the socket (`socket.close`): receiving stops at once, and no
 * 'message' is delivered after this returns (a callback of this context
 * running on another thread is waited for). Sends not yet written complete
 * with `DGRAM_ECANCELED`; then 'close' comes once, asynchronously: first the
 * persistent handler, then `on_close` (nullable, one-shot). A second close,
 * or any later call on the socket, returns `DGRAM_EBADF`. The handle stays
 * valid until `dgram_socket_free`.
 */
int dgram_close(dgram_socket *s, dgram_event_cb on_close);

/**
 * Releases the host's handle. An open socket is closed with no further
 * callback of any kind (not even its send callbacks). NULL is fine. Call it
 * exactly once per handle, in any order relative to `dgram_context_free`;
 * the handle must not be used afterwards. May be called from inside any
 * callback, including the socket's own.
 */
void dgram_socket_free(dgram_socket *s);

/**
 * Writes the bound local address into `*out` (`socket.address()`).
 * `DGRAM_EBADF` when closed or not bound yet; `DGRAM_EINVAL` for NULL `out`.
 */
int dgram_address(const dgram_socket *s, dgram_addr *out);

/**
 * Writes the socket's counters into `*out` (see `dgram_stats`). Works on a
 * closed socket too, giving the final figures. `DGRAM_EINVAL` for NULL `s`
 * or `out`. May be called from any thread, inside callbacks included.
 */
int dgram_socket_stats(const dgram_socket *s, dgram_stats *out);

/**
 * Sets or clears SO_BROADCAST (`socket.setBroadcast`).
 */
int dgram_set_broadcast(dgram_socket *s, bool flag);

/**
 * Sets IP_TTL (udp4) or IPV6_UNICAST_HOPS (udp6) (`socket.setTTL`);
 * `ttl` must be 1..255, else `DGRAM_EINVAL`.
 */
int dgram_set_ttl(dgram_socket *s, int32_t ttl);

/**
 * Joins `group` on `iface` (`socket.addMembership`). `group` must be a
 * multicast address of the socket's family (else `DGRAM_EINVAL`). `iface`:
 * for udp4 the IPv4 address of a local interface; for udp6 an interface name
 * ("eth0"), index ("2") or address with zone ("::%eth0"); NULL lets the
 * kernel choose. A malformed `iface` is `DGRAM_EINVAL`; a well-formed one
 * that is not local is the kernel's answer (`DGRAM_EADDRNOTAVAIL`,
 * `DGRAM_ENODEV`).
 */
int dgram_add_membership(dgram_socket *s, const char *group, const char *iface);

/**
 * Leaves `group` on `iface` (`socket.dropMembership`); arguments as for
 * `dgram_add_membership`. Dropping a group not joined is `DGRAM_EADDRNOTAVAIL`.
 */
int dgram_drop_membership(dgram_socket *s, const char *group, const char *iface);

/**
 * Sets or clears IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP
 * (`socket.setMulticastLoopback`).
 */
int dgram_set_multicast_loopback(dgram_socket *s, bool flag);

/**
 * Sets IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (`socket.setMulticastTTL`);
 * `ttl` must be 0..255, else `DGRAM_EINVAL`.
 */
int dgram_set_multicast_ttl(dgram_socket *s, int32_t ttl);

/**
 * The OS socket's fd, for getsockopt and diagnostics (valid before bind).
 * Owned by the library: do not close it, read from it or change its
 * blocking mode. `DGRAM_EBADF` when closed.
 */
int dgram_fileno(const dgram_socket *s);

/**
 * The errno-style name of a code ("EADDRINUSE"); "UNKNOWN" for a code the
 * library does not know. Never NULL; the string is static.
 */
const char *dgram_err_name(int code);

/**
 * A short description of a code ("address already in use"); "unknown
 * error" for a code the library does not know. Never NULL; the string is static.
 */
const char *dgram_strerror(int code);

/**
 * The library's version, "MAJOR.MINOR.PATCH". Static.
 */
const char *dgram_version(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* DGRAM_H */
