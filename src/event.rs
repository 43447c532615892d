//! Events other than received datagrams (which are delivered from the read
//! that took them: see `context::reader`), what they carry, and the two
//! functions that call into the host's code (`run_callbacks`,
//! `deliver_message`).

use std::cell::Cell;
use std::ffi::{c_void, CStr, CString};
use std::net::SocketAddr;

use crate::addr;
use crate::sys::RecvMeta;
use crate::types::{
    dgram_addr, dgram_error, dgram_error_cb, dgram_event_cb, dgram_message_cb, dgram_send_cb, dgram_socket,
};

/// A host pointer (userdata, send_data) that the library only carries and
/// hands back; it never dereferences it.
#[derive(Clone, Copy, Debug)]
pub struct UserPtr(pub *mut c_void);

// SAFETY: the library never dereferences the pointer; which thread the host
// gets it back on is documented in the header (the dispatch mode).
unsafe impl Send for UserPtr {}
unsafe impl Sync for UserPtr {}

/// A socket's handle as the host holds it, passed back to its callbacks;
/// never dereferenced here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketHandle(pub *mut dgram_socket);

/// An error with its context, as the host will see it in `dgram_error`.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub code: i32,
    pub syscall: &'static CStr,
    pub addr: Option<SocketAddr>,
    /// The name whose lookup failed; only lookup errors carry one, so the
    /// allocation is on that error path alone.
    pub hostname: Option<Box<CString>>,
}

impl ErrorInfo {
    pub fn new(code: i32, syscall: &'static CStr, addr: Option<SocketAddr>) -> ErrorInfo {
        ErrorInfo {
            code,
            syscall,
            addr,
            hostname: None,
        }
    }

    /// The C view; borrows `self` for the host name, so `self` must outlive it.
    fn to_c(&self) -> dgram_error {
        dgram_error {
            code: self.code,
            syscall: self.syscall.as_ptr(),
            addr: self.addr.as_ref().map_or(dgram_addr::NONE, addr::to_c),
            hostname: self.hostname.as_ref().map_or(std::ptr::null(), |name| name.as_ptr()),
        }
    }
}

/// The persistent handlers of a socket, copied out under its lock so that no
/// lock is held while host code runs.
#[derive(Clone, Copy, Debug)]
pub struct Handlers {
    pub on_message: dgram_message_cb,
    pub on_listening: dgram_event_cb,
    pub on_close: dgram_event_cb,
    pub on_error: dgram_error_cb,
    pub on_connect: dgram_event_cb,
    pub userdata: UserPtr,
}

pub enum EventKind {
    /// The socket was bound; `once` is the callback given to that bind.
    Listening {
        once: dgram_event_cb,
    },
    SendDone {
        cb: dgram_send_cb,
        send_data: UserPtr,
        length: usize,
        error: Option<ErrorInfo>,
    },
    Error(ErrorInfo),
    /// The socket was connected; `once` is the callback given to that connect.
    Connect {
        once: dgram_event_cb,
    },
    /// The socket was closed; `once` is the callback given to that close.
    Close {
        once: dgram_event_cb,
    },
}

impl EventKind {
    /// Datagrams and 'listening' stop mattering once the socket is closed;
    /// completions ('close', send callbacks, errors) are still owed.
    pub fn is_completion(&self) -> bool {
        matches!(
            self,
            EventKind::SendDone { .. } | EventKind::Error(_) | EventKind::Close { .. }
        )
    }
}

/// The last source address given to the host, formatted, and what it was
/// made from: datagrams of a read mostly come from one sender, and
/// formatting the address is the dearest part of delivering a small
/// datagram.
pub struct RinfoCache {
    /// The sockaddr key the kernel's bytes gave for it (`get_raw`), or
    /// `NO_KEY`.
    raw: [u64; 4],
    /// The parsed address it was made from (`get`), if any.
    parsed: Option<SocketAddr>,
    formatted: dgram_addr,
}

/// No sockaddr's key: its family word would be all ones.
const NO_KEY: [u64; 4] = [u64::MAX; 4];

impl Default for RinfoCache {
    fn default() -> Self {
        RinfoCache {
            raw: NO_KEY,
            parsed: None,
            formatted: dgram_addr::NONE,
        }
    }
}

