//! The open family: `open`, `openat`, their `64` and fortified `__*_2`
//! variants, `creat`, `fopen`.
//!
//! `open` and `openat` are variadic in C: the `mode` argument exists only
//! with `O_CREAT` or `O_TMPFILE`. We declare it as a fixed trailing `mode_t`
//! and read it only under those flags. On x86-64 and aarch64 Linux a variadic
//! integer argument travels in the same register as a fixed one, so this is
//! exact there; other ABIs would need a C shim (docs/architecture.md).

use std::ffi::CStr;

use libc::{c_char, c_int, mode_t, FILE};

use super::{enosys, quietly, real};
use crate::guard::Guard;
use crate::tracker;

/// Whether an open with these flags can change the file.
pub(super) fn writes(flags: c_int) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_CREAT | libc::O_TRUNC) != 0
}

/// The mode argument, or 0 where the caller passed none.
fn mode_arg(flags: c_int, mode: mode_t) -> mode_t {
    if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE { mode } else { 0 }
}

/// The open flags `fopen` derives from its mode string.
pub(super) fn fopen_flags(mode: &CStr) -> c_int {
    let m = mode.to_bytes();
    let plus = m.contains(&b'+');
    match m.first() {
        Some(b'w') => (if plus { libc::O_RDWR } else { libc::O_WRONLY }) | libc::O_CREAT | libc::O_TRUNC,
        Some(b'a') => (if plus { libc::O_RDWR } else { libc::O_WRONLY }) | libc::O_CREAT | libc::O_APPEND,
        _ if plus => libc::O_RDWR,
        _ => libc::O_RDONLY,
    }
}

/// The common body of every open hook. `call` performs the real call;
/// `fd_of` extracts the descriptor from its result (negative on failure).
///
/// # Safety
/// `path` is null or a NUL-terminated string, as libc requires of callers.
unsafe fn tracked_open<R>(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    call: impl FnOnce() -> R,
    fd_of: impl FnOnce(&R) -> c_int,
) -> R {
    if !writes(flags) || path.is_null() || tracker::off() {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let cpath = unsafe { CStr::from_ptr(path) };
    let pending = quietly(|| tracker::open_before(dirfd, cpath, flags)).flatten();
    let result = call();
    if let Some(pending) = pending {
        let fd = fd_of(&result);
        quietly(|| tracker::open_after(pending, fd));
    }
    result
}

fn same(fd: &c_int) -> c_int {
    *fd
}

macro_rules! open_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            let mode = mode_arg(flags, mode);
            // SAFETY: arguments are passed through as the caller gave them.
            unsafe { tracked_open(libc::AT_FDCWD, path, flags, || real(path, flags, mode), same) }
        }
    };
}

macro_rules! openat_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            let mode = mode_arg(flags, mode);
            // SAFETY: arguments are passed through as the caller gave them.
            unsafe { tracked_open(dirfd, path, flags, || real(dirfd, path, flags, mode), same) }
        }
    };
}

open_hook!(open);
open_hook!(open64);
openat_hook!(openat);
openat_hook!(openat64);

macro_rules! fortified_open_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name (no mode: fortified callers
        /// use it only without `O_CREAT`/`O_TMPFILE`).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            // SAFETY: arguments are passed through as the caller gave them.
            unsafe { tracked_open(libc::AT_FDCWD, path, flags, || real(path, flags), same) }
        }
    };
}

macro_rules! fortified_openat_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            // SAFETY: arguments are passed through as the caller gave them.
            unsafe { tracked_open(dirfd, path, flags, || real(dirfd, path, flags), same) }
        }
    };
}

fortified_open_hook!(__open_2);
fortified_open_hook!(__open64_2);
fortified_openat_hook!(__openat_2);
fortified_openat_hook!(__openat64_2);

macro_rules! creat_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: mode_t) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
            // SAFETY: arguments are passed through as the caller gave them.
            unsafe { tracked_open(libc::AT_FDCWD, path, flags, || real(path, mode), same) }
        }
    };
}

