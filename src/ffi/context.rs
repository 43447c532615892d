//! Contexts: creation, the notification fd, dispatch, activity, release.

use std::ffi::c_int;
use std::ptr;
use std::sync::Arc;

use super::guard::{guard, guard_int, result_count};
use super::handles::{context, owned_context, take_handle};
use crate::context::{Context, Mode};
use crate::error::DGRAM_EINTERNAL;
use crate::types::*;

/// Creates a context and starts its I/O thread.
///
/// `opts` may be NULL for the defaults (host dispatch, 8192 pending
/// datagrams). Returns NULL when `opts->dispatch` is not a `dgram_dispatch`
/// value or the system refuses the thread or its file descriptors.
/// Release it with `dgram_context_free`.
#[no_mangle]
pub unsafe extern "C" fn dgram_context_new(opts: *const dgram_context_options) -> *mut dgram_context {
    guard(ptr::null_mut(), || {
        let opts = if opts.is_null() {
            dgram_context_options {
                dispatch: dgram_dispatch::DGRAM_DISPATCH_HOST as i32,
                max_pending_events: 0,
            }
        } else {
            // SAFETY: not NULL (checked above), so a readable
            // `dgram_context_options` (header); its fields are plain
            // integers, so no value C stored there is invalid.
            unsafe { opts.read() }
        };
        let mode = match dgram_dispatch::from_c(opts.dispatch) {
            Some(dgram_dispatch::DGRAM_DISPATCH_HOST) => Mode::Host,
            Some(dgram_dispatch::DGRAM_DISPATCH_IO_THREAD) => Mode::IoThread,
            None => return ptr::null_mut(),
        };
        match Context::new(mode, opts.max_pending_events) {
            Ok(ctx) => Arc::into_raw(ctx) as *mut dgram_context,
            Err(_) => ptr::null_mut(),
        }
    })
}

/// The context's notification fd, for the host's own poll/epoll/libuv loop
/// (level-triggered): readable while a socket of the context has datagrams
/// waiting in its kernel buffer or other events wait for
/// `dgram_context_dispatch` (host dispatch mode; in I/O-thread mode it
/// never becomes readable). It is an epoll fd holding the sockets, so a
/// host that polls it and dispatches wakes once per batch of datagrams,
/// and the datagrams are read by the dispatch call itself. Owned by the
/// context: do not close it, and do not read from it or change its set.
/// `DGRAM_EINVAL` for NULL.
#[no_mangle]
pub unsafe extern "C" fn dgram_context_fd(ctx: *const dgram_context) -> c_int {
    // SAFETY: `ctx` is NULL or a context handle not yet freed (header: dgram_context).
    guard_int(|| Ok(unsafe { context(ctx) }?.host_fd()))
}

/// Runs the callbacks of waiting events on the calling thread, without
/// blocking: at most `max_events` of them, or with 0 the events queued when
/// the call began, then up to 4 reads (of up to 32 datagrams each) of each
/// socket that has datagrams (up to 64 sockets per call; the others stay
/// ready for the next), each read's datagrams preceded by the events queued
/// meanwhile (callbacks of this call may queue some). Datagrams are read
/// from the kernel by this call and delivered straight from the read. Returns how many events were processed
/// (each datagram counts as one, those with no callback set included;
/// datagrams discarded because their socket closed are not counted), or a negative code: `DGRAM_EBUSY` when called from
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
/// sends not yet completed, plus events not yet delivered (datagrams are not
/// among them: they wait in the kernel until a dispatch reads and delivers
/// them, and their bound socket already counts). 0 means nothing is
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
