//! The C ABI. Each function checks its pointers, catches panics, converts C
//! types to Rust ones, and calls the safe core; nothing else happens here.
//!
//! Handles are `Arc`s turned into raw pointers: `dgram_context *` is an
//! `Arc<Context>`, `dgram_socket *` an `Arc<Socket>`, each released by its
//! `_free` function.
//!
//! Every function here trusts its pointer arguments only as far as the
//! header's contract goes: a handle is NULL or live, a string NULL or
//! NUL-terminated, any other pointer NULL or valid for what it names. The
//! raw operations that rely on it are in the helpers below (each `unsafe fn`
//! states its contract under "Safety"); each entry point says, where it calls
//! them, which part of the header's contract makes the call sound.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // The safety contract of each function is in the header.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::IoSlice;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use crate::addr::Family;
use crate::context::{Context, Mode};
use crate::error::{self, to_code, Errno, Result, DGRAM_EINTERNAL};
use crate::event::UserPtr;
use crate::socket::{Socket, SocketConfig};
use crate::types::*;

/// Runs `body`, turning a panic into `on_panic`: no unwind crosses into C.
fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// [`guard`] for the functions returning 0 or a negative code.
fn guard_code(body: impl FnOnce() -> Result<()>) -> c_int {
    guard(DGRAM_EINTERNAL, || to_code(body()))
}

/// Borrows the `Arc` behind a handle without taking ownership of it;
/// `DGRAM_EINVAL` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or a handle from `Arc::into_raw` of a `T` that the host has
/// not released yet (the header's contract for every handle), and stays so
/// while the result is used.
unsafe fn borrow_handle<T>(ptr: *const c_void) -> Result<ManuallyDrop<Arc<T>>> {
    if ptr.is_null() {
        return Err(Errno::INVAL);
    }
    // SAFETY: not NULL (checked above), so by this function's contract `ptr`
    // comes from `Arc::into_raw` of a `T` whose reference the host still
    // holds; `ManuallyDrop` leaves that reference with the host.
    Ok(ManuallyDrop::new(unsafe { Arc::from_raw(ptr.cast::<T>()) }))
}

/// Takes back the host's reference behind a handle (the `_free` functions);
/// `None` for NULL.
///
/// # Safety
///
/// As for [`borrow_handle`], and the host gives the handle up: it is not
/// used again.
unsafe fn take_handle<T>(ptr: *const c_void) -> Option<Arc<T>> {
    // SAFETY: not NULL (checked first), so by this function's contract `ptr`
    // comes from `Arc::into_raw` of a live `T`, and the host hands its
    // reference over: it is ours to drop.
    (!ptr.is_null()).then(|| unsafe { Arc::from_raw(ptr.cast::<T>()) })
}

/// Borrows the context behind a `dgram_context *`.
///
/// # Safety
///
/// `ctx` is NULL or a handle from `dgram_context_new` not yet passed to
/// `dgram_context_free` (header: `dgram_context`).
unsafe fn context(ctx: *const dgram_context) -> Result<ManuallyDrop<Arc<Context>>> {
    // SAFETY: a context handle is `Arc::into_raw` of an `Arc<Context>`
    // (dgram_context_new), live by this function's contract.
    unsafe { borrow_handle::<Context>(ctx.cast()) }
}

/// A strong reference for calls that may outlast a `dgram_context_free` made
/// meanwhile from a callback or another thread (dispatch and run): the context
/// stays allocated until they return, and they see it as freed.
///
/// # Safety
///
/// As for [`context`], at the time of the call.
unsafe fn owned_context(ctx: *const dgram_context) -> Result<Arc<Context>> {
    // SAFETY: this function's contract is `context`'s; the borrow ends once
    // it is cloned.
    unsafe { context(ctx) }.map(|ctx| Arc::clone(&ctx))
}

/// Borrows the socket behind a `dgram_socket *`.
///
/// # Safety
///
/// `s` is NULL or a handle from `dgram_create_socket` not yet passed to
/// `dgram_socket_free` (header: `dgram_socket`; a closed socket's handle
/// stays valid until then).
unsafe fn socket(s: *const dgram_socket) -> Result<ManuallyDrop<Arc<Socket>>> {
    // SAFETY: a socket handle is `Arc::into_raw` of an `Arc<Socket>`
    // (dgram_create_socket), live by this function's contract.
    unsafe { borrow_handle::<Socket>(s.cast()) }
}

/// A C string argument; `None` for NULL.
///
/// # Safety
///
/// `text` is NULL or a NUL-terminated string (header: "Strings must be
/// NUL-terminated"), readable and unchanged for `'a`.
unsafe fn opt_str<'a>(text: *const c_char) -> Option<&'a CStr> {
    // SAFETY: not NULL (checked first), so NUL-terminated and readable by
    // this function's contract.
    (!text.is_null()).then(|| unsafe { CStr::from_ptr(text) })
}

/// A piece of a datagram as a slice. A length no datagram can have is
/// `DGRAM_EMSGSIZE` before any slice is made: a slice longer than
/// `isize::MAX` would be undefined behaviour, whatever the pointer (found by
/// the fuzzer with `len = SIZE_MAX`).
///
/// # Safety
///
/// When `0 < len <= 65527`, `base` is NULL or points to `len` bytes readable
/// and unchanged for `'a`.
unsafe fn bytes<'a>(base: *const c_void, len: usize) -> Result<&'a [u8]> {
    match (base.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(Errno::INVAL),
        (_, len) if len > Family::V6.max_payload() => Err(Errno(error::DGRAM_EMSGSIZE)),
        // SAFETY: not NULL and 0 < len <= 65527 (the arms above), so `len`
        // readable bytes by this function's contract; `u8` needs no
        // alignment, and the length is far below `isize::MAX`.
        (false, len) => Ok(unsafe { std::slice::from_raw_parts(base.cast::<u8>(), len) }),
    }
}