creat_hook!(creat);
creat_hook!(creat64);

macro_rules! fopen_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: *const c_char) -> *mut FILE {
            let Some(real) = real::$name() else { return enosys(std::ptr::null_mut()) };
            let flags = if mode.is_null() {
                libc::O_RDONLY
            } else {
                // SAFETY: a non-null mode is a NUL-terminated string.
                fopen_flags(unsafe { CStr::from_ptr(mode) })
            };
            // SAFETY: arguments are passed through; fileno is called only on
            // a non-null FILE that fopen just returned.
            unsafe {
                tracked_open(libc::AT_FDCWD, path, flags, || real(path, mode), |fp| {
                    if fp.is_null() { -1 } else { libc::fileno(*fp) }
                })
            }
        }
    };
}

fopen_hook!(fopen);
fopen_hook!(fopen64);

/// The `mkstemp` family creates and opens a fresh file through libc's
/// internal `open`, which no hook sees; the template holds its name after.
///
/// # Safety
/// `template` is null or the NUL-terminated string the real call filled in.
unsafe fn tracked_mkstemp(template: *mut c_char, call: impl FnOnce() -> c_int) -> c_int {
    if template.is_null() || tracker::off() {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    let fd = call();
    if fd >= 0 {
        // SAFETY: on success the template is a NUL-terminated path.
        let path = unsafe { CStr::from_ptr(template) };
        quietly(|| tracker::created(libc::AT_FDCWD, path, fd));
    }
    fd
}

macro_rules! mkstemp_hook {
    ($name:ident ( $($arg:ident : $ty:ty),* )) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(template: *mut c_char $(, $arg: $ty)*) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            // SAFETY: arguments are passed through as the caller gave them.
            unsafe { tracked_mkstemp(template, || real(template $(, $arg)*)) }
        }
    };
}

mkstemp_hook!(mkstemp());
mkstemp_hook!(mkstemp64());
mkstemp_hook!(mkostemp(flags: c_int));
mkstemp_hook!(mkostemp64(flags: c_int));
mkstemp_hook!(mkstemps(suffixlen: c_int));
mkstemp_hook!(mkstemps64(suffixlen: c_int));
mkstemp_hook!(mkostemps(suffixlen: c_int, flags: c_int));
mkstemp_hook!(mkostemps64(suffixlen: c_int, flags: c_int));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_detection() {
        assert!(!writes(libc::O_RDONLY));
        assert!(!writes(libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW));
        assert!(writes(libc::O_WRONLY));
        assert!(writes(libc::O_RDWR));
        assert!(writes(libc::O_RDONLY | libc::O_CREAT));
        assert!(writes(libc::O_RDONLY | libc::O_TRUNC));
    }

    #[test]
    fn mode_only_with_creat_or_tmpfile() {
        assert_eq!(mode_arg(libc::O_WRONLY, 0o644), 0);
        assert_eq!(mode_arg(libc::O_WRONLY | libc::O_CREAT, 0o644), 0o644);
        assert_eq!(mode_arg(libc::O_RDWR | libc::O_TMPFILE, 0o600), 0o600);
        // O_DIRECTORY alone shares a bit with O_TMPFILE but is not it.
        assert_eq!(mode_arg(libc::O_RDONLY | libc::O_DIRECTORY, 0o600), 0);
    }

    #[test]
    fn fopen_modes() {
        assert_eq!(fopen_flags(c"r"), libc::O_RDONLY);
        assert_eq!(fopen_flags(c"rb"), libc::O_RDONLY);
        assert_eq!(fopen_flags(c"r+"), libc::O_RDWR);
        assert_eq!(fopen_flags(c"w"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
        assert_eq!(fopen_flags(c"a+"), libc::O_RDWR | libc::O_CREAT | libc::O_APPEND);
        assert_eq!(fopen_flags(c"we"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
    }
}
