//! Applies the folding rules ([`crate::fold`]) to stored versions, in the
//! transaction that stores them.
//!
//! After each version is stored: if it ends a file (a `rename` from it, a
//! `write`/`create` via it, its `delete`), that file's steps are looked up
//! and folded ([`refold`]); if it is a step of a file whose end was stored
//! first (a report that came late: a created file the assembler held back
//! while another process renamed it), the fold is done again at that end.
//! Folding only sets `folded_into` (and turns a rename into a write via its
//! source): every row and its content stay. It never unfolds: a later
//! step that breaks a rule leaves what was folded as it was.
//!
//! Cost: a few indexed lookups per version; the search for the end of a
//! late step looks at the last [`RECENT_ROWS`] versions only.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::Result;
use crate::fold::{self, Ending, FOLD_WINDOW, Fold, Step};

/// How many of the most recent versions a late step's end is looked for in.
const RECENT_ROWS: i64 = 100_000;

fn window_us() -> i64 {
    FOLD_WINDOW.as_micros() as i64
}

/// A stored version as folding needs it.
struct Row {
    step: Step,
    time_us: i64,
    path: Vec<u8>,
    old_path: Option<Vec<u8>>,
    via: Option<Vec<u8>>,
}

const ROW: &str =
    "SELECT v.id, v.action, v.via IS NOT NULL, p.euid, p.session, w.pid, v.time_us, v.path, v.old_path, v.via,
        v.before_state IS NOT NULL
    FROM versions v JOIN principals p ON p.id = v.principal JOIN writers w ON w.id = v.writer";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        step: Step {
            id: r.get(0)?,
            action: r.get(1)?,
            via: r.get(2)?,
            euid: r.get(3)?,
            session: r.get(4)?,
            pid: r.get(5)?,
            replaced: r.get(10)?,
        },
        time_us: r.get(6)?,
        path: r.get(7)?,
        old_path: r.get(8)?,
        via: r.get(9)?,
    })
}

/// The file `end` ends, and how: `None` when it ends none.
fn ending(end: &Row) -> Option<(&[u8], Ending)> {
    match (&end.old_path, &end.via) {
        (Some(source), _) | (None, Some(source)) => Some((source, Ending::Renamed)),
        _ if end.step.action == "delete" => Some((&end.path, Ending::Deleted)),
        _ => None,
    }
}

/// Version `id` was just stored: fold what it ends, and what ends it.
pub(super) fn after_insert(tx: &Transaction, id: i64) -> Result<()> {
    let Some(new) = tx.prepare_cached(&format!("{ROW} WHERE v.id = ?1"))?.query_row([id], row).optional()? else {
        return Ok(());
    };
    if ending(&new).is_some() {
        refold(tx, &new)?;
    }
    // A step of a file whose end is stored already (its time is later).
    let lo = id - RECENT_ROWS;
    let (from, to) = (new.time_us, new.time_us + window_us());
    let later_end: Option<i64> = tx
        .prepare_cached(
            // By time: versions stored earlier but timed after this one
            // are few (a version is stored soon after its time), however
            // long the path's history (a path's index would scan it all).
            "SELECT id FROM versions INDEXED BY versions_time
             WHERE time_us BETWEEN ?4 AND ?5 AND id > ?2 AND id < ?3
               AND (old_path = ?1 OR via = ?1 OR (path = ?1 AND action = 'delete'))
             ORDER BY time_us, id LIMIT 1",
        )?
        .query_row(params![&new.path, lo, id, from, to], |r| r.get(0))
        .optional()?;
    if let Some(end) = later_end
        && let Some(end) = tx.prepare_cached(&format!("{ROW} WHERE v.id = ?1"))?.query_row([end], row).optional()?
    {
        refold(tx, &end)?;
    }
    Ok(())
}

