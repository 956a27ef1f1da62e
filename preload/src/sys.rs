//! Safe wrappers around the raw system calls the library makes on its own
//! behalf. They go through `syscall(2)`, never through libc's `open`/`close`
//! symbols, so the library cannot observe (or be confused by) its own I/O.
//! Callers restore `errno` at the hook edge; these functions may clobber it.
//! The calls the collector needs too (reading a file at one instant) are
//! `filetrail_wire::sys`'s, re-exported here.

use std::ffi::CStr;

use filetrail_wire::sys::check;
pub use filetrail_wire::sys::{Errno, errno, fstat, geteuid, now_ns, pread};
use libc::{c_int, c_long};

pub fn set_errno(e: Errno) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// A descriptor owned by the library, closed on drop.
pub struct Fd(c_int);

impl Fd {
    pub fn raw(&self) -> c_int {
        self.0
    }
    /// Gives up ownership without closing.
    pub fn into_raw(self) -> c_int {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        close(self.0);
    }
}

pub fn close(fd: c_int) {
    // SAFETY: closing a descriptor number has no memory-safety preconditions.
    unsafe { libc::syscall(libc::SYS_close, fd as c_long) };
}

pub fn openat(dirfd: c_int, path: &CStr, flags: c_int) -> Result<Fd, Errno> {
    // SAFETY: path is a valid NUL-terminated string for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_openat, dirfd as c_long, path.as_ptr(), flags as c_long, 0 as c_long) };
    check(r).map(|fd| Fd(fd as c_int))
}

pub fn fstatat(dirfd: c_int, path: &CStr, flags: c_int) -> Result<libc::stat, Errno> {
    // SAFETY: all-zero is a valid `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and st is a writable stat buffer.
    let r = unsafe {
        libc::syscall(libc::SYS_newfstatat, dirfd as c_long, path.as_ptr(), &mut st as *mut libc::stat, flags as c_long)
    };
    check(r).map(|_| st)
}

// Spool files (`spool.rs`): created, appended to, truncated back, locked.

/// `openat` with a creation mode (for `O_CREAT`).
pub fn create_at(dirfd: c_int, path: &CStr, flags: c_int, mode: u32) -> Result<Fd, Errno> {
    // SAFETY: path is a valid NUL-terminated string for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_openat, dirfd as c_long, path.as_ptr(), flags as c_long, mode as c_long) };
    check(r).map(|fd| Fd(fd as c_int))
}

/// Writes all of `parts` back to back (`writev`, again after a short
/// write). On error, some of the bytes may have been written.
pub fn write_parts(fd: c_int, parts: &[&[u8]]) -> Result<(), Errno> {
    let mut iov = iovecs(parts);
    let mut start = 0;
    while start < iov.len() {
        let count = (iov.len() - start).min(libc::UIO_MAXIOV as usize);
        // SAFETY: the iov entries point into `parts`, which outlive the call.
        let r = unsafe { libc::syscall(libc::SYS_writev, fd as c_long, iov[start..].as_ptr(), count as c_long) };
        let done = match check(r) {
            Ok(0) => return Err(libc::EIO),
            Ok(n) => n as usize,
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        };
        start = advance(&mut iov, start, done);
    }
    Ok(())
}

pub fn ftruncate(fd: c_int, len: u64) -> Result<(), Errno> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_ftruncate, fd as c_long, len as libc::off_t) }).map(drop)
}

/// `flock(fd, op)`; with `LOCK_NB` it never waits.
pub fn flock(fd: c_int, op: c_int) -> Result<(), Errno> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_flock, fd as c_long, op as c_long) }).map(drop)
}

/// (bytes free for unprivileged users, total bytes) of the file system of `fd`.
pub fn fs_space(fd: c_int) -> Result<(u64, u64), Errno> {
    // SAFETY: all-zero is a valid statfs.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is a writable statfs buffer.
    check(unsafe { libc::syscall(libc::SYS_fstatfs, fd as c_long, &mut st as *mut libc::statfs) })?;
    let bsize = st.f_bsize as u64;
    Ok((st.f_bavail as u64 * bsize, st.f_blocks as u64 * bsize))
}

