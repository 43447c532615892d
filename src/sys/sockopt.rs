//! Socket options: integer options, source-specific multicast membership,
//! dissolving a connection, and which UDP offloads the kernel has.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use socket2::SockAddr;

use super::cmsg::{SOL_UDP, UDP_GRO, UDP_SEGMENT};
use super::cvt;

/// Sets an integer socket option.
pub fn set_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Dissolves the association of a connected datagram socket
/// (connect with AF_UNSPEC).
pub fn disconnect(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain C data; zeroes are valid.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    addr.ss_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: passes a live sockaddr_storage and its size.
    let ret = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_storage).cast(),
            std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// Joins or leaves a source-specific group on an IPv6 (or IPv4) socket with
/// the protocol-independent MCAST_{JOIN,LEAVE}_SOURCE_GROUP.
pub fn source_membership(
    fd: RawFd,
    level: libc::c_int,
    source: SocketAddr,
    group: SocketAddr,
    interface: u32,
    join: bool,
) -> io::Result<()> {
    // SAFETY: plain C data; zeroes are valid.
    let mut req: libc::group_source_req = unsafe { std::mem::zeroed() };
    req.gsr_interface = interface;
    for (addr, storage) in [(source, &mut req.gsr_source), (group, &mut req.gsr_group)] {
        let addr = SockAddr::from(addr);
        // SAFETY: a SockAddr is at most a sockaddr_storage long.
        unsafe {
            std::ptr::copy_nonoverlapping(
                addr.as_ptr().cast::<u8>(),
                (storage as *mut libc::sockaddr_storage).cast::<u8>(),
                addr.len() as usize,
            )
        };
    }
    let name = if join {
        libc::MCAST_JOIN_SOURCE_GROUP
    } else {
        libc::MCAST_LEAVE_SOURCE_GROUP
    };
    // SAFETY: passes a live group_source_req and its size.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&req as *const libc::group_source_req).cast(),
            std::mem::size_of::<libc::group_source_req>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// The offloads (`DGRAM_OFFLOAD_*`) this kernel has, asked once per
/// process: UDP_SEGMENT since Linux 4.18, UDP_GRO since 5.0.
pub fn offload_support() -> u32 {
    static SUPPORT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SUPPORT.get_or_init(|| {
        // Unbound: asking needs no address, so it works in any namespace.
        let Ok(probe) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None) else {
            return 0;
        };
        let fd = probe.as_raw_fd();
        let gso = set_int_option(fd, SOL_UDP, UDP_SEGMENT, 1200).is_ok();
        let gro = set_int_option(fd, SOL_UDP, UDP_GRO, 1).is_ok();
        (if gso { crate::types::DGRAM_OFFLOAD_GSO } else { 0 })
            | (if gro { crate::types::DGRAM_OFFLOAD_GRO } else { 0 })
    })
}
