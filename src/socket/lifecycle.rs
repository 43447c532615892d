//! The end of a socket (close, then silence once the host frees it or its
//! context goes) and what keeps the host's loop alive meanwhile (ref/unref).

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::state::{Deferred, State, Target};
use super::{add_data, Socket};
use crate::context::Context;
use crate::error::{Result, DGRAM_ECANCELED};
use crate::event::EventKind;
use crate::sys;
use crate::types::dgram_event_cb;

impl Socket {
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
        let closed = st.close();
        self.bump_epoch();
        if let Some((fd, was_bound)) = closed {
            let drops = sys::socket_drops(fd.as_raw_fd());
            self.counters
                .final_kernel_drops
                .store(u64::from(drops), Ordering::Relaxed);
            if was_bound {
                ctx.unwatch(fd.as_raw_fd());
                if st.referenced {
                    ctx.add_bound(-1);
                }
            }
            // The fd itself closes when the reader drops its clone, if it
            // is reading right now; it can no longer be reached from here.
        }
        // Queued 'listening' and 'connect' no longer keep the host alive.
        let data = st.pending_data;
        add_data(ctx, st, -data);
        let cancelled = st.take_queued();
        let waiting = st.take_deferred();
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
        if !st.is_closed() {
            self.close_locked(ctx, &mut st, false);
        }
        if let Some(completions) = st.silence() {
            self.bump_epoch();
            ctx.add_pending(-completions);
        }
    }

    /// Freed by the host, or its context freed: no callback may run any
    /// more. The context is asked too: a socket that had already closed is
    /// no longer among those its free silences, and a callback of its
    /// 'close' may be the one freeing the context (found by the fuzzer).
    pub fn is_silenced(&self) -> bool {
        self.state.lock().is_silenced() || self.ctx.upgrade().map_or(true, |ctx| ctx.is_freed())
    }

    /// `dgram_socket_free`: the host lets go of its handle.
    pub fn release(self: Arc<Self>) {
        if let Some(ctx) = self.ctx.upgrade() {
            self.silence(&ctx);
        }
    }

    /// Whether the socket counts in `dgram_context_active`: its being bound
    /// and its undelivered 'listening'/'connect' events do
    /// only while referenced; send completions, errors and 'close' always.
    pub fn set_referenced(&self, referenced: bool) -> Result<()> {
        let ctx = self.context()?;
        let _hold = ctx.hold();
        let mut st = self.state.lock();
        st.check_open()?;
        if st.referenced != referenced {
            let sign = if referenced { 1 } else { -1 };
            if st.is_bound() {
                ctx.add_bound(sign);
            }
            ctx.add_pending(sign * st.pending_data);
            st.referenced = referenced;
        }
        Ok(())
    }
}
