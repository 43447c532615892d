/*
 * libdgram: UDP datagram sockets for C and C++ hosts, with the semantics of
 * the IoT.js (and Node) `dgram` module.
 *
 * OBJECTS
 *   dgram_context  its sockets, its event queue and one background I/O thread.
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
 *   Events (listening, message, close, error, send completions) are
 *   delivered by calling your callbacks:
 *   - DGRAM_DISPATCH_HOST (default): on the thread that calls
 *     dgram_context_dispatch or dgram_context_run. Put dgram_context_fd into
 *     your own poll/epoll/libuv loop and dispatch when it is readable. The
 *     dispatch call reads the datagrams itself and delivers them straight
 *     from its read buffer: no other thread touches them.
 *   - DGRAM_DISPATCH_IO_THREAD: on the context's I/O thread, which reads
 *     and delivers the same way.
 *   A callback never runs inside the call that caused it (bind's listening
 *   and send's completion always come later). Events of one socket come in
 *   the order the library saw them happen, a datagram when a dispatch (or
 *   the I/O thread) reads it from the kernel: an event queued while
 *   datagrams wait in the kernel buffer comes before them. There is no
 *   order between sockets.
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
 *   Host names given to bind, send or connect are looked up on a second
 *   thread of the context, its resolver (started on the first lookup); no
 *   callback ever runs there, and neither the caller nor the I/O thread
 *   waits for a lookup.
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
#define DGRAM_VERSION_MINOR 2
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
 * A host name lookup failed for now; trying again later may work (getaddrinfo's EAI_AGAIN).
 */
#define DGRAM_EAI_AGAIN (-3001)

/**
 * A host name lookup failed for good: the name does not resolve to an
 * address of the socket's family, or the lookup itself failed
 * (getaddrinfo's EAI_NONAME, EAI_NODATA, EAI_FAIL; Node's ENOTFOUND).
 */
#define DGRAM_ENOTFOUND (-3008)

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
 * Most datagrams one `dgram_send_batch` call takes.
 */
#define DGRAM_SEND_BATCH_MAX 1024

/**
 * Segmentation offload: send runs of equal-size datagrams to one destination
 * as one UDP_SEGMENT (GSO) write. On by default where the kernel has it.
 */
#define DGRAM_OFFLOAD_GSO 1

/**
 * Receive offload: let the kernel hand over runs of datagrams of one flow as
 * one UDP_GRO buffer, split back into datagrams before the message callback.
 * Off by default; once on, on for the socket's life (see `dgram_set_offload`).
 */
#define DGRAM_OFFLOAD_GRO 2

/**
 * On which thread callbacks run: the values of
 * `dgram_context_options.dispatch`.
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
 * Socket type, as in `dgram.createSocket(type)`: the values of
 * `dgram_socket_options.type`.
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
 * Address family of a `dgram_addr` (rinfo.family: "IPv4" or "IPv6"): the
 * values of `dgram_addr.family`.
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
 * A context: its sockets, its event queue, and one background I/O thread.
 *
 * Created by `dgram_context_new`, released by `dgram_context_free`. Every
 * function taking a context may be called from any thread.
 *
 * Functions:
 * - context: `dgram_context_fd`, `dgram_context_dispatch`,
 *   `dgram_context_run`, `dgram_context_active`, `dgram_context_free`;
 * - socket lifecycle: `dgram_create_socket`.
 */
typedef struct dgram_context dgram_context;

