//! The receive side: a read of the socket in progress, what was received
//! (counts, stats, each datagram's metadata), how much the next read
//! offers, watching for datagrams or not, and the receive offloads.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::state::State;
use super::{Admitted, Socket};
use crate::addr::{self, Family};
use crate::batch::{ReadMode, BATCH_SLOTS};
use crate::context::Context;
use crate::error::{Errno, Result};
use crate::event::{ErrorInfo, EventKind, SocketHandle};
use crate::sys;
use crate::types::{dgram_addr, dgram_meta, dgram_socket, dgram_stats, DGRAM_OFFLOAD_GRO, DGRAM_OFFLOAD_GSO};

/// The fewest slots a read offers.
const MIN_READ_SLOTS: usize = 8;

/// One read of a socket in progress on the reading thread (`begin_read`); it
/// ends with `accept` (what was read is queued), or when dropped.
pub struct Reading<'a> {
    socket: &'a Socket,
    fd: Arc<UdpSocket>,
    mode: ReadMode,
    ended: bool,
}

impl Reading<'_> {
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// Ends the read of `count` datagrams, and returns the handlers to
    /// deliver them with, or `None` if the socket closed meanwhile (they
    /// are then nobody's). One lock for both.
    pub fn accept(mut self, count: usize) -> Option<Admitted> {
        self.ended = true;
        self.socket.accept_read(count)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.socket.end_read(&mut self.socket.state.lock());
        }
    }
}

