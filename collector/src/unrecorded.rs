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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::registry::Registry;
use crate::store::UnseenChanges;
use crate::who::Identity;

/// Processes remembered per path (the latest event of each); a path
/// changed by more processes forgets the oldest.
const PER_PATH: usize = 8;

/// The paths the watch is waiting on, with the processes that changed them.
pub struct Unrecorded {
    paths: Mutex<HashMap<Vec<u8>, Vec<Event>>>,
    /// Labels a process when a version is made of its change (as the watch does).
    registry: Arc<Registry>,
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
        Unrecorded { paths: Mutex::new(HashMap::new()), registry }
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
