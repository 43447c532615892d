//! Error names and messages, and the library's version.

use std::ffi::{c_char, c_int};

use crate::error;

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
