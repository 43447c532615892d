//! The socket state machine: created → bound → closed (→ silenced once the
//! host frees it or its context goes), its send queue, and the accounting
//! that tells the host loop whether anything is left to do.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, SockRef, Type};

use crate::addr::{self, Family};
use crate::context::Context;
use crate::error::{Errno, Result, DGRAM_EALREADY, DGRAM_ECANCELED, DGRAM_EMSGSIZE, DGRAM_ENOBUFS};
use crate::event::{ErrorInfo, Event, EventKind, Handlers, UserPtr};
use crate::types::{dgram_addr, dgram_error_cb, dgram_event_cb, dgram_message_cb, dgram_send_cb};

/// A socket accepts at least this many datagrams waiting to be written...
const SEND_QUEUE_MIN_COUNT: usize = 1024;
/// ...and at least this many bytes, before `dgram_send` answers `DGRAM_ENOBUFS`.
const SEND_QUEUE_MIN_BYTES: usize = 1 << 20;
/// Hard cap on queued datagrams, so a flood of empty datagrams stays bounded.
const SEND_QUEUE_MAX_COUNT: usize = 65536;

/// Completions (send callbacks, errors) of one socket that may wait for
/// dispatch: a host that sends without ever dispatching gets `DGRAM_ENOBUFS`
/// instead of growing memory without bound.
const MAX_UNDELIVERED_COMPLETIONS: i64 = 65536;

/// How the host asked for the socket to be made.
#[derive(Clone, Copy, Debug)]
pub struct SocketConfig {
    pub family: Family,
    pub reuse_addr: bool,
    pub ipv6_only: bool,
    pub recv_buffer_size: usize,
    pub send_buffer_size: usize,
}

struct QueuedSend {
    data: Vec<u8>,
    dest: SocketAddr,
    cb: dgram_send_cb,
    send_data: UserPtr,
}

struct State {
    /// The OS socket; `None` once closed. Shared with the I/O thread for the
    /// duration of a read, so a close never pulls the fd out from under it.
    fd: Option<Arc<UdpSocket>>,
    bound: bool,
    closed: bool,
    /// Freed by the host, or its context freed: no callback of any kind.
    silenced: bool,
    writable_armed: bool,
    send_queue: VecDeque<QueuedSend>,
    queued_bytes: usize,
    /// Queued 'message' and 'listening' events that still count as activity.
    pending_data: i64,
    /// Queued completions (send callbacks, 'error', 'close') that still count.
    pending_completions: i64,
    handlers: Handlers,
}

pub struct Socket {
    ctx: Weak<Context>,
    token: u64,
    family: Family,
    state: Mutex<State>,
}

impl Socket {
    /// Makes the OS socket on the calling thread (so in that thread's network
    /// namespace) and registers it with the context.
    pub fn create(
        ctx: &Arc<Context>,
        config: SocketConfig,
        on_message: dgram_message_cb,
        userdata: UserPtr,
    ) -> Result<Arc<Socket>> {
        let domain = match config.family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let raw = socket2::Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        raw.set_nonblocking(true)?;
        if config.reuse_addr {
            raw.set_reuse_address(true)?;
        }
        if config.family == Family::V6 {
            // Set explicitly either way: the system default (bindv6only) varies.
            raw.set_only_v6(config.ipv6_only)?;
        }
        if config.recv_buffer_size > 0 {
            raw.set_recv_buffer_size(config.recv_buffer_size)?;
        }
        if config.send_buffer_size > 0 {
            raw.set_send_buffer_size(config.send_buffer_size)?;
        }
        let token = ctx.new_token();
        let socket = Arc::new(Socket {
            ctx: Arc::downgrade(ctx),
            token,
            family: config.family,
            state: Mutex::new(State {
                fd: Some(Arc::new(UdpSocket::from(raw))),
                bound: false,
                closed: false,
                silenced: false,
                writable_armed: false,
                send_queue: VecDeque::new(),
                queued_bytes: 0,
                pending_data: 0,
                pending_completions: 0,
                handlers: Handlers {
                    on_message,
                    on_listening: None,
                    on_close: None,
                    on_error: None,
                    userdata,
                },
            }),
        });
        ctx.register(token, Arc::clone(&socket));
        Ok(socket)
    }

