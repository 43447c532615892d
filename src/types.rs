//! The C-visible types: layouts and docs that land in `include/dgram.h`.
//!
//! No struct of the C API holds an enum: each field that takes an enum's
//! values is an `int32_t`, and the enum types are there for their constants.
//! The size of a C enum is the compiler's choice (arm-none-eabi-gcc with
//! `-fshort-enums`, as some NuttX boards build, makes these one byte), and so
//! is that of a Rust `repr(C)` enum on such targets: an enum field would give
//! the structs a layout that depends on the compiler. An integer field also
//! means the library never reads a Rust enum that C filled in: a C caller can
//! store any integer there, and an out-of-range Rust enum is undefined
//! behaviour. The asserts at the end of this file pin every struct's layout.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

/// Size of `dgram_addr.address`, terminating NUL included (INET6_ADDRSTRLEN).
pub const DGRAM_ADDRSTRLEN: usize = 46;

/// A context: its sockets, its event queue, and one background I/O thread.
///
/// Created by `dgram_context_new`, released by `dgram_context_free`. Every
/// function taking a context may be called from any thread.
///
/// Functions:
/// - context: `dgram_context_fd`, `dgram_context_dispatch`,
///   `dgram_context_run`, `dgram_context_active`, `dgram_context_free`;
/// - socket lifecycle: `dgram_create_socket`.
pub struct dgram_context {
    _private: [u8; 0],
}

/// A UDP socket of a context (the IoT.js `dgram.Socket`).
///
/// Created by `dgram_create_socket`, released by exactly one
/// `dgram_socket_free`. A closed socket, or one whose context was freed, stays
/// a valid handle that answers `DGRAM_EBADF` until it is freed.
///
/// Functions:
/// - socket lifecycle: `dgram_socket_free`, `dgram_on_message`,
///   `dgram_on_listening`, `dgram_on_close`, `dgram_on_error`,
///   `dgram_on_connect`, `dgram_close`, `dgram_socket_ref`,
///   `dgram_socket_unref`;
/// - bind and connect: `dgram_bind`, `dgram_address`, `dgram_connect`,
///   `dgram_disconnect`, `dgram_remote_address`;
/// - send: `dgram_send`, `dgram_sendv`, `dgram_send_batch`;
/// - receive and metadata: `dgram_set_message_meta`, `dgram_message_meta`;
/// - socket options: `dgram_set_broadcast`, `dgram_set_ttl`, `dgram_fileno`;
/// - multicast: `dgram_add_membership`, `dgram_drop_membership`,
///   `dgram_set_multicast_interface`, `dgram_add_source_specific_membership`,
///   `dgram_drop_source_specific_membership`,
///   `dgram_set_multicast_loopback`, `dgram_set_multicast_ttl`;
/// - figures and offload: `dgram_socket_stats`,
///   `dgram_set_recv_buffer_size`, `dgram_set_send_buffer_size`,
///   `dgram_get_recv_buffer_size`, `dgram_get_send_buffer_size`,
///   `dgram_send_queue_size`, `dgram_send_queue_count`, `dgram_set_offload`,
///   `dgram_get_offload`.
pub struct dgram_socket {
    _private: [u8; 0],
}

/// On which thread callbacks run: the values of
/// `dgram_context_options.dispatch`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dgram_dispatch {
    /// Callbacks run on the host's thread, inside `dgram_context_dispatch` or
    /// `dgram_context_run` (the default: what a single-threaded JS engine or a
    /// libuv loop needs).
    DGRAM_DISPATCH_HOST = 0,
    /// Callbacks run on the context's I/O thread; the host does not dispatch.
    DGRAM_DISPATCH_IO_THREAD = 1,
}

/// Socket type, as in `dgram.createSocket(type)`: the values of
/// `dgram_socket_options.type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dgram_type {
    /// IPv4 ("udp4").
    DGRAM_UDP4 = 0,
    /// IPv6 ("udp6"); receives IPv4 too (as ::ffff:a.b.c.d) unless `ipv6_only`.
    DGRAM_UDP6 = 1,
}