/// The most `dgram_buf`s one slice can hold (`isize::MAX` bytes).
const MAX_BUF_ARRAY: usize = isize::MAX as usize / std::mem::size_of::<dgram_buf>();

/// The host's array of `count` `dgram_buf`s at `base`: empty for 0 whatever
/// `base`, `DGRAM_EINVAL` for NULL, then `too_many` for more than `max` (or
/// more than a slice can hold), before any slice is made.
///
/// # Safety
///
/// When `count > 0`, `base` is NULL or points to `count` `dgram_buf`s, and
/// each of those is readable as for [`bytes`], all for `'a`.
unsafe fn buf_array<'a>(base: *const dgram_buf, count: usize, max: usize, too_many: Errno) -> Result<Pieces<'a>> {
    match (base.is_null(), count) {
        (_, 0) => Ok(Pieces(&[])),
        (true, _) => Err(Errno::INVAL),
        (false, n) if n > max.min(MAX_BUF_ARRAY) => Err(too_many),
        // SAFETY: not NULL and 0 < n <= MAX_BUF_ARRAY (the arms above), so
        // by this function's contract `n` readable, aligned `dgram_buf`s
        // making at most `isize::MAX` bytes; the pieces' own bytes are
        // `Pieces`' invariant, which this contract gives.
        (false, n) => Ok(Pieces(unsafe { std::slice::from_raw_parts(base, n) })),
    }
}

/// `dgram_buf`s from the host, each of which has a `base` that is NULL or
/// points to `len` readable bytes (the header's contract for a `dgram_buf`).
/// Made only by [`buf_array`], whose contract gives this invariant.
#[derive(Clone, Copy)]
struct Pieces<'a>(&'a [dgram_buf]);

impl<'a> Pieces<'a> {
    fn len(self) -> usize {
        self.0.len()
    }

    /// Each piece's bytes in order, as [`bytes`] checks them.
    fn bytes(self) -> impl Iterator<Item = Result<&'a [u8]>> {
        self.0.iter().map(|piece| {
            // SAFETY: `Pieces`' invariant: `piece.base` is NULL or points to
            // `piece.len` bytes readable for `'a`.
            unsafe { bytes(piece.base, piece.len) }
        })
    }
}

/// For the functions that write one value into `*out`: a closed socket is
/// `DGRAM_EBADF` whatever `out` is, then a NULL `out` is `DGRAM_EINVAL`.
///
/// # Safety
///
/// `s` as for [`socket`]; `out` is NULL or valid and aligned for writing a
/// `T` (the header's contract for an out-pointer).
unsafe fn write_out<T>(s: *const dgram_socket, out: *mut T, get: impl FnOnce(&Socket) -> Result<T>) -> Result<()> {
    // SAFETY: `s` is NULL or a live socket handle: this function's contract.
    let socket = unsafe { socket(s) }?;
    socket.ensure_open()?;
    if out.is_null() {
        return Err(Errno::INVAL);
    }
    let value = get(&socket)?;
    // SAFETY: not NULL (checked above), so writable by this function's
    // contract; `write` drops nothing that was there.
    unsafe { out.write(value) };
    Ok(())
}

/// [`guard`] for the functions returning a non-negative value or a
/// negative code.
fn guard_int(body: impl FnOnce() -> Result<c_int>) -> c_int {
    guard(DGRAM_EINTERNAL, || match body() {
        Ok(value) => value,
        Err(Errno(code)) => code,
    })
}

fn clamp_int(value: usize) -> c_int {
    value.min(c_int::MAX as usize) as c_int
}

fn result_count(result: Result<u32>) -> c_int {
    match result {
        Ok(count) => count.min(c_int::MAX as u32) as c_int,
        Err(Errno(code)) => code,
    }
}

// ---- context --------------------------------------------------------------

/// Creates a context and starts its I/O thread.
///
/// `opts` may be NULL for the defaults (host dispatch, 8192 pending
/// datagrams). Returns NULL when `opts->dispatch` is not a `dgram_dispatch`
/// value or the system refuses the thread or its file descriptors.
/// Release it with `dgram_context_free`.
#[no_mangle]
pub unsafe extern "C" fn dgram_context_new(opts: *const dgram_context_options) -> *mut dgram_context {
    guard(ptr::null_mut(), || {
        let raw = if opts.is_null() {
            RawContextOptions {
                dispatch: 0,
                max_pending_events: 0,
            }
        } else {
            // Read as integers: C may store any value in the enum field.
            // SAFETY: not NULL (checked above), so a readable
            // `dgram_context_options` (header); `RawContextOptions` has its
            // layout (asserted in types.rs) and no invalid values.
            unsafe { opts.cast::<RawContextOptions>().read() }
        };
        let mode = match raw.dispatch {
            0 => Mode::Host,
            1 => Mode::IoThread,
            _ => return ptr::null_mut(),
        };
        match Context::new(mode, raw.max_pending_events) {
            Ok(ctx) => Arc::into_raw(ctx) as *mut dgram_context,
            Err(_) => ptr::null_mut(),
        }
    })
}

