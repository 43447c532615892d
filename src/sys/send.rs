//! sendmmsg and GSO: `send_mmsg` writes a run of `Outgoing` datagrams in one
//! call, equal-sized runs to one destination as UDP_SEGMENT writes.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

use super::cmsg;
use super::MMSG_BATCH;

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
            cmsg::set_udp_segment(hdr, &mut controls[writes], segment);
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
