//! What the review commands read, from either store: one host's SQLite
//! store ([`Store`], local) or the fleet's PostgreSQL store ([`fleet`],
//! every host's shipped versions). [`History`] is the seam: the questions
//! `query`, `log`, `show`, `diff`, `users`, `user` and `stats` ask, answered
//! with the same record types (the `--json` contract) by both. `--db` picks
//! the store ([`open`]): a `postgresql://` or `postgres://` URL is the fleet,
//! anything else a SQLite file.
//!
//! A version is named by [`VersionId`]: `HOST:ID` (the host's own version
//! id, the fleet's `seq`), or a plain `ID` where only one host has it.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::{Record, VersionRow};
use crate::store::Store;
use crate::store::gaps::GapRow;
use crate::store::query::{QueryFilter, Stats};
use crate::store::review::{FileSummary, SessionSummary, UserSummary};

pub mod fleet;
mod local;

/// A version as the command line names it: `web1:42`, or `42`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionId {
    pub host: Option<String>,
    pub id: i64,
}

impl std::str::FromStr for VersionId {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (host, id) = match s.rsplit_once(':') {
            Some((host, id)) if !host.is_empty() => (Some(host.to_owned()), id),
            _ => (None, s),
        };
        let id = id.parse().map_err(|_| format!("{s:?}: not a version id (ID or HOST:ID)"))?;
        Ok(VersionId { host, id })
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Some(host) => write!(f, "{host}:{}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

impl VersionId {
    /// The id of a version read back (its host named when it has one).
    pub fn of(v: &VersionRow) -> VersionId {
        VersionId { host: v.host.clone(), id: v.id }
    }
}

/// The read side of a store. Every method answers as the local store
/// always has; `filter.host` and the `host` arguments select one host.
pub trait History {
    /// Versions matching `filter`, in its order, at most `filter.limit`.
    fn versions(&self, filter: &QueryFilter) -> Result<Vec<VersionRow>>;
    /// The gaps `filter` asks for, in its order (`store/gaps.rs`).
    fn gaps(&self, filter: &QueryFilter) -> Result<Vec<GapRow>>;
    /// Every path recorded under `dir` (as `path`, `named_path` or
    /// `old_path`), each once, in byte order: what a glob is matched against.
    fn paths_under(&self, dir: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Some version was made by a human of this name.
    fn knows_user(&self, name: &str) -> Result<bool>;
    /// The hosts whose versions the store holds, by name.
    fn hosts(&self) -> Result<Vec<String>>;
    /// One version.
    fn version(&self, id: &VersionId) -> Result<VersionRow>;
    /// The exact bytes of a version's after (or before) content, checked
    /// against its SHA-256; errors as [`Store::content`].
    fn content(&self, id: &VersionId, before: bool) -> Result<Vec<u8>>;
    /// Every human who changed something (or only `only`), most recent first.
    fn users(&self, only: Option<&str>, host: Option<&str>) -> Result<Vec<UserSummary>>;
    /// The files `user` changed, most recent first.
    fn user_files(&self, user: &str, host: Option<&str>) -> Result<Vec<FileSummary>>;
    /// `user`'s login sessions, oldest first.
    fn user_sessions(&self, user: &str, host: Option<&str>) -> Result<Vec<SessionSummary>>;
    /// Counts, size, oldest and newest, gaps by kind.
    fn stats(&self) -> Result<Stats>;
    /// How `stats` names the store.
    fn name(&self) -> String;

    /// Versions and gaps matching `filter`, interleaved by time (ties:
    /// versions first), at most `limit` in all.
    fn records(&self, filter: &QueryFilter) -> Result<Vec<Record>> {
        let versions = self.versions(filter)?.into_iter().map(Record::Version);
        let gaps = self.gaps(filter)?.into_iter().map(Record::Gap);
        let mut all: Vec<Record> = versions.chain(gaps).collect();
        // Both lists are in order already; a stable sort keeps ties.
        if filter.newest_first {
            all.sort_by_key(|r| std::cmp::Reverse(r.time_us()));
        } else {
            all.sort_by_key(Record::time_us);
        }
        if let Some(n) = filter.limit {
            all.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(all)
    }

    /// `--host NAME`: a host the store has no version of is a typo.
    fn check_host(&self, host: &str) -> Result<()> {
        let hosts = self.hosts()?;
        if hosts.iter().any(|h| h == host) {
            return Ok(());
        }
        let known = hosts.iter().map(|h| crate::print::q(h).into_owned()).collect::<Vec<_>>().join(", ");
        Err(Error::Usage(format!(
            "--host {}: no version of this host in the store (hosts: {known})",
            crate::print::q(host)
        )))
    }
}

/// The fleet store's URL when `--db` names one.
pub fn fleet_url(db: &Path) -> Option<&str> {
    let s = db.to_str()?;
    (s.starts_with("postgresql://") || s.starts_with("postgres://")).then_some(s)
}

/// The store `--db` names, for reading.
pub fn open(db: &Path) -> Result<Box<dyn History>> {
    Ok(match fleet_url(db) {
        Some(url) => Box::new(fleet::Fleet::connect(url)?),
        None => Box::new(Store::open_read(db)?),
    })
}

/// A command that works on one host's own store only (`restore`, `export-git`...).
pub fn local_only(db: &Path, what: &str) -> Result<()> {
    match fleet_url(db) {
        Some(_) => Err(Error::Usage(format!(
            "{what} works on a host's own SQLite store, not on the fleet's PostgreSQL store: give that host's --db"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_named_by_host_and_id_or_by_id() {
        let id: VersionId = "web-1.example:42".parse().unwrap();
        assert_eq!(id, VersionId { host: Some("web-1.example".into()), id: 42 });
        assert_eq!(id.to_string(), "web-1.example:42");
        assert_eq!("7".parse::<VersionId>().unwrap(), VersionId { host: None, id: 7 });
        assert!("h1:x".parse::<VersionId>().is_err() && "".parse::<VersionId>().is_err());
    }

    #[test]
    fn only_postgres_urls_name_the_fleet() {
        assert_eq!(fleet_url(Path::new("postgresql://u@h:5432/db")), Some("postgresql://u@h:5432/db"));
        assert!(fleet_url(Path::new("postgres://h/db")).is_some());
        assert!(fleet_url(Path::new("/var/lib/filetrail/store.db")).is_none());
    }
}
