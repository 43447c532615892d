//! Address parsing and formatting: the one place that turns the host's text
//! into socket addresses and back (host name resolution will grow here).
//!
//! Accepted: numeric IPv4 and IPv6 literals, IPv6 with a zone
//! ("fe80::1%eth0" or "fe80::1%2"), "localhost", and where a destination or
//! bind address is asked for, host names (looked up later, off the caller's
//! thread: see `resolve`). A literal of the other family than the socket's,
//! or text that is neither a literal nor a well-formed host name, is
//! `DGRAM_EINVAL` at once.
//!
//! Interface names are looked up in the network namespace of the socket they
//! are for (through its fd), not in the calling thread's: a socket made in
//! another namespace keeps its own interfaces.

use std::ffi::{c_char, CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use crate::error::{Errno, Result, DGRAM_ENODEV};
use crate::sys;
use crate::types::{dgram_addr, dgram_family, DGRAM_ADDRSTRLEN};

/// The IP family of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Largest UDP payload of one datagram: 65535 minus the IP and UDP headers
    /// (20 + 8 for IPv4; 8 for IPv6, whose header is not counted in its length).
    pub fn max_payload(self) -> usize {
        match self {
            Family::V4 => 65507,
            Family::V6 => 65527,
        }
    }

    pub fn unspecified(self, port: u16) -> SocketAddr {
        match self {
            Family::V4 => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            Family::V6 => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        }
    }

    pub fn loopback(self, port: u16) -> SocketAddr {
        match self {
            Family::V4 => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            Family::V6 => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        }
    }
}

/// Port for bind: 0 (the OS picks) to 65535.
pub fn bind_port(port: i32) -> Result<u16> {
    u16::try_from(port).map_err(|_| Errno::INVAL)
}

/// Port for send: 1 to 65535.
pub fn send_port(port: i32) -> Result<u16> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Errno::INVAL),
    }
}

/// Parses a host string for a socket of `family`: the address with its IPv6
/// zone index (0 when none).
pub fn parse_literal(host: &CStr, family: Family, socket: RawFd) -> Result<(IpAddr, u32)> {
    let text = host.to_str().map_err(|_| Errno::INVAL)?;
    if text == "localhost" {
        return Ok((family.loopback(0).ip(), 0));
    }
    match family {
        Family::V4 => text
            .parse::<Ipv4Addr>()
            .map(|ip| (IpAddr::V4(ip), 0))
            .map_err(|_| Errno::INVAL),
        Family::V6 => {
            let (literal, zone) = match text.split_once('%') {
                Some((literal, zone)) => (literal, Some(zone)),
                None => (text, None),
            };
            let ip = literal.parse::<Ipv6Addr>().map_err(|_| Errno::INVAL)?;
            let scope = match zone {
                Some(zone) => interface_index(zone, socket)?,
                None => 0,
            };
            Ok((IpAddr::V6(ip), scope))
        }
    }
}

/// An IPv6 zone or interface: a decimal index, or an interface name.
/// A malformed one is `DGRAM_EINVAL`; a well-formed name that does not
/// exist here is `DGRAM_ENODEV`.
pub fn interface_index(zone: &str, socket: RawFd) -> Result<u32> {
    if zone.is_empty() {
        return Err(Errno::INVAL);
    }
    if zone.bytes().all(|b| b.is_ascii_digit()) {
        return zone.parse::<u32>().map_err(|_| Errno::INVAL);
    }
    if zone.len() >= libc::IF_NAMESIZE || zone.bytes().any(|b| b.is_ascii_whitespace() || b == b'/' || b == b'%') {
        return Err(Errno::INVAL);
    }
    match sys::interface_index(socket, zone) {
        0 => Err(Errno(DGRAM_ENODEV)),
        index => Ok(index),
    }
}

/// Where a bind, send or connect goes: an address now, or a host name to
/// look up first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Addr(SocketAddr),
    Name(CString, u16),
}

/// The address to bind: NULL address means every interface.
pub fn bind_target(address: Option<&CStr>, port: i32, family: Family, socket: RawFd) -> Result<Destination> {
    let port = bind_port(port)?;
    match address {
        None => Ok(Destination::Addr(family.unspecified(port))),
        Some(host) => destination(host, port, family, socket),
    }
}

/// The destination of a send or connect: NULL address means the loopback
/// address (127.0.0.1 or ::1), as in Node and IoT.js.
pub fn send_target(address: Option<&CStr>, port: i32, family: Family, socket: RawFd) -> Result<Destination> {
    let port = send_port(port)?;
    match address {
        None => Ok(Destination::Addr(family.loopback(port))),
        Some(host) => destination(host, port, family, socket),
    }
}

