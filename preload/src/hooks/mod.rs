//! The FFI edge: every exported libc symbol, and the only code that handles
//! raw pointers. Each hook follows one order:
//! cheap check (most calls leave here) → re-entrancy guard → observe before
//! (errno preserved) → the real call → observe after (errno preserved) →
//! return the real result. Observation runs under `catch_unwind`; a missing
//! real symbol fails like libc would (`ENOSYS`), never panics.
//!
//! Real symbols come from `dlsym(RTLD_NEXT)`, resolved once each into an
//! atomic by [`real_fns!`]. We do not use redhook: it panics when a symbol is
//! missing and cannot express the variadic `open` family (docs/architecture.md).

mod close;
mod names;
mod open;

use std::panic::{catch_unwind, AssertUnwindSafe};
use crate::sys;

/// Sentinel for a symbol `dlsym` could not find.
const MISSING: usize = 1;

fn resolve(name: &'static [u8]) -> usize {
    // SAFETY: name is NUL-terminated (built with concat!); RTLD_NEXT is valid
    // from a shared object.
    let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if addr.is_null() { MISSING } else { addr as usize }
}

/// Declares, for each libc function, an accessor returning the next
/// definition of that symbol after this library (resolved once, cached).
macro_rules! real_fns {
    ($( $name:ident : fn($($ty:ty),*) -> $ret:ty; )*) => {
        pub(crate) mod real {
            #[allow(unused_imports)]
            use libc::*;
            use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
            $(
                #[allow(non_snake_case, clippy::missing_transmute_annotations)]
                pub fn $name() -> Option<unsafe extern "C" fn($($ty),*) -> $ret> {
                    static ADDR: AtomicUsize = AtomicUsize::new(0);
                    let mut addr = ADDR.load(Relaxed);
                    if addr == 0 {
                        addr = super::resolve(concat!(stringify!($name), "\0").as_bytes());
                        ADDR.store(addr, Relaxed);
                    }
                    // SAFETY: addr is the address of libc's function of this
                    // name, whose C signature is the one declared here.
                    (addr != super::MISSING).then(|| unsafe { std::mem::transmute::<usize, _>(addr) })
                }
            )*
        }
    };
}

real_fns! {
    open: fn(*const c_char, c_int, mode_t) -> c_int;
    open64: fn(*const c_char, c_int, mode_t) -> c_int;
    openat: fn(c_int, *const c_char, c_int, mode_t) -> c_int;
    openat64: fn(c_int, *const c_char, c_int, mode_t) -> c_int;
    __open_2: fn(*const c_char, c_int) -> c_int;
    __open64_2: fn(*const c_char, c_int) -> c_int;
    __openat_2: fn(c_int, *const c_char, c_int) -> c_int;
    __openat64_2: fn(c_int, *const c_char, c_int) -> c_int;
    creat: fn(*const c_char, mode_t) -> c_int;
    creat64: fn(*const c_char, mode_t) -> c_int;
    fopen: fn(*const c_char, *const c_char) -> *mut FILE;
    fopen64: fn(*const c_char, *const c_char) -> *mut FILE;
    fclose: fn(*mut FILE) -> c_int;
    mkstemp: fn(*mut c_char) -> c_int;
    mkstemp64: fn(*mut c_char) -> c_int;
    mkostemp: fn(*mut c_char, c_int) -> c_int;
    mkostemp64: fn(*mut c_char, c_int) -> c_int;
    mkstemps: fn(*mut c_char, c_int) -> c_int;
    mkstemps64: fn(*mut c_char, c_int) -> c_int;
    mkostemps: fn(*mut c_char, c_int, c_int) -> c_int;
    mkostemps64: fn(*mut c_char, c_int, c_int) -> c_int;
    close: fn(c_int) -> c_int;
    dup: fn(c_int) -> c_int;
    dup2: fn(c_int, c_int) -> c_int;
    dup3: fn(c_int, c_int, c_int) -> c_int;
    fcntl: fn(c_int, c_int, c_ulong) -> c_int;
    fcntl64: fn(c_int, c_int, c_ulong) -> c_int;
    rename: fn(*const c_char, *const c_char) -> c_int;
    renameat: fn(c_int, *const c_char, c_int, *const c_char) -> c_int;
    renameat2: fn(c_int, *const c_char, c_int, *const c_char, c_uint) -> c_int;
    unlink: fn(*const c_char) -> c_int;
    unlinkat: fn(c_int, *const c_char, c_int) -> c_int;
    remove: fn(*const c_char) -> c_int;
    truncate: fn(*const c_char, off_t) -> c_int;
    truncate64: fn(*const c_char, off64_t) -> c_int;
    link: fn(*const c_char, *const c_char) -> c_int;
    linkat: fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int;
    close_range: fn(c_uint, c_uint, c_int) -> c_int;
    closefrom: fn(c_int) -> ();
    freopen: fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;
    freopen64: fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;
}

/// Runs library logic for a hook: panics are caught, errno is left exactly
/// as it was before.
fn quietly<R>(f: impl FnOnce() -> R) -> Option<R> {
    let saved = sys::errno();
    let r = catch_unwind(AssertUnwindSafe(f)).ok();
    sys::set_errno(saved);
    r
}

/// What a hook returns when libc lacks the function it stands in for.
fn enosys<T>(fail: T) -> T {
    sys::set_errno(libc::ENOSYS);
    fail
}
