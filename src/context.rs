//! The context: its sockets, the reader that takes their datagrams and
//! delivers them, the queue of other events, and the background I/O thread.
//!
//! Who reads: in host dispatch the host's own thread, inside `dispatch` and
//! `run` (the fd the host polls is an epoll set of the sockets plus the
//! events doorbell); in I/O-thread dispatch the I/O thread. Either way a
//! batch is read and delivered on one thread, with no hand-off between
//! threads. The I/O thread also does what needs a thread of its own in both
//! modes: writing queued sends once a socket is writable, reading again
//! after a back-off for memory, and giving back the memory of idle batches.
//!
//! Locking order, to rule out deadlocks: the context's callback lock, then
//! the host reader (held by the one dispatching thread only), then a
//! socket's state lock, then the leaves (event queue, pool, registry,
//! paused list, resolver), none of which is held while taking another.
//! Host callbacks run with only the callback lock and the host reader held;
//! the callback lock is reentrant and nothing a callback can call takes the
//! host reader, so callbacks may call anything.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, ReentrantMutex, ReentrantMutexGuard};

use crate::batch::{RecvBatch, GRO_MAX_SEGMENTS, SLOT_SIZE};
use crate::error::{Errno, Result, DGRAM_EBUSY};
use crate::event::{deliver_message, run_callbacks, EventKind, RinfoCache, SocketHandle};
use crate::pool::BatchPool;
use crate::resolve::Resolver;
use crate::socket::{Admitted, Socket};
use crate::sys::{Doorbell, Epoll, RecvMmsg, EPOLLERR, EPOLLET, EPOLLIN, EPOLLOUT};
use crate::types::dgram_socket;

/// Where callbacks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Host,
    IoThread,
}

/// Received datagrams one read may take when the host asks for the default.
pub(crate) const DEFAULT_MAX_PENDING_MESSAGES: u32 = 8192;

/// The largest bound honoured; a larger `max_pending_events` is clamped to it.
pub(crate) const MAX_PENDING_MESSAGES_LIMIT: u32 = 1 << 20;

/// Batches a context's pool may hold: the one reader's, and one to spare.
const READER_BATCHES: usize = 2;

/// The epoll token of the doorbell in each set (the I/O thread's wake-up
/// in its set, the events doorbell in the host's); sockets count from 1.
const DOORBELL_TOKEN: u64 = 0;

/// Batched reads (of up to `BATCH_SLOTS` datagrams each) from one socket per
/// round, so that one busy socket cannot starve the others or the host's
/// events; epoll is level-triggered, so the rest waits for the next round.
const READS_PER_ROUND: usize = 4;

/// Ready sockets one round looks at; more wait for the next (level-triggered).
const READY_PER_ROUND: usize = 64;

/// Events in the queue that need no allocation to queue: the queue keeps
/// whatever capacity it once grew to.
const INITIAL_QUEUE_CAPACITY: usize = 1024;

const NO_EVENT: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// An event on its way to dispatch, and the socket it belongs to.
pub struct Event {
    pub socket: Arc<Socket>,
    pub kind: EventKind,
}

/// The host's handle of `socket`: the pointer `Arc::into_raw` gave it,
/// which is the same as `Arc::as_ptr` on any clone.
fn handle_of(socket: &Arc<Socket>) -> SocketHandle {
    SocketHandle(Arc::as_ptr(socket) as *mut dgram_socket)
}

/// The reading gear of the one thread that reads (the dispatching host
/// thread, or the I/O thread), reused for every read.
struct Reader {
    mmsg: Box<RecvMmsg>,
    /// The batch reads go into; taken from the pool on the first read of
    /// a round and given back at its end.
    batch: Option<Box<RecvBatch>>,
    /// The socket whose datagrams are left in `batch` when a dispatch's
    /// `max` cut a split GRO buffer short: they go first next time.
    leftover: Option<Arc<Socket>>,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            mmsg: RecvMmsg::new(),
            batch: None,
            leftover: None,
        }
    }
}

thread_local! {
    /// The context whose I/O thread this is (its address), or 0.
    static IO_THREAD_OF: Cell<usize> = const { Cell::new(0) };
}