/**
 * A UDP socket of a context (the IoT.js `dgram.Socket`).
 *
 * Created by `dgram_create_socket`, released by exactly one
 * `dgram_socket_free`. A closed socket, or one whose context was freed, stays
 * a valid handle that answers `DGRAM_EBADF` until it is freed.
 *
 * Functions:
 * - socket lifecycle: `dgram_socket_free`, `dgram_on_message`,
 *   `dgram_on_listening`, `dgram_on_close`, `dgram_on_error`,
 *   `dgram_on_connect`, `dgram_close`, `dgram_socket_ref`,
 *   `dgram_socket_unref`;
 * - bind and connect: `dgram_bind`, `dgram_address`, `dgram_connect`,
 *   `dgram_disconnect`, `dgram_remote_address`;
 * - send: `dgram_send`, `dgram_sendv`, `dgram_send_batch`;
 * - receive and metadata: `dgram_set_message_meta`, `dgram_message_meta`;
 * - socket options: `dgram_set_broadcast`, `dgram_set_ttl`, `dgram_fileno`;
 * - multicast: `dgram_add_membership`, `dgram_drop_membership`,
 *   `dgram_set_multicast_interface`, `dgram_add_source_specific_membership`,
 *   `dgram_drop_source_specific_membership`,
 *   `dgram_set_multicast_loopback`, `dgram_set_multicast_ttl`;
 * - figures and offload: `dgram_socket_stats`,
 *   `dgram_set_recv_buffer_size`, `dgram_set_send_buffer_size`,
 *   `dgram_get_recv_buffer_size`, `dgram_get_send_buffer_size`,
 *   `dgram_send_queue_size`, `dgram_send_queue_count`, `dgram_set_offload`,
 *   `dgram_get_offload`.
 */
typedef struct dgram_socket dgram_socket;

/**
 * Options for `dgram_context_new`. Zero-initialise it, then set what you need.
 */
typedef struct {
  /**
   * Where callbacks run: a `dgram_dispatch` value, `DGRAM_DISPATCH_HOST`
   * (the default, 0) or `DGRAM_DISPATCH_IO_THREAD`; any other value makes
   * `dgram_context_new` fail. An `int32_t` rather than the enum, so that
   * the struct's layout does not depend on the compiler's enum size.
   */
  int32_t dispatch;
  /**
   * The most received datagrams the library holds at once, read from the
   * kernel and not yet delivered: one read (one recvmmsg) takes at most
   * this many, and at most 32. 0 means the default, 8192 (so 32 per
   * read); values above 1048576 (2^20) are clamped to it. Until they are
   * read, datagrams wait in each socket's kernel receive buffer (size it
   * with `dgram_socket_options.recv_buffer_size`), and the kernel drops
   * what overflows that (`dgram_stats.dropped_by_kernel`). The library
   * itself never drops a datagram it has read. Other events (listening,
   * send completions, errors, close) do not count against this bound.
   *
   * Who reads: in host dispatch the thread that calls
   * `dgram_context_dispatch` or `dgram_context_run`, which delivers each
   * read at once, from the read's own buffer: a host that does not
   * dispatch leaves datagrams in the kernel. In I/O-thread dispatch the
   * I/O thread, likewise. A read of a socket with GRO on takes one
   * coalesced buffer, which may hold up to 128 datagrams whatever this
   * bound; what `dgram_context_dispatch`'s `max_events` leaves of it is
   * delivered first by the next call.
   *
   * Memory: a context reads into one batch of 32 slots of 64 KiB of
   * address space (2 MiB), whatever this bound and however much arrives;
   * only the pages datagrams touch become resident (a page per slot for
   * datagrams up to 4 KiB). Nothing of it is allocated by
   * `dgram_context_new`: the batch is mapped on the first read and reused
   * while traffic flows; once it has rested for a second the pages large
   * datagrams wrote are given back to the system. When the batch cannot
   * be mapped (no memory), reading waits and is retried after 10 ms,
   * backing off to 1 s: the datagrams wait in the kernel buffer
   * meanwhile, and neither the host's thread nor the I/O thread spins.
   */
  uint32_t max_pending_events;
} dgram_context_options;

/**
 * Options for `dgram_create_socket`. Zero-initialise it, then set what you need.
 */
