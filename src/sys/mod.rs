//! Thin, safe wrappers over the few system calls that socket2 does not cover:
//! epoll, eventfd, interface names, and batched reads and writes
//! (recvmmsg, sendmmsg). All of this module's `unsafe`
//! is plain libc calls on file descriptors this crate owns, with buffers whose
//! sizes are passed alongside.
//!
//! One concept per file:
//! - `eventfd`: `EventFd`, and `Doorbell`, an eventfd with its signal-once flag;
//! - `epoll`: `Epoll`;
//! - `iface`: interface names and indexes;
//! - `recv`: `recvmmsg` (`RecvMmsg`);
//! - `cmsg`: control messages: the option numbers libc lacks, `RecvMeta`
//!   and its parsing, the UDP_SEGMENT message of a GSO write;
//! - `send`: `sendmmsg` and GSO (`Outgoing`, `send_mmsg`);
//! - `sockopt`: socket options, `disconnect`, offload detection;
//! - `region`: the mmap'd `Region`;
//! - `drops`: the kernel's drop counter (`socket_drops`).
//!
//! Everything the rest of the crate uses is re-exported here, so callers
//! name it `sys::...` whatever file it lives in.

use std::io;

mod cmsg;
mod drops;
mod epoll;
mod eventfd;
mod iface;
mod recv;
mod region;
mod send;
mod sockopt;

pub use cmsg::RecvMeta;
pub(crate) use cmsg::{SOL_UDP, SO_TIMESTAMP, SO_TIMESTAMPNS, UDP_GRO};
pub use drops::socket_drops;
pub use epoll::{Epoll, EPOLLERR, EPOLLET, EPOLLIN, EPOLLOUT};
pub use eventfd::Doorbell;
pub use iface::{if_indextoname, interface_index};
pub use recv::RecvMmsg;
pub use region::Region;
pub(crate) use send::SEND_IOVS;
pub use send::{send_mmsg, Outgoing};
pub use sockopt::{disconnect, offload_support, set_int_option, source_membership};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Most datagrams one recvmmsg/sendmmsg call moves.
pub(crate) const MMSG_BATCH: usize = 32;