pub struct Context {
    mode: Mode,
    /// The most datagrams one read takes (`max_pending_events`).
    read_limit: u32,
    /// The I/O thread's set: its wake-up, and in host dispatch the sockets
    /// for writability only; in I/O-thread dispatch for reading as well.
    epoll: Epoll,
    /// Wakes the I/O thread: shutdown, events to run in I/O-thread mode, a
    /// paused reader or a batch to trim.
    wake: Doorbell,
    /// What the host polls in host dispatch: the sockets, for reading, and
    /// the events doorbell below.
    host_epoll: Epoll,
    /// Raised while events wait for the host (host mode).
    host: Doorbell,
    /// The host's reading gear; locked by the dispatching thread only.
    host_reader: Mutex<Reader>,
    queue: Mutex<VecDeque<Event>>,
    /// Events in `queue`, readable without its lock.
    queued_events: AtomicUsize,
    pool: BatchPool,
    /// Sockets not read because no batch could be mapped; the I/O thread
    /// watches them again once the pool's back-off ends.
    paused: Mutex<Vec<Arc<Socket>>>,
    paused_readers: AtomicUsize,
    /// The last datagram source given to the host, formatted.
    rinfo: Mutex<RinfoCache>,
    sockets: Mutex<HashMap<u64, Arc<Socket>>>,
    next_token: AtomicU64,
    /// Bound, open sockets: each keeps the host's loop alive.
    bound_sockets: AtomicI64,
    /// Unfinished sends plus undelivered events that still count.
    pending: AtomicI64,
    dispatching: AtomicBool,
    /// Held while callbacks run, so that `dgram_close` from another thread
    /// waits for a running callback instead of racing it.
    callback_lock: ReentrantMutex<()>,
    shutdown: AtomicBool,
    freed: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Host name lookups; its thread starts with the first.
    resolver: Resolver,
}

impl Context {
    pub fn new(mode: Mode, max_pending_messages: u32) -> io::Result<Arc<Context>> {
        let epoll = Epoll::new()?;
        let wake = Doorbell::new()?;
        epoll.add(wake.raw(), EPOLLIN, DOORBELL_TOKEN)?;
        let host_epoll = Epoll::new()?;
        let host = Doorbell::new()?;
        host_epoll.add(host.raw(), EPOLLIN, DOORBELL_TOKEN)?;
        let read_limit = match max_pending_messages {
            0 => DEFAULT_MAX_PENDING_MESSAGES,
            n => n.min(MAX_PENDING_MESSAGES_LIMIT),
        };
        let ctx = Arc::new(Context {
            mode,
            read_limit,
            epoll,
            wake,
            host_epoll,
            host,
            host_reader: Mutex::new(Reader::new()),
            queue: Mutex::new(VecDeque::with_capacity(INITIAL_QUEUE_CAPACITY)),
            queued_events: AtomicUsize::new(0),
            pool: BatchPool::new(READER_BATCHES),
            paused: Mutex::new(Vec::new()),
            paused_readers: AtomicUsize::new(0),
            rinfo: Mutex::new(RinfoCache::default()),
            sockets: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(DOORBELL_TOKEN + 1),
            bound_sockets: AtomicI64::new(0),
            pending: AtomicI64::new(0),
            dispatching: AtomicBool::new(false),
            callback_lock: ReentrantMutex::new(()),
            shutdown: AtomicBool::new(false),
            freed: AtomicBool::new(false),
            thread: Mutex::new(None),
            resolver: Resolver::default(),
        });
        let io_ctx = Arc::clone(&ctx);
        let handle = std::thread::Builder::new()
            .name("dgram-io".into())
            .spawn(move || io_ctx.io_thread_main())?;
        *ctx.thread.lock() = Some(handle);
        Ok(ctx)
    }