/// Address family of a `dgram_addr` (rinfo.family: "IPv4" or "IPv6"): the
/// values of `dgram_addr.family`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum dgram_family {
    /// An IPv4 address.
    DGRAM_IPV4 = 4,
    /// An IPv6 address.
    DGRAM_IPV6 = 6,
}

/// Options for `dgram_context_new`. Zero-initialise it, then set what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dgram_context_options {
    /// Where callbacks run: a `dgram_dispatch` value, `DGRAM_DISPATCH_HOST`
    /// (the default, 0) or `DGRAM_DISPATCH_IO_THREAD`; any other value makes
    /// `dgram_context_new` fail. An `int32_t` rather than the enum, so that
    /// the struct's layout does not depend on the compiler's enum size.
    pub dispatch: i32,
    /// The most received datagrams the library holds at once, read from the
    /// kernel and not yet delivered: one read (one recvmmsg) takes at most
    /// this many, and at most 32. 0 means the default, 8192 (so 32 per
    /// read); values above 1048576 (2^20) are clamped to it. Until they are
    /// read, datagrams wait in each socket's kernel receive buffer (size it
    /// with `dgram_socket_options.recv_buffer_size`), and the kernel drops
    /// what overflows that (`dgram_stats.dropped_by_kernel`). The library
    /// itself never drops a datagram it has read. Other events (listening,
    /// send completions, errors, close) do not count against this bound.
    ///
    /// Who reads: in host dispatch the thread that calls
    /// `dgram_context_dispatch` or `dgram_context_run`, which delivers each
    /// read at once, from the read's own buffer: a host that does not
    /// dispatch leaves datagrams in the kernel. In I/O-thread dispatch the
    /// I/O thread, likewise. A read of a socket with GRO on takes one
    /// coalesced buffer, which may hold up to 128 datagrams whatever this
    /// bound; what `dgram_context_dispatch`'s `max_events` leaves of it is
    /// delivered first by the next call.
    ///
    /// Memory: a context reads into one batch of 32 slots of 64 KiB of
    /// address space (2 MiB), whatever this bound and however much arrives;
    /// only the pages datagrams touch become resident (a page per slot for
    /// datagrams up to 4 KiB). Nothing of it is allocated by
    /// `dgram_context_new`: the batch is mapped on the first read and reused
    /// while traffic flows; once it has rested for a second the pages large
    /// datagrams wrote are given back to the system. When the batch cannot
    /// be mapped (no memory), reading waits and is retried after 10 ms,
    /// backing off to 1 s: the datagrams wait in the kernel buffer
    /// meanwhile, and neither the host's thread nor the I/O thread spins.
    pub max_pending_events: u32,
}

/// Options for `dgram_create_socket`. Zero-initialise it, then set what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dgram_socket_options {
    /// A `dgram_type` value: `DGRAM_UDP4` (the default, 0) or `DGRAM_UDP6`;
    /// any other value is `DGRAM_EINVAL`. An `int32_t` rather than the enum,
    /// so that the struct's layout does not depend on the compiler's enum
    /// size.
    pub r#type: i32,
    /// Set SO_REUSEADDR before binding, so several sockets can share a port
    /// (multicast and broadcast listeners; the IoT.js `reuseAddr` option).
    pub reuse_addr: bool,
    /// udp6 only: set IPV6_V6ONLY, so the socket receives no IPv4 traffic.
    /// Ignored for udp4.
    pub ipv6_only: bool,
    /// SO_RCVBUF in bytes; 0 keeps the system default; negative is `DGRAM_EINVAL`.
    pub recv_buffer_size: i32,
    /// SO_SNDBUF in bytes; 0 keeps the system default; negative is `DGRAM_EINVAL`.
    pub send_buffer_size: i32,
}

