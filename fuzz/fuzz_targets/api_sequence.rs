//! Fuzz target: random sequences of libdgram C API calls on a few contexts and
//! sockets, with callbacks that call back into the API.
//!
//! The harness is a C host written in Rust: it calls only the exported
//! `dgram_*` functions, through an `extern "C"` block that mirrors
//! include/dgram.h, with C-layout structs of its own (so it can store any
//! integer in the enum fields and any byte in the bools, as C can). The
//! library's Rust internals are never touched.
//!
//! One input is two byte streams: the first two bytes give the length of the
//! "callback script", which callbacks consume one action at a time; the rest
//! are the main thread's operations. At the end of every input (half of
//! them, by length) every open socket is closed and its 'close' awaited, then
//! everything is freed, so LeakSanitizer sees leaks, and the process must be
//! back to the threads and file descriptors it had before the input.
//!
//! Network safety: destinations (of sends, batches and connects) are only
//! 127.0.0.1, ::1, "localhost" (and ::ffff:127.0.0.1, ::1 with a zone), the
//! host names "LOCALHOST" and "no-such-host.invalid" (looked up inside the
//! namespace), or strings that the library's parser rejects; a fuzzer-made
//! string that parses as any other address, or as a host name, is replaced.
//! Nothing is ever sent to a broadcast or multicast address. On top of that the
//! target refuses to start unless its network namespace has no interface but
//! `lo` (scripts/fuzz.sh runs it under `unshare -n`), so memberships (which
//! send IGMP/MLD) and anything else stay inside that namespace.
//!
//! Oracles besides ASan/LSan, hangs (libFuzzer -timeout) and panics:
//! - results of calls whose answer the header fixes (EINVAL for NULL handles
//!   and bad values, EBADF on closed sockets, EBUSY for dispatch from inside
//!   a callback, NULL context for a bad dispatch mode, ...);
//! - no callback of any kind after dgram_socket_free / dgram_context_free
//!   returned, no 'message' after dgram_close returned;
//! - each send completes at most once, with the length it was given, and
//!   before its socket's 'close'; a dgram_send_batch completes once per
//!   datagram, in order; 'close' comes at most once and only after
//!   dgram_close, and at the end of a drained input it does come;
//! - connection state where the harness can be sure of it (a numeric connect
//!   that returned 0 with no lookup of the socket pending, a disconnect, a
//!   remote address read): EISCONN, ENOTCONN, the peer's port, sends to the
//!   peer with port 0 and NULL; 'connect' only after a connect that returned
//!   0, once per call at most, never after 'close';
//! - dgram_message_meta: EINVAL outside the socket's message callback; inside
//!   it, sane values, and always an answer with every part when the socket
//!   asked for metadata before it could receive anything;
//! - send queue figures 0/0 once every send of the socket completed (when
//!   all had callbacks); dgram_context_active never looks like a counter gone
//!   below zero, is at least 1 for a bound referenced open socket, and 0 once
//!   every socket is freed, or closed with its 'close' delivered;
//! - offloads: a subset of what was asked and of dgram_offload_support();
//!   source-specific memberships on lo followed (leaving one not joined is
//!   EADDRNOTAVAIL);
//! - host-mode callbacks run only inside dispatch/run, I/O-thread-mode ones
//!   never on the host thread;
//! - every received datagram is a prefix of the one pattern all senders use;
//!   addresses handed out are NUL-terminated within DGRAM_ADDRSTRLEN;
//! - DGRAM_EINTERNAL (a caught panic) is never returned.

#![no_main]
// Choices are made as `byte % n == 0` throughout: clearer here than is_multiple_of.
#![allow(clippy::manual_is_multiple_of)]

extern crate dgram; // links the library; only its C ABI is used below

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use parking_lot::ReentrantMutex;

// ---- the C API, as a C host sees it (include/dgram.h) ------------------------

const DGRAM_EBADF: c_int = -9;
const DGRAM_EBUSY: c_int = -16;
const DGRAM_ENODEV: c_int = -19;
const DGRAM_ENOBUFS: c_int = -105;
const DGRAM_EINVAL: c_int = -22;
const DGRAM_EMSGSIZE: c_int = -90;
const DGRAM_EADDRNOTAVAIL: c_int = -99;
const DGRAM_EISCONN: c_int = -106;
const DGRAM_ENOTCONN: c_int = -107;
const DGRAM_EALREADY: c_int = -114;
const DGRAM_ECANCELED: c_int = -125;
const DGRAM_EINTERNAL: c_int = -4095;
const DGRAM_ADDRSTRLEN: usize = 46;
const DGRAM_OFFLOAD_GSO: u32 = 1;
const DGRAM_OFFLOAD_GRO: u32 = 2;
/// Datagrams one dgram_send_batch may carry (SEND_BATCH_MAX).
const SEND_BATCH_MAX: usize = 1024;

#[repr(C)]
struct ContextOptions {
    dispatch: i32, // dgram_dispatch: C may store any int here
    max_pending_events: u32,
}

#[repr(C)]
struct SocketOptions {
    type_: i32, // dgram_type
    reuse_addr: u8,
    ipv6_only: u8,
    recv_buffer_size: i32,
    send_buffer_size: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Addr {
    address: [c_char; DGRAM_ADDRSTRLEN],
    port: u16,
    family: i32,
}

#[repr(C)]
struct DgramError {
    code: i32,
    syscall: *const c_char,
    addr: Addr,
    hostname: *const c_char,
}

#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Stats {
    datagrams_received: u64,
    bytes_received: u64,
    datagrams_sent: u64,
    bytes_sent: u64,
    dropped_queue_full: u64,
    dropped_by_kernel: u64,
    send_errors: u64,
}

#[repr(C)]
struct Buf {
    base: *const c_void,
    len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Meta {
    local: Addr,
    ifindex: u32,
    ttl: i32,
    timestamp_sec: i64,
    timestamp_nsec: u32,
    // Read as bytes: the check is that the library stores real bools.
    has_local: u8,
    has_ttl: u8,
    has_timestamp: u8,
    truncated: u8,
    gro_segment_size: u32,
}

type Ctx = c_void;
type Sock = c_void;
type MessageCb = Option<unsafe extern "C" fn(*mut Sock, *const u8, usize, *const Addr, *mut c_void)>;
type EventCb = Option<unsafe extern "C" fn(*mut Sock, *mut c_void)>;
type ErrorCb = Option<unsafe extern "C" fn(*mut Sock, *const DgramError, *mut c_void)>;
type SendCb = Option<unsafe extern "C" fn(*mut Sock, *const DgramError, usize, *mut c_void)>;

extern "C" {
    fn dgram_context_new(opts: *const ContextOptions) -> *mut Ctx;
    fn dgram_context_fd(ctx: *const Ctx) -> c_int;
    fn dgram_context_dispatch(ctx: *mut Ctx, max_events: u32) -> c_int;
    fn dgram_context_run(ctx: *mut Ctx, timeout_ms: i32) -> c_int;
    fn dgram_context_active(ctx: *const Ctx) -> u32;
    fn dgram_context_free(ctx: *mut Ctx);
    fn dgram_create_socket(
        ctx: *mut Ctx,
        opts: *const SocketOptions,
        on_message: MessageCb,
        userdata: *mut c_void,
        out: *mut *mut Sock,
    ) -> c_int;
    fn dgram_on_message(s: *mut Sock, cb: MessageCb) -> c_int;
    fn dgram_on_listening(s: *mut Sock, cb: EventCb) -> c_int;
    fn dgram_on_close(s: *mut Sock, cb: EventCb) -> c_int;
    fn dgram_on_error(s: *mut Sock, cb: ErrorCb) -> c_int;
    fn dgram_bind(s: *mut Sock, port: i32, address: *const c_char, on_listening: EventCb) -> c_int;
    fn dgram_send(
        s: *mut Sock,
        msg: *const c_void,
        len: usize,
        port: i32,
        address: *const c_char,
        cb: SendCb,
        send_data: *mut c_void,
    ) -> c_int;
    fn dgram_sendv(
        s: *mut Sock,
        bufs: *const Buf,
        nbufs: usize,
        port: i32,
        address: *const c_char,
        cb: SendCb,
        send_data: *mut c_void,
    ) -> c_int;
    fn dgram_send_batch(
        s: *mut Sock,
        msgs: *const Buf,
        count: usize,
        port: i32,
        address: *const c_char,
        cb: SendCb,
        send_data: *mut c_void,
    ) -> c_int;
    fn dgram_close(s: *mut Sock, on_close: EventCb) -> c_int;
    fn dgram_socket_free(s: *mut Sock);
    fn dgram_address(s: *const Sock, out: *mut Addr) -> c_int;
    fn dgram_socket_stats(s: *const Sock, out: *mut Stats) -> c_int;
    fn dgram_on_connect(s: *mut Sock, cb: EventCb) -> c_int;
    fn dgram_connect(s: *mut Sock, port: i32, address: *const c_char, on_connect: EventCb) -> c_int;
    fn dgram_disconnect(s: *mut Sock) -> c_int;
    fn dgram_remote_address(s: *const Sock, out: *mut Addr) -> c_int;
    fn dgram_set_broadcast(s: *mut Sock, flag: bool) -> c_int;
    fn dgram_set_ttl(s: *mut Sock, ttl: i32) -> c_int;
    fn dgram_add_membership(s: *mut Sock, group: *const c_char, iface: *const c_char) -> c_int;
    fn dgram_drop_membership(s: *mut Sock, group: *const c_char, iface: *const c_char) -> c_int;
    fn dgram_set_multicast_interface(s: *mut Sock, iface: *const c_char) -> c_int;
    fn dgram_add_source_specific_membership(
        s: *mut Sock,
        source: *const c_char,
        group: *const c_char,
        iface: *const c_char,
    ) -> c_int;
    fn dgram_drop_source_specific_membership(
        s: *mut Sock,
        source: *const c_char,
        group: *const c_char,
        iface: *const c_char,
    ) -> c_int;
    fn dgram_set_recv_buffer_size(s: *mut Sock, size: c_int) -> c_int;
    fn dgram_set_send_buffer_size(s: *mut Sock, size: c_int) -> c_int;
    fn dgram_get_recv_buffer_size(s: *const Sock) -> c_int;
    fn dgram_get_send_buffer_size(s: *const Sock) -> c_int;
    fn dgram_send_queue_size(s: *const Sock) -> c_int;
    fn dgram_send_queue_count(s: *const Sock) -> c_int;
    fn dgram_socket_unref(s: *mut Sock) -> c_int;
    fn dgram_socket_ref(s: *mut Sock) -> c_int;
    fn dgram_set_message_meta(s: *mut Sock, on: bool) -> c_int;
    fn dgram_message_meta(s: *const Sock, out: *mut Meta) -> c_int;
    fn dgram_offload_support() -> u32;
    fn dgram_set_offload(s: *mut Sock, flags: u32) -> c_int;
    fn dgram_set_multicast_loopback(s: *mut Sock, flag: bool) -> c_int;
    fn dgram_set_multicast_ttl(s: *mut Sock, ttl: i32) -> c_int;
    fn dgram_fileno(s: *const Sock) -> c_int;
    fn dgram_err_name(code: c_int) -> *const c_char;
    fn dgram_strerror(code: c_int) -> *const c_char;
    fn dgram_version() -> *const c_char;
}

// ---- failing ---------------------------------------------------------------

macro_rules! fail {
    ($($arg:tt)*) => {{
        eprintln!("\n==== dgram fuzz oracle failed: {}", format!($($arg)*));
        std::process::abort();
    }};
}

/// Every result: never DGRAM_EINTERNAL (a panic caught at the C boundary),
/// never a positive value where 0 or a code is documented.
fn code(what: &str, rc: c_int) -> c_int {
    if rc == DGRAM_EINTERNAL {
        fail!("{what} returned DGRAM_EINTERNAL (a panic inside the library)");
    }
    if rc > 0 {
        fail!("{what} returned {rc}, expected 0 or a negative code");
    }
    rc
}

fn expect(what: &str, rc: c_int, want: c_int) {
    if code(what, rc) != want {
        fail!("{what} returned {rc}, expected {want}");
    }
}

/// DGRAM_FUZZ_TRACE=1 prints every call and callback (for reading a reproducer).
fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("DGRAM_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!("[{:?}] {}", std::thread::current().id(), format!($($arg)*));
        }
    };
}

// ---- the payload all senders use -------------------------------------------

const PATTERN_LEN: usize = 70_000;

fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| (0..PATTERN_LEN).map(|i| (i * 31 + 7) as u8).collect())
}

// ---- per-socket oracle state, lock-free so any thread can check it ----------

/// Socket ids of one input (userdata of the socket); id 0 is never used.
const MAX_IDS: usize = 512;

