//! The socket state machine: created → bound → closed (→ silenced once the
//! host frees it or its context goes), its send queue, and the accounting
//! that tells the host loop whether anything is left to do.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};
use socket2::{Domain, Protocol, SockAddr, SockRef, Type};

use crate::addr::{self, Destination, Family};
use crate::batch::{ReadMode, BATCH_SLOTS};
use crate::context::Context;
use crate::context::Event;
use crate::error::{
    Errno, Result, DGRAM_EALREADY, DGRAM_ECANCELED, DGRAM_EISCONN, DGRAM_EMSGSIZE, DGRAM_ENOBUFS, DGRAM_ENOTCONN,
};
use crate::event::{ErrorInfo, EventKind, Handlers, SocketHandle, UserPtr};
use crate::resolve::Lookup;
use crate::sys::{self, Outgoing, SEND_IOVS};
use crate::types::{
    dgram_addr, dgram_error_cb, dgram_event_cb, dgram_message_cb, dgram_meta, dgram_send_cb, dgram_socket, dgram_stats,
    DGRAM_OFFLOAD_GRO, DGRAM_OFFLOAD_GSO,
};

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

/// Datagrams one `dgram_send_batch` call may carry.
pub(crate) const SEND_BATCH_MAX: usize = crate::types::DGRAM_SEND_BATCH_MAX as usize;
const _: () = assert!(SEND_BATCH_MAX <= SEND_QUEUE_MIN_COUNT);

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
    /// `None`: the connected peer.
    dest: Option<SocketAddr>,
    cb: dgram_send_cb,
    send_data: UserPtr,
}

/// Where an operation waiting its turn goes.
enum Target {
    /// A host name still to look up, and the port.
    Name(CString, u16),
    Addr(SocketAddr),
    /// The connected peer.
    Peer,
}

/// A bind, connect or send that waits behind a host name lookup (its own,
/// or an earlier operation's: a socket's operations keep their call order).
enum Deferred {
    Send {
        data: Vec<u8>,
        cb: dgram_send_cb,
        send_data: UserPtr,
    },
    Bind {
        once: dgram_event_cb,
    },
    Connect {
        once: dgram_event_cb,
    },
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
    /// Not watched for datagrams while no batch can be mapped.
    read_paused: bool,
    /// A bind waits for its address to be looked up.
    binding: bool,
    /// A connect waits for its address to be looked up.
    connecting: bool,
    /// The connected peer.
    peer: Option<SocketAddr>,
    /// The local address as bound (before any connect narrowed it).
    bound_addr: Option<SocketAddr>,
    /// Operations waiting behind a lookup, in call order; the front one's
    /// lookup is under way when `lookup_in_flight`.
    deferred: VecDeque<(Deferred, Target)>,
    deferred_sends: usize,
    deferred_bytes: usize,
    lookup_in_flight: bool,
    /// Counts in `dgram_context_active` (Node's ref/unref).
    referenced: bool,
    read_mode: ReadMode,
    /// Send runs of equal datagrams with UDP_SEGMENT; turned off for good
    /// the first time the kernel refuses it on this socket.
    gso: bool,
    /// The I/O thread reads with the `read_mode` it took (`begin_read`).
    reading: bool,
    /// Threads waiting for that read to end (`set_offload`).
    read_waiters: u32,
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
    /// The bound port, for the metadata's local address.
    local_port: AtomicU32,
    counters: Counters,
    /// Signalled when a read ends (`Reading` dropped).
    read_done: Condvar,
}

