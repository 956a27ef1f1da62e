//! Changes the kernel watch has seen and not recorded yet, by path: the
//! watch waits for a path to be quiet before it reads it ([`crate::watch`]),
//! and notes here meanwhile which processes changed it, and when.
//!
//! The store reads this when a library's version arrives
//! (`store/mod.rs`, `insert`): if that version's before is not what the
//! store last knew of the path and another process changed the path while
//! the watch was waiting, the difference is that process's change. Once
//! quiet, the watch would compare the file with the library's after and
//! find nothing to record; so the store records it then, as a kernel
//! version of its own, before the library's (`earlier` says who and when:
//! this is the store's [`UnseenChanges`], so the store depends on the data,
//! not on how the watch learns it).
//!
//! The other process's events are in the kernel's queue before the library
//! even opened the file, but the watch may not have read them yet (a busy
//! machine, or the watch resting between reads during a burst). So before
//! it answers, [`Unrecorded`] asks the watch to read its queue and waits
//! for that, at most [`CATCH_UP`] (only when a version's before differs
//! from what the store knew: never on the usual path).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::registry::Registry;
use crate::store::UnseenChanges;
use crate::who::Identity;

/// Processes remembered per path (the latest event of each); a path
/// changed by more processes forgets the oldest.
const PER_PATH: usize = 8;

/// The longest the store waits for the watch to read its queue. A watch
/// that did not answer in time is not waited for again until it has.
const CATCH_UP: Duration = Duration::from_millis(250);

/// The paths the watch is waiting on, with the processes that changed them.
pub struct Unrecorded {
    paths: Mutex<HashMap<Vec<u8>, Vec<Event>>>,
    /// Labels a process when a version is made of its change (as the watch does).
    registry: Arc<Registry>,
    catch_up: Mutex<CatchUp>,
    caught_up: Condvar,
    /// Rings the watch (an eventfd it polls); `None`: none could be made.
    bell: Option<OwnedFd>,
}

/// The store's asks that the watch read its queue, and the watch's answers.
#[derive(Default)]
struct CatchUp {
    /// The watch is reading events (it answers asks).
    watching: bool,
    asked: u64,
    done: u64,
}

/// The latest event of one process on a path.
struct Event {
    pid: i32,
    /// `None`: gone before the watch could read who it was (or never known).
    who: Option<Arc<Identity>>,
    time: jiff::Timestamp,
}

impl Unrecorded {
    pub fn new(registry: Arc<Registry>) -> Self {
        // SAFETY: eventfd takes an initial value and flags.
        let bell = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        // SAFETY: a new descriptor we now own.
        let bell = (bell >= 0).then(|| unsafe { OwnedFd::from_raw_fd(bell) });
        let catch_up = Mutex::new(CatchUp::default());
        Unrecorded { paths: Mutex::new(HashMap::new()), registry, catch_up, caught_up: Condvar::new(), bell }
    }

    /// The watch polls this: readable when the store asks it to read its queue.
    pub fn bell(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.bell.as_ref().map(|b| b.as_fd())
    }

    /// The watch starts (`true`) or stops answering asks.
    pub fn watching(&self, on: bool) {
        let mut c = self.catch_up.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        c.watching = on;
        c.done = c.asked;
        self.caught_up.notify_all();
    }

