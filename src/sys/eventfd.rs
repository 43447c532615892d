//! eventfd: `EventFd`, a level-triggered flag for another thread's poll or
//! epoll, and `Doorbell`, an eventfd with the flag that makes producers
//! signal it once until the consumer lowers it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use super::cvt;

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

/// An eventfd and the flag producers share to signal it once until the
/// consumer lowers it: the "fd plus flag, signal once" idiom in one value.
/// Readable from the first `ring` until `lower`; the rings in between cost
/// an atomic swap and no system call.
pub struct Doorbell {
    fd: EventFd,
    raised: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        Ok(Doorbell {
            fd: EventFd::new()?,
            raised: AtomicBool::new(false),
        })
    }

    /// The eventfd, for poll or epoll.
    pub fn raw(&self) -> RawFd {
        self.fd.raw()
    }

    /// Raises the flag and signals the fd, unless the flag was up already:
    /// then the fd is readable (or a `lower` is under way, whose caller
    /// looks at the work after it), and this ring needs no system call.
    pub fn ring(&self) {
        if !self.raised.swap(true, SeqCst) {
            self.fd.signal();
        }
    }

    /// Raises the flag and signals the fd even if the flag was up already:
    /// for shutdown, whose waiter must wake whatever state the flag is in.
    pub fn ring_always(&self) {
        self.raised.store(true, SeqCst);
        self.fd.signal();
    }

    /// Whether the flag is up: rung since the last `lower`.
    pub fn is_raised(&self) -> bool {
        self.raised.load(SeqCst)
    }

    /// Consumes the signal, then lowers the flag producers use to signal
    /// once per batch (`ring`).
    ///
    /// The order matters: lowering the flag first would let a producer set
    /// it and signal in between, and the clear would then eat that signal
    /// while the flag stays up, so no later producer would signal again (a
    /// lost wake-up). Done this way, a producer that saw the flag up pushed
    /// its event before this call, so the caller, which looks at the queue
    /// next, sees the event.
    pub fn lower(&self) {
        self.fd.clear_then_rearm(&self.raised);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `fd` becomes readable within `timeout_ms`.
    fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        ret > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// Reads the eventfd's counter, or None when it is not readable.
    fn read_count(fd: RawFd) -> Option<u64> {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from an fd the test owns.
        let ret = unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
        (ret == 8).then_some(value)
    }

    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn eventfd_signal_then_clear() {
        let fd = EventFd::new().unwrap();
        assert!(!wait_readable(fd.raw(), 0));
        fd.signal();
        fd.signal();
        assert!(wait_readable(fd.raw(), 0));
        fd.clear();
        assert!(!wait_readable(fd.raw(), 0));
        // Clearing a clear eventfd is harmless (EAGAIN).
        fd.clear();
        assert!(!wait_readable(fd.raw(), 0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn doorbell_starts_lowered() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.is_raised());
        assert!(!wait_readable(bell.raw(), 0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn doorbell_rings_once_until_lowered() {
        let bell = Doorbell::new().unwrap();
        bell.ring();
        bell.ring();
        assert!(bell.is_raised());
        assert!(wait_readable(bell.raw(), 0));
        // Two rings, one signal: the counter holds 1.
        assert_eq!(read_count(bell.raw()), Some(1));
    }

    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn doorbell_lower_then_ring_again() {
        let bell = Doorbell::new().unwrap();
        bell.ring();
        bell.ring();
        bell.lower();
        assert!(!bell.is_raised());
        assert!(!wait_readable(bell.raw(), 0));
        bell.ring();
        assert!(bell.is_raised());
        assert!(wait_readable(bell.raw(), 0));
        bell.lower();
        assert!(!wait_readable(bell.raw(), 0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn doorbell_lower_when_lowered_is_harmless() {
        let bell = Doorbell::new().unwrap();
        bell.lower();
        assert!(!bell.is_raised());
        assert!(!wait_readable(bell.raw(), 0));
        bell.ring();
        assert!(wait_readable(bell.raw(), 0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn doorbell_ring_always_signals_when_raised() {
        let bell = Doorbell::new().unwrap();
        bell.ring();
        bell.ring_always();
        assert!(bell.is_raised());
        // Both signalled: the ring and the ring_always.
        assert_eq!(read_count(bell.raw()), Some(2));
        bell.lower();
        assert!(!wait_readable(bell.raw(), 0));
        // From lowered, it raises the flag too, so a ring adds no signal.
        bell.ring_always();
        bell.ring();
        assert!(bell.is_raised());
        assert_eq!(read_count(bell.raw()), Some(1));
    }

    /// No ring is lost to a lower that races it: a consumer that waits for
    /// the fd, lowers, then counts what the producer pushed (as the context
    /// does with its queue) finds the fd readable again while pushes remain.
    #[test]
    #[cfg_attr(miri, ignore = "uses an eventfd and poll, which Miri cannot run")]
    fn doorbell_ring_racing_lower_is_not_lost() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        let bell = Arc::new(Doorbell::new().unwrap());
        let pushed = Arc::new(AtomicUsize::new(0));
        const RINGS: usize = 200_000;
        let producer = {
            let (bell, pushed) = (Arc::clone(&bell), Arc::clone(&pushed));
            std::thread::spawn(move || {
                for _ in 0..RINGS {
                    pushed.fetch_add(1, SeqCst);
                    bell.ring();
                }
            })
        };
        let mut seen = 0;
        while seen < RINGS {
            assert!(
                wait_readable(bell.raw(), 5_000),
                "a ring was lost: {seen} of {RINGS} seen"
            );
            bell.lower();
            seen = pushed.load(SeqCst);
        }
        producer.join().unwrap();
    }
}
