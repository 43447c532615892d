//! Error codes: negative values named after errno, shared by function results
//! and by `dgram_error.code`.
//!
//! The numbers are Linux's errno values negated, fixed in the header so that
//! they mean the same on every platform the library is built for; OS errors
//! are mapped by name, never by number.

use std::ffi::CStr;
use std::io;

/// Success.
pub const DGRAM_OK: i32 = 0;
/// Operation not permitted.
pub const DGRAM_EPERM: i32 = -1;
/// Interrupted system call (never returned by the library: it retries).
pub const DGRAM_EINTR: i32 = -4;
/// I/O error.
pub const DGRAM_EIO: i32 = -5;
/// Bad socket: the socket is closed, or not bound where binding is required
/// (`dgram_address`).
pub const DGRAM_EBADF: i32 = -9;
/// Resource temporarily unavailable.
pub const DGRAM_EAGAIN: i32 = -11;
/// Out of memory.
pub const DGRAM_ENOMEM: i32 = -12;
/// Permission denied: a privileged port, or broadcast without `dgram_set_broadcast`.
pub const DGRAM_EACCES: i32 = -13;
/// Busy: dispatch called from inside a callback, or while another thread dispatches the same context.
pub const DGRAM_EBUSY: i32 = -16;
/// No such device: an interface name that does not exist.
pub const DGRAM_ENODEV: i32 = -19;
/// Invalid argument: a NULL pointer, a malformed address, a port or value out of range.
pub const DGRAM_EINVAL: i32 = -22;
/// Too many open files in the system.
pub const DGRAM_ENFILE: i32 = -23;
/// Too many open files in this process.
pub const DGRAM_EMFILE: i32 = -24;
/// Message too long for a datagram (over 65507 bytes on IPv4, 65527 on IPv6).
pub const DGRAM_EMSGSIZE: i32 = -90;
/// Protocol option not available.
pub const DGRAM_ENOPROTOOPT: i32 = -92;
/// Protocol not supported.
pub const DGRAM_EPROTONOSUPPORT: i32 = -93;
/// Operation not supported.
pub const DGRAM_EOPNOTSUPP: i32 = -95;
/// Address family not supported (for example udp6 on a kernel without IPv6).
pub const DGRAM_EAFNOSUPPORT: i32 = -97;
/// Address already in use.
pub const DGRAM_EADDRINUSE: i32 = -98;
/// Address not available: not a local address, or a multicast group not joined.
pub const DGRAM_EADDRNOTAVAIL: i32 = -99;
/// Network is down.
pub const DGRAM_ENETDOWN: i32 = -100;
/// Network is unreachable: no route to the destination.
pub const DGRAM_ENETUNREACH: i32 = -101;
/// Connection reset by peer.
pub const DGRAM_ECONNRESET: i32 = -104;
/// No buffer space: the socket's send queue is full.
pub const DGRAM_ENOBUFS: i32 = -105;
/// Socket is connected.
pub const DGRAM_EISCONN: i32 = -106;
/// Socket is not connected.
pub const DGRAM_ENOTCONN: i32 = -107;
/// Timed out.
pub const DGRAM_ETIMEDOUT: i32 = -110;
/// Connection refused: the destination port is closed (ICMP port unreachable).
pub const DGRAM_ECONNREFUSED: i32 = -111;
/// Host is down.
pub const DGRAM_EHOSTDOWN: i32 = -112;
/// No route to host.
pub const DGRAM_EHOSTUNREACH: i32 = -113;
/// Already done: a second bind (explicit or implicit) on the same socket.
pub const DGRAM_EALREADY: i32 = -114;
/// Canceled: a send that was still queued when its socket closed.
pub const DGRAM_ECANCELED: i32 = -125;
/// A host name lookup failed for now; trying again later may work (getaddrinfo's EAI_AGAIN).
pub const DGRAM_EAI_AGAIN: i32 = -3001;
/// A host name lookup failed for good: the name does not resolve to an
/// address of the socket's family, or the lookup itself failed
/// (getaddrinfo's EAI_NONAME, EAI_NODATA, EAI_FAIL; Node's ENOTFOUND).
pub const DGRAM_ENOTFOUND: i32 = -3008;
/// An OS error this table does not know; `dgram_err_name` says "UNKNOWN".
pub const DGRAM_EUNKNOWN: i32 = -4094;
/// The library failed internally (a Rust panic was caught at the C boundary).
/// The call had no effect that can be relied on; please report it.
pub const DGRAM_EINTERNAL: i32 = -4095;