fn destination(host: &CStr, port: u16, family: Family, socket: RawFd) -> Result<Destination> {
    match parse_literal(host, family, socket) {
        Ok((ip, scope)) => Ok(Destination::Addr(with_port(ip, scope, port))),
        Err(err) if err == Errno::INVAL && is_host_name(host.to_bytes()) => {
            Ok(Destination::Name(host.to_owned(), port))
        }
        Err(err) => Err(err),
    }
}

/// A name getaddrinfo may resolve: dot-separated labels of letters, digits,
/// '-' and '_' (up to 63 bytes each, 253 in all, one trailing dot allowed),
/// and not made of digits and dots only, which is a malformed IPv4 literal
/// rather than a name.
pub fn is_host_name(text: &[u8]) -> bool {
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

fn with_port(ip: IpAddr, scope: u32, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, port)),
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)),
    }
}

/// A multicast group of the socket's family; anything else is `DGRAM_EINVAL`.
pub fn multicast_group(group: &CStr, family: Family, socket: RawFd) -> Result<IpAddr> {
    let (ip, _scope) = parse_literal(group, family, socket)?;
    if ip.is_multicast() {
        Ok(ip)
    } else {
        Err(Errno::INVAL)
    }
}

/// The membership interface of a udp4 socket: the IPv4 address of a local
/// interface; NULL lets the kernel choose.
pub fn membership_interface_v4(iface: Option<&CStr>) -> Result<Ipv4Addr> {
    match iface {
        None => Ok(Ipv4Addr::UNSPECIFIED),
        Some(text) => text
            .to_str()
            .map_err(|_| Errno::INVAL)?
            .parse()
            .map_err(|_| Errno::INVAL),
    }
}

/// The membership interface of a udp6 socket: an interface name ("eth0"),
/// an index ("2"), or an address with a zone ("::%eth0"); NULL lets the
/// kernel choose (index 0).
pub fn membership_interface_v6(iface: Option<&CStr>, socket: RawFd) -> Result<u32> {
    let Some(text) = iface else { return Ok(0) };
    let text = text.to_str().map_err(|_| Errno::INVAL)?;
    match text.split_once('%') {
        Some((literal, zone)) => {
            literal.parse::<Ipv6Addr>().map_err(|_| Errno::INVAL)?;
            interface_index(zone, socket)
        }
        None => interface_index(text, socket),
    }
}

/// The source of a datagram whose address the kernel did not give (never
/// seen on UDP/IP, but the host must be given something).
pub const UNKNOWN_SOURCE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Formats `addr` into the C struct. IPv6 zones are written as an interface
/// name when the index has one ("fe80::1%eth0"), else as the number.
pub fn to_c(addr: &SocketAddr) -> dgram_addr {
    let mut out = dgram_addr::NONE;
    out.port = addr.port();
    let mut writer = CStrWriter {
        buf: &mut out.address,
        len: 0,
    };
    match addr {
        SocketAddr::V4(v4) => {
            out.family = dgram_family::DGRAM_IPV4 as i32;
            // By hand rather than through fmt: this runs for every datagram
            // whose source differs from the one before, and fmt costs ~10x.
            write_ipv4(writer.buf, v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.family = dgram_family::DGRAM_IPV6 as i32;
            let _ = std::fmt::write(&mut writer, format_args!("{}", v6.ip()));
            if v6.scope_id() != 0 {
                let mark = writer.len;
                let mut name = [0u8; libc::IF_NAMESIZE];
                let written = match sys::if_indextoname(v6.scope_id(), &mut name) {
                    Some(name) => std::fmt::write(&mut writer, format_args!("%{name}")),
                    None => std::fmt::write(&mut writer, format_args!("%{}", v6.scope_id())),
                };
                if written.is_err() {
                    // The zone does not fit: keep the bare address rather than a cut one.
                    writer.truncate(mark);
                }
            }
        }
    }
    out
}

/// Writes `a.b.c.d` and a NUL at the start of `buf` (large enough for
/// INET6_ADDRSTRLEN, so always for this).
fn write_ipv4(buf: &mut [c_char; DGRAM_ADDRSTRLEN], octets: [u8; 4]) {
    let mut len = 0;
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.' as c_char;
            len += 1;
        }
        if octet >= 100 {
            buf[len] = (b'0' + octet / 100) as c_char;
            len += 1;
        }
        if octet >= 10 {
            buf[len] = (b'0' + octet / 10 % 10) as c_char;
            len += 1;
        }
        buf[len] = (b'0' + octet % 10) as c_char;
        len += 1;
    }
    buf[len] = 0;
}

/// Writes text into a fixed C buffer, always leaving room for the NUL;
/// fails instead of writing a partial piece.
struct CStrWriter<'a> {
    buf: &'a mut [c_char; DGRAM_ADDRSTRLEN],
    len: usize,
}

