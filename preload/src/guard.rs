//! Re-entrancy guard: while a thread is inside the library, every hooked call
//! it makes (the library's own reads, socket I/O, allocations that open files)
//! goes straight to libc.

use std::cell::Cell;

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Held while the current thread runs library code.
pub struct Guard(());

impl Guard {
    /// `None` when this thread is already inside the library.
    pub fn enter() -> Option<Guard> {
        // `try_with` fails only during thread teardown: then stay out.
        INSIDE
            .try_with(|inside| if inside.replace(true) { None } else { Some(Guard(())) })
            .ok()
            .flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = INSIDE.try_with(|inside| inside.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_entry_is_refused_until_released() {
        let g = Guard::enter().expect("first entry");
        assert!(Guard::enter().is_none());
        drop(g);
        assert!(Guard::enter().is_some());
    }
}