    /// `dgram_context_free` has run (or is running).
    pub fn is_freed(&self) -> bool {
        self.freed.load(SeqCst)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The fd a host polls: readable while a socket has datagrams or events
    /// wait for dispatch (host mode; never in I/O-thread mode).
    pub fn host_fd(&self) -> i32 {
        self.host_epoll.raw()
    }

    fn is_io_thread(&self) -> bool {
        IO_THREAD_OF.with(|c| c.get()) == self as *const Context as usize
    }

    // ---- sockets -------------------------------------------------------

    pub fn new_token(&self) -> u64 {
        self.next_token.fetch_add(1, SeqCst)
    }

    pub fn register(&self, token: u64, socket: Arc<Socket>) {
        self.sockets.lock().insert(token, socket);
    }

    pub fn unregister(&self, token: u64) {
        let removed = self.sockets.lock().remove(&token);
        // Dropped outside the registry lock: a socket's drop may take other locks.
        drop(removed);
    }

    /// Starts watching a bound socket: for datagrams in the set of the
    /// thread that reads, for errors and (later) writability in the I/O
    /// thread's. The I/O thread's watch is edge-triggered while it waits for
    /// nothing, so that a socket error (EPOLLERR, which cannot be masked)
    /// that the host will read does not keep waking it.
    pub fn watch(&self, fd: i32, token: u64) -> io::Result<()> {
        match self.mode {
            Mode::Host => {
                self.host_epoll.add(fd, EPOLLIN, token)?;
                self.epoll.add(fd, EPOLLET, token).inspect_err(|_| {
                    let _ = self.host_epoll.delete(fd);
                })
            }
            Mode::IoThread => self.epoll.add(fd, EPOLLIN, token),
        }
    }

    /// Watches a socket for datagrams, or stops; `writable` is what the
    /// socket waits for on the other side and stays as it is.
    pub fn set_read_interest(&self, fd: i32, token: u64, readable: bool, writable: bool) -> io::Result<()> {
        match self.mode {
            Mode::Host => self.host_epoll.modify(fd, if readable { EPOLLIN } else { 0 }, token),
            Mode::IoThread => self.epoll.modify(fd, interest(readable, writable), token),
        }
    }

    /// Watches a socket for writability (queued sends), or stops.
    pub fn set_write_interest(&self, fd: i32, token: u64, readable: bool, writable: bool) -> io::Result<()> {
        match self.mode {
            Mode::Host => self.epoll.modify(fd, if writable { EPOLLOUT } else { EPOLLET }, token),
            Mode::IoThread => self.epoll.modify(fd, interest(readable, writable), token),
        }
    }

    pub fn unwatch(&self, fd: i32) {
        // Fails only if the fd was never added, which leaves nothing to undo.
        let _ = self.epoll.delete(fd);
        if self.mode == Mode::Host {
            let _ = self.host_epoll.delete(fd);
        }
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn callback_lock(&self) -> parking_lot::ReentrantMutexGuard<'_, ()> {
        self.callback_lock.lock()
    }

    // ---- what keeps a host loop alive -----------------------------------

    pub fn add_bound(&self, delta: i64) {
        self.bound_sockets.fetch_add(delta, SeqCst);
        self.wake_host_if_idle(delta);
    }

    pub fn add_pending(&self, delta: i64) {
        self.pending.fetch_add(delta, SeqCst);
        self.wake_host_if_idle(delta);
    }

    /// Keeps the context active while an operation first uncounts what it
    /// finishes and then counts what follows from it (a lookup's answer
    /// becoming a bind and its 'listening', a written send becoming its
    /// completion, a close becoming 'close'): without it `active` would
    /// touch 0 in between, and a host loop woken then would end too early.
    /// Take it only once the operation is known to have work, so that a
    /// no-op (a flush of a closed socket) never shows as activity.
    pub fn hold(&self) -> ActivityHold<'_> {
        self.pending.fetch_add(1, SeqCst);
        ActivityHold(self)
    }

    /// A host blocked in `run(-1)` returns once nothing is active, whatever
    /// made it so: a free, unref or completion on another thread leaves no
    /// event to wake it, so the last decrement raises the host fd itself.
    fn wake_host_if_idle(&self, delta: i64) {
        if delta < 0 && self.mode == Mode::Host && self.active() == 0 {
            self.host.ring();
        }
    }

    pub fn active(&self) -> u32 {
        if self.freed.load(SeqCst) {
            return 0;
        }
        let total = self.bound_sockets.load(SeqCst) + self.pending.load(SeqCst);
        total.clamp(0, u32::MAX as i64) as u32
    }

    // ---- the event queue -------------------------------------------------

    /// Queues an event; the socket has already counted it. Pushes from the
    /// I/O thread are signalled once per round, not once per event.
    pub fn enqueue(&self, event: Event) {
        self.queue.lock().push_back(event);
        self.queued_events.fetch_add(1, SeqCst);
        if !self.is_io_thread() {
            match self.mode {
                Mode::Host => self.host.ring(),
                Mode::IoThread => self.wake.ring(),
            }
        }
    }

