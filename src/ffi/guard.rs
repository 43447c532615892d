//! Panic catching and the conversion of results into C return values,
//! shared by every entry point of the C ABI.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{to_code, Errno, Result, DGRAM_EINTERNAL};

/// Runs `body`, turning a panic into `on_panic`: no unwind crosses into C.
pub(super) fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// [`guard`] for the functions returning 0 or a negative code.
pub(super) fn guard_code(body: impl FnOnce() -> Result<()>) -> c_int {
    guard(DGRAM_EINTERNAL, || to_code(body()))
}

/// [`guard`] for the functions returning a non-negative value or a
/// negative code.
pub(super) fn guard_int(body: impl FnOnce() -> Result<c_int>) -> c_int {
    guard(DGRAM_EINTERNAL, || match body() {
        Ok(value) => value,
        Err(Errno(code)) => code,
    })
}

pub(super) fn clamp_int(value: usize) -> c_int {
    value.min(c_int::MAX as usize) as c_int
}

pub(super) fn result_count(result: Result<u32>) -> c_int {
    match result {
        Ok(count) => count.min(c_int::MAX as u32) as c_int,
        Err(Errno(code)) => code,
    }
}