/// An IP address and port, as text (the IoT.js `rinfo` and `address()` object).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dgram_addr {
    /// NUL-terminated numeric address: "127.0.0.1", "::1", "fe80::1%eth0".
    /// Empty when there is no address.
    pub address: [c_char; DGRAM_ADDRSTRLEN],
    /// Port in host byte order; 0 when there is none.
    pub port: u16,
    /// A `dgram_family` value: `DGRAM_IPV4` or `DGRAM_IPV6` (`DGRAM_IPV4`
    /// when there is no address). An `int32_t` rather than the enum, so that
    /// the struct's layout does not depend on the compiler's enum size.
    pub family: i32,
}

/// A socket's counters (`dgram_socket_stats`). Counted from the socket's
/// creation; they keep their final values once it is closed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dgram_stats {
    /// Datagrams handed to the message callback, or read while no message
    /// callback was set. Datagrams discarded because the socket was closed
    /// before dispatch are counted nowhere.
    pub datagrams_received: u64,
    /// Their payload bytes.
    pub bytes_received: u64,
    /// Sends the kernel took (completed without error).
    pub datagrams_sent: u64,
    /// Their payload bytes.
    pub bytes_sent: u64,
    /// Datagrams libdgram read and then discarded because the host's queue
    /// was full. Always 0: libdgram reads only as fast as it delivers, and
    /// what the socket's kernel buffer cannot hold meanwhile is counted in
    /// `dropped_by_kernel`. Kept for API compatibility.
    pub dropped_queue_full: u64,
    /// The kernel's drop counter for this socket: datagrams that arrived
    /// while its receive buffer was full (the counter Linux reports with
    /// SO_RXQ_OVFL, read here with SO_MEMINFO). 0 where the system does not
    /// report it. Drops before the datagram reached a socket (for instance
    /// in the per-CPU backlog, /proc/net/softnet_stat) are not in it.
    pub dropped_by_kernel: u64,
    /// Sends that ended with an error, including those cancelled by close
    /// (`DGRAM_ECANCELED`) or by freeing the socket or its context.
    pub send_errors: u64,
}

/// An error as delivered to callbacks (the IoT.js `Error` object).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dgram_error {
    /// A negative `DGRAM_E*` code; `dgram_err_name(code)` gives "ECONNREFUSED".
    pub code: i32,
    /// The system call that failed ("bind", "send", "recvmsg"), a static
    /// string owned by the library.
    pub syscall: *const c_char,
    /// The address and port involved (port 0 and "" when none).
    pub addr: dgram_addr,
    /// The host name whose lookup failed (`DGRAM_ENOTFOUND`,
    /// `DGRAM_EAI_AGAIN`; `syscall` is then "getaddrinfo"), NULL otherwise.
    /// Valid only during the callback.
    pub hostname: *const c_char,
}

/// What the kernel told about one received datagram (`dgram_message_meta`).
/// Each part is there only when its `has_` flag is true: the socket must have
/// asked for it with `dgram_set_message_meta` before the datagram was read.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dgram_meta {
    /// The address the datagram was sent to (the IP header's destination:
    /// one of the host's addresses, or a multicast or broadcast address),
    /// with the socket's port.
    pub local: dgram_addr,
    /// The index of the interface it arrived on (if_nametoindex), with
    /// `local`; 0 where the kernel did not record it: an IPv4 datagram that
    /// was already waiting in the socket's buffer when
    /// `dgram_set_message_meta` was turned on.
    pub ifindex: u32,
    /// The IPv4 TTL or IPv6 hop limit it arrived with (0..255).
    pub ttl: i32,
    /// When the kernel received it, as CLOCK_REALTIME seconds (SO_TIMESTAMPNS).
    /// For a datagram already waiting when `dgram_set_message_meta` was
    /// turned on, when it was read instead. Where the system refuses
    /// nanoseconds (qemu-user does), microseconds (SO_TIMESTAMP); where it
    /// refuses both, `has_timestamp` is false.
    pub timestamp_sec: i64,
    /// Nanoseconds of `timestamp_sec`, 0..999999999.
    pub timestamp_nsec: u32,
    /// `local` and `ifindex` are set.
    pub has_local: bool,
    /// `ttl` is set.
    pub has_ttl: bool,
    /// `timestamp_sec` and `timestamp_nsec` are set.
    pub has_timestamp: bool,
    /// The datagram was longer than what was delivered. Never true on Linux
    /// today: every receive slot holds the largest UDP payload.
    pub truncated: bool,
    /// The datagram arrived as part of a segmentation-offload (UDP_GRO)
    /// buffer of datagrams of this size; 0 when it arrived alone.
    pub gro_segment_size: u32,
}