/// The context's notification fd, for the host's own poll/epoll/libuv loop:
/// readable while events wait for `dgram_context_dispatch` (host dispatch
/// mode; in I/O-thread mode it never becomes readable). Owned by the context:
/// do not close it, and do not read from it. `DGRAM_EINVAL` for NULL.
#[no_mangle]
pub unsafe extern "C" fn dgram_context_fd(ctx: *const dgram_context) -> c_int {
    // SAFETY: `ctx` is NULL or a context handle not yet freed (header: dgram_context).
    guard_int(|| Ok(unsafe { context(ctx) }?.host_fd()))
}

/// Runs the callbacks of waiting events on the calling thread, without
/// blocking: at most `max_events` of them, or with 0 all those queued when
/// the call began. Returns how many events were processed (those with no
/// callback set included; datagrams discarded because their socket closed
/// are not counted), or a negative code: `DGRAM_EBUSY` when called from
/// inside a callback or while another thread dispatches this context,
/// `DGRAM_EBADF` when a callback it ran freed the context (the handle is
/// gone: do not use it again), `DGRAM_EINVAL` for NULL. In I/O-thread mode
/// it returns 0 at once (`DGRAM_EBUSY` from inside a callback).
#[no_mangle]
pub unsafe extern "C" fn dgram_context_dispatch(ctx: *mut dgram_context, max_events: u32) -> c_int {
    guard(DGRAM_EINTERNAL, || {
        // SAFETY: `ctx` is NULL or a context handle not yet freed (header: dgram_context).
        result_count(unsafe { owned_context(ctx) }.and_then(|ctx| ctx.dispatch(max_events)))
    })
}

/// Waits until at least one event was dispatched or `timeout_ms` passed
/// (negative: no limit; 0: just dispatch what is there), then returns the number
/// dispatched (0 on timeout). Returns 0 at once when nothing is active
/// (`dgram_context_active` is 0), whatever the timeout, and in I/O-thread
/// mode (`DGRAM_EBUSY` from inside a callback). `DGRAM_EBUSY` and
/// `DGRAM_EINVAL` as for `dgram_context_dispatch`; `DGRAM_EBADF` when the
/// context is freed (by a callback this call ran, or by another thread)
/// while this call runs: the handle must not be used after that.
/// A call waiting without limit returns 0 as soon as nothing is active any
/// more, whatever ended the last activity (a close, free, unref or
/// completion, on any thread).
/// A host loop: `while (dgram_context_active(ctx) && dgram_context_run(ctx, -1) >= 0) {}`
#[no_mangle]
pub unsafe extern "C" fn dgram_context_run(ctx: *mut dgram_context, timeout_ms: i32) -> c_int {
    guard(DGRAM_EINTERNAL, || {
        // SAFETY: `ctx` is NULL or a context handle not yet freed (header: dgram_context).
        result_count(unsafe { owned_context(ctx) }.and_then(|ctx| ctx.run(timeout_ms.max(-1))))
    })
}

/// How much keeps this context's host loop alive: bound open sockets, plus
/// sends not yet completed, plus events not yet delivered. 0 means nothing is
/// left to do (as a libuv or Node loop decides to exit). A socket created but
/// never bound does not count; a closed socket counts only its pending 'close'
/// and send completions; a freed socket not at all. 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn dgram_context_active(ctx: *const dgram_context) -> u32 {
    // SAFETY: `ctx` is NULL or a context handle not yet freed (header: dgram_context).
    guard(0, || unsafe { context(ctx) }.map_or(0, |ctx| ctx.active()))
}

/// Closes every socket of the context (no callback runs afterwards), stops
/// and joins its I/O thread, and releases it. NULL is fine. Socket handles
/// stay valid, answering `DGRAM_EBADF`, until each is passed to
/// `dgram_socket_free`. May be called from inside a callback; the context
/// handle must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dgram_context_free(ctx: *mut dgram_context) {
    guard((), || {
        // SAFETY: `ctx` is NULL or a context handle not yet freed, which the
        // host gives up here (header: dgram_context_free); it is
        // `Arc::into_raw` of an `Arc<Context>` (dgram_context_new).
        if let Some(ctx) = unsafe { take_handle::<Context>(ctx.cast()) } {
            ctx.shut_down();
        }
    })
}

// ---- sockets ----------------------------------------------------------------

/// Creates a socket (`dgram.createSocket`). The OS socket is made now, on
/// the calling thread (so in that thread's network namespace), so options and
/// memberships may be set before bind.
///
/// `opts` NULL means udp4 with defaults. `on_message` (nullable) is the
/// 'message' handler; `userdata` is passed back to every event callback of
/// this socket. On success `*out` receives the handle, to be released by
/// exactly one `dgram_socket_free`; on failure `*out` is set to NULL.
/// Errors: `DGRAM_EINVAL` (NULL `ctx` or `out`, a `type` that is not a
/// `dgram_type`, a negative buffer size), or the system's answer
/// (`DGRAM_EAFNOSUPPORT`, `DGRAM_EMFILE`, ...).
#[no_mangle]
pub unsafe extern "C" fn dgram_create_socket(
    ctx: *mut dgram_context,
    opts: *const dgram_socket_options,
    on_message: dgram_message_cb,
    userdata: *mut c_void,
    out: *mut *mut dgram_socket,
) -> c_int {
    guard_code(|| {
        if out.is_null() {
            return Err(Errno::INVAL);
        }
        // SAFETY: not NULL (checked above), so a writable `dgram_socket *`
        // (header: `out`).
        unsafe { out.write(ptr::null_mut()) };
        // SAFETY: `ctx` is NULL or a context handle not yet freed (header: dgram_context).
        let ctx = unsafe { context(ctx) }?;
        let raw = if opts.is_null() {
            RawSocketOptions {
                type_: 0,
                reuse_addr: 0,
                ipv6_only: 0,
                recv_buffer_size: 0,
                send_buffer_size: 0,
            }
        } else {
            // Read as integers: C may store any value in the enum field.
            // SAFETY: not NULL (checked above), so a readable
            // `dgram_socket_options` (header); `RawSocketOptions` has its
            // layout (asserted in types.rs) and no invalid values.
            unsafe { opts.cast::<RawSocketOptions>().read() }
        };
        let family = match raw.type_ {
            0 => Family::V4,
            1 => Family::V6,
            _ => return Err(Errno::INVAL),
        };
        let buffer_size = |size: i32| usize::try_from(size).map_err(|_| Errno::INVAL);
        let config = SocketConfig {
            family,
            reuse_addr: raw.reuse_addr != 0,
            ipv6_only: raw.ipv6_only != 0,
            recv_buffer_size: buffer_size(raw.recv_buffer_size)?,
            send_buffer_size: buffer_size(raw.send_buffer_size)?,
        };
        let socket = Socket::create(&ctx, config, on_message, UserPtr(userdata))?;
        // SAFETY: `out` was checked non-NULL and written above.
        unsafe { out.write(Arc::into_raw(socket) as *mut dgram_socket) };
        Ok(())
    })
}