    /// The bell rang: the ask the watch answers once it has read its queue
    /// ([`Unrecorded::answered`]).
    pub fn rung(&self) -> u64 {
        if let Some(bell) = &self.bell {
            let mut count = [0u8; 8];
            // SAFETY: an eventfd read takes 8 bytes; it does not block (EFD_NONBLOCK).
            unsafe { libc::read(bell.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        }
        self.catch_up.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).asked
    }

    /// The watch has read what its queue held when ask `n` came.
    pub fn answered(&self, n: u64) {
        let mut c = self.catch_up.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        c.done = c.done.max(n);
        self.caught_up.notify_all();
    }

    /// Asks the watch to read its queue and waits for it (bounded).
    fn catch_up(&self) {
        let Some(bell) = &self.bell else { return };
        let c = self.catch_up.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !c.watching || c.asked > c.done {
            return;
        }
        let mut c = c;
        c.asked += 1;
        let n = c.asked;
        let one = 1u64.to_ne_bytes();
        // SAFETY: an eventfd takes an 8-byte write.
        unsafe { libc::write(bell.as_raw_fd(), one.as_ptr().cast(), 8) };
        let waited = self.caught_up.wait_timeout_while(c, CATCH_UP, |c| c.watching && c.done < n);
        if waited.is_ok_and(|(_, t)| t.timed_out()) {
            tracing::warn!(
                "kernel watch: did not read its queue within {CATCH_UP:?}; a change it saw may show as a gap"
            );
        }
    }

    fn paths(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Vec<Event>>> {
        self.paths.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An event on `path` by `pid` (`who`: as read from `/proc`, `None` when gone).
    pub fn note(&self, path: &[u8], pid: i32, who: Option<&Arc<Identity>>, time: jiff::Timestamp) {
        let mut paths = self.paths();
        let events = match paths.get_mut(path) {
            Some(events) => events,
            None => paths.entry(path.to_vec()).or_default(),
        };
        events.retain(|e| e.pid != pid);
        if events.len() >= PER_PATH {
            events.remove(0);
        }
        events.push(Event { pid, who: who.cloned(), time });
    }

    /// The watch has looked at `path`: what it saw is recorded (or was nothing).
    pub fn forget(&self, path: &[u8]) {
        self.paths().remove(path);
    }
}

impl UnseenChanges for Unrecorded {
    /// The latest event by another process at or before `time` (else the
    /// first after it), labelled as the watch labels its versions; its
    /// time, made earlier than `time`. `None`: no other process changed
    /// `path` since the watch last looked at it.
    fn earlier(&self, path: &[u8], pid: i32, time: jiff::Timestamp) -> Option<(Arc<Identity>, jiff::Timestamp)> {
        self.catch_up();
        let paths = self.paths();
        let others = paths.get(path)?.iter().filter(|e| e.pid != pid);
        let (before, after): (Vec<&Event>, Vec<&Event>) = others.partition(|e| e.time <= time);
        let e = before.into_iter().max_by_key(|e| e.time).or_else(|| after.into_iter().min_by_key(|e| e.time))?;
        let just_before = time.checked_sub(jiff::SignedDuration::from_micros(1)).unwrap_or(time);
        let who = crate::watch::attribute(&self.registry, e.who.as_ref(), e.pid);
        Some((who, e.time.min(just_before)))
    }

    /// Its events are accounted for (another process's report of a change
    /// made meanwhile is not credited to it).
    fn reported(&self, path: &[u8], pid: i32) {
        if let Some(events) = self.paths().get_mut(path) {
            events.retain(|e| e.pid != pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn unrecorded(dir: &std::path::Path) -> Arc<Unrecorded> {
        crate::store::Store::open(&dir.join("t.db")).unwrap();
        Arc::new(Unrecorded::new(Arc::new(Registry::open(&dir.join("t.db")).unwrap())))
    }

    /// A watch that has not read its queue yet when the store asks: the
    /// store waits until it has, and learns of the change it read.
    #[test]
    fn the_store_waits_for_the_watch_to_read_its_queue() {
        let dir = tempfile::tempdir().unwrap();
        let u = unrecorded(dir.path());
        u.watching(true);
        let watch = {
            let u = u.clone();
            std::thread::spawn(move || {
                let mut fd = libc::pollfd { fd: u.bell().unwrap().as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: fd is a valid pollfd array of length 1.
                assert_eq!(unsafe { libc::poll(&mut fd, 1, 5000) }, 1);
                let asked = u.rung();
                // What the queue held: another process's change of x.
                u.note(b"/t/x", 7, None, jiff::Timestamp::now());
                u.answered(asked);
            })
        };
        let (who, _) = u.earlier(b"/t/x", 8, jiff::Timestamp::now()).expect("the change the watch read");
        assert_eq!(who.pid, 7);
        watch.join().unwrap();
    }

    /// No watch running, or one that did not answer the last ask: not
    /// asked (so not waited for).
    #[test]
    fn a_stopped_or_stuck_watch_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let u = unrecorded(dir.path());
        let asks = |u: &Unrecorded| u.catch_up.lock().unwrap().asked;
        assert!(u.earlier(b"/t/x", 8, jiff::Timestamp::now()).is_none());
        assert_eq!(asks(&u), 0, "no watch: not asked");
        u.watching(true);
        let started = Instant::now();
        assert!(u.earlier(b"/t/x", 8, jiff::Timestamp::now()).is_none());
        assert!(started.elapsed() >= CATCH_UP, "waited for the answer, up to the bound");
        assert_eq!(asks(&u), 1);
        u.earlier(b"/t/x", 8, jiff::Timestamp::now());
        assert_eq!(asks(&u), 1, "the unanswered ask is not asked (nor waited for) twice");
        // Once it answers, it is asked again.
        u.answered(u.rung());
        u.earlier(b"/t/x", 8, jiff::Timestamp::now());
        assert_eq!(asks(&u), 2);
    }
}
