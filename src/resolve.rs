//! Host name lookups, off every other thread: one resolver thread per
//! context, started on the first lookup, runs getaddrinfo (which may block
//! for seconds on a slow DNS server) and hands each answer to the callback
//! that came with the name. Neither the caller of bind/send/connect nor the I/O thread ever
//! waits for a lookup.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::addr::Family;
use crate::error::{DGRAM_EAI_AGAIN, DGRAM_ENOMEM, DGRAM_ENOTFOUND};
/// The answer to a lookup: an address, or a `DGRAM_E*` code.
pub type Answer = Result<IpAddr, i32>;

/// One name to look up, and where its answer goes (on the resolver thread).
pub struct Lookup {
    pub name: CString,
    pub family: Family,
    pub answer: Box<dyn FnOnce(Answer) + Send>,
}

#[derive(Default)]
struct Shared {
    jobs: Mutex<VecDeque<Lookup>>,
    wake: Condvar,
    stop: AtomicBool,
    /// A lookup is running: the thread may be inside getaddrinfo.
    busy: AtomicBool,
}

#[derive(Default)]
pub struct Resolver {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Resolver {
    /// Queues a lookup; the answer goes to its callback on the
    /// resolver thread. Fails only when the thread cannot be started.
    pub fn request(&self, lookup: Lookup) -> std::io::Result<()> {
        let mut thread = self.thread.lock();
        if self.shared.stop.load(SeqCst) {
            return Ok(()); // The context is going: nobody waits for the answer.
        }
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            *thread = Some(
                std::thread::Builder::new()
                    .name("dgram-resolve".into())
                    .spawn(move || resolver_main(&shared))?,
            );
        }
        self.shared.jobs.lock().push_back(lookup);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Stops the thread. It is joined when idle; inside getaddrinfo it is
    /// left to finish on its own (it holds nothing of the context's, only
    /// weak references to sockets), so that freeing a context never waits
    /// for a DNS timeout.
    pub fn shut_down(&self) {
        self.shared.stop.store(true, SeqCst);
        {
            let _jobs = self.shared.jobs.lock();
            self.shared.wake.notify_all();
        }
        let Some(handle) = self.thread.lock().take() else {
            return;
        };
        // Never called on the resolver thread itself: no callback runs there,
        // and the context's last reference is never dropped there with the
        // context not yet shut down.
        if self.shared.busy.load(SeqCst) {
            drop(handle);
        } else {
            let _ = handle.join();
        }
    }
}

fn resolver_main(shared: &Shared) {
    loop {
        let job = {
            let mut jobs = shared.jobs.lock();
            loop {
                if shared.stop.load(SeqCst) {
                    return;
                }
                if let Some(job) = jobs.pop_front() {
                    shared.busy.store(true, SeqCst);
                    break job;
                }
                shared.wake.wait(&mut jobs);
            }
        };
        let answer = lookup(&job.name, job.family);
        // A panic must not end the thread with other lookups waiting.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.answer)(answer)));
        shared.busy.store(false, SeqCst);
    }
}

/// The first address of `family` that `name` resolves to, or a `DGRAM_E*`
/// code: `DGRAM_EAI_AGAIN` for a temporary failure, `DGRAM_ENOTFOUND` for
/// any other.
///
/// Tested from C (c-tests/test_hostnames.c): only inside network and mount
/// namespaces with their own /etc/hosts is a lookup sure never to leave the
/// machine, so no unit test here looks anything up.
pub fn lookup(name: &CStr, family: Family) -> Answer {
    // SAFETY: addrinfo is plain C data; all zeroes is "no hints".
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match family {
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    hints.ai_socktype = libc::SOCK_DGRAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated, `hints` and `list` live for the
    // call; on success `list` is freed below, exactly once.
    let ret = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if ret != 0 {
        return Err(match ret {
            libc::EAI_AGAIN => DGRAM_EAI_AGAIN,
            libc::EAI_MEMORY => DGRAM_ENOMEM,
            _ => DGRAM_ENOTFOUND,
        });
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() && found.is_none() {
        // SAFETY: `entry` is a node of the list getaddrinfo returned, not yet freed.
        let info = unsafe { &*entry };
        found = address_of(info, family);
        entry = info.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(list) };
    found.ok_or(DGRAM_ENOTFOUND)
}

fn address_of(info: &libc::addrinfo, family: Family) -> Option<IpAddr> {
    if info.ai_addr.is_null() {
        return None;
    }
    match (family, info.ai_family) {
        (Family::V4, libc::AF_INET) if info.ai_addrlen as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family and length say `ai_addr` is a sockaddr_in.
            let sin = unsafe { info.ai_addr.cast::<libc::sockaddr_in>().read_unaligned() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        (Family::V6, libc::AF_INET6) if info.ai_addrlen as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { info.ai_addr.cast::<libc::sockaddr_in6>().read_unaligned() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}
