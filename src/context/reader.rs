//! Reading and delivering: a socket's datagrams read with recvmmsg and
//! handed to its message callback straight from the read, on the thread
//! that reads (the dispatching host thread, or the I/O thread).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use parking_lot::ReentrantMutexGuard;

use super::{handle_of, Context, READS_PER_ROUND};
use crate::batch::{RecvBatch, GRO_MAX_SEGMENTS, SLOT_SIZE};
use crate::event::{deliver_message, RinfoCache};
use crate::socket::{Admitted, Socket};
use crate::sys::RecvMmsg;

/// The reading gear of the one thread that reads (the dispatching host
/// thread, or the I/O thread), reused for every read.
pub(super) struct Reader {
    pub(super) mmsg: Box<RecvMmsg>,
    /// The batch reads go into; taken from the pool on the first read of
    /// a round and given back at its end.
    pub(super) batch: Option<Box<RecvBatch>>,
    /// The socket whose datagrams are left in `batch` when a dispatch's
    /// `max` cut a split GRO buffer short: they go first next time.
    pub(super) leftover: Option<Arc<Socket>>,
    /// The last datagram source given to the host, formatted: one per
    /// reading thread, as only that thread delivers.
    pub(super) rinfo: RinfoCache,
}

impl Reader {
    pub(super) fn new() -> Reader {
        Reader {
            mmsg: RecvMmsg::new(),
            batch: None,
            leftover: None,
            rinfo: RinfoCache::default(),
        }
    }
}