/// Sets (or with NULL clears) the persistent 'message' handler.
/// `DGRAM_EBADF` on a closed socket.
#[no_mangle]
pub unsafe extern "C" fn dgram_on_message(s: *mut dgram_socket, cb: dgram_message_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.on_message(cb))
}

/// Sets (or with NULL clears) the persistent 'listening' handler. It runs
/// before the one-shot callback given to `dgram_bind`.
#[no_mangle]
pub unsafe extern "C" fn dgram_on_listening(s: *mut dgram_socket, cb: dgram_event_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.on_listening(cb))
}

/// Sets (or with NULL clears) the persistent 'close' handler. It runs before
/// the one-shot callback given to `dgram_close`.
#[no_mangle]
pub unsafe extern "C" fn dgram_on_close(s: *mut dgram_socket, cb: dgram_event_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.on_close(cb))
}

/// Sets (or with NULL clears) the 'error' handler: asynchronous errors with
/// no other place to go (a failed send without a callback, a receive error,
/// an ICMP error on a connected socket, a failed lookup for bind or
/// connect). Without a handler such errors are dropped.
#[no_mangle]
pub unsafe extern "C" fn dgram_on_error(s: *mut dgram_socket, cb: dgram_error_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.on_error(cb))
}

/// Binds the socket (`socket.bind`). `port` 0 lets the OS pick; `address`
/// NULL means every interface (0.0.0.0 or ::). For a numeric address,
/// validation and bind(2) happen now and their errors are the result:
/// `DGRAM_EINVAL` (bad port or address, or a literal of the other family),
/// `DGRAM_EADDRINUSE`, `DGRAM_EADDRNOTAVAIL`, `DGRAM_EACCES`,
/// `DGRAM_EALREADY` (already bound, also implicitly by a send, or a bind
/// waiting for its lookup), `DGRAM_EBADF` (closed). After a failed bind,
/// bind may be called again. On success 'listening' follows, asynchronously:
/// first the persistent handler, then `on_listening` (nullable, one-shot;
/// never called when bind fails).
///
/// `address` may also be a host name ("localhost" excepted, which is always
/// 127.0.0.1 or ::1): it is looked up on the context's resolver thread
/// (getaddrinfo, for the socket's family, first answer), never on the
/// caller's or the I/O thread, and bind returns 0 at once. A lookup that
/// fails comes as an 'error' event (`DGRAM_ENOTFOUND`, syscall
/// "getaddrinfo", `hostname` set), a bind(2) that fails after it as an
/// 'error' event with syscall "bind". Sends made meanwhile wait for the bind.
#[no_mangle]
pub unsafe extern "C" fn dgram_bind(
    s: *mut dgram_socket,
    port: i32,
    address: *const c_char,
    on_listening: dgram_event_cb,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `address` is NULL or NUL-terminated (header: strings).
        socket.bind(port, unsafe { opt_str(address) }, on_listening)
    })
}

/// Sends one datagram of `len` bytes (`socket.send`) to `address`:`port`.
/// `address` NULL means 127.0.0.1 (udp4) or ::1 (udp6). The bytes are sent
/// or copied before this returns, so `msg` may be reused at once; `len` 0
/// sends an empty datagram (`msg` may then be NULL).
///
/// An unbound socket is first bound to 0.0.0.0 (or ::) on a random port, and
/// its 'listening' comes before this send's callback. Sends of one socket go
/// out in call order.
///
/// On a connected socket (`dgram_connect`) pass port 0 and address NULL: the
/// datagram goes to the peer; any destination (a port other than 0, or an
/// address) is `DGRAM_EISCONN`, before the destination itself is checked,
/// as in Node.
///
/// `address` may be a host name: the bytes are copied, the name is looked
/// up on the resolver thread (see `dgram_bind`), and the datagram goes out
/// after it, still in call order with this socket's other sends (those made
/// after it wait too). A name that does not resolve completes the send with
/// `DGRAM_ENOTFOUND` (syscall "getaddrinfo", `hostname` set); a malformed
/// name or address is `DGRAM_EINVAL` at once.
///
/// Result: 0 when the datagram was accepted; `DGRAM_EINVAL` (port outside
/// 1..65535, bad address, `msg` NULL with `len` > 0), `DGRAM_EISCONN`,
/// `DGRAM_EMSGSIZE` (over 65507 bytes on udp4, 65527 on udp6),
/// `DGRAM_ENOBUFS` (the socket's send queue is full: at least 1024
/// datagrams and 1 MiB wait, counting those waiting for a lookup; or 65536
/// of its completions wait for dispatch), `DGRAM_EBADF`.
/// An accepted send completes exactly once, asynchronously: `cb` (nullable)
/// gets NULL or the I/O error; without `cb` an I/O error becomes an 'error'
/// event. The callback does not come if the socket is freed first.
/// `send_data` is passed back to `cb`.
#[no_mangle]
pub unsafe extern "C" fn dgram_send(
    s: *mut dgram_socket,
    msg: *const c_void,
    len: usize,
    port: i32,
    address: *const c_char,
    cb: dgram_send_cb,
    send_data: *mut c_void,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        socket.ensure_open()?;
        // SAFETY: `msg` is NULL or points to `len` readable bytes (header:
        // dgram_send; the bytes are copied or sent before it returns).
        let data = unsafe { bytes(msg, len) }?;
        // SAFETY: `address` is NULL or NUL-terminated (header: strings).
        let address = unsafe { opt_str(address) };
        socket.send(&[IoSlice::new(data)], port, address, cb, UserPtr(send_data))
    })
}