/// One read of a socket in progress on the I/O thread (`begin_read`); it
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
            self.socket.state.lock().end_read(&self.socket.read_done);
        }
    }
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
                binding: false,
                connecting: false,
                peer: None,
                bound_addr: None,
                deferred: VecDeque::new(),
                deferred_sends: 0,
                deferred_bytes: 0,
                lookup_in_flight: false,
                referenced: true,
                read_mode: ReadMode::default(),
                gso: sys::offload_support() & DGRAM_OFFLOAD_GSO != 0,
                reading: false,
                read_waiters: 0,
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
                    on_connect: None,
                    userdata,
                },
            }),
            epoch: AtomicU32::new(0),
            read_hint: AtomicUsize::new(BATCH_SLOTS),
            local_port: AtomicU32::new(0),
            counters: Counters::default(),
            read_done: Condvar::new(),
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

    pub fn on_connect(&self, cb: dgram_event_cb) -> Result<()> {
        self.set_handler(|h| h.on_connect = cb)
    }

    // ---- events --------------------------------------------------------------

    /// Counts and queues an event of this socket. Called with the state lock
    /// held, so the count and the close/free bookkeeping cannot interleave.
    fn push(self: &Arc<Self>, ctx: &Context, st: &mut State, kind: EventKind) {
        if kind.is_completion() {
            st.pending_completions += 1;
            ctx.add_pending(1);
        } else {
            st.add_data(ctx, 1);
        }
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
            ctx.add_pending(-1);
        } else {
            if st.closed {
                // Uncounted already, when the socket closed.
                return None;
            }
            st.add_data(ctx, -1);
        }
        Some(st.handlers)
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
        let target = addr::bind_target(address, port, self.family, st.raw_fd()?)?;
        if st.bound || st.binding {
            return Err(Errno(DGRAM_EALREADY));
        }
        match target {
            Destination::Addr(target) if st.deferred.is_empty() => {
                self.bind_locked(&ctx, &mut st, target)?;
                self.push(&ctx, &mut st, EventKind::Listening { once });
            }
            target => {
                st.binding = true;
                self.defer(&ctx, &mut st, Deferred::Bind { once }, target.into());
            }
        }
        Ok(())
    }

    fn bind_locked(&self, ctx: &Context, st: &mut State, target: SocketAddr) -> Result<()> {
        let fd = st.raw_fd()?;
        SockRef::from(st.fd()?).bind(&SockAddr::from(target))?;
        ctx.watch(fd, self.token)?;
        st.bound = true;
        if st.referenced {
            ctx.add_bound(1);
        }
        self.remember_local_port(st);
        Ok(())
    }

    /// Binds to the wildcard address first if the socket is not bound yet
    /// (send and connect do, as in Node), with its 'listening' event.
    fn ensure_bound(self: &Arc<Self>, ctx: &Context, st: &mut State) -> Result<()> {
        if !st.bound {
            self.bind_locked(ctx, st, self.family.unspecified(0))?;
            self.push(ctx, st, EventKind::Listening { once: None });
        }
        Ok(())
    }

    fn remember_local_port(&self, st: &mut State) {
        st.bound_addr = st.fd.as_ref().and_then(|fd| fd.local_addr().ok());
        if let Some(addr) = st.bound_addr {
            self.local_port.store(u32::from(addr.port()), Ordering::Relaxed);
        }
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
        st.raw_fd()
    }

    // ---- connect -------------------------------------------------------------

    /// `dgram_connect`: numeric addresses connect now (errors are the
    /// result); a host name is looked up first and its errors come as an
    /// 'error' event.
    pub fn connect(self: &Arc<Self>, port: i32, address: Option<&CStr>, once: dgram_event_cb) -> Result<()> {
        let ctx = self.context()?;
        let mut st = self.state.lock();
        st.check_open()?;
        let target = addr::send_target(address, port, self.family, st.raw_fd()?)?;
        if st.peer.is_some() || st.connecting {
            return Err(Errno(DGRAM_EISCONN));
        }
        match target {
            Destination::Addr(peer) if st.deferred.is_empty() => self.connect_locked(&ctx, &mut st, peer, once),
            target => {
                st.connecting = true;
                self.defer(&ctx, &mut st, Deferred::Connect { once }, target.into());
                Ok(())
            }
        }
    }

    fn connect_locked(
        self: &Arc<Self>,
        ctx: &Context,
        st: &mut State,
        peer: SocketAddr,
        once: dgram_event_cb,
    ) -> Result<()> {
        self.ensure_bound(ctx, st)?;
        SockRef::from(st.fd()?).connect(&SockAddr::from(peer))?;
        st.peer = Some(peer);
        self.push(ctx, st, EventKind::Connect { once });
        Ok(())
    }

    /// `dgram_disconnect`. The socket keeps its local address and port.
    pub fn disconnect(&self) -> Result<()> {
        let mut st = self.state.lock();
        st.check_open()?;
        if st.peer.is_none() {
            return Err(Errno(DGRAM_ENOTCONN));
        }
        let fd = st.fd()?;
        sys::disconnect(fd.as_raw_fd())?;
        // Linux forgets a port it picked itself (bind to port 0, or the
        // implicit bind) when a socket disconnects: bind again to what the
        // socket was bound to (not the narrower address connect chose), so
        // it stays reachable where its peer and the host knew it.
        if let (Some(bound), Ok(now)) = (st.bound_addr, fd.local_addr()) {
            if now.port() == 0 {
                SockRef::from(fd).bind(&SockAddr::from(bound))?;
            }
        }
        st.peer = None;
        Ok(())
    }

    pub fn remote_address(&self) -> Result<dgram_addr> {
        let st = self.state.lock();
        st.check_open()?;
        st.peer.as_ref().map(addr::to_c).ok_or(Errno(DGRAM_ENOTCONN))
    }

    // ---- send ----------------------------------------------------------------

    /// Where a send goes: the peer on a connected socket (where giving a
    /// destination is `DGRAM_EISCONN`), else the given address, parsed once
    /// for a run of sends to the same text.
    fn send_destination(&self, st: &mut State, address: Option<&CStr>, port: i32) -> Result<Target> {
        if st.peer.is_some() || st.connecting {
            return if address.is_none() && port == 0 {
                Ok(Target::Peer)
            } else {
                Err(Errno(DGRAM_EISCONN))
            };
        }
        if let Some(dest) = st.last_destination.lookup(address, port) {
            return Ok(Target::Addr(dest));
        }
        let target = addr::send_target(address, port, self.family, st.raw_fd()?)?;
        if let Destination::Addr(dest) = target {
            st.last_destination.remember(address, port, dest);
        }
        Ok(target.into())
    }

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
            Target::Addr(dest) if st.deferred.is_empty() => {
                self.send_locked(&mut st, bufs, Some(dest), length, cb, send_data)
            }
            Target::Peer if st.deferred.is_empty() => self.send_locked(&mut st, bufs, None, length, cb, send_data),
            target => {
                self.defer_send(&*self.context()?, &mut st, bufs, cb, send_data, target);
                Ok(())
            }
        }
    }

    /// Sends now if the kernel takes it, else queues it for the I/O thread.
    fn send_locked(
        self: &Arc<Self>,
        st: &mut State,
        bufs: &[IoSlice<'_>],
        dest: Option<SocketAddr>,
        length: usize,
        cb: dgram_send_cb,
        send_data: UserPtr,
    ) -> Result<()> {
        if !st.bound {
            self.ensure_bound(&*self.context()?, st)?;
        }
        if st.send_queue.is_empty() {
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
        let mut data = st.spare_buffers.pop().unwrap_or_default();
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
        if !st.deferred.is_empty() {
            for datagram in datagrams {
                let target = dest.map_or(Target::Peer, Target::Addr);
                self.defer_send(&ctx, &mut st, &[IoSlice::new(datagram)], cb, send_data, target);
            }
            return Ok(());
        }
        self.ensure_bound(&ctx, &mut st)?;
        let mut rest = datagrams;
        if st.send_queue.is_empty() {
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
            let mut data = st.spare_buffers.pop().unwrap_or_default();
            data.extend_from_slice(datagram);
            self.enqueue_send(&mut st, data, dest, cb, send_data)?;
        }
        Ok(())
    }

    /// The error of a send to `dest` (the peer when `None`).
    fn send_error(&self, st: &State, code: i32, dest: Option<SocketAddr>) -> ErrorInfo {
        ErrorInfo::new(code, c"send", dest.or(st.peer))
    }

    /// Reports the end of one send: its callback if it has one, else an
    /// 'error' event if it failed, else nothing.
    fn complete_send(
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

    /// Writes queued datagrams while the kernel takes them, in sendmmsg
    /// calls of up to `SEND_IOVS` datagrams, runs of equal ones to one
    /// destination as UDP_SEGMENT writes (I/O thread, on EPOLLOUT).
    pub fn flush(self: &Arc<Self>, ctx: &Context) {
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        let Ok(fd) = st.raw_fd() else { return };
        let _hold = ctx.hold();
        while !st.send_queue.is_empty() {
            let mut out = [Outgoing::default(); SEND_IOVS];
            let count = st.send_queue.len().min(SEND_IOVS);
            for (slot, send) in out.iter_mut().zip(st.send_queue.iter()) {
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
                let sent = st.send_queue.pop_front().expect("sent only what was queued");
                st.queued_bytes -= sent.data.len();
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

    // ---- operations waiting for a lookup -------------------------------------------

    /// Queues an operation behind the lookups before it, and starts the
    /// lookup at the front if none runs. Counts as pending until it runs.
    fn defer(self: &Arc<Self>, ctx: &Context, st: &mut State, op: Deferred, target: Target) {
        st.deferred.push_back((op, target));
        ctx.add_pending(1);
        self.run_deferred(ctx, st);
    }

    /// Copies a datagram made of `bufs` and queues its send behind the
    /// lookups before it, counted in the send queue's figures.
    fn defer_send(
        self: &Arc<Self>,
        ctx: &Context,
        st: &mut State,
        bufs: &[IoSlice<'_>],
        cb: dgram_send_cb,
        send_data: UserPtr,
        target: Target,
    ) {
        let mut data = st.spare_buffers.pop().unwrap_or_default();
        for buf in bufs {
            data.extend_from_slice(buf);
        }
        st.deferred_sends += 1;
        st.deferred_bytes += data.len();
        self.defer(ctx, st, Deferred::Send { data, cb, send_data }, target);
    }

    /// Runs the waiting operations whose address is known, in order, up to
    /// the first that needs a lookup, and asks for that one.
    fn run_deferred(self: &Arc<Self>, ctx: &Context, st: &mut State) {
        while let Some((_, target)) = st.deferred.front() {
            if let Target::Name(name, _) = target {
                if !st.lookup_in_flight {
                    let socket = Arc::downgrade(self);
                    let lookup = Lookup {
                        name: name.clone(),
                        family: self.family,
                        // Only weakly: a socket freed meanwhile is not kept
                        // for its answer.
                        answer: Box::new(move |answer| {
                            if let Some(socket) = socket.upgrade() {
                                socket.resolved(answer);
                            }
                        }),
                    };
                    match ctx.resolver().request(lookup) {
                        Ok(()) => st.lookup_in_flight = true,
                        Err(err) => {
                            // No thread for the lookup: the operation fails as a lookup would.
                            let (op, target) = st.deferred.pop_front().expect("front exists");
                            self.fail_deferred(ctx, st, op, target, Errno::from_io(&err).0);
                            continue;
                        }
                    }
                }
                return;
            }
            let (op, target) = st.deferred.pop_front().expect("front exists");
            self.finish_deferred(ctx, st, op, target);
        }
    }

    /// The resolver's answer for the front operation (resolver thread).
    pub fn resolved(self: &Arc<Self>, answer: std::result::Result<IpAddr, i32>) {
        let Ok(ctx) = self.context() else { return };
        let mut st = self.state.lock();
        st.lookup_in_flight = false;
        if st.closed {
            return;
        }
        let Some((_, Target::Name(_, port))) = st.deferred.front() else {
            return;
        };
        let _hold = ctx.hold();
        let port = *port;
        match answer {
            Ok(ip) => {
                let front = st.deferred.front_mut().expect("front exists");
                front.1 = Target::Addr(SocketAddr::new(ip, port));
            }
            Err(code) => {
                let (op, target) = st.deferred.pop_front().expect("front exists");
                self.fail_deferred(&ctx, &mut st, op, target, code);
            }
        }
        self.run_deferred(&ctx, &mut st);
    }

    /// Runs one waiting operation whose address is now known.
    fn finish_deferred(self: &Arc<Self>, ctx: &Context, st: &mut State, op: Deferred, target: Target) {
        ctx.add_pending(-1);
        let dest = match target {
            Target::Addr(addr) => Some(addr),
            _ => None,
        };
        match op {
            Deferred::Send { data, cb, send_data } => {
                st.deferred_sends -= 1;
                st.deferred_bytes -= data.len();
                let length = data.len();
                if dest.is_none() && st.peer.is_none() {
                    // Meant for the peer of a connect that failed.
                    let error = ErrorInfo::new(DGRAM_ENOTCONN, c"send", None);
                    self.complete_send(ctx, st, cb, send_data, length, Some(error));
                } else if let Err(Errno(code)) =
                    self.send_locked(st, &[IoSlice::new(&data)], dest, length, cb, send_data)
                {
                    let error = self.send_error(st, code, dest);
                    self.complete_send(ctx, st, cb, send_data, length, Some(error));
                }
                st.recycle(data);
            }
            Deferred::Bind { once } => {
                st.binding = false;
                let Some(addr) = dest else { return };
                let result = if st.bound {
                    Err(Errno(DGRAM_EALREADY))
                } else {
                    self.bind_locked(ctx, st, addr)
                };
                match result {
                    Ok(()) => self.push(ctx, st, EventKind::Listening { once }),
                    Err(Errno(code)) => self.push(ctx, st, EventKind::Error(ErrorInfo::new(code, c"bind", dest))),
                }
            }
            Deferred::Connect { once } => {
                st.connecting = false;
                let Some(peer) = dest else { return };
                if let Err(Errno(code)) = self.connect_locked(ctx, st, peer, once) {
                    self.push(ctx, st, EventKind::Error(ErrorInfo::new(code, c"connect", dest)));
                }
            }
        }
    }

    /// Ends a waiting operation whose lookup failed with `code`.
    fn fail_deferred(self: &Arc<Self>, ctx: &Context, st: &mut State, op: Deferred, target: Target, code: i32) {
        ctx.add_pending(-1);
        let hostname = match target {
            Target::Name(name, _) => Some(Box::new(name)),
            _ => None,
        };
        let error = ErrorInfo {
            code,
            syscall: c"getaddrinfo",
            addr: None,
            hostname,
        };
        match op {
            Deferred::Send { data, cb, send_data } => {
                st.deferred_sends -= 1;
                st.deferred_bytes -= data.len();
                self.complete_send(ctx, st, cb, send_data, data.len(), Some(error));
                st.recycle(data);
            }
            Deferred::Bind { .. } => {
                st.binding = false;
                self.push(ctx, st, EventKind::Error(error));
            }
            Deferred::Connect { .. } => {
                st.connecting = false;
                self.push(ctx, st, EventKind::Error(error));
            }
        }
    }

    // ---- receive -------------------------------------------------------------

    /// Starts one read (I/O thread, on EPOLLIN): the fd, whose clone keeps
    /// it open through a read that races a close, and the read mode, which
    /// holds until the guard goes; `None` once closed.
    pub fn begin_read(&self) -> Option<Reading<'_>> {
        let mut st = self.state.lock();
        if st.closed {
            return None;
        }
        let fd = st.fd.clone()?;
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
        st.end_read(&self.read_done);
        (count > 0 && !st.closed && !st.silenced).then(|| Admitted {
            handlers: st.handlers,
            epoch: self.epoch(),
        })
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

    /// Stops watching for datagrams (the reader found no memory for a
    /// batch); false if already stopped or closed.
    pub fn pause_reading(&self, ctx: &Context) -> bool {
        let mut st = self.state.lock();
        let Some(fd) = st.fd.as_ref().filter(|_| !st.closed && !st.read_paused) else {
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
        let Some(fd) = st.fd.as_ref().filter(|_| !st.closed && st.read_paused) else {
            return;
        };
        if ctx
            .set_read_interest(fd.as_raw_fd(), self.token, true, st.writable_armed)
            .is_ok()
        {
            st.read_paused = false;
        }
    }

    /// A read failed with something other than EAGAIN: the host hears of it
    /// as an 'error' event.
    pub fn report_receive_error(self: &Arc<Self>, ctx: &Context, err: &io::Error) {
        let mut st = self.state.lock();
        if !st.closed {
            // On a connected socket this is mostly the peer's ICMP port
            // unreachable (DGRAM_ECONNREFUSED): name the peer.
            let info = ErrorInfo::new(Errno::from_io(err).0, c"recvmsg", st.peer);
            self.push(ctx, &mut st, EventKind::Error(info));
        }
    }

    // ---- close and free --------------------------------------------------------

    /// `dgram_close`: no datagram is delivered after this returns; queued
    /// sends complete with `DGRAM_ECANCELED`, then 'close' comes.
    pub fn close(self: &Arc<Self>, once: dgram_event_cb) -> Result<()> {
        let ctx = self.context()?;
        let _hold = ctx.hold();
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
                if st.referenced {
                    ctx.add_bound(-1);
                }
            }
            // The fd itself closes when the I/O thread drops its clone, if it
            // is reading right now; it can no longer be reached from here.
        }
        // Queued datagrams and 'listening' no longer keep the host alive.
        let data = st.pending_data;
        st.add_data(ctx, -data);
        let cancelled = std::mem::take(&mut st.send_queue);
        st.queued_bytes = 0;
        let waiting = std::mem::take(&mut st.deferred);
        st.deferred_sends = 0;
        st.deferred_bytes = 0;
        st.binding = false;
        st.connecting = false;
        ctx.add_pending(-((cancelled.len() + waiting.len()) as i64));
        let cancelled_sends = cancelled
            .into_iter()
            .map(|send| (send.data, send.dest, send.cb, send.send_data))
            .chain(waiting.into_iter().filter_map(|(op, target)| match (op, target) {
                (Deferred::Send { data, cb, send_data }, Target::Addr(dest)) => Some((data, Some(dest), cb, send_data)),
                (Deferred::Send { data, cb, send_data }, _) => Some((data, None, cb, send_data)),
                _ => None,
            }));
        for (data, dest, cb, send_data) in cancelled_sends {
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            if report && cb.is_some() {
                let error = self.send_error(st, DGRAM_ECANCELED, dest);
                let kind = EventKind::SendDone {
                    cb,
                    send_data,
                    length: data.len(),
                    error: Some(error),
                };
                self.push(ctx, st, kind);
            }
        }
        ctx.unregister(self.token);
    }

    /// Closes without any further callback and uncounts everything still
    /// queued: `dgram_socket_free` on an open socket, or `dgram_context_free`.
    pub fn silence(self: &Arc<Self>, ctx: &Context) {
        let _hold = ctx.hold();
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
        f(SockRef::from(fd)).map_err(Errno::from)
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
        let socket = SockRef::from(fd);
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

    /// Joins (`join == true`) or leaves a source-specific group.
    pub fn source_membership(
        &self,
        source: Option<&CStr>,
        group: Option<&CStr>,
        iface: Option<&CStr>,
        join: bool,
    ) -> Result<()> {
        let st = self.state.lock();
        st.check_open()?;
        let fd = st.fd()?;
        let raw = fd.as_raw_fd();
        let group = addr::multicast_group(group.ok_or(Errno::INVAL)?, self.family, raw)?;
        let (source, _) = addr::parse_literal(source.ok_or(Errno::INVAL)?, self.family, raw)?;
        if source.is_multicast() || source.is_unspecified() {
            return Err(Errno::INVAL);
        }
        let result = match (source, group) {
            (IpAddr::V4(source), IpAddr::V4(group)) => {
                let iface = addr::membership_interface_v4(iface)?;
                let socket = SockRef::from(fd);
                if join {
                    socket.join_ssm_v4(&source, &group, &iface)
                } else {
                    socket.leave_ssm_v4(&source, &group, &iface)
                }
            }
            (source, group) => {
                let index = addr::membership_interface_v6(iface, raw)?;
                let (source, group) = (SocketAddr::new(source, 0), SocketAddr::new(group, 0));
                sys::source_membership(raw, libc::IPPROTO_IPV6, source, group, index, join)
            }
        };
        result.map_err(Errno::from)
    }

    /// `dgram_set_multicast_interface`: udp4 takes a local IPv4 address
    /// (0.0.0.0 for the system's choice), udp6 an interface ("::%eth0",
    /// "eth0", "2"; "::" for the system's choice).
    pub fn set_multicast_interface(&self, iface: Option<&CStr>) -> Result<()> {
        let st = self.state.lock();
        st.check_open()?;
        let fd = st.fd()?;
        let text = iface.ok_or(Errno::INVAL)?;
        let socket = SockRef::from(fd);
        match self.family {
            Family::V4 => {
                let addr = addr::membership_interface_v4(Some(text))?;
                socket.set_multicast_if_v4(&addr).map_err(Errno::from)
            }
            Family::V6 => {
                let index = match text.to_str().map(str::parse::<Ipv6Addr>) {
                    Ok(Ok(addr)) if addr.is_unspecified() => 0,
                    Ok(Ok(_)) => return Err(Errno::INVAL),
                    _ => addr::membership_interface_v6(Some(text), fd.as_raw_fd())?,
                };
                socket.set_multicast_if_v6(index).map_err(Errno::from)
            }
        }
    }

    // ---- buffers and queue figures -------------------------------------------------

    pub fn set_buffer_size(&self, size: i32, receive: bool) -> Result<()> {
        self.ensure_open()?;
        let size = usize::try_from(size).ok().filter(|&s| s > 0).ok_or(Errno::INVAL)?;
        if receive {
            self.with_fd(|s| s.set_recv_buffer_size(size))
        } else {
            self.with_fd(|s| s.set_send_buffer_size(size))
        }
    }

    /// The kernel's figure, which on Linux is twice what was asked (it
    /// counts its own bookkeeping too).
    pub fn buffer_size(&self, receive: bool) -> Result<i32> {
        let size = if receive {
            self.with_fd(|s| s.recv_buffer_size())?
        } else {
            self.with_fd(|s| s.send_buffer_size())?
        };
        Ok(i32::try_from(size).unwrap_or(i32::MAX))
    }

    /// Bytes and datagrams accepted but not yet handed to the kernel:
    /// queued for the I/O thread, or waiting for a lookup.
    pub fn send_queue_figures(&self) -> Result<(usize, usize)> {
        let st = self.state.lock();
        st.check_open()?;
        Ok((
            st.queued_bytes + st.deferred_bytes,
            st.send_queue.len() + st.deferred_sends,
        ))
    }

    // ---- ref/unref, metadata, offload -------------------------------------------------

    /// Whether the socket counts in `dgram_context_active`: its being bound
    /// and its undelivered datagrams and 'listening'/'connect' events do
    /// only while referenced; send completions, errors and 'close' always.
    pub fn set_referenced(&self, referenced: bool) -> Result<()> {
        let ctx = self.context()?;
        let _hold = ctx.hold();
        let mut st = self.state.lock();
        st.check_open()?;
        if st.referenced != referenced {
            let sign = if referenced { 1 } else { -1 };
            if st.bound {
                ctx.add_bound(sign);
            }
            ctx.add_pending(sign * st.pending_data);
            st.referenced = referenced;
        }
        Ok(())
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
            // way when this runs on the I/O thread, in a callback.
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

impl From<Destination> for Target {
    fn from(dest: Destination) -> Target {
        match dest {
            Destination::Addr(addr) => Target::Addr(addr),
            Destination::Name(name, port) => Target::Name(name, port),
        }
    }
}

impl State {
    /// The I/O thread's read is over: wake whoever waits for that.
    fn end_read(&mut self, done: &Condvar) {
        self.reading = false;
        if self.read_waiters > 0 {
            done.notify_all();
        }
    }

    fn raw_fd(&self) -> Result<RawFd> {
        self.fd.as_ref().map(|fd| fd.as_raw_fd()).ok_or(Errno::BADF)
    }

    /// Counts `delta` undelivered datagrams or 'listening'/'connect' events;
    /// they keep the host's loop alive only while the socket is referenced.
    fn add_data(&mut self, ctx: &Context, delta: i64) {
        self.pending_data += delta;
        if self.referenced {
            ctx.add_pending(delta);
        }
    }

    /// `DGRAM_ENOBUFS` when the send queue (with what waits for a lookup)
    /// is full, or too many completions wait for dispatch. An empty queue
    /// takes any one send, or any one batch (of at most `SEND_BATCH_MAX`),
    /// so the bound is exceeded by at most one call's datagrams.
    fn check_room(&self) -> Result<()> {
        let queued = self.send_queue.len() + self.deferred_sends;
        let full = queued > 0 && send_queue_full(queued, self.queued_bytes + self.deferred_bytes);
        if full || self.pending_completions >= MAX_UNDELIVERED_COMPLETIONS {
            Err(Errno(DGRAM_ENOBUFS))
        } else {
            Ok(())
        }
    }

    fn offload_flags(&self) -> u32 {
        (if self.gso { DGRAM_OFFLOAD_GSO } else { 0 }) | (if self.read_mode.gro { DGRAM_OFFLOAD_GRO } else { 0 })
    }
    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Errno::BADF)
        } else {
            Ok(())
        }
    }

    /// The open socket, borrowed for a call made under the state lock.
    fn fd(&self) -> Result<&UdpSocket> {
        self.fd.as_deref().ok_or(Errno::BADF)
    }

    fn recycle(&mut self, mut buffer: Vec<u8>) {
        // Only buffers of ordinary size, and not too many: what a socket
        // keeps in reserve must stay small next to its queue bound.
        if self.spare_buffers.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_BUFFER_MAX_BYTES {
            buffer.clear();
            self.spare_buffers.push(buffer);
        }
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