/// One row of the table: a code, its name and message, and the OS errno it
/// stands for (`None` for codes of the library's own). The OS mapping is
/// derived from this column, so a code cannot be added without saying
/// which errno it maps from.
struct CodeInfo {
    code: i32,
    name: &'static CStr,
    message: &'static CStr,
    os: Option<i32>,
}

macro_rules! code_table {
    ($($code:ident, $name:literal, $message:literal, $os:expr;)*) => {
        const CODES: &[CodeInfo] = &[
            $(CodeInfo { code: $code, name: $name, message: $message, os: $os },)*
        ];
    };
}

code_table! {
    DGRAM_OK, c"OK", c"success", None;
    DGRAM_EPERM, c"EPERM", c"operation not permitted", Some(libc::EPERM);
    DGRAM_EINTR, c"EINTR", c"interrupted system call", Some(libc::EINTR);
    DGRAM_EIO, c"EIO", c"i/o error", Some(libc::EIO);
    DGRAM_EBADF, c"EBADF", c"bad file descriptor", Some(libc::EBADF);
    DGRAM_EAGAIN, c"EAGAIN", c"resource temporarily unavailable", Some(libc::EAGAIN);
    DGRAM_ENOMEM, c"ENOMEM", c"not enough memory", Some(libc::ENOMEM);
    DGRAM_EACCES, c"EACCES", c"permission denied", Some(libc::EACCES);
    DGRAM_EBUSY, c"EBUSY", c"resource busy or locked", Some(libc::EBUSY);
    DGRAM_ENODEV, c"ENODEV", c"no such device", Some(libc::ENODEV);
    DGRAM_EINVAL, c"EINVAL", c"invalid argument", Some(libc::EINVAL);
    DGRAM_ENFILE, c"ENFILE", c"file table overflow", Some(libc::ENFILE);
    DGRAM_EMFILE, c"EMFILE", c"too many open files", Some(libc::EMFILE);
    DGRAM_EMSGSIZE, c"EMSGSIZE", c"message too long", Some(libc::EMSGSIZE);
    DGRAM_ENOPROTOOPT, c"ENOPROTOOPT", c"protocol not available", Some(libc::ENOPROTOOPT);
    DGRAM_EPROTONOSUPPORT, c"EPROTONOSUPPORT", c"protocol not supported", Some(libc::EPROTONOSUPPORT);
    DGRAM_EOPNOTSUPP, c"EOPNOTSUPP", c"operation not supported on socket", Some(libc::EOPNOTSUPP);
    DGRAM_EAFNOSUPPORT, c"EAFNOSUPPORT", c"address family not supported", Some(libc::EAFNOSUPPORT);
    DGRAM_EADDRINUSE, c"EADDRINUSE", c"address already in use", Some(libc::EADDRINUSE);
    DGRAM_EADDRNOTAVAIL, c"EADDRNOTAVAIL", c"address not available", Some(libc::EADDRNOTAVAIL);
    DGRAM_ENETDOWN, c"ENETDOWN", c"network is down", Some(libc::ENETDOWN);
    DGRAM_ENETUNREACH, c"ENETUNREACH", c"network is unreachable", Some(libc::ENETUNREACH);
    DGRAM_ECONNRESET, c"ECONNRESET", c"connection reset by peer", Some(libc::ECONNRESET);
    DGRAM_ENOBUFS, c"ENOBUFS", c"no buffer space available", Some(libc::ENOBUFS);
    DGRAM_EISCONN, c"EISCONN", c"socket is already connected", Some(libc::EISCONN);
    DGRAM_ENOTCONN, c"ENOTCONN", c"socket is not connected", Some(libc::ENOTCONN);
    DGRAM_ETIMEDOUT, c"ETIMEDOUT", c"connection timed out", Some(libc::ETIMEDOUT);
    DGRAM_ECONNREFUSED, c"ECONNREFUSED", c"connection refused", Some(libc::ECONNREFUSED);
    DGRAM_EHOSTDOWN, c"EHOSTDOWN", c"host is down", Some(libc::EHOSTDOWN);
    DGRAM_EHOSTUNREACH, c"EHOSTUNREACH", c"host is unreachable", Some(libc::EHOSTUNREACH);
    DGRAM_EALREADY, c"EALREADY", c"operation already in progress", Some(libc::EALREADY);
    DGRAM_ECANCELED, c"ECANCELED", c"operation canceled", Some(libc::ECANCELED);
    DGRAM_EAI_AGAIN, c"EAI_AGAIN", c"temporary failure in name resolution", None;
    DGRAM_ENOTFOUND, c"ENOTFOUND", c"host name not found", None;
    DGRAM_EUNKNOWN, c"UNKNOWN", c"unknown error", None;
    DGRAM_EINTERNAL, c"EINTERNAL", c"internal library error", None;
}