/// Wall-clock nanoseconds since the epoch, from the vDSO.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

pub fn getpid() -> i32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

pub fn getcwd() -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is writable for buf.len() bytes.
    let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    // The raw syscall returns the length including the NUL.
    let len = usize::try_from(r).ok()?.checked_sub(1)?;
    buf.truncate(len);
    (buf.first() == Some(&b'/')).then_some(buf)
}

pub fn readlink(path: &CStr) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: path is NUL-terminated; buf is writable for buf.len() bytes.
    let r = unsafe {
        libc::syscall(libc::SYS_readlinkat, libc::AT_FDCWD as c_long, path.as_ptr(), buf.as_mut_ptr(), buf.len())
    };
    let len = usize::try_from(r).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// The directory a descriptor refers to, for `*at` calls.
pub fn fd_path(fd: c_int) -> Option<Vec<u8>> {
    let link = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    readlink(&link)
}

/// Duplicates `fd` to the lowest free number at or above `min`, close-on-exec.
pub fn dup_cloexec_at_least(fd: c_int, min: c_int) -> Result<Fd, Errno> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes an int argument.
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd as c_long, libc::F_DUPFD_CLOEXEC as c_long, min as c_long) };
    check(r).map(|fd| Fd(fd as c_int))
}

/// Sends all of `parts` back to back, in as few `sendmsg` calls as the
/// kernel allows (one, for frames that fit the socket buffer). Never blocks
/// in the kernel: when the buffer is full it calls `wait`, which waits for
/// room or fails (and so ends the send).
pub fn send_parts(fd: c_int, parts: &[&[u8]], mut wait: impl FnMut() -> Result<(), Errno>) -> Result<(), Errno> {
    let mut iov = iovecs(parts);
    let mut start = 0;
    while start < iov.len() {
        // SAFETY: all-zero is a valid msghdr; iov entries point into `parts`,
        // which outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov[start..].as_mut_ptr();
        msg.msg_iovlen = iov.len() - start;
        let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        // SAFETY: msg describes valid, readable buffers.
        let r = unsafe { libc::syscall(libc::SYS_sendmsg, fd as c_long, &msg as *const libc::msghdr, flags as c_long) };
        let sent = match check(r) {
            Ok(n) => n as usize,
            Err(libc::EINTR) => continue,
            Err(libc::EAGAIN) => {
                wait()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        start = advance(&mut iov, start, sent);
    }
    Ok(())
}

/// Receives what has arrived, up to `buf.len()` bytes; like [`send_parts`],
/// calls `wait` instead of blocking in the kernel.
pub fn recv(fd: c_int, buf: &mut [u8], mut wait: impl FnMut() -> Result<(), Errno>) -> Result<usize, Errno> {
    loop {
        // SAFETY: buf is writable for buf.len() bytes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_recvfrom,
                fd as c_long,
                buf.as_mut_ptr(),
                buf.len(),
                libc::MSG_DONTWAIT as c_long,
                std::ptr::null_mut::<libc::sockaddr>(),
                std::ptr::null_mut::<libc::socklen_t>(),
            )
        };
        match check(r) {
            Err(libc::EINTR) => continue,
            Err(libc::EAGAIN) => wait()?,
            other => return other.map(|n| n as usize),
        }
    }
}

/// Says no more will be sent on the socket (`SHUT_WR`): the peer reads
/// end-of-file once it has read what came before.
pub fn shutdown_write(fd: c_int) {
    // SAFETY: shutting down a descriptor has no memory-safety preconditions.
    unsafe { libc::syscall(libc::SYS_shutdown, fd as c_long, libc::SHUT_WR as c_long) };
}

