//! What a socket's state lock guards, as plain data: its phase, its peer, the
//! send queue, the operations waiting for a lookup and the counts behind
//! `dgram_context_active`. Nothing here reaches a context, an epoll set or a
//! thread: the `Socket` methods do that with what these methods answer.

use std::collections::VecDeque;
use std::ffi::CString;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use super::destination::DestinationCache;
use crate::addr::Destination;
use crate::batch::ReadMode;
use crate::error::{Errno, Result, DGRAM_ENOBUFS};
use crate::event::{Handlers, UserPtr};
use crate::types::{dgram_event_cb, dgram_send_cb, DGRAM_OFFLOAD_GRO, DGRAM_OFFLOAD_GSO};

/// A socket accepts at least this many datagrams waiting to be written...
pub(super) const SEND_QUEUE_MIN_COUNT: usize = 1024;
/// ...and at least this many bytes, before `dgram_send` answers `DGRAM_ENOBUFS`.
const SEND_QUEUE_MIN_BYTES: usize = 1 << 20;
/// Hard cap on queued datagrams, so a flood of empty datagrams stays bounded.
const SEND_QUEUE_MAX_COUNT: usize = 65536;

/// Completions (send callbacks, errors) of one socket that may wait for
/// dispatch: a host that sends without ever dispatching gets `DGRAM_ENOBUFS`
/// instead of growing memory without bound.
const MAX_UNDELIVERED_COMPLETIONS: i64 = 65536;

/// Send buffers a socket keeps for reuse, and the largest it keeps.
const SPARE_BUFFERS: usize = 64;
const SPARE_BUFFER_MAX_BYTES: usize = 2048;

/// Where the socket is in its life; it only ever moves down this list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Created,
    /// Bound, and so watched by the context (and counted as bound while
    /// referenced).
    Bound,
    /// Closed by the host: the OS socket is gone from the state.
    Closed,
    /// Freed by the host, or its context freed: no callback of any kind.
    Silenced,
}

/// The socket's peer. A connect that waits for a lookup already counts as
/// connected for what may be sent: its sends are meant for the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Peer {
    Unconnected,
    /// A connect waits in the queue of deferred operations.
    Connecting,
    Connected(SocketAddr),
}

pub(super) struct QueuedSend {
    pub(super) data: Vec<u8>,
    /// `None`: the connected peer.
    pub(super) dest: Option<SocketAddr>,
    pub(super) cb: dgram_send_cb,
    pub(super) send_data: UserPtr,
}

/// Where an operation waiting its turn goes.
pub(super) enum Target {
    /// A host name still to look up, and the port.
    Name(CString, u16),
    Addr(SocketAddr),
    /// The connected peer.
    Peer,
}

impl From<Destination> for Target {
    fn from(dest: Destination) -> Target {
        match dest {
            Destination::Addr(addr) => Target::Addr(addr),
            Destination::Name(name, port) => Target::Name(name, port),
        }
    }
}