const F_USED: u32 = 1 << 0;
const F_IO_MODE: u32 = 1 << 1; // its context dispatches on the I/O thread
const F_CLOSE_CALLED: u32 = 1 << 2; // dgram_close was called (set before the call)
const F_CLOSED: u32 = 1 << 3; // dgram_close returned 0: no 'message' from now on
const F_FREED: u32 = 1 << 4; // dgram_socket_free returned: no callback at all
const F_CTX_FREED: u32 = 1 << 5; // dgram_context_free returned: no callback at all
const F_CLOSE_P: u32 = 1 << 6; // persistent 'close' handler ran
const F_CLOSE_1: u32 = 1 << 7; // one-shot 'close' callback ran
const F_BIND_TRIED: u32 = 1 << 8; // a call that binds (or may bind) was made
const F_META_ALWAYS: u32 = 1 << 9; // message meta on before any bind, never turned off
const F_META_OFF: u32 = 1 << 10; // dgram_set_message_meta(false) was called
const F_UNTRACKED: u32 = 1 << 11; // a send without callback was accepted
const F_CONNECT_CALLED: u32 = 1 << 12; // dgram_connect was called

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);
static FLAGS: [AtomicU32; MAX_IDS] = [ZERO; MAX_IDS];

/// 'connect' events allowed and seen, per socket: [0] connects that may
/// bring one (the persistent handler's bound), [1] of those with a one-shot
/// callback; [2] and [3] the persistent and one-shot events seen.
#[allow(clippy::declare_interior_mutable_const)]
const ZEROS: [AtomicU32; MAX_IDS] = [ZERO; MAX_IDS];
static CONNECTS: [[AtomicU32; MAX_IDS]; 4] = [ZEROS; 4];

fn flags(id: usize) -> u32 {
    FLAGS[id].load(Ordering::SeqCst)
}

fn set_flag(id: usize, f: u32) {
    FLAGS[id].fetch_or(f, Ordering::SeqCst);
}

/// Sends with a callback whose completions are awaited: token -> (socket
/// id, the lengths of its datagrams in order: one for dgram_send/sendv, one
/// per datagram for dgram_send_batch). Tokens are registered before the call
/// and removed on refusal or when the last completion came.
type Pending = HashMap<u64, (usize, VecDeque<usize>)>;
static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

fn pending<R>(f: impl FnOnce(&mut Pending) -> R) -> R {
    let mut guard = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

fn has_pending(id: usize) -> bool {
    pending(|p| p.values().any(|(sid, _)| *sid == id))
}

thread_local! {
    /// Set while this thread is inside dgram_context_dispatch/run.
    static IN_DISPATCH: Cell<u32> = const { Cell::new(0) };
    /// The context slots this thread is dispatching, innermost last.
    static DISPATCHING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Set on the thread that runs the fuzz inputs.
    static IS_MAIN: Cell<bool> = const { Cell::new(false) };
    /// The sockets whose message callback runs on this thread, innermost last.
    static IN_MESSAGE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

const CLOSE_ONCE: &str = "'close' (one-shot)";

/// The checks every callback makes first; returns the socket id.
fn callback_entry(what: &str, userdata: *mut c_void) -> usize {
    let id = userdata as usize;
    trace!("callback {what} of socket {id}");
    if id == 0 || id >= MAX_IDS || flags(id) & F_USED == 0 {
        fail!("{what} callback with userdata {id:#x}, which is no socket's");
    }
    let f = flags(id);
    if f & F_FREED != 0 {
        fail!("{what} callback of socket {id} after dgram_socket_free returned");
    }
    if f & F_CTX_FREED != 0 {
        fail!("{what} callback of socket {id} after dgram_context_free returned");
    }
    let in_dispatch = IN_DISPATCH.with(|d| d.get()) > 0;
    let is_main = IS_MAIN.with(|m| m.get());
    if f & F_IO_MODE != 0 {
        if is_main {
            fail!("{what} callback of an I/O-thread-mode socket ran on the host thread");
        }
    } else if !in_dispatch {
        fail!("{what} callback of a host-mode socket ran outside dispatch/run");
    }
    id
}

fn check_addr(what: &str, a: &Addr, need_port: bool) {
    let Some(nul) = a.address.iter().position(|&c| c == 0) else {
        fail!("{what}: address not NUL-terminated within DGRAM_ADDRSTRLEN");
    };
    let text = unsafe { CStr::from_ptr(a.address.as_ptr()) };
    debug_assert_eq!(text.to_bytes().len(), nul);
    if a.family != 4 && a.family != 6 {
        fail!("{what}: family {} is no dgram_family", a.family);
    }
    if need_port {
        let Ok(text) = text.to_str() else {
            fail!("{what}: address is not UTF-8")
        };
        let literal = text.split('%').next().unwrap_or("");
        let parsed: Option<IpAddr> = literal.parse().ok();
        match parsed {
            Some(IpAddr::V4(_)) if a.family == 4 => {}
            Some(IpAddr::V6(_)) if a.family == 6 => {}
            _ => fail!("{what}: address {text:?} does not parse as family {}", a.family),
        }
        if a.port == 0 {
            fail!("{what}: port 0 for {text:?}");
        }
    }
}

fn check_error(what: &str, err: &DgramError) {
    if err.code >= 0 || err.code == DGRAM_EINTERNAL {
        fail!("{what}: error code {}", err.code);
    }
    if err.syscall.is_null() {
        fail!("{what}: error with NULL syscall");
    }
    let syscall = unsafe { CStr::from_ptr(err.syscall) };
    if syscall.to_bytes().is_empty() || syscall.to_bytes().len() > 64 {
        fail!("{what}: odd syscall {syscall:?}");
    }
    check_addr(what, &err.addr, false);
    if !err.hostname.is_null() {
        let name = unsafe { CStr::from_ptr(err.hostname) };
        if !is_host_name(name.to_bytes()) || syscall.to_bytes() != b"getaddrinfo" {
            fail!("{what}: hostname {name:?} with syscall {syscall:?}");
        }
    }
}

// ---- harness state -----------------------------------------------------------

const N_CTX: usize = 3;
const N_SOCK: usize = 6;

#[derive(Clone, Copy)]
struct CtxSlot {
    ptr: *mut Ctx,
    io_mode: bool,
}

/// What the harness knows of a socket's association (dgram_connect).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Conn {
    /// Not connected, and no connect waits for a lookup.
    No,
    /// Connected to this port.
    Yes(u16),
    /// A connect may be waiting for a lookup, or may have failed after it.
    Unknown,
}

#[derive(Clone, Copy)]
struct SockSlot {
    ptr: *mut Sock,
    id: usize,
    ctx: Option<usize>, // context slot, None once that context is freed
    udp6: bool,
    port: u16,    // local port once known
    stats: Stats, // the counters last read
    conn: Conn,
    /// A call with a host name was accepted: operations may wait behind its
    /// lookup, so a numeric connect may be deferred too.
    lookups: bool,
    /// A membership call of any kind succeeded in a way the oracle cannot
    /// follow (any-source groups, the kernel's choice of interface): the
    /// results of source-specific calls are then the kernel's business.
    ssm_unsure: bool,
}

struct State {
    ctxs: [Option<CtxSlot>; N_CTX],
    socks: [Option<SockSlot>; N_SOCK],
    next_id: usize,
    next_token: u64,
    script: Vec<u8>,
    script_pos: usize,
    /// Set while the end of an input drains: callbacks do nothing.
    quiet: bool,
    /// Source-specific groups joined on lo: (socket id, source, group).
    ssm_joined: Vec<(usize, IpAddr, IpAddr)>,
}

unsafe impl Send for State {}

static STATE: ReentrantMutex<RefCell<State>> = ReentrantMutex::new(RefCell::new(State {
    ctxs: [None; N_CTX],
    socks: [None; N_SOCK],
    next_id: 1,
    next_token: 1,
    script: Vec::new(),
    script_pos: 0,
    quiet: false,
    ssm_joined: Vec::new(),
}));

/// Reads bytes; past the end it gives zeros.
struct Rd<'a> {
    d: &'a [u8],
    p: usize,
}

impl Rd<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.d.get(self.p).copied().unwrap_or(0);
        self.p += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
    fn done(&self) -> bool {
        self.p >= self.d.len()
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.u8() as usize) % (max + 1);
        (0..n).map(|_| self.u8()).collect()
    }
}

// ---- values ----------------------------------------------------------------

fn interesting_i32(rd: &mut Rd) -> i32 {
    match rd.u8() % 8 {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => 255,
        4 => 256,
        5 => i32::MIN,
        6 => i32::MAX,
        _ => rd.u32() as i32,
    }
}

