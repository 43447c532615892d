//! poll: waiting for one file descriptor to become readable.

use std::os::fd::RawFd;

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