impl Context {
    /// Reads what `socket` has, a batch per recvmmsg, and delivers each
    /// batch at once from its slots, on this thread: at most `budget`
    /// datagrams, and at most `READS_PER_ROUND` reads. Events queued before
    /// a read's datagrams arrived are run before they are delivered, so
    /// that a socket's 'listening' or a send's completion comes before the
    /// datagrams that follow it. Returns how many events and datagrams were
    /// delivered.
    ///
    /// With no batch to be had (no memory), the socket is not watched for
    /// datagrams until the pool's back-off ends: they wait in the kernel's
    /// buffer meanwhile, and what overflows it the kernel drops and counts.
    pub(super) fn read(
        &self,
        socket: &Arc<Socket>,
        reader: &mut Reader,
        budget: u32,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let mut delivered = 0u32;
        for _ in 0..READS_PER_ROUND {
            if delivered >= budget || self.freed.load(SeqCst) {
                return delivered;
            }
            if reader.batch.is_none() {
                reader.batch = self.pool.take();
            }
            let Reader {
                mmsg,
                batch,
                leftover,
                rinfo,
            } = reader;
            let Some(batch) = batch.as_mut() else {
                // A pending socket error would keep the socket ready
                // (EPOLLERR cannot be masked) while it is paused: report
                // it now, as the read would have.
                if let Some(err) = socket.take_error() {
                    socket.report_receive_error(self, &err);
                }
                self.pause(socket);
                return delivered;
            };
            // The mode is taken per read, and holds until the read is
            // accepted: turning GRO on waits for a read in flight (see
            // `Socket::set_offload`).
            let Some(reading) = socket.begin_read() else {
                return delivered;
            };
            let (fd, mode) = (reading.fd(), reading.mode());
            // As many slots as the socket's recent reads suggest: reads cost
            // the same natively either way, but tools that check every
            // iovec byte (valgrind) pay for each offered slot.
            // A GRO buffer is many datagrams: fewer slots, so that they all
            // fit the batch.
            let room = self.read_limit.min(budget - delivered) as usize;
            let slots = match mode.gro {
                false => room.min(socket.read_hint()),
                true => (room / GRO_MAX_SEGMENTS).clamp(1, mode.max_slots()),
            };
            match mmsg.recv(fd.as_raw_fd(), batch.slots_mut(), SLOT_SIZE, slots, mode.control()) {
                Ok(n) => {
                    socket.update_read_hint(n, slots);
                    // Without control messages every slot is one datagram,
                    // delivered straight from the read's own records;
                    // otherwise the batch splits GRO buffers and keeps
                    // each datagram's metadata.
                    let count = if mode.control() { batch.fill(mmsg, n, mode) } else { n };
                    let admitted = reading.accept(count);
                    // Whatever happened before these datagrams arrived was
                    // queued by now: a socket queues its events under the
                    // lock `accept` took.
                    let queued = self.queued_events.load(SeqCst);
                    if queued > 0 {
                        delivered += self.run_events(queued, budget - delivered, callbacks);
                    }
                    // Events may have taken budget the read was sized for:
                    // then the batch records the datagrams, and what the
                    // budget leaves is kept for the next round.
                    let plain = !mode.control() && n <= (budget - delivered) as usize;
                    if !mode.control() && !plain {
                        batch.fill(mmsg, n, mode);
                    }
                    match (admitted, plain) {
                        (Some(admitted), true) => {
                            let budget = budget - delivered;
                            delivered += self.deliver_read(socket, admitted, mmsg, batch, n, budget, rinfo, callbacks);
                        }
                        (Some(admitted), false) => {
                            delivered += self.deliver(socket, admitted, batch, budget - delivered, rinfo, callbacks);
                        }
                        (None, _) => batch.clear(),
                    }
                    if batch.remaining() > 0 {
                        // A split GRO buffer that `budget` cut short.
                        *leftover = Some(Arc::clone(socket));
                        return delivered;
                    }
                    batch.clear();
                    if n < slots {
                        return delivered; // The socket is drained.
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return delivered,
                Err(err) => {
                    drop(reading);
                    socket.report_receive_error(self, &err);
                    return delivered;
                }
            }
        }
        delivered
    }

    /// Calls the message callback for the `count` datagrams (at most
    /// `budget`) that the read recorded in `mmsg`, one per slot of `batch`,
    /// as `deliver` does for a filled batch: the common case, read without
    /// control messages, taken without copying a record per datagram.
    #[allow(clippy::too_many_arguments)]
    fn deliver_read(
        &self,
        socket: &Arc<Socket>,
        mut admitted: Admitted,
        mmsg: &RecvMmsg,
        batch: &RecvBatch,
        count: usize,
        budget: u32,
        rinfo: &mut RinfoCache,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let slots = batch.slots();
        let now = count.min(budget as usize);
        for i in 0..now {
            if !self.still_admitted(socket, &mut admitted) {
                return i as u32;
            }
            let start = i * SLOT_SIZE;
            let data = &slots[start..start + mmsg.len(i).min(SLOT_SIZE)];
            let from = rinfo.get_raw(mmsg.source_key(i), || mmsg.source(i));
            // Counted before the callback, so that stats read inside it include it.
            socket.count_received(data.len());
            deliver_message(handle_of(socket), &admitted.handlers, data, from, None);
            ReentrantMutexGuard::bump(callbacks);
        }
        now as u32
    }

    /// Calls the message callback for up to `budget` datagrams of `batch`,
    /// all of `socket`, admitted with `admitted`. A handler change or a
    /// close, from inside a callback or from another thread between two
    /// callbacks, shows in the socket's epoch, and only then is it asked
    /// again; once it is closed (or the context freed) the rest of the
    /// batch is nobody's and is cleared. The callback lock is yielded after
    /// each callback, as in `run_events`.
    pub(super) fn deliver(
        &self,
        socket: &Arc<Socket>,
        mut admitted: Admitted,
        batch: &mut RecvBatch,
        budget: u32,
        rinfo: &mut RinfoCache,
        callbacks: &mut ReentrantMutexGuard<'_, ()>,
    ) -> u32 {
        let now = batch.remaining().min(budget as usize);
        let mut done = 0;
        while done < now {
            if !self.still_admitted(socket, &mut admitted) {
                batch.clear();
                return done as u32;
            }
            let (data, from, meta) = batch.peek_at(done);
            // Counted before the callback, so that stats read inside it include it.
            socket.count_received(data.len());
            deliver_message(handle_of(socket), &admitted.handlers, data, rinfo.get(from), meta);
            done += 1;
            ReentrantMutexGuard::bump(callbacks);
        }
        batch.advance(done);
        done as u32
    }

    /// Whether `socket` may still be delivered to, refreshing `admitted`
    /// when its epoch changed (a handler change, a close or a free, from a
    /// callback or another thread): false once it is closed or freed. A
    /// free of the context silences the socket, which changes its epoch
    /// too, so an unchanged epoch needs no other look.
    #[inline]
    fn still_admitted(&self, socket: &Socket, admitted: &mut Admitted) -> bool {
        if socket.epoch() == admitted.epoch {
            return true;
        }
        match socket.current_handlers().filter(|_| !self.freed.load(SeqCst)) {
            Some(fresh) => {
                *admitted = fresh;
                true
            }
            None => false,
        }
    }

    /// See `read`: the reader found no memory for a batch.
    fn pause(&self, socket: &Arc<Socket>) {
        // Room first, without aborting: this runs when memory is short. A
        // socket that cannot be listed stays watched, and is tried again.
        if self.paused.lock().try_reserve(1).is_err() {
            return;
        }
        if socket.pause_reading(self) {
            self.paused.lock().push(Arc::clone(socket));
            self.paused_readers.fetch_add(1, SeqCst);
            // The I/O thread resumes it, and may be waiting without a timeout.
            self.wake.ring();
        }
    }

    /// Watches the paused sockets again once the pool may map a batch.
    pub(super) fn resume_paused(&self) {
        if self.paused_readers.load(SeqCst) == 0 || !self.pool.has_free() {
            return;
        }
        let sockets = std::mem::take(&mut *self.paused.lock());
        self.paused_readers.fetch_sub(sockets.len(), SeqCst);
        for socket in sockets {
            socket.resume_reading(self);
        }
    }
}
