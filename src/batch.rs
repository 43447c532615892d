//! Received datagrams travel in batches. The I/O thread reads up to
//! `BATCH_SLOTS` datagrams with one recvmmsg into a batch's slots and queues
//! the whole batch; the dispatching thread calls the message callback
//! straight from the slots and then gives the batch back to the pool. Batches
//! are allocated on first need and reused for the context's lifetime, so the
//! steady state allocates nothing per datagram.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::socket::Socket;
use crate::sys::{RecvMeta, RecvMmsg, Region, MMSG_BATCH};

/// Datagrams per batch: as many as one recvmmsg reads.
pub(crate) const BATCH_SLOTS: usize = MMSG_BATCH;

/// One slot holds the largest UDP payload (65,527 bytes over IPv6), so no
/// datagram is ever truncated. The memory is reserved, not touched: a slot
/// costs resident memory only for the pages its datagrams have written, so
/// a batch that only ever carries small datagrams stays at a page per slot.
pub(crate) const SLOT_SIZE: usize = 1 << 16;

/// Most datagrams one batch carries: a read fills at most `BATCH_SLOTS`;
/// the rest of the room is for later reads copied in behind (`absorb`).
pub(crate) const BATCH_ENTRIES: usize = 256;

/// Most datagrams the kernel coalesces into one UDP_GRO buffer
/// (UDP_MAX_SEGMENTS, 128 in current kernels; GRO itself stops at 64): a
/// read for a GRO socket offers only as many slots as can be split into
/// the entries of an empty batch.
pub(crate) const GRO_MAX_SEGMENTS: usize = 128;

/// What a read of one socket asks the kernel for, and keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadMode {
    /// Keep each datagram's metadata for `dgram_message_meta`.
    pub meta: bool,
    /// The socket has UDP_GRO on: split coalesced buffers.
    pub gro: bool,
}

impl ReadMode {
    /// Whether the read needs control messages at all.
    pub fn control(self) -> bool {
        self.meta || self.gro
    }

    /// The most slots one read may offer.
    pub fn max_slots(self) -> usize {
        if self.gro {
            BATCH_ENTRIES / GRO_MAX_SEGMENTS
        } else {
            BATCH_SLOTS
        }
    }
}

/// The source of a datagram whose address the kernel did not give (never
/// seen on UDP/IP, but the entry must hold something).
const UNKNOWN_SOURCE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Consecutive datagrams of one socket within a batch.
pub struct Run {
    pub socket: Arc<Socket>,
    /// One past the run's last datagram.
    pub end: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    offset: usize,
    len: usize,
    from: SocketAddr,
    /// `metas` holds this datagram's metadata.
    has_meta: bool,
}

pub struct RecvBatch {
    data: Region,
    entries: [Entry; BATCH_ENTRIES],
    /// Metadata by entry, made the first time a socket that asked for it
    /// reads into this batch: a context that never asks never pays for it.
    metas: Option<Box<[RecvMeta; BATCH_ENTRIES]>>,
    runs: Vec<Run>,
    len: usize,
    /// The first datagram not yet delivered.
    next: usize,
    /// Where the next absorbed datagram's bytes go: behind the slots the
    /// batch's own read used.
    packed_end: usize,
    /// Pages other than the first of each slot were written: the pool gives
    /// them back to the system when the batch returns (`Region::release`).
    dirty: bool,
}

/// Datagrams up to this size touch only the first page of their slot; a
/// batch that only ever carried such datagrams keeps its pages, which are
/// few and reused at once.
const SMALL_DATAGRAM: usize = 4096;

impl RecvBatch {
    /// A new, empty batch, or `None` if the system has no memory to map.
    pub fn new() -> Option<Box<RecvBatch>> {
        let empty = Entry {
            offset: 0,
            len: 0,
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            has_meta: false,
        };
        Some(Box::new(RecvBatch {
            data: Region::new(BATCH_SLOTS * SLOT_SIZE).ok()?,
            entries: [empty; BATCH_ENTRIES],
            metas: None,
            runs: Vec::with_capacity(BATCH_ENTRIES),
            len: 0,
            next: 0,
            packed_end: 0,
            dirty: false,
        }))
    }

