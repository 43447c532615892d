//! Bind and connect: the local address, the connected peer.

use std::ffi::{c_char, c_int};

use super::args::{opt_str, write_out};
use super::guard::guard_code;
use super::handles::socket;
use crate::socket::Socket;
use crate::types::*;

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

/// Writes the bound local address into `*out` (`socket.address()`).
/// `DGRAM_EBADF` when closed or not bound yet; `DGRAM_EINVAL` for NULL `out`.
#[no_mangle]
pub unsafe extern "C" fn dgram_address(s: *const dgram_socket, out: *mut dgram_addr) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket);
    // `out` is NULL or points to writable storage for the result (header).
    guard_code(|| unsafe { write_out(s, out, Socket::address) })
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
