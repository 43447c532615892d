//! Interface names and indexes.

use std::os::fd::RawFd;

/// The index of the network interface called `name` in the network
/// namespace of socket `fd` (which need not be the calling thread's), or 0
/// when there is none there.
pub fn interface_index(fd: RawFd, name: &str) -> u32 {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains('\0') {
        return 0;
    }
    for (slot, byte) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads the NUL-terminated name and writes the index
    // into the same ifreq, which lives for the duration of the call.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCGIFINDEX as _, &mut req) };
    if ret < 0 {
        return 0;
    }
    // SAFETY: on success the kernel filled the ifindex member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    u32::try_from(index).unwrap_or(0)
}

/// The name of interface `index`, written into `buf`.
pub fn if_indextoname(index: u32, buf: &mut [u8; libc::IF_NAMESIZE]) -> Option<&str> {
    // SAFETY: `buf` has the IF_NAMESIZE bytes the call may write.
    let ret = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if ret.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&buf[..len]).ok()
}