typedef struct {
  /**
   * A `dgram_type` value: `DGRAM_UDP4` (the default, 0) or `DGRAM_UDP6`;
   * any other value is `DGRAM_EINVAL`. An `int32_t` rather than the enum,
   * so that the struct's layout does not depend on the compiler's enum
   * size.
   */
  int32_t type;
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
   * A `dgram_family` value: `DGRAM_IPV4` or `DGRAM_IPV6` (`DGRAM_IPV4`
   * when there is no address). An `int32_t` rather than the enum, so that
   * the struct's layout does not depend on the compiler's enum size.
   */
  int32_t family;
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
 * The 'listening', 'connect' and 'close' events. `userdata` is the pointer given to
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
  /**
   * The host name whose lookup failed (`DGRAM_ENOTFOUND`,
   * `DGRAM_EAI_AGAIN`; `syscall` is then "getaddrinfo"), NULL otherwise.
   * Valid only during the callback.
   */
  const char *hostname;
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
 * What the kernel told about one received datagram (`dgram_message_meta`).
 * Each part is there only when its `has_` flag is true: the socket must have
 * asked for it with `dgram_set_message_meta` before the datagram was read.
 */
typedef struct {
  /**
   * The address the datagram was sent to (the IP header's destination:
   * one of the host's addresses, or a multicast or broadcast address),
   * with the socket's port.
   */
  dgram_addr local;
  /**
   * The index of the interface it arrived on (if_nametoindex), with
   * `local`; 0 where the kernel did not record it: an IPv4 datagram that
   * was already waiting in the socket's buffer when
   * `dgram_set_message_meta` was turned on.
   */
  uint32_t ifindex;
  /**
   * The IPv4 TTL or IPv6 hop limit it arrived with (0..255).
   */
  int32_t ttl;
  /**
   * When the kernel received it, as CLOCK_REALTIME seconds (SO_TIMESTAMPNS).
   * For a datagram already waiting when `dgram_set_message_meta` was
   * turned on, when it was read instead. Where the system refuses
   * nanoseconds (qemu-user does), microseconds (SO_TIMESTAMP); where it
   * refuses both, `has_timestamp` is false.
   */
  int64_t timestamp_sec;
  /**
   * Nanoseconds of `timestamp_sec`, 0..999999999.
   */
  uint32_t timestamp_nsec;
  /**
   * `local` and `ifindex` are set.
   */
  bool has_local;
  /**
   * `ttl` is set.
   */
  bool has_ttl;
  /**
   * `timestamp_sec` and `timestamp_nsec` are set.
   */
  bool has_timestamp;
  /**
   * The datagram was longer than what was delivered. Never true on Linux
   * today: every receive slot holds the largest UDP payload.
   */
  bool truncated;
  /**
   * The datagram arrived as part of a segmentation-offload (UDP_GRO)
   * buffer of datagrams of this size; 0 when it arrived alone.
   */
  uint32_t gro_segment_size;
} dgram_meta;

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
   * was full. Always 0: libdgram reads only as fast as it delivers, and
   * what the socket's kernel buffer cannot hold meanwhile is counted in
   * `dropped_by_kernel`. Kept for API compatibility.
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
 * The context's notification fd, for the host's own poll/epoll/libuv loop
 * (level-triggered): readable while a socket of the context has datagrams
 * waiting in its kernel buffer or other events wait for
 * `dgram_context_dispatch` (host dispatch mode; in I/O-thread mode it
 * never becomes readable). It is an epoll fd holding the sockets, so a
 * host that polls it and dispatches wakes once per batch of datagrams,
 * and the datagrams are read by the dispatch call itself. Owned by the
 * context: do not close it, and do not read from it or change its set.
 * `DGRAM_EINVAL` for NULL.
 */
int dgram_context_fd(const dgram_context *ctx);

/**
 * Runs the callbacks of waiting events on the calling thread, without
 * blocking: at most `max_events` of them, or with 0 the events queued when
 * the call began, then up to 4 reads (of up to 32 datagrams each) of each
 * socket that has datagrams (up to 64 sockets per call; the others stay
 * ready for the next), each read's datagrams preceded by the events queued
 * meanwhile (callbacks of this call may queue some). Datagrams are read
 * from the kernel by this call and delivered straight from the read. Returns how many events were processed
 * (each datagram counts as one, those with no callback set included;
 * datagrams discarded because their socket closed are not counted), or a negative code: `DGRAM_EBUSY` when called from
 * inside a callback or while another thread dispatches this context,
 * `DGRAM_EBADF` when a callback it ran freed the context (the handle is
 * gone: do not use it again), `DGRAM_EINVAL` for NULL. In I/O-thread mode
 * it returns 0 at once (`DGRAM_EBUSY` from inside a callback).
 */
int dgram_context_dispatch(dgram_context *ctx,
                           uint32_t max_events);

/**
 * Waits until at least one event was dispatched or `timeout_ms` passed
 * (negative: no limit; 0: just dispatch what is there), then returns the number
 * dispatched (0 on timeout). Returns 0 at once when nothing is active
 * (`dgram_context_active` is 0), whatever the timeout, and in I/O-thread
 * mode (`DGRAM_EBUSY` from inside a callback). `DGRAM_EBUSY` and
 * `DGRAM_EINVAL` as for `dgram_context_dispatch`; `DGRAM_EBADF` when the
 * context is freed (by a callback this call ran, or by another thread)
 * while this call runs: the handle must not be used after that.
 * A call waiting without limit returns 0 as soon as nothing is active any
 * more, whatever ended the last activity (a close, free, unref or
 * completion, on any thread).
 * A host loop: `while (dgram_context_active(ctx) && dgram_context_run(ctx, -1) >= 0) {}`
 */
int dgram_context_run(dgram_context *ctx, int32_t timeout_ms);

/**
 * How much keeps this context's host loop alive: bound open sockets, plus
 * sends not yet completed, plus events not yet delivered (datagrams are not
 * among them: they wait in the kernel until a dispatch reads and delivers
 * them, and their bound socket already counts). 0 means nothing is
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
 * Releases the host's handle. An open socket is closed with no further
 * callback of any kind (not even its send callbacks). NULL is fine. Call it
 * exactly once per handle, in any order relative to `dgram_context_free`;
 * the handle must not be used afterwards. May be called from inside any
 * callback, including the socket's own.
 */
void dgram_socket_free(dgram_socket *s);

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
 * no other place to go (a failed send without a callback, a receive error,
 * an ICMP error on a connected socket, a failed lookup for bind or
 * connect). Without a handler such errors are dropped.
 */
int dgram_on_error(dgram_socket *s, dgram_error_cb cb);

/**
 * Sets (or with NULL clears) the persistent 'connect' handler. It runs
 * before the one-shot callback given to `dgram_connect`.
 */
int dgram_on_connect(dgram_socket *s, dgram_event_cb cb);

/**
 * Closes the socket (`socket.close`): receiving stops at once, and no
 * 'message' is delivered after this returns (a callback of this context
 * running on another thread at that moment is waited for, not the rest of
 * that thread's dispatch). Sends not yet written complete
 * with `DGRAM_ECANCELED`; then 'close' comes once, asynchronously: first the
 * persistent handler, then `on_close` (nullable, one-shot). A second close,
 * or any later call on the socket, returns `DGRAM_EBADF`. The handle stays
 * valid until `dgram_socket_free`.
 */
int dgram_close(dgram_socket *s, dgram_event_cb on_close);

/**
 * Undoes `dgram_socket_unref` (Node `socket.ref`); sockets start
 * referenced. Idempotent. `DGRAM_EBADF` when closed.
 */
int dgram_socket_ref(dgram_socket *s);

/**
 * Lets the socket stop counting in `dgram_context_active` (Node
 * `socket.unref`), so a host loop that runs while anything is active can
 * end while the socket stays open. Its being bound and its 'listening'
 * and 'connect' events then do not count;
 * its send completions, errors, lookups and 'close' still do. Events
 * are still delivered whenever the host dispatches. Idempotent.
 * `DGRAM_EBADF` when closed.
 */
int dgram_socket_unref(dgram_socket *s);

/**
 * Binds the socket (`socket.bind`). `port` 0 lets the OS pick; `address`
 * NULL means every interface (0.0.0.0 or ::). For a numeric address,
 * validation and bind(2) happen now and their errors are the result:
 * `DGRAM_EINVAL` (bad port or address, or a literal of the other family),
 * `DGRAM_EADDRINUSE`, `DGRAM_EADDRNOTAVAIL`, `DGRAM_EACCES`,
 * `DGRAM_EALREADY` (already bound, also implicitly by a send, or a bind
 * waiting for its lookup), `DGRAM_EBADF` (closed). After a failed bind,
 * bind may be called again. On success 'listening' follows, asynchronously:
 * first the persistent handler, then `on_listening` (nullable, one-shot;
 * never called when bind fails).
 *
 * `address` may also be a host name ("localhost" excepted, which is always
 * 127.0.0.1 or ::1): it is looked up on the context's resolver thread
 * (getaddrinfo, for the socket's family, first answer), never on the
 * caller's or the I/O thread, and bind returns 0 at once. A lookup that
 * fails comes as an 'error' event (`DGRAM_ENOTFOUND`, syscall
 * "getaddrinfo", `hostname` set), a bind(2) that fails after it as an
 * 'error' event with syscall "bind". Sends made meanwhile wait for the bind.
 */
int dgram_bind(dgram_socket *s, int32_t port, const char *address, dgram_event_cb on_listening);

/**
 * Writes the bound local address into `*out` (`socket.address()`).
 * `DGRAM_EBADF` when closed or not bound yet; `DGRAM_EINVAL` for NULL `out`.
 */
int dgram_address(const dgram_socket *s, dgram_addr *out);

/**
 * Associates the socket with one peer (Node `socket.connect`): sends
 * without a destination go there, and only its datagrams are received.
 * `port` must be 1..65535; `address` NULL means 127.0.0.1 (udp4) or ::1
 * (udp6). An unbound socket is first bound to 0.0.0.0 (or ::) on a random
 * port, with its 'listening'. For a numeric address the connect happens
 * now and its errors are the result (`DGRAM_EINVAL`, `DGRAM_EISCONN` when
 * already connected or connecting, `DGRAM_EBADF`, the system's answer);
 * then 'connect' follows, asynchronously: the persistent handler, then
 * `on_connect` (nullable, one-shot). A host name is looked up first, as
 * for `dgram_bind`; its failure comes as an 'error' event (`DGRAM_ENOTFOUND`),
 * and sends to the peer made meanwhile wait for it (and fail with
 * `DGRAM_ENOTCONN` if the connect does). Once connected, an ICMP port
 * unreachable from the peer comes as an 'error' event with
 * `DGRAM_ECONNREFUSED`.
 *
 * Operations of one socket keep their call order: while an earlier bind,
 * connect or send of this socket waits for a lookup, a numeric connect
 * waits behind it too, and its connect(2) errors come as an 'error' event
 * (syscall "connect"). The same holds for a numeric `dgram_bind`.
 */
int dgram_connect(dgram_socket *s, int32_t port, const char *address, dgram_event_cb on_connect);

/**
 * Dissolves the association made by `dgram_connect` (Node
 * `socket.disconnect`), at once; the socket keeps its local address and
 * port. `DGRAM_ENOTCONN` when not connected (also while a connect waits for
 * its lookup), `DGRAM_EBADF` when closed.
 */
int dgram_disconnect(dgram_socket *s);

/**
 * Writes the connected peer's address into `*out` (Node
 * `socket.remoteAddress()`). `DGRAM_ENOTCONN` when not connected,
 * `DGRAM_EBADF` when closed, `DGRAM_EINVAL` for NULL `out`.
 */
int dgram_remote_address(const dgram_socket *s, dgram_addr *out);

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
 * On a connected socket (`dgram_connect`) pass port 0 and address NULL: the
 * datagram goes to the peer; any destination (a port other than 0, or an
 * address) is `DGRAM_EISCONN`, before the destination itself is checked,
 * as in Node.
 *
 * `address` may be a host name: the bytes are copied, the name is looked
 * up on the resolver thread (see `dgram_bind`), and the datagram goes out
 * after it, still in call order with this socket's other sends (those made
 * after it wait too). A name that does not resolve completes the send with
 * `DGRAM_ENOTFOUND` (syscall "getaddrinfo", `hostname` set); a malformed
 * name or address is `DGRAM_EINVAL` at once.
 *
 * Result: 0 when the datagram was accepted; `DGRAM_EINVAL` (port outside
 * 1..65535, bad address, `msg` NULL with `len` > 0), `DGRAM_EISCONN`,
 * `DGRAM_EMSGSIZE` (over 65507 bytes on udp4, 65527 on udp6),
 * `DGRAM_ENOBUFS` (the socket's send queue is full: at least 1024
 * datagrams and 1 MiB wait, counting those waiting for a lookup; or 65536
 * of its completions wait for dispatch), `DGRAM_EBADF`.
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
 * Sends the `count` datagrams of `msgs` (each `dgram_buf` is ONE datagram)
 * to one destination, in order, in as few system calls as the kernel
 * allows: sendmmsg, and, with `DGRAM_OFFLOAD_GSO` (on by default where the
 * kernel has it), each run of equal-size datagrams (the last may be
 * shorter) as one UDP_SEGMENT write of up to 64 of them. Where the kernel
 * or the route's device refuses segmentation offload, the socket turns it
 * off for good and sends them one by one, with the same result.
 *
 * `port` and `address` as for `dgram_send`, except that `address` must be
 * numeric (or "localhost"): a host name is `DGRAM_EINVAL` (connect once
 * and send to the peer instead). `count` 0 sends nothing (the destination is
 * still checked); over
 * `DGRAM_SEND_BATCH_MAX` (1024) is
 * `DGRAM_EINVAL`; any datagram over the size limit is `DGRAM_EMSGSIZE`,
 * a piece with NULL `base` and `len` > 0 `DGRAM_EINVAL`. The batch is
 * accepted whole or not at all (`DGRAM_ENOBUFS` as for `dgram_send`).
 *
 * `cb` (nullable) is called once per datagram, in order, with that
 * datagram's length and result, exactly as for `dgram_send`; without `cb`
 * nothing is queued for dispatch unless a datagram fails. The bytes are
 * sent or copied before this returns.
 */
