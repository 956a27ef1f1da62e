//! Calls that change a file by its name: the `rename`, `unlink`/`remove`,
//! `link` and `truncate` families. `renameat2(RENAME_EXCHANGE)` swaps two
//! files and is passed through unrecorded (docs/architecture.md lists what
//! is not covered).

use std::ffi::CStr;

use libc::{c_char, c_int, c_uint, off64_t, off_t};

use super::{enosys, quietly, real};
use crate::guard::Guard;
use crate::tracker;

/// # Safety
/// `old` and `new` are null or NUL-terminated strings.
unsafe fn tracked_rename(olddir: c_int, old: *const c_char, newdir: c_int, new: *const c_char, call: impl FnOnce() -> c_int) -> c_int {
    if old.is_null() || new.is_null() || tracker::off() {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let (cold, cnew) = unsafe { (CStr::from_ptr(old), CStr::from_ptr(new)) };
    let pending = quietly(|| tracker::rename_before(olddir, cold, newdir, cnew)).flatten();
    let r = call();
    if let Some(p) = pending {
        quietly(|| tracker::rename_after(p, r == 0));
    }
    r
}

/// # Safety
/// As libc's `rename`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    let Some(real) = real::rename() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_rename(libc::AT_FDCWD, old, libc::AT_FDCWD, new, || real(old, new)) }
}

/// # Safety
/// As libc's `renameat`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn renameat(olddir: c_int, old: *const c_char, newdir: c_int, new: *const c_char) -> c_int {
    let Some(real) = real::renameat() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_rename(olddir, old, newdir, new, || real(olddir, old, newdir, new)) }
}

/// # Safety
/// As libc's `renameat2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn renameat2(olddir: c_int, old: *const c_char, newdir: c_int, new: *const c_char, flags: c_uint) -> c_int {
    let Some(real) = real::renameat2() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    let call = || unsafe { real(olddir, old, newdir, new, flags) };
    if flags & libc::RENAME_EXCHANGE != 0 {
        return call();
    }
    // SAFETY: passed through unchanged.
    unsafe { tracked_rename(olddir, old, newdir, new, call) }
}

/// # Safety
/// `path` is null or a NUL-terminated string.
unsafe fn tracked_unlink(dirfd: c_int, path: *const c_char, call: impl FnOnce() -> c_int) -> c_int {
    if path.is_null() || tracker::off() {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let cpath = unsafe { CStr::from_ptr(path) };
    let pending = quietly(|| tracker::unlink_before(dirfd, cpath)).flatten();
    let r = call();
    if let Some(p) = pending {
        quietly(|| tracker::unlink_after(p, r == 0));
    }
    r
}

/// # Safety
/// As libc's `unlink`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    let Some(real) = real::unlink() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_unlink(libc::AT_FDCWD, path, || real(path)) }
}

/// # Safety
/// As libc's `unlinkat`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let Some(real) = real::unlinkat() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    let call = || unsafe { real(dirfd, path, flags) };
    if flags & libc::AT_REMOVEDIR != 0 {
        return call();
    }
    // SAFETY: passed through unchanged.
    unsafe { tracked_unlink(dirfd, path, call) }
}

/// # Safety
/// As libc's `remove` (which unlinks files through libc-internal calls that
/// the `unlink` hook does not see).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn remove(path: *const c_char) -> c_int {
    let Some(real) = real::remove() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_unlink(libc::AT_FDCWD, path, || real(path)) }
}

/// # Safety
/// `path` is null or a NUL-terminated string.
unsafe fn tracked_truncate(path: *const c_char, call: impl FnOnce() -> c_int) -> c_int {
    if path.is_null() || tracker::off() {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let cpath = unsafe { CStr::from_ptr(path) };
    let pending = quietly(|| tracker::truncate_before(cpath)).flatten();
    let r = call();
    if let Some(p) = pending {
        quietly(|| tracker::truncate_after(p, r == 0));
    }
    r
}

/// # Safety
/// As libc's `truncate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn truncate(path: *const c_char, len: off_t) -> c_int {
    let Some(real) = real::truncate() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_truncate(path, || real(path, len)) }
}

/// # Safety
/// As libc's `truncate64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn truncate64(path: *const c_char, len: off64_t) -> c_int {
    let Some(real) = real::truncate64() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_truncate(path, || real(path, len)) }
}

/// # Safety
/// `new` is null or a NUL-terminated string.
unsafe fn tracked_link(newdir: c_int, new: *const c_char, call: impl FnOnce() -> c_int) -> c_int {
    if new.is_null() || tracker::off() {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let cnew = unsafe { CStr::from_ptr(new) };
    let pending = quietly(|| tracker::link_before(newdir, cnew)).flatten();
    let r = call();
    if let Some(p) = pending {
        quietly(|| tracker::link_after(p, r == 0));
    }
    r
}

/// # Safety
/// As libc's `link`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    let Some(real) = real::link() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_link(libc::AT_FDCWD, new, || real(old, new)) }
}

/// # Safety
/// As libc's `linkat` (also how an `O_TMPFILE` file gets its name).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn linkat(olddir: c_int, old: *const c_char, newdir: c_int, new: *const c_char, flags: c_int) -> c_int {
    let Some(real) = real::linkat() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    unsafe { tracked_link(newdir, new, || real(olddir, old, newdir, new, flags)) }
}
