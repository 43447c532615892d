//! Socket options: broadcast, unicast TTL, and the OS socket's fd.

use std::ffi::c_int;

use super::guard::{guard_code, guard_int};
use super::handles::socket;
use crate::types::*;

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

/// The OS socket's fd, for getsockopt and diagnostics (valid before bind).
/// Owned by the library: do not close it, read from it or change its
/// blocking mode. `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_fileno(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.fileno())
}
