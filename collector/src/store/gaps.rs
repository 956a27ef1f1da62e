//! Gaps: what could not be recorded, kept as records of their own (table
//! `gaps`, migration 0004), so that "no record" never silently means "no
//! change". A gap says how many versions of which user are missing and, when
//! known, the span they fall in. `collector stats` sums them up; `query`
//! and `log` do not list them yet.

use rusqlite::params;
use serde::Serialize;

use super::Store;
use crate::error::Result;

/// One gap, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// When the collector learned of it (µs since the epoch).
    pub time_us: i64,
    /// The span it covers, as the writer claimed it.
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// What happened: `lost_in_library`, `spool_malformed`, `spool_truncated`.
    pub what: &'static str,
    /// How many versions (at least; 0 when unknown).
    pub versions: u64,
    /// Content bytes they carried (0 when unknown).
    pub bytes: u64,
    /// Where it was learned (a spool file's name).
    pub source: Option<String>,
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
    /// Stores `gaps` in one transaction.
    pub fn insert_gaps(&mut self, gaps: &[Gap]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for g in gaps {
            tx.prepare_cached(
                "INSERT INTO gaps (time_us, since_us, until_us, uid, user, what, versions, bytes, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                g.time_us,
                g.since_us,
                g.until_us,
                g.uid,
                &g.user,
                g.what,
                g.versions as i64,
                g.bytes as i64,
                &g.source
            ])?;
        }
        tx.commit()?;
        Ok(())
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
            source: None,
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
}
