//! The core's C ABI: the entry points the shim (`preload/shim/filetrail.c`)
//! calls around the real libc calls. The only place in the core that takes
//! raw pointers from C.
//!
//! Every entry point: turns pointers into safe values, runs the tracker
//! under `catch_unwind`, and leaves `errno` as it found it. A "before" entry
//! point returns an opaque handle (a boxed pending operation, or null); the
//! shim passes it, exactly once, to the matching "after" entry point, which
//! frees it.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::sys;
use crate::tracker::{
    self, CloseAction, Closing, PendingAttrib, PendingDelete, PendingOpen, PendingRename, PendingTruncate,
};

/// Runs tracker logic: panics are caught, errno is left as it was.
fn quietly<R>(f: impl FnOnce() -> R) -> Option<R> {
    let saved = sys::errno();
    let r = catch_unwind(AssertUnwindSafe(f)).ok();
    sys::set_errno(saved);
    r
}

fn handle<T>(value: Option<Option<T>>) -> *mut c_void {
    match value.flatten() {
        Some(v) => Box::into_raw(Box::new(v)).cast(),
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// `h` is null or a handle made by [`handle::<T>`] and not yet taken.
unsafe fn take<T>(h: *mut c_void) -> Option<T> {
    // SAFETY: per the contract above, h came from Box::into_raw of a T.
    (!h.is_null()).then(|| *unsafe { Box::from_raw(h.cast::<T>()) })
}

/// # Safety
/// `p` is null or a NUL-terminated string valid for the call.
unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: per the contract above.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_at_exit() {
    quietly(tracker::at_exit);
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_off() -> c_int {
    tracker::off() as c_int
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_may_track_close(fd: c_int) -> c_int {
    tracker::may_track_close(fd) as c_int
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_may_track_range(first: c_uint, last: c_uint) -> c_int {
    tracker::may_track_range(first, last) as c_int
}

/// # Safety
/// `path` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_open_before(dirfd: c_int, path: *const c_char, flags: c_int) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(path) = (unsafe { cstr(path) }) else { return std::ptr::null_mut() };
    handle(quietly(|| tracker::open_before(dirfd, path, flags)))
}

/// # Safety
/// `pending` comes from `ft_open_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_open_after(pending: *mut c_void, fd: c_int) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { take::<PendingOpen>(pending) } {
        quietly(|| tracker::open_after(p, fd));
    }
}

/// # Safety
/// `path` is null or the NUL-terminated name a `mkstemp`-like call filled in.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_created(dirfd: c_int, path: *const c_char, fd: c_int) {
    // SAFETY: forwarded contract.
    if let Some(path) = unsafe { cstr(path) } {
        quietly(|| tracker::created(dirfd, path, fd));
    }
}

/// 1 when the program closed the library's own socket (the shim then
/// answers EBADF without calling libc), else 0; `*closing` is set to a
/// handle for `ft_closed` (after the real `close`) or null.
///
/// # Safety
/// `closing` points to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_close_before(fd: c_int, closing: *mut *mut c_void) -> c_int {
    let (action, handle_) = match quietly(|| tracker::before_close(fd)) {
        Some(CloseAction::NotOpen) => (1, std::ptr::null_mut()),
        Some(CloseAction::RealThen(c)) => (0, handle(Some(Some(c)))),
        Some(CloseAction::Real) | None => (0, std::ptr::null_mut()),
    };
    // SAFETY: per the contract above.
    unsafe { *closing = handle_ };
    action
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_fclose_before(fd: c_int) -> *mut c_void {
    handle(quietly(|| tracker::before_fclose(fd)))
}

/// # Safety
/// `closing` comes from `ft_fclose_before` or `ft_close_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_closed(closing: *mut c_void) {
    // SAFETY: forwarded contract.
    if let Some(c) = unsafe { take::<Closing>(closing) } {
        quietly(|| tracker::after_close(c));
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_replace_before(old: c_int, new: c_int) {
    quietly(|| tracker::before_replace(old, new));
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_dup_after(old: c_int, new: c_int) {
    quietly(|| tracker::after_dup(old, new));
}

#[unsafe(no_mangle)]
pub extern "C" fn ft_close_range_before(first: c_uint, last: c_uint) {
    quietly(|| tracker::before_close_range(first, last));
}

/// # Safety
/// `old` and `new` are null or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_rename_before(
    olddir: c_int,
    old: *const c_char,
    newdir: c_int,
    new: *const c_char,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    let (Some(old), Some(new)) = (unsafe { cstr(old) }, unsafe { cstr(new) }) else { return std::ptr::null_mut() };
    handle(quietly(|| tracker::rename_before(olddir, old, newdir, new)))
}

/// # Safety
/// `pending` comes from `ft_rename_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_rename_after(pending: *mut c_void, ok: c_int) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { take::<PendingRename>(pending) } {
        quietly(|| tracker::rename_after(p, ok != 0));
    }
}

/// # Safety
/// `path` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_unlink_before(dirfd: c_int, path: *const c_char) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(path) = (unsafe { cstr(path) }) else { return std::ptr::null_mut() };
    handle(quietly(|| tracker::unlink_before(dirfd, path)))
}

/// # Safety
/// `pending` comes from `ft_unlink_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_unlink_after(pending: *mut c_void, ok: c_int) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { take::<PendingDelete>(pending) } {
        quietly(|| tracker::unlink_after(p, ok != 0));
    }
}

/// # Safety
/// `path` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_truncate_before(path: *const c_char) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(path) = (unsafe { cstr(path) }) else { return std::ptr::null_mut() };
    handle(quietly(|| tracker::truncate_before(path)))
}

/// # Safety
/// `pending` comes from `ft_truncate_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_truncate_after(pending: *mut c_void, ok: c_int) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { take::<PendingTruncate>(pending) } {
        quietly(|| tracker::truncate_after(p, ok != 0));
    }
}

/// # Safety
/// `new` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_link_before(newdir: c_int, new: *const c_char) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(new) = (unsafe { cstr(new) }) else { return std::ptr::null_mut() };
    handle(quietly(|| tracker::link_before(newdir, new)))
}

/// # Safety
/// `pending` comes from `ft_link_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_link_after(pending: *mut c_void, ok: c_int) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { take::<(Vec<u8>, u64)>(pending) } {
        quietly(|| tracker::link_after(p, ok != 0));
    }
}

/// Before `chmod`/`chown` and their variants. `path` null: the call acts on
/// descriptor `dirfd` (`fchmod`, `fchown`); `flags` are the `*at` flags
/// (`AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`).
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_attrib_before(dirfd: c_int, path: *const c_char, flags: c_int) -> *mut c_void {
    // SAFETY: forwarded contract.
    let path = unsafe { cstr(path) };
    handle(quietly(|| tracker::attrib_before(dirfd, path, flags)))
}

/// # Safety
/// `pending` comes from `ft_attrib_before`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ft_attrib_after(pending: *mut c_void, ok: c_int) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { take::<PendingAttrib>(pending) } {
        quietly(|| tracker::attrib_after(p, ok != 0));
    }
}
