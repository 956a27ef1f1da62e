//! Gaps: what could not be recorded, kept as records of their own (table
//! `gaps`, migrations 0004 and 0007), so that "no record" never silently
//! means "no change". A gap says how many versions of which user are
//! missing, what happened, and where known the process (kernel-verified on
//! a live connection), the file and the span they fall in. `collector
//! stats` sums them up by kind; `query` and `log` list them among the
//! versions, by time ([`Store::gaps`]).

use rusqlite::params;
use serde::Serialize;

use super::Store;
use super::query::QueryFilter;
use crate::error::Result;

/// One gap, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gap {
    /// When the collector learned of it (µs since the epoch).
    pub time_us: i64,
    /// The span it covers, as the writer claimed it.
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// What happened: `lost_in_library`, `spool_malformed`,
    /// `spool_truncated`, `open_not_recorded`.
    pub what: &'static str,
    /// How many versions (at least; 0 when unknown). The library counts
    /// events: an edit whose open and close were both lost counts 2.
    pub versions: u64,
    /// Content bytes they carried (0 when unknown).
    pub bytes: u64,
    /// Where it was learned (a spool file's name).
    pub source: Option<String>,
    /// The process, when a live connection reported it (kernel-verified).
    pub pid: Option<i32>,
    pub exe: Option<String>,
    /// The file, when the gap is about one.
    pub path: Option<Vec<u8>>,
    /// Over the user's rate of gap records ([`crate::intake`]): added to
    /// their last gap of this kind instead of a row of its own.
    pub coalesce: bool,
}

/// A gap as `query` and `log` show it (`query --json`: `"kind": "gap"`).
#[derive(Debug, Clone, Serialize)]
pub struct GapRow {
    /// Always `"gap"`: versions carry no `kind`.
    pub kind: &'static str,
    pub id: i64,
    /// Where it sits among the versions: the start of its span, else when
    /// the collector learned of it.
    pub time: String,
    pub what: String,
    pub versions: u64,
    pub bytes: u64,
    pub since: Option<String>,
    pub until: Option<String>,
    /// When the collector learned of it.
    pub recorded: String,
    pub path: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub pid: Option<i32>,
    pub exe: Option<String>,
    pub source: Option<String>,
    /// The host it happened on (a local store's: this machine).
    pub host: Option<String>,
    #[serde(skip)]
    pub raw_path: Option<Vec<u8>>,
    #[serde(skip)]
    pub time_us: i64,
}

/// The gaps of one kind, summed (`collector stats`).
#[derive(Debug, Clone, Serialize)]
pub struct GapSummary {
    pub what: String,
    pub records: i64,
    pub versions: i64,
    pub bytes: i64,
    /// Distinct users concerned.
    pub users: Vec<String>,
    /// When the first and the last were recorded.
    pub first: Option<String>,
    pub last: Option<String>,
}

