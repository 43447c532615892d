//! Handles and the `Arc`s behind them: `dgram_context *` is an
//! `Arc<Context>`, `dgram_socket *` an `Arc<Socket>`.

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::context::Context;
use crate::error::{Errno, Result};
use crate::socket::Socket;
use crate::types::*;

/// Borrows the `Arc` behind a handle without taking ownership of it;
/// `DGRAM_EINVAL` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or a handle from `Arc::into_raw` of a `T` that the host has
/// not released yet (the header's contract for every handle), and stays so
/// while the result is used.
pub(super) unsafe fn borrow_handle<T>(ptr: *const c_void) -> Result<ManuallyDrop<Arc<T>>> {
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
pub(super) unsafe fn take_handle<T>(ptr: *const c_void) -> Option<Arc<T>> {
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
pub(super) unsafe fn context(ctx: *const dgram_context) -> Result<ManuallyDrop<Arc<Context>>> {
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
pub(super) unsafe fn owned_context(ctx: *const dgram_context) -> Result<Arc<Context>> {
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
pub(super) unsafe fn socket(s: *const dgram_socket) -> Result<ManuallyDrop<Arc<Socket>>> {
    // SAFETY: a socket handle is `Arc::into_raw` of an `Arc<Socket>`
    // (dgram_create_socket), live by this function's contract.
    unsafe { borrow_handle::<Socket>(s.cast()) }
}

/// The socket behind a `dgram_socket *`, with a reference of the call's
/// own: for calls that may wait (for a callback running on another thread,
/// or for a read under way), during which that callback may free the
/// handle.
///
/// # Safety
///
/// As for [`socket`], at the time of the call.
pub(super) unsafe fn owned_socket(s: *const dgram_socket) -> Result<Arc<Socket>> {
    // SAFETY: this function's contract is `socket`'s; the borrow ends once
    // it is cloned.
    unsafe { socket(s) }.map(|s| Arc::clone(&s))
}