/// A bind, connect or send that waits behind a host name lookup (its own,
/// or an earlier operation's: a socket's operations keep their call order).
pub(super) enum Deferred {
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

pub(super) struct State {
    /// The OS socket; `None` once closed. Shared with the reading thread for the
    /// duration of a read, so a close never pulls the fd out from under it.
    fd: Option<Arc<UdpSocket>>,
    phase: Phase,
    peer: Peer,
    pub(super) writable_armed: bool,
    /// Not watched for datagrams while no batch can be mapped.
    pub(super) read_paused: bool,
    /// A bind waits in `deferred`. Not a phase of its own: an operation
    /// ahead of it (a connect, a send) may bind the socket meanwhile, and
    /// the bind then fails as a second bind would.
    binding: bool,
    /// The local address as bound (before any connect narrowed it).
    pub(super) bound_addr: Option<SocketAddr>,
    /// Operations waiting behind a lookup, in call order; the front one's
    /// lookup is under way when `lookup_in_flight`.
    deferred: VecDeque<(Deferred, Target)>,
    deferred_sends: usize,
    deferred_bytes: usize,
    pub(super) lookup_in_flight: bool,
    /// Counts in `dgram_context_active` (Node's ref/unref).
    pub(super) referenced: bool,
    pub(super) read_mode: ReadMode,
    /// Send runs of equal datagrams with UDP_SEGMENT; turned off for good
    /// the first time the kernel refuses it on this socket.
    pub(super) gso: bool,
    /// A read is under way with the `read_mode` it took (`begin_read`).
    pub(super) reading: bool,
    /// Threads waiting for that read to end (`set_offload`).
    pub(super) read_waiters: u32,
    send_queue: VecDeque<QueuedSend>,
    queued_bytes: usize,
    /// The destination of the last send, parsed: a socket mostly sends to
    /// one peer, and parsing the address text costs more than the send's
    /// own user-space work.
    pub(super) last_destination: DestinationCache,
    /// Buffers of datagrams that were queued and are sent, kept for the next
    /// ones so that a socket that often meets a full kernel buffer does not
    /// allocate per datagram.
    spare_buffers: Vec<Vec<u8>>,
    /// Queued 'listening' and 'connect' events that still count as activity.
    pub(super) pending_data: i64,
    /// Queued completions (send callbacks, 'error', 'close') that still count.
    pub(super) pending_completions: i64,
    pub(super) handlers: Handlers,
}

impl State {
    /// A socket just made, referenced, with nothing queued.
    pub(super) fn new(fd: Arc<UdpSocket>, handlers: Handlers, gso: bool) -> State {
        State {
            fd: Some(fd),
            phase: Phase::Created,
            peer: Peer::Unconnected,
            writable_armed: false,
            read_paused: false,
            binding: false,
            bound_addr: None,
            deferred: VecDeque::new(),
            deferred_sends: 0,
            deferred_bytes: 0,
            lookup_in_flight: false,
            referenced: true,
            read_mode: ReadMode::default(),
            gso,
            reading: false,
            read_waiters: 0,
            send_queue: VecDeque::new(),
            queued_bytes: 0,
            spare_buffers: Vec::new(),
            last_destination: DestinationCache::default(),
            pending_data: 0,
            pending_completions: 0,
            handlers,
        }
    }

    // ---- phase ---------------------------------------------------------------