int dgram_send_batch(dgram_socket *s,
                     const dgram_buf *msgs,
                     size_t count,
                     int32_t port,
                     const char *address,
                     dgram_send_cb cb,
                     void *send_data);

/**
 * Asks the kernel (`on` true) for each received datagram's destination
 * address and interface (IP_PKTINFO / IPV6_RECVPKTINFO), TTL or hop limit
 * (IP_RECVTTL / IPV6_RECVHOPLIMIT) and receive timestamp (SO_TIMESTAMPNS),
 * for `dgram_message_meta`; `on` false stops. Off by default, and then it
 * costs nothing. Applies to datagrams that reach the socket after the
 * call: those already waiting come without metadata, or with part of it
 * (see the `has_` flags).
 */
int dgram_set_message_meta(dgram_socket *s, bool on);

/**
 * Inside `s`'s message callback, on the thread running it, writes the
 * metadata of the datagram being delivered into `*out` (see
 * `dgram_meta`). `DGRAM_EINVAL` for NULL `out`, when called
 * anywhere else, or when the datagram was read while
 * `dgram_set_message_meta` was off; `DGRAM_EBADF` when closed.
 */
int dgram_message_meta(const dgram_socket *s, dgram_meta *out);

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
 * The OS socket's fd, for getsockopt and diagnostics (valid before bind).
 * Owned by the library: do not close it, read from it or change its
 * blocking mode. `DGRAM_EBADF` when closed.
 */
