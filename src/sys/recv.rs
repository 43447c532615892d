//! recvmmsg: `RecvMmsg`, the reusable kernel-facing side of batched reads.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use super::cmsg::{self, RecvMeta};
use super::MMSG_BATCH;

/// The kernel-facing side of `recvmmsg`: message headers, iovecs and
/// source-address storage for up to `MMSG_BATCH` datagrams, kept by the I/O
/// thread and reused for every call, so a read allocates nothing.
pub struct RecvMmsg {
    hdrs: [libc::mmsghdr; MMSG_BATCH],
    iovs: [libc::iovec; MMSG_BATCH],
    names: [libc::sockaddr_storage; MMSG_BATCH],
    /// Ancillary data (metadata, GRO segment size), offered only to sockets
    /// that asked for it: the kernel does no cmsg work for the others.
    controls: [[u64; CONTROL_WORDS]; MMSG_BATCH],
    /// Whether the headers point at `controls` now; they are rewritten only
    /// when a read wants otherwise.
    control_on: bool,
    /// The region start, slot size and number of headers whose iovecs
    /// point into it (null and zeroes before the first read).
    prepared: (*mut u8, usize, usize),
}

/// Room for every control message a socket may ask for at once: IPv6 or
/// IPv4 packet info, TTL or hop limit, a timestamp, and a GRO segment size
/// (about 150 bytes with their headers), with margin.
const CONTROL_WORDS: usize = 40;

// SAFETY: the raw pointers in the headers point at this value's own arrays
// (which live in its Box and never move) and into the region a `recv` is
// given, which `recv` checks against `prepared` (compared, never
// dereferenced) and rewrites when it differs; nothing reads them outside
// `recv`. So the value may move to (and be used by) another thread; it is
// never shared between threads.
unsafe impl Send for RecvMmsg {}

impl RecvMmsg {
    pub fn new() -> Box<RecvMmsg> {
        // SAFETY: the arrays are plain C data (integers and raw pointers),
        // and the rest a bool and a tuple of a raw pointer and integers;
        // all zeroes is a valid value for each of them.
        let mut mmsg: Box<RecvMmsg> = Box::new(unsafe { std::mem::zeroed() });
        // What stays the same from call to call: one iovec, no control data.
        for hdr in &mut mmsg.hdrs {
            hdr.msg_hdr.msg_iovlen = 1;
        }
        mmsg
    }

    /// Receives up to `max` (and at most `MMSG_BATCH`) datagrams without
    /// blocking, datagram `i` into `region[i * slot .. (i + 1) * slot]`; at
    /// most as many as whole slots fit in `region`. Returns how many arrived
    /// (EINTR is retried; EAGAIN is an error of kind WouldBlock).
    /// With `control`, ancillary data is asked for too (see `meta`).
    pub fn recv(&mut self, fd: RawFd, region: &mut [u8], slot: usize, max: usize, control: bool) -> io::Result<usize> {
        let fit = region.len().checked_div(slot).unwrap_or(0).min(MMSG_BATCH);
        let count = fit.min(max);
        if count == 0 {
            return Ok(0);
        }
        let base = region.as_mut_ptr();
        if self.prepared != (base, slot, fit) {
            // A new region (or slot size): point every header's iovec at its
            // slot. Reads into the same region, the usual case, skip this.
            let (hdrs, iovs, names) = (&mut self.hdrs, &mut self.iovs, &mut self.names);
            for (i, ((hdr, iov), name)) in hdrs.iter_mut().zip(iovs).zip(names).enumerate().take(fit) {
                // SAFETY: i * slot + slot <= region.len(), checked by `fit`.
                iov.iov_base = unsafe { base.add(i * slot) }.cast();
                iov.iov_len = slot;
                hdr.msg_hdr.msg_iov = iov;
                hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            }
            self.prepared = (base, slot, fit);
        }
        for hdr in &mut self.hdrs[..count] {
            // The kernel shrinks it to the address it wrote.
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        if control || self.control_on {
            // The kernel shrinks msg_controllen to what it wrote: set it
            // again for every read that asks, and clear it once after.
            for (hdr, ctrl) in self.hdrs.iter_mut().zip(&mut self.controls) {
                if control {
                    hdr.msg_hdr.msg_control = ctrl.as_mut_ptr().cast();
                    hdr.msg_hdr.msg_controllen = std::mem::size_of_val(ctrl) as _;
                } else {
                    hdr.msg_hdr.msg_control = std::ptr::null_mut();
                    hdr.msg_hdr.msg_controllen = 0;
                }
            }
            self.control_on = control;
        }
        loop {
            // SAFETY: `count` headers, each pointing at its own iovec (into
            // `region`, borrowed mutably for this call) and its own address
            // storage, all alive until the call returns.
            let ret = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    count as _,
                    libc::MSG_DONTWAIT as _,
                    std::ptr::null_mut(),
                )
            };
            if ret >= 0 {
                return Ok(ret as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// The length of datagram `i` of the last successful `recv`.
    pub fn len(&self, i: usize) -> usize {
        self.hdrs[i].msg_len as usize
    }

    /// The source of datagram `i` of the last successful `recv`.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        sockaddr_to_std(&self.names[i], self.hdrs[i].msg_hdr.msg_namelen)
    }

    /// The source of datagram `i` of the last successful `recv` as the
    /// kernel wrote it, for a cheap comparison with the previous datagram's
    /// before any conversion: the first 32 bytes of its sockaddr as words
    /// (sockaddr_in6, the longest, has 28), the last two zero for IPv4.
    pub fn source_key(&self, i: usize) -> [u64; 4] {
        let len = self.hdrs[i].msg_hdr.msg_namelen as usize;
        // SAFETY: sockaddr_storage is 128 bytes, aligned for u64, and plain
        // data, all of it initialised (zeroed at creation, then written by
        // the kernel); the first four words are read.
        let words = unsafe { &*(&self.names[i] as *const libc::sockaddr_storage).cast::<[u64; 4]>() };
        // An IPv4 source (16 bytes) leaves the other two words as a longer
        // one wrote them: they are no part of its key.
        let long = len > 16;
        [
            words[0],
            words[1],
            if long { words[2] } else { 0 },
            if long { words[3] } else { 0 },
        ]
    }

    /// The control messages of datagram `i` of the last successful `recv`
    /// made with `control`.
    pub fn meta(&self, i: usize) -> RecvMeta {
        let hdr = &self.hdrs[i].msg_hdr;
        let mut meta = RecvMeta {
            truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
            ..RecvMeta::default()
        };
        if hdr.msg_control.is_null() {
            return meta;
        }
        // SAFETY: the kernel filled `msg_controllen` bytes of the control
        // buffer `msg_control` points at (our own `controls[i]`, alive as
        // long as `self`).
        unsafe { cmsg::read_meta(hdr, &mut meta) };
        meta
    }
}

/// The address in `storage`, if it is an IPv4 or IPv6 one of `len` bytes.
fn sockaddr_to_std(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // it is large and aligned enough for.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
