//! The socket state machine: created → bound → closed (→ silenced once the
//! host frees it or its context goes), its send queue, and the accounting
//! that tells the host loop whether anything is left to do.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, SockRef, Type};

use crate::addr::{self, Family};
use crate::batch::{RecvBatch, BATCH_SLOTS};
use crate::context::Context;
use crate::error::{Errno, Result, DGRAM_EALREADY, DGRAM_ECANCELED, DGRAM_EMSGSIZE, DGRAM_ENOBUFS};
use crate::event::{ErrorInfo, Event, EventKind, Handlers, UserPtr};
use crate::sys::{self, MMSG_BATCH};
use crate::types::{dgram_addr, dgram_error_cb, dgram_event_cb, dgram_message_cb, dgram_send_cb, dgram_stats};

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

/// The fewest slots a read offers.
const MIN_READ_SLOTS: usize = 8;

/// Send buffers a socket keeps for reuse, and the largest it keeps.
const SPARE_BUFFERS: usize = 64;
const SPARE_BUFFER_MAX_BYTES: usize = 2048;

/// A placeholder address, for array slots that are never sent.
const UNSPECIFIED_V4: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

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
    /// Not watched for datagrams while the context's queue is full.
    read_paused: bool,
    send_queue: VecDeque<QueuedSend>,
    queued_bytes: usize,
    /// The destination of the last send, parsed: a socket mostly sends to
    /// one peer, and parsing the address text costs more than the send's
    /// own user-space work.
    last_destination: DestinationCache,
    /// Buffers of datagrams that were queued and are sent, kept for the next
    /// ones so that a socket that often meets a full kernel buffer does not
    /// allocate per datagram.
    spare_buffers: Vec<Vec<u8>>,
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
    /// Changes whenever the handlers change or the socket closes, so that
    /// delivering a run of datagrams needs the state lock only once.
    epoch: AtomicU32,
    /// How many slots the next read offers (I/O thread only): see
    /// `update_read_hint`.
    read_hint: AtomicUsize,
    counters: Counters,
}

/// What `dgram_socket_stats` reports, kept as it happens.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    bytes_received: AtomicU64,
    sent: AtomicU64,
    bytes_sent: AtomicU64,
    send_errors: AtomicU64,
    /// The kernel's drop count, read when the socket closed.
    final_kernel_drops: AtomicU64,
}

