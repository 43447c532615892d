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
//! host reader (or waits for it), so callbacks may call anything. The full
//! table is in docs/design.md.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, ReentrantMutex, ReentrantMutexGuard};

use crate::activity::{Activity, Change};
use crate::event::{run_callbacks, EventKind, SocketHandle};
use crate::pool::BatchPool;
use crate::resolve::Resolver;
use crate::socket::Socket;
use crate::sys::{Doorbell, Epoll, EPOLLET, EPOLLIN, EPOLLOUT};
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

/// Hashes the registry's keys, epoll tokens handed out in sequence, with
/// one multiplication (Fibonacci hashing spreads them over the high bits
/// the table probes with): the registry is looked up for every ready
/// socket of every round, and SipHash's protection against chosen keys is
/// not needed for numbers the context chose itself.
#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in all the same.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, token: u64) {
        self.0 = token.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

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

thread_local! {
    /// The context whose I/O thread this is (its address), or 0.
    static IO_THREAD_OF: Cell<usize> = const { Cell::new(0) };
}

mod dispatch;
mod io_thread;
mod reader;

use reader::Reader;

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
    sockets: Mutex<HashMap<u64, Arc<Socket>, BuildHasherDefault<TokenHasher>>>,
    next_token: AtomicU64,
    /// What keeps the host's loop alive (`dgram_context_active`).
    activity: Activity,
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
            sockets: Mutex::new(HashMap::default()),
            next_token: AtomicU64::new(DOORBELL_TOKEN + 1),
            activity: Activity::default(),
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
        let change = self.activity.add_bound(delta);
        self.wake_host_if_idle(change);
    }

    pub fn add_pending(&self, delta: i64) {
        let change = self.activity.add_pending(delta);
        self.wake_host_if_idle(change);
    }

    /// Keeps the context active while an operation first uncounts what it
    /// finishes and then counts what follows from it (a lookup's answer
    /// becoming a bind and its 'listening', a written send becoming its
    /// completion, a close becoming 'close'): without it `active` would
    /// touch 0 in between, and a host loop woken then would end too early.
    /// Take it only once the operation is known to have work, so that a
    /// no-op (a flush of a closed socket) never shows as activity.
    pub fn hold(&self) -> ActivityHold<'_> {
        self.activity.add_pending(1);
        ActivityHold(self)
    }

    /// A host blocked in `run(-1)` returns once nothing is active, whatever
    /// made it so: a free, unref or completion on another thread leaves no
    /// event to wake it, so the last decrement raises the host fd itself.
    fn wake_host_if_idle(&self, change: Change) {
        if change == Change::Idle && self.mode == Mode::Host {
            self.host.ring();
        }
    }

    pub fn active(&self) -> u32 {
        if self.freed.load(SeqCst) {
            return 0;
        }
        self.activity.total()
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
        // Socket references are dropped outside the locks, as everywhere.
        let leftover = std::mem::take(&mut *self.queue.lock());
        self.queued_events.store(0, SeqCst);
        drop(leftover);
        let paused = std::mem::take(&mut *self.paused.lock());
        drop(paused);
        let registered = std::mem::take(&mut *self.sockets.lock());
        drop(registered);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Family;
    use crate::error::Errno;
    use crate::error::DGRAM_EBUSY;
    use crate::event::UserPtr;
    use crate::socket::SocketConfig;
    use crate::types::{dgram_addr, dgram_socket};
    use std::ffi::c_void;
    use std::io::IoSlice;
    use std::sync::atomic::{AtomicI64, AtomicUsize};
    use std::time::{Duration, Instant};

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
