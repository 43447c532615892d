//! A socket's last send destination, kept parsed for the next send to the
//! same text.

use std::ffi::CStr;
use std::net::SocketAddr;

/// The last destination text and port a socket sent to, and what they
/// parsed to. Only zone-free addresses are kept: a zone names an interface,
/// whose index can change from one send to the next.
pub(super) struct DestinationCache {
    text: [u8; DESTINATION_CACHE_BYTES],
    /// Length of `text`; 0 when nothing is cached.
    len: usize,
    port: i32,
    dest: Option<SocketAddr>,
}

const DESTINATION_CACHE_BYTES: usize = 48;

impl Default for DestinationCache {
    fn default() -> Self {
        DestinationCache {
            text: [0; DESTINATION_CACHE_BYTES],
            len: 0,
            port: 0,
            dest: None,
        }
    }
}

impl DestinationCache {
    pub(super) fn lookup(&self, address: Option<&CStr>, port: i32) -> Option<SocketAddr> {
        let text = address?.to_bytes();
        (self.len > 0 && port == self.port && text == &self.text[..self.len]).then_some(self.dest?)
    }

    pub(super) fn remember(&mut self, address: Option<&CStr>, port: i32, dest: SocketAddr) {
        let Some(text) = address.map(CStr::to_bytes) else {
            return;
        };
        if text.is_empty() || text.len() > self.text.len() || text.contains(&b'%') {
            return;
        }
        self.text[..text.len()].copy_from_slice(text);
        self.len = text.len();
        self.port = port;
        self.dest = Some(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_cache_keeps_only_the_last_zone_free_text() {
        let mut cache = DestinationCache::default();
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 9), None);
        cache.remember(Some(c"127.0.0.1"), 9, dest);
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 9), Some(dest));
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 10), None);
        assert_eq!(cache.lookup(Some(c"127.0.0.10"), 9), None);
        assert_eq!(cache.lookup(Some(c"127.0.0."), 9), None);
        assert_eq!(cache.lookup(None, 9), None);
        let zoned: SocketAddr = "[fe80::1%1]:9".parse().unwrap();
        cache.remember(Some(c"fe80::1%lo"), 9, zoned);
        assert_eq!(cache.lookup(Some(c"fe80::1%lo"), 9), None);
        assert_eq!(cache.lookup(Some(c"127.0.0.1"), 9), Some(dest));
    }
}