    /// The context, or `DGRAM_EBADF` once it is gone (its sockets are closed then).
    fn context(&self) -> Result<Arc<Context>> {
        self.ctx.upgrade().ok_or(Errno::BADF)
    }

    // ---- handlers ----------------------------------------------------------

    fn set_handler(&self, set: impl FnOnce(&mut Handlers)) -> Result<()> {
        let mut st = self.state.lock();
        st.check_open()?;
        set(&mut st.handlers);
        Ok(())
    }

    pub fn on_message(&self, cb: dgram_message_cb) -> Result<()> {
        self.set_handler(|h| h.on_message = cb)
    }

    pub fn on_listening(&self, cb: dgram_event_cb) -> Result<()> {
        self.set_handler(|h| h.on_listening = cb)
    }

    pub fn on_close(&self, cb: dgram_event_cb) -> Result<()> {
        self.set_handler(|h| h.on_close = cb)
    }

    pub fn on_error(&self, cb: dgram_error_cb) -> Result<()> {
        self.set_handler(|h| h.on_error = cb)
    }

    // ---- events --------------------------------------------------------------

    /// Counts and queues an event of this socket. Called with the state lock
    /// held, so the count and the close/free bookkeeping cannot interleave.
    fn push(self: &Arc<Self>, ctx: &Context, st: &mut State, kind: EventKind) {
        if kind.is_completion() {
            st.pending_completions += 1;
        } else {
            st.pending_data += 1;
        }
        ctx.add_pending(1);
        ctx.enqueue(Event {
            socket: Arc::clone(self),
            kind,
        });
    }

    /// Decides, at dispatch, whether a dequeued event still reaches the host,
    /// and uncounts it. Returns the handlers to call, or `None` to drop it
    /// (a datagram or 'listening' after close; anything after free).
    pub fn admit(&self, kind: &EventKind, ctx: &Context) -> Option<Handlers> {
        let mut st = self.state.lock();
        if st.silenced {
            return None;
        }
        if kind.is_completion() {
            st.pending_completions -= 1;
        } else {
            if st.closed {
                // Uncounted already, when the socket closed.
                return None;
            }
            st.pending_data -= 1;
        }
        ctx.add_pending(-1);
        Some(st.handlers)
    }

    // ---- bind ----------------------------------------------------------------

    pub fn bind(self: &Arc<Self>, port: i32, address: Option<&CStr>, once: dgram_event_cb) -> Result<()> {
        let ctx = self.context()?;
        let mut st = self.state.lock();
        st.check_open()?;
        let target = addr::bind_target(address, port, self.family, st.fd()?.as_raw_fd())?;
        if st.bound {
            return Err(Errno(DGRAM_EALREADY));
        }
        self.bind_locked(&ctx, &mut st, target)?;
        self.push(&ctx, &mut st, EventKind::Listening { once });
        Ok(())
    }

    fn bind_locked(&self, ctx: &Context, st: &mut State, target: SocketAddr) -> Result<()> {
        let fd = st.fd()?;
        SockRef::from(&*fd).bind(&SockAddr::from(target))?;
        ctx.watch(fd.as_raw_fd(), self.token, false)?;
        st.bound = true;
        ctx.add_bound(1);
        Ok(())
    }

    pub fn address(&self) -> Result<dgram_addr> {
        let st = self.state.lock();
        st.check_open()?;
        if !st.bound {
            return Err(Errno::BADF);
        }
        let local = st.fd()?.local_addr()?;
        Ok(addr::to_c(&local))
    }

    pub fn fileno(&self) -> Result<i32> {
        let st = self.state.lock();
        st.check_open()?;
        Ok(st.fd()?.as_raw_fd())
    }

