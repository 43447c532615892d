//! Receiving: per-datagram metadata (destination, interface, TTL, timestamp).

use std::ffi::c_int;

use super::args::write_out;
use super::guard::guard_code;
use super::handles::socket;
use crate::socket::Socket;
use crate::types::*;

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
