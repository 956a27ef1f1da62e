//! The single writer: one thread owns the store for writing and commits
//! whatever versions have arrived as one transaction (group commit), so many
//! writers cost one fsync per batch rather than one each.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::model::NewVersion;
use crate::store::Store;

/// Most versions committed in one transaction.
const MAX_BATCH: usize = 2048;
/// How long a failing batch (disk full, locked database) is retried before
/// it is reported lost.
const RETRIES: u32 = 60;

pub type VersionSender = Sender<NewVersion>;

/// Starts the writer thread; it ends when every sender is dropped.
pub fn spawn(mut store: Store) -> (VersionSender, JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || run(&mut store, rx))
        .expect("spawning the writer thread");
    (tx, handle)
}

fn run(store: &mut Store, rx: Receiver<NewVersion>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(v) => batch.push(v),
                Err(_) => break,
            }
        }
        commit(store, batch);
    }
}

/// Commits `batch`; then each version's delivery is settled (its
/// connection may be acknowledged past it). A batch given up on settles
/// nothing: those connections are never acknowledged past it.
fn commit(store: &mut Store, batch: Vec<NewVersion>) {
    for attempt in 1..=RETRIES {
        match store.insert(&batch) {
            Ok(ids) => {
                let repeats = ids.iter().filter(|id| id.is_none()).count();
                if repeats > 0 {
                    tracing::info!(repeats, "versions sent again (after a reconnect) were stored already: ignored");
                }
                for (v, id) in batch.into_iter().zip(ids) {
                    if let Some(id) = id {
                        tracing::info!(
                            id,
                            path = %filetrail_wire::path::escape_bytes(&v.draft.path),
                            action = v.draft.action.as_str(),
                            user = %v.who.user,
                            pid = v.who.pid,
                            "recorded"
                        );
                    }
                    if let Some(d) = v.delivery {
                        d.done();
                    }
                }
                return;
            }
            Err(e) => {
                tracing::error!(attempt, versions = batch.len(), "cannot store versions, will retry: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    tracing::error!(versions = batch.len(), store = %store.path().display(), "giving up: versions lost");
}
