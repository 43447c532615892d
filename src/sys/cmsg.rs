//! Control messages: the option and message numbers libc lacks, what the
//! kernel says about a received datagram (`RecvMeta`, read from its control
//! messages), and the UDP_SEGMENT message of a GSO write.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Reads the control messages of `hdr` into `meta`: the fields they
/// report are set, the others left as they are.
///
/// # Safety
///
/// `hdr.msg_control` points at `hdr.msg_controllen` bytes of control data
/// the kernel filled, readable for the duration of the call.
pub(super) unsafe fn read_meta(hdr: &libc::msghdr, meta: &mut RecvMeta) {
    // SAFETY: the kernel filled `msg_controllen` bytes of the control
    // buffer `msg_control` points at (the caller's promise); the CMSG_*
    // macros walk only within that length, and each payload is read
    // unaligned, with its size checked first.
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
}

/// Points `hdr` at `control` and writes there the one control message of a
/// UDP_SEGMENT write: `segment`, the size the kernel, or the network card,
/// cuts its payload into.
// msg_controllen is a size_t here but a socklen_t on musl: the cast in the
// debug_assert is needed there.
#[allow(clippy::unnecessary_cast)]
pub(super) fn set_udp_segment(hdr: &mut libc::msghdr, control: &mut [u64; 3], segment: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A msghdr over `buf` laid out as the kernel would for control
    /// messages of `msgs` (level, type, payload size), and where each
    /// payload goes, for the test to write there.
    fn with_control(buf: &mut [u64; 40], msgs: &[(libc::c_int, libc::c_int, usize)]) -> (libc::msghdr, Vec<*mut u8>) {
        // SAFETY: msghdr is plain C data; zeroes are valid.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_control = buf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic.
        let total: usize = msgs
            .iter()
            .map(|m| unsafe { libc::CMSG_SPACE(m.2 as u32) } as usize)
            .sum();
        assert!(total <= std::mem::size_of_val(buf));
        hdr.msg_controllen = total as _;
        let mut data = Vec::new();
        // SAFETY: the header points at `buf`, which holds `total` bytes,
        // the room of exactly these messages; the CMSG_* macros stay
        // within it.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
            for &(level, kind, len) in msgs {
                assert!(!cmsg.is_null());
                (*cmsg).cmsg_level = level;
                (*cmsg).cmsg_type = kind;
                (*cmsg).cmsg_len = libc::CMSG_LEN(len as u32) as _;
                data.push(libc::CMSG_DATA(cmsg));
                cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
            }
        }
        (hdr, data)
    }

    #[test]
    fn read_meta_reads_every_kind() {
        use std::mem::size_of;
        // SAFETY: in6_pktinfo and timespec are plain C data; zeroes are valid.
        let (mut info, mut ts): (libc::in6_pktinfo, libc::timespec) = unsafe { std::mem::zeroed() };
        info.ipi6_addr.s6_addr = Ipv6Addr::LOCALHOST.octets();
        info.ipi6_ifindex = 7;
        ts.tv_sec = 5;
        ts.tv_nsec = 6;
        let mut buf = [0u64; 40];
        let (hdr, data) = with_control(
            &mut buf,
            &[
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, size_of::<libc::in6_pktinfo>()),
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, size_of::<libc::c_int>()),
                (libc::SOL_SOCKET, SO_TIMESTAMPNS, size_of::<libc::timespec>()),
                (SOL_UDP, UDP_GRO, size_of::<libc::c_int>()),
            ],
        );
        let mut meta = RecvMeta::default();
        // SAFETY: each payload is written where `with_control` put its
        // message, with the size it was given; `hdr` then points at `buf`,
        // filled.
        unsafe {
            data[0].cast::<libc::in6_pktinfo>().write_unaligned(info);
            data[1].cast::<libc::c_int>().write_unaligned(64);
            data[2].cast::<libc::timespec>().write_unaligned(ts);
            data[3].cast::<libc::c_int>().write_unaligned(1200);
            read_meta(&hdr, &mut meta);
        }
        assert_eq!(
            meta,
            RecvMeta {
                local: Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 7)),
                ttl: Some(64),
                timestamp: Some((5, 6)),
                truncated: false,
                gro_segment: 1200,
            }
        );
    }

    #[test]
    fn read_meta_skips_short_payloads() {
        let mut buf = [0u64; 40];
        let (hdr, data) = with_control(&mut buf, &[(libc::IPPROTO_IP, libc::IP_TTL, 1), (SOL_UDP, UDP_GRO, 2)]);
        let mut meta = RecvMeta::default();
        // SAFETY: as above.
        unsafe {
            data[0].write(64);
            data[1].cast::<[u8; 2]>().write_unaligned([1, 2]);
            read_meta(&hdr, &mut meta);
        }
        assert_eq!(meta, RecvMeta::default());
    }

    #[test]
    fn set_udp_segment_writes_one_message() {
        // SAFETY: msghdr is plain C data; zeroes are valid.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 3];
        set_udp_segment(&mut hdr, &mut control, 1200);
        // Compared as an address only: a fresh `as_mut_ptr` here would
        // retag `control` and leave the header's pointer invalid for the
        // reads below (Miri's Stacked Borrows).
        assert_eq!(hdr.msg_control as usize, std::ptr::addr_of!(control) as usize);
        // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic; the header points
        // at `control`, which `set_udp_segment` filled with one message.
        unsafe {
            assert_eq!(hdr.msg_controllen as usize, libc::CMSG_SPACE(2) as usize);
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            assert!(!cmsg.is_null());
            assert_eq!(((*cmsg).cmsg_level, (*cmsg).cmsg_type), (SOL_UDP, UDP_SEGMENT));
            assert_eq!((*cmsg).cmsg_len as usize, libc::CMSG_LEN(2) as usize);
            assert_eq!(libc::CMSG_DATA(cmsg).cast::<u16>().read_unaligned(), 1200);
            assert!(libc::CMSG_NXTHDR(&hdr, cmsg).is_null());
        }
    }
}