    /// Runs the callbacks of up to `take` queued events, stopping once
    /// `budget` were delivered. Returns how many were delivered (with or
    /// without a callback set; an event of a closed or freed socket that is
    /// dropped is not).
    ///
    /// After each callback the callback lock is yielded to a thread waiting
    /// for it (`bump`: nothing happens when none waits), so that a close or
    /// free from another thread waits for the callback running then, not
    /// for the whole dispatch.
    fn run_events(&self, take: usize, budget: u32, callbacks: &mut ReentrantMutexGuard<'_, ()>) -> u32 {
        let mut delivered = 0u32;
        for _ in 0..take {
            if delivered >= budget || self.freed.load(SeqCst) {
                break;
            }
            let Some(event) = self.queue.lock().pop_front() else {
                break;
            };
            self.queued_events.fetch_sub(1, SeqCst);
            if let Some(handlers) = event.socket.admit(&event.kind, self) {
                delivered += 1;
                let socket = &event.socket;
                run_callbacks(handle_of(socket), &event.kind, handlers, || socket.is_silenced());
                ReentrantMutexGuard::bump(callbacks);
            }
        }
        delivered
    }

    // ---- host dispatch ---------------------------------------------------

    /// One round of host dispatch: what a dispatch's `max` left of the last
    /// read, then the events queued at entry, then each ready socket in
    /// `ready`, read and delivered (up to `max` deliveries; 0 for no limit).
    ///
    /// The host fd's doorbell stays raised while this runs, so that
    /// producers (the I/O thread above all) do not ring it again for what
    /// this round or the next will find anyway; it is lowered at the end,
    /// and raised again if events are left.
    fn host_round(&self, max: u32, ready: &[libc::epoll_event]) -> u32 {
        let budget = if max == 0 { u32::MAX } else { max };
        let mut callbacks = self.callback_lock.lock();
        let mut reader = self.host_reader.lock();
        let mut delivered = 0u32;
        if let Some(socket) = reader.leftover.take() {
            delivered += self.deliver_leftover(&socket, &mut reader, budget, &mut callbacks);
        }
        let queued = self.queued_events.load(SeqCst);
        delivered += self.run_events(queued, budget - delivered, &mut callbacks);
        for event in ready {
            if delivered >= budget || self.freed.load(SeqCst) {
                break;
            }
            let token = event.u64;
            if token == DOORBELL_TOKEN {
                continue;
            }
            let socket = self.sockets.lock().get(&token).cloned();
            if let Some(socket) = socket {
                delivered += self.read(&socket, &mut reader, budget - delivered, &mut callbacks);
            }
        }
        let left_over = reader.leftover.is_some();
        if !left_over {
            if let Some(batch) = reader.batch.take() {
                self.pool.give(batch);
            }
        }
        drop(reader);
        if self.pool.take_trim_request() {
            // Batches came back that the I/O thread will have to trim once
            // they rest; it may be waiting without a timeout.
            self.wake.ring();
        }
        if !self.freed.load(SeqCst) {
            // A producer that finds the doorbell raised has queued its
            // event before (see `Doorbell::lower`), and the check below
            // sees the event.
            if self.host.is_raised() {
                self.host.lower();
            }
            if left_over || self.queued_events.load(SeqCst) > 0 {
                self.host.ring();
            }
        }
        delivered
    }

    /// Delivers what a dispatch's `max` left in the reader's batch.
    fn deliver_leftover(
        &self,
        socket: &Arc<Socket>,
        reader: &mut Reader,
        budget: u32,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let Some(batch) = reader.batch.as_mut() else { return 0 };
        let delivered = match socket.current_handlers() {
            Some(admitted) => self.deliver(socket, admitted, batch, budget, callbacks),
            None => {
                batch.clear();
                0
            }
        };
        if batch.remaining() > 0 {
            reader.leftover = Some(Arc::clone(socket));
        }
        delivered
    }

    /// `dgram_context_dispatch`.
    pub fn dispatch(&self, max: u32) -> Result<u32> {
        if self.mode == Mode::IoThread {
            return self.io_mode_dispatch();
        }
        let _guard = self.enter_dispatch()?;
        let mut ready = [NO_EVENT; READY_PER_ROUND];
        let count = self.host_epoll.wait(&mut ready, 0).unwrap_or(0);
        let delivered = self.host_round(max, &ready[..count]);
        self.unless_freed(delivered)
    }

