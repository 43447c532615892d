//! The I/O thread: one per context. It reads and delivers in I/O-thread
//! dispatch; in both modes it writes queued sends once their socket is
//! writable, watches paused readers again once memory may be had, and gives
//! back the memory of idle batches.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use super::{Context, Mode, Reader, DOORBELL_TOKEN, IO_THREAD_OF, NO_EVENT, READY_PER_ROUND};
use crate::sys::{EPOLLERR, EPOLLIN, EPOLLOUT};

impl Context {
    pub(super) fn io_thread_main(self: Arc<Self>) {
        IO_THREAD_OF.with(|c| c.set(Arc::as_ptr(&self) as usize));
        let mut ready = [NO_EVENT; READY_PER_ROUND];
        let mut reader = Reader::new();
        while !self.shutdown.load(SeqCst) {
            self.resume_paused();
            let count = match self.epoll.wait(&mut ready, self.io_wait_ms()) {
                Ok(count) => count,
                Err(_) => {
                    // Nothing sane to do but avoid a hot loop; epoll_wait only
                    // fails on programming errors (EBADF, EINVAL).
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            for event in &ready[..count] {
                let (flags, token) = (event.events, event.u64);
                if token == DOORBELL_TOKEN {
                    self.wake.lower();
                    continue;
                }
                let socket = self.sockets.lock().get(&token).cloned();
                let Some(socket) = socket else { continue };
                // A panic here must not take the whole host down with a dead
                // I/O thread; the socket's event is simply skipped.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // In host dispatch the host reads, errors included; this
                    // thread only writes.
                    let reads_here = self.mode == Mode::IoThread;
                    if reads_here && flags & (EPOLLIN | EPOLLERR) != 0 {
                        let mut callbacks = self.callback_lock.lock();
                        self.read(&socket, &mut reader, u32::MAX, &mut callbacks);
                    }
                    if flags & EPOLLOUT != 0 || reads_here && flags & EPOLLERR != 0 {
                        socket.flush(&self);
                    }
                }));
            }
            if self.shutdown.load(SeqCst) {
                break;
            }
            match self.mode {
                Mode::IoThread => {
                    // Callbacks may have queued more events (a send from a
                    // send callback): they run before this thread sleeps.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut callbacks = self.callback_lock.lock();
                        let queued = self.queued_events.load(SeqCst);
                        self.run_events(queued, u32::MAX, &mut callbacks);
                    }));
                    if let Some(batch) = reader.batch.take() {
                        self.pool.give(batch);
                    }
                    self.pool.take_trim_request();
                }
                Mode::Host => {
                    // One wake-up for the whole round's events.
                    if self.queued_events.load(SeqCst) > 0 {
                        self.host.ring();
                    }
                }
            }
        }
    }

    /// How long the I/O thread may sleep: not at all while events wait for
    /// it (I/O-thread mode), else until the next batch has rested long
    /// enough to trim or the pool's back-off ends for a paused reader.
    fn io_wait_ms(&self) -> i32 {
        if self.mode == Mode::IoThread && self.queued_events.load(SeqCst) > 0 {
            return 0;
        }
        let trim_in = self.pool.trim_due();
        let retry_in = self.pool.retry_in().filter(|_| self.paused_readers.load(SeqCst) > 0);
        match (trim_in, retry_in) {
            (None, None) => -1,
            (a, b) => {
                let wait = a.unwrap_or(Duration::MAX).min(b.unwrap_or(Duration::MAX));
                wait.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        }
    }
}
