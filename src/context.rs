//! The context: one background I/O thread (epoll), the sockets registered
//! with it, and the event queue between the I/O side and the callbacks.
//!
//! Locking order, to rule out deadlocks: the context's callback lock, then a
//! socket's state lock, then the socket registry. Host callbacks run with only
//! the callback lock held, which is reentrant, so they may call anything.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, ReentrantMutex, ReentrantMutexGuard};

use crate::batch::{RecvBatch, BATCH_SLOTS, GRO_MAX_SEGMENTS, SLOT_SIZE};
use crate::error::{Errno, Result, DGRAM_EBUSY};
use crate::event::{deliver_message, run_callbacks, Event, RinfoCache};
use crate::pool::BatchPool;
use crate::resolve::Resolver;
use crate::socket::Socket;
use crate::sys::{self, Epoll, EventFd, RecvMmsg, EPOLLERR, EPOLLIN, EPOLLOUT};

/// Where callbacks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Host,
    IoThread,
}

/// Received datagrams that may wait for dispatch when the host asks for the default.
pub(crate) const DEFAULT_MAX_PENDING_MESSAGES: u32 = 8192;

/// The largest bound honoured; a larger `max_pending_events` is clamped to
/// it (the header says so). Its batches are mapped only as they fill.
pub(crate) const MAX_PENDING_MESSAGES_LIMIT: u32 = 1 << 20;

/// The epoll token of the I/O thread's wake-up eventfd; sockets count from 1.
const WAKE_TOKEN: u64 = 0;

/// Batched reads (of up to `BATCH_SLOTS` datagrams each) from one socket per
/// wake-up, so that one busy socket cannot starve the others or the host's
/// events; epoll is level-triggered, so the rest waits for the next round.
const READS_PER_WAKEUP: usize = 4;

/// Events in the queue that need no allocation to queue: the queue keeps
/// whatever capacity it once grew to.
const INITIAL_QUEUE_CAPACITY: usize = 1024;

/// What waits for dispatch, in order: received datagrams travel a batch at a
/// time, everything else one event at a time.
enum Item {
    Batch(Box<RecvBatch>),
    Event(Event),
}

/// The I/O thread's reading gear, reused for every read.
struct Reader {
    mmsg: Box<RecvMmsg>,
    /// The empty batch the next read goes into; `None` while the pool is dry.
    batch: Option<Box<RecvBatch>>,
    /// Sockets not read while the queue is full: their datagrams wait in
    /// the kernel's buffer, which drops (and counts) what overflows it.
    paused: Vec<Arc<Socket>>,
}

thread_local! {
    /// The context whose I/O thread this is (its address), or 0.
    static IO_THREAD_OF: Cell<usize> = const { Cell::new(0) };
}

