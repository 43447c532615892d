//! The socket state machine: created → bound → closed (→ silenced once the
//! host frees it or its context goes), its send queue, and the accounting
//! that tells the host loop whether anything is left to do.
//!
//! Here: `Socket`, its creation, handlers and events. `state` is the data
//! its lock guards; each other module adds the `Socket` methods of one
//! concern.

mod addressing;
mod destination;
mod lifecycle;
mod lookup;
mod options;
mod recv;
mod send;
mod state;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};
use socket2::{Domain, Protocol, Type};

use crate::addr::Family;
use crate::batch::BATCH_SLOTS;
use crate::context::Context;
use crate::context::Event;
use crate::error::{Errno, Result};
use crate::event::{EventKind, Handlers, UserPtr};
use crate::sys;
use crate::types::{dgram_error_cb, dgram_event_cb, dgram_message_cb, DGRAM_OFFLOAD_GSO};

pub use recv::Reading;
pub(crate) use send::SEND_BATCH_MAX;
use state::State;

/// How the host asked for the socket to be made.
#[derive(Clone, Copy, Debug)]
pub struct SocketConfig {
    pub family: Family,
    pub reuse_addr: bool,
    pub ipv6_only: bool,
    pub recv_buffer_size: usize,
    pub send_buffer_size: usize,
}

pub struct Socket {
    ctx: Weak<Context>,
    token: u64,
    family: Family,
    state: Mutex<State>,
    /// Changes whenever the handlers change or the socket closes, so that
    /// delivering a run of datagrams needs the state lock only once.
    epoch: AtomicU32,
    /// How many slots the next read offers (the reading thread only): see
    /// `update_read_hint`.
    read_hint: AtomicUsize,
    /// The bound port, for the metadata's local address.
    local_port: AtomicU32,
    counters: Counters,
    /// Signalled when a read ends (`Reading` dropped).
    read_done: Condvar,
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
        let handlers = Handlers {
            on_message,
            on_listening: None,
            on_close: None,
            on_error: None,
            on_connect: None,
            userdata,
        };
        let gso = sys::offload_support() & DGRAM_OFFLOAD_GSO != 0;
        let socket = Arc::new(Socket {
            ctx: Arc::downgrade(ctx),
            token,
            family: config.family,
            state: Mutex::new(State::new(Arc::new(UdpSocket::from(raw)), handlers, gso)),
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
            add_data(ctx, st, 1);
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
        if st.is_silenced() {
            return None;
        }
        if kind.is_completion() {
            st.pending_completions -= 1;
            ctx.add_pending(-1);
        } else {
            if st.is_closed() {
                // Uncounted already, when the socket closed.
                return None;
            }
            add_data(ctx, &mut st, -1);
        }
        Some(st.handlers)
    }

    /// The handlers now, or `None` once closed or freed.
    pub fn current_handlers(&self) -> Option<Admitted> {
        let st = self.state.lock();
        (!st.is_closed()).then(|| Admitted {
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
}

/// Counts `delta` undelivered 'listening'/'connect' events;
/// they keep the host's loop alive only while the socket is referenced.
fn add_data(ctx: &Context, st: &mut State, delta: i64) {
    st.pending_data += delta;
    if st.referenced {
        ctx.add_pending(delta);
    }
}
