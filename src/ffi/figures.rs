//! Figures and offload: counters, kernel buffer sizes, the send queue,
//! segmentation offload.

use std::ffi::c_int;

use super::guard::{clamp_int, guard, guard_code, guard_int};
use super::handles::{owned_socket, socket};
use crate::error::Errno;
use crate::types::*;

/// Writes the socket's counters into `*out` (see `dgram_stats`). Works on a
/// closed socket too, giving the final figures. `DGRAM_EINVAL` for NULL `s`
/// or `out`. May be called from any thread, inside callbacks included.
#[no_mangle]
pub unsafe extern "C" fn dgram_socket_stats(s: *const dgram_socket, out: *mut dgram_stats) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        if out.is_null() {
            return Err(Errno::INVAL);
        }
        let stats = socket.stats();
        // SAFETY: not NULL (checked above), so a writable `dgram_stats`
        // (header: `out`).
        unsafe { out.write(stats) };
        Ok(())
    })
}

/// Sets SO_RCVBUF (Node `socket.setRecvBufferSize`) to `size` bytes,
/// 1..INT_MAX, else `DGRAM_EINVAL`. The kernel caps it at
/// net.core.rmem_max and doubles it for its bookkeeping (see the getter).
#[no_mangle]
pub unsafe extern "C" fn dgram_set_recv_buffer_size(s: *mut dgram_socket, size: c_int) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_buffer_size(size, true))
}

/// Sets SO_SNDBUF (Node `socket.setSendBufferSize`); as for the receive buffer.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_send_buffer_size(s: *mut dgram_socket, size: c_int) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_buffer_size(size, false))
}

/// SO_RCVBUF in bytes (Node `socket.getRecvBufferSize`), as the kernel
/// reports it: on Linux twice the size that was set. Negative code on
/// error (`DGRAM_EBADF` when closed).
#[no_mangle]
pub unsafe extern "C" fn dgram_get_recv_buffer_size(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.buffer_size(true))
}

/// SO_SNDBUF in bytes (Node `socket.getSendBufferSize`); as for the receive buffer.
#[no_mangle]
pub unsafe extern "C" fn dgram_get_send_buffer_size(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.buffer_size(false))
}

/// Bytes accepted by `dgram_send`/`dgram_sendv`/`dgram_send_batch` and not
/// yet handed to the kernel (Node `socket.getSendQueueSize`): queued while
/// the kernel's buffer was full, or waiting for a host name lookup. 0 when
/// every send went straight out. `DGRAM_EBADF` when closed.
#[no_mangle]
pub unsafe extern "C" fn dgram_send_queue_size(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| Ok(clamp_int(unsafe { socket(s) }?.send_queue_figures()?.0)))
}

/// The number of datagrams counted by `dgram_send_queue_size` (Node
/// `socket.getSendQueueCount`).
#[no_mangle]
pub unsafe extern "C" fn dgram_send_queue_count(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| Ok(clamp_int(unsafe { socket(s) }?.send_queue_figures()?.1)))
}

/// The segmentation offloads this kernel has (`DGRAM_OFFLOAD_GSO`,
/// `DGRAM_OFFLOAD_GRO`), found once per process.
#[no_mangle]
pub extern "C" fn dgram_offload_support() -> u32 {
    guard(0, crate::sys::offload_support)
}

/// Chooses the socket's segmentation offloads: `flags` is a set of
/// `DGRAM_OFFLOAD_*` (others are `DGRAM_EINVAL`). Those the kernel lacks
/// are left off, so the socket behaves as without them. GRO, once on, stays
/// on for the socket's life, whatever later calls ask: the kernel keeps the
/// buffers it coalesced, and without the option it would hand them over as
/// single datagrams with no way to split them. Returns the flags now in
/// effect, or a negative code. Turning GRO on waits for a read of this
/// socket that another thread may have under way (a system call's time).
///
/// GSO (default on where supported) only changes how many system calls and
/// packets a send takes, never what is received. GRO (default off) lets the
/// kernel pass a run of datagrams of one flow as one buffer, which the
/// reader splits back into the same datagrams, with their own callbacks:
/// fewer, larger reads for bulk flows. With GRO on, a read offers 2 buffers
/// instead of up to 32 (each may hold up to 128 datagrams), which costs
/// reads when traffic does not coalesce (many peers, mixed sizes), and one
/// read may hold up to 128 datagrams whatever `max_pending_events` says.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_offload(s: *mut dgram_socket, flags: u32) -> c_int {
    // Owned: turning GRO on waits for a read under way on another thread,
    // whose callbacks may free the handle meanwhile.
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { owned_socket(s) }?.set_offload(flags).map(|f| f as c_int))
}

/// The socket's offloads in effect now (`DGRAM_OFFLOAD_*` flags), or a
/// negative code. GSO can go off by itself: the first time the kernel or the
/// route's device refuses a UDP_SEGMENT write, the socket stops using it.
#[no_mangle]
pub unsafe extern "C" fn dgram_get_offload(s: *const dgram_socket) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_int(|| unsafe { socket(s) }?.offload().map(|f| f as c_int))
}
