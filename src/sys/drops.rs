//! The kernel's count of datagrams a socket dropped.

use std::os::fd::RawFd;

/// The kernel's count of datagrams dropped because `fd`'s receive buffer
/// was full (sk_drops, the counter SO_RXQ_OVFL reports), read with
/// SO_MEMINFO; where that option is not available (qemu-user does not pass
/// it through), from the socket's line in /proc/net/udp or udp6. 0 when
/// neither tells.
pub fn socket_drops(fd: RawFd) -> u32 {
    meminfo_drops(fd).or_else(|| proc_net_drops(fd)).unwrap_or(0)
}

fn meminfo_drops(fd: RawFd) -> Option<u32> {
    // asm-generic/socket.h, which x86, ARM and AArch64 use; libc does not
    // export it for these targets.
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; SK_MEMINFO_DROPS + 1];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info` and updates `len`.
    let ret = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_MEMINFO, info.as_mut_ptr().cast(), &mut len) };
    (ret == 0 && len as usize >= std::mem::size_of_val(&info)).then_some(info[SK_MEMINFO_DROPS])
}

fn proc_net_drops(fd: RawFd) -> Option<u32> {
    // SAFETY: struct stat is plain data, all zeroes valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one struct stat, which lives for the call.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let inode = st.st_ino.to_string();
    ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"]
        .iter()
        .find_map(|path| {
            let table = std::fs::read_to_string(path).ok()?;
            // Columns: sl local rem st queues tr retrnsmt uid timeout inode ref pointer drops.
            table.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(9) == Some(&inode.as_str())).then(|| fields.get(12)?.parse().ok())?
            })
        })
}