impl RinfoCache {
    /// The C form of `from`.
    pub fn get(&mut self, from: &SocketAddr) -> &dgram_addr {
        if self.parsed.as_ref() != Some(from) {
            self.formatted = addr::to_c(from);
            self.parsed = Some(*from);
            self.raw = NO_KEY;
        }
        &self.formatted
    }

    /// The C form of the source whose sockaddr bytes give `key`
    /// (`RecvMmsg::source_key`), parsed with `parse` only when it differs
    /// from the last one.
    #[inline]
    pub fn get_raw(&mut self, key: [u64; 4], parse: impl FnOnce() -> Option<SocketAddr>) -> &dgram_addr {
        if self.raw != key {
            let from = parse().unwrap_or(addr::UNKNOWN_SOURCE);
            self.formatted = addr::to_c(&from);
            self.parsed = Some(from);
            self.raw = key;
        }
        &self.formatted
    }
}

thread_local! {
    /// The datagram whose message callback runs on this thread, if it came
    /// with metadata: its socket and the metadata, for `dgram_message_meta`.
    static CURRENT_META: Cell<Option<(SocketHandle, RecvMeta)>> = const { Cell::new(None) };
}

/// The metadata of the datagram being delivered to `socket` on this thread,
/// or `None` outside its message callback (or when it came without).
pub fn current_meta(socket: SocketHandle) -> Option<RecvMeta> {
    CURRENT_META
        .with(Cell::get)
        .and_then(|(current, meta)| (current == socket).then_some(meta))
}

/// Calls the message callback, if set, for one received datagram of the
/// socket whose handle is `handle`, straight from the slot that holds it.
/// Same rules as `run_callbacks`.
#[inline]
pub fn deliver_message(
    handle: SocketHandle,
    handlers: &Handlers,
    data: &[u8],
    rinfo: &dgram_addr,
    meta: Option<&RecvMeta>,
) {
    if let Some(cb) = handlers.on_message {
        if let Some(meta) = meta {
            CURRENT_META.with(|current| current.set(Some((handle, *meta))));
        }
        // SAFETY: as in `run_callbacks`; `data` and `rinfo` outlive the call.
        unsafe { cb(handle.0, data.as_ptr(), data.len(), rinfo, handlers.userdata.0) };
        if meta.is_some() {
            CURRENT_META.with(|current| current.set(None));
        }
    }
}

/// Calls the host's callbacks for one event. The caller holds no lock but the
/// context's callback lock, which is reentrant, so callbacks may call any
/// function of the library.
///
/// `handle` is the socket's handle; `silenced` tells, after the persistent
/// handler of a bind, connect or close ran, whether it freed the socket or
/// its context, in which case the one-shot callback is not called.
pub fn run_callbacks(handle: SocketHandle, kind: &EventKind, handlers: Handlers, silenced: impl Fn() -> bool) {
    let (handle, userdata) = (handle.0, handlers.userdata.0);
    // SAFETY (all calls below): the function pointers come from the host,
    // which promises in the header that they are valid and do not unwind; the
    // pointers we pass point to locals or to event data that outlive the call.
    unsafe {
        match kind {
            EventKind::Listening { once } => {
                if let Some(cb) = handlers.on_listening {
                    cb(handle, userdata);
                }
                // The persistent handler may have freed the socket.
                if let (Some(cb), false) = (once, silenced()) {
                    cb(handle, userdata);
                }
            }
            EventKind::SendDone {
                cb,
                send_data,
                length,
                error,
            } => {
                if let Some(cb) = cb {
                    match error {
                        Some(info) => {
                            let err = info.to_c();
                            cb(handle, &err, *length, send_data.0);
                        }
                        None => cb(handle, std::ptr::null(), *length, send_data.0),
                    }
                }
            }
            EventKind::Error(info) => {
                if let Some(cb) = handlers.on_error {
                    let err = info.to_c();
                    cb(handle, &err, userdata);
                }
            }
            EventKind::Connect { once } => {
                if let Some(cb) = handlers.on_connect {
                    cb(handle, userdata);
                }
                if let (Some(cb), false) = (once, silenced()) {
                    cb(handle, userdata);
                }
            }
            EventKind::Close { once } => {
                if let Some(cb) = handlers.on_close {
                    cb(handle, userdata);
                }
                if let (Some(cb), false) = (once, silenced()) {
                    cb(handle, userdata);
                }
            }
        }
    }
}
