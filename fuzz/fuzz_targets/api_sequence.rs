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
//! are the main thread's operations. At the end of every input everything is
//! freed, so LeakSanitizer sees leaks, and the process must be back to the
//! threads and file descriptors it had before the input.
//!
//! Network safety: destinations are only 127.0.0.1, ::1, "localhost" (and
//! ::ffff:127.0.0.1, ::1 with a zone), or strings that the library's parser
//! rejects; a fuzzer-made string that parses as any other address is replaced.
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
//!   before its socket's 'close'; 'close' comes at most once and only after
//!   dgram_close;
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
use std::collections::HashMap;
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
const DGRAM_EALREADY: c_int = -114;
const DGRAM_EINTERNAL: c_int = -4095;
const DGRAM_ADDRSTRLEN: usize = 46;

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
    fn dgram_close(s: *mut Sock, on_close: EventCb) -> c_int;
    fn dgram_socket_free(s: *mut Sock);
    fn dgram_address(s: *const Sock, out: *mut Addr) -> c_int;
    fn dgram_socket_stats(s: *const Sock, out: *mut Stats) -> c_int;
    fn dgram_set_broadcast(s: *mut Sock, flag: bool) -> c_int;
    fn dgram_set_ttl(s: *mut Sock, ttl: i32) -> c_int;
    fn dgram_add_membership(s: *mut Sock, group: *const c_char, iface: *const c_char) -> c_int;
    fn dgram_drop_membership(s: *mut Sock, group: *const c_char, iface: *const c_char) -> c_int;
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

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);
static FLAGS: [AtomicU32; MAX_IDS] = [ZERO; MAX_IDS];

fn flags(id: usize) -> u32 {
    FLAGS[id].load(Ordering::SeqCst)
}

fn set_flag(id: usize, f: u32) {
    FLAGS[id].fetch_or(f, Ordering::SeqCst);
}

/// Sends with a callback whose completion is awaited: token -> (socket id,
/// length). Tokens are registered before the call and removed on refusal or
/// completion.
static PENDING: Mutex<Option<HashMap<u64, (usize, usize)>>> = Mutex::new(None);