/// Waits up to `timeout_ns` for `fd` to be ready for `events` (`POLLIN`,
/// `POLLOUT`); false when the time ran out. Errors and hang-ups count as
/// ready: the next call on the socket reports them.
pub fn poll(fd: c_int, events: i16, timeout_ns: u64) -> Result<bool, Errno> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let mut ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as c_long,
    };
    // SAFETY: pfd is one valid pollfd and ts a valid timespec (the raw call
    // writes the time left into it); no signal mask.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            &mut pfd as *mut libc::pollfd,
            1 as c_long,
            &mut ts as *mut libc::timespec,
            std::ptr::null::<libc::sigset_t>(),
            0 as c_long,
        )
    };
    check(r).map(|n| n > 0)
}

/// The effective uid of whoever set up the listening end of the connected
/// Unix socket `fd` (fixed by the kernel at their `listen()`).
pub fn peer_uid(fd: c_int) -> Result<u32, Errno> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred is a writable ucred and len holds its size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(libc::EINVAL);
    }
    Ok(cred.uid)
}

/// A connected, close-on-exec Unix stream socket to `path`. `connect`
/// waits at most `timeout_ns` for room in a full backlog (it obeys the send
/// timeout; sends and receives never block on it, see [`send_parts`]).
pub fn connect_unix(path: &[u8], timeout_ns: u64) -> Result<Fd, Errno> {
    // SAFETY: socket has no memory preconditions.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(errno());
    }
    let fd = Fd(raw);
    // A zero timeval would mean "no timeout": at least 1 µs.
    let tv = libc::timeval {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_usec: (timeout_ns % 1_000_000_000 / 1000).max(1) as libc::suseconds_t,
    };
    // SAFETY: tv is a valid timeval of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.raw(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err(libc::ENAMETOOLONG);
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(path) {
        *dst = *src as libc::c_char;
    }
    loop {
        // SAFETY: addr is a valid sockaddr_un of the size passed.
        let r = unsafe {
            libc::connect(
                fd.raw(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        match r {
            0 => return Ok(fd),
            _ if errno() == libc::EINTR => continue,
            _ => return Err(errno()),
        }
    }
}

/// Eight random bytes from the kernel (`getrandom`, never blocking);
/// `None` before the pool is ready.
pub fn random_u64() -> Option<u64> {
    let mut b = [0u8; 8];
    // SAFETY: b is writable for 8 bytes.
    let r = unsafe { libc::syscall(libc::SYS_getrandom, b.as_mut_ptr(), b.len(), libc::GRND_NONBLOCK as c_long) };
    (r == 8).then(|| u64::from_ne_bytes(b))
}

/// Writes a diagnostic line to stderr (only used under FILETRAIL_DEBUG).
pub fn debug_line(msg: &str) {
    let line = format!("filetrail[{}]: {msg}\n", getpid());
    // SAFETY: line is readable for its length.
    unsafe { libc::syscall(libc::SYS_write, 2 as c_long, line.as_ptr(), line.len()) };
}

/// The value of environment variable `name`, read once by the caller.
pub fn env(name: &CStr) -> Option<Vec<u8>> {
    // SAFETY: getenv reads the environment; the result is copied at once.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    // SAFETY: a non-null getenv result is a NUL-terminated string.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
}
/// One iovec per non-empty part (the pointers borrow `parts`).
fn iovecs(parts: &[&[u8]]) -> Vec<libc::iovec> {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() })
        .collect()
}

/// Skips `done` bytes of `iov[start..]` (whole buffers, then part of one);
/// returns the new start.
fn advance(iov: &mut [libc::iovec], mut start: usize, mut done: usize) -> usize {
    while start < iov.len() && done >= iov[start].iov_len {
        done -= iov[start].iov_len;
        start += 1;
    }
    if done > 0 {
        let v = &mut iov[start];
        // SAFETY: done < iov_len, so the advanced pointer stays in the buffer.
        v.iov_base = unsafe { (v.iov_base as *mut u8).add(done) } as *mut libc::c_void;
        v.iov_len -= done;
    }
    start
}
