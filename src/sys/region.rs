//! The mmap'd `Region`: receive memory that costs only what is written.

use std::io;

/// Anonymous memory straight from mmap: address space reserved up front,
/// pages made resident only when first written. Used for receive slots, so
/// that a batch of large slots costs only what its datagrams touch, whatever
/// the allocator would do with a large zeroed allocation.
pub struct Region {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a Region is plain memory owned by exactly one value; it is only
// reached through `&self`/`&mut self`, so the usual borrow rules apply.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    pub fn new(len: usize) -> io::Result<Region> {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Region { ptr, len })
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable (zero-filled until written) for
        // as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Gives the region's pages back to the system: they read as zeros
    /// again and cost no resident memory until next written.
    pub fn release(&mut self) {
        // SAFETY: the range is exactly this mapping, which `&mut self` keeps
        // unborrowed; MADV_DONTNEED on a private anonymous mapping only
        // drops its contents, which the next user writes before reading.
        unsafe {
            libc::madvise(self.ptr.as_ptr().cast(), self.len, libc::MADV_DONTNEED);
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; nothing borrows it
        // any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