/// Whether `text` is an address the library would accept (its parser is
/// Rust's: "localhost", IPv4 dotted quads, IPv6 with an optional zone), and
/// if so which.
fn parses_as(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    if text == "localhost" {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    let literal = text.split_once('%').map_or(text, |(l, _)| l);
    literal.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Whether the library takes `text` as a host name to look up (the rule of
/// src/addr.rs): dot-separated labels of letters, digits, '-' and '_', not
/// all digits and dots.
fn is_host_name(text: &[u8]) -> bool {
    let name = text.strip_suffix(b".").unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && !name.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && name.split(|b| *b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
}

fn is_allowed_destination(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST),
    }
}

/// Strings from the input: never with an inner NUL (C strings end there).
fn garbage(rd: &mut Rd) -> CString {
    let mut b = rd.bytes(60);
    b.retain(|&c| c != 0);
    CString::new(b).expect("no NUL")
}

/// A destination: NULL (loopback), a fixed loopback spelling, or a string
/// the library must reject. Never anything that could leave loopback.
fn pick_destination(rd: &mut Rd) -> Option<CString> {
    const FIXED: &[&str] = &[
        "127.0.0.1",
        "::1",
        "localhost",
        "::ffff:127.0.0.1",
        "::1%lo",
        "::1%1",
        "::1%0",
        "::1%",
        "::1%nosuchif0",
        "::1%4294967296",
        "::1%a/b",
        "::1%abcdefghijklmnopqrstuvwxyz",
        "127.0.0.1 ",
        "",
        "256.0.0.1",
        "1.2.3",
        "127.0.0.01",
        "::1::",
        // Host names: looked up on the resolver thread, inside the fuzzer's
        // own network namespace (scripts/fuzz.sh), where no query can leave.
        "LOCALHOST",
        "no-such-host.invalid",
    ];
    match rd.u8() % 4 {
        0 => None,
        1 | 2 => Some(CString::new(FIXED[rd.u8() as usize % FIXED.len()]).unwrap()),
        _ => {
            let g = garbage(rd);
            match parses_as(g.as_bytes()) {
                Some(ip) if !is_allowed_destination(ip) => Some(CString::new("not an address").unwrap()),
                // Random names would only spend the run on lookups.
                None if is_host_name(g.as_bytes()) => Some(CString::new("not an address").unwrap()),
                _ => Some(g),
            }
        }
    }
}

/// A bind address: binding sends nothing, so any string will do.
fn pick_bind_address(rd: &mut Rd) -> Option<CString> {
    const FIXED: &[&str] = &[
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "::",
        "localhost",
        "127.0.0.2",
        "::ffff:127.0.0.1",
        "198.51.100.7",
        "2001:db8::7",
        "::1%lo",
        "fe80::1%lo",
        "::1%99",
        "",
        "LOCALHOST",
        "no-such-host.invalid",
    ];
    match rd.u8() % 4 {
        0 => None,
        1 | 2 => Some(CString::new(FIXED[rd.u8() as usize % FIXED.len()]).unwrap()),
        _ => {
            let g = garbage(rd);
            // Random names would only spend the run on lookups.
            if is_host_name(g.as_bytes()) {
                Some(CString::new("not an address").unwrap())
            } else {
                Some(g)
            }
        }
    }
}

fn pick_group(rd: &mut Rd) -> Option<CString> {
    const FIXED: &[&str] = &[
        "239.255.0.1",
        "224.0.0.1",
        "ff02::1",
        "ff05::1:3",
        "ff02::1%lo",
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "localhost",
    ];
    match rd.u8() % 4 {
        0 => None,
        1 | 2 => Some(CString::new(FIXED[rd.u8() as usize % FIXED.len()]).unwrap()),
        _ => Some(garbage(rd)),
    }
}

fn pick_iface(rd: &mut Rd) -> Option<CString> {
    const FIXED: &[&str] = &[
        "127.0.0.1",
        "lo",
        "1",
        "0",
        "::%lo",
        "::1",
        "198.51.100.1",
        "nosuchif0",
        "lo%",
    ];
    match rd.u8() % 4 {
        0 => None,
        1 | 2 => Some(CString::new(FIXED[rd.u8() as usize % FIXED.len()]).unwrap()),
        _ => Some(garbage(rd)),
    }
}

fn cptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// A message length; the bytes are always the pattern's first `len`, and
/// lengths past the pattern are over every limit, so the library must refuse
/// them (EMSGSIZE) without reading.
fn pick_len(rd: &mut Rd) -> usize {
    match rd.u8() % 10 {
        0 => 0,
        1 | 2 => rd.u8() as usize,
        3 => rd.u16() as usize % 2048,
        4 => 65507 + (rd.u8() % 2) as usize,
        5 => 65527 + (rd.u8() % 2) as usize,
        6 => rd.u16() as usize,
        7 => 1472 + (rd.u8() % 4) as usize,
        8 => PATTERN_LEN,
        // Lengths no buffer can have (a C host's `(size_t)-1`): the library
        // must refuse them by their size alone, before touching the bytes
        // (regressions/send-len-over-isize-max).
        _ => [usize::MAX, isize::MAX as usize, u32::MAX as usize, usize::MAX - 65000][rd.u8() as usize % 4],
    }
}

fn max_payload(udp6: bool) -> usize {
    if udp6 {
        65527
    } else {
        65507
    }
}

// ---- callbacks ---------------------------------------------------------------

unsafe extern "C" fn on_message(s: *mut Sock, msg: *const u8, len: usize, rinfo: *const Addr, userdata: *mut c_void) {
    let id = callback_entry("message", userdata);
    if flags(id) & F_CLOSED != 0 {
        fail!("'message' of socket {id} after dgram_close returned");
    }
    if len > 65527 {
        fail!("'message' of {len} bytes");
    }
    if len > 0 && msg.is_null() {
        fail!("'message' with NULL msg and len {len}");
    }
    if len > 0 {
        let got = std::slice::from_raw_parts(msg, len);
        if got != &pattern()[..len] {
            fail!("'message' of {len} bytes is not the pattern that was sent");
        }
    }
    if rinfo.is_null() {
        fail!("'message' with NULL rinfo");
    }
    check_addr("message rinfo", &*rinfo, true);
    check_message_meta(s, id, len);
    let reply_port = (*rinfo).port;
    IN_MESSAGE.with(|m| m.borrow_mut().push(id));
    callback_action(s, id, reply_port);
    IN_MESSAGE.with(|m| m.borrow_mut().pop());
}

/// The interface every datagram of the fuzzer arrives on.
fn lo_index() -> u32 {
    static LO: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LO.get_or_init(|| unsafe { libc::if_nametoindex(c"lo".as_ptr()) })
}

/// dgram_message_meta inside the socket's own message callback: 0 or
/// EINVAL (0 for sure when the socket asked for metadata before it could
/// receive anything and never stopped), and what it writes is sane.
unsafe fn check_message_meta(s: *mut Sock, id: usize, len: usize) {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    if CALLS.fetch_add(1, Ordering::Relaxed) % 8 == 7 {
        expect(
            "message_meta(NULL out) in 'message'",
            dgram_message_meta(s, std::ptr::null_mut()),
            DGRAM_EINVAL,
        );
        return;
    }
    let mut meta: Meta = std::mem::zeroed();
    meta.local.address = [0x55; DGRAM_ADDRSTRLEN];
    let rc = code("message_meta in 'message'", dgram_message_meta(s, &mut meta));
    let always = flags(id) & F_META_ALWAYS != 0 && flags(id) & F_META_OFF == 0;
    trace!(
        "  message_meta of socket {id} (asked before bind {always}): {rc}, local {} ttl {} timestamp {} gro {}",
        meta.has_local,
        meta.has_ttl,
        meta.has_timestamp,
        meta.gro_segment_size
    );
    if rc == DGRAM_EINVAL {
        if always {
            fail!("message_meta of socket {id}, which asked for metadata before binding, returned EINVAL");
        }
        return;
    }
    if rc != 0 {
        fail!("message_meta in 'message' of socket {id} returned {rc}");
    }
    check_meta(s, id, len, &meta, always);
}

unsafe fn check_meta(s: *mut Sock, id: usize, len: usize, meta: &Meta, always: bool) {
    for (name, b) in [
        ("has_local", meta.has_local),
        ("has_ttl", meta.has_ttl),
        ("has_timestamp", meta.has_timestamp),
        ("truncated", meta.truncated),
    ] {
        if b > 1 {
            fail!("message_meta: {name} is byte {b}, not a bool");
        }
    }
    if always && (meta.has_local == 0 || meta.has_ttl == 0 || meta.has_timestamp == 0) {
        fail!(
            "message_meta of socket {id} (metadata on since before bind): has_local {} has_ttl {} has_timestamp {}",
            meta.has_local,
            meta.has_ttl,
            meta.has_timestamp
        );
    }
    if meta.truncated != 0 {
        fail!("message_meta: truncated (documented as never on Linux)");
    }
    if meta.has_local != 0 {
        check_addr("message_meta local", &meta.local, true);
        let text = CStr::from_ptr(meta.local.address.as_ptr()).to_bytes();
        match parses_as(text) {
            Some(ip) if is_allowed_destination(ip) => {}
            _ => fail!("message_meta: local address {text:?} is none the fuzzer sends to"),
        }
        // A datagram that reached the kernel's queue before the socket asked
        // for metadata comes with interface 0 (found by this fuzzer; the
        // header now says so).
        if meta.ifindex != lo_index() && !(meta.ifindex == 0 && !always) {
            fail!("message_meta: ifindex {} (lo is {})", meta.ifindex, lo_index());
        }
        let mut a: Addr = std::mem::zeroed();
        expect("address in 'message'", dgram_address(s, &mut a), 0);
        if a.port != meta.local.port {
            fail!(
                "message_meta: local port {} but the socket's is {}",
                meta.local.port,
                a.port
            );
        }
    }
    if meta.has_ttl != 0 && !(0..=255).contains(&meta.ttl) {
        fail!("message_meta: ttl {}", meta.ttl);
    }
    if meta.has_timestamp != 0 && meta.timestamp_nsec >= 1_000_000_000 {
        fail!("message_meta: timestamp_nsec {}", meta.timestamp_nsec);
    }
    if meta.gro_segment_size != 0 && (len > meta.gro_segment_size as usize || meta.gro_segment_size > 65527) {
        fail!(
            "message_meta: a {len}-byte datagram of a GRO buffer of {}-byte segments",
            meta.gro_segment_size
        );
    }
}

/// 'connect' (`once`: the one-shot callback): only after a dgram_connect
/// that returned 0, at most one per such call, never after 'close'.
unsafe fn connect_event(s: *mut Sock, userdata: *mut c_void, once: bool) {
    let what = if once { "'connect' (one-shot)" } else { "'connect'" };
    let id = callback_entry(what, userdata);
    let f = flags(id);
    if f & F_CONNECT_CALLED == 0 {
        fail!("{what} of socket {id}, which never called dgram_connect");
    }
    if f & (F_CLOSE_P | F_CLOSE_1) != 0 {
        fail!("{what} of socket {id} after its 'close'");
    }
    let (allowed, seen) = if once { (1, 3) } else { (0, 2) };
    let n = CONNECTS[seen][id].fetch_add(1, Ordering::SeqCst) + 1;
    let max = CONNECTS[allowed][id].load(Ordering::SeqCst);
    if n > max {
        fail!("{what} number {n} of socket {id}, after {max} dgram_connect calls that could bring one");
    }
    callback_action(s, id, 0);
}

unsafe extern "C" fn on_connect(s: *mut Sock, userdata: *mut c_void) {
    connect_event(s, userdata, false);
}

unsafe extern "C" fn on_connect_once(s: *mut Sock, userdata: *mut c_void) {
    connect_event(s, userdata, true);
}

unsafe extern "C" fn on_listening(s: *mut Sock, userdata: *mut c_void) {
    let id = callback_entry("listening", userdata);
    callback_action(s, id, 0);
}

unsafe extern "C" fn on_listening_once(s: *mut Sock, userdata: *mut c_void) {
    let id = callback_entry("listening (one-shot)", userdata);
    callback_action(s, id, 0);
}

unsafe fn close_event(s: *mut Sock, userdata: *mut c_void, bit: u32, what: &str) {
    let id = callback_entry(what, userdata);
    let before = FLAGS[id].fetch_or(bit, Ordering::SeqCst);
    if before & F_CLOSE_CALLED == 0 {
        fail!("{what} of socket {id}, which was never closed");
    }
    if before & bit != 0 {
        fail!("{what} of socket {id} twice");
    }
    if let Some(token) = pending(|p| p.iter().find(|(_, (sid, _))| *sid == id).map(|(t, _)| *t)) {
        fail!("{what} of socket {id} before the completion of its send {token}");
    }
    callback_action(s, id, 0);
}

unsafe extern "C" fn on_close(s: *mut Sock, userdata: *mut c_void) {
    close_event(s, userdata, F_CLOSE_P, "'close'");
}

unsafe extern "C" fn on_close_once(s: *mut Sock, userdata: *mut c_void) {
    close_event(s, userdata, F_CLOSE_1, CLOSE_ONCE);
}

unsafe extern "C" fn on_error(s: *mut Sock, err: *const DgramError, userdata: *mut c_void) {
    let id = callback_entry("error", userdata);
    if err.is_null() {
        fail!("'error' with NULL err");
    }
    check_error("'error'", &*err);
    callback_action(s, id, 0);
}

/// send_data = token << 16 | socket id.
unsafe extern "C" fn on_send(s: *mut Sock, err: *const DgramError, length: usize, send_data: *mut c_void) {
    let data = send_data as usize as u64;
    let id = (data & 0xffff) as usize;
    let token = data >> 16;
    callback_entry("send completion", id as *mut c_void);
    if !err.is_null() {
        check_error("send completion", &*err);
    }
    // The next datagram of that send call (a batch completes in order).
    let next = pending(|p| {
        let (sid, lens) = p.get_mut(&token)?;
        let sid = *sid;
        let len = lens.pop_front();
        let left = lens.len();
        if left == 0 {
            p.remove(&token);
        }
        Some((sid, len, left))
    });
    match next {
        None | Some((_, None, _)) => {
            fail!("send completion of token {token} (socket {id}) that was not pending: twice, or never accepted")
        }
        Some((sid, Some(len), left)) => {
            if sid != id {
                fail!("send completion token {token} of socket {sid} came with socket {id}");
            }
            if len != length {
                fail!(
                    "send completion of a {len}-byte datagram says {length} bytes ({left} more of that call to come)"
                );
            }
        }
    }
    if flags(id) & (F_CLOSE_P | F_CLOSE_1) != 0 {
        fail!("send completion of socket {id} after its 'close'");
    }
    callback_action(s, id, 0);
}

// ---- actions ---------------------------------------------------------------

fn find_sock(st: &State, id: usize) -> Option<usize> {
    st.socks.iter().position(|s| s.is_some_and(|s| s.id == id))
}

/// What a callback does, read from the callback script, if it can have the
/// harness (on an I/O thread while the host thread holds it, it does nothing:
/// waiting could deadlock against a dgram_close of the host thread, which the
/// header forbids).
unsafe fn callback_action(s: *mut Sock, id: usize, reply_port: u16) {
    let Some(guard) = STATE.try_lock() else { return };
    let (script, slot) = {
        let mut st = guard.borrow_mut();
        if st.quiet || st.script_pos >= st.script.len() {
            return;
        }
        let take = (st.script.len() - st.script_pos).min(8);
        let bytes = st.script[st.script_pos..st.script_pos + take].to_vec();
        st.script_pos += take;
        (bytes, find_sock(&st, id))
    };
    let Some(slot) = slot else {
        // Its handle was released by the host already (e.g. on another
        // thread just now): only calls that need no handle.
        return;
    };
    let same = guard.borrow().socks[slot].expect("found");
    if same.ptr != s {
        fail!("callback of socket {id} with handle {s:p}, created as {:p}", same.ptr);
    }
    let mut rd = Rd { d: &script, p: 0 };
    let op = rd.u8();
    trace!("  callback action {} on socket {id}", op % 20);
    match op % 20 {
        // Reply to the sender, or send to some socket of ours.
        0..=2 => {
            let port = if reply_port != 0 && op % 20 == 0 {
                reply_port as i32
            } else {
                port_for(&guard.borrow(), &mut rd)
            };
            let dest = pick_destination(&mut rd);
            do_send(&guard, slot, &mut rd, port, dest);
        }
        3 => op_close(&guard, slot, &mut rd),
        4 => op_free_socket(&guard, slot),
        5 => {
            if let Some(c) = same.ctx {
                op_free_context(&guard, c);
            }
        }
        6 => {
            // Dispatch does not nest: EBUSY from inside a callback of the
            // same context, in either mode.
            if let Some(c) = same.ctx {
                let ctx = guard.borrow().ctxs[c].expect("live");
                expect(
                    "dispatch inside a callback",
                    dgram_context_dispatch(ctx.ptr, rd.u8() as u32),
                    DGRAM_EBUSY,
                );
                expect("run inside a callback", dgram_context_run(ctx.ptr, 0), DGRAM_EBUSY);
            }
        }
        7 => op_create_socket(&guard, &mut rd),
        8 => {
            let o = rd.u8() as usize % N_SOCK;
            op_close(&guard, o, &mut rd);
        }
        9 => {
            let o = rd.u8() as usize % N_SOCK;
            op_free_socket(&guard, o);
        }
        10 => {
            let c = rd.u8() as usize % N_CTX;
            op_free_context(&guard, c);
        }
        11 => op_options(&guard, slot, &mut rd),
        12 => op_handlers(&guard, slot, &mut rd),
        13 => op_bind(&guard, slot, &mut rd),
        14 => {
            // Dispatch another context from here (any thread may dispatch).
            let c = rd.u8() as usize % N_CTX;
            op_dispatch(&guard, c, &mut rd, same.ctx.filter(|_| flags(id) & F_IO_MODE != 0));
        }
        16 => op_connect(&guard, slot, &mut rd),
        17 => op_peer(&guard, slot, &mut rd),
        18 => {
            let port = if reply_port != 0 && rd.bool() {
                reply_port as i32
            } else {
                port_for(&guard.borrow(), &mut rd)
            };
            let dest = pick_destination(&mut rd);
            do_batch(&guard, slot, &mut rd, port, dest);
        }
        19 => op_more_options(&guard, slot, &mut rd),
        _ => {} // 15: nothing
    }
}

type Guard<'a> = parking_lot::ReentrantMutexGuard<'a, RefCell<State>>;

fn port_for(st: &State, rd: &mut Rd) -> i32 {
    match rd.u8() % 6 {
        0..=2 => {
            let o = rd.u8() as usize % N_SOCK;
            st.socks[o].map_or(1, |s| if s.port == 0 { 1 } else { s.port as i32 })
        }
        3 => 0,
        4 => rd.u16() as i32,
        _ => interesting_i32(rd),
    }
}

/// Remembers the local port of a socket that may be bound now.
unsafe fn learn_port(g: &Guard, slot: usize) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let mut a = Addr {
        address: [0x55; DGRAM_ADDRSTRLEN],
        port: 0,
        family: 0,
    };
    let rc = code("address", dgram_address(sock.ptr, &mut a));
    if rc == 0 {
        check_addr("dgram_address", &a, true);
        if let Some(s) = g.borrow_mut().socks[slot].as_mut() {
            if s.id == sock.id {
                s.port = a.port;
            }
        }
    } else if rc != DGRAM_EBADF {
        fail!("dgram_address returned {rc}");
    }
}

fn known_closed(id: usize) -> bool {
    flags(id) & (F_CLOSE_CALLED | F_CTX_FREED) != 0
}

unsafe fn do_send(g: &Guard, slot: usize, rd: &mut Rd, port: i32, dest: Option<CString>) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    set_flag(sock.id, F_BIND_TRIED);
    let with_cb = rd.u8() % 3 != 0;
    let vectored = rd.u8() % 3 == 0;
    let len = pick_len(rd);
    let token = {
        let mut st = g.borrow_mut();
        st.next_token += 1;
        st.next_token
    };
    let tracked = with_cb && !known_closed(sock.id);
    if tracked {
        pending(|p| p.insert(token, (sock.id, VecDeque::from([len]))));
    }
    let send_data = ((token << 16) | sock.id as u64) as usize as *mut c_void;
    let cb: SendCb = if with_cb { Some(on_send) } else { None };
    let pat = pattern().as_ptr();
    let null_msg = rd.u8() % 16 == 0;
    let mut msg_invalid = null_msg && len > 0;
    let mut n_pieces = 0usize;
    let rc = if !vectored {
        let msg = if null_msg { std::ptr::null() } else { pat.cast() };
        code("send", dgram_send(sock.ptr, msg, len, port, cptr(&dest), cb, send_data))
    } else {
        // Pieces that concatenate to the pattern's first `len` bytes.
        let n = match rd.u8() % 4 {
            0 => 0,
            1 => 1 + rd.u8() as usize % 4,
            2 => 1 + rd.u8() as usize % 64,
            _ => 65 + rd.u8() as usize % 100, // past the gather-without-copy limit
        };
        let mut bufs = Vec::with_capacity(n);
        let mut off = 0usize;
        for i in 0..n {
            let piece = if i + 1 == n {
                len.saturating_sub(off)
            } else {
                (rd.u16() as usize % 4096).min(len.saturating_sub(off))
            };
            let base = if piece == 0 && rd.u8() % 4 == 0 {
                std::ptr::null()
            } else if off <= PATTERN_LEN {
                unsafe { pat.add(off) }.cast()
            } else {
                pat.cast()
            };
            bufs.push(Buf { base, len: piece });
            off = off.saturating_add(piece);
        }
        if n > 0 && null_msg {
            // A NULL base with len > 0: EINVAL (or EMSGSIZE/EBADF first).
            let i = rd.u8() as usize % n;
            if bufs[i].len > 0 {
                bufs[i].base = std::ptr::null();
            } else {
                msg_invalid = false;
            }
        } else {
            msg_invalid = false;
        }
        let total = if n == 0 { 0 } else { len };
        let null_bufs = n > 0 && rd.u8() % 32 == 0;
        if null_bufs {
            msg_invalid = true;
        }
        if tracked {
            pending(|p| p.insert(token, (sock.id, VecDeque::from([total]))));
        }
        let ptr = if null_bufs { std::ptr::null() } else { bufs.as_ptr() };
        n_pieces = n;
        code("sendv", dgram_sendv(sock.ptr, ptr, n, port, cptr(&dest), cb, send_data))
    };
    if rc != 0 && tracked {
        pending(|p| p.remove(&token));
    }
    trace!(
        "send{} socket {} {} bytes to {dest:?} port {port} cb {with_cb}: {rc}",
        if vectored { "v" } else { "" },
        sock.id,
        len
    );
    // What the header fixes.
    if known_closed(sock.id) {
        if rc != DGRAM_EBADF {
            fail!("send on a closed socket returned {rc}, expected EBADF");
        }
        return;
    }
    let total = if vectored && n_pieces == 0 { 0 } else { len };
    let family = if sock.udp6 { "udp6" } else { "udp4" };
    let mut msg = Verdict::default();
    if msg_invalid {
        msg.must.push(DGRAM_EINVAL);
    }
    if total > max_payload(sock.udp6) {
        msg.must.push(DGRAM_EMSGSIZE);
    }
    if !send_accepts(&sock, port, &dest, false, &msg, rc, &[0, DGRAM_ENOBUFS]) {
        fail!(
            "send of {total} bytes on {family} ({:?}; vectored {vectored}, invalid msg {msg_invalid}) \
             to {dest:?} port {port} returned {rc}",
            sock.conn
        );
    }
    if rc == 0 {
        if !with_cb {
            set_flag(sock.id, F_UNTRACKED);
        }
        note_lookup(g, slot, &dest);
        learn_port(g, slot);
    }
}