    /// Closed or silenced.
    pub(super) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Silenced)
    }

    pub(super) fn is_silenced(&self) -> bool {
        self.phase == Phase::Silenced
    }

    pub(super) fn is_bound(&self) -> bool {
        self.phase == Phase::Bound
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Errno::BADF)
        } else {
            Ok(())
        }
    }

    /// The OS socket took its local address.
    pub(super) fn mark_bound(&mut self) {
        debug_assert_eq!(self.phase, Phase::Created);
        self.phase = Phase::Bound;
    }

    /// Closes: hands back the OS socket and whether it was bound (`None`
    /// if already closed). Empties neither queue: see `take_queued` and
    /// `take_deferred`.
    pub(super) fn close(&mut self) -> Option<(Arc<UdpSocket>, bool)> {
        let was_bound = self.is_bound();
        if !self.is_closed() {
            self.phase = Phase::Closed;
        }
        self.fd.take().map(|fd| (fd, was_bound))
    }

    /// Closed → silenced. Returns the completions still queued, which no
    /// longer count from now on, or `None` if already silenced.
    pub(super) fn silence(&mut self) -> Option<i64> {
        debug_assert!(self.is_closed(), "a socket is closed before it is silenced");
        if self.is_silenced() {
            return None;
        }
        self.phase = Phase::Silenced;
        Some(std::mem::take(&mut self.pending_completions))
    }

    /// The open socket, borrowed for a call made under the state lock.
    pub(super) fn fd(&self) -> Result<&UdpSocket> {
        self.fd.as_deref().ok_or(Errno::BADF)
    }

    /// The open socket, shared (with a read under way).
    pub(super) fn shared_fd(&self) -> Option<&Arc<UdpSocket>> {
        self.fd.as_ref()
    }

    pub(super) fn raw_fd(&self) -> Result<RawFd> {
        self.fd.as_ref().map(|fd| fd.as_raw_fd()).ok_or(Errno::BADF)
    }

    // ---- peer ----------------------------------------------------------------

    /// The connected peer's address; none while a connect waits.
    pub(super) fn peer_addr(&self) -> Option<SocketAddr> {
        match self.peer {
            Peer::Connected(addr) => Some(addr),
            Peer::Unconnected | Peer::Connecting => None,
        }
    }

    /// Connected, or a connect waits: sends go to the peer.
    pub(super) fn has_peer(&self) -> bool {
        self.peer != Peer::Unconnected
    }

    pub(super) fn set_connected(&mut self, addr: SocketAddr) {
        self.peer = Peer::Connected(addr);
    }

    pub(super) fn set_disconnected(&mut self) {
        self.peer = Peer::Unconnected;
    }

    // ---- operations waiting for a lookup ---------------------------------------

    pub(super) fn is_binding(&self) -> bool {
        self.binding
    }

    pub(super) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Queues an operation behind those waiting, counted in the send
    /// queue's figures if a send, marking a bind or connect as waiting.
    pub(super) fn push_deferred(&mut self, op: Deferred, target: Target) {
        match &op {
            Deferred::Send { data, .. } => {
                self.deferred_sends += 1;
                self.deferred_bytes += data.len();
            }
            Deferred::Bind { .. } => self.binding = true,
            Deferred::Connect { .. } => self.peer = Peer::Connecting,
        }
        self.deferred.push_back((op, target));
    }

    /// The front operation, about to run or fail: it no longer counts as
    /// waiting.
    pub(super) fn pop_deferred(&mut self) -> Option<(Deferred, Target)> {
        let (op, target) = self.deferred.pop_front()?;
        match &op {
            Deferred::Send { data, .. } => {
                self.deferred_sends -= 1;
                self.deferred_bytes -= data.len();
            }
            Deferred::Bind { .. } => self.binding = false,
            Deferred::Connect { .. } => self.stop_connecting(),
        }
        Some((op, target))
    }

    pub(super) fn front_deferred(&self) -> Option<&Target> {
        self.deferred.front().map(|(_, target)| target)
    }

    pub(super) fn front_deferred_mut(&mut self) -> Option<&mut Target> {
        self.deferred.front_mut().map(|(_, target)| target)
    }

    /// Every waiting operation, for a close that cancels them.
    pub(super) fn take_deferred(&mut self) -> VecDeque<(Deferred, Target)> {
        self.deferred_sends = 0;
        self.deferred_bytes = 0;
        self.binding = false;
        self.stop_connecting();
        std::mem::take(&mut self.deferred)
    }

    fn stop_connecting(&mut self) {
        if self.peer == Peer::Connecting {
            self.peer = Peer::Unconnected;
        }
    }

    // ---- send queue ------------------------------------------------------------

    /// The datagrams waiting for the kernel to take them, oldest first.
    pub(super) fn queued(&self) -> &VecDeque<QueuedSend> {
        &self.send_queue
    }

    pub(super) fn push_queued(&mut self, send: QueuedSend) {
        self.queued_bytes += send.data.len();
        self.send_queue.push_back(send);
    }

    pub(super) fn pop_queued(&mut self) -> Option<QueuedSend> {
        let sent = self.send_queue.pop_front()?;
        self.queued_bytes -= sent.data.len();
        Some(sent)
    }

    /// Every queued datagram, for a close that cancels them.
    pub(super) fn take_queued(&mut self) -> VecDeque<QueuedSend> {
        self.queued_bytes = 0;
        std::mem::take(&mut self.send_queue)
    }

    /// Bytes and datagrams accepted but not yet handed to the kernel:
    /// queued for the I/O thread, or waiting for a lookup.
    pub(super) fn queue_figures(&self) -> (usize, usize) {
        (
            self.queued_bytes + self.deferred_bytes,
            self.send_queue.len() + self.deferred_sends,
        )
    }

    /// `DGRAM_ENOBUFS` when the send queue (with what waits for a lookup)
    /// is full, or too many completions wait for dispatch. An empty queue
    /// takes any one send, or any one batch (of at most `SEND_BATCH_MAX`),
    /// so the bound is exceeded by at most one call's datagrams.
    pub(super) fn check_room(&self) -> Result<()> {
        let (bytes, queued) = self.queue_figures();
        let full = queued > 0 && send_queue_full(queued, bytes);
        if full || self.pending_completions >= MAX_UNDELIVERED_COMPLETIONS {
            Err(Errno(DGRAM_ENOBUFS))
        } else {
            Ok(())
        }
    }

    /// A buffer for the next datagram to copy: a spare one if there is.
    pub(super) fn spare_buffer(&mut self) -> Vec<u8> {
        self.spare_buffers.pop().unwrap_or_default()
    }

    pub(super) fn recycle(&mut self, mut buffer: Vec<u8>) {
        // Only buffers of ordinary size, and not too many: what a socket
        // keeps in reserve must stay small next to its queue bound.
        if self.spare_buffers.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_BUFFER_MAX_BYTES {
            buffer.clear();
            self.spare_buffers.push(buffer);
        }
    }

    // ---- reads and offloads ------------------------------------------------------

    /// The read is over; answers whether a thread waits for
    /// that, to be woken.
    pub(super) fn end_read(&mut self) -> bool {
        self.reading = false;
        self.read_waiters > 0
    }

    pub(super) fn offload_flags(&self) -> u32 {
        (if self.gso { DGRAM_OFFLOAD_GSO } else { 0 }) | (if self.read_mode.gro { DGRAM_OFFLOAD_GRO } else { 0 })
    }
}

