//! What the store knows a path last held: its newest version's after —
//! newest by time among its last rows, as a created file's version is held
//! back and stored after a later change of it — (a
//! rename away, a rename over another path as a temp file, or a delete:
//! nothing), else its baseline — the content the
//! collector read when it first saw the file (`baseline` table, written by
//! the kernel watch at start, never shown as a version).
//!
//! The kernel watch compares what a file holds now with this to decide
//! whether a change went unreported; the store compares a new version's
//! before with it to flag `gap_before`. One indexed lookup each.

use filetrail_wire::Meta;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, put_blob};
use crate::error::Result;
use crate::model::{Side, Stored};

/// What a path last held as far as the store knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// `None`: the path did not exist. The side has no bytes (its blob does).
    pub side: Option<Side>,
    /// The newest version of the path, when it is one the kernel watch
    /// recorded: its id and the pid of the process the kernel named.
    pub kernel: Option<(i64, i32)>,
    /// The time of the newest version this comes from, or of the rename
    /// that took the path away (None: the baseline, or folded away).
    pub time_us: Option<i64>,
}

fn stored(state: Option<&str>) -> Stored {
    match state {
        Some("hash_only") => Stored::HashOnly,
        Some("redacted") => Stored::Redacted,
        Some("unreadable") => Stored::Unreadable,
        Some("quota") => Stored::Quota,
        _ => Stored::Stored,
    }
}

type Row = (Option<String>, Option<i64>, Option<String>, Option<u32>, Option<u32>, Option<u32>);

fn side(row: Row) -> Option<Side> {
    let (sha, size, state, mode, uid, gid) = row;
    let state = state?;
    let meta = mode.map(|mode| Meta { mode, uid: uid.unwrap_or(0), gid: gid.unwrap_or(0), ..Meta::default() });
    Some(Side {
        sha256: sha,
        size: size.unwrap_or(0) as u64,
        stored: stored(Some(&state)),
        bytes: None,
        meta,
        consistent: true,
    })
}