/// Pieces of a message up to which `dgram_sendv` gathers without copying.
const SENDV_MAX_SLICES: usize = 64;

/// Sends the `nbufs` pieces of `bufs`, concatenated, as ONE datagram (the
/// IoT.js Array message). `nbufs` 0 sends an empty datagram (`bufs` may then
/// be NULL). `DGRAM_EINVAL` when `bufs` is NULL with `nbufs` > 0 or a piece
/// has a NULL `base` with `len` > 0; otherwise exactly as `dgram_send`.
#[no_mangle]
pub unsafe extern "C" fn dgram_sendv(
    s: *mut dgram_socket,
    bufs: *const dgram_buf,
    nbufs: usize,
    port: i32,
    address: *const c_char,
    cb: dgram_send_cb,
    send_data: *mut c_void,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        socket.ensure_open()?;
        // More pieces than fit in memory (no slice of them can be made) are
        // DGRAM_EMSGSIZE: there is no other limit.
        // SAFETY: `bufs` is NULL or points to `nbufs` `dgram_buf`s, each with
        // a `base` NULL or pointing to `len` readable bytes (header: dgram_sendv).
        let pieces = unsafe { buf_array(bufs, nbufs, usize::MAX, Errno(error::DGRAM_EMSGSIZE)) }?;
        // SAFETY: `address` is NULL or NUL-terminated (header: strings).
        let address = unsafe { opt_str(address) };
        let send_data = UserPtr(send_data);
        if pieces.len() <= SENDV_MAX_SLICES {
            let mut slices = [IoSlice::new(&[]); SENDV_MAX_SLICES];
            for (slot, data) in slices.iter_mut().zip(pieces.bytes()) {
                *slot = IoSlice::new(data?);
            }
            socket.send(&slices[..pieces.len()], port, address, cb, send_data)
        } else {
            // Many pieces: gather them into one buffer (also keeps the kernel's
            // IOV_MAX out of the picture). Checked lengths first, so a huge
            // message fails with EMSGSIZE instead of allocating.
            let mut total = 0usize;
            for data in pieces.bytes() {
                total = total.saturating_add(data?.len());
            }
            if total > Family::V6.max_payload() {
                return Err(Errno(error::DGRAM_EMSGSIZE));
            }
            let mut joined = Vec::with_capacity(total);
            for data in pieces.bytes() {
                joined.extend_from_slice(data?);
            }
            socket.send(&[IoSlice::new(&joined)], port, address, cb, send_data)
        }
    })
}

/// Sends the `count` datagrams of `msgs` (each `dgram_buf` is ONE datagram)
/// to one destination, in order, in as few system calls as the kernel
/// allows: sendmmsg, and, with `DGRAM_OFFLOAD_GSO` (on by default where the
/// kernel has it), each run of equal-size datagrams (the last may be
/// shorter) as one UDP_SEGMENT write of up to 64 of them. Where the kernel
/// or the route's device refuses segmentation offload, the socket turns it
/// off for good and sends them one by one, with the same result.
///
/// `port` and `address` as for `dgram_send`, except that `address` must be
/// numeric (or "localhost"): a host name is `DGRAM_EINVAL` (connect once
/// and send to the peer instead). `count` 0 sends nothing (the destination is
/// still checked); over
/// `DGRAM_SEND_BATCH_MAX` (1024) is
/// `DGRAM_EINVAL`; any datagram over the size limit is `DGRAM_EMSGSIZE`,
/// a piece with NULL `base` and `len` > 0 `DGRAM_EINVAL`. The batch is
/// accepted whole or not at all (`DGRAM_ENOBUFS` as for `dgram_send`).
///
/// `cb` (nullable) is called once per datagram, in order, with that
/// datagram's length and result, exactly as for `dgram_send`; without `cb`
/// nothing is queued for dispatch unless a datagram fails. The bytes are
/// sent or copied before this returns.
#[no_mangle]
pub unsafe extern "C" fn dgram_send_batch(
    s: *mut dgram_socket,
    msgs: *const dgram_buf,
    count: usize,
    port: i32,
    address: *const c_char,
    cb: dgram_send_cb,
    send_data: *mut c_void,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        socket.ensure_open()?;
        // SAFETY: `msgs` is NULL or points to `count` `dgram_buf`s, each with
        // a `base` NULL or pointing to `len` readable bytes (header:
        // dgram_send_batch).
        let pieces = unsafe { buf_array(msgs, count, crate::socket::SEND_BATCH_MAX, Errno::INVAL) }?;
        let mut datagrams: [&[u8]; crate::socket::SEND_BATCH_MAX] = [&[]; crate::socket::SEND_BATCH_MAX];
        for (slot, data) in datagrams.iter_mut().zip(pieces.bytes()) {
            *slot = data?;
        }
        // SAFETY: `address` is NULL or NUL-terminated (header: strings).
        let address = unsafe { opt_str(address) };
        socket.send_batch(&datagrams[..pieces.len()], port, address, cb, UserPtr(send_data))
    })
}