/// Most datagrams one `dgram_send_batch` call takes.
pub const DGRAM_SEND_BATCH_MAX: u32 = 1024;

/// Segmentation offload: send runs of equal-size datagrams to one destination
/// as one UDP_SEGMENT (GSO) write. On by default where the kernel has it.
pub const DGRAM_OFFLOAD_GSO: u32 = 1;
/// Receive offload: let the kernel hand over runs of datagrams of one flow as
/// one UDP_GRO buffer, split back into datagrams before the message callback.
/// Off by default; once on, on for the socket's life (see `dgram_set_offload`).
pub const DGRAM_OFFLOAD_GRO: u32 = 2;

/// One piece of a message for `dgram_sendv` (the IoT.js Array message).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dgram_buf {
    /// Start of the bytes; may be NULL only when `len` is 0.
    pub base: *const c_void,
    /// Number of bytes.
    pub len: usize,
}

/// The 'listening', 'connect' and 'close' events. `userdata` is the pointer given to
/// `dgram_create_socket`.
pub type dgram_event_cb = Option<unsafe extern "C" fn(s: *mut dgram_socket, userdata: *mut c_void)>;

/// The 'error' event. `err` is valid only during the callback.
pub type dgram_error_cb =
    Option<unsafe extern "C" fn(s: *mut dgram_socket, err: *const dgram_error, userdata: *mut c_void)>;

/// The 'message' event: one datagram of `len` bytes (possibly 0) from
/// `rinfo`. `msg` and `rinfo` are valid only during the callback: the library
/// reuses that memory as soon as it returns, so copy what you keep.
pub type dgram_message_cb = Option<
    unsafe extern "C" fn(
        s: *mut dgram_socket,
        msg: *const u8,
        len: usize,
        rinfo: *const dgram_addr,
        userdata: *mut c_void,
    ),
>;

/// Completion of one `dgram_send`/`dgram_sendv`: `err` is NULL when the
/// datagram was handed to the kernel, else the error (valid only during the
/// callback). `length` is the message's length either way. `send_data` is the
/// pointer given to that send call.
pub type dgram_send_cb =
    Option<unsafe extern "C" fn(s: *mut dgram_socket, err: *const dgram_error, length: usize, send_data: *mut c_void)>;

impl dgram_dispatch {
    /// The value C stored in `dgram_context_options.dispatch`, if it is one.
    pub fn from_c(value: i32) -> Option<Self> {
        [Self::DGRAM_DISPATCH_HOST, Self::DGRAM_DISPATCH_IO_THREAD]
            .into_iter()
            .find(|mode| *mode as i32 == value)
    }
}

impl dgram_type {
    /// The value C stored in `dgram_socket_options.type`, if it is one.
    pub fn from_c(value: i32) -> Option<Self> {
        [Self::DGRAM_UDP4, Self::DGRAM_UDP6]
            .into_iter()
            .find(|ty| *ty as i32 == value)
    }
}

/// `dgram_socket_options` with its bools read as bytes, so a non-0/1 value
/// from C cannot be an invalid `bool`.
/// cbindgen:ignore
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawSocketOptions {
    pub type_: i32,
    pub reuse_addr: u8,
    pub ipv6_only: u8,
    pub recv_buffer_size: i32,
    pub send_buffer_size: i32,
}

impl dgram_addr {
    /// The "no address" value: empty string, port 0.
    pub const NONE: dgram_addr = dgram_addr {
        address: [0; DGRAM_ADDRSTRLEN],
        port: 0,
        family: dgram_family::DGRAM_IPV4 as i32,
    };
}