    // ---- send ----------------------------------------------------------------

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
        let ctx = self.context()?;
        let mut st = self.state.lock();
        st.check_open()?;
        let fd = st.fd()?;
        let dest = addr::send_target(address, port, self.family, fd.as_raw_fd())?;
        // Saturating: lengths come from the host, and a wrapped sum must not
        // slip under the size check.
        let length = bufs.iter().fold(0usize, |sum, b| sum.saturating_add(b.len()));
        if length > self.family.max_payload() {
            return Err(Errno(DGRAM_EMSGSIZE));
        }
        if !st.send_queue.is_empty() && st.send_queue_full() || st.pending_completions >= MAX_UNDELIVERED_COMPLETIONS {
            return Err(Errno(DGRAM_ENOBUFS));
        }
        if !st.bound {
            self.bind_locked(&ctx, &mut st, self.family.unspecified(0))?;
            self.push(&ctx, &mut st, EventKind::Listening { once: None });
        }
        if st.send_queue.is_empty() {
            match send_datagram(&fd, bufs, dest) {
                Ok(()) => {
                    self.complete_send(&ctx, &mut st, cb, send_data, length, dest, None);
                    return Ok(());
                }
                Err(err) if is_transient(&err) => {}
                Err(err) => {
                    let code = Errno::from_io(&err).0;
                    self.complete_send(&ctx, &mut st, cb, send_data, length, dest, Some(code));
                    return Ok(());
                }
            }
        }
        // Armed before queueing: if epoll refuses, the send fails whole
        // instead of sitting in a queue nobody flushes.
        if !st.writable_armed {
            ctx.rewatch(fd.as_raw_fd(), self.token, true)?;
            st.writable_armed = true;
        }
        let mut data = Vec::with_capacity(length);
        for buf in bufs {
            data.extend_from_slice(buf);
        }
        st.queued_bytes += data.len();
        st.send_queue.push_back(QueuedSend {
            data,
            dest,
            cb,
            send_data,
        });
        ctx.add_pending(1);
        Ok(())
    }

    /// Reports the end of one send: its callback if it has one, else an
    /// 'error' event if it failed, else nothing.
    #[allow(clippy::too_many_arguments)]
    fn complete_send(
        self: &Arc<Self>,
        ctx: &Context,
        st: &mut State,
        cb: dgram_send_cb,
        send_data: UserPtr,
        length: usize,
        dest: SocketAddr,
        error: Option<i32>,
    ) {
        let error = error.map(|code| ErrorInfo {
            code,
            syscall: c"send",
            addr: Some(dest),
        });
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

    /// Writes queued datagrams while the kernel takes them (I/O thread, on EPOLLOUT).
    pub fn flush(self: &Arc<Self>, ctx: &Context) {
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        let Ok(fd) = st.fd() else { return };
        while let Some(next) = st.send_queue.front() {
            let result = send_datagram(&fd, &[IoSlice::new(&next.data)], next.dest);
            if matches!(&result, Err(err) if is_transient(err)) {
                return; // Still armed for EPOLLOUT: the rest goes when the kernel has room.
            }
            let sent = st.send_queue.pop_front().expect("front() was Some");
            st.queued_bytes -= sent.data.len();
            ctx.add_pending(-1);
            let error = result.err().map(|err| Errno::from_io(&err).0);
            self.complete_send(ctx, &mut st, sent.cb, sent.send_data, sent.data.len(), sent.dest, error);
        }
        if st.writable_armed && ctx.rewatch(fd.as_raw_fd(), self.token, false).is_ok() {
            st.writable_armed = false;
        }
    }

    // ---- receive -------------------------------------------------------------

    /// Reads up to `budget` datagrams (I/O thread, on EPOLLIN).
    pub fn receive(self: &Arc<Self>, ctx: &Context, buf: &mut [u8], budget: usize) {
        let fd = {
            let st = self.state.lock();
            match (&st.fd, st.closed) {
                (Some(fd), false) => Arc::clone(fd),
                _ => return,
            }
        };
        for _ in 0..budget {
            match fd.recv_from(buf) {
                // An IPv4 sender on a dual-stack udp6 socket arrives as
                // ::ffff:a.b.c.d, as in Node.
                Ok((len, from)) => {
                    let mut st = self.state.lock();
                    if st.closed {
                        return;
                    }
                    if !ctx.has_room_for_message() {
                        continue; // Dropped: the host is not keeping up.
                    }
                    let data = buf[..len].to_vec();
                    self.push(ctx, &mut st, EventKind::Message { data, from });
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    let mut st = self.state.lock();
                    if !st.closed {
                        let info = ErrorInfo {
                            code: Errno::from_io(&err).0,
                            syscall: c"recvmsg",
                            addr: None,
                        };
                        self.push(ctx, &mut st, EventKind::Error(info));
                    }
                    return;
                }
            }
        }
    }

    // ---- close and free --------------------------------------------------------

    /// `dgram_close`: no datagram is delivered after this returns; queued
    /// sends complete with `DGRAM_ECANCELED`, then 'close' comes.
    pub fn close(self: &Arc<Self>, once: dgram_event_cb) -> Result<()> {
        let ctx = self.context()?;
        // Waits for a callback running on another thread, so that none of
        // this socket's datagrams is delivered after close returns.
        let _callbacks = ctx.callback_lock();
        let mut st = self.state.lock();
        st.check_open()?;
        self.close_locked(&ctx, &mut st, true);
        self.push(&ctx, &mut st, EventKind::Close { once });
        Ok(())
    }

    fn close_locked(self: &Arc<Self>, ctx: &Context, st: &mut State, report: bool) {
        st.closed = true;
        if let Some(fd) = st.fd.take() {
            if st.bound {
                ctx.unwatch(fd.as_raw_fd());
                ctx.add_bound(-1);
            }
            // The fd itself closes when the I/O thread drops its clone, if it
            // is reading right now; it can no longer be reached from here.
        }
        // Queued datagrams and 'listening' no longer keep the host alive.
        ctx.add_pending(-st.pending_data);
        st.pending_data = 0;
        let cancelled = std::mem::take(&mut st.send_queue);
        st.queued_bytes = 0;
        ctx.add_pending(-(cancelled.len() as i64));
        if report {
            for send in cancelled {
                if send.cb.is_some() {
                    let error = ErrorInfo {
                        code: DGRAM_ECANCELED,
                        syscall: c"send",
                        addr: Some(send.dest),
                    };
                    let kind = EventKind::SendDone {
                        cb: send.cb,
                        send_data: send.send_data,
                        length: send.data.len(),
                        error: Some(error),
                    };
                    self.push(ctx, st, kind);
                }
            }
        }
        ctx.unregister(self.token);
    }

    /// Closes without any further callback and uncounts everything still
    /// queued: `dgram_socket_free` on an open socket, or `dgram_context_free`.
    pub fn silence(self: &Arc<Self>, ctx: &Context) {
        let _callbacks = ctx.callback_lock();
        let mut st = self.state.lock();
        if !st.closed {
            self.close_locked(ctx, &mut st, false);
        }
        if !st.silenced {
            st.silenced = true;
            ctx.add_pending(-st.pending_completions);
            st.pending_completions = 0;
        }
    }

    /// Freed by the host or by its context: no callback may run any more.
    pub fn is_silenced(&self) -> bool {
        self.state.lock().silenced
    }

    /// `dgram_socket_free`: the host lets go of its handle.
    pub fn release(self: Arc<Self>) {
        if let Some(ctx) = self.ctx.upgrade() {
            self.silence(&ctx);
        }
    }

    // ---- options -----------------------------------------------------------------

    /// Runs `f` on the open socket's fd, mapping OS errors to codes.
    fn with_fd<T>(&self, f: impl FnOnce(SockRef<'_>) -> io::Result<T>) -> Result<T> {
        let st = self.state.lock();
        st.check_open()?;
        let fd = st.fd()?;
        f(SockRef::from(&*fd)).map_err(Errno::from)
    }

    /// `DGRAM_EBADF` once closed: checked before any argument, so that a
    /// closed socket answers EBADF whatever else is wrong with the call.
    pub fn ensure_open(&self) -> Result<()> {
        self.state.lock().check_open()
    }

    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        self.with_fd(|s| s.set_broadcast(on))
    }

    pub fn set_ttl(&self, ttl: i32) -> Result<()> {
        self.ensure_open()?;
        if !(1..=255).contains(&ttl) {
            return Err(Errno::INVAL);
        }
        match self.family {
            Family::V4 => self.with_fd(|s| s.set_ttl_v4(ttl as u32)),
            Family::V6 => self.with_fd(|s| s.set_unicast_hops_v6(ttl as u32)),
        }
    }

    pub fn set_multicast_ttl(&self, ttl: i32) -> Result<()> {
        self.ensure_open()?;
        if !(0..=255).contains(&ttl) {
            return Err(Errno::INVAL);
        }
        match self.family {
            Family::V4 => self.with_fd(|s| s.set_multicast_ttl_v4(ttl as u32)),
            Family::V6 => self.with_fd(|s| s.set_multicast_hops_v6(ttl as u32)),
        }
    }

    pub fn set_multicast_loopback(&self, on: bool) -> Result<()> {
        match self.family {
            Family::V4 => self.with_fd(|s| s.set_multicast_loop_v4(on)),
            Family::V6 => self.with_fd(|s| s.set_multicast_loop_v6(on)),
        }
    }

    /// Joins (`join == true`) or leaves a multicast group.
    pub fn membership(&self, group: Option<&CStr>, iface: Option<&CStr>, join: bool) -> Result<()> {
        let st = self.state.lock();
        st.check_open()?;
        let fd = st.fd()?;
        let socket = SockRef::from(&*fd);
        let group = addr::multicast_group(group.ok_or(Errno::INVAL)?, self.family, fd.as_raw_fd())?;
        let result = match group {
            IpAddr::V4(group) => {
                let iface = addr::membership_interface_v4(iface)?;
                if join {
                    socket.join_multicast_v4(&group, &iface)
                } else {
                    socket.leave_multicast_v4(&group, &iface)
                }
            }
            IpAddr::V6(group) => {
                let index = addr::membership_interface_v6(iface, fd.as_raw_fd())?;
                if join {
                    socket.join_multicast_v6(&group, index)
                } else {
                    socket.leave_multicast_v6(&group, index)
                }
            }
        };
        result.map_err(Errno::from)
    }
}

