//! The single writer: one thread owns the store for writing and commits
//! whatever versions have arrived as one transaction (group commit), so many
//! writers cost one fsync per batch rather than one each.
//!
//! A commit that fails (disk full, an I/O error, a locked database) loses
//! nothing: the transaction rolls back, the writer logs it once, keeps the
//! versions in memory and retries with backoff, storing them when the store
//! can take them again. What it holds is bounded ([`MAX_HELD_BYTES`] of
//! content, [`MAX_HELD_VERSIONS`] versions with content): beyond, a version
//! is kept without its content (hash and size, `hash_only`), and beyond
//! [`MAX_HELD_ALL`] it is dropped; both are counted and logged. At a stop
//! ([`Writer::finish`]) it commits everything queued, then checkpoints the
//! WAL into the database and truncates it.
//!
//! Gaps reported on live connections ([`GapSender`], `store/gaps.rs`) come
//! on a channel of their own and are stored after the versions that came
//! with them, held the same way while the store fails (at most
//! [`MAX_HELD_GAPS`], then counted in the log).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, never, select};

use crate::model::{NewVersion, Stored};
use crate::store::Store;
use crate::store::gaps::Gap;

/// Most versions committed in one transaction.
const MAX_BATCH: usize = 2048;
/// Content held while the store cannot be written.
pub const MAX_HELD_BYTES: u64 = 64 << 20;
/// Versions held with their content while the store cannot be written.
pub const MAX_HELD_VERSIONS: usize = 100_000;
/// Versions held at all (without content beyond the two above).
pub const MAX_HELD_ALL: usize = 1_000_000;
/// Gaps held while the store cannot be written.
pub const MAX_HELD_GAPS: usize = 10_000;
/// First and longest wait between two attempts at a failing store.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

pub type VersionSender = Sender<NewVersion>;
pub type GapSender = Sender<Gap>;

/// The writer thread.
pub struct Writer {
    stop: Sender<Instant>,
    handle: JoinHandle<()>,
    gaps: GapSender,
}

/// Starts the writer thread; it ends when every sender is dropped or at
/// [`Writer::finish`].
pub fn spawn(mut store: Store) -> (VersionSender, Writer) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (gaps, gap_rx) = crossbeam_channel::unbounded();
    let (stop, stop_rx) = crossbeam_channel::bounded(1);
    // The thread keeps a sender: the gap channel never disconnects.
    let keep = gaps.clone();
    let handle = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            let _keep = keep;
            run(&mut store, rx, gap_rx, stop_rx)
        })
        .expect("spawning the writer thread");
    (tx, Writer { stop, handle, gaps })
}

impl Writer {
    /// Where live connections send the gaps they learn of.
    pub fn gaps(&self) -> GapSender {
        self.gaps.clone()
    }

    /// Commits everything queued, checkpoints the WAL and ends the thread.
    /// Waits until `deadline` at most; true when it ended.
    pub fn finish(self, deadline: Instant) -> bool {
        let _ = self.stop.send(deadline);
        while !self.handle.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.handle.join().is_ok()
    }
}

/// Set while the store cannot be written (a connection then does not wait
/// for commits to acknowledge: its exiting library spools at once).
static FAILING: AtomicBool = AtomicBool::new(false);

/// Whether the store cannot be written now.
pub fn store_failing() -> bool {
    FAILING.load(Ordering::Relaxed)
}

/// Versions waiting for the store, within bounds.
#[derive(Default)]
struct Held {
    queue: VecDeque<NewVersion>,
    bytes: u64,
    gaps: Vec<Gap>,
    /// Gaps not held (over [`MAX_HELD_GAPS`]) since the store last failed.
    gaps_dropped: u64,
    /// Since the store last failed: kept without content, dropped.
    stripped: u64,
    dropped: u64,
    failing: Option<Failing>,
}

/// A store that fails: since when, the current wait between tries, and
/// when the next try is due.
#[derive(Clone, Copy)]
struct Failing {
    since: Instant,
    wait: Duration,
    next: Instant,
}

