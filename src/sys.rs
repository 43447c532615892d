//! Thin, safe wrappers over the few system calls that socket2 does not cover:
//! epoll, eventfd, poll, interface names, and batched reads and writes
//! (recvmmsg, sendmmsg). All of this module's `unsafe`
//! is plain libc calls on file descriptors this crate owns, with buffers whose
//! sizes are passed alongside.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::SockAddr;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An eventfd used as a level-triggered flag: readable after `signal`, until `clear`.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. The only possible failure is
        // EAGAIN when the counter is saturated, which still leaves it readable.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64. EAGAIN (already clear) is fine.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }

    /// Consumes the signal, then lowers `signaled`, the flag producers use
    /// to signal once per batch (`if !signaled.swap(true) { signal() }`).
    ///
    /// The order matters: lowering the flag first would let a producer set
    /// it and signal in between, and the clear would then eat that signal
    /// while the flag stays up, so no later producer would signal again (a
    /// lost wake-up). Done this way, a producer that saw the flag up pushed
    /// its event before this call, so the caller, which looks at the queue
    /// next, sees the event.
    pub fn clear_then_rearm(&self, signaled: &std::sync::atomic::AtomicBool) {
        self.clear();
        signaled.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1: no limit).
/// Returns whether it became readable; EINTR counts as "not yet".
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    ret > 0 && pfd.revents & libc::POLLIN != 0
}

pub struct Epoll(OwnedFd);

pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; a non-negative result is a new fd we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }

    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events; returns how many entries of `events` were filled
    /// (0 on EINTR).
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: the kernel writes at most `max` entries into `events`.
        let ret = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(ret as usize)
    }
}

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

/// Most datagrams one recvmmsg/sendmmsg call moves.
pub(crate) const MMSG_BATCH: usize = 32;

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
}

/// Room for every control message a socket may ask for at once: IPv6 or
/// IPv4 packet info, TTL or hop limit, a timestamp, and a GRO segment size
/// (about 150 bytes with their headers), with margin.
const CONTROL_WORDS: usize = 40;

// Options and control messages libc does not export for every target; the
// numbers are Linux's own (include/uapi/linux/udp.h, asm-generic/socket.h,
// which x86, ARM and AArch64 use).
pub(crate) const SOL_UDP: libc::c_int = 17;
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
pub(crate) const UDP_GRO: libc::c_int = 104;
/// SO_TIMESTAMPNS_OLD: a `struct timespec` of the target's own time_t, which
/// is what `libc::timespec` is on each target.
pub(crate) const SO_TIMESTAMPNS: libc::c_int = 35;
/// SO_TIMESTAMP_OLD: a `struct timeval`, the fallback where SO_TIMESTAMPNS
/// is refused (qemu-user emulates only this one).
pub(crate) const SO_TIMESTAMP: libc::c_int = 29;

/// What the kernel said about one received datagram in its control messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// The destination address of the IP header, and the arrival interface.
    pub local: Option<(IpAddr, u32)>,
    pub ttl: Option<u8>,
    /// CLOCK_REALTIME seconds and nanoseconds.
    pub timestamp: Option<(i64, u32)>,
    pub truncated: bool,
    /// The segment size of a GRO buffer, 0 when the datagram came alone.
    pub gro_segment: u32,
}

impl RecvMmsg {
    pub fn new() -> Box<RecvMmsg> {
        // SAFETY: the three arrays are plain C data (integers and raw
        // pointers); all zeroes is a valid value for each of them.
        let mut mmsg: Box<RecvMmsg> = Box::new(unsafe { std::mem::zeroed() });
        // What stays the same from call to call: one iovec, no control data.
        for hdr in &mut mmsg.hdrs {
            hdr.msg_hdr.msg_iovlen = 1;
        }
        mmsg
    }

