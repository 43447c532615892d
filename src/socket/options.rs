//! Socket options set on the open fd: broadcast, TTLs, multicast and its
//! memberships, buffer sizes; and the fd itself for the host.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockRef;

use super::Socket;
use crate::addr::{self, Family};
use crate::error::{Errno, Result};
use crate::sys;

impl Socket {
    /// Runs `f` on the open socket's fd, mapping OS errors to codes.
    pub(super) fn with_fd<T>(&self, f: impl FnOnce(SockRef<'_>) -> io::Result<T>) -> Result<T> {
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

    pub fn fileno(&self) -> Result<i32> {
        let st = self.state.lock();
        st.check_open()?;
        st.raw_fd()
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

    // ---- buffers -----------------------------------------------------------------

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
}
