//! Where a socket is and where it sends: bind (the implicit one too),
//! connect, disconnect, its two addresses, and the destination of a send.

use std::ffi::CStr;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use socket2::{SockAddr, SockRef};

use super::state::{Deferred, State, Target};
use super::Socket;
use crate::addr::{self, Destination};
use crate::context::Context;
use crate::error::{Errno, Result, DGRAM_EALREADY, DGRAM_EISCONN, DGRAM_ENOTCONN};
use crate::event::EventKind;
use crate::sys;
use crate::types::{dgram_addr, dgram_event_cb};

impl Socket {
    // ---- bind ----------------------------------------------------------------

    pub fn bind(self: &Arc<Self>, port: i32, address: Option<&CStr>, once: dgram_event_cb) -> Result<()> {
        let ctx = self.context()?;
        let mut st = self.state.lock();
        st.check_open()?;
        let target = addr::bind_target(address, port, self.family, st.raw_fd()?)?;
        if st.is_bound() || st.is_binding() {
            return Err(Errno(DGRAM_EALREADY));
        }
        match target {
            Destination::Addr(target) if !st.has_deferred() => {
                self.bind_locked(&ctx, &mut st, target)?;
                self.push(&ctx, &mut st, EventKind::Listening { once });
            }
            target => self.defer(&ctx, &mut st, Deferred::Bind { once }, target.into()),
        }
        Ok(())
    }

    pub(super) fn bind_locked(&self, ctx: &Context, st: &mut State, target: SocketAddr) -> Result<()> {
        let fd = st.raw_fd()?;
        SockRef::from(st.fd()?).bind(&SockAddr::from(target))?;
        ctx.watch(fd, self.token)?;
        st.mark_bound();
        if st.referenced {
            ctx.add_bound(1);
        }
        self.remember_local_port(st);
        Ok(())
    }

    /// Binds to the wildcard address first if the socket is not bound yet
    /// (send and connect do, as in Node), with its 'listening' event.
    pub(super) fn ensure_bound(self: &Arc<Self>, ctx: &Context, st: &mut State) -> Result<()> {
        if !st.is_bound() {
            self.bind_locked(ctx, st, self.family.unspecified(0))?;
            self.push(ctx, st, EventKind::Listening { once: None });
        }
        Ok(())
    }

    fn remember_local_port(&self, st: &mut State) {
        st.bound_addr = st.shared_fd().and_then(|fd| fd.local_addr().ok());
        if let Some(addr) = st.bound_addr {
            self.local_port.store(u32::from(addr.port()), Ordering::Relaxed);
        }
    }

    pub fn address(&self) -> Result<dgram_addr> {
        let st = self.state.lock();
        st.check_open()?;
        if !st.is_bound() {
            return Err(Errno::BADF);
        }
        let local = st.fd()?.local_addr()?;
        Ok(addr::to_c(&local))
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
        if st.has_peer() {
            return Err(Errno(DGRAM_EISCONN));
        }
        match target {
            Destination::Addr(peer) if !st.has_deferred() => self.connect_locked(&ctx, &mut st, peer, once),
            target => {
                self.defer(&ctx, &mut st, Deferred::Connect { once }, target.into());
                Ok(())
            }
        }
    }

    pub(super) fn connect_locked(
        self: &Arc<Self>,
        ctx: &Context,
        st: &mut State,
        peer: SocketAddr,
        once: dgram_event_cb,
    ) -> Result<()> {
        self.ensure_bound(ctx, st)?;
        SockRef::from(st.fd()?).connect(&SockAddr::from(peer))?;
        st.set_connected(peer);
        self.push(ctx, st, EventKind::Connect { once });
        Ok(())
    }

    /// `dgram_disconnect`. The socket keeps its local address and port.
    pub fn disconnect(&self) -> Result<()> {
        let mut st = self.state.lock();
        st.check_open()?;
        if st.peer_addr().is_none() {
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
        st.set_disconnected();
        Ok(())
    }

    pub fn remote_address(&self) -> Result<dgram_addr> {
        let st = self.state.lock();
        st.check_open()?;
        st.peer_addr().as_ref().map(addr::to_c).ok_or(Errno(DGRAM_ENOTCONN))
    }

    // ---- destination of a send ---------------------------------------------------

    /// Where a send goes: the peer on a connected socket (where giving a
    /// destination is `DGRAM_EISCONN`), else the given address, parsed once
    /// for a run of sends to the same text.
    pub(super) fn send_destination(&self, st: &mut State, address: Option<&CStr>, port: i32) -> Result<Target> {
        if st.has_peer() {
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
}
