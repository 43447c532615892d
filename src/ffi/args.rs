//! The checks and conversions of pointer arguments other than handles:
//! strings, byte ranges, arrays of `dgram_buf`, out-pointers.

use std::ffi::{c_char, c_void, CStr};

use super::handles::socket;
use crate::addr::Family;
use crate::error::{self, Errno, Result};
use crate::socket::Socket;
use crate::types::*;

/// A C string argument; `None` for NULL.
///
/// # Safety
///
/// `text` is NULL or a NUL-terminated string (header: "Strings must be
/// NUL-terminated"), readable and unchanged for `'a`.
pub(super) unsafe fn opt_str<'a>(text: *const c_char) -> Option<&'a CStr> {
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
pub(super) unsafe fn bytes<'a>(base: *const c_void, len: usize) -> Result<&'a [u8]> {
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
pub(super) unsafe fn buf_array<'a>(
    base: *const dgram_buf,
    count: usize,
    max: usize,
    too_many: Errno,
) -> Result<Pieces<'a>> {
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
pub(super) struct Pieces<'a>(&'a [dgram_buf]);

impl<'a> Pieces<'a> {
    pub(super) fn len(self) -> usize {
        self.0.len()
    }

    /// Each piece's bytes in order, as [`bytes`] checks them.
    pub(super) fn bytes(self) -> impl Iterator<Item = Result<&'a [u8]>> {
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
pub(super) unsafe fn write_out<T>(
    s: *const dgram_socket,
    out: *mut T,
    get: impl FnOnce(&Socket) -> Result<T>,
) -> Result<()> {
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