    /// `dgram_context_run`: waits for at least one event (or the timeout,
    /// -1 for none) and dispatches what is there. The wait is the host
    /// set's own, so what it reports is read at once.
    pub fn run(&self, timeout_ms: i32) -> Result<u32> {
        if self.mode == Mode::IoThread {
            return self.io_mode_dispatch();
        }
        let _guard = self.enter_dispatch()?;
        let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut ready = [NO_EVENT; READY_PER_ROUND];
        let mut count = self.host_epoll.wait(&mut ready, 0).unwrap_or(0);
        loop {
            if self.freed.load(SeqCst) {
                return Err(Errno::BADF);
            }
            if self.active() == 0 {
                return Ok(0);
            }
            let delivered = self.host_round(0, &ready[..count]);
            if delivered > 0 {
                return self.unless_freed(delivered);
            }
            let wait_ms = match deadline {
                None => -1,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(0);
                    }
                    // Round up so that a sub-millisecond remainder still waits.
                    left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                }
            };
            count = self.host_epoll.wait(&mut ready, wait_ms).unwrap_or(0);
        }
    }

    /// In I/O-thread mode there is nothing to dispatch: 0, or `DGRAM_EBUSY`
    /// from inside a callback (on the I/O thread), as in host mode.
    fn io_mode_dispatch(&self) -> Result<u32> {
        if self.is_io_thread() {
            Err(Errno(DGRAM_EBUSY))
        } else {
            Ok(0)
        }
    }

    /// A callback may have freed the context: then the host must learn that
    /// its handle is gone, not how many events ran.
    fn unless_freed(&self, delivered: u32) -> Result<u32> {
        if self.freed.load(SeqCst) {
            Err(Errno::BADF)
        } else {
            Ok(delivered)
        }
    }

    fn enter_dispatch(&self) -> Result<DispatchGuard<'_>> {
        if self.freed.load(SeqCst) {
            return Err(Errno::BADF);
        }
        self.dispatching
            .compare_exchange(false, true, SeqCst, SeqCst)
            .map_err(|_| Errno(DGRAM_EBUSY))?;
        Ok(DispatchGuard(&self.dispatching))
    }

    // ---- shutdown --------------------------------------------------------

    /// `dgram_context_free`: closes every socket without callbacks, stops and
    /// joins the I/O thread, and drops whatever events were still queued.
    pub fn shut_down(&self) {
        if self.freed.swap(true, SeqCst) {
            return;
        }
        let sockets: Vec<Arc<Socket>> = self.sockets.lock().values().cloned().collect();
        for socket in &sockets {
            socket.silence(self);
        }
        drop(sockets);
        self.resolver.shut_down();
        self.shutdown.store(true, SeqCst);
        self.wake.ring_always();
        // A host thread waiting in `run` wakes up and sees the context freed.
        self.host.ring_always();
        let handle = self.thread.lock().take();
        if let Some(handle) = handle {
            if self.is_io_thread() {
                // Freed from one of its own callbacks: the thread cannot join
                // itself; it sees `shutdown` and exits after this callback.
                drop(handle);
            } else {
                let _ = handle.join();
            }
        }
        let leftover = std::mem::take(&mut *self.queue.lock());
        self.queued_events.store(0, SeqCst);
        drop(leftover);
        drop(std::mem::take(&mut *self.paused.lock()));
        self.sockets.lock().clear();
    }

    // ---- reading ---------------------------------------------------------

    /// Reads what `socket` has, a batch per recvmmsg, and delivers each
    /// batch at once from its slots, on this thread: at most `budget`
    /// datagrams, and at most `READS_PER_ROUND` reads. Events queued before
    /// a read's datagrams arrived are run before they are delivered, so
    /// that a socket's 'listening' or a send's completion comes before the
    /// datagrams that follow it. Returns how many events and datagrams were
    /// delivered.
    ///
    /// With no batch to be had (no memory), the socket is not watched for
    /// datagrams until the pool's back-off ends: they wait in the kernel's
    /// buffer meanwhile, and what overflows it the kernel drops and counts.
    fn read(
        &self,
        socket: &Arc<Socket>,
        reader: &mut Reader,
        budget: u32,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let mut delivered = 0u32;
        for _ in 0..READS_PER_ROUND {
            if delivered >= budget || self.freed.load(SeqCst) {
                return delivered;
            }
            if reader.batch.is_none() {
                reader.batch = self.pool.take();
            }
            let Reader { mmsg, batch, leftover } = reader;
            let Some(batch) = batch.as_mut() else {
                self.pause(socket);
                return delivered;
            };
            // The mode is taken per read, and holds until the read is
            // accepted: turning GRO on waits for a read in flight (see
            // `Socket::set_offload`).
            let Some(reading) = socket.begin_read() else {
                return delivered;
            };
            let (fd, mode) = (reading.fd(), reading.mode());
            // As many slots as the socket's recent reads suggest: reads cost
            // the same natively either way, but tools that check every
            // iovec byte (valgrind) pay for each offered slot.
            // A GRO buffer is many datagrams: fewer slots, so that they all
            // fit the batch.
            let room = self.read_limit.min(budget - delivered) as usize;
            let slots = match mode.gro {
                false => room.min(socket.read_hint()),
                true => (room / GRO_MAX_SEGMENTS).clamp(1, mode.max_slots()),
            };
            match mmsg.recv(fd.as_raw_fd(), batch.slots_mut(), SLOT_SIZE, slots, mode.control()) {
                Ok(n) => {
                    socket.update_read_hint(n, slots);
                    // Without control messages every slot is one datagram,
                    // delivered straight from the read's own records;
                    // otherwise the batch splits GRO buffers and keeps
                    // each datagram's metadata.
                    let count = if mode.control() { batch.fill(mmsg, n, mode) } else { n };
                    let admitted = reading.accept(count);
                    // Whatever happened before these datagrams arrived was
                    // queued by now: a socket queues its events under the
                    // lock `accept` took.
                    let queued = self.queued_events.load(SeqCst);
                    if queued > 0 {
                        delivered += self.run_events(queued, budget - delivered, callbacks);
                    }
                    match (admitted, mode.control()) {
                        (Some(admitted), false) => {
                            let budget = budget - delivered;
                            delivered += self.deliver_read(socket, admitted, mmsg, batch, n, budget, callbacks);
                        }
                        (Some(admitted), true) => {
                            delivered += self.deliver(socket, admitted, batch, budget - delivered, callbacks);
                        }
                        (None, _) => batch.clear(),
                    }
                    if batch.remaining() > 0 {
                        // A split GRO buffer that `budget` cut short.
                        *leftover = Some(Arc::clone(socket));
                        return delivered;
                    }
                    batch.clear();
                    if n < slots {
                        return delivered; // The socket is drained.
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return delivered,
                Err(err) => {
                    drop(reading);
                    socket.report_receive_error(self, &err);
                    return delivered;
                }
            }
        }
        delivered
    }

    /// Calls the message callback for the `count` datagrams (at most
    /// `budget`) that the read recorded in `mmsg`, one per slot of `batch`,
    /// as `deliver` does for a filled batch: the common case, read without
    /// control messages, taken without copying a record per datagram.
    #[allow(clippy::too_many_arguments)]
    fn deliver_read(
        &self,
        socket: &Arc<Socket>,
        mut admitted: Admitted,
        mmsg: &RecvMmsg,
        batch: &RecvBatch,
        count: usize,
        budget: u32,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let mut spare = RinfoCache::default();
        let mut cached = self.rinfo.try_lock();
        let rinfo = cached.as_deref_mut().unwrap_or(&mut spare);
        let slots = batch.slots();
        let now = count.min(budget as usize);
        for i in 0..now {
            // A free of the context silences the socket, which changes
            // its epoch too.
            if socket.epoch() != admitted.epoch {
                match socket.current_handlers().filter(|_| !self.freed.load(SeqCst)) {
                    Some(fresh) => admitted = fresh,
                    None => return i as u32,
                }
            }
            let start = i * SLOT_SIZE;
            let data = &slots[start..start + mmsg.len(i).min(SLOT_SIZE)];
            let from = rinfo.get_raw(mmsg.source_key(i), || mmsg.source(i));
            // Counted before the callback, so that stats read inside it include it.
            socket.count_received(data.len());
            deliver_message(handle_of(socket), &admitted.handlers, data, from, None);
            ReentrantMutexGuard::bump(callbacks);
        }
        now as u32
    }

    /// Calls the message callback for up to `budget` datagrams of `batch`,
    /// all of `socket`, admitted with `admitted`. A handler change or a
    /// close, from inside a callback or from another thread between two
    /// callbacks, shows in the socket's epoch, and only then is it asked
    /// again; once it is closed (or the context freed) the rest of the
    /// batch is nobody's and is cleared. The callback lock is yielded after
    /// each callback, as in `run_events`.
    fn deliver(
        &self,
        socket: &Arc<Socket>,
        mut admitted: Admitted,
        batch: &mut RecvBatch,
        budget: u32,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        // Only the one reading thread delivers, so this never waits.
        let mut spare = RinfoCache::default();
        let mut cached = self.rinfo.try_lock();
        let rinfo = cached.as_deref_mut().unwrap_or(&mut spare);
        let now = batch.remaining().min(budget as usize);
        let mut done = 0;
        while done < now {
            // A free of the context silences the socket, which changes
            // its epoch too.
            if socket.epoch() != admitted.epoch {
                match socket.current_handlers().filter(|_| !self.freed.load(SeqCst)) {
                    Some(fresh) => admitted = fresh,
                    None => {
                        batch.clear();
                        return done as u32;
                    }
                }
            }
            let (data, from, meta) = batch.peek_at(done);
            // Counted before the callback, so that stats read inside it include it.
            socket.count_received(data.len());
            deliver_message(handle_of(socket), &admitted.handlers, data, rinfo.get(from), meta);
            done += 1;
            ReentrantMutexGuard::bump(callbacks);
        }
        batch.advance(done);
        done as u32
    }

    /// See `read`: the reader found no memory for a batch.
    fn pause(&self, socket: &Arc<Socket>) {
        if socket.pause_reading(self) {
            self.paused.lock().push(Arc::clone(socket));
            self.paused_readers.fetch_add(1, SeqCst);
            // The I/O thread resumes it, and may be waiting without a timeout.
            self.wake.ring();
        }
    }

    /// Watches the paused sockets again once the pool may map a batch.
    fn resume_paused(&self) {
        if self.paused_readers.load(SeqCst) == 0 || !self.pool.has_free() {
            return;
        }
        let sockets = std::mem::take(&mut *self.paused.lock());
        self.paused_readers.fetch_sub(sockets.len(), SeqCst);
        for socket in sockets {
            socket.resume_reading(self);
        }
    }

    // ---- the I/O thread --------------------------------------------------

    fn io_thread_main(self: Arc<Self>) {
        IO_THREAD_OF.with(|c| c.set(Arc::as_ptr(&self) as usize));
        let mut ready = [NO_EVENT; READY_PER_ROUND];
        let mut reader = Reader::new();
        while !self.shutdown.load(SeqCst) {
            self.resume_paused();
            let count = match self.epoll.wait(&mut ready, self.io_wait_ms()) {
                Ok(count) => count,
                Err(_) => {
                    // Nothing sane to do but avoid a hot loop; epoll_wait only
                    // fails on programming errors (EBADF, EINVAL).
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            for event in &ready[..count] {
                let (flags, token) = (event.events, event.u64);
                if token == DOORBELL_TOKEN {
                    self.wake.lower();
                    continue;
                }
                let socket = self.sockets.lock().get(&token).cloned();
                let Some(socket) = socket else { continue };
                // A panic here must not take the whole host down with a dead
                // I/O thread; the socket's event is simply skipped.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // In host dispatch the host reads, errors included; this
                    // thread only writes.
                    let reads_here = self.mode == Mode::IoThread;
                    if reads_here && flags & (EPOLLIN | EPOLLERR) != 0 {
                        let mut callbacks = self.callback_lock.lock();
                        self.read(&socket, &mut reader, u32::MAX, &mut callbacks);
                    }
                    if flags & EPOLLOUT != 0 || reads_here && flags & EPOLLERR != 0 {
                        socket.flush(&self);
                    }
                }));
            }
            if self.shutdown.load(SeqCst) {
                break;
            }
            match self.mode {
                Mode::IoThread => {
                    // Callbacks may have queued more events (a send from a
                    // send callback): they run before this thread sleeps.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut callbacks = self.callback_lock.lock();
                        let queued = self.queued_events.load(SeqCst);
                        self.run_events(queued, u32::MAX, &mut callbacks);
                    }));
                    if let Some(batch) = reader.batch.take() {
                        self.pool.give(batch);
                    }
                    self.pool.take_trim_request();
                }
                Mode::Host => {
                    // One wake-up for the whole round's events.
                    if self.queued_events.load(SeqCst) > 0 {
                        self.host.ring();
                    }
                }
            }
        }
    }

    /// How long the I/O thread may sleep: not at all while events wait for
    /// it (I/O-thread mode), else until the next batch has rested long
    /// enough to trim or the pool's back-off ends for a paused reader.
    fn io_wait_ms(&self) -> i32 {
        if self.mode == Mode::IoThread && self.queued_events.load(SeqCst) > 0 {
            return 0;
        }
        let trim_in = self.pool.trim_due();
        let retry_in = self.pool.retry_in().filter(|_| self.paused_readers.load(SeqCst) > 0);
        match (trim_in, retry_in) {
            (None, None) => -1,
            (a, b) => {
                let wait = a.unwrap_or(Duration::MAX).min(b.unwrap_or(Duration::MAX));
                wait.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        }
    }
}

