//! Received datagrams travel in batches. A reader (the thread that
//! dispatches: the host's, or the I/O thread) reads up to `BATCH_SLOTS`
//! datagrams of one socket with one recvmmsg into a batch's slots and calls
//! the message callback straight from them, on the same thread; then the
//! batch is read into again. Batches come from the context's pool and go
//! back to it when a dispatch round ends, so the steady state allocates
//! nothing per datagram and an idle context gives their memory back.

use std::net::SocketAddr;

use crate::addr::UNKNOWN_SOURCE;
use crate::sys::{RecvMeta, RecvMmsg, Region, MMSG_BATCH};

/// Datagrams per read: as many as one recvmmsg reads.
pub(crate) const BATCH_SLOTS: usize = MMSG_BATCH;

/// One slot holds the largest UDP payload (65,527 bytes over IPv6), so no
/// datagram is ever truncated. The memory is reserved, not touched: a slot
/// costs resident memory only for the pages its datagrams have written, so
/// a batch that only ever carries small datagrams stays at a page per slot.
pub(crate) const SLOT_SIZE: usize = 1 << 16;

/// Most datagrams one batch carries: a plain read fills at most
/// `BATCH_SLOTS`; GRO buffers split into more.
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

#[derive(Clone, Copy)]
struct Entry {
    offset: usize,
    len: usize,
    from: SocketAddr,
    /// `metas` holds this datagram's metadata.
    has_meta: bool,
}