impl Held {
    fn push(&mut self, mut v: NewVersion) {
        if self.failing.is_some() {
            if self.queue.len() >= MAX_HELD_ALL {
                self.dropped += 1;
                return;
            }
            let bytes = v.draft.content_bytes();
            if bytes > 0 && (self.queue.len() >= MAX_HELD_VERSIONS || self.bytes + bytes > MAX_HELD_BYTES) {
                v.draft.before = v.draft.before.take().map(|s| s.without_content(Stored::HashOnly));
                v.draft.after = v.draft.after.take().map(|s| s.without_content(Stored::HashOnly));
                self.stripped += 1;
            }
        }
        self.bytes += v.draft.content_bytes();
        self.queue.push_back(v);
    }

    fn push_gap(&mut self, g: Gap) {
        if self.gaps.len() >= MAX_HELD_GAPS {
            self.gaps_dropped += 1;
        } else {
            self.gaps.push(g);
        }
    }

    /// Stores the gaps held, once the versions are stored.
    fn commit_gaps(&mut self, store: &mut Store) {
        if self.gaps.is_empty() || !self.queue.is_empty() {
            return;
        }
        match store.insert_gaps(&self.gaps) {
            Ok(()) => {
                if self.gaps_dropped > 0 {
                    tracing::warn!(
                        dropped = self.gaps_dropped,
                        "gaps not recorded while the store could not be written"
                    );
                    self.gaps_dropped = 0;
                }
                self.gaps.clear();
            }
            Err(e) => tracing::warn!(gaps = self.gaps.len(), "cannot store gaps yet: {e}"),
        }
    }

    /// Commits what is held, a batch at a time, until it is all stored or
    /// the store fails; then the gaps.
    fn commit(&mut self, store: &mut Store) {
        self.commit_versions(store);
        self.commit_gaps(store);
    }

    fn commit_versions(&mut self, store: &mut Store) {
        while !self.queue.is_empty() {
            let n = self.queue.len().min(MAX_BATCH);
            let batch: Vec<NewVersion> = self.queue.drain(..n).collect();
            match store.insert(&batch) {
                Ok(ids) => {
                    let repeats = ids.iter().filter(|id| id.is_none()).count();
                    if repeats > 0 {
                        tracing::info!(repeats, "versions sent again (after a reconnect) were stored already: ignored");
                    }
                    for (v, id) in batch.into_iter().zip(ids) {
                        self.bytes -= v.draft.content_bytes();
                        if let Some(id) = id {
                            tracing::info!(
                                id,
                                path = %filetrail_wire::path::quote(&v.draft.path),
                                action = v.draft.action.as_str(),
                                user = %v.who.user,
                                pid = v.who.pid,
                                "recorded"
                            );
                        }
                        // Committed: its connection may be acknowledged past it.
                        if let Some(d) = v.delivery {
                            d.done();
                        }
                    }
                    if let Some(Failing { since, .. }) = self.failing.take() {
                        FAILING.store(false, Ordering::Relaxed);
                        tracing::warn!(
                            store = %store.path().display(),
                            after_s = since.elapsed().as_secs(),
                            without_content = self.stripped,
                            dropped = self.dropped,
                            "the store can be written again: storing the versions held meanwhile"
                        );
                        (self.stripped, self.dropped) = (0, 0);
                    }
                }
                Err(e) => {
                    for v in batch.into_iter().rev() {
                        self.queue.push_front(v);
                    }
                    let e = match std::error::Error::source(&e) {
                        Some(cause) => format!("{e}: {cause}"),
                        None => e.to_string(),
                    };
                    match &mut self.failing {
                        None => {
                            tracing::error!(
                                store = %store.path().display(),
                                versions = self.queue.len(),
                                "cannot write to the store ({e}): holding versions in memory (up to {} MiB of \
                                 content, {MAX_HELD_VERSIONS} versions with content) and retrying until it can",
                                MAX_HELD_BYTES >> 20
                            );
                            let now = Instant::now();
                            FAILING.store(true, Ordering::Relaxed);
                            self.failing = Some(Failing { since: now, wait: BACKOFF.0, next: now + BACKOFF.0 });
                        }
                        Some(f) => {
                            tracing::debug!(versions = self.queue.len(), "store still failing: {e}");
                            f.wait = (f.wait * 2).min(BACKOFF.1);
                            f.next = Instant::now() + f.wait;
                        }
                    }
                    return;
                }
            }
        }
    }
}