/// dgram_send_batch: `count` datagrams, each a prefix of the pattern (runs
/// of equal sizes for segmentation offload, sizes up to and past the limit),
/// 0 to past SEND_BATCH_MAX of them, NULL `msgs`, NULL pieces.
unsafe fn do_batch(g: &Guard, slot: usize, rd: &mut Rd, port: i32, dest: Option<CString>) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    set_flag(sock.id, F_BIND_TRIED);
    let with_cb = rd.u8() % 3 != 0;
    let count = match rd.u8() % 10 {
        0 => 0,
        1..=3 => 1 + rd.u8() as usize % 4,
        4 | 5 => 1 + rd.u8() as usize % 140, // around GSO_MAX_SEGMENTS (64)
        6 => 200 + rd.u16() as usize % 100,  // past SEND_IOVS (256)
        7 => SEND_BATCH_MAX - 2 + rd.u8() as usize % 4,
        8 => rd.u16() as usize,
        // Counts no array can have: refused by the count alone.
        _ => [usize::MAX, isize::MAX as usize, u32::MAX as usize, SEND_BATCH_MAX + 1][rd.u8() as usize % 4],
    };
    // Datagram sizes: one size (the last datagram maybe shorter), or each
    // its own; a big size now and then.
    let same = rd.u8() % 2 == 0;
    let size = |rd: &mut Rd| -> usize {
        match rd.u8() % 16 {
            0 => 0,
            1..=9 => rd.u8() as usize,
            10..=12 => rd.u16() as usize % 1600,
            13 => 1472 + rd.u8() as usize % 4,
            14 => [65507, 65508, 65527, 65528][rd.u8() as usize % 4],
            _ => [rd.u16() as usize, PATTERN_LEN, usize::MAX, isize::MAX as usize][rd.u8() as usize % 4],
        }
    };
    let first = size(rd);
    let last = if rd.bool() { first / 2 } else { first };
    let pat = pattern().as_ptr();
    // Built for at most SEND_BATCH_MAX + a few; a larger count is passed
    // with this shorter array, as a C host's garbage count would be: the
    // library must refuse it without reading.
    let built = count.min(SEND_BATCH_MAX + 4);
    let mut msgs = Vec::with_capacity(built);
    for i in 0..built {
        let len = if same {
            if i + 1 == built {
                last
            } else {
                first
            }
        } else {
            size(rd)
        };
        msgs.push(Buf { base: pat.cast(), len });
    }
    // A NULL piece with a length (EINVAL), a NULL empty piece (fine).
    let mut piece_null = false;
    if built > 0 && rd.u8() % 8 == 0 {
        let i = rd.u16() as usize % built;
        msgs[i].base = std::ptr::null();
        piece_null = msgs[i].len > 0;
    }
    let null_msgs = rd.u8() % 32 == 0;
    let lens: VecDeque<usize> = msgs.iter().map(|m| m.len).collect();
    let token = {
        let mut st = g.borrow_mut();
        st.next_token += 1;
        st.next_token
    };
    let send_data = ((token << 16) | sock.id as u64) as usize as *mut c_void;
    let tracked = with_cb && !known_closed(sock.id) && count > 0 && count <= SEND_BATCH_MAX;
    if tracked {
        pending(|p| p.insert(token, (sock.id, lens.clone())));
    }
    let cb: SendCb = if with_cb { Some(on_send) } else { None };
    let ptr = if null_msgs { std::ptr::null() } else { msgs.as_ptr() };
    let rc = code(
        "send_batch",
        dgram_send_batch(sock.ptr, ptr, count, port, cptr(&dest), cb, send_data),
    );
    if rc != 0 && tracked {
        pending(|p| p.remove(&token));
    }
    trace!(
        "send_batch socket {} {count} datagrams (sizes {first}/{last}, same {same}) to {dest:?} port {port} cb {with_cb}: {rc}",
        sock.id
    );
    if known_closed(sock.id) {
        expect("send_batch on a closed socket", rc, DGRAM_EBADF);
        return;
    }
    let family = if sock.udp6 { "udp6" } else { "udp4" };
    if count > SEND_BATCH_MAX || (count > 0 && null_msgs) {
        if rc != DGRAM_EINVAL {
            fail!("send_batch of {count} datagrams (NULL msgs {null_msgs}) on {family} returned {rc}, expected EINVAL");
        }
        return;
    }
    let mut msg = Verdict::default();
    if piece_null {
        msg.must.push(DGRAM_EINVAL);
    }
    if lens.iter().any(|&l| l > max_payload(sock.udp6)) {
        msg.must.push(DGRAM_EMSGSIZE);
    }
    // "count 0 does nothing": 0, or the refusal its destination deserves.
    let ok: &[c_int] = if count == 0 { &[0] } else { &[0, DGRAM_ENOBUFS] };
    let accepted = send_accepts(&sock, port, &dest, true, &msg, rc, ok) || (count == 0 && rc == 0);
    if !accepted {
        fail!(
            "send_batch of {count} datagrams on {family} ({:?}; sizes {first}/{last} same {same}, NULL piece {piece_null}) \
             to {dest:?} port {port} returned {rc}",
            sock.conn
        );
    }
    if rc == 0 && count > 0 {
        if !with_cb {
            set_flag(sock.id, F_UNTRACKED);
        }
        learn_port(g, slot);
    }
}

/// Which results a call may have, from what the header fixes.
#[derive(Default, Debug, Clone)]
struct Verdict {
    /// The call must be refused, with one of these; empty when it is valid.
    must: Vec<c_int>,
    /// What it may get besides (a zone looked up in the namespace, the
    /// system's answer, an order of checks the header leaves open).
    may: Vec<c_int>,
}

impl Verdict {
    fn with(mut self, other: &Verdict) -> Verdict {
        self.must.extend(&other.must);
        self.may.extend(&other.may);
        self
    }

    /// Whether `rc` is a result the header allows; `ok` are the results of
    /// a valid call.
    fn accepts(&self, rc: c_int, ok: &[c_int]) -> bool {
        if self.must.is_empty() {
            ok.contains(&rc) || self.may.contains(&rc)
        } else {
            rc != 0 && (self.must.contains(&rc) || self.may.contains(&rc))
        }
    }
}

/// The host name lookups the library would do for `dest`.
fn is_name(dest: &Option<CString>) -> bool {
    dest.as_ref()
        .is_some_and(|d| parses_as(d.as_bytes()).is_none() && is_host_name(d.as_bytes()))
}

/// What the header says of a destination on a socket that is not connected
/// (`names_ok`: a host name is valid, not EINVAL as for dgram_send_batch).
fn dest_verdict(udp6: bool, port: i32, dest: &Option<CString>, names_ok: bool) -> Verdict {
    let mut v = Verdict::default();
    if !(1..=65535).contains(&port) {
        v.must.push(DGRAM_EINVAL);
    }
    match dest {
        None => {}
        // A zone: it depends on the namespace's interfaces.
        Some(d) if d.as_bytes().contains(&b'%') => v.may.extend([DGRAM_EINVAL, DGRAM_ENODEV]),
        Some(d) => match parses_as(d.as_bytes()) {
            None if is_host_name(d.as_bytes()) => {
                if !names_ok {
                    v.must.push(DGRAM_EINVAL);
                }
            }
            Some(IpAddr::V4(_)) if d.as_bytes() == b"localhost" => {}
            Some(IpAddr::V4(_)) if !udp6 => {}
            Some(IpAddr::V6(_)) if udp6 => {}
            _ => v.must.push(DGRAM_EINVAL),
        },
    }
    v
}

/// The same on a connected socket: port 0 and NULL go to the peer; any
/// destination is EISCONN (or, as the header's order of checks has it, the
/// argument error the destination would have anyway).
fn connected_verdict(udp6: bool, port: i32, dest: &Option<CString>, names_ok: bool) -> Verdict {
    if port == 0 && dest.is_none() {
        return Verdict::default();
    }
    let unconnected = dest_verdict(udp6, port, dest, names_ok);
    Verdict {
        must: vec![DGRAM_EISCONN],
        may: unconnected.must.iter().chain(&unconnected.may).copied().collect(),
    }
}

