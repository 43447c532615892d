//! The batches of one context: mapped on first need, reused while traffic
//! flows, and given back to the system once they rest. A batch that cannot
//! be mapped makes the pool back off instead of failing again at once.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::batch::RecvBatch;

/// Free batches kept mapped once idle; more than this go back to the system
/// after `IDLE` unused, so a burst's batches do not stay resident after it.
pub(crate) const WARM_BATCHES: usize = 4;

/// How long a free batch waits unused before its memory goes back to the
/// system. While traffic flows batches return and are taken again at once,
/// touching nothing but their pages; only a pool that rests is trimmed.
pub(crate) const IDLE: Duration = Duration::from_secs(1);

/// After a batch could not be mapped, the pool refuses to try again for
/// this long at first, doubling up to `MAX_BACKOFF`: a reader that finds no
/// memory waits instead of spinning.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct PoolState {
    /// Batches that exist: free or in a reader's hands.
    allocated: usize,
    /// No new batch is mapped before this, after a failure.
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// A free batch and when it came back.
struct Free {
    batch: Box<RecvBatch>,
    since: Instant,
}

/// The batches of one context: at most `limit` ever exist, in
/// a reader's hands or in this free list. Free batches are reused most
/// recent first; `trim` gives back the memory of those that rest.
pub struct BatchPool {
    free: Mutex<Vec<Free>>,
    state: Mutex<PoolState>,
    limit: usize,
    /// A free batch waits that `trim` will have work with; while it is
    /// false, `trim` returns at once.
    trim_work: AtomicBool,
    /// `trim_work` was raised by a returning batch: the trimming thread,
    /// which may be waiting without a timeout, is to be told once
    /// (`take_trim_request`).
    trim_requested: AtomicBool,
}

impl BatchPool {
    /// Allocates nothing: batches are mapped on first need.
    pub fn new(limit: usize) -> BatchPool {
        BatchPool {
            free: Mutex::new(Vec::new()),
            state: Mutex::new(PoolState {
                allocated: 0,
                retry_at: None,
                backoff: FIRST_BACKOFF,
            }),
            limit: limit.max(2),
            trim_work: AtomicBool::new(false),
            trim_requested: AtomicBool::new(false),
        }
    }

    /// A free batch, or a new one while under the limit and not backing off
    /// from a failed mapping.
    pub fn take(&self) -> Option<Box<RecvBatch>> {
        if let Some(free) = self.free.lock().pop() {
            return Some(free.batch);
        }
        let mut state = self.state.lock();
        if state.allocated >= self.limit || state.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        match RecvBatch::new() {
            Some(batch) => {
                state.allocated += 1;
                state.retry_at = None;
                state.backoff = FIRST_BACKOFF;
                Some(batch)
            }
            None => {
                state.retry_at = Some(Instant::now() + state.backoff);
                state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
                None
            }
        }
    }

    /// Whether `take` would give a batch now.
    pub fn has_free(&self) -> bool {
        if !self.free.lock().is_empty() {
            return true;
        }
        let state = self.state.lock();
        state.allocated < self.limit && !state.retry_at.is_some_and(|at| Instant::now() < at)
    }

    /// How long until the pool tries to map a batch again, while it backs
    /// off from a failure.
    pub fn retry_in(&self) -> Option<Duration> {
        let at = self.state.lock().retry_at?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// Takes a batch back for reuse. Its memory is left as it is: the
    /// next read reuses it at once while traffic flows.
    pub fn give(&self, mut batch: Box<RecvBatch>) {
        batch.clear();
        let mut free = self.free.lock();
        let trim_work = batch.needs_release() || free.len() >= WARM_BATCHES;
        free.push(Free {
            batch,
            since: Instant::now(),
        });
        drop(free);
        if trim_work && !self.trim_work.swap(true, SeqCst) {
            self.trim_requested.store(true, SeqCst);
        }
    }

    /// Whether a batch came back that `trim` will have work with, since
    /// the last call.
    pub fn take_trim_request(&self) -> bool {
        self.trim_requested.swap(false, SeqCst)
    }

    /// `trim` now, when there may be work for it: no lock and no clock
    /// otherwise.
    pub fn trim_due(&self) -> Option<Duration> {
        if !self.trim_work.load(SeqCst) {
            return None;
        }
        self.trim(Instant::now())
    }

    /// Gives back the memory of batches free for `IDLE`: those beyond the
    /// `WARM_BATCHES` most recent are unmapped, the pages the others' large
    /// datagrams wrote are released. Returns how long until the
    /// next batch needs this, if one will.
    pub fn trim(&self, now: Instant) -> Option<Duration> {
        if !self.trim_work.load(SeqCst) {
            return None;
        }
        let mut next: Option<Duration> = None;
        let mut free = self.free.lock();
        let keep_from = free.len().saturating_sub(WARM_BATCHES);
        let before = free.len();
        let mut index = 0;
        // Unmapped where they stand: only a pool that rests gets here, so
        // nobody waits for the free list meanwhile.
        free.retain_mut(|entry| {
            let kept_warm = index >= keep_from;
            index += 1;
            if kept_warm && !entry.batch.needs_release() {
                return true;
            }
            let idle_at = entry.since + IDLE;
            if now < idle_at {
                let wait = idle_at - now;
                next = Some(next.map_or(wait, |n| n.min(wait)));
                return true;
            }
            if kept_warm {
                entry.batch.release_pages();
                return true;
            }
            false
        });
        let removed = before - free.len();
        // Under the free list's lock: a `give` that pushes after the scan
        // raises it again after this store.
        self.trim_work.store(next.is_some(), SeqCst);
        drop(free);
        if removed > 0 {
            self.state.lock().allocated -= removed;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "starts a context and its I/O thread (epoll), which Miri cannot run")]
    fn pool_is_bounded_and_reuses() {
        let pool = BatchPool::new(2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert!(pool.take().is_none());
        assert!(!pool.has_free());
        let a_ptr = &*a as *const RecvBatch;
        pool.give(a);
        let again = pool.take().unwrap();
        assert_eq!(&*again as *const RecvBatch, a_ptr);
        drop((b, again));
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps batches with mmap, which Miri cannot run")]
    fn pool_keeps_only_a_few_free_batches() {
        let pool = BatchPool::new(10);
        let taken: Vec<_> = (0..10).map(|_| pool.take().unwrap()).collect();
        assert!(pool.take().is_none());
        for batch in taken {
            pool.give(batch);
        }
        assert!(pool.take_trim_request());
        assert!(!pool.take_trim_request());
        // Nothing is trimmed while the batches are fresh...
        let now = Instant::now();
        assert!(pool.trim(now).is_some());
        assert_eq!(pool.free.lock().len(), 10);
        // ...and once they rest, all but the warm ones go back.
        assert_eq!(pool.trim(now + IDLE), None);
        assert_eq!(pool.free.lock().len(), WARM_BATCHES);
        assert_eq!(pool.state.lock().allocated, WARM_BATCHES);
        // What went back to the system can be mapped again, up to the limit.
        let again: Vec<_> = (0..10).map(|_| pool.take().unwrap()).collect();
        assert!(pool.take().is_none());
        drop(again);
    }
}