/// The epoll events to watch; none at all is fine (errors still come).
fn interest(readable: bool, writable: bool) -> u32 {
    (if readable { EPOLLIN } else { 0 }) | (if writable { EPOLLOUT } else { 0 })
}

/// See `Context::hold`.
pub struct ActivityHold<'a>(&'a Context);

impl Drop for ActivityHold<'_> {
    fn drop(&mut self) {
        self.0.add_pending(-1);
    }
}

struct DispatchGuard<'a>(&'a AtomicBool);

impl Drop for DispatchGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Family;
    use crate::error::DGRAM_EBUSY;
    use crate::event::UserPtr;
    use crate::socket::SocketConfig;
    use crate::types::{dgram_addr, dgram_socket};
    use std::ffi::c_void;
    use std::io::IoSlice;
    use std::sync::atomic::AtomicUsize;

    const UDP4: SocketConfig = SocketConfig {
        family: Family::V4,
        reuse_addr: false,
        ipv6_only: false,
        recv_buffer_size: 0,
        send_buffer_size: 0,
    };

    struct Seen {
        messages: AtomicUsize,
        bytes: AtomicUsize,
        nested: AtomicI64,
        ctx: *const Context,
    }

    unsafe extern "C" fn on_message(
        _s: *mut dgram_socket,
        _msg: *const u8,
        len: usize,
        _rinfo: *const dgram_addr,
        userdata: *mut c_void,
    ) {
        let seen = &*(userdata as *const Seen);
        seen.messages.fetch_add(1, SeqCst);
        seen.bytes.fetch_add(len, SeqCst);
        // Dispatch must not nest.
        let nested = match (*seen.ctx).dispatch(0) {
            Ok(n) => n as i64,
            Err(Errno(code)) => code as i64,
        };
        seen.nested.store(nested, SeqCst);
    }

    fn dispatch_until(ctx: &Context, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out");
            ctx.run(50).unwrap();
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "starts a context and its I/O thread (epoll), which Miri cannot run")]
    fn activity_accounting_and_dispatch_counts() {
        let ctx = Context::new(Mode::Host, 0).unwrap();
        let seen = Seen {
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            nested: AtomicI64::new(1),
            ctx: &*ctx,
        };
        let userdata = UserPtr(&seen as *const Seen as *mut c_void);
        let server = Socket::create(&ctx, UDP4, Some(on_message), userdata).unwrap();
        let client = Socket::create(&ctx, UDP4, None, UserPtr(std::ptr::null_mut())).unwrap();
        // Created, unbound sockets keep nothing alive.
        assert_eq!(ctx.active(), 0);
        assert_eq!(ctx.run(10_000), Ok(0));

        server.bind(0, Some(c"127.0.0.1"), None).unwrap();
        // One bound socket plus its undelivered 'listening'.
        assert_eq!(ctx.active(), 2);
        assert_eq!(ctx.dispatch(0), Ok(1));
        assert_eq!(ctx.active(), 1);

        let port = crate::addr::bind_port(i32::from(server.address().unwrap().port)).unwrap();
        client
            .send(
                &[IoSlice::new(b"abc"), IoSlice::new(b"de")],
                port.into(),
                None,
                None,
                UserPtr(std::ptr::null_mut()),
            )
            .unwrap();
        dispatch_until(&ctx, || seen.messages.load(SeqCst) == 1);
        assert_eq!(seen.bytes.load(SeqCst), 5);
        assert_eq!(seen.nested.load(SeqCst), DGRAM_EBUSY as i64);
        // Two bound sockets (the client implicitly), nothing else pending.
        assert_eq!(ctx.active(), 2);

        client.close(None).unwrap();
        // The client's pending 'close' replaces its bound count.
        assert_eq!(ctx.active(), 2);
        assert_eq!(ctx.dispatch(0), Ok(1));
        assert_eq!(ctx.active(), 1);

        Arc::clone(&server).release();
        assert_eq!(ctx.active(), 0);
        ctx.shut_down();
        assert_eq!(server.address().map(|_| ()), Err(Errno::BADF));
    }
}
