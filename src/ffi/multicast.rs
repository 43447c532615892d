//! Multicast: group and source-specific memberships, the outgoing
//! interface, loopback and TTL.

use std::ffi::{c_char, c_int};

use super::args::opt_str;
use super::guard::guard_code;
use super::handles::socket;
use crate::types::*;

/// Joins `group` on `iface` (`socket.addMembership`). `group` must be a
/// multicast address of the socket's family (else `DGRAM_EINVAL`). `iface`:
/// for udp4 the IPv4 address of a local interface; for udp6 an interface name
/// ("eth0"), index ("2") or address with zone ("::%eth0"); NULL lets the
/// kernel choose. A malformed `iface` is `DGRAM_EINVAL`; a well-formed one
/// that is not local is the kernel's answer (`DGRAM_EADDRNOTAVAIL`,
/// `DGRAM_ENODEV`).
#[no_mangle]
pub unsafe extern "C" fn dgram_add_membership(
    s: *mut dgram_socket,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `group` and `iface` are NULL or NUL-terminated (header: strings).
        let (group, iface) = unsafe { (opt_str(group), opt_str(iface)) };
        socket.membership(group, iface, true)
    })
}

/// Leaves `group` on `iface` (`socket.dropMembership`); arguments as for
/// `dgram_add_membership`. Dropping a group not joined is `DGRAM_EADDRNOTAVAIL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_drop_membership(
    s: *mut dgram_socket,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `group` and `iface` are NULL or NUL-terminated (header: strings).
        let (group, iface) = unsafe { (opt_str(group), opt_str(iface)) };
        socket.membership(group, iface, false)
    })
}

/// Chooses the interface outgoing multicast leaves by (Node
/// `socket.setMulticastInterface`): for udp4 the IPv4 address of a local
/// interface ("0.0.0.0" for the system's choice); for udp6 an interface as
/// "::%eth0" (Node's form), "eth0" or "2" ("::" for the system's choice).
/// `DGRAM_EINVAL` for NULL or malformed text, `DGRAM_ENODEV` for an
/// interface name that does not exist, `DGRAM_EADDRNOTAVAIL` for an IPv4
/// address that is not local.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_multicast_interface(s: *mut dgram_socket, iface: *const c_char) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `iface` is NULL or NUL-terminated (header: strings).
        socket.set_multicast_interface(unsafe { opt_str(iface) })
    })
}

/// Joins the source-specific group (`source`, `group`) on `iface` (Node
/// `socket.addSourceSpecificMembership`): only datagrams that `source` sends
/// to `group` arrive. `source` must be a unicast address and `group` a
/// multicast address of the socket's family (IGMPv3/MLDv2 SSM; 232.0.0.0/8
/// and ff3x::/32 are the ranges meant for it), else `DGRAM_EINVAL`; `iface`
/// as for `dgram_add_membership`.
#[no_mangle]
pub unsafe extern "C" fn dgram_add_source_specific_membership(
    s: *mut dgram_socket,
    source: *const c_char,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `source`, `group` and `iface` are NULL or NUL-terminated
        // (header: strings).
        let (source, group, iface) = unsafe { (opt_str(source), opt_str(group), opt_str(iface)) };
        socket.source_membership(source, group, iface, true)
    })
}

/// Leaves a source-specific group (Node
/// `socket.dropSourceSpecificMembership`); arguments as for the join.
/// The kernel's answers: a group this socket never joined is
/// `DGRAM_EINVAL`, a source it did not join within a joined group
/// `DGRAM_EADDRNOTAVAIL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_drop_source_specific_membership(
    s: *mut dgram_socket,
    source: *const c_char,
    group: *const c_char,
    iface: *const c_char,
) -> c_int {
    guard_code(|| {
        // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
        let socket = unsafe { socket(s) }?;
        // SAFETY: `source`, `group` and `iface` are NULL or NUL-terminated
        // (header: strings).
        let (source, group, iface) = unsafe { (opt_str(source), opt_str(group), opt_str(iface)) };
        socket.source_membership(source, group, iface, false)
    })
}

/// Sets or clears IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP
/// (`socket.setMulticastLoopback`).
#[no_mangle]
pub unsafe extern "C" fn dgram_set_multicast_loopback(s: *mut dgram_socket, flag: bool) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_multicast_loopback(flag))
}

/// Sets IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (`socket.setMulticastTTL`);
/// `ttl` must be 0..255, else `DGRAM_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn dgram_set_multicast_ttl(s: *mut dgram_socket, ttl: i32) -> c_int {
    // SAFETY: `s` is NULL or a socket handle not yet freed (header: dgram_socket).
    guard_code(|| unsafe { socket(s) }?.set_multicast_ttl(ttl))
}