/// Whether a send queue holding `count` datagrams of `bytes` in all takes no
/// more: it always takes 1024 datagrams whatever their size, and any number
/// while under 1 MiB, up to a hard cap on the count.
fn send_queue_full(count: usize, bytes: usize) -> bool {
    count >= SEND_QUEUE_MAX_COUNT || (count >= SEND_QUEUE_MIN_COUNT && bytes >= SEND_QUEUE_MIN_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_HANDLERS: Handlers = Handlers {
        on_message: None,
        on_listening: None,
        on_close: None,
        on_error: None,
        on_connect: None,
        userdata: UserPtr(std::ptr::null_mut()),
    };

    fn state() -> State {
        let fd = UdpSocket::bind("127.0.0.1:0").expect("a loopback UDP socket");
        State::new(Arc::new(fd), NO_HANDLERS, false)
    }

    fn send(len: usize) -> Deferred {
        Deferred::Send {
            data: vec![0; len],
            cb: None,
            send_data: UserPtr(std::ptr::null_mut()),
        }
    }

    fn queued(len: usize) -> QueuedSend {
        QueuedSend {
            data: vec![0; len],
            dest: None,
            cb: None,
            send_data: UserPtr(std::ptr::null_mut()),
        }
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn phases_only_move_forward() {
        let mut st = state();
        assert!(st.check_open().is_ok() && !st.is_bound());
        st.mark_bound();
        assert!(st.is_bound() && st.check_open().is_ok() && st.raw_fd().is_ok());
        let (fd, was_bound) = st.close().expect("the fd, once");
        assert!(was_bound && fd.local_addr().is_ok());
        assert!(st.is_closed() && !st.is_bound() && !st.is_silenced());
        assert_eq!(st.check_open(), Err(Errno::BADF));
        assert_eq!(st.raw_fd(), Err(Errno::BADF));
        assert!(st.fd().is_err() && st.shared_fd().is_none());
        assert!(st.close().is_none());
        st.pending_completions = 3;
        assert_eq!(st.silence(), Some(3));
        assert_eq!(st.pending_completions, 0);
        assert!(st.is_silenced() && st.is_closed());
        assert_eq!(st.silence(), None);
        assert!(st.close().is_none() && st.is_silenced());
        // Closed unbound: nothing for the context to stop watching.
        let mut st = state();
        assert!(matches!(st.close(), Some((_, false))));
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn a_waiting_connect_counts_as_a_peer_without_an_address() {
        let mut st = state();
        assert!(!st.has_peer() && st.peer_addr().is_none());
        st.push_deferred(Deferred::Connect { once: None }, Target::Name(c"example".into(), 9));
        assert!(st.has_peer() && st.peer_addr().is_none());
        assert!(matches!(
            st.pop_deferred(),
            Some((Deferred::Connect { .. }, Target::Name(..)))
        ));
        assert!(!st.has_peer());
        st.set_connected(peer());
        assert!(st.has_peer());
        assert_eq!(st.peer_addr(), Some(peer()));
        st.set_disconnected();
        assert!(!st.has_peer() && st.peer_addr().is_none());
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn deferred_operations_keep_their_order_and_figures() {
        let mut st = state();
        assert!(!st.has_deferred() && st.front_deferred().is_none());
        st.push_deferred(Deferred::Bind { once: None }, Target::Name(c"example".into(), 7));
        st.push_deferred(send(100), Target::Peer);
        st.push_deferred(send(20), Target::Addr(peer()));
        assert!(st.is_binding() && st.has_deferred());
        assert_eq!(st.queue_figures(), (120, 2));
        *st.front_deferred_mut().unwrap() = Target::Addr(peer());
        assert!(matches!(st.front_deferred(), Some(Target::Addr(_))));
        assert!(matches!(
            st.pop_deferred(),
            Some((Deferred::Bind { .. }, Target::Addr(_)))
        ));
        assert!(!st.is_binding());
        assert!(matches!(st.pop_deferred(), Some((Deferred::Send { .. }, Target::Peer))));
        assert_eq!(st.queue_figures(), (20, 1));
        assert!(matches!(
            st.pop_deferred(),
            Some((Deferred::Send { .. }, Target::Addr(_)))
        ));
        assert_eq!(st.queue_figures(), (0, 0));
        assert!(st.pop_deferred().is_none());
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn taking_the_deferred_operations_forgets_what_they_marked_only() {
        let mut st = state();
        st.push_deferred(Deferred::Bind { once: None }, Target::Name(c"example".into(), 7));
        st.push_deferred(Deferred::Connect { once: None }, Target::Addr(peer()));
        st.push_deferred(send(5), Target::Peer);
        assert!(st.is_binding() && st.has_peer());
        assert_eq!(st.take_deferred().len(), 3);
        assert!(!st.is_binding() && !st.has_peer() && !st.has_deferred());
        assert_eq!(st.queue_figures(), (0, 0));
        // A connected peer stays: the cancelled sends name it.
        st.set_connected(peer());
        st.push_deferred(send(5), Target::Peer);
        st.take_deferred();
        assert_eq!(st.peer_addr(), Some(peer()));
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn the_send_queue_counts_its_bytes() {
        let mut st = state();
        st.push_queued(queued(10));
        st.push_queued(queued(30));
        st.push_deferred(send(5), Target::Peer);
        assert_eq!(st.queued().len(), 2);
        assert_eq!(st.queue_figures(), (45, 3));
        assert_eq!(st.pop_queued().map(|s| s.data.len()), Some(10));
        assert_eq!(st.queue_figures(), (35, 2));
        assert_eq!(st.take_queued().len(), 1);
        assert_eq!(st.queue_figures(), (5, 1));
        assert!(st.pop_queued().is_none() && st.queued().is_empty());
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn check_room_counts_the_queue_what_waits_and_the_completions() {
        let mut st = state();
        assert!(st.check_room().is_ok());
        for _ in 0..SEND_QUEUE_MIN_COUNT {
            st.push_queued(queued(SEND_QUEUE_MIN_BYTES / SEND_QUEUE_MIN_COUNT));
        }
        assert_eq!(st.check_room(), Err(Errno(DGRAM_ENOBUFS)));
        st.take_queued();
        assert!(st.check_room().is_ok());
        // Datagrams waiting for a lookup count with the queue.
        for _ in 0..SEND_QUEUE_MIN_COUNT - 1 {
            st.push_queued(queued(1024));
        }
        assert!(st.check_room().is_ok());
        st.push_deferred(send(1024), Target::Peer);
        assert_eq!(st.check_room(), Err(Errno(DGRAM_ENOBUFS)));
        st.take_queued();
        st.take_deferred();
        // So do completions waiting for dispatch.
        st.pending_completions = MAX_UNDELIVERED_COMPLETIONS - 1;
        assert!(st.check_room().is_ok());
        st.pending_completions = MAX_UNDELIVERED_COMPLETIONS;
        assert_eq!(st.check_room(), Err(Errno(DGRAM_ENOBUFS)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn recycle_keeps_few_small_buffers() {
        let mut st = state();
        assert_eq!(st.spare_buffer().capacity(), 0);
        st.recycle(Vec::with_capacity(SPARE_BUFFER_MAX_BYTES + 1));
        assert_eq!(st.spare_buffer().capacity(), 0);
        let mut kept = Vec::with_capacity(64);
        kept.extend_from_slice(b"old");
        st.recycle(kept);
        let reused = st.spare_buffer();
        assert!(reused.is_empty() && reused.capacity() >= 64);
        for _ in 0..SPARE_BUFFERS + 5 {
            st.recycle(Vec::with_capacity(16));
        }
        let mut spares = 0;
        while st.spare_buffer().capacity() > 0 {
            spares += 1;
        }
        assert_eq!(spares, SPARE_BUFFERS);
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn end_read_tells_whether_anyone_waits() {
        let mut st = state();
        st.reading = true;
        assert!(!st.end_read() && !st.reading);
        st.reading = true;
        st.read_waiters = 1;
        assert!(st.end_read() && !st.reading);
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes a UDP socket, which Miri cannot")]
    fn offload_flags_follow_gso_and_gro() {
        let mut st = state();
        assert_eq!(st.offload_flags(), 0);
        st.gso = true;
        assert_eq!(st.offload_flags(), DGRAM_OFFLOAD_GSO);
        st.read_mode.gro = true;
        assert_eq!(st.offload_flags(), DGRAM_OFFLOAD_GSO | DGRAM_OFFLOAD_GRO);
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
