//! Thin, safe wrappers over the few system calls that socket2 does not cover:
//! epoll, eventfd, poll and interface names. All of this module's `unsafe`
//! is plain libc calls on file descriptors this crate owns, with buffers whose
//! sizes are passed alongside.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