impl CStrWriter<'_> {
    fn truncate(&mut self, len: usize) {
        self.len = len;
        self.buf[len..].fill(0);
    }
}

impl std::fmt::Write for CStrWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.len + s.len() >= DGRAM_ADDRSTRLEN {
            return Err(std::fmt::Error);
        }
        for (slot, byte) in self.buf[self.len..].iter_mut().zip(s.bytes()) {
            *slot = byte as c_char;
        }
        self.len += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DGRAM_EINVAL;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    /// A socket whose namespace interface names are looked up in.
    fn probe() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    /// The fd for tests that name no interface: a real socket's, or -1
    /// under Miri, which cannot make sockets (nothing then looks it up).
    fn probe_fd() -> (Option<UdpSocket>, i32) {
        if cfg!(miri) {
            (None, -1)
        } else {
            let sock = probe();
            let fd = sock.as_raw_fd();
            (Some(sock), fd)
        }
    }

    fn lo_index(s: &UdpSocket) -> u32 {
        sys::interface_index(s.as_raw_fd(), "lo")
    }

    fn text(addr: &dgram_addr) -> String {
        let bytes: Vec<u8> = addr.address.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn ports() {
        assert_eq!(bind_port(0), Ok(0));
        assert_eq!(bind_port(65535), Ok(65535));
        assert_eq!(bind_port(65536), Err(Errno::INVAL));
        assert_eq!(bind_port(-1), Err(Errno::INVAL));
        assert_eq!(send_port(0), Err(Errno::INVAL));
        assert_eq!(send_port(1), Ok(1));
    }

    #[test]
    fn literals_of_the_right_family() {
        let (_sock, fd) = probe_fd();
        assert_eq!(
            parse_literal(c"127.0.0.1", Family::V4, fd),
            Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        );
        assert_eq!(
            parse_literal(c"::1", Family::V6, fd),
            Ok((IpAddr::V6(Ipv6Addr::LOCALHOST), 0))
        );
        assert_eq!(
            parse_literal(c"localhost", Family::V6, fd),
            Ok((IpAddr::V6(Ipv6Addr::LOCALHOST), 0))
        );
        assert_eq!(parse_literal(c"::1", Family::V4, fd), Err(Errno(DGRAM_EINVAL)));
        assert_eq!(parse_literal(c"127.0.0.1", Family::V6, fd), Err(Errno(DGRAM_EINVAL)));
        for bad in [
            c"",
            c"1.2.3",
            c"256.1.1.1",
            c" 127.0.0.1",
            c"example.com",
            c"[::1]",
            c"\xff\xfe",
        ] {
            assert_eq!(parse_literal(bad, Family::V4, fd), Err(Errno(DGRAM_EINVAL)), "{bad:?}");
            assert_eq!(parse_literal(bad, Family::V6, fd), Err(Errno(DGRAM_EINVAL)), "{bad:?}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "looks up interfaces through a socket, which Miri cannot make")]
    fn zones() {
        let sock = probe();
        let fd = sock.as_raw_fd();
        assert_eq!(parse_literal(c"fe80::1%1", Family::V6, fd).map(|(_, z)| z), Ok(1));
        assert_eq!(
            parse_literal(c"fe80::1%lo", Family::V6, fd).map(|(_, z)| z),
            Ok(lo_index(&sock))
        );
        assert_eq!(parse_literal(c"fe80::1%", Family::V6, fd), Err(Errno(DGRAM_EINVAL)));
        assert_eq!(
            parse_literal(c"fe80::1%nosuchif0", Family::V6, fd),
            Err(Errno(DGRAM_ENODEV))
        );
        assert_eq!(parse_literal(c"fe80::1%a/b", Family::V6, fd), Err(Errno(DGRAM_EINVAL)));
        assert_eq!(
            parse_literal(c"fe80::1%abcdefghijklmnopq", Family::V6, fd),
            Err(Errno(DGRAM_EINVAL))
        );
    }

    #[test]
    fn defaults() {
        let (_sock, fd) = probe_fd();
        let addr = |text: &str| Ok(Destination::Addr(text.parse().unwrap()));
        assert_eq!(bind_target(None, 0, Family::V4, fd), addr("0.0.0.0:0"));
        assert_eq!(bind_target(None, 7, Family::V6, fd), addr("[::]:7"));
        assert_eq!(send_target(None, 9, Family::V4, fd), addr("127.0.0.1:9"));
        assert_eq!(send_target(None, 9, Family::V6, fd), addr("[::1]:9"));
        assert_eq!(send_target(None, 0, Family::V4, fd), Err(Errno::INVAL));
    }

    #[test]
    fn host_names_are_deferred_and_malformed_text_is_not() {
        let (_sock, fd) = probe_fd();
        let name = |text: &CStr, port| Ok(Destination::Name(text.to_owned(), port));
        assert_eq!(
            send_target(Some(c"example.com"), 9, Family::V4, fd),
            name(c"example.com", 9)
        );
        assert_eq!(
            send_target(Some(c"my_host-1."), 9, Family::V6, fd),
            name(c"my_host-1.", 9)
        );
        assert_eq!(bind_target(Some(c"host"), 0, Family::V4, fd), name(c"host", 0));
        // "localhost" and literals stay synchronous.
        assert_eq!(
            send_target(Some(c"localhost"), 9, Family::V4, fd),
            Ok(Destination::Addr("127.0.0.1:9".parse().unwrap()))
        );
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}a", "a.".repeat(127));
        for bad in [
            "",
            "1.2.3",
            "256.1.1.1",
            " x",
            "a..b",
            ".a",
            "a b",
            "[::1]",
            "a/b",
            "::1:x",
        ] {
            let text = std::ffi::CString::new(bad).unwrap();
            assert_eq!(
                send_target(Some(&text), 9, Family::V4, fd),
                Err(Errno::INVAL),
                "{bad:?}"
            );
        }
        for bad in [long_label, long_name] {
            let text = std::ffi::CString::new(bad.clone()).unwrap();
            assert_eq!(
                send_target(Some(&text), 9, Family::V4, fd),
                Err(Errno::INVAL),
                "{bad:?}"
            );
        }
        // A literal of the other family is still wrong at once.
        assert_eq!(send_target(Some(c"::1"), 9, Family::V4, fd), Err(Errno::INVAL));
        assert_eq!(send_target(Some(c"127.0.0.1"), 9, Family::V6, fd), Err(Errno::INVAL));
    }

    #[test]
    fn multicast_groups_and_interfaces() {
        let (_sock, fd) = probe_fd();
        assert!(multicast_group(c"239.1.2.3", Family::V4, fd).is_ok());
        assert_eq!(multicast_group(c"10.0.0.1", Family::V4, fd), Err(Errno::INVAL));
        assert!(multicast_group(c"ff02::1", Family::V6, fd).is_ok());
        assert_eq!(multicast_group(c"::1", Family::V6, fd), Err(Errno::INVAL));
        assert_eq!(membership_interface_v4(None), Ok(Ipv4Addr::UNSPECIFIED));
        assert_eq!(membership_interface_v4(Some(c"eth0")), Err(Errno::INVAL));
        assert_eq!(membership_interface_v6(None, fd), Ok(0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "looks up interfaces through a socket, which Miri cannot make")]
    fn multicast_interfaces_by_name() {
        let sock = probe();
        let fd = sock.as_raw_fd();
        assert_eq!(membership_interface_v6(Some(c"::%lo"), fd), Ok(lo_index(&sock)));
        assert_eq!(membership_interface_v6(Some(c"lo"), fd), Ok(lo_index(&sock)));
        assert_eq!(membership_interface_v6(Some(c"zz%lo"), fd), Err(Errno::INVAL));
    }

    #[test]
    fn formatting() {
        let v4 = to_c(&"127.0.0.1:5353".parse().unwrap());
        assert_eq!(
            (text(&v4).as_str(), v4.port, v4.family),
            ("127.0.0.1", 5353, dgram_family::DGRAM_IPV4 as i32)
        );
        let v6 = to_c(&"[::ffff:127.0.0.1]:1".parse().unwrap());
        assert_eq!(
            (text(&v6).as_str(), v6.family),
            ("::ffff:127.0.0.1", dgram_family::DGRAM_IPV6 as i32)
        );
        let longest = to_c(&"[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:1".parse().unwrap());
        assert_eq!(text(&longest), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }

    #[test]
    #[cfg_attr(miri, ignore = "looks up interfaces through a socket, which Miri cannot make")]
    fn formatting_zones() {
        let sock = probe();
        let lo = lo_index(&sock);
        let zoned = to_c(&SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 1, 0, lo)));
        assert_eq!(text(&zoned), "fe80::1%lo");
        let numbered = to_c(&SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            1,
            0,
            4000,
        )));
        assert_eq!(text(&numbered), "fe80::1%4000");
    }

    #[test]
    fn ipv4_by_hand_matches_std() {
        for octets in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [255, 255, 255, 255],
            [9, 10, 99, 100],
            [198, 51, 100, 7],
        ] {
            let addr = SocketAddr::from((octets, 1));
            assert_eq!(text(&to_c(&addr)), std::net::Ipv4Addr::from(octets).to_string());
        }
    }
}