impl Store {
    /// Stores `gaps` in one transaction. A gap to `coalesce` adds its
    /// counts to the last gap of the same user and kind (a row of its own
    /// when there is none).
    pub fn insert_gaps(&mut self, gaps: &[Gap]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for g in gaps {
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            if g.coalesce {
                let merged = tx
                    .prepare_cached(
                        "UPDATE gaps SET versions = min(versions + ?1, 9223372036854775807),
                             bytes = min(bytes + ?2, 9223372036854775807),
                             until_us = max(coalesce(until_us, time_us), ?3)
                         WHERE id = (SELECT max(id) FROM gaps WHERE uid IS ?4 AND what = ?5)",
                    )?
                    .execute(params![count(g.versions), count(g.bytes), g.time_us, g.uid, g.what])?;
                if merged > 0 {
                    continue;
                }
            }
            tx.prepare_cached(
                "INSERT INTO gaps (time_us, since_us, until_us, uid, user, what, versions, bytes, source, pid, exe, path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                g.time_us,
                g.since_us,
                g.until_us,
                g.uid,
                &g.user,
                g.what,
                count(g.versions),
                count(g.bytes),
                &g.source,
                g.pid,
                &g.exe,
                &g.path
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The gaps `filter` asks for, in its order (oldest first unless
    /// `newest_first`). A gap about a file matches the paths asked as a
    /// version of that file would; a gap about no file in particular only
    /// a listing without paths. `user` matches the gap's user or the
    /// user's uid; a gap matches a time range it overlaps; no gap belongs
    /// to a session.
    pub fn gaps(&self, filter: &QueryFilter) -> Result<Vec<GapRow>> {
        let here = crate::hostname::get();
        if filter.session.is_some() || filter.host.as_ref().is_some_and(|h| Some(h) != here.as_ref()) {
            return Ok(Vec::new());
        }
        let uid = filter.user.as_deref().and_then(uzers::get_user_by_name).map(|u| u.uid());
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, time_us, since_us, until_us, uid, user, what, versions, bytes, source, pid, exe, path,
                    coalesce(since_us, time_us) AS start
             FROM gaps
             WHERE (?1 IS NULL OR user = ?1 OR (?2 IS NOT NULL AND uid = ?2))
               AND (?3 IS NULL OR max(coalesce(until_us, time_us), time_us) >= ?3)
               AND (?4 IS NULL OR coalesce(since_us, time_us) < ?4)
             ORDER BY start {order}, id {order}"
        ))?;
        let args = params![
            filter.user,
            uid,
            filter.since.map(|t| t.as_microsecond()),
            filter.until.map(|t| t.as_microsecond())
        ];
        let time = |us: i64| jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default();
        let rows = stmt.query_map(args, |r| {
            let raw_path: Option<Vec<u8>> = r.get("path")?;
            let start: i64 = r.get("start")?;
            Ok(GapRow {
                kind: "gap",
                id: r.get("id")?,
                time: time(start),
                what: r.get("what")?,
                versions: r.get::<_, i64>("versions")?.max(0) as u64,
                bytes: r.get::<_, i64>("bytes")?.max(0) as u64,
                since: r.get::<_, Option<i64>>("since_us")?.map(time),
                until: r.get::<_, Option<i64>>("until_us")?.map(time),
                recorded: time(r.get("time_us")?),
                path: raw_path.as_deref().map(filetrail_wire::path::escape_bytes),
                uid: r.get("uid")?,
                user: r.get("user")?,
                pid: r.get("pid")?,
                exe: r.get("exe")?,
                source: r.get("source")?,
                host: here.clone(),
                raw_path,
                time_us: start,
            })
        })?;
        let mut gaps = Vec::new();
        for row in rows {
            let row = row?;
            let wanted = filter.paths.is_empty()
                || row.raw_path.as_deref().is_some_and(|p| filter.paths.iter().any(|spec| spec.matches(p)));
            if wanted {
                gaps.push(row);
            }
        }
        if let Some(n) = filter.limit {
            gaps.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(gaps)
    }

    /// The gaps, summed by kind.
    pub fn gap_summary(&self) -> Result<Vec<GapSummary>> {
        let time =
            |us: Option<i64>| us.and_then(|us| jiff::Timestamp::from_microsecond(us).ok()).map(|t| t.to_string());
        let mut stmt = self.conn.prepare(
            "SELECT what, count(*), sum(versions), sum(bytes), min(time_us), max(time_us),
                    group_concat(DISTINCT coalesce(user, uid))
             FROM gaps GROUP BY what ORDER BY what",
        )?;
        let rows = stmt.query_map([], |r| {
            let users: Option<String> = r.get(6)?;
            Ok(GapSummary {
                what: r.get(0)?,
                records: r.get(1)?,
                versions: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                users: users.map(|u| u.split(',').map(str::to_owned).collect()).unwrap_or_default(),
                first: time(r.get(4)?),
                last: time(r.get(5)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::query::PathSpec;

    #[test]
    fn gaps_are_stored_and_summed_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let gap = |what, versions, user: &str| Gap {
            time_us: 1_700_000_000_000_000,
            since_us: None,
            until_us: None,
            uid: Some(1000),
            user: Some(user.into()),
            what,
            versions,
            bytes: 10,
            ..Gap::default()
        };
        store
            .insert_gaps(&[
                gap("lost_in_library", 3, "alice"),
                gap("lost_in_library", 2, "bob"),
                gap("spool_malformed", 0, "bob"),
            ])
            .unwrap();
        let s = store.gap_summary().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].what.as_str(), s[0].records, s[0].versions, s[0].bytes), ("lost_in_library", 2, 5, 20));
        assert_eq!(s[0].users.len(), 2);
        assert_eq!((s[1].what.as_str(), s[1].records), ("spool_malformed", 1));
    }

    fn at(us: i64, what: &'static str, path: Option<&[u8]>) -> Gap {
        Gap {
            time_us: us,
            uid: Some(4242),
            user: Some("alice".into()),
            what,
            versions: 2,
            pid: Some(77),
            exe: Some("/usr/bin/vim".into()),
            path: path.map(<[u8]>::to_vec),
            ..Gap::default()
        }
    }

    #[test]
    fn a_gap_about_a_file_shows_for_that_file_and_one_about_none_only_unfiltered() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .insert_gaps(&[at(2_000, "open_not_recorded", Some(b"/etc/a.conf")), at(1_000, "lost_in_library", None)])
            .unwrap();
        let spec = |p: &[u8], under| PathSpec { path: p.to_vec(), under, glob: None };
        let what = |f: &QueryFilter| -> Vec<String> { store.gaps(f).unwrap().into_iter().map(|g| g.what).collect() };
        assert_eq!(what(&QueryFilter::default()), ["lost_in_library", "open_not_recorded"], "by time");
        let of = |paths| QueryFilter { paths, ..QueryFilter::default() };
        assert_eq!(what(&of(vec![spec(b"/etc/a.conf", false)])), ["open_not_recorded"]);
        assert_eq!(what(&of(vec![spec(b"/etc/", true)])), ["open_not_recorded"]);
        assert!(what(&of(vec![spec(b"/etc/a", false)])).is_empty());
        assert!(what(&of(vec![spec(b"/etc/a.conf.d", true)])).is_empty());
        let newest = QueryFilter { newest_first: true, limit: Some(1), ..QueryFilter::default() };
        assert_eq!(what(&newest), ["open_not_recorded"]);
        let row = &store.gaps(&QueryFilter::default()).unwrap()[0];
        assert_eq!(
            (row.kind, row.pid, row.exe.as_deref(), row.uid),
            ("gap", Some(77), Some("/usr/bin/vim"), Some(4242))
        );
        let by_user = |u: &str| QueryFilter { user: Some(u.into()), ..QueryFilter::default() };
        assert_eq!(what(&by_user("alice")).len(), 2);
        assert!(what(&by_user("nobody-such-user")).is_empty());
        let t = |us| Some(jiff::Timestamp::from_microsecond(us).unwrap());
        assert_eq!(what(&QueryFilter { since: t(1_500), ..QueryFilter::default() }), ["open_not_recorded"]);
        assert_eq!(what(&QueryFilter { until: t(1_500), ..QueryFilter::default() }), ["lost_in_library"]);
        assert!(what(&QueryFilter { session: Some(3), ..QueryFilter::default() }).is_empty());
    }

    #[test]
    fn a_coalesced_gap_adds_to_the_users_last_of_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let more = Gap { coalesce: true, versions: 3, ..at(5_000, "lost_in_library", None) };
        // Nothing to add to yet: a row of its own.
        store.insert_gaps(std::slice::from_ref(&more)).unwrap();
        store.insert_gaps(&[at(6_000, "open_not_recorded", None), more.clone(), more]).unwrap();
        let gaps = store.gaps(&QueryFilter::default()).unwrap();
        assert_eq!(gaps.len(), 2);
        assert_eq!((gaps[0].what.as_str(), gaps[0].versions), ("lost_in_library", 9));
        assert!(gaps[0].until.is_some());
    }
}