/// Closes the socket (`socket.close`): receiving stops at once, and no
/// 'message' is delivered after this returns (a callback of this context
/// running on another thread at that moment is waited for, not the rest of
/// that thread's dispatch). Sends not yet written complete
/// with `DGRAM_ECANCELED`; then 'close' comes once, asynchronously: first the
/// persistent handler, then `on_close` (nullable, one-shot). A second close,
/// or any later call on the socket, returns `DGRAM_EBADF`. The handle stays
/// valid until `dgram_socket_free`.
#[no_mangle]
pub unsafe extern "C" fn dgram_close(s: *mut dgram_socket, on_close: dgram_event_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.close(on_close))
}

/// Releases the host's handle. An open socket is closed with no further
/// callback of any kind (not even its send callbacks). NULL is fine. Call it
/// exactly once per handle, in any order relative to `dgram_context_free`;
/// the handle must not be used afterwards. May be called from inside any
/// callback, including the socket's own.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_free(s: *mut dgram_socket) {
    guard((), || {
        // SAFETY: `s` is NULL or a socket handle not yet freed, which the
        // host gives up here (header: dgram_socket_free); it is
        // `Arc::into_raw` of an `Arc<Socket>` (dgram_create_socket).
        if let Some(socket) = unsafe { take_handle::<Socket>(s.cast()) } {
            socket.release();
        }
    })
}

/// Writes the bound local address into `*out` (`socket.address()`).
/// `DGRAM_EBADF` when closed or not bound yet; `DGRAM_EINVAL` for NULL `out`.
#[no_mangle]
pub unsafe extern "C" fn dgram_address(s: *const dgram_socket, out: *mut dgram_addr) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket);
    // `out` is NULL or points to writable storage for the result (header).
    guard_code(|| unsafe { write_out(s, out, Socket::address) })
}

/// Writes the socket's counters into `*out` (see `dgram_stats`). Works on a
/// closed socket too, giving the final figures. `DGRAM_EINVAL` for NULL `s`
/// or `out`. May be called from any thread, inside callbacks included.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_stats(s: *const dgram_socket, out: *mut dgram_stats) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        if out.is_null() {
            return Err(Errno::INVAL);
        }
        let stats = socket.stats();
        // SAFETY: not NULL (checked above), so a writable `dgram_stats`
        // (header: `out`).
        unsafe { out.write(stats) };
        Ok(())
    })
}

/// Sets (or with NULL clears) the persistent 'connect' handler. It runs
/// before the one-shot callback given to `dgram_connect`.
#[no_mangle]
pub unsafe extern "C" fn dgram_on_connect(s: *mut dgram_socket, cb: dgram_event_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.on_connect(cb))
}

/// Associates the socket with one peer (Node `socket.connect`): sends
/// without a destination go there, and only its datagrams are received.
/// `port` must be 1..65535; `address` NULL means 127.0.0.1 (udp4) or ::1
/// (udp6). An unbound socket is first bound to 0.0.0.0 (or ::) on a random
/// port, with its 'listening'. For a numeric address the connect happens
/// now and its errors are the result (`DGRAM_EINVAL`, `DGRAM_EISCONN` when
/// already connected or connecting, `DGRAM_EBADF`, the system's answer);
/// then 'connect' follows, asynchronously: the persistent handler, then
/// `on_connect` (nullable, one-shot). A host name is looked up first, as
/// for `dgram_bind`; its failure comes as an 'error' event (`DGRAM_ENOTFOUND`),
/// and sends to the peer made meanwhile wait for it (and fail with
/// `DGRAM_ENOTCONN` if the connect does). Once connected, an ICMP port
/// unreachable from the peer comes as an 'error' event with
/// `DGRAM_ECONNREFUSED`.
///
/// Operations of one socket keep their call order: while an earlier bind,
/// connect or send of this socket waits for a lookup, a numeric connect
/// waits behind it too, and its connect(2) errors come as an 'error' event
/// (syscall "connect"). The same holds for a numeric `dgram_bind`.
#[no_mangle]
pub unsafe extern "C" fn dgram_connect(
    s: *mut dgram_socket,
    port: i32,
    address: *const c_char,
    on_connect: dgram_event_cb,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `address` is NULL or NUL-terminated (header: strings).
        socket.connect(port, unsafe { opt_str(address) }, on_connect)
    })
}

/// Dissolves the association made by `dgram_connect` (Node
/// `socket.disconnect`), at once; the socket keeps its local address and
/// port. `DGRAM_ENOTCONN` when not connected (also while a connect waits for
/// its lookup), `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_disconnect(s: *mut dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.disconnect())
}

/// Writes the connected peer's address into `*out` (Node
/// `socket.remoteAddress()`). `DGRAM_ENOTCONN` when not connected,
/// `DGRAM_EBADF` when closed, `DGRAM_EINVAL` for NULL `out`.
#[no_mangle]
pub unsafe extern "C" fn dgram_remote_address(s: *const dgram_socket, out: *mut dgram_addr) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket);
    // `out` is NULL or points to writable storage for the result (header).
    guard_code(|| unsafe { write_out(s, out, Socket::remote_address) })
}