fn lookup(code: i32) -> Option<&'static CodeInfo> {
    CODES.iter().find(|info| info.code == code)
}

/// The errno-style name of `code` ("EADDRINUSE"); "UNKNOWN" for a code outside the table.
pub fn name(code: i32) -> &'static CStr {
    lookup(code).map_or(c"UNKNOWN", |info| info.name)
}

/// A short English description of `code`; "unknown error" outside the table.
pub fn message(code: i32) -> &'static CStr {
    lookup(code).map_or(c"unknown error", |info| info.message)
}

/// A library error: one of the `DGRAM_E*` codes above, always negative.
/// cbindgen:ignore
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type Result<T> = std::result::Result<T, Errno>;

impl Errno {
    pub const BADF: Errno = Errno(DGRAM_EBADF);
    pub const INVAL: Errno = Errno(DGRAM_EINVAL);

    /// Maps an OS errno value (positive, as in `errno`) to a library code,
    /// by the table's errno column.
    pub fn from_os(errno: i32) -> Errno {
        let code = CODES
            .iter()
            .find(|info| info.os == Some(errno))
            .map_or(DGRAM_EUNKNOWN, |info| info.code);
        Errno(code)
    }

    pub fn from_io(err: &io::Error) -> Errno {
        match err.raw_os_error() {
            Some(errno) => Errno::from_os(errno),
            None if err.kind() == io::ErrorKind::OutOfMemory => Errno(DGRAM_ENOMEM),
            None => Errno(DGRAM_EUNKNOWN),
        }
    }
}

impl From<io::Error> for Errno {
    fn from(err: io::Error) -> Errno {
        Errno::from_io(&err)
    }
}

/// Folds a result into the C convention: 0 or a negative code.
pub fn to_code(result: Result<()>) -> i32 {
    match result {
        Ok(()) => DGRAM_OK,
        Err(Errno(code)) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_unique_name_and_message() {
        for (i, a) in CODES.iter().enumerate() {
            assert!(a.code <= 0);
            assert!(!a.message.to_bytes().is_empty());
            for b in &CODES[i + 1..] {
                assert_ne!(a.code, b.code, "{:?} and {:?} share a number", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn names_and_messages() {
        assert_eq!(name(DGRAM_EADDRINUSE), c"EADDRINUSE");
        assert_eq!(message(DGRAM_EADDRINUSE), c"address already in use");
        assert_eq!(name(-123456), c"UNKNOWN");
        assert_eq!(message(7), c"unknown error");
    }

    #[test]
    fn os_errors_map_by_name() {
        assert_eq!(Errno::from_os(libc::EADDRINUSE), Errno(DGRAM_EADDRINUSE));
        assert_eq!(Errno::from_os(libc::ECONNREFUSED), Errno(DGRAM_ECONNREFUSED));
        assert_eq!(Errno::from_os(libc::ENOTTY), Errno(DGRAM_EUNKNOWN));
        let io_err = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(Errno::from(io_err), Errno(DGRAM_EACCES));
    }

    /// Every code the header defines has a row of the table, and nothing
    /// else does: the header is generated from this file's constants.
    #[test]
    fn every_header_code_has_a_row() {
        let header = include_str!("../include/dgram.h");
        let mut defined = 0;
        for line in header.lines() {
            let Some(rest) = line.strip_prefix("#define DGRAM_E") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(suffix), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let value: i32 = value.trim_matches(|c| c == '(' || c == ')').parse().unwrap();
            let row = lookup(value).unwrap_or_else(|| panic!("DGRAM_E{suffix} = {value} has no row"));
            let expected = if suffix == "UNKNOWN" {
                "UNKNOWN".to_string()
            } else {
                format!("E{suffix}")
            };
            assert_eq!(row.name.to_str().unwrap(), expected);
            defined += 1;
        }
        // Every row but DGRAM_OK is a DGRAM_E* define.
        assert_eq!(defined, CODES.len() - 1);
    }

    #[test]
    fn os_column_round_trips() {
        for info in CODES {
            if let Some(errno) = info.os {
                assert_eq!(Errno::from_os(errno), Errno(info.code), "{:?}", info.name);
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn codes_are_negated_linux_errno() {
        for info in CODES {
            if let Some(errno) = info.os {
                assert_eq!(info.code, -errno, "{:?}", info.name);
            }
        }
    }
}