impl Socket {
    /// Starts one read (the reading thread, on EPOLLIN): the fd, whose clone keeps
    /// it open through a read that races a close, and the read mode, which
    /// holds until the guard goes; `None` once closed.
    pub fn begin_read(&self) -> Option<Reading<'_>> {
        let mut st = self.state.lock();
        if st.is_closed() {
            return None;
        }
        let fd = Arc::clone(st.shared_fd()?);
        st.reading = true;
        Some(Reading {
            socket: self,
            fd,
            mode: st.read_mode,
            ended: false,
        })
    }

    /// See `Reading::accept`.
    fn accept_read(&self, count: usize) -> Option<Admitted> {
        let mut st = self.state.lock();
        self.end_read(&mut st);
        (count > 0 && !st.is_closed()).then(|| Admitted {
            handlers: st.handlers,
            epoch: self.epoch(),
        })
    }

    /// The read is over: wake whoever waits for that.
    fn end_read(&self, st: &mut State) {
        if st.end_read() {
            self.read_done.notify_all();
        }
    }

    /// Counts a datagram handed to the host. Only the one thread that
    /// dispatches writes these (dispatch does not nest or overlap, and the
    /// hand-over between dispatching threads is ordered), so a plain store
    /// does, without a locked read-modify-write per datagram.
    pub fn count_received(&self, bytes: usize) {
        let c = &self.counters;
        c.received
            .store(c.received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        c.bytes_received.store(
            c.bytes_received.load(Ordering::Relaxed) + bytes as u64,
            Ordering::Relaxed,
        );
    }

    /// `dgram_socket_stats`: valid open or closed.
    pub fn stats(&self) -> dgram_stats {
        let kernel_drops = {
            let st = self.state.lock();
            match st.shared_fd() {
                Some(fd) => u64::from(sys::socket_drops(fd.as_raw_fd())),
                None => self.counters.final_kernel_drops.load(Ordering::Relaxed),
            }
        };
        let c = &self.counters;
        dgram_stats {
            datagrams_received: c.received.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            datagrams_sent: c.sent.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            dropped_queue_full: 0,
            dropped_by_kernel: kernel_drops,
            send_errors: c.send_errors.load(Ordering::Relaxed),
        }
    }

    pub fn read_hint(&self) -> usize {
        self.read_hint.load(Ordering::Relaxed)
    }

    /// After a read that got `got` datagrams of the `offered` slots: all
    /// slots after a full read (traffic is heavy: one syscall per read
    /// matters most), else twice what came, at least `MIN_READ_SLOTS`.
    pub fn update_read_hint(&self, got: usize, offered: usize) {
        let next = if got >= offered { BATCH_SLOTS } else { got * 2 };
        self.read_hint
            .store(next.clamp(MIN_READ_SLOTS, BATCH_SLOTS), Ordering::Relaxed);
    }

    /// Stops watching for datagrams (the reader found no memory for a
    /// batch); false if already stopped or closed.
    pub fn pause_reading(&self, ctx: &Context) -> bool {
        let mut st = self.state.lock();
        let Some(fd) = st.shared_fd().filter(|_| !st.is_closed() && !st.read_paused) else {
            return false;
        };
        if ctx
            .set_read_interest(fd.as_raw_fd(), self.token, false, st.writable_armed)
            .is_err()
        {
            return false;
        }
        st.read_paused = true;
        true
    }

    /// Watches for datagrams again (I/O thread, once memory may be had).
    pub fn resume_reading(&self, ctx: &Context) {
        let mut st = self.state.lock();
        let Some(fd) = st.shared_fd().filter(|_| !st.is_closed() && st.read_paused) else {
            return;
        };
        if ctx
            .set_read_interest(fd.as_raw_fd(), self.token, true, st.writable_armed)
            .is_ok()
        {
            st.read_paused = false;
        }
    }

    /// The socket's pending error (SO_ERROR), taken, if it has one: what its
    /// next read would fail with.
    pub fn take_error(&self) -> Option<io::Error> {
        self.with_fd(|fd| fd.take_error()).ok().flatten()
    }

    /// A read failed with something other than EAGAIN: the host hears of it
    /// as an 'error' event.
    pub fn report_receive_error(self: &Arc<Self>, ctx: &Context, err: &io::Error) {
        let mut st = self.state.lock();
        if !st.is_closed() {
            // On a connected socket this is mostly the peer's ICMP port
            // unreachable (DGRAM_ECONNREFUSED): name the peer.
            let info = ErrorInfo::new(Errno::from_io(err).0, c"recvmsg", st.peer_addr());
            self.push(ctx, &mut st, EventKind::Error(info));
        }
    }

    /// Asks the kernel for (or stops asking for) each datagram's
    /// destination address, TTL and receive timestamp.
    pub fn set_message_meta(&self, on: bool) -> Result<()> {
        let mut st = self.state.lock();
        st.check_open()?;
        let fd = st.raw_fd()?;
        let value = i32::from(on);
        let v4 = [
            (libc::IPPROTO_IP, libc::IP_PKTINFO),
            (libc::IPPROTO_IP, libc::IP_RECVTTL),
        ];
        let v6 = [
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
        ];
        let own = match self.family {
            Family::V4 => &v4,
            Family::V6 => &v6,
        };
        for &(level, name) in own {
            sys::set_int_option(fd, level, name, value)?;
        }
        // Nanoseconds where the system has them, else microseconds (qemu-user
        // refuses SO_TIMESTAMPNS), else no timestamp: `has_timestamp` tells.
        if sys::set_int_option(fd, libc::SOL_SOCKET, sys::SO_TIMESTAMPNS, value).is_err() {
            let _ = sys::set_int_option(fd, libc::SOL_SOCKET, sys::SO_TIMESTAMP, value);
        }
        if self.family == Family::V6 {
            // IPv4 datagrams on a dual-stack socket carry IPv4 control
            // messages; a v6-only socket refuses these, which is fine.
            for (level, name) in v4 {
                let _ = sys::set_int_option(fd, level, name, value);
            }
        }
        st.read_mode.meta = on;
        Ok(())
    }

    /// Sets the offloads of `flags` that the kernel has, and returns those
    /// now in effect.
    pub fn set_offload(&self, flags: u32) -> Result<u32> {
        let mut st = self.state.lock();
        st.check_open()?;
        if flags & !(DGRAM_OFFLOAD_GSO | DGRAM_OFFLOAD_GRO) != 0 {
            return Err(Errno::INVAL);
        }
        let flags = flags & sys::offload_support();
        // GRO, once on, stays on: buffers the kernel coalesced while it was
        // on stay coalesced in its queue, and once the option is off it
        // hands them over without their segment size, as one datagram that
        // nobody could split (found by the fuzzer).
        if flags & DGRAM_OFFLOAD_GRO != 0 && !st.read_mode.gro {
            // Reads that start from now on split GRO buffers. One already
            // under way took the old mode, without control messages: the
            // kernel must not coalesce before it ends (found by the fuzzer:
            // a buffer read that way came as one datagram). No read is under
            // way when this runs on the reading thread, in a callback.
            st.read_mode.gro = true;
            st.read_waiters += 1;
            while st.reading {
                self.read_done.wait(&mut st);
            }
            st.read_waiters -= 1;
            if let Err(err) = sys::set_int_option(st.raw_fd()?, sys::SOL_UDP, sys::UDP_GRO, 1) {
                st.read_mode.gro = false;
                return Err(err.into());
            }
        }
        st.gso = flags & DGRAM_OFFLOAD_GSO != 0;
        Ok(st.offload_flags())
    }

    /// The offloads in effect now (GSO goes off by itself the first time
    /// the kernel refuses it).
    pub fn offload(&self) -> Result<u32> {
        let st = self.state.lock();
        st.check_open()?;
        Ok(st.offload_flags())
    }

    /// The metadata of the datagram being delivered, inside the socket's
    /// message callback; `DGRAM_EINVAL` anywhere else, or for a datagram
    /// read without metadata.
    pub fn message_meta(&self) -> Result<dgram_meta> {
        let meta =
            crate::event::current_meta(SocketHandle(self as *const Socket as *mut dgram_socket)).ok_or(Errno::INVAL)?;
        let mut out = dgram_meta {
            local: dgram_addr::NONE,
            ifindex: 0,
            ttl: 0,
            timestamp_sec: 0,
            timestamp_nsec: 0,
            has_local: false,
            has_ttl: false,
            has_timestamp: false,
            truncated: meta.truncated,
            gro_segment_size: meta.gro_segment,
        };
        if let Some((ip, ifindex)) = meta.local {
            let port = self.local_port.load(Ordering::Relaxed) as u16;
            let ip = match (self.family, ip) {
                // An IPv4 datagram on a dual-stack socket: as its source is shown.
                (Family::V6, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
                (_, ip) => ip,
            };
            let scope = match ip {
                IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => ifindex, // link-local
                _ => 0,
            };
            let local = match ip {
                IpAddr::V4(v4) => SocketAddr::from((v4, port)),
                IpAddr::V6(v6) => SocketAddr::V6(std::net::SocketAddrV6::new(v6, port, 0, scope)),
            };
            out.local = addr::to_c(&local);
            out.ifindex = ifindex;
            out.has_local = true;
        }
        if let Some(ttl) = meta.ttl {
            out.ttl = i32::from(ttl);
            out.has_ttl = true;
        }
        if let Some((sec, nsec)) = meta.timestamp {
            out.timestamp_sec = sec;
            out.timestamp_nsec = nsec;
            out.has_timestamp = true;
        }
        Ok(out)
    }
}