/// Applies the rules to `end` and the steps of the file it ends.
fn refold(tx: &Transaction, end: &Row) -> Result<()> {
    let Some((source, how)) = ending(end) else { return Ok(()) };
    let (id, t) = (end.step.id, end.time_us);
    // The file came into being (again) after its previous end.
    let previous: Option<i64> = tx
        .prepare_cached(
            "SELECT max(time_us) FROM (
                SELECT id, time_us FROM versions WHERE old_path = ?1
                UNION ALL SELECT id, time_us FROM versions WHERE via = ?1
                UNION ALL SELECT id, time_us FROM versions WHERE path = ?1 AND action = 'delete')
             WHERE id != ?2 AND time_us BETWEEN ?3 AND ?4 AND (time_us < ?4 OR id < ?2)",
        )?
        .query_row(params![source, id, t - window_us(), t], |r| r.get(0))?;
    let since = previous.map_or(t - window_us(), |p| p + 1);
    let steps: Vec<Step> = tx
        .prepare_cached(&format!(
            "{ROW} WHERE v.path = ?1 AND v.id != ?2 AND v.time_us BETWEEN ?3 AND ?4
                AND (v.folded_into IS NULL OR v.folded_into = ?2)
             ORDER BY v.time_us, v.id"
        ))?
        .query_map(params![source, id, since, t], row)?
        .map(|r| r.map(|r| r.step))
        .collect::<rusqlite::Result<_>>()?;
    let fold = |ids: &[i64], into: i64| -> Result<()> {
        let mut stmt = tx.prepare_cached("UPDATE versions SET folded_into = ?2 WHERE id = ?1")?;
        for step in ids {
            stmt.execute(params![step, into])?;
        }
        Ok(())
    };
    match fold::decide(&end.step, how, &steps, source) {
        Fold::Keep => {}
        Fold::Scratch(ids) => fold(&[ids, vec![id]].concat(), id)?,
        Fold::Into(ids) => {
            fold(&ids, id)?;
            // The rename becomes a write (or create) of its target via the
            // temp name; one that changed nothing at all is folded into itself.
            tx.prepare_cached(
                "UPDATE versions SET via = coalesce(via, old_path), old_path = NULL,
                    action = CASE WHEN before_state IS NULL THEN 'create' ELSE 'write' END
                 WHERE id = ?1 AND old_path IS NOT NULL",
            )?
            .execute([id])?;
            tx.prepare_cached(
                "UPDATE versions SET
                    folded_into = CASE WHEN mode IS before_mode AND owner_uid IS before_owner_uid
                        AND group_gid IS before_group_gid THEN id END,
                    action = 'attrib'
                 WHERE id = ?1 AND before_blob IS NOT NULL AND before_blob = after_blob",
            )?
            .execute([id])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Store;
    use crate::model::{Action, Draft, NewVersion, SeenBy, Side};
    use crate::who::Identity;

    fn side(bytes: &str) -> Option<Side> {
        Some(Side::from_bytes(bytes.as_bytes().to_vec(), None, true))
    }

    fn who(pid: i32, euid: u32) -> Arc<Identity> {
        Arc::new(Identity { pid, euid, key: (pid as u64) << 32 | euid as u64, session: Some(5), ..Default::default() })
    }

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    struct T {
        store: Store,
        _dir: tempfile::TempDir,
    }

    impl T {
        fn new() -> T {
            let dir = tempfile::tempdir().unwrap();
            T { store: Store::open(&dir.path().join("t.db")).unwrap(), _dir: dir }
        }
        #[allow(clippy::too_many_arguments)]
        fn put(
            &mut self,
            secs: i64,
            pid: i32,
            action: Action,
            path: &str,
            old: Option<&str>,
            before: Option<&str>,
            after: Option<&str>,
        ) -> i64 {
            self.put_as(secs, who(pid, 0), SeenBy::Library, action, path, old, before, after)
        }
        #[allow(clippy::too_many_arguments)]
        fn put_as(
            &mut self,
            secs: i64,
            who: Arc<Identity>,
            seen_by: SeenBy,
            action: Action,
            path: &str,
            old: Option<&str>,
            before: Option<&str>,
            after: Option<&str>,
        ) -> i64 {
            let mut draft = Draft::new(path.into(), action, before.and_then(side), after.and_then(side), at(secs));
            draft.old_path = old.map(Into::into);
            draft.seen_by = seen_by;
            self.store.insert(&[NewVersion { draft, who, delivery: None }]).unwrap()[0].unwrap()
        }
        /// (id, folded_into) of every row.
        fn rows(&self) -> Vec<(i64, Option<i64>)> {
            let mut stmt = self.store.conn.prepare("SELECT id, folded_into FROM versions ORDER BY id").unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
        }
        /// The default view: (action, path, via).
        fn shown(&self) -> Vec<(String, String, Option<String>)> {
            let all = crate::store::QueryFilter::default();
            self.store.versions(&all).unwrap().into_iter().map(|v| (v.action, v.path, v.via)).collect()
        }
    }

    fn shown(action: &str, path: &str, via: Option<&str>) -> (String, String, Option<String>) {
        (action.into(), path.into(), via.map(Into::into))
    }

    /// add-shell with the kernel watch on: `cat f > f.tmp`'s create is held
    /// back, so the first `echo >> f.tmp` looks like it follows a change
    /// nobody reported (a kernel row credited to cat, gone: unknown); the
    /// rename comes; then cat's report, which replaces the kernel row. One
    /// write via the temp.
    #[test]
    fn a_kernel_row_replaced_by_a_late_create_does_not_keep_the_temp_from_folding() {
        let mut t = T::new();
        let registry = Arc::new(crate::registry::Registry::open(&t._dir.path().join("t.db")).unwrap());
        let unrecorded = Arc::new(crate::unrecorded::Unrecorded::new(registry));
        t.store.set_unrecorded(unrecorded.clone());
        t.put(0, 10, Action::Create, "/etc/shells", None, None, Some("a\n"));
        unrecorded.note(b"/etc/shells.tmp", 11, None, at(60));
        t.put(61, 12, Action::Write, "/etc/shells.tmp", None, Some("a\n"), Some("a\nb\n"));
        t.put(63, 13, Action::Rename, "/etc/shells", Some("/etc/shells.tmp"), Some("a\n"), Some("a\nb\n"));
        t.put(60, 11, Action::Create, "/etc/shells.tmp", None, None, Some("a\n"));
        assert_eq!(
            t.shown(),
            vec![shown("create", "/etc/shells", None), shown("write", "/etc/shells", Some("/etc/shells.tmp"))],
            "{:?}",
            t.rows()
        );
    }

    #[test]
    fn cp_append_mv_across_processes_is_one_write_via_the_temp() {
        let mut t = T::new();
        t.put(0, 10, Action::Create, "/etc/shells", None, None, Some("a\n"));
        t.put(60, 11, Action::Create, "/etc/shells.tmp", None, None, Some("a\n"));
        t.put(61, 12, Action::Write, "/etc/shells.tmp", None, Some("a\n"), Some("a\nb\n"));
        t.put(62, 12, Action::Write, "/etc/shells.tmp", None, Some("a\nb\n"), Some("a\nb\nc\n"));
        let mv = t.put(63, 13, Action::Rename, "/etc/shells", Some("/etc/shells.tmp"), Some("a\n"), Some("a\nb\nc\n"));
        assert_eq!(
            t.shown(),
            vec![shown("create", "/etc/shells", None), shown("write", "/etc/shells", Some("/etc/shells.tmp"))]
        );
        let rows = t.rows();
        assert!(rows[1..4].iter().all(|r| r.1 == Some(mv)), "{rows:?}");
        // The raw view keeps every step.
        let raw = crate::store::QueryFilter { raw: true, ..Default::default() };
        assert_eq!(t.store.versions(&raw).unwrap().len(), 5);
        // The temp file is gone as far as the store knows.
        assert_eq!(t.store.last_known(b"/etc/shells.tmp").unwrap().unwrap().side, None);
        assert_eq!(
            t.store.last_known(b"/etc/shells").unwrap().unwrap().side.unwrap().sha256,
            side("a\nb\nc\n").unwrap().sha256
        );
    }

    #[test]
    fn a_create_reported_after_the_rename_is_folded_when_it_arrives() {
        let mut t = T::new();
        let mv = t.put(10, 21, Action::Rename, "/etc/screenrc", Some("/etc/screenrc.dpkg-new"), None, Some("x"));
        assert_eq!(t.shown(), vec![shown("rename", "/etc/screenrc", None)]);
        t.put(5, 20, Action::Create, "/etc/screenrc.dpkg-new", None, None, Some("x"));
        assert_eq!(t.shown(), vec![shown("create", "/etc/screenrc", Some("/etc/screenrc.dpkg-new"))]);
        assert_eq!(t.rows()[1].1, Some(mv));
        assert_eq!(t.store.last_known(b"/etc/screenrc.dpkg-new").unwrap().unwrap().side, None);
    }

    #[test]
    fn past_the_window_or_by_another_user_nothing_folds() {
        let mut t = T::new();
        t.put(0, 10, Action::Create, "/etc/a.new", None, None, Some("x"));
        t.put(601, 11, Action::Rename, "/etc/a", Some("/etc/a.new"), None, Some("x"));
        t.put_as(700, who(12, 1000), SeenBy::Library, Action::Create, "/srv/b.tmp", None, None, Some("y"));
        t.put(701, 13, Action::Rename, "/srv/b", Some("/srv/b.tmp"), None, Some("y"));
        let actions: Vec<String> = t.shown().into_iter().map(|s| s.0).collect();
        assert_eq!(actions, ["create", "rename", "create", "rename"]);
    }

    #[test]
    fn the_kernel_watch_rename_folds_the_same_way() {
        let mut t = T::new();
        t.put_as(0, who(30, 0), SeenBy::Kernel, Action::Create, "/etc/x.conf.dpkg-new", None, None, Some("n"));
        t.put_as(
            8,
            who(31, 0),
            SeenBy::Kernel,
            Action::Rename,
            "/etc/x.conf",
            Some("/etc/x.conf.dpkg-new"),
            Some("o"),
            Some("n"),
        );
        assert_eq!(t.shown(), vec![shown("write", "/etc/x.conf", Some("/etc/x.conf.dpkg-new"))]);
    }

    #[test]
    fn scratch_files_vanish_and_real_deletes_stay() {
        let mut t = T::new();
        // A temp-named file deleted unrenamed, by another process.
        t.put(0, 10, Action::Create, "/etc/shells.tmp", None, None, Some("a"));
        t.put(1, 11, Action::Delete, "/etc/shells.tmp", None, Some("a"), None);
        // A lock file one process made and removed.
        t.put(2, 12, Action::Create, "/etc/shadow.lock", None, None, Some("12"));
        t.put(9, 12, Action::Delete, "/etc/shadow.lock", None, Some("12"), None);
        assert_eq!(t.shown(), vec![]);
        assert!(t.rows().iter().all(|r| r.1.is_some()));
        // An installed conffile purged: its delete stays.
        t.put(20, 13, Action::Create, "/etc/mkshrc.dpkg-new", None, None, Some("rc"));
        t.put(21, 14, Action::Rename, "/etc/mkshrc", Some("/etc/mkshrc.dpkg-new"), None, Some("rc"));
        t.put(30, 15, Action::Delete, "/etc/mkshrc", None, Some("rc"), None);
        // A file an admin wrote and another command removed.
        t.put(40, 16, Action::Create, "/etc/motd.local", None, None, Some("hi"));
        t.put(41, 17, Action::Delete, "/etc/motd.local", None, Some("hi"), None);
        assert_eq!(
            t.shown(),
            vec![
                shown("create", "/etc/mkshrc", Some("/etc/mkshrc.dpkg-new")),
                shown("delete", "/etc/mkshrc", None),
                shown("create", "/etc/motd.local", None),
                shown("delete", "/etc/motd.local", None)
            ]
        );
    }

    #[test]
    fn a_dpkg_dist_left_beside_the_conffile_stays() {
        let mut t = T::new();
        t.put(0, 10, Action::Create, "/etc/x.conf.dpkg-new", None, None, Some("new"));
        t.put(5, 11, Action::Rename, "/etc/x.conf.dpkg-dist", Some("/etc/x.conf.dpkg-new"), None, Some("new"));
        assert_eq!(t.shown(), vec![shown("create", "/etc/x.conf.dpkg-dist", Some("/etc/x.conf.dpkg-new"))]);
    }

    #[test]
    fn a_temp_renamed_over_a_temp_then_over_the_target_is_one_version() {
        let mut t = T::new();
        t.put(0, 9, Action::Create, "/etc/shells", None, None, Some("a\nb\n"));
        t.put(100, 10, Action::Create, "/etc/shells.tmp", None, None, Some("a\nb\n"));
        t.put(101, 11, Action::Create, "/etc/shells.tmp2", None, None, Some("a\n"));
        t.put(102, 12, Action::Rename, "/etc/shells.tmp", Some("/etc/shells.tmp2"), Some("a\nb\n"), Some("a\n"));
        t.put(103, 13, Action::Create, "/etc/shells.tmp2", None, None, Some(""));
        t.put(104, 14, Action::Rename, "/etc/shells.tmp", Some("/etc/shells.tmp2"), Some("a\n"), Some(""));
        t.put(105, 15, Action::Rename, "/etc/shells", Some("/etc/shells.tmp"), Some("a\nb\n"), Some(""));
        assert_eq!(t.shown()[1..], [shown("write", "/etc/shells", Some("/etc/shells.tmp"))]);
    }

    #[test]
    fn a_rename_that_changed_nothing_is_no_version() {
        let mut t = T::new();
        t.put(0, 9, Action::Create, "/etc/f", None, None, Some("x"));
        t.put(10, 10, Action::Create, "/etc/f.new", None, None, Some("x"));
        t.put(11, 11, Action::Rename, "/etc/f", Some("/etc/f.new"), Some("x"), Some("x"));
        assert_eq!(t.shown(), vec![shown("create", "/etc/f", None)]);
    }

    /// SQLite 3.54 marks a statement with a join and a `col = ?` term to be
    /// planned again whenever its bindings are cleared, which rusqlite's
    /// statement cache does after every use: without the planner stability
    /// guarantee the store turns on, every version stored parsed its
    /// folding queries again (7% of the collector's time at ingest).
    #[test]
    fn cached_statements_are_not_planned_again_at_each_use() {
        let mut t = T::new();
        for i in 0..20 {
            t.put(i, 100, Action::Write, "/etc/x.conf", None, Some(&format!("v{i}")), Some(&format!("v{}", i + 1)));
        }
        let st = t.store.conn.prepare_cached(&format!("{} WHERE v.id = ?1", super::ROW)).unwrap();
        assert!(st.get_status(rusqlite::StatementStatus::VmStep) > 0, "the statement was used");
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
