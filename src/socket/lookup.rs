//! Operations that wait behind a host name lookup: a bind, connect or send
//! to a name queues until the resolver answers, and every operation after it
//! queues too, so that a socket's operations keep their call order.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::state::{Deferred, State, Target};
use super::Socket;
use crate::context::Context;
use crate::error::{Errno, DGRAM_EALREADY, DGRAM_ENOTCONN};
use crate::event::{ErrorInfo, EventKind, UserPtr};
use crate::resolve::Lookup;
use crate::types::dgram_send_cb;

impl Socket {
    /// Queues an operation behind the lookups before it, and starts the
    /// lookup at the front if none runs. Counts as pending until it runs.
    pub(super) fn defer(self: &Arc<Self>, ctx: &Context, st: &mut State, op: Deferred, target: Target) {
        st.push_deferred(op, target);
        ctx.add_pending(1);
        self.run_deferred(ctx, st);
    }

    /// Copies a datagram made of `bufs` and queues its send behind the
    /// lookups before it, counted in the send queue's figures.
    pub(super) fn defer_send(
        self: &Arc<Self>,
        ctx: &Context,
        st: &mut State,
        bufs: &[IoSlice<'_>],
        cb: dgram_send_cb,
        send_data: UserPtr,
        target: Target,
    ) {
        let mut data = st.spare_buffer();
        for buf in bufs {
            data.extend_from_slice(buf);
        }
        self.defer(ctx, st, Deferred::Send { data, cb, send_data }, target);
    }

    /// Runs the waiting operations whose address is known, in order, up to
    /// the first that needs a lookup, and asks for that one.
    fn run_deferred(self: &Arc<Self>, ctx: &Context, st: &mut State) {
        while let Some(target) = st.front_deferred() {
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
                            let (op, target) = st.pop_deferred().expect("front exists");
                            self.fail_deferred(ctx, st, op, target, Errno::from_io(&err).0);
                            continue;
                        }
                    }
                }
                return;
            }
            let (op, target) = st.pop_deferred().expect("front exists");
            self.finish_deferred(ctx, st, op, target);
        }
    }

    /// The resolver's answer for the front operation (resolver thread).
    pub fn resolved(self: &Arc<Self>, answer: std::result::Result<IpAddr, i32>) {
        let Ok(ctx) = self.context() else { return };
        let mut st = self.state.lock();
        st.lookup_in_flight = false;
        if st.is_closed() {
            return;
        }
        let Some(Target::Name(_, port)) = st.front_deferred() else {
            return;
        };
        let _hold = ctx.hold();
        let port = *port;
        match answer {
            Ok(ip) => {
                let front = st.front_deferred_mut().expect("front exists");
                *front = Target::Addr(SocketAddr::new(ip, port));
            }
            Err(code) => {
                let (op, target) = st.pop_deferred().expect("front exists");
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
                let length = data.len();
                if dest.is_none() && st.peer_addr().is_none() {
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
                let Some(addr) = dest else { return };
                let result = if st.is_bound() {
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
                self.complete_send(ctx, st, cb, send_data, data.len(), Some(error));
                st.recycle(data);
            }
            Deferred::Bind { .. } | Deferred::Connect { .. } => self.push(ctx, st, EventKind::Error(error)),
        }
    }
}