pub struct Context {
    mode: Mode,
    max_pending_messages: u32,
    pub(crate) epoll: Epoll,
    /// Wakes the I/O thread: shutdown, or events to run in I/O-thread mode.
    wake: EventFd,
    wake_pending: AtomicBool,
    /// Readable while events wait for the host (host mode).
    host: EventFd,
    host_signaled: AtomicBool,
    queue: Mutex<VecDeque<Item>>,
    pool: BatchPool,
    /// Sockets the I/O thread stopped reading because the queue was full.
    paused_readers: AtomicUsize,
    /// The last datagram source given to the host, formatted.
    rinfo: Mutex<RinfoCache>,
    /// Datagrams in the queue, against `max_pending_messages`.
    queued_messages: AtomicU32,
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
        let wake = EventFd::new()?;
        epoll.add(wake.raw(), EPOLLIN, WAKE_TOKEN)?;
        let max_pending_messages = match max_pending_messages {
            0 => DEFAULT_MAX_PENDING_MESSAGES,
            n => n.min(MAX_PENDING_MESSAGES_LIMIT),
        };
        let batch_limit = match mode {
            Mode::Host => host_batch_limit(max_pending_messages),
            // Callbacks on the I/O thread run right after each read.
            Mode::IoThread => 4,
        };
        let ctx = Arc::new(Context {
            mode,
            max_pending_messages,
            epoll,
            wake,
            wake_pending: AtomicBool::new(false),
            host: EventFd::new()?,
            host_signaled: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::with_capacity(INITIAL_QUEUE_CAPACITY)),
            pool: BatchPool::new(batch_limit),
            paused_readers: AtomicUsize::new(0),
            rinfo: Mutex::new(RinfoCache::default()),
            queued_messages: AtomicU32::new(0),
            sockets: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(WAKE_TOKEN + 1),
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

    /// The fd a host polls: readable while events wait for dispatch.
    pub fn host_fd(&self) -> i32 {
        self.host.raw()
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

    pub fn watch(&self, fd: i32, token: u64) -> io::Result<()> {
        self.epoll.add(fd, interest(true, false), token)
    }

    pub fn rewatch(&self, fd: i32, token: u64, readable: bool, writable: bool) -> io::Result<()> {
        self.epoll.modify(fd, interest(readable, writable), token)
    }

    pub fn unwatch(&self, fd: i32) {
        // Fails only if the fd was never added, which leaves nothing to undo.
        let _ = self.epoll.delete(fd);
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
        if delta < 0 && self.mode == Mode::Host && self.active() == 0 && !self.host_signaled.swap(true, SeqCst) {
            self.host.signal();
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
        self.queue.lock().push_back(Item::Event(event));
        if !self.is_io_thread() {
            self.notify();
        }
    }

    /// Queues the `count` datagrams just read into `*slot` (the socket has
    /// counted them), and leaves an empty batch in `*slot`, or `None` if the
    /// pool is dry. I/O thread only.
    pub fn publish_batch(&self, slot: &mut Option<Box<RecvBatch>>, count: usize) {
        let Some(mut batch) = slot.take() else { return };
        self.queued_messages.fetch_add(count as u32, SeqCst);
        let mut queue = self.queue.lock();
        if let Some(Item::Batch(tail)) = queue.back_mut() {
            if tail.absorb(&mut batch) {
                drop(queue);
                *slot = Some(batch);
                return;
            }
        }
        if !queue.is_empty() {
            // The host is behind: this batch waits, so make it dense.
            batch.compact();
        }
        queue.push_back(Item::Batch(batch));
        drop(queue);
        *slot = self.pool.take();
    }

    fn notify(&self) {
        match self.mode {
            Mode::Host => {
                if !self.host_signaled.swap(true, SeqCst) {
                    self.host.signal();
                }
            }
            Mode::IoThread => {
                if !self.wake_pending.swap(true, SeqCst) {
                    self.wake.signal();
                }
            }
        }
    }

    /// Whether reading paused sockets again makes sense: the queue has room
    /// and a batch can be had (a free one, or a new one while the pool is
    /// under its limit and not backing off from a failed mapping).
    fn has_room_to_resume(&self) -> bool {
        self.queued_messages.load(SeqCst) < self.max_pending_messages && self.pool.has_free()
    }

    fn queue_is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }

    /// Runs callbacks for queued events: up to `max` delivered events (each
    /// datagram counts as one), or, with `max == 0`, the queue's entries at
    /// entry. Returns how many events were delivered (with or without a
    /// callback set).
    ///
    /// In host mode the host fd stays signalled while this runs, so that
    /// producers (the I/O thread above all) do not write to it again for
    /// what this call or the next will find anyway; it is lowered at the
    /// end, and raised again if anything is left.
    fn drain(&self, max: u32) -> u32 {
        let snapshot = self.queue.lock().len();
        let mut callbacks = self.callback_lock.lock();
        let mut delivered = 0u32;
        let mut taken = 0usize;
        while !self.freed.load(SeqCst) {
            if max == 0 && taken >= snapshot || max != 0 && delivered >= max {
                break;
            }
            let Some(item) = self.queue.lock().pop_front() else {
                break;
            };
            taken += 1;
            match item {
                Item::Event(event) => {
                    if let Some(handlers) = event.socket.admit(&event.kind, self) {
                        delivered += 1;
                        run_callbacks(&event.socket, &event.kind, handlers);
                        ReentrantMutexGuard::bump(&mut callbacks);
                    }
                }
                Item::Batch(mut batch) => {
                    self.queued_messages.fetch_sub(batch.remaining() as u32, SeqCst);
                    let budget = if max == 0 { u32::MAX } else { max - delivered };
                    delivered += self.deliver_batch(&mut batch, budget, &mut callbacks);
                    if batch.remaining() > 0 && !self.freed.load(SeqCst) {
                        // Stopped by `max`: the rest goes first next time.
                        self.queued_messages.fetch_add(batch.remaining() as u32, SeqCst);
                        self.queue.lock().push_front(Item::Batch(batch));
                        break;
                    }
                    self.pool.give(batch);
                }
            }
        }
        // The I/O thread stopped reading some sockets and there is room
        // again, or batches came back that it will have to trim once they
        // rest (it may be waiting without a timeout).
        let resume = self.paused_readers.load(SeqCst) > 0 && self.has_room_to_resume();
        if (self.pool.take_trim_request() || resume) && !self.wake_pending.swap(true, SeqCst) {
            self.wake.signal();
        }
        if self.mode == Mode::Host && !self.freed.load(SeqCst) {
            // The flag goes down only after the fd is read (see
            // `clear_then_rearm`); a producer that finds it up has queued
            // its event before, and the check below sees the event.
            if self.host_signaled.load(SeqCst) {
                self.host.clear_then_rearm(&self.host_signaled);
            }
            if !self.queue_is_empty() && !self.host_signaled.swap(true, SeqCst) {
                self.host.signal();
            }
        }
        delivered
    }

    /// Delivers up to `budget` datagrams of `batch`, run by run. A run's
    /// socket is admitted once; a handler change or a close, from inside a
    /// callback or from another thread between two callbacks, shows in the
    /// socket's epoch, and only then is it asked again.
    ///
    /// After each callback the callback lock is yielded to a thread waiting
    /// for it (`bump`: nothing happens when none waits), so that a close or
    /// free from another thread waits for the callback running then, not
    /// for the whole dispatch.
    fn deliver_batch(&self, batch: &mut RecvBatch, budget: u32, callbacks: &mut ReentrantMutexGuard<'_, ()>) -> u32 {
        let mut delivered = 0u32;
        // Only the one dispatching thread delivers, so this never waits.
        let mut spare = RinfoCache::default();
        let mut cached = self.rinfo.try_lock();
        let rinfo = cached.as_deref_mut().unwrap_or(&mut spare);
        while let Some((socket, in_run)) = batch.current_run() {
            if self.freed.load(SeqCst) {
                break;
            }
            let socket = Arc::clone(socket);
            let Some(mut admitted) = socket.admit_run(in_run, self) else {
                batch.advance(in_run);
                continue;
            };
            let now = in_run.min((budget - delivered) as usize);
            let mut done = 0;
            let mut open = true;
            while done < now {
                // A handler change, a close, a free of the socket or of the
                // context (which closes every socket) from inside a callback
                // all show here.
                if socket.epoch() != admitted.epoch {
                    match socket.current_handlers() {
                        Some(fresh) => admitted = fresh,
                        None => {
                            open = false;
                            break;
                        }
                    }
                }
                let (data, from, meta) = batch.peek_at(done);
                // Counted before the callback, so that stats read inside it include it.
                socket.count_received(data.len());
                deliver_message(&socket, &admitted.handlers, data, from, meta, rinfo);
                done += 1;
                ReentrantMutexGuard::bump(callbacks);
            }
            delivered += done as u32;
            if !open {
                // The rest of the run is nobody's: uncounted when it closed.
                batch.advance(in_run);
                continue;
            }
            batch.advance(done);
            if done < in_run {
                // Stopped by the budget: those not delivered count again as waiting.
                socket.recount(in_run - done, self);
                return delivered;
            }
        }
        delivered
    }

    /// `dgram_context_dispatch`.
    pub fn dispatch(&self, max: u32) -> Result<u32> {
        if self.mode == Mode::IoThread {
            return self.io_mode_dispatch();
        }
        let _guard = self.enter_dispatch()?;
        let delivered = self.drain(max);
        self.unless_freed(delivered)
    }

    /// `dgram_context_run`: waits for at least one event (or the timeout,
    /// -1 for none) and dispatches what is queued.
    pub fn run(&self, timeout_ms: i32) -> Result<u32> {
        if self.mode == Mode::IoThread {
            return self.io_mode_dispatch();
        }
        let _guard = self.enter_dispatch()?;
        let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        loop {
            if self.freed.load(SeqCst) {
                return Err(Errno::BADF);
            }
            if self.active() == 0 {
                return Ok(0);
            }
            let delivered = self.drain(0);
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
            sys::wait_readable(self.host.raw(), wait_ms);
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
        self.wake.signal();
        // A host thread waiting in `run` wakes up and sees the context freed.
        self.host.signal();
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
        drop(leftover);
        self.sockets.lock().clear();
    }

    // ---- the I/O thread --------------------------------------------------

    fn io_thread_main(self: Arc<Self>) {
        IO_THREAD_OF.with(|c| c.set(Arc::as_ptr(&self) as usize));
        let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut reader = Reader {
            mmsg: RecvMmsg::new(),
            batch: None,
            paused: Vec::with_capacity(ready.len()),
        };
        while !self.shutdown.load(SeqCst) {
            if !reader.paused.is_empty() && self.has_room_to_resume() {
                for socket in reader.paused.drain(..) {
                    socket.resume_reading(&self);
                }
                self.paused_readers.store(0, SeqCst);
            }
            // In I/O-thread mode, callbacks may have queued more events (a
            // send from a send callback): run them before sleeping. Readers
            // paused for want of memory are retried when the pool's back-off
            // ends, never in a hot loop.
            // Free batches that rest are trimmed here, on this thread, and
            // the wait ends when the next one will have rested.
            let trim_in = self.pool.trim_due();
            let retry_in = self.pool.retry_in().filter(|_| !reader.paused.is_empty());
            let timeout = if self.mode == Mode::IoThread && !self.queue_is_empty() {
                0
            } else {
                match (trim_in, retry_in) {
                    (None, None) => -1,
                    (a, b) => {
                        let wait = a.unwrap_or(Duration::MAX).min(b.unwrap_or(Duration::MAX));
                        wait.as_millis().clamp(1, i32::MAX as u128) as i32
                    }
                }
            };
            let count = match self.epoll.wait(&mut ready, timeout) {
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
                if token == WAKE_TOKEN {
                    self.wake.clear_then_rearm(&self.wake_pending);
                    continue;
                }
                let socket = self.sockets.lock().get(&token).cloned();
                let Some(socket) = socket else { continue };
                // A panic here must not take the whole host down with a dead
                // I/O thread; the socket's event is simply skipped.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if flags & (EPOLLIN | EPOLLERR) != 0 {
                        self.read(&socket, &mut reader);
                    }
                    if flags & (EPOLLOUT | EPOLLERR) != 0 {
                        socket.flush(&self);
                    }
                }));
            }
            if self.shutdown.load(SeqCst) {
                break;
            }
            match self.mode {
                Mode::IoThread => {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.drain(0)));
                }
                Mode::Host => {
                    // One wake-up for the whole round's events.
                    if !self.queue_is_empty() && !self.host_signaled.swap(true, SeqCst) {
                        self.host.signal();
                    }
                }
            }
        }
    }

    /// Reads what `socket` has, a batch per recvmmsg, into the queue. At
    /// `max_pending_messages` (or with every batch in use) it stops reading
    /// the socket until dispatch has made room: the datagrams wait in the
    /// kernel's buffer instead, and what overflows that is dropped and
    /// counted by the kernel.
    fn read(&self, socket: &Arc<Socket>, reader: &mut Reader) {
        for _ in 0..READS_PER_WAKEUP {
            if reader.batch.is_none() {
                reader.batch = self.pool.take();
                if reader.batch.is_none() && self.mode == Mode::IoThread {
                    // Callbacks run on this thread: deliver, then read on.
                    self.drain(0);
                    reader.batch = self.pool.take();
                }
            }
            let queued = self.queued_messages.load(SeqCst);
            let room = self.max_pending_messages.saturating_sub(queued) as usize;
            let Some(batch) = reader.batch.as_mut().filter(|_| room > 0) else {
                // The queue is full (or no memory for a batch): leave the rest
                // in the kernel's buffer until dispatch makes room.
                if socket.pause_reading(self) {
                    reader.paused.push(Arc::clone(socket));
                    self.paused_readers.fetch_add(1, SeqCst);
                }
                return;
            };
            // The mode is taken per read, and holds until the read is
            // accepted: turning GRO on waits for a read in flight (see
            // `Socket::set_offload`).
            let Some(reading) = socket.begin_read() else { return };
            let (fd, mode) = (reading.fd(), reading.mode());
            // As many slots as the socket's recent reads suggest: reads cost
            // the same natively either way, but tools that check every
            // iovec byte (valgrind) pay for each offered slot.
            // A GRO buffer is many datagrams: fewer slots, so that they all
            // fit the batch and `room` still bounds what is read.
            let slots = match mode.gro {
                false => room.min(socket.read_hint()),
                true => (room / GRO_MAX_SEGMENTS).clamp(1, mode.max_slots()),
            };
            let region = &mut batch.slots_mut()[..slots * SLOT_SIZE];
            match reader.mmsg.recv(fd.as_raw_fd(), region, SLOT_SIZE, mode.control()) {
                Ok(n) => {
                    socket.update_read_hint(n, slots);
                    let datagrams = batch.fill(socket, &reader.mmsg, n, mode);
                    reading.accept(self, &mut reader.batch, datagrams);
                    if n < slots {
                        return; // The socket is drained.
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    socket.report_receive_error(self, &err);
                    return;
                }
            }
        }
    }
}

/// The batches a host-dispatch context may hold, as the header states it:
/// enough to queue the bound in full batches, plus the one being read into
/// and the one being dispatched; for a bound of 64 or less, one per
/// datagram plus one, since reads that come between other events cannot
/// share a batch. When all are in use, reading stops as at the bound.
pub(crate) fn host_batch_limit(max_pending_messages: u32) -> usize {
    let max = max_pending_messages as usize;
    if max <= 64 {
        max + 1
    } else {
        max.div_ceil(BATCH_SLOTS) + 2
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
