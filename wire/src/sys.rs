//! Raw system calls (`syscall(2)`) that both the library and the collector
//! need for reading a file at one instant ([`crate::atomic`]). The library
//! must not go through libc's symbols, which it interposes (`fcntl`), so
//! these never do; the library's own layer (`preload/src/sys.rs`) builds on
//! them. Each function may clobber `errno`.

use libc::c_long;

/// An `errno` value.
pub type Errno = i32;

/// This thread's `errno`.
pub fn errno() -> Errno {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

// Linux's values (<asm-generic/fcntl.h>, <asm-generic/siginfo.h>), not
// all in the `libc` crate.
/// `fcntl` commands and an owner kind the `libc` crate lacks.
pub const F_SETSIG: i32 = 10;
pub const F_SETOWN_EX: i32 = 15;
pub const F_OWNER_TID: i32 = 0;
const POLL_MSG: i32 = 3;

/// `struct f_owner_ex`.
#[repr(C)]
pub struct OwnerEx {
    pub kind: i32,
    pub pid: i32,
}

/// The result of a raw call: its value, or `errno` when negative.
pub fn check(r: c_long) -> Result<c_long, Errno> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// `fstat` (as `newfstatat` with `AT_EMPTY_PATH`).
pub fn fstat(fd: i32) -> Result<libc::stat, Errno> {
    // SAFETY: all-zero is a valid `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the path is an empty NUL-terminated string, st a writable stat.
    let r = unsafe {
        libc::syscall(libc::SYS_newfstatat, fd as c_long, c"".as_ptr(), &mut st as *mut libc::stat, libc::AT_EMPTY_PATH)
    };
    check(r).map(|_| st)
}

/// `pread`, again after `EINTR`.
pub fn pread(fd: i32, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    loop {
        // SAFETY: buf is writable for buf.len() bytes.
        let r = unsafe {
            libc::syscall(libc::SYS_pread64, fd as c_long, buf.as_mut_ptr(), buf.len(), offset as libc::off_t)
        };
        match check(r) {
            Err(libc::EINTR) => continue,
            other => return other.map(|n| n as usize),
        }
    }
}

/// `fcntl` with an integer (or, cast, a pointer) argument.
pub fn fcntl(fd: i32, cmd: i32, arg: c_long) -> Result<c_long, Errno> {
    // SAFETY: the commands used take an int, or a pointer the caller keeps valid.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd as c_long, cmd as c_long, arg) })
}

/// `lseek(fd, 0, SEEK_DATA)`, for the inode lock it takes; the offset
/// is irrelevant (reads use `pread`).
pub fn seek_data(fd: i32) {
    // SAFETY: no memory is passed.
    unsafe { libc::syscall(libc::SYS_lseek, fd as c_long, 0 as c_long, libc::SEEK_DATA as c_long) };
}

/// The effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::syscall(libc::SYS_geteuid) as u32 }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Monotonic nanoseconds (the vDSO's `clock_gettime`).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// The kernel's sigset (64 signals) with `sig` alone.
fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

const SIGSET: c_long = 8;

/// Blocks `sig` in this thread; returns the previous mask.
pub fn block(sig: i32) -> Result<u64, Errno> {
    let set = bit(sig);
    let mut old = 0u64;
    // SAFETY: both sets are valid u64 kernel sigsets of SIGSET bytes.
    check(unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, &set as *const u64, &mut old as *mut u64, SIGSET)
    })?;
    Ok(old)
}

/// Sets this thread's signal mask.
pub fn set_mask(mask: u64) {
    // SAFETY: mask is a valid kernel sigset of SIGSET bytes.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            SIGSET,
        )
    };
}

/// Takes the lease-break signal about `fd` if one is pending (true);
/// other pending instances of `sig` are queued again.
pub fn take_lease_signal(sig: i32, fd: i32) -> bool {
    let set = bit(sig);
    let mut pending = 0u64;
    // SAFETY: pending is a writable kernel sigset.
    if unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut pending as *mut u64, SIGSET) } != 0 || pending & set == 0 {
        return false;
    }
    let mut ours = false;
    let mut others = Vec::new();
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    while others.len() < 64 {
        // SAFETY: all-zero is a valid siginfo_t.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: set, info and zero are valid for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigtimedwait,
                &set as *const u64,
                &mut info as *mut libc::siginfo_t,
                &zero as *const libc::timespec,
                SIGSET,
            )
        };
        if r != sig as c_long {
            break;
        }
        if info.si_code == POLL_MSG && si_fd(&info) == fd {
            ours = true;
        } else {
            others.push(info);
        }
    }
    for mut info in others {
        // SAFETY: info is a siginfo_t this process received; queued back to
        // the process, or (a kernel- or kill-sent one, which only the
        // thread itself may re-send) to this thread.
        unsafe {
            let pid = libc::syscall(libc::SYS_getpid);
            if libc::syscall(libc::SYS_rt_sigqueueinfo, pid, sig as c_long, &mut info as *mut libc::siginfo_t) != 0 {
                libc::syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    pid,
                    gettid() as c_long,
                    sig as c_long,
                    &mut info as *mut libc::siginfo_t,
                );
            }
        }
    }
    ours
}

/// `si_fd` of a `SIGPOLL`-style siginfo (after `si_band`).
fn si_fd(info: &libc::siginfo_t) -> i32 {
    #[repr(C)]
    struct Poll {
        signo: i32,
        errno: i32,
        code: i32,
        band: libc::c_long,
        fd: i32,
    }
    // SAFETY: siginfo_t is larger than Poll and starts with the same three ints.
    unsafe { (*(info as *const libc::siginfo_t as *const Poll)).fd }
}