/// Whether a send-like call's `rc` fits the socket's state (as far as the
/// harness knows it), the destination and the message verdict `msg`.
fn send_accepts(
    sock: &SockSlot,
    port: i32,
    dest: &Option<CString>,
    batch: bool,
    msg: &Verdict,
    rc: c_int,
    ok: &[c_int],
) -> bool {
    let unconnected = || dest_verdict(sock.udp6, port, dest, !batch).with(msg);
    let connected = || connected_verdict(sock.udp6, port, dest, !batch).with(msg);
    match sock.conn {
        Conn::No => unconnected().accepts(rc, ok),
        Conn::Yes(_) => connected().accepts(rc, ok),
        Conn::Unknown => unconnected().accepts(rc, ok) || connected().accepts(rc, ok),
    }
}

/// After an accepted call with `dest`: a host name means a lookup, behind
/// which later operations of the socket may wait.
fn note_lookup(g: &Guard, slot: usize, dest: &Option<CString>) {
    if is_name(dest) {
        if let Some(s) = g.borrow_mut().socks[slot].as_mut() {
            s.lookups = true;
        }
    }
}

unsafe fn op_close(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let was_closed = known_closed(sock.id);
    set_flag(sock.id, F_CLOSE_CALLED);
    let cb: EventCb = if rd.bool() { Some(on_close_once) } else { None };
    let rc = code("close", dgram_close(sock.ptr, cb));
    trace!("close socket {}: {rc}", sock.id);
    if was_closed {
        if rc != DGRAM_EBADF {
            fail!("second close returned {rc}, expected EBADF");
        }
    } else if rc != 0 {
        fail!("close of an open socket returned {rc}");
    } else {
        set_flag(sock.id, F_CLOSED);
    }
}

unsafe fn op_free_socket(g: &Guard, slot: usize) {
    let Some(sock) = g.borrow_mut().socks[slot].take() else {
        return;
    };
    trace!("free socket {}", sock.id);
    dgram_socket_free(sock.ptr);
    set_flag(sock.id, F_FREED);
    pending(|p| p.retain(|_, &mut (sid, _)| sid != sock.id));
}

unsafe fn op_free_context(g: &Guard, c: usize) {
    let Some(ctx) = g.borrow_mut().ctxs[c].take() else {
        return;
    };
    trace!("free context {c}");
    // Its sockets' sends are not completed any more ("no callback runs afterwards").
    dgram_context_free(ctx.ptr);
    let mut st = g.borrow_mut();
    for s in st.socks.iter_mut().flatten() {
        if s.ctx == Some(c) {
            s.ctx = None;
            set_flag(s.id, F_CTX_FREED);
            pending(|p| p.retain(|_, &mut (sid, _)| sid != s.id));
        }
    }
}

unsafe fn op_create_context(g: &Guard, rd: &mut Rd) {
    let c = rd.u8() as usize % N_CTX;
    if g.borrow().ctxs[c].is_some() {
        return;
    }
    let kind = rd.u8();
    let max_pending = match rd.u8() % 4 {
        0 => 0,
        1 => rd.u8() as u32,
        2 => 1 + rd.u8() as u32 % 40,
        _ => rd.u16() as u32,
    };
    let (ptr, io_mode, valid) = match kind % 8 {
        0 => (dgram_context_new(std::ptr::null()), false, true),
        1..=3 => (
            dgram_context_new(&ContextOptions {
                dispatch: 0,
                max_pending_events: max_pending,
            }),
            false,
            true,
        ),
        4..=6 => (
            dgram_context_new(&ContextOptions {
                dispatch: 1,
                max_pending_events: max_pending,
            }),
            true,
            true,
        ),
        _ => {
            let d = match rd.u8() % 3 {
                0 => 2,
                1 => -1,
                _ => rd.u32() as i32,
            };
            let valid = d == 0 || d == 1;
            (
                dgram_context_new(&ContextOptions {
                    dispatch: d,
                    max_pending_events: max_pending,
                }),
                d == 1,
                valid,
            )
        }
    };
    if !valid {
        if !ptr.is_null() {
            fail!("dgram_context_new accepted an invalid dispatch mode");
        }
        return;
    }
    if ptr.is_null() {
        fail!("dgram_context_new failed (max_pending_events {max_pending})");
    }
    trace!("new context {c} io_mode {io_mode} max_pending {max_pending}");
    let fd = dgram_context_fd(ptr);
    if fd < 0 {
        fail!("dgram_context_fd returned {fd}");
    }
    g.borrow_mut().ctxs[c] = Some(CtxSlot { ptr, io_mode });
}

unsafe fn op_create_socket(g: &Guard, rd: &mut Rd) {
    let slot = rd.u8() as usize % N_SOCK;
    let c = rd.u8() as usize % N_CTX;
    if g.borrow().socks[slot].is_some() {
        return;
    }
    let id = {
        let mut st = g.borrow_mut();
        if st.next_id >= MAX_IDS {
            return;
        }
        st.next_id += 1;
        st.next_id - 1
    };
    let ctx = g.borrow().ctxs[c];
    let mode = rd.u8();
    let opts_null = mode % 4 == 0;
    let opts = SocketOptions {
        type_: match rd.u8() % 8 {
            0..=3 => 0,
            4..=6 => 1,
            _ => interesting_i32(rd),
        },
        reuse_addr: if rd.u8() % 8 == 0 { rd.u8() } else { rd.u8() & 1 },
        ipv6_only: if rd.u8() % 8 == 0 { rd.u8() } else { rd.u8() & 1 },
        recv_buffer_size: if rd.u8() % 4 == 0 { interesting_i32(rd) } else { 0 },
        send_buffer_size: if rd.u8() % 4 == 0 { interesting_i32(rd) } else { 0 },
    };
    let with_msg: MessageCb = if rd.u8() % 4 != 0 { Some(on_message) } else { None };
    let null_out = rd.u8() % 32 == 0;
    let null_ctx = ctx.is_none();
    FLAGS[id].store(
        F_USED | if ctx.is_some_and(|c| c.io_mode) { F_IO_MODE } else { 0 },
        Ordering::SeqCst,
    );
    // Not NULL, so that "a failed create sets *out to NULL" can be seen.
    let mut out: *mut Sock = std::ptr::dangling_mut::<Sock>();
    let rc = code(
        "create_socket",
        dgram_create_socket(
            ctx.map_or(std::ptr::null_mut(), |c| c.ptr),
            if opts_null { std::ptr::null() } else { &opts },
            with_msg,
            id as *mut c_void,
            if null_out { std::ptr::null_mut() } else { &mut out },
        ),
    );
    let bad_opts =
        !opts_null && (!(0..=1).contains(&opts.type_) || opts.recv_buffer_size < 0 || opts.send_buffer_size < 0);
    if null_out || null_ctx || bad_opts {
        if rc != DGRAM_EINVAL {
            fail!("create_socket (NULL out {null_out}, NULL ctx {null_ctx}, bad options {bad_opts}) returned {rc}");
        }
        if !null_out && !out.is_null() {
            fail!("failed create_socket left *out {out:p}, not NULL");
        }
        return;
    }
    if rc != 0 {
        // udp6 without IPv6 (EAFNOSUPPORT) is the only expected failure here.
        if rc != -97 {
            fail!("create_socket returned {rc}");
        }
        return;
    }
    if out.is_null() {
        fail!("create_socket returned 0 and a NULL handle");
    }
    let udp6 = !opts_null && opts.type_ == 1;
    trace!("new socket {id} in slot {slot} on context {c}, udp6 {udp6}");
    g.borrow_mut().socks[slot] = Some(SockSlot {
        ptr: out,
        id,
        ctx: Some(c),
        udp6,
        port: 0,
        stats: Stats::default(),
        conn: Conn::No,
        lookups: false,
        ssm_unsure: false,
    });
    if rd.bool() {
        op_handlers(g, slot, rd);
    }
}

unsafe fn op_handlers(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let which = rd.u8();
    let set = rd.bool();
    let rc = match which % 5 {
        0 => dgram_on_message(sock.ptr, if set { Some(on_message) } else { None }),
        1 => dgram_on_listening(sock.ptr, if set { Some(on_listening) } else { None }),
        2 => dgram_on_close(sock.ptr, if set { Some(on_close) } else { None }),
        3 => dgram_on_error(sock.ptr, if set { Some(on_error) } else { None }),
        _ => dgram_on_connect(sock.ptr, if set { Some(on_connect) } else { None }),
    };
    expect("on_* handler", rc, if known_closed(sock.id) { DGRAM_EBADF } else { 0 });
}

unsafe fn op_bind(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let port = match rd.u8() % 4 {
        0 | 1 => 0,
        2 => rd.u16() as i32,
        _ => interesting_i32(rd),
    };
    let address = pick_bind_address(rd);
    let cb: EventCb = if rd.bool() { Some(on_listening_once) } else { None };
    set_flag(sock.id, F_BIND_TRIED);
    let rc = code("bind", dgram_bind(sock.ptr, port, cptr(&address), cb));
    trace!("bind socket {} to {address:?} port {port}: {rc}", sock.id);
    if known_closed(sock.id) {
        if rc != DGRAM_EBADF {
            fail!("bind on a closed socket returned {rc}");
        }
    } else if !(0..=65535).contains(&port) && rc != DGRAM_EINVAL && rc != DGRAM_EALREADY {
        fail!("bind to port {port} returned {rc}");
    }
    if rc == 0 {
        note_lookup(g, slot, &address);
        learn_port(g, slot);
    }
}

/// Results no call of a socket that is open and valid may have.
fn impossible(rc: c_int) -> bool {
    [
        DGRAM_EBADF,
        DGRAM_EBUSY,
        DGRAM_EMSGSIZE,
        DGRAM_ENOBUFS,
        DGRAM_EISCONN,
        DGRAM_ENOTCONN,
        DGRAM_EALREADY,
        DGRAM_ECANCELED,
    ]
    .contains(&rc)
}

fn set_conn(g: &Guard, slot: usize, id: usize, conn: Conn) {
    if let Some(s) = g.borrow_mut().socks[slot].as_mut() {
        if s.id == id {
            s.conn = conn;
        }
    }
}

/// dgram_connect, to the destinations sends use (loopback, host names of
/// the namespace, or text the library must refuse).
unsafe fn op_connect(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let port = port_for(&g.borrow(), rd);
    let dest = pick_destination(rd);
    let once = rd.bool();
    let cb: EventCb = if once { Some(on_connect_once) } else { None };
    set_flag(sock.id, F_BIND_TRIED | F_CONNECT_CALLED);
    // Counted before the call: the event may come on an I/O thread before
    // the call returns.
    CONNECTS[0][sock.id].fetch_add(1, Ordering::SeqCst);
    if once {
        CONNECTS[1][sock.id].fetch_add(1, Ordering::SeqCst);
    }
    let rc = code("connect", dgram_connect(sock.ptr, port, cptr(&dest), cb));
    trace!(
        "connect socket {} ({:?}) to {dest:?} port {port}: {rc}",
        sock.id,
        sock.conn
    );
    if rc != 0 {
        CONNECTS[0][sock.id].fetch_sub(1, Ordering::SeqCst);
        if once {
            CONNECTS[1][sock.id].fetch_sub(1, Ordering::SeqCst);
        }
    }
    if known_closed(sock.id) {
        expect("connect on a closed socket", rc, DGRAM_EBADF);
        return;
    }
    let name = is_name(&dest);
    // The arguments are checked first, whatever the state: port 1..65535.
    let args = dest_verdict(sock.udp6, port, &dest, true);
    let zone_or_mapped = dest.as_ref().is_some_and(|d| {
        d.as_bytes().contains(&b'%')
            || parses_as(d.as_bytes()).is_some_and(|ip| matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()))
    });
    // The system's answer to a numeric connect (an implicit bind, connect(2)).
    let system = |rc: c_int| rc < 0 && !impossible(rc) && (rc != DGRAM_EINVAL || zone_or_mapped);
    let fine = if !args.must.is_empty() {
        args.accepts(rc, &[])
    } else {
        let zone = |rc: c_int| args.may.contains(&rc);
        match sock.conn {
            // A name is looked up first: 0 at once. A numeric connect may
            // also wait behind a lookup of an earlier call.
            Conn::No if name => rc == 0,
            Conn::No => rc == 0 || system(rc) || zone(rc),
            Conn::Yes(_) => rc == DGRAM_EISCONN || zone(rc),
            Conn::Unknown => rc == 0 || rc == DGRAM_EISCONN || (!name && system(rc)) || zone(rc),
        }
    };
    if !fine {
        fail!(
            "connect of {} socket {} ({:?}) to {dest:?} port {port} returned {rc}",
            if sock.udp6 { "udp6" } else { "udp4" },
            sock.id,
            sock.conn
        );
    }
    if rc == 0 {
        // "For a numeric address the connect happens now", unless it waits
        // behind an operation of this socket that waits for a lookup.
        let sure = !name && !sock.lookups;
        set_conn(
            g,
            slot,
            sock.id,
            if sure { Conn::Yes(port as u16) } else { Conn::Unknown },
        );
        note_lookup(g, slot, &dest);
        learn_port(g, slot);
    }
}

