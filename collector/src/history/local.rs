//! [`History`] on one host's SQLite store: the store's own queries. Its
//! versions are one host's: a `HOST:ID` naming another host names none.

use super::{History, VersionId};
use crate::error::{Error, Result};
use crate::model::VersionRow;
use crate::store::Store;
use crate::store::gaps::GapRow;
use crate::store::query::{QueryFilter, Stats};
use crate::store::review::{FileSummary, SessionSummary, UserSummary};

impl Store {
    /// `id` as this store's id: refused when it names another host.
    fn local_id(&self, id: &VersionId) -> Result<i64> {
        match &id.host {
            Some(host) if !self.hosts()?.contains(host) => Err(Error::NoSuchVersion(id.to_string())),
            _ => Ok(id.id),
        }
    }
}

impl History for Store {
    fn versions(&self, filter: &QueryFilter) -> Result<Vec<VersionRow>> {
        Store::versions(self, filter)
    }

    fn gaps(&self, filter: &QueryFilter) -> Result<Vec<GapRow>> {
        Store::gaps(self, filter)
    }

    fn paths_under(&self, dir: &[u8]) -> Result<Vec<Vec<u8>>> {
        Store::paths_under(self, dir)
    }

    fn knows_user(&self, name: &str) -> Result<bool> {
        Store::knows_user(self, name)
    }

    fn hosts(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare("SELECT DISTINCT host FROM principals ORDER BY host")?;
        let named: Vec<Option<String>> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        let mut hosts: Vec<String> =
            named.into_iter().filter_map(|h| h.or_else(crate::hostname::get)).chain(crate::hostname::get()).collect();
        hosts.sort();
        hosts.dedup();
        Ok(hosts)
    }

    fn version(&self, id: &VersionId) -> Result<VersionRow> {
        let v = Store::version(self, self.local_id(id)?)?;
        match &id.host {
            Some(host) if v.host.as_ref() != Some(host) => Err(Error::NoSuchVersion(id.to_string())),
            _ => Ok(v),
        }
    }

    fn content(&self, id: &VersionId, before: bool) -> Result<Vec<u8>> {
        Store::content(self, self.local_id(id)?, before)
    }

    fn users(&self, only: Option<&str>, host: Option<&str>) -> Result<Vec<UserSummary>> {
        Store::users(self, only, host)
    }

    fn user_files(&self, user: &str, host: Option<&str>) -> Result<Vec<FileSummary>> {
        Store::user_files(self, user, host)
    }

    fn user_sessions(&self, user: &str, host: Option<&str>) -> Result<Vec<SessionSummary>> {
        Store::user_sessions(self, user, host)
    }

    fn stats(&self) -> Result<Stats> {
        Store::stats(self)
    }

    fn name(&self) -> String {
        use std::os::unix::ffi::OsStrExt;
        filetrail_wire::path::quote(self.path().as_os_str().as_bytes()).into_owned()
    }
}
