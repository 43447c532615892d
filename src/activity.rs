//! What keeps a host loop alive (`dgram_context_active`): bound, open,
//! referenced sockets, and pending work (sends not yet completed, events
//! not yet delivered, operations waiting for a lookup). One value, so that
//! every count goes through the same two counters and the same rule for
//! "nothing is left".

use std::sync::atomic::{AtomicI64, Ordering::SeqCst};

/// The two counts; each change says whether it left nothing active.
#[derive(Default)]
pub struct Activity {
    bound: AtomicI64,
    pending: AtomicI64,
}

/// What a change of the counts did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Something is still active, or the change added.
    Busy,
    /// A decrement left nothing active: a host waiting for that is to be told.
    Idle,
}

impl Activity {
    pub fn add_bound(&self, delta: i64) -> Change {
        self.bound.fetch_add(delta, SeqCst);
        self.after(delta)
    }

    pub fn add_pending(&self, delta: i64) -> Change {
        self.pending.fetch_add(delta, SeqCst);
        self.after(delta)
    }

    /// The total, as `dgram_context_active` reports it.
    pub fn total(&self) -> u32 {
        let total = self.bound.load(SeqCst) + self.pending.load(SeqCst);
        total.clamp(0, u32::MAX as i64) as u32
    }

    fn after(&self, delta: i64) -> Change {
        if delta < 0 && self.total() == 0 {
            Change::Idle
        } else {
            Change::Busy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_decrement_to_zero_is_idle() {
        let activity = Activity::default();
        assert_eq!(activity.add_bound(1), Change::Busy);
        assert_eq!(activity.add_pending(2), Change::Busy);
        assert_eq!(activity.total(), 3);
        assert_eq!(activity.add_pending(-2), Change::Busy);
        assert_eq!(activity.add_bound(-1), Change::Idle);
        assert_eq!(activity.total(), 0);
        // Adding from zero is never idle; a total below zero reads as 0.
        assert_eq!(activity.add_pending(0), Change::Busy);
        assert_eq!(activity.add_pending(-1), Change::Idle);
        assert_eq!(activity.total(), 0);
    }
}