/// A socket's handlers as admitted for a run of datagrams, and the epoch
/// they are valid for.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    pub handlers: Handlers,
    pub epoch: u32,
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
                read_paused: false,
                send_queue: VecDeque::new(),
                queued_bytes: 0,
                spare_buffers: Vec::new(),
                last_destination: DestinationCache::default(),
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
            epoch: AtomicU32::new(0),
            read_hint: AtomicUsize::new(BATCH_SLOTS),
            counters: Counters::default(),
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
        self.bump_epoch();
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

    /// Admits a run of `count` datagrams for delivery and uncounts them, or
    /// `None` if the socket is closed or freed (they were uncounted then).
    pub fn admit_run(&self, count: usize, ctx: &Context) -> Option<Admitted> {
        let mut st = self.state.lock();
        if st.silenced || st.closed {
            return None;
        }
        st.pending_data -= count as i64;
        ctx.add_pending(-(count as i64));
        Some(Admitted {
            handlers: st.handlers,
            epoch: self.epoch(),
        })
    }

    /// Counts again `count` admitted datagrams that were not delivered after
    /// all (dispatch stopped at its `max`).
    pub fn recount(&self, count: usize, ctx: &Context) {
        let mut st = self.state.lock();
        if !st.closed {
            st.pending_data += count as i64;
            ctx.add_pending(count as i64);
        }
    }

    /// The handlers now, or `None` once closed or freed.
    pub fn current_handlers(&self) -> Option<Admitted> {
        let st = self.state.lock();
        (!st.silenced && !st.closed).then(|| Admitted {
            handlers: st.handlers,
            epoch: self.epoch(),
        })
    }

    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Called with the state lock held.
    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
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
        ctx.watch(fd.as_raw_fd(), self.token)?;
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
        // The common path (bound, queue empty, no callback) touches no
        // reference count: the context is looked up only when needed, and
        // the fd is borrowed under the lock. A closed socket is EBADF here
        // whether or not its context is still there.
        let mut st = self.state.lock();
        st.check_open()?;
        let raw_fd = st.fd.as_ref().ok_or(Errno::BADF)?.as_raw_fd();
        let dest = match st.last_destination.lookup(address, port) {
            Some(dest) => dest,
            None => {
                let dest = addr::send_target(address, port, self.family, raw_fd)?;
                st.last_destination.remember(address, port, dest);
                dest
            }
        };
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
            let ctx = self.context()?;
            self.bind_locked(&ctx, &mut st, self.family.unspecified(0))?;
            self.push(&ctx, &mut st, EventKind::Listening { once: None });
        }
        if st.send_queue.is_empty() {
            let fd = st.fd.as_deref().ok_or(Errno::BADF)?;
            match send_datagram(fd, bufs, dest) {
                Ok(()) => {
                    if cb.is_some() {
                        let ctx = self.context()?;
                        self.complete_send(&ctx, &mut st, cb, send_data, length, dest, None);
                    } else {
                        self.count_send(length, None);
                    }
                    return Ok(());
                }
                Err(err) if is_transient(&err) => {}
                Err(err) => {
                    let code = Errno::from_io(&err).0;
                    let ctx = self.context()?;
                    self.complete_send(&ctx, &mut st, cb, send_data, length, dest, Some(code));
                    return Ok(());
                }
            }
        }
        let ctx = self.context()?;
        // Armed before queueing: if epoll refuses, the send fails whole
        // instead of sitting in a queue nobody flushes.
        if !st.writable_armed {
            ctx.rewatch(raw_fd, self.token, !st.read_paused, true)?;
            st.writable_armed = true;
        }
        let mut data = st.spare_buffers.pop().unwrap_or_default();
        data.reserve(length);
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
        self.count_send(length, error);
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

    /// Writes queued datagrams while the kernel takes them, up to
    /// `MMSG_BATCH` per sendmmsg (I/O thread, on EPOLLOUT).
    pub fn flush(self: &Arc<Self>, ctx: &Context) {
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        let Ok(fd) = st.fd() else { return };
        while !st.send_queue.is_empty() {
            let mut batch: [(&[u8], SocketAddr); MMSG_BATCH] = [(&[], UNSPECIFIED_V4); MMSG_BATCH];
            let count = st.send_queue.len().min(MMSG_BATCH);
            for (slot, send) in batch.iter_mut().zip(st.send_queue.iter()) {
                *slot = (&send.data, send.dest);
            }
            let result = sys::send_mmsg(fd.as_raw_fd(), &batch[..count]);
            let (sent, error) = match result {
                Ok(sent) => (sent, None),
                Err(err) if is_transient(&err) => return, // Still armed for EPOLLOUT.
                // The first one was refused: it completes with the error.
                Err(err) => (1, Some(Errno::from_io(&err).0)),
            };
            for _ in 0..sent {
                let done = st.send_queue.pop_front().expect("sent only what was queued");
                st.queued_bytes -= done.data.len();
                ctx.add_pending(-1);
                self.complete_send(ctx, &mut st, done.cb, done.send_data, done.data.len(), done.dest, error);
                st.recycle(done.data);
            }
        }
        if st.writable_armed && ctx.rewatch(fd.as_raw_fd(), self.token, !st.read_paused, false).is_ok() {
            st.writable_armed = false;
        }
    }

    // ---- receive -------------------------------------------------------------

    /// The fd to read from (I/O thread, on EPOLLIN), or `None` once closed.
    /// The I/O thread's clone keeps the fd open through a read that races a
    /// close.
    pub fn reader_fd(&self) -> Option<Arc<UdpSocket>> {
        let st = self.state.lock();
        if st.closed {
            return None;
        }
        st.fd.clone()
    }

    /// Counts and queues the `count` datagrams just read into `*batch`, or
    /// empties it if the socket closed meanwhile (they are then nobody's).
    pub fn accept_batch(&self, ctx: &Context, batch: &mut Option<Box<RecvBatch>>, count: usize) {
        let mut st = self.state.lock();
        if st.closed {
            if let Some(batch) = batch.as_mut() {
                drop(st);
                batch.clear();
            }
            return;
        }
        st.pending_data += count as i64;
        ctx.add_pending(count as i64);
        // Under the state lock, like `push`: a close cannot slip between the
        // count and the queueing.
        ctx.publish_batch(batch, count);
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

    fn count_send(&self, length: usize, error: Option<i32>) {
        if error.is_some() {
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_sent.fetch_add(length as u64, Ordering::Relaxed);
        }
    }

    /// `dgram_socket_stats`: valid open or closed.
    pub fn stats(&self) -> dgram_stats {
        let kernel_drops = {
            let st = self.state.lock();
            match &st.fd {
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

    /// Stops watching for datagrams (I/O thread, the queue being full);
    /// false if already stopped or closed.
    pub fn pause_reading(&self, ctx: &Context) -> bool {
        let mut st = self.state.lock();
        let Some(fd) = st.fd.as_ref().filter(|_| !st.closed && !st.read_paused) else {
            return false;
        };
        if ctx
            .rewatch(fd.as_raw_fd(), self.token, false, st.writable_armed)
            .is_err()
        {
            return false;
        }
        st.read_paused = true;
        true
    }

    /// Watches for datagrams again (I/O thread, once there is room).
    pub fn resume_reading(&self, ctx: &Context) {
        let mut st = self.state.lock();
        let Some(fd) = st.fd.as_ref().filter(|_| !st.closed && st.read_paused) else {
            return;
        };
        if ctx.rewatch(fd.as_raw_fd(), self.token, true, st.writable_armed).is_ok() {
            st.read_paused = false;
        }
    }

    /// A read failed with something other than EAGAIN: the host hears of it
    /// as an 'error' event.
    pub fn report_receive_error(self: &Arc<Self>, ctx: &Context, err: &io::Error) {
        let mut st = self.state.lock();
        if !st.closed {
            let info = ErrorInfo {
                code: Errno::from_io(err).0,
                syscall: c"recvmsg",
                addr: None,
            };
            self.push(ctx, &mut st, EventKind::Error(info));
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
        self.bump_epoch();
        if let Some(fd) = st.fd.take() {
            let drops = sys::socket_drops(fd.as_raw_fd());
            self.counters
                .final_kernel_drops
                .store(u64::from(drops), Ordering::Relaxed);
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
        self.counters
            .send_errors
            .fetch_add(cancelled.len() as u64, Ordering::Relaxed);
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
            self.bump_epoch();
            ctx.add_pending(-st.pending_completions);
            st.pending_completions = 0;
        }
    }

    /// Freed by the host, or its context freed: no callback may run any
    /// more. The context is asked too: a socket that had already closed is
    /// no longer among those its free silences, and a callback of its
    /// 'close' may be the one freeing the context (found by the fuzzer).
    pub fn is_silenced(&self) -> bool {
        self.state.lock().silenced || self.ctx.upgrade().map_or(true, |ctx| ctx.is_freed())
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

    fn recycle(&mut self, mut buffer: Vec<u8>) {
        // Only buffers of ordinary size, and not too many: what a socket
        // keeps in reserve must stay small next to its queue bound.
        if self.spare_buffers.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_BUFFER_MAX_BYTES {
            buffer.clear();
            self.spare_buffers.push(buffer);
        }
    }

    fn send_queue_full(&self) -> bool {
        send_queue_full(self.send_queue.len(), self.queued_bytes)
    }
}

/// The last destination text and port a socket sent to, and what they
/// parsed to. Only zone-free addresses are kept: a zone names an interface,
/// whose index can change from one send to the next.
struct DestinationCache {
    text: [u8; DESTINATION_CACHE_BYTES],
    /// Length of `text`; 0 when nothing is cached.
    len: usize,
    port: i32,
    dest: Option<SocketAddr>,
}

const DESTINATION_CACHE_BYTES: usize = 48;

impl Default for DestinationCache {
    fn default() -> Self {
        DestinationCache {
            text: [0; DESTINATION_CACHE_BYTES],
            len: 0,
            port: 0,
            dest: None,
        }
    }
}

impl DestinationCache {
    fn lookup(&self, address: Option<&CStr>, port: i32) -> Option<SocketAddr> {
        let text = address?.to_bytes();
        (self.len > 0 && port == self.port && text == &self.text[..self.len]).then_some(self.dest?)
    }

    fn remember(&mut self, address: Option<&CStr>, port: i32, dest: SocketAddr) {
        let Some(text) = address.map(CStr::to_bytes) else {
            return;
        };
        if text.is_empty() || text.len() > self.text.len() || text.contains(&b'%') {
            return;
        }
        self.text[..text.len()].copy_from_slice(text);
        self.len = text.len();
        self.port = port;
        self.dest = Some(dest);
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
    fn destination_cache_keeps_only_the_last_zone_free_text() {
        let mut cache = DestinationCache::default();
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 9), None);
        cache.remember(Some(c"127.0.0.1"), 9, dest);
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 9), Some(dest));
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 10), None);
        assert_eq!(cache.lookup(Some(c"127.0.0.10"), 9), None);
        assert_eq!(cache.lookup(Some(c"127.0.0."), 9), None);
        assert_eq!(cache.lookup(None, 9), None);
        let zoned: SocketAddr = "[fe80::1%1]:9".parse().unwrap();
        cache.remember(Some(c"fe80::1%lo"), 9, zoned);
        assert_eq!(cache.lookup(Some(c"fe80::1%lo"), 9), None);
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 9), Some(dest));
    }

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