/// What `path` last held (see the module doc); `None` when the store has
/// neither a version nor a baseline of it.
pub fn last_known(conn: &Connection, path: &[u8]) -> Result<Option<Known>> {
    // The newest by time among the path's last rows by id: a created file's
    // version is held back (it may be a temp file) and stored after a later
    // change of it, so the highest id is not always the newest content.
    let newest: Option<(i64, Row, String, i32, Option<i64>, i64)> = conn
        .prepare_cached(
            "SELECT v.id, nullif(lower(hex(a.sha256)), ''), a.size,
                CASE WHEN a.redacted THEN 'redacted' ELSE v.after_state END, v.mode, v.owner_uid, v.group_gid,
                v.seen_by, w.pid, v.folded_into, v.time_us
             FROM versions v JOIN writers w ON w.id = v.writer LEFT JOIN blobs a ON a.id = v.after_blob
             WHERE v.path = ?1 ORDER BY v.id DESC LIMIT 8",
        )?
        .query_map([path], |r| {
            let row = (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?);
            Ok((r.get(0)?, row, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .max_by_key(|n| (n.5, n.0));
    // Renamed over another path: as itself (`old_path`) or as a temp file (`via`).
    // Its time: a report of a change made before it, coming after it, is late.
    let moved_away: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT id, time_us FROM versions WHERE id = (SELECT max(id) FROM
                (SELECT id FROM versions WHERE old_path = ?1 UNION ALL SELECT id FROM versions WHERE via = ?1))",
        )?
        .query_row([path], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((away, time_us)) = moved_away
        && newest.as_ref().is_none_or(|n| n.0 < away)
    {
        return Ok(Some(Known { side: None, kernel: None, time_us: Some(time_us) }));
    }
    // A step folded into another version (a rename of it, its delete),
    // stored after that version (it was reported late): gone as well.
    if newest.as_ref().is_some_and(|n| n.4.is_some_and(|into| into != n.0)) {
        return Ok(Some(Known { side: None, kernel: None, time_us: None }));
    }
    if let Some((id, row, seen_by, pid, _, time_us)) = newest {
        let kernel = (seen_by == "kernel").then_some((id, pid));
        return Ok(Some(Known { side: side(row), kernel, time_us: Some(time_us) }));
    }
    let base: Option<Row> = conn
        .prepare_cached(
            "SELECT nullif(lower(hex(b.sha256)), ''), b.size, CASE WHEN b.redacted THEN 'redacted' ELSE bl.state END,
                bl.mode, bl.owner_uid, bl.group_gid
             FROM baseline bl LEFT JOIN blobs b ON b.id = bl.blob WHERE bl.path = ?1",
        )?
        .query_row([path], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .optional()?;
    Ok(base.map(|row| Known { side: side(row), kernel: None, time_us: None }))
}

impl Store {
    /// What `path` last held (see [`last_known`]).
    pub fn last_known(&self, path: &[u8]) -> Result<Option<Known>> {
        last_known(&self.conn, path)
    }

    /// Records the baselines of files the store knows nothing of yet (the
    /// others are left as they are), in one transaction; returns how many
    /// were new. Their sides are already redacted where secret.
    pub fn add_baselines(&mut self, files: &[(Vec<u8>, Side)], time: jiff::Timestamp) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        let mut purged = false;
        for (path, side) in files {
            if last_known(&tx, path)?.is_some() {
                continue;
            }
            let put = put_blob(&tx, side, None)?;
            purged |= put.is_some_and(|p| p.purged);
            let state = if put.is_some_and(|p| p.secret) { Stored::Redacted } else { side.stored };
            tx.prepare_cached(
                "INSERT INTO baseline (path, time_us, blob, state, mode, owner_uid, group_gid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                path,
                time.as_microsecond(),
                put.map(|p| p.id),
                state.as_str(),
                side.meta.map(|m| m.mode & 0o7777),
                side.meta.map(|m| m.uid),
                side.meta.map(|m| m.gid),
            ])?;
            added += 1;
        }
        tx.commit()?;
        if purged {
            self.scrub_wal();
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Action, Draft, NewVersion, SeenBy};
    use crate::who::Identity;

    fn side(bytes: &[u8]) -> Option<Side> {
        Some(Side::from_bytes(bytes.to_vec(), None, true))
    }

    fn version(before: &[u8], after: &[u8], seen_by: SeenBy, pid: i32) -> NewVersion {
        let mut draft =
            Draft::new(b"/etc/a.conf".to_vec(), Action::Write, side(before), side(after), jiff::Timestamp::now());
        draft.seen_by = seen_by;
        NewVersion { draft, who: Arc::new(Identity { pid, key: pid as u64, ..Default::default() }), delivery: None }
    }

    fn rows(store: &Store) -> Vec<(i64, String, bool)> {
        let mut stmt = store.conn.prepare("SELECT id, seen_by, gap_before FROM versions ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn the_baseline_is_the_last_known_content_until_a_version_and_gaps_are_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        assert_eq!(store.last_known(b"/etc/a.conf").unwrap(), None);
        let base = side(b"v0").unwrap();
        assert_eq!(store.add_baselines(&[(b"/etc/a.conf".to_vec(), base.clone())], jiff::Timestamp::now()).unwrap(), 1);
        // Only once: a file the store knows is left alone.
        assert_eq!(store.add_baselines(&[(b"/etc/a.conf".to_vec(), base.clone())], jiff::Timestamp::now()).unwrap(), 0);
        let known = store.last_known(b"/etc/a.conf").unwrap().unwrap();
        assert_eq!(known.side.unwrap().sha256, base.sha256);
        // A library version from the baseline: no gap; then one whose before
        // is not the last after: a change went unseen.
        store.insert(&[version(b"v0", b"v1", SeenBy::Library, 1)]).unwrap();
        store.insert(&[version(b"changed unseen", b"v2", SeenBy::Library, 1)]).unwrap();
        assert_eq!(rows(&store), vec![(1, "library".into(), false), (2, "library".into(), true)]);
        assert_eq!(
            store.last_known(b"/etc/a.conf").unwrap().unwrap().side.unwrap().sha256,
            side(b"v2").unwrap().sha256
        );
    }

    #[test]
    fn a_late_library_report_of_the_change_the_kernel_recorded_becomes_that_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        store.insert(&[version(b"v0", b"v1", SeenBy::Kernel, 42)]).unwrap();
        // Another process reporting the same bytes does not take it over.
        store.insert(&[version(b"v0", b"v1", SeenBy::Library, 7)]).unwrap();
        assert_eq!(rows(&store), vec![(1, "kernel".into(), false), (2, "library".into(), true)]);
        // The process the kernel named does: one change, one version.
        store.insert(&[version(b"v1", b"v2", SeenBy::Kernel, 43)]).unwrap();
        // Stored as a version of its own, the kernel's row folded into it
        // (never rewritten: it is chained).
        let ids = store.insert(&[version(b"v1", b"v2", SeenBy::Library, 43)]).unwrap();
        assert_eq!(ids, vec![Some(4)]);
        assert_eq!(rows(&store)[2..], [(3, "kernel".into(), false), (4, "library".into(), false)]);
        let folded: Option<i64> =
            store.conn.query_row("SELECT folded_into FROM versions WHERE id = 3", [], |r| r.get(0)).unwrap();
        assert_eq!(folded, Some(4));
        assert!(store.last_known(b"/etc/a.conf").unwrap().unwrap().kernel.is_none());
    }

    /// `echo a=1 > new.conf; sed -i s/1/2/ new.conf`: the created file is
    /// held back (it may be a temp file) and stored after sed's version.
    /// Its before (absent) is not compared with sed's later after: no gap.
    #[test]
    fn an_earlier_change_stored_after_a_later_one_is_no_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        let mut sed = version(b"a=1\n", b"a=2\n", SeenBy::Library, 2);
        sed.draft.time = at(2);
        let mut create = version(b"", b"a=1\n", SeenBy::Library, 1);
        (create.draft.before, create.draft.action, create.draft.time) = (None, Action::Create, at(1));
        store.insert(&[sed]).unwrap();
        store.insert(&[create]).unwrap();
        assert_eq!(rows(&store), vec![(1, "library".into(), false), (2, "library".into(), false)]);
        // A later change whose before is not what came last is still a gap.
        let mut unseen = version(b"something else", b"a=3\n", SeenBy::Library, 3);
        unseen.draft.time = at(3);
        store.insert(&[unseen]).unwrap();
        assert_eq!(rows(&store)[2], (3, "library".into(), true));
    }

    /// The watch and its notes of who changed what, as `collector serve` sets them up.
    fn watched(dir: &std::path::Path) -> (Store, Arc<crate::unrecorded::Unrecorded>) {
        let mut store = Store::open(&dir.join("t.db")).unwrap();
        let registry = Arc::new(crate::registry::Registry::open(&dir.join("t.db")).unwrap());
        let unrecorded = Arc::new(crate::unrecorded::Unrecorded::new(registry));
        store.set_unrecorded(unrecorded.clone());
        (store, unrecorded)
    }

    fn sides(store: &Store, id: i64) -> (Option<String>, Option<String>, i32) {
        store
            .conn
            .query_row(
                "SELECT nullif(lower(hex(b.sha256)), ''), lower(hex(a.sha256)), w.pid FROM versions v
                 JOIN writers w ON w.id = v.writer
                 LEFT JOIN blobs b ON b.id = v.before_blob LEFT JOIN blobs a ON a.id = v.after_blob WHERE v.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }

    fn sha(bytes: &[u8]) -> Option<String> {
        Some(crate::model::sha256_hex(bytes))
    }

    /// `install /dev/null x` (no library) and within the watch's wait a
    /// session's `echo q=1 >> x`: the unseen change is a kernel version of
    /// its own, stored first, its after the library's before; no gap.
    #[test]
    fn a_change_the_watch_has_not_recorded_yet_is_stored_before_the_library_version_that_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, unrecorded) = watched(dir.path());
        store.add_baselines(&[(b"/etc/a.conf".to_vec(), side(b"v0").unwrap())], jiff::Timestamp::now()).unwrap();
        unrecorded.note(b"/etc/a.conf", 1_000_009, None, jiff::Timestamp::now());
        let mut library = version(b"v1", b"v2", SeenBy::Library, 1_000_001);
        library.draft.time = jiff::Timestamp::now();
        unrecorded.note(b"/etc/a.conf", 1_000_001, None, library.draft.time);
        assert_eq!(store.insert(&[library]).unwrap(), vec![Some(2)]);
        assert_eq!(rows(&store), vec![(1, "kernel".into(), false), (2, "library".into(), false)]);
        assert_eq!(sides(&store, 1), (sha(b"v0"), sha(b"v1"), 1_000_009));
        assert_eq!(sides(&store, 2), (sha(b"v1"), sha(b"v2"), 1_000_001));
        // Nothing the library's own process did is another change.
        store.insert(&[version(b"v2", b"v3", SeenBy::Library, 1_000_001)]).unwrap();
        assert_eq!(rows(&store).len(), 3);
    }

    /// Two sessions' processes: the second's report came first, and its
    /// before is not what the store knew. The first process reported its
    /// change meanwhile: it is not credited with another one (a gap, as
    /// without the watch).
    #[test]
    fn a_process_whose_library_reported_is_not_credited_with_an_unseen_change() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, unrecorded) = watched(dir.path());
        store.add_baselines(&[(b"/etc/a.conf".to_vec(), side(b"v0").unwrap())], jiff::Timestamp::now()).unwrap();
        unrecorded.note(b"/etc/a.conf", 1_000_001, None, jiff::Timestamp::now());
        unrecorded.note(b"/etc/a.conf", 1_000_002, None, jiff::Timestamp::now());
        store.insert(&[version(b"v0", b"b", SeenBy::Library, 1_000_002)]).unwrap();
        store.insert(&[version(b"v0", b"a", SeenBy::Library, 1_000_001)]).unwrap();
        assert_eq!(rows(&store), vec![(1, "library".into(), false), (2, "library".into(), true)]);
    }

    /// A user's library reports what it likes about a file it may write:
    /// its before is never made another user's change (nor an unknown
    /// process's); the report has a gap instead.
    #[test]
    fn an_ordinary_users_report_puts_no_change_in_another_users_name() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, unrecorded) = watched(dir.path());
        store.add_baselines(&[(b"/etc/a.conf".to_vec(), side(b"v0").unwrap())], jiff::Timestamp::now()).unwrap();
        unrecorded.note(b"/etc/a.conf", 1_000_009, None, jiff::Timestamp::now());
        let mut mallory = version(b"forged", b"v2", SeenBy::Library, 1_000_001);
        mallory.who = Arc::new(Identity { euid: 1000, ..Identity::clone(&mallory.who) });
        store.insert(&[mallory]).unwrap();
        assert_eq!(rows(&store), vec![(1, "library".into(), true)]);
    }

    /// `echo a=1 > new.conf; sed -i s/1/2/ new.conf` with the watch on: sed's
    /// version comes first (the create is held back) and its before looks
    /// like a change the shell made unseen; when the shell's report comes,
    /// the kernel's row of it is folded into it (one change, one version).
    #[test]
    fn a_held_back_report_of_a_change_taken_for_unseen_replaces_its_kernel_row() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, unrecorded) = watched(dir.path());
        let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        unrecorded.note(b"/etc/a.conf", 1_000_001, None, at(1));
        unrecorded.note(b"/etc/a.conf", 1_000_002, None, at(2));
        let mut sed = version(b"a=1\n", b"a=2\n", SeenBy::Library, 1_000_002);
        sed.draft.time = at(2);
        let mut create = version(b"", b"a=1\n", SeenBy::Library, 1_000_001);
        (create.draft.before, create.draft.action, create.draft.time) = (None, Action::Create, at(1));
        store.insert(&[sed]).unwrap();
        assert_eq!(sides(&store, 1), (None, sha(b"a=1\n"), 1_000_001));
        store.insert(&[create]).unwrap();
        let rows = rows(&store);
        assert_eq!(rows, vec![(1, "kernel".into(), false), (2, "library".into(), false), (3, "library".into(), false)]);
        let folded: Option<i64> =
            store.conn.query_row("SELECT folded_into FROM versions WHERE id = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(folded, Some(3));
    }
}
