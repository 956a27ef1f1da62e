//! Purging a secret content: once a content is known to be redacted (it was
//! in a file matching a `redact` glob, or equals one that was), the store
//! must not hold its bytes, even if they were stored earlier under a plain
//! name. Purging drops the blob's data, keeps its hash, and marks the blob
//! redacted: every version that refers to it then reads as `redacted`
//! (queries and [`Store::content`] look at the blob's mark).
//!
//! Invariant kept: every blob that holds data stays readable. A blob stored
//! as a delta against the purged one is first re-encoded on its own, in the
//! same transaction, and the depths below it shrink accordingly. The WAL is
//! then checkpointed and truncated, and `secure_delete` zeroes freed pages,
//! so the bytes leave the store's files too ([`Store::scrub_wal`]).

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, blob_bytes, blobs};
use crate::error::Result;

/// A SHA-256, raw.
pub type Hash = [u8; 32];

/// Drops the data of blob `id` (if any) and marks it redacted.
pub(super) fn purge(conn: &Connection, id: i64) -> Result<()> {
    // A delta's base is always an older blob: one pass over the newer ones,
    // in order, finds every blob whose chain goes through `id` (no index on
    // `base`: it would cost ~10% of the store; a purge of new content, the
    // common case, reads only the few blobs stored since).
    let mut below = HashSet::from([id]);
    let mut children = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT id, base FROM blobs WHERE id > ?1 AND base IS NOT NULL ORDER BY id")?;
    for row in stmt.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (blob, base) = row?;
        if below.contains(&base) {
            below.insert(blob);
            if base == id {
                children.push(blob);
            }
        }
    }
    below.remove(&id);
    let depth: i64 = conn.query_row("SELECT depth FROM blobs WHERE id = ?1", [id], |r| r.get(0))?;
    // Children are re-encoded on their own (their depth becomes 0); every
    // blob below them is that much nearer a full blob.
    for &child in &children {
        let bytes = match blob_bytes(conn, child) {
            Ok(Some(bytes)) => bytes,
            // Already unreadable: `collector verify` reports it; purging
            // must not fail the whole batch over it.
            other => {
                tracing::warn!(blob = child, "cannot re-encode a blob before a purge: {other:?}");
                continue;
            }
        };
        let (codec, data) = blobs::encode(&bytes, None);
        conn.prepare_cached("UPDATE blobs SET codec = ?2, base = NULL, data = ?3 WHERE id = ?1")?.execute(params![
            child,
            codec as i64,
            data
        ])?;
    }
    for blob in below {
        conn.prepare_cached("UPDATE blobs SET depth = max(depth - ?2, 0) WHERE id = ?1")?
            .execute(params![blob, depth + 1])?;
    }
    conn.prepare_cached("UPDATE blobs SET data = NULL, codec = 0, base = NULL, depth = 0, redacted = 1 WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

impl Store {
    /// Hashes of every content known to be secret (non-empty redacted blobs).
    pub fn redacted_hashes(&self) -> Result<HashSet<Hash>> {
        let mut stmt = self.conn.prepare("SELECT sha256 FROM blobs WHERE redacted = 1 AND size > 0")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = HashSet::new();
        for sha in rows {
            if let Ok(h) = Hash::try_from(sha?.as_slice()) {
                out.insert(h);
            }
        }
        Ok(out)
    }

    /// Marks the contents with these hashes secret: the ones the store holds
    /// are purged (one transaction). Returns how many were purged.
    pub fn purge_hashes(&mut self, hashes: &HashSet<Hash>) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut purged = 0;
        for sha in hashes {
            let blob: Option<(i64, bool)> = tx
                .prepare_cached(
                    "SELECT id, data IS NOT NULL FROM blobs
                     WHERE substr(sha256, 1, 8) = substr(?1, 1, 8) AND sha256 = ?1 AND redacted = 0 AND size > 0",
                )?
                .query_row([&sha[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((id, data)) = blob {
                purge(&tx, id)?;
                purged += usize::from(data);
            }
        }
        tx.commit()?;
        if purged > 0 {
            self.scrub_wal();
        }
        Ok(purged)
    }

    /// Purges blobs marked redacted that still hold data (a store written
    /// before redaction applied to equal contents).
    pub(super) fn purge_leftovers(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let ids: Vec<i64> = tx
            .prepare("SELECT id FROM blobs WHERE redacted = 1 AND data IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for &id in &ids {
            purge(&tx, id)?;
        }
        tx.commit()?;
        if !ids.is_empty() {
            tracing::warn!(blobs = ids.len(), "purged redacted contents that an older collector had stored");
            self.scrub_wal();
        }
        Ok(ids.len())
    }

    /// After a purge: copies the WAL into the database and truncates it, so
    /// the purged bytes survive in neither file (freed pages were zeroed by
    /// `secure_delete`). It waits (busy timeout) for readers of older
    /// snapshots; if one outlasts that, the next batch tries again.
    pub(super) fn scrub_wal(&mut self) {
        let done = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
        self.scrub_pending = done != Ok(0);
        if self.scrub_pending {
            tracing::warn!("purged content may remain in the WAL until a later checkpoint: {done:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::Error;
    use crate::model::{Action, Draft, NewVersion, Side};

    fn config(edit: usize) -> Vec<u8> {
        (0..300).map(|i| format!("option_{i} = {}\n", if i == edit { 0 } else { i * 7 })).collect::<String>().into()
    }

    fn version(path: &str, before: Option<&[u8]>, after: &[u8], redacted: bool) -> NewVersion {
        let side = |b: &[u8]| {
            let s = Side::from_bytes(b.to_vec(), None, true);
            if redacted { s.redacted() } else { s }
        };
        let draft = Draft::new(path.into(), Action::Write, before.map(side), Some(side(after)), jiff::Timestamp::now());
        NewVersion { draft, who: Arc::new(Default::default()), delivery: None }
    }

    fn depths(store: &Store) -> Vec<(i64, Option<i64>, i64, bool)> {
        let mut stmt = store.conn.prepare("SELECT id, base, depth, data IS NOT NULL FROM blobs ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn purging_a_delta_base_keeps_everything_else_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let (a, b, c, d) = (config(1), config(2), config(3), config(4));
        store.insert(&[version("/etc/app.conf", None, &a, false)]).unwrap();
        store.insert(&[version("/etc/app.conf", Some(&a), &b, false)]).unwrap();
        store.insert(&[version("/etc/app.conf", Some(&b), &c, false)]).unwrap();
        store.insert(&[version("/etc/app.conf", Some(&c), &d, false)]).unwrap();
        // a, then b c d each a delta on the one before.
        assert_eq!(
            depths(&store),
            vec![(1, None, 0, true), (2, Some(1), 1, true), (3, Some(2), 2, true), (4, Some(3), 3, true)]
        );
        // b turns out to be a secret's content.
        store.insert(&[version("/etc/tls.key", None, &b, true)]).unwrap();
        assert_eq!(
            depths(&store),
            vec![(1, None, 0, true), (2, None, 0, false), (3, None, 0, true), (4, Some(3), 1, true)]
        );
        assert!(matches!(store.content(2, false), Err(Error::Redacted { id: 2 })));
        assert!(matches!(store.content(3, true), Err(Error::Redacted { id: 3 })));
        assert!(matches!(store.content(5, false), Err(Error::Redacted { id: 5 })));
        assert_eq!(store.content(3, false).unwrap(), c);
        assert_eq!(store.content(4, false).unwrap(), d);
        assert_eq!(store.content(1, false).unwrap(), a);
        let report = store.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // Every version that refers to the purged content reads as redacted.
        let labels: Vec<String> = (1..=5).map(|id| store.version(id).unwrap().content).collect();
        assert_eq!(labels, ["stored", "redacted", "stored", "stored", "redacted"]);
        // Stored again later under a plain name (its intake had not heard):
        // not stored, and labelled so.
        store.insert(&[version("/etc/copy", None, &b, false)]).unwrap();
        assert!(matches!(store.content(6, false), Err(Error::Redacted { id: 6 })));
        assert_eq!(depths(&store)[1], (2, None, 0, false));
        assert_eq!(store.redacted_hashes().unwrap().len(), 1);
    }

    #[test]
    fn purge_by_hash_at_start_and_empty_content_is_never_secret() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        store.insert(&[version("/etc/a", None, b"walked secret", false)]).unwrap();
        store.insert(&[version("/etc/e.key", Some(b""), b"", true)]).unwrap();
        store.insert(&[version("/etc/e", None, b"", false)]).unwrap();
        let hash: Hash =
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(b"walked secret")).into();
        assert_eq!(store.purge_hashes(&HashSet::from([hash, [7; 32]])).unwrap(), 1);
        assert!(matches!(store.content(1, false), Err(Error::Redacted { id: 1 })));
        assert_eq!(store.content(3, false).unwrap(), b"");
        assert_eq!(store.redacted_hashes().unwrap(), HashSet::from([hash]));
        assert!(store.verify().unwrap().problems.is_empty());
    }
}