fn pending<R>(f: impl FnOnce(&mut HashMap<u64, (usize, usize)>) -> R) -> R {
    let mut guard = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

thread_local! {
    /// Set while this thread is inside dgram_context_dispatch/run.
    static IN_DISPATCH: Cell<u32> = const { Cell::new(0) };
    /// The context slots this thread is dispatching, innermost last.
    static DISPATCHING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Set on the thread that runs the fuzz inputs.
    static IS_MAIN: Cell<bool> = const { Cell::new(false) };
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
}

// ---- harness state -----------------------------------------------------------

const N_CTX: usize = 3;
const N_SOCK: usize = 6;

#[derive(Clone, Copy)]
struct CtxSlot {
    ptr: *mut Ctx,
    io_mode: bool,
}

#[derive(Clone, Copy)]
struct SockSlot {
    ptr: *mut Sock,
    id: usize,
    ctx: Option<usize>, // context slot, None once that context is freed
    udp6: bool,
    port: u16,    // local port once known
    stats: Stats, // the counters last read
}

struct State {
    ctxs: [Option<CtxSlot>; N_CTX],
    socks: [Option<SockSlot>; N_SOCK],
    next_id: usize,
    next_token: u64,
    script: Vec<u8>,
    script_pos: usize,
}

unsafe impl Send for State {}

static STATE: ReentrantMutex<RefCell<State>> = ReentrantMutex::new(RefCell::new(State {
    ctxs: [None; N_CTX],
    socks: [None; N_SOCK],
    next_id: 1,
    next_token: 1,
    script: Vec::new(),
    script_pos: 0,
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
        "LOCALHOST",
    ];
    match rd.u8() % 4 {
        0 => None,
        1 | 2 => Some(CString::new(FIXED[rd.u8() as usize % FIXED.len()]).unwrap()),
        _ => {
            let g = garbage(rd);
            match parses_as(g.as_bytes()) {
                Some(ip) if !is_allowed_destination(ip) => Some(CString::new("not-an-address").unwrap()),
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
    ];
    match rd.u8() % 4 {
        0 => None,
        1 | 2 => Some(CString::new(FIXED[rd.u8() as usize % FIXED.len()]).unwrap()),
        _ => Some(garbage(rd)),
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
    let reply_port = (*rinfo).port;
    callback_action(s, id, reply_port);
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
    if let Some(token) = pending(|p| p.iter().find(|(_, &(sid, _))| sid == id).map(|(t, _)| *t)) {
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
    match pending(|p| p.remove(&token)) {
        None => fail!("send completion of token {token} (socket {id}) that was not pending: twice, or never accepted"),
        Some((sid, len)) => {
            if sid != id {
                fail!("send completion token {token} of socket {sid} came with socket {id}");
            }
            if len != length {
                fail!("send completion of a {len}-byte send says {length} bytes");
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
        if st.script_pos >= st.script.len() {
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
    trace!("  callback action {} on socket {id}", op % 16);
    match op % 16 {
        // Reply to the sender, or send to some socket of ours.
        0..=2 => {
            let port = if reply_port != 0 && op % 16 == 0 {
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
        _ => {} // nothing
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
        pending(|p| p.insert(token, (sock.id, len)));
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
            pending(|p| p.insert(token, (sock.id, total)));
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
    let port_ok = (1..=65535).contains(&port);
    // None: the address is fine; Some(true): the library must refuse it;
    // Some(false): it depends (a zone, looked up in the namespace).
    let dest_bad = match &dest {
        None => None,
        Some(d) if d.as_bytes().contains(&b'%') => Some(false),
        Some(d) => match parses_as(d.as_bytes()) {
            Some(IpAddr::V4(_)) if d.as_bytes() == b"localhost" => None,
            Some(IpAddr::V4(_)) if !sock.udp6 => None,
            Some(IpAddr::V6(_)) if sock.udp6 => None,
            _ => Some(true),
        },
    };
    let size_bad = total > max_payload(sock.udp6);
    if !port_ok || msg_invalid || dest_bad == Some(true) || size_bad {
        if rc != DGRAM_EINVAL && rc != DGRAM_EMSGSIZE && rc != DGRAM_ENODEV {
            fail!(
                "send of {total} bytes on {family} (vectored {vectored}) to {dest:?} port {port}, invalid msg {msg_invalid}: \
                 returned {rc}, expected a refusal"
            );
        }
        if !size_bad && rc == DGRAM_EMSGSIZE {
            fail!("send of {total} bytes on {family} returned EMSGSIZE");
        }
        if size_bad && port_ok && !msg_invalid && dest_bad.is_none() && rc != DGRAM_EMSGSIZE {
            fail!("send of {total} bytes on {family} returned {rc}, expected EMSGSIZE");
        }
    } else if dest_bad.is_none() && rc != 0 && rc != DGRAM_ENOBUFS {
        fail!("valid send of {total} bytes on {family} to {dest:?} port {port} returned {rc}");
    }
    if rc == 0 {
        learn_port(g, slot);
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
    });
    if rd.bool() {
        op_handlers(g, slot, rd);
    }
}

unsafe fn op_handlers(g: &Guard, slot: usize, rd: &mut Rd) {
    let Some(sock) = g.borrow().socks[slot] else { return };
    let which = rd.u8();
    let set = rd.bool();
    let rc = match which % 4 {
        0 => dgram_on_message(sock.ptr, if set { Some(on_message) } else { None }),
        1 => dgram_on_listening(sock.ptr, if set { Some(on_listening) } else { None }),
        2 => dgram_on_close(sock.ptr, if set { Some(on_close) } else { None }),
        _ => dgram_on_error(sock.ptr, if set { Some(on_error) } else { None }),
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
        learn_port(g, slot);
    }
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
        let want = if io_thread_of == Some(c) { DGRAM_EBUSY } else { 0 };
        if rc != want {
            fail!("{what} of an I/O-thread context returned {rc}, expected {want}");
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
            let _ = dgram_context_active(ctx.ptr);
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

    for f in FLAGS.iter() {
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
            match op % 20 {
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
                _ => {
                    // NULL handles: EINVAL, or nothing for the _free functions.
                    let which = rd.u8() % 6;
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
                        _ => expect("fileno(NULL)", dgram_fileno(std::ptr::null()), DGRAM_EINVAL),
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
        let contexts_first = rd.bool();
        if contexts_first {
            for c in 0..N_CTX {
                op_free_context(&g, c);
            }
        }
        for s in 0..N_SOCK {
            op_free_socket(&g, s);
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