/// Sets or clears SO_BROADCAST (`socket.setBroadcast`).
#[no_mangle]
pub unsafe extern "C" fn dgram_set_broadcast(s: *mut dgram_socket, flag: bool) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_broadcast(flag))
}

/// Sets IP_TTL (udp4) or IPV6_UNICAST_HOPS (udp6) (`socket.setTTL`);
/// `ttl` must be 1..255, else `DGRAM_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_ttl(s: *mut dgram_socket, ttl: i32) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_ttl(ttl))
}

/// Joins `group` on `iface` (`socket.addMembership`). `group` must be a
/// multicast address of the socket's family (else `DGRAM_EINVAL`). `iface`:
/// for udp4 the IPv4 address of a local interface; for udp6 an interface name
/// ("eth0"), index ("2") or address with zone ("::%eth0"); NULL lets the
/// kernel choose. A malformed `iface` is `DGRAM_EINVAL`; a well-formed one
/// that is not local is the kernel's answer (`DGRAM_EADDRNOTAVAIL`,
/// `DGRAM_ENODEV`).
#[no_mangle]
pub unsafe extern "C" fn dgram_add_membership(
    s: *mut dgram_socket,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `group` and `iface` are NULL or NUL-terminated (header: strings).
        let (group, iface) = unsafe { (opt_str(group), opt_str(iface)) };
        socket.membership(group, iface, true)
    })
}

/// Leaves `group` on `iface` (`socket.dropMembership`); arguments as for
/// `dgram_add_membership`. Dropping a group not joined is `DGRAM_EADDRNOTAVAIL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_drop_membership(
    s: *mut dgram_socket,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `group` and `iface` are NULL or NUL-terminated (header: strings).
        let (group, iface) = unsafe { (opt_str(group), opt_str(iface)) };
        socket.membership(group, iface, false)
    })
}

/// Chooses the interface outgoing multicast leaves by (Node
/// `socket.setMulticastInterface`): for udp4 the IPv4 address of a local
/// interface ("0.0.0.0" for the system's choice); for udp6 an interface as
/// "::%eth0" (Node's form), "eth0" or "2" ("::" for the system's choice).
/// `DGRAM_EINVAL` for NULL or malformed text, `DGRAM_ENODEV` for an
/// interface name that does not exist, `DGRAM_EADDRNOTAVAIL` for an IPv4
/// address that is not local.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_multicast_interface(s: *mut dgram_socket, iface: *const c_char) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `iface` is NULL or NUL-terminated (header: strings).
        socket.set_multicast_interface(unsafe { opt_str(iface) })
    })
}

/// Joins the source-specific group (`source`, `group`) on `iface` (Node
/// `socket.addSourceSpecificMembership`): only datagrams that `source` sends
/// to `group` arrive. `source` must be a unicast address and `group` a
/// multicast address of the socket's family (IGMPv3/MLDv2 SSM; 232.0.0.0/8
/// and ff3x::/32 are the ranges meant for it), else `DGRAM_EINVAL`; `iface`
/// as for `dgram_add_membership`.
#[no_mangle]
pub unsafe extern "C" fn dgram_add_source_specific_membership(
    s: *mut dgram_socket,
    source: *const c_char,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `source`, `group` and `iface` are NULL or NUL-terminated
        // (header: strings).
        let (source, group, iface) = unsafe { (opt_str(source), opt_str(group), opt_str(iface)) };
        socket.source_membership(source, group, iface, true)
    })
}

/// Leaves a source-specific group (Node
/// `socket.dropSourceSpecificMembership`); arguments as for the join.
/// The kernel's answers: a group this socket never joined is
/// `DGRAM_EINVAL`, a source it did not join within a joined group
/// `DGRAM_EADDRNOTAVAIL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_drop_source_specific_membership(
    s: *mut dgram_socket,
    source: *const c_char,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `source`, `group` and `iface` are NULL or NUL-terminated
        // (header: strings).
        let (source, group, iface) = unsafe { (opt_str(source), opt_str(group), opt_str(iface)) };
        socket.source_membership(source, group, iface, false)
    })
}

/// Sets SO_RCVBUF (Node `socket.setRecvBufferSize`) to `size` bytes,
/// 1..INT_MAX, else `DGRAM_EINVAL`. The kernel caps it at
/// net.core.rmem_max and doubles it for its bookkeeping (see the getter).
#[no_mangle]
pub unsafe extern "C" fn dgram_set_recv_buffer_size(s: *mut dgram_socket, size: c_int) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_buffer_size(size, true))
}

/// Sets SO_SNDBUF (Node `socket.setSendBufferSize`); as for the receive buffer.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_send_buffer_size(s: *mut dgram_socket, size: c_int) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_buffer_size(size, false))
}

/// SO_RCVBUF in bytes (Node `socket.getRecvBufferSize`), as the kernel
/// reports it: on Linux twice the size that was set. Negative code on
/// error (`DGRAM_EBADF` when closed).
#[no_mangle]
pub unsafe extern "C" fn dgram_get_recv_buffer_size(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.buffer_size(true))
}

/// SO_SNDBUF in bytes (Node `socket.getSendBufferSize`); as for the receive buffer.
#[no_mangle]
pub unsafe extern "C" fn dgram_get_send_buffer_size(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.buffer_size(false))
}

