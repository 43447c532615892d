//! Sending: one datagram, one datagram gathered from pieces, a batch.

use std::ffi::{c_char, c_int, c_void};
use std::io::IoSlice;

use super::args::{buf_array, bytes, opt_str};
use super::guard::guard_code;
use super::handles::socket;
use crate::addr::Family;
use crate::error::{self, Errno};
use crate::event::UserPtr;
use crate::types::*;

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
