//! A socket's life: creation, release, the persistent event handlers,
//! close, and whether it keeps its context's loop alive (ref/unref).

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use super::guard::{guard, guard_code};
use super::handles::{context, owned_socket, socket, take_handle};
use crate::addr::Family;
use crate::error::Errno;
use crate::event::UserPtr;
use crate::socket::{Socket, SocketConfig};
use crate::types::*;

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
                type_: dgram_type::DGRAM_UDP4 as i32,
                reuse_addr: 0,
                ipv6_only: 0,
                recv_buffer_size: 0,
                send_buffer_size: 0,
            }
        } else {
            // The bools read as bytes: C may store any value in them.
            // SAFETY: not NULL (checked above), so a readable
            // `dgram_socket_options` (header); `RawSocketOptions` has its
            // layout (asserted in types.rs) and no invalid values.
            unsafe { opts.cast::<RawSocketOptions>().read() }
        };
        let family = match dgram_type::from_c(raw.type_) {
            Some(dgram_type::DGRAM_UDP4) => Family::V4,
            Some(dgram_type::DGRAM_UDP6) => Family::V6,
            None => return Err(Errno::INVAL),
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

/// Sets (or with NULL clears) the persistent 'connect' handler. It runs
/// before the one-shot callback given to `dgram_connect`.
#[no_mangle]
pub unsafe extern "C" fn dgram_on_connect(s: *mut dgram_socket, cb: dgram_event_cb) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.on_connect(cb))
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
    // Owned: close waits for a callback running on another thread, which
    // may free the handle meanwhile.
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { owned_socket(s) }?.close(on_close))
}

/// Undoes `dgram_socket_unref` (Node `socket.ref`); sockets start
/// referenced. Idempotent. `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_ref(s: *mut dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_referenced(true))
}

/// Lets the socket stop counting in `dgram_context_active` (Node
/// `socket.unref`), so a host loop that runs while anything is active can
/// end while the socket stays open. Its being bound and its 'listening'
/// and 'connect' events then do not count;
/// its send completions, errors, lookups and 'close' still do. Events
/// are still delivered whenever the host dispatches. Idempotent.
/// `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_unref(s: *mut dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_referenced(false))
}