/// dgram_disconnect, dgram_remote_address (also with NULL out), and that a
/// disconnect keeps the local address.
unsafe fn op_peer(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let closed = known_closed(sock.id);
    match rd.u8() % 4 {
        0 | 1 => {
            let mut before: Addr = std::mem::zeroed();
            let had_address = dgram_address(sock.ptr, &mut before) == 0;
            let rc = code("disconnect", dgram_disconnect(sock.ptr));
            trace!("disconnect socket {} ({:?}): {rc}", sock.id, sock.conn);
            let fine = match (closed, sock.conn) {
                (true, _) => rc == DGRAM_EBADF,
                (false, Conn::No) => rc == DGRAM_ENOTCONN,
                (false, Conn::Yes(_)) => rc == 0,
                (false, Conn::Unknown) => rc == 0 || rc == DGRAM_ENOTCONN,
            };
            if !fine {
                fail!(
                    "disconnect of socket {} ({:?}, closed {closed}) returned {rc}",
                    sock.id,
                    sock.conn
                );
            }
            if rc == 0 {
                // No connect can wait for a lookup once one has connected.
                set_conn(g, slot, sock.id, Conn::No);
                let mut after: Addr = std::mem::zeroed();
                expect("address after disconnect", dgram_address(sock.ptr, &mut after), 0);
                // The port: the address shown while connected is the one
                // the route chose (127.0.0.1 for a socket bound to 0.0.0.0).
                if had_address && (before.port != after.port || before.family != after.family) {
                    fail!(
                        "disconnect moved socket {} from {:?} port {} to {:?} port {}",
                        sock.id,
                        CStr::from_ptr(before.address.as_ptr()),
                        before.port,
                        CStr::from_ptr(after.address.as_ptr()),
                        after.port
                    );
                }
            }
        }
        2 => {
            let rc = code(
                "remote_address(NULL)",
                dgram_remote_address(sock.ptr, std::ptr::null_mut()),
            );
            expect(
                "remote_address(NULL out)",
                rc,
                if closed { DGRAM_EBADF } else { DGRAM_EINVAL },
            );
        }
        _ => {
            let mut a = Addr {
                address: [0x55; DGRAM_ADDRSTRLEN],
                port: 0,
                family: 0,
            };
            let rc = code("remote_address", dgram_remote_address(sock.ptr, &mut a));
            trace!("remote_address socket {} ({:?}): {rc}", sock.id, sock.conn);
            let fine = match (closed, sock.conn) {
                (true, _) => rc == DGRAM_EBADF,
                (false, Conn::No) => rc == DGRAM_ENOTCONN,
                (false, Conn::Yes(_)) => rc == 0,
                (false, Conn::Unknown) => rc == 0 || rc == DGRAM_ENOTCONN,
            };
            if !fine {
                fail!(
                    "remote_address of socket {} ({:?}, closed {closed}) returned {rc}",
                    sock.id,
                    sock.conn
                );
            }
            if rc == 0 {
                check_addr("remote_address", &a, true);
                let text = CStr::from_ptr(a.address.as_ptr()).to_bytes();
                let literal = text.split(|&b| b == b'%').next().unwrap_or(b"");
                if !parses_as(literal).is_some_and(is_allowed_destination) {
                    fail!(
                        "remote_address of socket {} is {text:?}, where nothing was connected",
                        sock.id
                    );
                }
                if let Conn::Yes(port) = sock.conn {
                    if a.port != port {
                        fail!(
                            "remote_address of socket {} has port {}, connected to {port}",
                            sock.id,
                            a.port
                        );
                    }
                }
                // Connected now, so no connect waits for a lookup any more.
                set_conn(g, slot, sock.id, Conn::Yes(a.port));
            }
        }
    }
}

/// The interface texts of dgram_set_multicast_interface, with what the
/// header makes of them in the fuzzer's namespace (only `lo`): for udp4,
/// then udp6; an empty list: any answer.
const MCAST_IFACES: &[(&str, &[c_int], &[c_int])] = &[
    ("127.0.0.1", &[0], &[DGRAM_EINVAL, DGRAM_ENODEV]),
    ("0.0.0.0", &[0], &[DGRAM_EINVAL, DGRAM_ENODEV]),
    ("198.51.100.1", &[DGRAM_EADDRNOTAVAIL], &[DGRAM_EINVAL, DGRAM_ENODEV]),
    ("::", &[DGRAM_EINVAL], &[0]),
    ("::%lo", &[DGRAM_EINVAL], &[0]),
    ("::%1", &[DGRAM_EINVAL], &[0]),
    ("lo", &[DGRAM_EINVAL], &[0]),
    ("1", &[DGRAM_EINVAL], &[0]),
    ("nosuchif0", &[DGRAM_EINVAL], &[DGRAM_ENODEV]),
    ("::%nosuchif0", &[DGRAM_EINVAL], &[DGRAM_ENODEV]),
    ("::1", &[DGRAM_EINVAL], &[DGRAM_EINVAL]),
    ("", &[DGRAM_EINVAL], &[DGRAM_EINVAL]),
    ("99", &[DGRAM_EINVAL], &[]),
];

/// Sources, groups and interfaces of the source-specific membership calls.
const SSM_SOURCES: &[&str] = &[
    "127.0.0.1",
    "198.51.100.1",
    "::1",
    "2001:db8::1",
    "0.0.0.0",
    "::",
    "232.1.1.1",
    "ff3e::1",
    "",
];
const SSM_GROUPS: &[&str] = &[
    "232.1.1.1",
    "239.255.0.1",
    "ff3e::8000:1",
    "ff02::1",
    "127.0.0.1",
    "::1",
    "0.0.0.0",
];
const SSM_IFACES: &[&str] = &["127.0.0.1", "lo", "1", "::%lo", "nosuchif0", "198.51.100.1", ""];

fn pick_from(rd: &mut Rd, fixed: &[&str]) -> Option<CString> {
    match rd.u8() % 8 {
        0 => None,
        1 => Some(garbage(rd)),
        _ => Some(CString::new(fixed[rd.u8() as usize % fixed.len()]).unwrap()),
    }
}