impl State {
    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Errno::BADF)
        } else {
            Ok(())
        }
    }

    fn fd(&self) -> Result<Arc<UdpSocket>> {
        self.fd.clone().ok_or(Errno::BADF)
    }

    fn send_queue_full(&self) -> bool {
        send_queue_full(self.send_queue.len(), self.queued_bytes)
    }
}

/// Whether a send queue holding `count` datagrams of `bytes` in all takes no
/// more: it always takes 1024 datagrams whatever their size, and any number
/// while under 1 MiB, up to a hard cap on the count.
fn send_queue_full(count: usize, bytes: usize) -> bool {
    count >= SEND_QUEUE_MAX_COUNT || (count >= SEND_QUEUE_MIN_COUNT && bytes >= SEND_QUEUE_MIN_BYTES)
}

/// One non-blocking sendmsg; EINTR is retried here.
fn send_datagram(fd: &UdpSocket, bufs: &[IoSlice<'_>], dest: SocketAddr) -> io::Result<()> {
    let dest = SockAddr::from(dest);
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
        match SockRef::from(fd).send_to_vectored(bufs, &dest) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(drop),
        }
    }
}

/// The kernel has no room right now: keep the datagram and retry on EPOLLOUT.
fn is_transient(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::ENOBUFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_queue_bounds() {
        // 1024 of the largest datagrams fit, whatever their total size.
        assert!(!send_queue_full(1023, 1023 * 65507));
        assert!(send_queue_full(1024, 1024 * 65507));
        // Small datagrams: any count while under 1 MiB...
        assert!(!send_queue_full(5000, 5000 * 64));
        assert!(send_queue_full(20000, 20000 * 64));
        // ...but never more than the hard cap, even when empty.
        assert!(!send_queue_full(SEND_QUEUE_MAX_COUNT - 1, 0));
        assert!(send_queue_full(SEND_QUEUE_MAX_COUNT, 0));
    }
}
