//! The send side: a datagram written at once when the kernel takes it,
//! else queued and flushed by the I/O thread on EPOLLOUT, in sendmmsg calls
//! and UDP_SEGMENT runs; completions, and the send queue's figures.

use std::ffi::CStr;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use socket2::{SockAddr, SockRef};

use super::state::{QueuedSend, State, Target, SEND_QUEUE_MIN_COUNT};
use super::Socket;
use crate::context::Context;
use crate::error::{Errno, Result, DGRAM_EMSGSIZE};
use crate::event::{ErrorInfo, EventKind, UserPtr};
use crate::sys::{self, Outgoing, SEND_IOVS};
use crate::types::dgram_send_cb;

/// Datagrams one `dgram_send_batch` call may carry.
pub(crate) const SEND_BATCH_MAX: usize = crate::types::DGRAM_SEND_BATCH_MAX as usize;
const _: () = assert!(SEND_BATCH_MAX <= SEND_QUEUE_MIN_COUNT);

impl Socket {
    /// Sends one datagram made of `bufs`. The bytes are written or copied
    /// before this returns; the callback always comes later, from dispatch.
    pub fn send(
        self: &Arc<Self>,
        bufs: &[IoSlice<'_>],
        port: i32,
        address: Option<&CStr>,
        cb: dgram_send_cb,
        send_data: UserPtr,
    ) -> Result<()> {
        // The common path (bound, queue empty, no callback) touches no
        // reference count: the context is looked up only when needed, and
        // the fd is borrowed under the lock. A closed socket is EBADF here
        // whether or not its context is still there.
        let mut st = self.state.lock();
        st.check_open()?;
        let target = self.send_destination(&mut st, address, port)?;
        // Saturating: lengths come from the host, and a wrapped sum must not
        // slip under the size check.
        let length = bufs.iter().fold(0usize, |sum, b| sum.saturating_add(b.len()));
        if length > self.family.max_payload() {
            return Err(Errno(DGRAM_EMSGSIZE));
        }
        st.check_room()?;
        match target {
            Target::Addr(dest) if !st.has_deferred() => {
                self.send_locked(&mut st, bufs, Some(dest), length, cb, send_data)
            }
            Target::Peer if !st.has_deferred() => self.send_locked(&mut st, bufs, None, length, cb, send_data),
            target => {
                self.defer_send(&*self.context()?, &mut st, bufs, cb, send_data, target);
                Ok(())
            }
        }
    }

    /// Sends now if the kernel takes it, else queues it for the I/O thread.
    pub(super) fn send_locked(
        self: &Arc<Self>,
        st: &mut State,
        bufs: &[IoSlice<'_>],
        dest: Option<SocketAddr>,
        length: usize,
        cb: dgram_send_cb,
        send_data: UserPtr,
    ) -> Result<()> {
        if !st.is_bound() {
            self.ensure_bound(&*self.context()?, st)?;
        }
        if st.queued().is_empty() {
            let fd = st.fd()?;
            match send_datagram(fd, bufs, dest) {
                Ok(()) => {
                    if cb.is_some() {
                        let ctx = self.context()?;
                        self.complete_send(&ctx, st, cb, send_data, length, None);
                    } else {
                        self.count_send(length, None);
                    }
                    return Ok(());
                }
                Err(err) if is_transient(&err) => {}
                Err(err) => {
                    let ctx = self.context()?;
                    let error = self.send_error(st, Errno::from_io(&err).0, dest);
                    self.complete_send(&ctx, st, cb, send_data, length, Some(error));
                    return Ok(());
                }
            }
        }
        let mut data = st.spare_buffer();
        data.reserve(length);
        for buf in bufs {
            data.extend_from_slice(buf);
        }
        self.enqueue_send(st, data, dest, cb, send_data)
    }

    fn enqueue_send(
        self: &Arc<Self>,
        st: &mut State,
        data: Vec<u8>,
        dest: Option<SocketAddr>,
        cb: dgram_send_cb,
        send_data: UserPtr,
    ) -> Result<()> {
        let ctx = self.context()?;
        // Armed before queueing: if epoll refuses, the send fails whole
        // instead of sitting in a queue nobody flushes.
        if !st.writable_armed {
            ctx.set_write_interest(st.raw_fd()?, self.token, !st.read_paused, true)?;
            st.writable_armed = true;
        }
        st.push_queued(QueuedSend {
            data,
            dest,
            cb,
            send_data,
        });
        ctx.add_pending(1);
        Ok(())
    }

    /// `dgram_send_batch`: `datagrams` to one destination, in order, in as
    /// few system calls as the kernel allows (UDP_SEGMENT runs within
    /// sendmmsg calls). Accepted whole or not at all.
    pub fn send_batch(
        self: &Arc<Self>,
        datagrams: &[&[u8]],
        port: i32,
        address: Option<&CStr>,
        cb: dgram_send_cb,
        send_data: UserPtr,
    ) -> Result<()> {
        let mut st = self.state.lock();
        st.check_open()?;
        let target = self.send_destination(&mut st, address, port)?;
        if datagrams.iter().any(|d| d.len() > self.family.max_payload()) {
            return Err(Errno(DGRAM_EMSGSIZE));
        }
        if datagrams.len() > SEND_BATCH_MAX {
            return Err(Errno::INVAL);
        }
        let dest = match target {
            Target::Addr(dest) => Some(dest),
            Target::Peer => None,
            // One lookup per datagram would be absurd: connect once instead.
            Target::Name(..) => return Err(Errno::INVAL),
        };
        if datagrams.is_empty() {
            return Ok(());
        }
        st.check_room()?;
        let ctx = self.context()?;
        if st.has_deferred() {
            for datagram in datagrams {
                let target = dest.map_or(Target::Peer, Target::Addr);
                self.defer_send(&ctx, &mut st, &[IoSlice::new(datagram)], cb, send_data, target);
            }
            return Ok(());
        }
        self.ensure_bound(&ctx, &mut st)?;
        let mut rest = datagrams;
        if st.queued().is_empty() {
            let fd = st.raw_fd()?;
            let mut out = [Outgoing::default(); SEND_IOVS];
            while !rest.is_empty() {
                let count = rest.len().min(SEND_IOVS);
                for (slot, data) in out.iter_mut().zip(&rest[..count]) {
                    *slot = Outgoing { data, dest };
                }
                match transmit(&mut st, fd, &out[..count]) {
                    // Nothing taken, as if the kernel said EAGAIN: queue the rest.
                    Ok(0) => break,
                    Ok(sent) => {
                        for data in &rest[..sent] {
                            self.complete_send(&ctx, &mut st, cb, send_data, data.len(), None);
                        }
                        rest = &rest[sent..];
                    }
                    Err((err, _)) if is_transient(&err) => break,
                    Err((err, refused)) => {
                        let code = Errno::from_io(&err).0;
                        for data in &rest[..refused] {
                            let error = self.send_error(&st, code, dest);
                            self.complete_send(&ctx, &mut st, cb, send_data, data.len(), Some(error));
                        }
                        rest = &rest[refused..];
                    }
                }
            }
        }
        for datagram in rest {
            let mut data = st.spare_buffer();
            data.extend_from_slice(datagram);
            self.enqueue_send(&mut st, data, dest, cb, send_data)?;
        }
        Ok(())
    }

    /// The error of a send to `dest` (the peer when `None`).
    pub(super) fn send_error(&self, st: &State, code: i32, dest: Option<SocketAddr>) -> ErrorInfo {
        ErrorInfo::new(code, c"send", dest.or(st.peer_addr()))
    }

    /// Reports the end of one send: its callback if it has one, else an
    /// 'error' event if it failed, else nothing.
    pub(super) fn complete_send(
        self: &Arc<Self>,
        ctx: &Context,
        st: &mut State,
        cb: dgram_send_cb,
        send_data: UserPtr,
        length: usize,
        error: Option<ErrorInfo>,
    ) {
        self.count_send(length, error.as_ref().map(|e| e.code));
        if cb.is_some() {
            self.push(
                ctx,
                st,
                EventKind::SendDone {
                    cb,
                    send_data,
                    length,
                    error,
                },
            );
        } else if let Some(info) = error {
            self.push(ctx, st, EventKind::Error(info));
        }
    }

    fn count_send(&self, length: usize, error: Option<i32>) {
        if error.is_some() {
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_sent.fetch_add(length as u64, Ordering::Relaxed);
        }
    }

    /// Writes queued datagrams while the kernel takes them, in sendmmsg
    /// calls of up to `SEND_IOVS` datagrams, runs of equal ones to one
    /// destination as UDP_SEGMENT writes (I/O thread, on EPOLLOUT).
    pub fn flush(self: &Arc<Self>, ctx: &Context) {
        let mut st = self.state.lock();
        if st.is_closed() {
            return;
        }
        let Ok(fd) = st.raw_fd() else { return };
        let _hold = ctx.hold();
        while !st.queued().is_empty() {
            let mut out = [Outgoing::default(); SEND_IOVS];
            let count = st.queued().len().min(SEND_IOVS);
            for (slot, send) in out.iter_mut().zip(st.queued().iter()) {
                *slot = Outgoing {
                    data: &send.data,
                    dest: send.dest,
                };
            }
            // The borrow of the queue ends with the call: `out` only points
            // into buffers the queue owns, which nothing else touches here.
            let result = sys::send_mmsg(fd, &out[..count], st.gso);
            let (done, error) = match result {
                Ok(0) => return, // As EAGAIN: still armed for EPOLLOUT.
                Ok(sent) => (sent, None),
                Err((err, _)) if is_transient(&err) => return, // Still armed for EPOLLOUT.
                Err((err, refused)) if st.gso && refused > 1 && is_gso_refusal(&err) => {
                    st.gso = false;
                    continue;
                }
                // The first write was refused: its datagrams complete with the error.
                Err((err, refused)) => (refused, Some(Errno::from_io(&err).0)),
            };
            for _ in 0..done {
                let sent = st.pop_queued().expect("sent only what was queued");
                ctx.add_pending(-1);
                let error = error.map(|code| self.send_error(&st, code, sent.dest));
                self.complete_send(ctx, &mut st, sent.cb, sent.send_data, sent.data.len(), error);
                st.recycle(sent.data);
            }
        }
        if st.writable_armed && ctx.set_write_interest(fd, self.token, !st.read_paused, false).is_ok() {
            st.writable_armed = false;
        }
    }

    /// Bytes and datagrams accepted but not yet handed to the kernel:
    /// queued for the I/O thread, or waiting for a lookup.
    pub fn send_queue_figures(&self) -> Result<(usize, usize)> {
        let st = self.state.lock();
        st.check_open()?;
        Ok(st.queue_figures())
    }
}

/// One non-blocking sendmsg; EINTR is retried here.
fn send_datagram(fd: &UdpSocket, bufs: &[IoSlice<'_>], dest: Option<SocketAddr>) -> io::Result<()> {
    let dest = dest.map(SockAddr::from);
    // An empty datagram goes out as one empty piece, never as zero pieces:
    // qemu-user (our Raspberry Pi test bed, and some emulated firmware
    // targets) answers sendmsg with msg_iovlen 0 by reporting success
    // without sending anything.
    let bufs = if bufs.is_empty() {
        &[IoSlice::new(&[])][..]
    } else {
        bufs
    };
    loop {
        let sent = match &dest {
            Some(dest) => SockRef::from(fd).send_to_vectored(bufs, dest),
            None => SockRef::from(fd).send_vectored(bufs),
        };
        match sent {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(drop),
        }
    }
}

/// Writes `out` with sendmmsg (see `sys::send_mmsg`), in UDP_SEGMENT runs
/// while the socket's `gso` holds; the first time the kernel refuses a run,
/// `gso` goes off for good and the write is tried again without.
fn transmit(st: &mut State, fd: RawFd, out: &[Outgoing<'_>]) -> std::result::Result<usize, (io::Error, usize)> {
    loop {
        match sys::send_mmsg(fd, out, st.gso) {
            Err((err, refused)) if st.gso && refused > 1 && is_gso_refusal(&err) => st.gso = false,
            other => return other,
        }
    }
}

/// How a kernel or device without (working) segmentation offload answers a
/// UDP_SEGMENT write: EIO (no checksum offload on the route's device),
/// EINVAL (segment larger than the path's MTU), ENOPROTOOPT/EOPNOTSUPP.
fn is_gso_refusal(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// The kernel has no room right now: keep the datagram and retry on EPOLLOUT.
fn is_transient(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::ENOBUFS)
}