int dgram_fileno(const dgram_socket *s);

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
 * Chooses the interface outgoing multicast leaves by (Node
 * `socket.setMulticastInterface`): for udp4 the IPv4 address of a local
 * interface ("0.0.0.0" for the system's choice); for udp6 an interface as
 * "::%eth0" (Node's form), "eth0" or "2" ("::" for the system's choice).
 * `DGRAM_EINVAL` for NULL or malformed text, `DGRAM_ENODEV` for an
 * interface name that does not exist, `DGRAM_EADDRNOTAVAIL` for an IPv4
 * address that is not local.
 */
int dgram_set_multicast_interface(dgram_socket *s, const char *iface);

/**
 * Joins the source-specific group (`source`, `group`) on `iface` (Node
 * `socket.addSourceSpecificMembership`): only datagrams that `source` sends
 * to `group` arrive. `source` must be a unicast address and `group` a
 * multicast address of the socket's family (IGMPv3/MLDv2 SSM; 232.0.0.0/8
 * and ff3x::/32 are the ranges meant for it), else `DGRAM_EINVAL`; `iface`
 * as for `dgram_add_membership`.
 */
int dgram_add_source_specific_membership(dgram_socket *s,
                                         const char *source,
                                         const char *group,
                                         const char *iface);

/**
 * Leaves a source-specific group (Node
 * `socket.dropSourceSpecificMembership`); arguments as for the join.
 * The kernel's answers: a group this socket never joined is
 * `DGRAM_EINVAL`, a source it did not join within a joined group
 * `DGRAM_EADDRNOTAVAIL`.
 */
int dgram_drop_source_specific_membership(dgram_socket *s,
                                          const char *source,
                                          const char *group,
                                          const char *iface);

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
 * Writes the socket's counters into `*out` (see `dgram_stats`). Works on a
 * closed socket too, giving the final figures. `DGRAM_EINVAL` for NULL `s`
 * or `out`. May be called from any thread, inside callbacks included.
 */
int dgram_socket_stats(const dgram_socket *s, dgram_stats *out);

/**
 * Sets SO_RCVBUF (Node `socket.setRecvBufferSize`) to `size` bytes,
 * 1..INT_MAX, else `DGRAM_EINVAL`. The kernel caps it at
 * net.core.rmem_max and doubles it for its bookkeeping (see the getter).
 */
int dgram_set_recv_buffer_size(dgram_socket *s, int size);

/**
 * Sets SO_SNDBUF (Node `socket.setSendBufferSize`); as for the receive buffer.
 */
int dgram_set_send_buffer_size(dgram_socket *s, int size);

/**
 * SO_RCVBUF in bytes (Node `socket.getRecvBufferSize`), as the kernel
 * reports it: on Linux twice the size that was set. Negative code on
 * error (`DGRAM_EBADF` when closed).
 */
int dgram_get_recv_buffer_size(const dgram_socket *s);

/**
 * SO_SNDBUF in bytes (Node `socket.getSendBufferSize`); as for the receive buffer.
 */
int dgram_get_send_buffer_size(const dgram_socket *s);

/**
 * Bytes accepted by `dgram_send`/`dgram_sendv`/`dgram_send_batch` and not
 * yet handed to the kernel (Node `socket.getSendQueueSize`): queued while
 * the kernel's buffer was full, or waiting for a host name lookup. 0 when
 * every send went straight out. `DGRAM_EBADF` when closed.
 */
int dgram_send_queue_size(const dgram_socket *s);

/**
 * The number of datagrams counted by `dgram_send_queue_size` (Node
 * `socket.getSendQueueCount`).
 */
int dgram_send_queue_count(const dgram_socket *s);

/**
 * The segmentation offloads this kernel has (`DGRAM_OFFLOAD_GSO`,
 * `DGRAM_OFFLOAD_GRO`), found once per process.
 */
uint32_t dgram_offload_support(void);

/**
 * Chooses the socket's segmentation offloads: `flags` is a set of
 * `DGRAM_OFFLOAD_*` (others are `DGRAM_EINVAL`). Those the kernel lacks
 * are left off, so the socket behaves as without them. GRO, once on, stays
 * on for the socket's life, whatever later calls ask: the kernel keeps the
 * buffers it coalesced, and without the option it would hand them over as
 * single datagrams with no way to split them. Returns the flags now in
 * effect, or a negative code. Turning GRO on waits for a read of this
 * socket that another thread may have under way (a system call's time).
 *
 * GSO (default on where supported) only changes how many system calls and
 * packets a send takes, never what is received. GRO (default off) lets the
 * kernel pass a run of datagrams of one flow as one buffer, which the
 * reader splits back into the same datagrams, with their own callbacks:
 * fewer, larger reads for bulk flows. With GRO on, a read offers 2 buffers
 * instead of up to 32 (each may hold up to 128 datagrams), which costs
 * reads when traffic does not coalesce (many peers, mixed sizes), and one
 * read may hold up to 128 datagrams whatever `max_pending_events` says.
 */
int dgram_set_offload(dgram_socket *s, uint32_t flags);

/**
 * The socket's offloads in effect now (`DGRAM_OFFLOAD_*` flags), or a
 * negative code. GSO can go off by itself: the first time the kernel or the
 * route's device refuses a UDP_SEGMENT write, the socket stops using it.
 */
int dgram_get_offload(const dgram_socket *s);

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