    /// Datagrams not yet delivered.
    pub fn remaining(&self) -> usize {
        self.len - self.next
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole slot area, for a read into an empty batch.
    pub fn slots_mut(&mut self) -> &mut [u8] {
        debug_assert!(self.is_empty());
        self.data.as_mut_slice()
    }

    /// Records that the read into the empty batch filled slots `0..count`,
    /// all from `socket`, as `mmsg` reports them, and returns how many
    /// datagrams they hold: one per slot, except that a GRO buffer is split
    /// into its datagrams.
    pub fn fill(&mut self, socket: &Arc<Socket>, mmsg: &RecvMmsg, count: usize, mode: ReadMode) -> usize {
        debug_assert!(self.is_empty());
        let count = count.min(BATCH_SLOTS);
        if mode.meta && self.metas.is_none() {
            self.metas = Some(Box::new([RecvMeta::default(); BATCH_ENTRIES]));
        }
        if !mode.control() {
            // The common case, kept to what it was before metadata and GRO:
            // one datagram per slot, nothing but its length and source.
            for (slot, entry) in self.entries[..count].iter_mut().enumerate() {
                *entry = Entry {
                    offset: slot * SLOT_SIZE,
                    len: mmsg.len(slot).min(SLOT_SIZE),
                    from: mmsg.source(slot).unwrap_or(UNKNOWN_SOURCE),
                    has_meta: false,
                };
            }
            self.finish_fill(socket, count, count);
            return count;
        }
        let mut len = 0;
        for slot in 0..count {
            let total = mmsg.len(slot).min(SLOT_SIZE);
            let from = mmsg.source(slot).unwrap_or(UNKNOWN_SOURCE);
            let meta = if mode.control() {
                mmsg.meta(slot)
            } else {
                RecvMeta::default()
            };
            // A GRO buffer holds datagrams of `segment` bytes, the last one
            // possibly shorter; anything else is one datagram.
            let segment = match meta.gro_segment as usize {
                size if mode.gro && size > 0 && size < total => size,
                _ => total.max(1),
            };
            let mut offset = 0;
            loop {
                if len == BATCH_ENTRIES {
                    // Cannot happen within the kernel's segment limit (see
                    // `ReadMode::max_slots`); keep the rest as one datagram
                    // rather than lose it.
                    self.entries[len - 1].len = slot * SLOT_SIZE + total - self.entries[len - 1].offset;
                    break;
                }
                let piece = segment.min(total - offset);
                self.entries[len] = Entry {
                    offset: slot * SLOT_SIZE + offset,
                    len: piece,
                    from,
                    has_meta: mode.meta,
                };
                if let (true, Some(metas)) = (mode.meta, self.metas.as_mut()) {
                    metas[len] = meta;
                }
                len += 1;
                offset += piece;
                if offset >= total {
                    break;
                }
            }
        }
        self.finish_fill(socket, count, len);
        len
    }

    /// Records `len` datagrams read into the first `slots` slots.
    fn finish_fill(&mut self, socket: &Arc<Socket>, slots: usize, len: usize) {
        self.dirty |= self.entries[..len].iter().any(|e| e.len > SMALL_DATAGRAM);
        self.len = len;
        self.packed_end = slots * SLOT_SIZE;
        if len > 0 {
            self.runs.push(Run {
                socket: Arc::clone(socket),
                end: len,
            });
        }
    }

    /// Copies the datagrams of `other` (one read, not yet queued) behind
    /// this batch's own, packed, if they all fit. A host that falls behind
    /// then holds a few well-filled batches instead of one per read, and
    /// small datagrams share pages instead of each touching its own.
    pub fn absorb(&mut self, other: &mut RecvBatch) -> bool {
        let bytes: usize = other.entries[..other.len]
            .iter()
            .map(|e| e.len.next_multiple_of(8))
            .sum();
        if other.len > BATCH_ENTRIES - self.len || bytes > self.data.as_slice().len() - self.packed_end {
            return false;
        }
        self.dirty = true;
        for i in 0..other.len {
            let entry = other.entries[i];
            let offset = self.packed_end;
            self.data.as_mut_slice()[offset..offset + entry.len]
                .copy_from_slice(&other.data.as_slice()[entry.offset..entry.offset + entry.len]);
            self.entries[self.len + i] = Entry { offset, ..entry };
            if entry.has_meta {
                let meta = other.metas.as_ref().map_or(RecvMeta::default(), |m| m[i]);
                self.metas
                    .get_or_insert_with(|| Box::new([RecvMeta::default(); BATCH_ENTRIES]))[self.len + i] = meta;
            }
            // Aligned as malloc would be enough for most host structs.
            self.packed_end += entry.len.next_multiple_of(8);
        }
        self.len += other.len;
        for run in other.runs.drain(..) {
            match self.runs.last_mut() {
                Some(last) if Arc::ptr_eq(&last.socket, &run.socket) => last.end = self.len,
                _ => self.runs.push(Run {
                    socket: run.socket,
                    end: self.len,
                }),
            }
        }
        other.clear();
        true
    }

    /// Packs the datagrams of the batch's own read together at the start
    /// of its memory, so that the rest is free for `absorb`. For a batch
    /// that is going to wait in the queue: a host that falls behind then
    /// holds its backlog in a few dense batches, not a sparse one per read.
    pub fn compact(&mut self) {
        let mut end = 0usize;
        for entry in &mut self.entries[self.next..self.len] {
            // Never moves data forwards, which would overwrite datagrams not
            // moved yet: entries lie in order without overlapping, so the
            // packed end never passes the next entry's start. Aligned to 8
            // where that still holds; datagrams split from one GRO buffer
            // lie back to back, and stay so (found by the fuzzer: aligning
            // them moved data forwards).
            let aligned = end.next_multiple_of(8);
            let at = if aligned <= entry.offset { aligned } else { end };
            debug_assert!(at <= entry.offset, "compact would move a datagram forwards");
            self.data
                .as_mut_slice()
                .copy_within(entry.offset..entry.offset + entry.len, at);
            entry.offset = at;
            end = at + entry.len;
        }
        self.packed_end = end.next_multiple_of(8).min(self.data.as_slice().len());
        self.dirty |= end > SMALL_DATAGRAM;
    }

    /// The run holding the next datagram: its socket, and how many of its
    /// datagrams are left from there on.
    pub fn current_run(&self) -> Option<(&Arc<Socket>, usize)> {
        self.runs
            .iter()
            .find(|run| run.end > self.next)
            .map(|run| (&run.socket, run.end - self.next))
    }

    /// The datagram `k` places after the next one; the caller delivers and
    /// then `advance`s past those it delivered.
    pub fn peek_at(&self, k: usize) -> (&[u8], &SocketAddr, Option<&RecvMeta>) {
        let index = self.next + k;
        let entry = &self.entries[index];
        let meta = match (entry.has_meta, &self.metas) {
            (true, Some(metas)) => Some(&metas[index]),
            _ => None,
        };
        (
            &self.data.as_slice()[entry.offset..entry.offset + entry.len],
            &entry.from,
            meta,
        )
    }

    pub fn advance(&mut self, n: usize) {
        self.next = (self.next + n).min(self.len);
    }

    /// The batch wrote pages other than the first of each slot (large or
    /// packed datagrams): worth giving back once it rests.
    pub(crate) fn needs_release(&self) -> bool {
        self.dirty
    }

    /// Gives the batch's pages back to the system (`Region::release`).
    pub(crate) fn release_pages(&mut self) {
        self.data.release();
        self.dirty = false;
    }

    /// Empties the batch for reuse. Drops its socket references: the caller
    /// must hold no lock a socket's drop could need.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.len = 0;
        self.next = 0;
        self.packed_end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Family;
    use crate::context::{Context, Mode};
    use crate::event::UserPtr;
    use crate::socket::SocketConfig;

    fn socket(ctx: &Arc<Context>) -> Arc<Socket> {
        let config = SocketConfig {
            family: Family::V4,
            reuse_addr: false,
            ipv6_only: false,
            recv_buffer_size: 0,
            send_buffer_size: 0,
        };
        Socket::create(ctx, config, None, UserPtr(std::ptr::null_mut())).unwrap()
    }

    /// Writes `payloads` into the empty `batch` as one read from `socket` would.
    fn read_into(batch: &mut RecvBatch, socket: &Arc<Socket>, payloads: &[&[u8]], port: u16) {
        for (i, payload) in payloads.iter().enumerate() {
            batch.slots_mut()[i * SLOT_SIZE..i * SLOT_SIZE + payload.len()].copy_from_slice(payload);
        }
        let from = SocketAddr::from(([127, 0, 0, 1], port));
        batch.fill_with(socket, payloads.iter().map(|p| (p.len(), from)));
    }

    impl RecvBatch {
        /// `fill` from a list instead of a recvmmsg.
        fn fill_with(&mut self, socket: &Arc<Socket>, datagrams: impl Iterator<Item = (usize, SocketAddr)>) {
            for (i, (len, from)) in datagrams.enumerate() {
                self.entries[i] = Entry {
                    offset: i * SLOT_SIZE,
                    len,
                    from,
                    has_meta: false,
                };
                self.len = i + 1;
            }
            self.packed_end = self.len * SLOT_SIZE;
            self.runs.push(Run {
                socket: Arc::clone(socket),
                end: self.len,
            });
        }
    }

    fn drain(batch: &mut RecvBatch) -> Vec<(Vec<u8>, u16)> {
        let mut out = Vec::new();
        while batch.remaining() > 0 {
            let (data, from, _) = batch.peek_at(0);
            out.push((data.to_vec(), from.port()));
            batch.advance(1);
        }
        out
    }

    #[test]
    #[cfg_attr(miri, ignore = "starts a context and its I/O thread (epoll), which Miri cannot run")]
    fn absorb_packs_behind_and_keeps_order_and_runs() {
        let ctx = Context::new(Mode::Host, 0).unwrap();
        let (a, b) = (socket(&ctx), socket(&ctx));
        let mut first = RecvBatch::new().unwrap();
        let mut second = RecvBatch::new().unwrap();
        let mut third = RecvBatch::new().unwrap();
        read_into(&mut first, &a, &[b"one", b""], 1);
        read_into(&mut second, &a, &[b"three"], 2);
        read_into(&mut third, &b, &[b"four", b"five!"], 3);
        assert!(first.absorb(&mut second));
        assert!(first.absorb(&mut third));
        assert!(second.is_empty() && third.is_empty());
        assert_eq!(first.runs.len(), 2, "a's two reads share one run");
        assert!(Arc::ptr_eq(first.current_run().unwrap().0, &a));
        assert_eq!(first.current_run().unwrap().1, 3);
        // Packed: the absorbed bytes share the space behind the own slots.
        assert_eq!(first.entries[2].offset, 2 * SLOT_SIZE);
        assert_eq!(first.entries[3].offset, 2 * SLOT_SIZE + 8);
        let got = drain(&mut first);
        let want: Vec<(Vec<u8>, u16)> = vec![
            (b"one".to_vec(), 1),
            (b"".to_vec(), 1),
            (b"three".to_vec(), 2),
            (b"four".to_vec(), 3),
            (b"five!".to_vec(), 3),
        ];
        assert_eq!(got, want);
        assert!(first.current_run().is_none());
        first.clear();
        ctx.shut_down();
    }

    #[test]
    #[cfg_attr(miri, ignore = "starts a context and its I/O thread (epoll), which Miri cannot run")]
    fn compact_packs_then_absorbs_a_full_read() {
        let ctx = Context::new(Mode::Host, 0).unwrap();
        let a = socket(&ctx);
        let payloads: Vec<Vec<u8>> = (0..BATCH_SLOTS).map(|i| vec![i as u8; i * 3]).collect();
        let slices: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let mut first = RecvBatch::new().unwrap();
        let mut second = RecvBatch::new().unwrap();
        read_into(&mut first, &a, &slices, 1);
        read_into(&mut second, &a, &slices, 2);
        assert!(!first.absorb(&mut second), "every slot used: no room yet");
        first.compact();
        assert!(first.packed_end < SLOT_SIZE);
        assert!(first.absorb(&mut second));
        let got = drain(&mut first);
        assert_eq!(got.len(), 2 * BATCH_SLOTS);
        for (i, (data, port)) in got.iter().enumerate() {
            let k = i % BATCH_SLOTS;
            assert_eq!(data, &payloads[k], "datagram {i}");
            assert_eq!(*port, if i < BATCH_SLOTS { 1 } else { 2 });
        }
        first.clear();
        ctx.shut_down();
    }

    #[test]
    #[cfg_attr(miri, ignore = "starts a context and its I/O thread (epoll), which Miri cannot run")]
    fn compact_keeps_back_to_back_gro_datagrams_intact() {
        // A GRO buffer of 7-byte datagrams, split: entries at 0, 7, 14, ...
        // of one slot. Aligning each to 8 would move them forwards.
        let ctx = Context::new(Mode::Host, 0).unwrap();
        let a = socket(&ctx);
        let mut batch = RecvBatch::new().unwrap();
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 7]).collect();
        let from = SocketAddr::from(([127, 0, 0, 1], 1));
        for (i, p) in payloads.iter().enumerate() {
            batch.slots_mut()[i * 7..i * 7 + 7].copy_from_slice(p);
            batch.entries[i] = Entry {
                offset: i * 7,
                len: 7,
                from,
                has_meta: false,
            };
        }
        batch.len = payloads.len();
        batch.packed_end = SLOT_SIZE;
        batch.runs.push(Run {
            socket: Arc::clone(&a),
            end: batch.len,
        });
        batch.compact();
        let got = drain(&mut batch);
        assert_eq!(got.len(), payloads.len());
        for (i, (data, _)) in got.iter().enumerate() {
            assert_eq!(data, &payloads[i], "datagram {i}");
        }
        batch.clear();
        ctx.shut_down();
    }

    #[test]
    #[cfg_attr(miri, ignore = "starts a context and its I/O thread (epoll), which Miri cannot run")]
    fn absorb_refuses_what_does_not_fit() {
        let ctx = Context::new(Mode::Host, 0).unwrap();
        let a = socket(&ctx);
        let mut full = RecvBatch::new().unwrap();
        let payloads: Vec<&[u8]> = vec![b"x"; BATCH_SLOTS];
        read_into(&mut full, &a, &payloads, 1);
        let mut more = RecvBatch::new().unwrap();
        read_into(&mut more, &a, &[b"y"], 1);
        // The own read used every slot: no room for bytes behind it.
        assert!(!full.absorb(&mut more));
        assert_eq!(more.remaining(), 1);
        full.clear();
        more.clear();
        ctx.shut_down();
    }
}