/// Bytes accepted by `dgram_send`/`dgram_sendv`/`dgram_send_batch` and not
/// yet handed to the kernel (Node `socket.getSendQueueSize`): queued while
/// the kernel's buffer was full, or waiting for a host name lookup. 0 when
/// every send went straight out. `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_send_queue_size(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| Ok(clamp_int(unsafe { socket(s) }?.send_queue_figures()?.0)))
}

/// The number of datagrams counted by `dgram_send_queue_size` (Node
/// `socket.getSendQueueCount`).
#[no_mangle]
pub unsafe extern "C" fn dgram_send_queue_count(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| Ok(clamp_int(unsafe { socket(s) }?.send_queue_figures()?.1)))
}

/// Lets the socket stop counting in `dgram_context_active` (Node
/// `socket.unref`), so a host loop that runs while anything is active can
/// end while the socket stays open. Its being bound, its undelivered
/// datagrams and its 'listening' and 'connect' events then do not count;
/// its send completions, errors, lookups and 'close' still do. Events
/// are still delivered whenever the host dispatches. Idempotent.
/// `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_unref(s: *mut dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_referenced(false))
}

/// Undoes `dgram_socket_unref` (Node `socket.ref`); sockets start
/// referenced. Idempotent. `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_ref(s: *mut dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_referenced(true))
}

/// Asks the kernel (`on` true) for each received datagram's destination
/// address and interface (IP_PKTINFO / IPV6_RECVPKTINFO), TTL or hop limit
/// (IP_RECVTTL / IPV6_RECVHOPLIMIT) and receive timestamp (SO_TIMESTAMPNS),
/// for `dgram_message_meta`; `on` false stops. Off by default, and then it
/// costs nothing. Applies to datagrams that reach the socket after the
/// call: those already waiting come without metadata, or with part of it
/// (see the `has_` flags).
#[no_mangle]
pub unsafe extern "C" fn dgram_set_message_meta(s: *mut dgram_socket, on: bool) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_message_meta(on))
}

/// Inside `s`'s message callback, on the thread running it, writes the
/// metadata of the datagram being delivered into `*out` (see
/// `dgram_meta`). `DGRAM_EINVAL` for NULL `out`, when called
/// anywhere else, or when the datagram was read while
/// `dgram_set_message_meta` was off; `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_message_meta(s: *const dgram_socket, out: *mut dgram_meta) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket);
    // `out` is NULL or points to writable storage for the result (header).
    guard_code(|| unsafe { write_out(s, out, Socket::message_meta) })
}

/// The segmentation offloads this kernel has (`DGRAM_OFFLOAD_GSO`,
/// `DGRAM_OFFLOAD_GRO`), found once per process.
#[no_mangle]
pub extern "C" fn dgram_offload_support() -> u32 {
    guard(0, crate::sys::offload_support)
}

/// Chooses the socket's segmentation offloads: `flags` is a set of
/// `DGRAM_OFFLOAD_*` (others are `DGRAM_EINVAL`). Those the kernel lacks
/// are left off, so the socket behaves as without them. GRO, once on, stays
/// on for the socket's life, whatever later calls ask: the kernel keeps the
/// buffers it coalesced, and without the option it would hand them over as
/// single datagrams with no way to split them. Returns the flags now in
/// effect, or a negative code. Turning GRO on waits for a read of this
/// socket that the I/O thread may have under way (a system call's time).
///
/// GSO (default on where supported) only changes how many system calls and
/// packets a send takes, never what is received. GRO (default off) lets the
/// kernel pass a run of datagrams of one flow as one buffer, which the I/O
/// thread splits back into the same datagrams, with their own callbacks:
/// fewer, larger reads for bulk flows. With GRO on, a read offers 2 buffers
/// instead of up to 32 (each may hold up to 128 datagrams), which costs
/// reads when traffic does not coalesce (many peers, mixed sizes), and the
/// queue may exceed `max_pending_events` by up to 127 datagrams.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_offload(s: *mut dgram_socket, flags: u32) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.set_offload(flags).map(|f| f as c_int))
}

/// The socket's offloads in effect now (`DGRAM_OFFLOAD_*` flags), or a
/// negative code. GSO can go off by itself: the first time the kernel or the
/// route's device refuses a UDP_SEGMENT write, the socket stops using it.
#[no_mangle]
pub unsafe extern "C" fn dgram_get_offload(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.offload().map(|f| f as c_int))
}

/// Sets or clears IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP
/// (`socket.setMulticastLoopback`).
#[no_mangle]
pub unsafe extern "C" fn dgram_set_multicast_loopback(s: *mut dgram_socket, flag: bool) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_multicast_loopback(flag))
}

/// Sets IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (`socket.setMulticastTTL`);
/// `ttl` must be 0..255, else `DGRAM_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_multicast_ttl(s: *mut dgram_socket, ttl: i32) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_multicast_ttl(ttl))
}

/// The OS socket's fd, for getsockopt and diagnostics (valid before bind).
/// Owned by the library: do not close it, read from it or change its
/// blocking mode. `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_fileno(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.fileno())
}

// ---- errors and version ----------------------------------------------------------

/// The errno-style name of a code ("EADDRINUSE"); "UNKNOWN" for a code the
/// library does not know. Never NULL; the string is static.
#[no_mangle]
pub extern "C" fn dgram_err_name(code: c_int) -> *const c_char {
    error::name(code).as_ptr()
}

/// A short description of a code ("address already in use"); "unknown
/// error" for a code the library does not know. Never NULL; the string is static.
#[no_mangle]
pub extern "C" fn dgram_strerror(code: c_int) -> *const c_char {
    error::message(code).as_ptr()
}

/// The library's version, "MAJOR.MINOR.PATCH". Static.
#[no_mangle]
pub extern "C" fn dgram_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