/// The datagrams of one read of one socket, in its slots.
pub struct RecvBatch {
    data: Region,
    entries: [Entry; BATCH_ENTRIES],
    /// Metadata by entry, made the first time a socket that asked for it
    /// reads into this batch: a context that never asks never pays for it.
    metas: Option<Box<[RecvMeta; BATCH_ENTRIES]>>,
    len: usize,
    /// The first datagram not yet delivered.
    next: usize,
    /// Pages other than the first of each slot were written: the pool gives
    /// them back to the system once the batch rests (`Region::release`).
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
            from: UNKNOWN_SOURCE,
            has_meta: false,
        };
        Some(Box::new(RecvBatch {
            data: Region::new(BATCH_SLOTS * SLOT_SIZE).ok()?,
            entries: [empty; BATCH_ENTRIES],
            metas: None,
            len: 0,
            next: 0,
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

    /// The slot area, as a read left it.
    pub fn slots(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// The whole slot area, for a read into an empty batch.
    pub fn slots_mut(&mut self) -> &mut [u8] {
        debug_assert!(self.is_empty());
        self.data.as_mut_slice()
    }

    /// Records that the read into the empty batch filled slots `0..count`
    /// as `mmsg` reports them, and returns how many datagrams they hold:
    /// one per slot, except that a GRO buffer is split into its datagrams.
    pub fn fill(&mut self, mmsg: &RecvMmsg, count: usize, mode: ReadMode) -> usize {
        debug_assert!(self.is_empty());
        let count = count.min(BATCH_SLOTS);
        if !mode.control() {
            // The common case: one datagram per slot, nothing but its
            // length and source.
            for (slot, entry) in self.entries[..count].iter_mut().enumerate() {
                *entry = Entry {
                    offset: slot * SLOT_SIZE,
                    len: mmsg.len(slot).min(SLOT_SIZE),
                    from: mmsg.source(slot).unwrap_or(UNKNOWN_SOURCE),
                    has_meta: false,
                };
            }
            self.finish_fill(count);
            return count;
        }
        if mode.meta && self.metas.is_none() {
            self.metas = Some(Box::new([RecvMeta::default(); BATCH_ENTRIES]));
        }
        let mut len = 0;
        for slot in 0..count {
            let total = mmsg.len(slot).min(SLOT_SIZE);
            let from = mmsg.source(slot).unwrap_or(UNKNOWN_SOURCE);
            let meta = mmsg.meta(slot);
            len = self.split(len, slot * SLOT_SIZE, total, from, meta, mode);
        }
        self.finish_fill(len);
        len
    }

    /// Records the `total` bytes at `offset` from `from` as entries from
    /// `len` on, and returns the new entry count. A GRO buffer holds
    /// datagrams of `segment` bytes, the last one possibly shorter;
    /// anything else is one datagram.
    fn split(
        &mut self,
        mut len: usize,
        offset: usize,
        total: usize,
        from: SocketAddr,
        meta: RecvMeta,
        mode: ReadMode,
    ) -> usize {
        let segment = match meta.gro_segment as usize {
            size if mode.gro && size > 0 && size < total => size,
            _ => total.max(1),
        };
        let mut done = 0;
        loop {
            if len == BATCH_ENTRIES {
                // Cannot happen within the kernel's segment limit (see
                // `ReadMode::max_slots`); keep the rest as one datagram
                // rather than lose it.
                self.entries[len - 1].len = offset + total - self.entries[len - 1].offset;
                return len;
            }
            let piece = segment.min(total - done);
            self.entries[len] = Entry {
                offset: offset + done,
                len: piece,
                from,
                has_meta: mode.meta,
            };
            if let (true, Some(metas)) = (mode.meta, self.metas.as_mut()) {
                metas[len] = meta;
            }
            len += 1;
            done += piece;
            if done >= total {
                return len;
            }
        }
    }

    fn finish_fill(&mut self, len: usize) {
        self.dirty |= self.entries[..len].iter().any(|e| e.len > SMALL_DATAGRAM);
        self.len = len;
        self.next = 0;
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

    /// The batch wrote pages other than the first of each slot (large
    /// datagrams): worth giving back once it rests.
    pub(crate) fn needs_release(&self) -> bool {
        self.dirty
    }

    /// Gives the batch's pages back to the system (`Region::release`).
    pub(crate) fn release_pages(&mut self) {
        self.data.release();
        self.dirty = false;
    }

    /// Empties the batch for reuse.
    pub fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
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
    #[cfg_attr(miri, ignore = "maps batches with mmap, which Miri cannot run")]
    fn gro_buffers_split_back_into_their_datagrams() {
        let mut batch = RecvBatch::new().unwrap();
        // Slot 0: a GRO buffer of three 7-byte datagrams and a 3-byte tail;
        // slot 1: a lone datagram whose segment size is its own length.
        let gro: Vec<u8> = (0..24u8).collect();
        batch.slots_mut()[..24].copy_from_slice(&gro);
        batch.slots_mut()[SLOT_SIZE..SLOT_SIZE + 5].copy_from_slice(b"alone");
        let mode = ReadMode { meta: true, gro: true };
        batch.metas = Some(Box::new([RecvMeta::default(); BATCH_ENTRIES]));
        let segmented = RecvMeta {
            gro_segment: 7,
            ..RecvMeta::default()
        };
        let len = batch.split(0, 0, 24, from(1), segmented, mode);
        let lone = RecvMeta {
            gro_segment: 5,
            ..RecvMeta::default()
        };
        let len = batch.split(len, SLOT_SIZE, 5, from(2), lone, mode);
        batch.finish_fill(len);
        assert_eq!(batch.remaining(), 5);
        assert!(batch.peek_at(0).2.is_some());
        let got = drain(&mut batch);
        let want: Vec<(Vec<u8>, u16)> = vec![
            ((0..7).collect(), 1),
            ((7..14).collect(), 1),
            ((14..21).collect(), 1),
            ((21..24).collect(), 1),
            (b"alone".to_vec(), 2),
        ];
        assert_eq!(got, want);
        assert!(!batch.needs_release());
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps batches with mmap, which Miri cannot run")]
    fn large_datagrams_mark_the_batch_for_release() {
        let mut batch = RecvBatch::new().unwrap();
        let len = batch.split(
            0,
            0,
            SMALL_DATAGRAM + 1,
            from(1),
            RecvMeta::default(),
            ReadMode::default(),
        );
        batch.finish_fill(len);
        assert_eq!(batch.remaining(), 1);
        assert!(batch.needs_release());
        batch.release_pages();
        assert!(!batch.needs_release());
        batch.clear();
        assert!(batch.is_empty());
    }
}
