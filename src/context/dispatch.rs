//! Host dispatch: `dgram_context_dispatch` and `dgram_context_run`, a round
//! at a time on the calling thread.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::ReentrantMutexGuard;

use super::{Context, Mode, Reader, DOORBELL_TOKEN, NO_EVENT, READY_PER_ROUND};
use crate::error::{Errno, Result, DGRAM_EBUSY};
use crate::socket::Socket;

impl Context {
    /// One round of host dispatch: what a dispatch's `max` left of the last
    /// read, then the events queued at entry, then each ready socket in
    /// `ready`, read and delivered (up to `max` deliveries; 0 for no limit).
    ///
    /// The host fd's doorbell stays raised while this runs, so that
    /// producers (the I/O thread above all) do not ring it again for what
    /// this round or the next will find anyway; it is lowered at the end,
    /// and raised again if events are left.
    fn host_round(&self, max: u32, ready: &[libc::epoll_event]) -> u32 {
        let budget = if max == 0 { u32::MAX } else { max };
        let mut callbacks = self.callback_lock.lock();
        let mut reader = self.host_reader.lock();
        let mut delivered = 0u32;
        if let Some(socket) = reader.leftover.take() {
            delivered += self.deliver_leftover(&socket, &mut reader, budget, &mut callbacks);
        }
        let queued = self.queued_events.load(SeqCst);
        delivered += self.run_events(queued, budget - delivered, &mut callbacks);
        for event in ready {
            if delivered >= budget || self.freed.load(SeqCst) {
                break;
            }
            let token = event.u64;
            if token == DOORBELL_TOKEN {
                continue;
            }
            let socket = self.sockets.lock().get(&token).cloned();
            if let Some(socket) = socket {
                delivered += self.read(&socket, &mut reader, budget - delivered, &mut callbacks);
            }
        }
        let left_over = reader.leftover.is_some();
        if !left_over {
            if let Some(batch) = reader.batch.take() {
                self.pool.give(batch);
            }
        }
        drop(reader);
        if self.pool.take_trim_request() {
            // Batches came back that the I/O thread will have to trim once
            // they rest; it may be waiting without a timeout.
            self.wake.ring();
        }
        if !self.freed.load(SeqCst) {
            // A producer that finds the doorbell raised has queued its
            // event before (see `Doorbell::lower`), and the check below
            // sees the event.
            if self.host.is_raised() {
                self.host.lower();
            }
            if left_over || self.queued_events.load(SeqCst) > 0 {
                self.host.ring();
            }
        }
        delivered
    }

    /// Delivers what a dispatch's `max` left in the reader's batch.
    fn deliver_leftover(
        &self,
        socket: &Arc<Socket>,
        reader: &mut Reader,
        budget: u32,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let Some(batch) = reader.batch.as_mut() else { return 0 };
        let delivered = match socket.current_handlers() {
            Some(admitted) => self.deliver(socket, admitted, batch, budget, &mut reader.rinfo, callbacks),
            None => {
                batch.clear();
                0
            }
        };
        if batch.remaining() > 0 {
            reader.leftover = Some(Arc::clone(socket));
        } else {
            batch.clear();
        }
        delivered
    }

    /// `dgram_context_dispatch`.
    pub fn dispatch(&self, max: u32) -> Result<u32> {
        if self.mode == Mode::IoThread {
            return self.io_mode_dispatch();
        }
        let _guard = self.enter_dispatch()?;
        let mut ready = [NO_EVENT; READY_PER_ROUND];
        let count = self.host_epoll.wait(&mut ready, 0).unwrap_or(0);
        let delivered = self.host_round(max, &ready[..count]);
        self.unless_freed(delivered)
    }

    /// `dgram_context_run`: waits for at least one event (or the timeout,
    /// -1 for none) and dispatches what is there. The wait is the host
    /// set's own, so what it reports is read at once.
    pub fn run(&self, timeout_ms: i32) -> Result<u32> {
        if self.mode == Mode::IoThread {
            return self.io_mode_dispatch();
        }
        let _guard = self.enter_dispatch()?;
        let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut ready = [NO_EVENT; READY_PER_ROUND];
        loop {
            if self.freed.load(SeqCst) {
                return Err(Errno::BADF);
            }
            if self.active() == 0 {
                return Ok(0);
            }
            // One wait per round, which returns at once when something is
            // ready already: what it reports is what the round reads.
            let wait_ms = match deadline {
                None => -1,
                // Rounded up, so that a sub-millisecond remainder still waits.
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                }
            };
            let count = self.host_epoll.wait(&mut ready, wait_ms).unwrap_or(0);
            let delivered = self.host_round(0, &ready[..count]);
            if delivered > 0 {
                return self.unless_freed(delivered);
            }
            // The round lowered the doorbell, which may have absorbed the
            // ring of a decrement to 0 on another thread: the check at the
            // top looks again before waiting (a decrement after that look
            // rings anew).
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return self.unless_freed(0);
            }
        }
    }

    /// In I/O-thread mode there is nothing to dispatch: 0, or `DGRAM_EBUSY`
    /// from inside a callback (on the I/O thread), as in host mode.
    fn io_mode_dispatch(&self) -> Result<u32> {
        if self.is_io_thread() {
            Err(Errno(DGRAM_EBUSY))
        } else {
            Ok(0)
        }
    }

    /// A callback may have freed the context: then the host must learn that
    /// its handle is gone, not how many events ran.
    fn unless_freed(&self, delivered: u32) -> Result<u32> {
        if self.freed.load(SeqCst) {
            Err(Errno::BADF)
        } else {
            Ok(delivered)
        }
    }

    fn enter_dispatch(&self) -> Result<DispatchGuard<'_>> {
        if self.freed.load(SeqCst) {
            return Err(Errno::BADF);
        }
        self.dispatching
            .compare_exchange(false, true, SeqCst, SeqCst)
            .map_err(|_| Errno(DGRAM_EBUSY))?;
        Ok(DispatchGuard(&self.dispatching))
    }
}

struct DispatchGuard<'a>(&'a AtomicBool);

impl Drop for DispatchGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}
