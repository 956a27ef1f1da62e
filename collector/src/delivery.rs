//! Acknowledged delivery, the collector's side: the name under which the
//! store keeps each version once ([`Origin`]), and when a connection's
//! events may be acknowledged ([`Acks`]).
//!
//! A library numbers its events (`seq`, see `wire/src/lib.rs`), keeps each
//! until it is acknowledged and, after a reconnect, sends what is not
//! acknowledged again. So:
//! - a version's origin is (boot id, pid and start time of the writer as
//!   the kernel says, the `image` number the library drew, a `seq`), hashed
//!   to 16 bytes; the `seq` is the event the version is named after
//!   ([`crate::model::Draft::seq`]): the same events sent twice, to one
//!   collector or to its successor, make versions with the same origin, and
//!   the store keeps the first;
//! - an event is acknowledged only when every version made of events up to
//!   it is committed, and nothing the collector still holds depends on it:
//!   an open waiting for its close, a created file held back, an open
//!   waiting for other holders to exit ([`Receipt`]s the writer settles).
//!
//! What a process says is used only to name its own versions: `image` and
//! `seq` are claims, but the kernel's pid and start time are in every origin,
//! so a process can at most make the collector drop a version *it* sent as
//! a repeat of another of its own (it could as well not report at all).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::model::Draft;

/// How often acks may be sent while a connection's events keep coming (a
/// quiet connection gets its ack as soon as it is due).
const ACK_EVERY: Duration = Duration::from_millis(50);

/// Where a process image's versions come from; see the module comment.
#[derive(Clone)]
pub struct Origin {
    prefix: Sha256,
    /// What it was made of (pid, start, image): the handoff file keeps it.
    pub parts: (i32, u64, u64),
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Origin")
    }
}

impl Origin {
    /// The origin of process `pid`, started at `start` (clock ticks since
    /// boot, from `/proc`, checked against its pidfd), image `image`.
    pub fn new(pid: i32, start: u64, image: u64) -> Origin {
        let mut prefix = Sha256::new();
        prefix.update(b"filetrail origin\0");
        prefix.update(boot_id().as_bytes());
        prefix.update(pid.to_le_bytes());
        prefix.update(start.to_le_bytes());
        prefix.update(image.to_le_bytes());
        Origin { prefix, parts: (pid, start, image) }
    }

    /// The store's key for the version named after event `seq`.
    pub fn key(&self, seq: u64) -> [u8; 16] {
        let digest = self.prefix.clone().chain_update(seq.to_le_bytes()).finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }
}

/// Process images whose events a connection (or a finisher it started) is
/// still turning into versions: a spool file of theirs waits until they
/// are done, so the verified versions are stored first and the spool's
/// claimed copies are dropped as repeats.
static LIVE: Mutex<LiveImages> = Mutex::new(BTreeMap::new());

/// (pid, start, image) -> connections and finishers at work on it.
type LiveImages = BTreeMap<(i32, u64, u64), usize>;

fn live() -> MutexGuard<'static, LiveImages> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// While it exists, [`is_live`] is true for its process image.
#[derive(Debug)]
pub struct Live((i32, u64, u64));

impl Drop for Live {
    fn drop(&mut self) {
        let mut live = live();
        if let Some(n) = live.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.0);
            }
        }
    }
}

impl Origin {
    /// Marks this process image as being delivered live until dropped.
    pub fn live(&self) -> Live {
        *live().entry(self.parts).or_default() += 1;
        Live(self.parts)
    }
}

/// Whether a connection still works on process image (pid, start, image).
pub fn is_live(pid: i32, start: u64, image: u64) -> bool {
    live().contains_key(&(pid, start, image))
}

fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(crate::registry::boot_id)
}

/// The pins of one connection that wait for the writer (or a finisher):
/// each is the first event a version in flight depends on.
#[derive(Debug, Default)]
struct Inflight {
    pins: Mutex<BTreeMap<u64, usize>>,
    /// Signalled whenever a pin goes.
    settled: Condvar,
}

impl Inflight {
    fn pins(&self) -> MutexGuard<'_, BTreeMap<u64, usize>> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn lowest(&self) -> Option<u64> {
        self.pins().keys().next().copied()
    }
}

/// A claim on a connection's ack: while it exists, the connection is not
/// acknowledged at or past its pin. Settled with [`Receipt::done`] once its
/// version is committed (or found to be a repeat) or refused for good;
/// dropped unsettled (the writer gave up on the version), the claim stays
/// for the connection's life, so the library keeps those events and sends
/// them to the next collector.
#[derive(Debug)]
pub struct Receipt {
    inflight: Arc<Inflight>,
    pin: u64,
}

impl Receipt {
    pub fn done(self) {
        let mut pins = self.inflight.pins();
        if let Some(n) = pins.get_mut(&self.pin) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.pin);
                self.inflight.settled.notify_all();
            }
        }
    }
}

/// What the store needs to keep a version once, and its claim on the ack.
#[derive(Debug)]
pub struct Delivery {
    pub origin: [u8; 16],
    pub receipt: Option<Receipt>,
    /// Keeps the writer's process image live ([`is_live`]) until the
    /// version is committed or dropped: a spool file of the same image
    /// (claimed copies) waits for the verified versions.
    pub live: Option<Arc<Live>>,
}