    /// Receives up to `MMSG_BATCH` datagrams without blocking, datagram `i`
    /// into `region[i * slot .. (i + 1) * slot]`; at most as many as whole
    /// slots fit in `region`. Returns how many arrived (EINTR is retried;
    /// EAGAIN is an error of kind WouldBlock).
    /// With `control`, ancillary data is asked for too (see `meta`).
    pub fn recv(&mut self, fd: RawFd, region: &mut [u8], slot: usize, control: bool) -> io::Result<usize> {
        let count = region.len().checked_div(slot).unwrap_or(0).min(MMSG_BATCH);
        if count == 0 {
            return Ok(0);
        }
        let base = region.as_mut_ptr();
        let (hdrs, iovs, names) = (
            &mut self.hdrs[..count],
            &mut self.iovs[..count],
            &mut self.names[..count],
        );
        for (i, ((hdr, iov), name)) in hdrs.iter_mut().zip(iovs).zip(names).enumerate() {
            // SAFETY: i * slot + slot <= region.len(), checked by `count`.
            iov.iov_base = unsafe { base.add(i * slot) }.cast();
            iov.iov_len = slot;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
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
        // long as `self`); the CMSG_* macros walk only within that length,
        // and each payload is read unaligned, with its size checked first.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let c = &*cmsg;
                let data = libc::CMSG_DATA(cmsg);
                let len = (c.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                match (c.cmsg_level, c.cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) if len >= std::mem::size_of::<libc::in_pktinfo>() => {
                        let info = data.cast::<libc::in_pktinfo>().read_unaligned();
                        let dst = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                        // The address comes from the IP header; the interface
                        // is recorded only for datagrams that reached the socket
                        // while it asked, and is 0 for those queued before
                        // (found by the fuzzer).
                        meta.local = Some((IpAddr::V4(dst), info.ipi_ifindex as u32));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if len >= std::mem::size_of::<libc::in6_pktinfo>() => {
                        let info = data.cast::<libc::in6_pktinfo>().read_unaligned();
                        let dst = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                        meta.local = Some((IpAddr::V6(dst), info.ipi6_ifindex));
                    }
                    (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
                        if len >= std::mem::size_of::<libc::c_int>() =>
                    {
                        let ttl = data.cast::<libc::c_int>().read_unaligned();
                        meta.ttl = u8::try_from(ttl).ok();
                    }
                    (libc::SOL_SOCKET, SO_TIMESTAMPNS) if len >= std::mem::size_of::<libc::timespec>() => {
                        let ts = data.cast::<libc::timespec>().read_unaligned();
                        meta.timestamp = Some((ts.tv_sec as i64, ts.tv_nsec as u32));
                    }
                    (libc::SOL_SOCKET, SO_TIMESTAMP) if len >= std::mem::size_of::<libc::timeval>() => {
                        let tv = data.cast::<libc::timeval>().read_unaligned();
                        meta.timestamp = Some((tv.tv_sec as i64, tv.tv_usec as u32 * 1000));
                    }
                    (SOL_UDP, UDP_GRO) if len >= std::mem::size_of::<libc::c_int>() => {
                        let size = data.cast::<libc::c_int>().read_unaligned();
                        meta.gro_segment = u32::try_from(size).unwrap_or(0);
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        meta
    }
}

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

/// One datagram to send: its bytes, and its destination (`None`: the
/// connected peer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Outgoing<'a> {
    pub data: &'a [u8],
    pub dest: Option<SocketAddr>,
}

/// Most datagrams one `send_mmsg` call takes (iovecs on the stack).
pub(crate) const SEND_IOVS: usize = 256;

/// Most segments of one UDP_SEGMENT write (the kernel's UDP_MAX_SEGMENTS
/// was 64 before Linux 6.2; 64 is safe everywhere).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;

/// Most payload bytes of one UDP_SEGMENT write: what one IPv4 datagram can carry.
const GSO_MAX_BYTES: usize = 65507;

/// Sends `datagrams` with one `sendmmsg`, without blocking. With `gso`,
/// each run of datagrams to one destination whose sizes are equal (the
/// last may be shorter) becomes one UDP_SEGMENT write that the kernel, or
/// the network card, cuts back into those datagrams. Returns how many
/// datagrams the kernel took, counting from the first; or the error that
/// refused the first write and how many datagrams that write held. EINTR
/// is retried.
pub fn send_mmsg(fd: RawFd, datagrams: &[Outgoing<'_>], gso: bool) -> Result<usize, (io::Error, usize)> {
    // SAFETY (the three zeroed arrays): plain C data; zeroes are valid.
    let mut iovs: [libc::iovec; SEND_IOVS] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; MMSG_BATCH] = unsafe { std::mem::zeroed() };
    let mut controls: [[u64; 3]; MMSG_BATCH] = [[0; 3]; MMSG_BATCH];
    let mut names: [Option<SockAddr>; MMSG_BATCH] = std::array::from_fn(|_| None);
    let mut sizes = [0usize; MMSG_BATCH];
    let mut writes = 0;
    let mut next = 0;
    while next < datagrams.len().min(SEND_IOVS) && writes < MMSG_BATCH {
        let first = datagrams[next];
        let segment = first.data.len();
        let mut count = 1;
        let mut total = segment;
        if gso && segment > 0 {
            for d in &datagrams[next + 1..datagrams.len().min(SEND_IOVS)] {
                if count == GSO_MAX_SEGMENTS
                    || d.dest != first.dest
                    || d.data.is_empty()
                    || d.data.len() > segment
                    || total + d.data.len() > GSO_MAX_BYTES
                {
                    break;
                }
                count += 1;
                total += d.data.len();
                if d.data.len() < segment {
                    break; // A shorter one can only end a run.
                }
            }
        }
        for (iov, d) in iovs[next..next + count].iter_mut().zip(&datagrams[next..]) {
            // Always one iovec per datagram, also an empty one: see `send_datagram`.
            *iov = libc::iovec {
                iov_base: d.data.as_ptr() as *mut libc::c_void,
                iov_len: d.data.len(),
            };
        }
        names[writes] = first.dest.map(SockAddr::from);
        let hdr = &mut hdrs[writes].msg_hdr;
        hdr.msg_iov = iovs[next..].as_mut_ptr();
        hdr.msg_iovlen = count as _;
        if let Some(name) = &names[writes] {
            hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = name.len();
        }
        if count > 1 {
            let control = &mut controls[writes];
            hdr.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is arithmetic.
            hdr.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as _;
            debug_assert!(hdr.msg_controllen as usize <= std::mem::size_of_val(control));
            // SAFETY: the header points at `control`, large enough for one
            // cmsg with a u16 (checked above); CMSG_FIRSTHDR is within it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(hdr);
                (*cmsg).cmsg_level = SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                libc::CMSG_DATA(cmsg).cast::<u16>().write_unaligned(segment as u16);
            }
        }
        sizes[writes] = count;
        writes += 1;
        next += count;
    }
    if writes == 0 {
        return Ok(0);
    }
    loop {
        // SAFETY: `writes` headers pointing at live payloads (read only, as
        // the kernel does for sends), iovecs, addresses and control data on
        // this stack frame.
        let ret = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), writes as _, libc::MSG_DONTWAIT as _) };
        if ret >= 0 {
            return Ok(sizes[..ret as usize].iter().sum());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err((err, sizes[0]));
        }
    }
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

/// Anonymous memory straight from mmap: address space reserved up front,
/// pages made resident only when first written. Used for receive slots, so
/// that a batch of large slots costs only what its datagrams touch, whatever
/// the allocator would do with a large zeroed allocation.
pub struct Region {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a Region is plain memory owned by exactly one value; it is only
// reached through `&self`/`&mut self`, so the usual borrow rules apply.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    pub fn new(len: usize) -> io::Result<Region> {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Region { ptr, len })
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable (zero-filled until written) for
        // as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Gives the region's pages back to the system: they read as zeros
    /// again and cost no resident memory until next written.
    pub fn release(&mut self) {
        // SAFETY: the range is exactly this mapping, which `&mut self` keeps
        // unborrowed; MADV_DONTNEED on a private anonymous mapping only
        // drops its contents, which the next user writes before reading.
        unsafe {
            libc::madvise(self.ptr.as_ptr().cast(), self.len, libc::MADV_DONTNEED);
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; nothing borrows it
        // any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The kernel's count of datagrams dropped because `fd`'s receive buffer
/// was full (sk_drops, the counter SO_RXQ_OVFL reports), read with
/// SO_MEMINFO; where that option is not available (qemu-user does not pass
/// it through), from the socket's line in /proc/net/udp or udp6. 0 when
/// neither tells.
pub fn socket_drops(fd: RawFd) -> u32 {
    meminfo_drops(fd).or_else(|| proc_net_drops(fd)).unwrap_or(0)
}

fn meminfo_drops(fd: RawFd) -> Option<u32> {
    // asm-generic/socket.h, which x86, ARM and AArch64 use; libc does not
    // export it for these targets.
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; SK_MEMINFO_DROPS + 1];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info` and updates `len`.
    let ret = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_MEMINFO, info.as_mut_ptr().cast(), &mut len) };
    (ret == 0 && len as usize >= std::mem::size_of_val(&info)).then_some(info[SK_MEMINFO_DROPS])
}

fn proc_net_drops(fd: RawFd) -> Option<u32> {
    // SAFETY: struct stat is plain data, all zeroes valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one struct stat, which lives for the call.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let inode = st.st_ino.to_string();
    ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"]
        .iter()
        .find_map(|path| {
            let table = std::fs::read_to_string(path).ok()?;
            // Columns: sl local rem st queues tr retrnsmt uid timeout inode ref pointer drops.
            table.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(9) == Some(&inode.as_str())).then(|| fields.get(12)?.parse().ok())?
            })
        })
}
