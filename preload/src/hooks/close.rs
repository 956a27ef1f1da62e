//! Descriptor lifetime: `close`, `fclose`, `close_range`, `closefrom`,
//! `freopen`, and the `dup` family including `fcntl(F_DUPFD*)`, which let
//! one tracked open live on under other numbers. (`fdopen` needs no hook:
//! tracking follows the descriptor, and `fclose` is hooked. `ftruncate`
//! needs none either: it acts on a descriptor whose open is already a
//! version, and the last close records the result.)
//!
//! `fcntl` is variadic; its optional third argument is an `int` or a pointer,
//! both passed in the same integer register on x86-64 and aarch64, so it is
//! declared as `c_ulong` and handed through unchanged.

use std::ffi::CStr;

use libc::{c_char, c_int, c_uint, c_ulong, FILE};

use super::{enosys, quietly, real};
use crate::guard::Guard;
use crate::tracker::{self, CloseAction};

/// # Safety
/// As libc's `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let Some(real) = real::close() else { return enosys(-1) };
    if !tracker::may_track_close(fd) {
        // SAFETY: passed through unchanged.
        return unsafe { real(fd) };
    }
    let Some(_guard) = Guard::enter() else {
        // SAFETY: passed through unchanged.
        return unsafe { real(fd) };
    };
    match quietly(|| tracker::before_close(fd)) {
        Some(CloseAction::NotOpen) => {
            crate::sys::set_errno(libc::EBADF);
            -1
        }
        // SAFETY: passed through unchanged.
        _ => unsafe { real(fd) },
    }
}

/// # Safety
/// As libc's `fclose`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fclose(fp: *mut FILE) -> c_int {
    let Some(real) = real::fclose() else { return enosys(libc::EOF) };
    // SAFETY: fileno only reads a FILE the caller says is open.
    let fd = if fp.is_null() { -1 } else { unsafe { libc::fileno(fp) } };
    if fd < 0 || !tracker::may_track_close(fd) {
        // SAFETY: passed through unchanged.
        return unsafe { real(fp) };
    }
    let Some(_guard) = Guard::enter() else {
        // SAFETY: passed through unchanged.
        return unsafe { real(fp) };
    };
    let closing = quietly(|| tracker::before_fclose(fd)).flatten();
    // SAFETY: passed through unchanged.
    let r = unsafe { real(fp) };
    if let Some(c) = closing {
        quietly(|| tracker::after_fclose(c));
    }
    r
}

/// # Safety
/// As libc's `dup`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let Some(real) = real::dup() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    let new = unsafe { real(fd) };
    observe_dup(fd, new);
    new
}

fn observe_dup(old: c_int, new: c_int) {
    if new >= 0 && tracker::may_track_close(old) {
        if let Some(_guard) = Guard::enter() {
            quietly(|| tracker::after_dup(old, new));
        }
    }
}

/// `dup2`/`dup3`: `new` is replaced, maybe ending a tracked open.
fn replacing(old: c_int, new: c_int, call: impl FnOnce() -> c_int) -> c_int {
    if !tracker::may_track_close(new) {
        return call();
    }
    let Some(_guard) = Guard::enter() else { return call() };
    quietly(|| tracker::before_replace(old, new));
    let r = call();
    if r >= 0 {
        quietly(|| tracker::after_dup(old, r));
    }
    r
}

/// # Safety
/// As libc's `dup2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    let Some(real) = real::dup2() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    replacing(old, new, || unsafe { real(old, new) })
}

/// # Safety
/// As libc's `dup3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    let Some(real) = real::dup3() else { return enosys(-1) };
    // SAFETY: passed through unchanged.
    replacing(old, new, || unsafe { real(old, new, flags) })
}

macro_rules! fcntl_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
            let Some(real) = real::$name() else { return enosys(-1) };
            // SAFETY: passed through unchanged.
            let r = unsafe { real(fd, cmd, arg) };
            if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
                observe_dup(fd, r);
            }
            r
        }
    };
}

fcntl_hook!(fcntl);
fcntl_hook!(fcntl64);

/// # Safety
/// As libc's `close_range`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let Some(real) = real::close_range() else { return enosys(-1) };
    // CLOSE_RANGE_CLOEXEC only marks descriptors; nothing closes now.
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 && tracker::may_track_range(first, last) {
        if let Some(_guard) = Guard::enter() {
            quietly(|| tracker::before_close_range(first, last));
        }
    }
    // SAFETY: passed through unchanged.
    unsafe { real(first, last, flags) }
}

/// # Safety
/// As libc's `closefrom`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn closefrom(first: c_int) {
    let Some(real) = real::closefrom() else { return };
    let from = first.max(0) as c_uint;
    if tracker::may_track_range(from, c_uint::MAX) {
        if let Some(_guard) = Guard::enter() {
            quietly(|| tracker::before_close_range(from, c_uint::MAX));
        }
    }
    // SAFETY: passed through unchanged.
    unsafe { real(first) }
}

macro_rules! freopen_hook {
    ($name:ident) => {
        /// # Safety
        /// As libc's function of the same name: closes `stream`'s file and
        /// opens `path` in its place, both inside libc.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: *const c_char, stream: *mut FILE) -> *mut FILE {
            let Some(real) = real::$name() else { return enosys(std::ptr::null_mut()) };
            // SAFETY: passed through unchanged.
            let call = || unsafe { real(path, mode, stream) };
            if stream.is_null() || mode.is_null() || tracker::off() {
                return call();
            }
            let Some(_guard) = Guard::enter() else { return call() };
            // SAFETY: fileno reads a FILE the caller says is open.
            let old_fd = unsafe { libc::fileno(stream) };
            let closing = if path.is_null() || old_fd < 0 || !tracker::may_track_close(old_fd) {
                None
            } else {
                quietly(|| tracker::before_fclose(old_fd)).flatten()
            };
            // SAFETY: a non-null mode/path is a NUL-terminated string.
            let (cmode, cpath) = unsafe { (CStr::from_ptr(mode), (!path.is_null()).then(|| CStr::from_ptr(path))) };
            let flags = super::open::fopen_flags(cmode);
            let pending = match cpath {
                Some(p) if super::open::writes(flags) => quietly(|| tracker::open_before(libc::AT_FDCWD, p, flags)).flatten(),
                _ => None,
            };
            let fp = call();
            if let Some(c) = closing {
                quietly(|| tracker::after_fclose(c));
            }
            if let Some(p) = pending {
                // SAFETY: fileno on the FILE freopen just returned.
                let fd = if fp.is_null() { -1 } else { unsafe { libc::fileno(fp) } };
                quietly(|| tracker::open_after(p, fd));
            }
            fp
        }
    };
}

freopen_hook!(freopen);
freopen_hook!(freopen64);