/// The socket family's address in `text`, a literal without zone.
fn literal_of(text: &Option<CString>, udp6: bool) -> Option<IpAddr> {
    let t = text.as_ref()?.as_bytes();
    if t == b"localhost" || t.contains(&b'%') {
        return None;
    }
    match parses_as(t)? {
        IpAddr::V4(v4) if !udp6 => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) if udp6 => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

/// dgram_add/drop_source_specific_membership. Joins and leaves on `lo` are
/// followed: leaving a group not joined is EADDRNOTAVAIL.
unsafe fn op_ssm(g: &Guard, slot: usize, rd: &mut Rd, sock: SockSlot, closed: bool) {
    let join = rd.bool();
    let source = pick_from(rd, SSM_SOURCES);
    let group = pick_from(rd, SSM_GROUPS);
    let iface = if rd.u8() % 4 == 0 {
        None
    } else {
        pick_from(rd, SSM_IFACES)
    };
    let rc = if join {
        code(
            "add_source_specific_membership",
            dgram_add_source_specific_membership(sock.ptr, cptr(&source), cptr(&group), cptr(&iface)),
        )
    } else {
        code(
            "drop_source_specific_membership",
            dgram_drop_source_specific_membership(sock.ptr, cptr(&source), cptr(&group), cptr(&iface)),
        )
    };
    let what = if join { "join" } else { "leave" };
    trace!("ssm {what} socket {} {source:?} {group:?} {iface:?}: {rc}", sock.id);
    if closed {
        expect("source-specific membership on a closed socket", rc, DGRAM_EBADF);
        return;
    }
    let udp6 = sock.udp6;
    // Well-formed in the fuzzer's eyes, garbage included; None: unsure.
    let fixed = |t: &Option<CString>, list: &[&str]| {
        t.as_ref()
            .is_none_or(|t| list.iter().any(|f| f.as_bytes() == t.as_bytes()))
    };
    let src = literal_of(&source, udp6);
    let grp = literal_of(&group, udp6);
    let src_ok = src.is_some_and(|ip| !ip.is_multicast() && !ip.is_unspecified());
    let grp_ok = grp.is_some_and(|ip| ip.is_multicast());
    let on_lo = match iface.as_ref().map(|i| i.as_bytes()) {
        Some(b"127.0.0.1") => !udp6,
        Some(b"lo" | b"1" | b"::%lo") => udp6,
        _ => false,
    };
    // udp4 takes only an IPv4 address as interface.
    let iface_malformed = !udp6 && iface.is_some() && literal_of(&iface, false).is_none() && fixed(&iface, SSM_IFACES);
    let knowable = fixed(&source, SSM_SOURCES) && fixed(&group, SSM_GROUPS) && fixed(&iface, SSM_IFACES);
    let mut expected: Option<Vec<c_int>> = None; // None: any answer
    if source.is_none() || group.is_none() {
        expected = Some(vec![DGRAM_EINVAL]);
    } else if knowable && (!src_ok || !grp_ok) {
        // Arguments first; an interface name that does not exist may be
        // found first too.
        expected = Some(vec![DGRAM_EINVAL, DGRAM_ENODEV]);
    } else if knowable && iface_malformed {
        expected = Some(vec![DGRAM_EINVAL]);
    } else if knowable && on_lo && !sock.ssm_unsure {
        let (s, gr) = (src.expect("ok"), grp.expect("ok"));
        let joined = g
            .borrow()
            .ssm_joined
            .iter()
            .any(|&(id, a, b)| id == sock.id && a == s && b == gr);
        let group_joined = g.borrow().ssm_joined.iter().any(|&(id, _, b)| id == sock.id && b == gr);
        expected = Some(match (join, joined) {
            (true, false) => vec![0, DGRAM_ENOBUFS],
            (true, true) => vec![DGRAM_EADDRNOTAVAIL, DGRAM_EINVAL], // the kernel's answer
            (false, true) => vec![0],
            // The header: a group never joined is EINVAL, a source not
            // joined within a joined group EADDRNOTAVAIL (found by this
            // fuzzer: the header used to promise EADDRNOTAVAIL for both).
            (false, false) if group_joined => vec![DGRAM_EADDRNOTAVAIL],
            (false, false) => vec![DGRAM_EINVAL],
        });
    } else if knowable && src_ok && grp_ok && iface.as_ref().is_some_and(|i| !on_lo && !i.as_bytes().is_empty()) {
        // Not a local interface: the kernel's answer.
        expected = Some(vec![DGRAM_EADDRNOTAVAIL, DGRAM_ENODEV, DGRAM_EINVAL]);
    }
    if let Some(want) = &expected {
        if !want.contains(&rc) {
            fail!(
                "{what} source-specific {source:?} {group:?} on {iface:?} ({}, socket {}) returned {rc}, expected one of {want:?}",
                if udp6 { "udp6" } else { "udp4" },
                sock.id
            );
        }
    }
    if rc == 0 {
        let mut st = g.borrow_mut();
        match (on_lo && knowable, src, grp) {
            (true, Some(s), Some(gr)) => {
                if join {
                    st.ssm_joined.push((sock.id, s, gr));
                } else {
                    st.ssm_joined
                        .retain(|&(id, a, b)| !(id == sock.id && a == s && b == gr));
                }
            }
            // A membership the harness cannot name: leave the rest to the kernel.
            _ => {
                if let Some(s) = st.socks[slot].as_mut() {
                    s.ssm_unsure = true;
                }
            }
        }
    }
}

/// The calls of issue 8 that take a socket and a value: buffer sizes, send
/// queue figures, ref/unref, offloads, message metadata, multicast
/// interface, source-specific memberships.
unsafe fn op_more_options(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let closed = known_closed(sock.id);
    let which = rd.u8();
    match which % 9 {
        0 => {
            let size = match rd.u8() % 4 {
                0 => interesting_i32(rd),
                1 => 1 + rd.u16() as i32,
                2 => -(rd.u8() as i32),
                _ => 1 << (rd.u8() % 31),
            };
            let recv = rd.bool();
            let rc = if recv {
                code("set_recv_buffer_size", dgram_set_recv_buffer_size(sock.ptr, size))
            } else {
                code("set_send_buffer_size", dgram_set_send_buffer_size(sock.ptr, size))
            };
            let want = if closed {
                DGRAM_EBADF
            } else if size <= 0 {
                DGRAM_EINVAL
            } else {
                0
            };
            if rc != want {
                fail!(
                    "set_{}_buffer_size({size}) returned {rc}, expected {want}",
                    if recv { "recv" } else { "send" }
                );
            }
        }
        1 => {
            for (what, got) in [
                ("get_recv_buffer_size", dgram_get_recv_buffer_size(sock.ptr)),
                ("get_send_buffer_size", dgram_get_send_buffer_size(sock.ptr)),
            ] {
                if got == DGRAM_EINTERNAL || (closed && got != DGRAM_EBADF) || (!closed && got <= 0) {
                    fail!("{what} of socket {} (closed {closed}) returned {got}", sock.id);
                }
            }
        }
        2 => {
            // Count first: between the two calls the queue can only shrink
            // (only the harness sends, and it holds its lock).
            let count = dgram_send_queue_count(sock.ptr);
            let size = dgram_send_queue_size(sock.ptr);
            trace!("send queue of socket {}: {count} datagrams, {size} bytes", sock.id);
            if closed {
                expect("send_queue_count on a closed socket", count, DGRAM_EBADF);
                expect("send_queue_size on a closed socket", size, DGRAM_EBADF);
                return;
            }
            if count < 0 || size < 0 {
                fail!("send queue of socket {}: count {count}, size {size}", sock.id);
            }
            if size as i64 > count as i64 * 65527 {
                fail!("send queue of socket {}: {size} bytes in {count} datagrams", sock.id);
            }
            // Every send it accepted had a callback, and all have come: none
            // is waiting.
            if flags(sock.id) & F_UNTRACKED == 0 && !has_pending(sock.id) && (count != 0 || size != 0) {
                fail!(
                    "send queue of socket {}: {count} datagrams, {size} bytes, after every send completed",
                    sock.id
                );
            }
        }
        3 => {
            let referenced = rd.bool();
            let rc = if referenced {
                code("socket_ref", dgram_socket_ref(sock.ptr))
            } else {
                code("socket_unref", dgram_socket_unref(sock.ptr))
            };
            expect("socket_ref/unref", rc, if closed { DGRAM_EBADF } else { 0 });
            if let Some(ctx) = sock.ctx.and_then(|c| g.borrow().ctxs[c]) {
                let active = check_active(ctx.ptr);
                // A bound, open, referenced socket keeps its loop alive.
                if referenced && !closed && sock.port != 0 && active == 0 {
                    fail!("context_active is 0 with socket {} bound, open and referenced", sock.id);
                }
            }
        }
        4 => {
            let flags_ = match rd.u8() % 4 {
                0 | 1 => rd.u8() as u32 % 4,
                2 => 1 << (rd.u8() % 32),
                _ => rd.u32(),
            };
            let rc = dgram_set_offload(sock.ptr, flags_);
            let support = offload_support();
            trace!("set_offload socket {} {flags_:#x}: {rc}", sock.id);
            if rc == DGRAM_EINTERNAL {
                fail!("set_offload returned DGRAM_EINTERNAL");
            }
            if closed {
                expect("set_offload on a closed socket", rc, DGRAM_EBADF);
            } else if flags_ & !(DGRAM_OFFLOAD_GSO | DGRAM_OFFLOAD_GRO) != 0 {
                expect("set_offload with unknown bits", rc, DGRAM_EINVAL);
            } else if rc < 0
                // GRO, once on, stays on (found by this fuzzer: a GRO buffer
                // read after the option went off came as one datagram).
                || (rc as u32) & !((flags_ | DGRAM_OFFLOAD_GRO) & support) != 0
                || flags_ & support & !(rc as u32) != 0
            {
                fail!("set_offload({flags_:#x}) with support {support:#x} returned {rc}");
            }
        }
        5 => {
            let on = rd.bool();
            let bound_before = flags(sock.id) & F_BIND_TRIED != 0;
            if !on {
                set_flag(sock.id, F_META_OFF);
            }
            let rc = code("set_message_meta", dgram_set_message_meta(sock.ptr, on));
            expect("set_message_meta", rc, if closed { DGRAM_EBADF } else { 0 });
            if rc == 0 && on && !bound_before {
                set_flag(sock.id, F_META_ALWAYS);
            }
        }
        6 => {
            // Outside the socket's message callback: EINVAL.
            let null_out = rd.u8() % 4 == 0;
            let mut meta: Meta = std::mem::zeroed();
            let out: *mut Meta = if null_out { std::ptr::null_mut() } else { &mut meta };
            let rc = code("message_meta", dgram_message_meta(sock.ptr, out));
            let inside = IN_MESSAGE.with(|m| m.borrow().contains(&sock.id));
            if closed {
                expect("message_meta on a closed socket", rc, DGRAM_EBADF);
            } else if !inside || null_out {
                expect("message_meta outside the message callback", rc, DGRAM_EINVAL);
            } else if rc != 0 && rc != DGRAM_EINVAL {
                fail!(
                    "message_meta inside socket {}'s message callback returned {rc}",
                    sock.id
                );
            }
        }
        7 => {
            let (text, v4, v6): (Option<CString>, &[c_int], &[c_int]) = match rd.u8() % 8 {
                0 => (None, &[DGRAM_EINVAL], &[DGRAM_EINVAL]),
                1 => (Some(garbage(rd)), &[], &[]),
                _ => {
                    let (t, v4, v6) = MCAST_IFACES[rd.u8() as usize % MCAST_IFACES.len()];
                    (Some(CString::new(t).unwrap()), v4, v6)
                }
            };
            let rc = code(
                "set_multicast_interface",
                dgram_set_multicast_interface(sock.ptr, cptr(&text)),
            );
            let want = if sock.udp6 { v6 } else { v4 };
            if closed {
                expect("set_multicast_interface on a closed socket", rc, DGRAM_EBADF);
            } else if !want.is_empty() && !want.contains(&rc) {
                fail!(
                    "set_multicast_interface({text:?}) on {} returned {rc}, expected one of {want:?}",
                    if sock.udp6 { "udp6" } else { "udp4" }
                );
            }
        }
        _ => op_ssm(g, slot, rd, sock, closed),
    }
}

/// dgram_offload_support: a subset of the known flags, the same every time.
fn offload_support() -> u32 {
    static FIRST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let now = unsafe { dgram_offload_support() };
    let first = *FIRST.get_or_init(|| now);
    if now != first || now & !(DGRAM_OFFLOAD_GSO | DGRAM_OFFLOAD_GRO) != 0 {
        fail!("offload_support returned {now:#x}, first {first:#x}");
    }
    now
}

/// dgram_context_active, which must never look like a counter that went
/// below zero.
unsafe fn check_active(ctx: *const Ctx) -> u32 {
    let active = dgram_context_active(ctx);
    if active > 1 << 22 {
        fail!("context_active is {active}: a counter went below zero?");
    }
    active
}

unsafe fn op_options(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let closed = known_closed(sock.id);
    let which = rd.u8();
    let v = interesting_i32(rd);
    match which % 10 {
        9 => {
            // Counters: on closed sockets too; they only ever grow.
            if rd.u8() % 8 == 0 {
                let rc = dgram_socket_stats(sock.ptr, std::ptr::null_mut());
                expect("socket_stats(NULL out)", rc, DGRAM_EINVAL);
                return;
            }
            let mut st = Stats::default();
            expect("socket_stats", dgram_socket_stats(sock.ptr, &mut st), 0);
            let last = sock.stats;
            let grew = st.datagrams_received >= last.datagrams_received
                && st.bytes_received >= last.bytes_received
                && st.datagrams_sent >= last.datagrams_sent
                && st.bytes_sent >= last.bytes_sent
                && st.dropped_by_kernel >= last.dropped_by_kernel
                && st.send_errors >= last.send_errors;
            if !grew {
                fail!("socket {} counters went down: {last:?} then {st:?}", sock.id);
            }
            if st.dropped_queue_full != 0 {
                fail!(
                    "dropped_queue_full is {} (documented as always 0)",
                    st.dropped_queue_full
                );
            }
            if st.bytes_received > st.datagrams_received * 65527 || st.bytes_sent > st.datagrams_sent * 65527 {
                fail!(
                    "socket {} counters: more bytes than datagrams can carry: {st:?}",
                    sock.id
                );
            }
            if let Some(s) = g.borrow_mut().socks[slot].as_mut() {
                s.stats = st;
            }
        }
        0 => {
            let rc = code("set_broadcast", dgram_set_broadcast(sock.ptr, v & 1 != 0));
            expect("set_broadcast", rc, if closed { DGRAM_EBADF } else { 0 });
        }
        1 => {
            let rc = code("set_ttl", dgram_set_ttl(sock.ptr, v));
            let want = if closed {
                DGRAM_EBADF
            } else if (1..=255).contains(&v) {
                0
            } else {
                DGRAM_EINVAL
            };
            expect("set_ttl", rc, want);
        }
        2 => {
            let rc = code("set_multicast_ttl", dgram_set_multicast_ttl(sock.ptr, v));
            let want = if closed {
                DGRAM_EBADF
            } else if (0..=255).contains(&v) {
                0
            } else {
                DGRAM_EINVAL
            };
            expect("set_multicast_ttl", rc, want);
        }
        3 => {
            let rc = code(
                "set_multicast_loopback",
                dgram_set_multicast_loopback(sock.ptr, v & 1 != 0),
            );
            expect("set_multicast_loopback", rc, if closed { DGRAM_EBADF } else { 0 });
        }
        4 | 5 => {
            let group = pick_group(rd);
            let iface = pick_iface(rd);
            let rc = if which % 10 == 4 {
                code(
                    "add_membership",
                    dgram_add_membership(sock.ptr, cptr(&group), cptr(&iface)),
                )
            } else {
                code(
                    "drop_membership",
                    dgram_drop_membership(sock.ptr, cptr(&group), cptr(&iface)),
                )
            };
            if closed && rc != DGRAM_EBADF {
                fail!("membership call on a closed socket returned {rc}");
            }
            if !closed && group.is_none() && rc != DGRAM_EINVAL {
                fail!("membership call with a NULL group returned {rc}");
            }
            if rc == 0 {
                // Any-source memberships change what source-specific calls get.
                if let Some(s) = g.borrow_mut().socks[slot].as_mut() {
                    s.ssm_unsure = true;
                }
            }
        }
        6 => {
            let fd = dgram_fileno(sock.ptr);
            if closed && fd != DGRAM_EBADF {
                fail!("fileno of a closed socket returned {fd}");
            }
            if !closed && fd < 0 {
                fail!("fileno of an open socket returned {fd}");
            }
        }
        7 => {
            let null_out = rd.u8() % 8 == 0;
            let rc = if null_out {
                code("address", dgram_address(sock.ptr, std::ptr::null_mut()))
            } else {
                learn_port(g, slot);
                return;
            };
            let want = if closed { DGRAM_EBADF } else { DGRAM_EINVAL };
            if rc != want {
                fail!("dgram_address with NULL out returned {rc}, expected {want}");
            }
        }
        _ => {
            for code_ in [v, -(rd.u8() as i32), -(rd.u16() as i32)] {
                for p in [dgram_err_name(code_), dgram_strerror(code_)] {
                    if p.is_null() {
                        fail!("err_name/strerror({code_}) returned NULL");
                    }
                    let _ = CStr::from_ptr(p).to_bytes().len();
                }
            }
        }
    }
}

/// Dispatches (or runs) context slot `c`. `io_thread_of`: the context whose
/// I/O thread this is, when called from an I/O-thread callback.
unsafe fn op_dispatch(g: &Guard, c: usize, rd: &mut Rd, io_thread_of: Option<usize>) {
    let ctx = g.borrow().ctxs[c];
    let max = match rd.u8() % 4 {
        0 => 0,
        1 => 1,
        2 => rd.u8() as u32,
        _ => rd.u32(),
    };
    let use_run = rd.u8() % 4 == 0;
    let timeout = (rd.u8() % 3) as i32;
    let ptr = ctx.map_or(std::ptr::null_mut(), |c| c.ptr);
    let nested = DISPATCHING.with(|d| d.borrow().contains(&c));
    IN_DISPATCH.with(|d| d.set(d.get() + 1));
    DISPATCHING.with(|d| d.borrow_mut().push(c));
    let rc = if use_run {
        dgram_context_run(ptr, timeout)
    } else {
        dgram_context_dispatch(ptr, max)
    };
    DISPATCHING.with(|d| d.borrow_mut().pop());
    IN_DISPATCH.with(|d| d.set(d.get() - 1));
    let what = if use_run { "run" } else { "dispatch" };
    trace!("{what} context {c}: {rc}");
    if rc == DGRAM_EINTERNAL {
        fail!("{what} returned DGRAM_EINTERNAL");
    }
    let Some(ctx) = ctx else {
        if rc != DGRAM_EINVAL {
            fail!("{what} of NULL returned {rc}");
        }
        return;
    };
    // A callback this call ran may have freed the context: then, and only
    // then, EBADF (no other thread can free it meanwhile: that needs the
    // harness lock, which this thread holds).
    let freed = g.borrow().ctxs[c].is_none_or(|now| now.ptr != ctx.ptr);
    if ctx.io_mode {
        // EBUSY on that context's own I/O thread, 0 elsewhere. Off the main
        // thread this is some context's I/O thread, and a callback of a
        // host-mode context may be running on it, dispatched from a callback
        // of the I/O-mode one (found by the fuzzer: the harness expected 0
        // there, and it was context c's own I/O thread): either may be right.
        let on_some_io_thread = !IS_MAIN.with(Cell::get);
        let ok = match io_thread_of {
            Some(own) if own == c => rc == DGRAM_EBUSY,
            _ if on_some_io_thread => rc == 0 || rc == DGRAM_EBUSY,
            _ => rc == 0,
        };
        if !ok {
            fail!(
                "{what} of an I/O-thread context returned {rc} (own I/O thread of {io_thread_of:?}, main thread: {})",
                !on_some_io_thread
            );
        }
    } else if nested {
        if rc != DGRAM_EBUSY {
            fail!("nested {what} of context {c} returned {rc}, expected EBUSY");
        }
    } else if freed {
        if rc != DGRAM_EBADF {
            fail!("{what} that ran a free of its context returned {rc}, expected EBADF");
        }
    } else if rc < 0 {
        fail!("{what} returned {rc}");
    } else if !use_run && max > 0 && rc as u32 > max {
        fail!("dispatch({max}) processed {rc} events");
    }
}

/// Host-dispatches every live host-mode context a few times.
unsafe fn flush(g: &Guard, rounds: u32, sleep_us: u64) {
    for _ in 0..rounds {
        for c in 0..N_CTX {
            let Some(ctx) = g.borrow().ctxs[c] else { continue };
            if ctx.io_mode {
                continue;
            }
            check_active(ctx.ptr);
            IN_DISPATCH.with(|d| d.set(d.get() + 1));
            DISPATCHING.with(|d| d.borrow_mut().push(c));
            let rc = dgram_context_dispatch(ctx.ptr, 0);
            DISPATCHING.with(|d| d.borrow_mut().pop());
            IN_DISPATCH.with(|d| d.set(d.get() - 1));
            let freed = g.borrow().ctxs[c].is_none_or(|now| now.ptr != ctx.ptr);
            if (rc < 0 || freed) && !(freed && rc == DGRAM_EBADF) {
                fail!("dispatch in flush returned {rc} (context freed meanwhile: {freed})");
            }
        }
        if sleep_us > 0 {
            std::thread::sleep(Duration::from_micros(sleep_us));
        }
    }
}

/// The end of an input, sometimes: closes every open socket and waits for
/// each 'close', before which every send it accepted must have completed,
/// once per datagram (checked in the 'close' callback); then every context
/// must come to rest (dgram_context_active 0). Callbacks do nothing meanwhile.
unsafe fn drain(g: &Guard) {
    g.borrow_mut().quiet = true;
    let mut closing = Vec::new();
    for slot in 0..N_SOCK {
        let Some(sock) = g.borrow().socks[slot] else { continue };
        if known_closed(sock.id) {
            continue;
        }
        set_flag(sock.id, F_CLOSE_CALLED);
        expect("close (drain)", dgram_close(sock.ptr, Some(on_close_once)), 0);
        set_flag(sock.id, F_CLOSED);
        closing.push(sock.id);
    }
    trace!("drain: closed sockets {closing:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        flush(g, 1, 0);
        let waiting = closing
            .iter()
            .find(|&&id| flags(id) & (F_CLOSE_1 | F_FREED | F_CTX_FREED) == 0);
        let Some(&id) = waiting else { break };
        if std::time::Instant::now() > deadline {
            fail!("'close' of socket {id} did not come within 10 s of dgram_close");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for c in 0..N_CTX {
        let Some(ctx) = g.borrow().ctxs[c] else { continue };
        loop {
            flush(g, 1, 0);
            let active = check_active(ctx.ptr);
            if active == 0 {
                break;
            }
            if std::time::Instant::now() > deadline {
                fail!("context {c} still active ({active}) with every socket closed and its 'close' delivered");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    g.borrow_mut().quiet = false;
}

// ---- the process around each input ---------------------------------------------

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, |d| d.count())
}

/// The target refuses to run where it could reach a real network.
fn check_isolated() {
    {
        if std::env::var_os("DGRAM_FUZZ_REPRO_ANYWHERE").is_some_and(|v| v == "1") {
            eprintln!("dgram fuzz: DGRAM_FUZZ_REPRO_ANYWHERE=1: not checking the network namespace");
        } else {
            let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
            let ifaces: Vec<&str> = dev
                .lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(str::trim)
                .collect();
            if ifaces != ["lo"] {
                eprintln!(
                    "dgram fuzz: refusing to run: this network namespace has interfaces {ifaces:?}; \
                     run it through scripts/fuzz.sh (unshare -n, only lo), see fuzz/README.md"
                );
                std::process::exit(2);
            }
            // lo must be up, or nothing would ever be received.
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket on 127.0.0.1");
            probe.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            probe
                .send_to(b"x", probe.local_addr().unwrap())
                .expect("loopback send (is lo up?)");
            let mut b = [0u8; 4];
            probe.recv(&mut b).expect("loopback receive (is lo up?)");
        }
        let v = unsafe { CStr::from_ptr(dgram_version()) };
        eprintln!("dgram fuzz: libdgram {}", v.to_string_lossy());
    }
}

fuzz_target!(init: check_isolated(), |data: &[u8]| {
    IS_MAIN.with(|m| m.set(true));
    let fds_before = count_dir("/proc/self/fd");
    let threads_before = count_dir("/proc/self/task");

    let body = data.get(2..).unwrap_or(&[]);
    let script_len = (Rd { d: data, p: 0 }.u16() as usize).min(body.len() / 2);
    let (script, ops) = body.split_at(script_len);
    let script = script.to_vec();
    let mut rd = Rd { d: ops, p: 0 };

    for f in FLAGS.iter().chain(CONNECTS.iter().flatten()) {
        f.store(0, Ordering::SeqCst);
    }
    pending(|p| p.clear());

    {
        let g = STATE.lock();
        {
            let mut st = g.borrow_mut();
            st.ctxs = [None; N_CTX];
            st.socks = [None; N_SOCK];
            st.next_id = 1;
            st.next_token = 1;
            st.script = script;
            st.script_pos = 0;
            st.quiet = false;
            st.ssm_joined.clear();
        }
        drop(g);
    }

    let mut steps = 0;
    while !rd.done() && steps < 400 {
        steps += 1;
        let op = rd.u8();
        // The harness lock is held for one operation at a time, so I/O-thread
        // callbacks get their turns in between.
        let g = STATE.lock();
        unsafe {
            match op % 24 {
                0 | 1 => op_create_context(&g, &mut rd),
                2 => {
                    let c = rd.u8() as usize % N_CTX;
                    op_free_context(&g, c);
                }
                3..=5 => op_create_socket(&g, &mut rd),
                6 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_bind(&g, s, &mut rd);
                }
                7..=9 => {
                    let s = rd.u8() as usize % N_SOCK;
                    let port = port_for(&g.borrow(), &mut rd);
                    let dest = pick_destination(&mut rd);
                    do_send(&g, s, &mut rd, port, dest);
                }
                10 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_close(&g, s, &mut rd);
                }
                11 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_free_socket(&g, s);
                }
                12 | 13 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_options(&g, s, &mut rd);
                }
                14 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_handlers(&g, s, &mut rd);
                }
                15 | 16 => {
                    let c = rd.u8() as usize % N_CTX;
                    op_dispatch(&g, c, &mut rd, None);
                }
                17 => {
                    // Poll the context fd briefly, as a host loop would.
                    let c = rd.u8() as usize % N_CTX;
                    let ms = (rd.u8() % 3) as i32;
                    if let Some(ctx) = g.borrow().ctxs[c] {
                        let mut p = libc::pollfd { fd: dgram_context_fd(ctx.ptr), events: libc::POLLIN, revents: 0 };
                        libc::poll(&mut p, 1, ms);
                    }
                    if rd.bool() {
                        op_dispatch(&g, c, &mut rd, None);
                    }
                }
                18 => {
                    // Let the I/O threads run without the harness lock.
                    drop(g);
                    std::thread::sleep(Duration::from_micros(50 + 10 * rd.u8() as u64));
                    continue;
                }
                20 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_connect(&g, s, &mut rd);
                }
                21 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_peer(&g, s, &mut rd);
                }
                22 => {
                    let s = rd.u8() as usize % N_SOCK;
                    let port = port_for(&g.borrow(), &mut rd);
                    let dest = pick_destination(&mut rd);
                    do_batch(&g, s, &mut rd, port, dest);
                }
                23 => {
                    let s = rd.u8() as usize % N_SOCK;
                    op_more_options(&g, s, &mut rd);
                }
                _ => {
                    // NULL handles: EINVAL, or nothing for the _free functions.
                    let which = rd.u8() % 12;
                    match which {
                        0 => expect("bind(NULL)", dgram_bind(std::ptr::null_mut(), 0, std::ptr::null(), None), DGRAM_EINVAL),
                        1 => expect(
                            "send(NULL)",
                            dgram_send(std::ptr::null_mut(), std::ptr::null(), 0, 1, std::ptr::null(), None, std::ptr::null_mut()),
                            DGRAM_EINVAL,
                        ),
                        2 => expect("close(NULL)", dgram_close(std::ptr::null_mut(), None), DGRAM_EINVAL),
                        3 => {
                            dgram_socket_free(std::ptr::null_mut());
                            dgram_context_free(std::ptr::null_mut());
                        }
                        4 => {
                            if dgram_context_active(std::ptr::null()) != 0 {
                                fail!("active(NULL) != 0");
                            }
                            expect("context_fd(NULL)", dgram_context_fd(std::ptr::null()), DGRAM_EINVAL);
                        }
                        5 => expect("fileno(NULL)", dgram_fileno(std::ptr::null()), DGRAM_EINVAL),
                        6 => {
                            let null = std::ptr::null_mut();
                            expect("connect(NULL)", dgram_connect(null, 1, std::ptr::null(), None), DGRAM_EINVAL);
                            expect("disconnect(NULL)", dgram_disconnect(null), DGRAM_EINVAL);
                            let mut a: Addr = std::mem::zeroed();
                            expect("remote_address(NULL)", dgram_remote_address(null, &mut a), DGRAM_EINVAL);
                            expect("on_connect(NULL)", dgram_on_connect(null, Some(on_connect)), DGRAM_EINVAL);
                        }
                        7 => {
                            let b = Buf { base: pattern().as_ptr().cast(), len: 1 };
                            expect(
                                "send_batch(NULL)",
                                dgram_send_batch(std::ptr::null_mut(), &b, 1, 1, std::ptr::null(), None, std::ptr::null_mut()),
                                DGRAM_EINVAL,
                            );
                            expect("set_offload(NULL)", dgram_set_offload(std::ptr::null_mut(), 0), DGRAM_EINVAL);
                            offload_support();
                        }
                        8 => {
                            let null = std::ptr::null_mut();
                            expect("socket_ref(NULL)", dgram_socket_ref(null), DGRAM_EINVAL);
                            expect("socket_unref(NULL)", dgram_socket_unref(null), DGRAM_EINVAL);
                            expect("set_recv_buffer_size(NULL)", dgram_set_recv_buffer_size(null, 4096), DGRAM_EINVAL);
                            expect("set_send_buffer_size(NULL)", dgram_set_send_buffer_size(null, 4096), DGRAM_EINVAL);
                        }
                        9 => {
                            let null = std::ptr::null();
                            for (what, rc) in [
                                ("get_recv_buffer_size(NULL)", dgram_get_recv_buffer_size(null)),
                                ("get_send_buffer_size(NULL)", dgram_get_send_buffer_size(null)),
                                ("send_queue_size(NULL)", dgram_send_queue_size(null)),
                                ("send_queue_count(NULL)", dgram_send_queue_count(null)),
                            ] {
                                if rc != DGRAM_EINVAL {
                                    fail!("{what} returned {rc}, expected EINVAL");
                                }
                            }
                        }
                        10 => {
                            let mut m: Meta = std::mem::zeroed();
                            expect("set_message_meta(NULL)", dgram_set_message_meta(std::ptr::null_mut(), true), DGRAM_EINVAL);
                            expect("message_meta(NULL)", dgram_message_meta(std::ptr::null(), &mut m), DGRAM_EINVAL);
                        }
                        _ => {
                            let null = std::ptr::null_mut();
                            let (a, b, c) = (c"127.0.0.1".as_ptr(), c"232.1.1.1".as_ptr(), c"127.0.0.1".as_ptr());
                            expect("set_multicast_interface(NULL)", dgram_set_multicast_interface(null, a), DGRAM_EINVAL);
                            expect("add_ssm(NULL)", dgram_add_source_specific_membership(null, a, b, c), DGRAM_EINVAL);
                            expect("drop_ssm(NULL)", dgram_drop_source_specific_membership(null, a, b, c), DGRAM_EINVAL);
                        }
                    }
                }
            }
        }
        drop(g);
    }

    // The end: deliver what is pending for a while, then free everything in
    // an order the input chooses.
    let g = STATE.lock();
    unsafe {
        let rounds = 1 + rd.u8() as u32 % 4;
        flush(&g, rounds, 200);
        // Most inputs end by running out of bytes: choose by their length.
        if data.len() % 2 == 0 {
            drain(&g);
        }
        let contexts_first = rd.bool();
        if contexts_first {
            for c in 0..N_CTX {
                op_free_context(&g, c);
            }
        }
        for s in 0..N_SOCK {
            op_free_socket(&g, s);
        }
        // "A freed socket [counts] not at all."
        for c in 0..N_CTX {
            if let Some(ctx) = g.borrow().ctxs[c] {
                let active = check_active(ctx.ptr);
                if active != 0 {
                    fail!("context {c} is active ({active}) with every socket freed");
                }
            }
        }
        for c in 0..N_CTX {
            op_free_context(&g, c);
        }
        g.borrow_mut().script.clear();
    }
    drop(g);
    pending(|p| p.clear());

    // Every context's thread is joined and every fd closed now.
    let mut fds_after = count_dir("/proc/self/fd");
    let mut threads_after = count_dir("/proc/self/task");
    for _ in 0..50 {
        if fds_after <= fds_before && threads_after <= threads_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        fds_after = count_dir("/proc/self/fd");
        threads_after = count_dir("/proc/self/task");
    }
    if fds_after > fds_before {
        fail!("file descriptors leaked: {fds_before} before the input, {fds_after} after freeing everything");
    }
    if threads_after > threads_before {
        fail!("threads leaked: {threads_before} before the input, {threads_after} after freeing everything");
    }
});