// The layout of every struct of the C API, as literal numbers: a change to a
// field, its type or its order fails to compile here, on every target, and
// c-tests/layout_check.c asserts the same numbers of the header in C (for
// the host's compiler, and for arm-none-eabi-gcc in scripts/layout-check.sh).
// A change must be one on purpose, to both files, and an ABI break.
//
// `pin_layout!(T, size, align, field offset, ...)`: size_of, align_of and
// the offset_of of each field. List every field.
macro_rules! pin_layout {
    ($ty:ident, size $size:literal, align $align:literal, $($field:ident $offset:literal),+ $(,)?) => {
        assert!(std::mem::size_of::<$ty>() == $size, concat!("size of ", stringify!($ty), " changed"));
        assert!(std::mem::align_of::<$ty>() == $align, concat!("alignment of ", stringify!($ty), " changed"));
        $(
            assert!(
                std::mem::offset_of!($ty, $field) == $offset,
                concat!("offset of ", stringify!($ty), ".", stringify!($field), " changed")
            );
        )+
    };
}

// The same on every target: 32-bit fields, bytes and bools only.
const _: () = {
    pin_layout!(dgram_context_options, size 8, align 4, dispatch 0, max_pending_events 4);
    pin_layout!(dgram_socket_options, size 16, align 4,
        r#type 0, reuse_addr 4, ipv6_only 5, recv_buffer_size 8, send_buffer_size 12);
    pin_layout!(dgram_addr, size 52, align 4, address 0, port 46, family 48);
};

// Pointers and size_t: 8 bytes on 64-bit targets.
#[cfg(target_pointer_width = "64")]
const _: () = {
    pin_layout!(dgram_error, size 80, align 8, code 0, syscall 8, addr 16, hostname 72);
    pin_layout!(dgram_buf, size 16, align 8, base 0, len 8);
};

// Pointers and size_t: 4 bytes on 32-bit targets.
#[cfg(target_pointer_width = "32")]
const _: () = {
    pin_layout!(dgram_error, size 64, align 4, code 0, syscall 4, addr 8, hostname 60);
    pin_layout!(dgram_buf, size 8, align 4, base 0, len 4);
};

// 64-bit integers are 8-aligned on 64-bit targets and on 32-bit ARM (AAPCS),
// so dgram_meta.timestamp_sec has 4 bytes of padding before it...
#[cfg(not(target_arch = "x86"))]
const _: () = {
    pin_layout!(dgram_meta, size 88, align 8,
        local 0, ifindex 52, ttl 56, timestamp_sec 64, timestamp_nsec 72,
        has_local 76, has_ttl 77, has_timestamp 78, truncated 79, gro_segment_size 80);
    pin_layout!(dgram_stats, size 56, align 8,
        datagrams_received 0, bytes_received 8, datagrams_sent 16, bytes_sent 24,
        dropped_queue_full 32, dropped_by_kernel 40, send_errors 48);
};

// ...but only 4-aligned in structs on 32-bit x86 (the i386 System V ABI,
// which C compilers and Rust follow alike).
#[cfg(target_arch = "x86")]
const _: () = {
    pin_layout!(dgram_meta, size 80, align 4,
        local 0, ifindex 52, ttl 56, timestamp_sec 60, timestamp_nsec 68,
        has_local 72, has_ttl 73, has_timestamp 74, truncated 75, gro_segment_size 76);
    pin_layout!(dgram_stats, size 56, align 4,
        datagrams_received 0, bytes_received 8, datagrams_sent 16, bytes_sent 24,
        dropped_queue_full 32, dropped_by_kernel 40, send_errors 48);
};

#[cfg(not(any(target_pointer_width = "32", target_pointer_width = "64")))]
compile_error!(
    "no layout of the C API is pinned for this pointer width: add its numbers here and in c-tests/layout_check.c"
);

// The mirror must have exactly the layout of the C-visible struct.
const _: () = {
    pin_layout!(RawSocketOptions, size 16, align 4,
        type_ 0, reuse_addr 4, ipv6_only 5, recv_buffer_size 8, send_buffer_size 12);
};