fn run(store: &mut Store, rx: Receiver<NewVersion>, gaps: Receiver<Gap>, stop: Receiver<Instant>) {
    let mut held = Held::default();
    let deadline = loop {
        let retry = match held.failing {
            Some(f) => after(f.next.saturating_duration_since(Instant::now())),
            None => never(),
        };
        select! {
            recv(rx) -> v => match v {
                Ok(v) => held.push(v),
                Err(_) => break None,
            },
            recv(gaps) -> g => if let Ok(g) = g { held.push_gap(g) },
            recv(stop) -> d => break d.ok(),
            recv(retry) -> _ => {}
        }
        while let Ok(g) = gaps.try_recv() {
            held.push_gap(g);
        }
        // Everything that has arrived meanwhile joins the batch.
        while let Ok(v) = rx.try_recv() {
            held.push(v);
            if held.failing.is_none() && held.queue.len() >= MAX_BATCH {
                break;
            }
        }
        // A failing store is tried again when its wait is over, not at
        // every version that arrives.
        if held.failing.is_none_or(|f| Instant::now() >= f.next) {
            held.commit(store);
        }
    };
    while let Ok(v) = rx.try_recv() {
        held.push(v);
    }
    while let Ok(g) = gaps.try_recv() {
        held.push_gap(g);
    }
    // At a stop: a store that fails is retried until the deadline.
    loop {
        held.commit(store);
        let Some(Failing { wait, .. }) = held.failing else { break };
        if deadline.is_none_or(|d| Instant::now() + wait >= d) {
            tracing::error!(
                versions = held.queue.len(),
                store = %store.path().display(),
                "stopping with a store that cannot be written: these versions are lost"
            );
            return;
        }
        std::thread::sleep(wait);
    }
    match store.checkpoint() {
        Ok(()) => tracing::info!(store = %store.path().display(), "all versions committed; WAL checkpointed"),
        Err(e) => tracing::warn!(store = %store.path().display(), "WAL checkpoint failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Action, Draft, Side};

    fn version(content: &[u8]) -> NewVersion {
        let after = Some(Side::from_bytes(content.to_vec(), None, true));
        let draft = Draft::new(b"/etc/f".to_vec(), Action::Create, None, after, jiff::Timestamp::now());
        NewVersion { draft, who: Arc::new(Default::default()), delivery: None }
    }

    #[test]
    fn a_failing_store_keeps_versions_within_bounds() {
        let mut held = Held::default();
        held.push(version(b"normal"));
        assert_eq!(held.bytes, 6);
        let now = Instant::now();
        held.failing = Some(Failing { since: now, wait: BACKOFF.0, next: now });
        let big = vec![7u8; (MAX_HELD_BYTES / 2) as usize];
        held.push(version(&big));
        held.push(version(&big));
        assert_eq!((held.queue.len(), held.stripped), (3, 1), "the second big one is over the bound");
        let last = held.queue.back().unwrap().draft.after.clone().unwrap();
        assert_eq!((last.stored, last.bytes.is_none(), last.size), (Stored::HashOnly, true, big.len() as u64));
        assert!(held.bytes <= MAX_HELD_BYTES);
    }

    #[test]
    fn versions_queued_at_a_stop_are_committed_and_the_wal_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let (tx, writer) = spawn(Store::open(&db).unwrap());
        for i in 0..500 {
            tx.send(version(format!("v{i}").as_bytes())).unwrap();
        }
        assert!(writer.finish(Instant::now() + Duration::from_secs(10)));
        let wal = std::fs::metadata(dir.path().join("t.db-wal")).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal, 0);
        let store = Store::open_read(&db).unwrap();
        let n: i64 = store.conn().query_row("SELECT count(*) FROM versions", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 500);
    }
}