impl Delivery {
    /// Settles the claim, if any.
    pub fn done(self) {
        if let Some(r) = self.receipt {
            r.done();
        }
    }
}

/// One connection's ack bookkeeping. Exists only for a client that sent an
/// `image` in `Hello` (one that numbers its events).
pub struct Acks {
    origin: Origin,
    live: Arc<Live>,
    inflight: Arc<Inflight>,
    /// Lowest and highest `seq` read on this connection (a library sends
    /// again from its oldest unacknowledged event: below that, nothing of
    /// this connection's is worth acknowledging).
    first: u64,
    received: u64,
    /// Highest `upto` sent.
    acked: u64,
    checked: Instant,
}

impl Acks {
    pub fn new(origin: Origin) -> Acks {
        let live = Arc::new(origin.live());
        Acks { origin, live, inflight: Arc::default(), first: 0, received: 0, acked: 0, checked: Instant::now() }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// An event numbered `seq` was read.
    pub fn received(&mut self, seq: u64) {
        if seq != 0 && (self.first == 0 || seq < self.first) {
            self.first = seq;
        }
        self.received = self.received.max(seq);
    }

    /// A claim on the ack until whatever depends on event `pin` is settled.
    pub fn hold(&self, pin: u64) -> Option<Receipt> {
        if pin == 0 {
            return None;
        }
        *self.inflight.pins().entry(pin).or_default() += 1;
        Some(Receipt { inflight: self.inflight.clone(), pin })
    }

    /// The origin and claim of a version assembled from this connection.
    pub fn delivery(&self, draft: &Draft) -> Option<Delivery> {
        (draft.seq != 0).then(|| Delivery {
            origin: self.origin.key(draft.seq),
            receipt: self.hold(draft.pin),
            live: Some(self.live.clone()),
        })
    }

    /// True while versions of this connection wait for the writer: worth
    /// looking again soon.
    pub fn waiting(&self) -> bool {
        self.inflight.lowest().is_some()
    }

    /// The ack to send now, if the mark moved: everything below the lowest
    /// pin (`held()`, the assembler's; and the writer's) is done. While
    /// events keep coming (`busy`), at most once per [`ACK_EVERY`].
    pub fn due(&mut self, held: impl FnOnce() -> Option<u64>, busy: bool) -> Option<u64> {
        if busy && self.checked.elapsed() < ACK_EVERY {
            return None;
        }
        self.checked = Instant::now();
        let lowest = [held(), self.inflight.lowest()].into_iter().flatten().min();
        let mark = lowest.map_or(self.received, |p| p.saturating_sub(1).min(self.received));
        (mark > self.acked && mark >= self.first).then_some(mark)
    }

    /// The client said it is done (end of file): the last ack, once what
    /// the writer holds below `held` (the first event of an open still
    /// unfinished, if any) is settled, waiting at most `wait`. An exiting
    /// library waits for this ack instead of spooling.
    pub fn last(&mut self, held: Option<u64>, wait: Duration) -> Option<u64> {
        let deadline = Instant::now() + wait;
        let mut pins = self.inflight.pins();
        while let Some(&lowest) = pins.keys().next()
            && held.is_none_or(|h| lowest < h)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pins = self.inflight.settled.wait_timeout(pins, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(pins);
        self.due(|| held, false)
    }

    /// `upto` reached the client.
    pub fn sent(&mut self, upto: u64) {
        self.acked = self.acked.max(upto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_wait_for_what_is_held_and_in_flight() {
        let mut a = Acks::new(Origin::new(1, 2, 3));
        for seq in 1..=5 {
            a.received(seq);
        }
        // The assembler holds event 2 (an open): 1 is done.
        assert_eq!(a.due(|| Some(2), false), Some(1));
        a.sent(1);
        let r4 = a.hold(4).unwrap();
        let r4b = a.hold(4).unwrap();
        assert_eq!(a.due(|| None, false), Some(3));
        a.sent(3);
        r4.done();
        assert_eq!(a.due(|| None, false), None, "one version of pin 4 still in flight");
        assert!(a.waiting());
        r4b.done();
        assert_eq!(a.due(|| None, false), Some(5));
        a.sent(5);
        assert_eq!(a.due(|| None, false), None);
        // A connection that starts at event 10 (9 were acknowledged before)
        // is acknowledged from 10 on.
        let mut b = Acks::new(Origin::new(1, 2, 3));
        b.received(10);
        let r = b.hold(10).unwrap();
        assert_eq!(b.due(|| None, false), None);
        r.done();
        assert_eq!(b.due(|| None, false), Some(10));
        // A receipt dropped unsettled (the writer gave up) holds the ack for good.
        a.received(6);
        drop(a.hold(6));
        a.received(7);
        assert_eq!(a.due(|| None, false), None);
    }

    #[test]
    fn origins_differ_by_every_part() {
        let o = Origin::new(10, 20, 30);
        assert_eq!(o.key(1), Origin::new(10, 20, 30).key(1));
        for other in [Origin::new(11, 20, 30), Origin::new(10, 21, 30), Origin::new(10, 20, 31)] {
            assert_ne!(o.key(1), other.key(1));
        }
        assert_ne!(o.key(1), o.key(2));
    }
}
