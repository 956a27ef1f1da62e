//! A minimal spin lock that `fork` handlers can hold across `fork()` and the
//! child can reset: std's `Mutex` offers neither. Contention is rare (only
//! tracked writes take it), so spinning with `sched_yield` is enough.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Lock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `held`.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Lock { held: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    pub fn lock(&self) -> LockGuard<'_, T> {
        self.acquire();
        LockGuard { lock: self }
    }

    /// Takes the lock without a guard; pair with [`Lock::release`].
    pub fn acquire(&self) {
        let mut spins = 0u32;
        while self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spins += 1;
            if spins > 64 {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// The value, without taking the lock.
    ///
    /// # Safety
    /// No other thread may access the value: only for a `fork` child, where
    /// the parent's lock holder does not exist.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_unchecked(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's promise.
        unsafe { &mut *self.value.get() }
    }

    /// Releases a lock taken with [`Lock::acquire`] — or, in a child after
    /// `fork`, a lock whose holder no longer exists.
    pub fn release(&self) {
        self.held.store(false, Ordering::Release);
    }
}

pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_correctly_under_contention() {
        static L: Lock<u64> = Lock::new(0);
        let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(|| (0..10_000).for_each(|_| *L.lock() += 1))).collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*L.lock(), 40_000);
    }
}
