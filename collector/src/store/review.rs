//! Per-user review: who changed how much, which files, in which sessions
//! (versions as the default view shows them: folded steps not counted). A
//! principal stored without a host name is this machine's (`host` filters).

use rusqlite::params;
use serde::Serialize;

use super::Store;
use crate::error::Result;
use crate::hostname::get as this_host;

use crate::when::json as time;

#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub user: String,
    pub versions: i64,
    pub files: i64,
    pub sessions: i64,
    pub first: String,
    pub last: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// The host the file is on.
    pub host: Option<String>,
    /// The path as stored, for human output (`wire::path::quote`).
    #[serde(skip)]
    pub raw_path: Vec<u8>,
    pub path: String,
    /// The exact bytes (base64) when `path` is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    pub versions: i64,
    pub last: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    /// The host the session was on (a session id is one host's).
    pub host: Option<String>,
    /// A string, as `session` is everywhere (`query --json`).
    pub session: Option<String>,
    pub ssh_client: Option<String>,
    pub tty: Option<String>,
    pub first: String,
    pub last: String,
    pub versions: i64,
}

impl Store {
    /// True when some version was made by a human of this name.
    pub fn knows_user(&self, name: &str) -> Result<bool> {
        Ok(self.conn().query_row("SELECT EXISTS (SELECT 1 FROM principals WHERE user = ?1)", [name], |r| r.get(0))?)
    }

    /// Every human who changed something, most recent first.
    pub fn users(&self, only: Option<&str>, host: Option<&str>) -> Result<Vec<UserSummary>> {
        let mut stmt = self.conn().prepare(
            "SELECT p.user, count(*), count(DISTINCT v.path), count(DISTINCT coalesce(p.session, -1)), min(v.time_us), max(v.time_us)
             FROM versions v JOIN principals p ON p.id = v.principal
             WHERE (?1 IS NULL OR p.user = ?1) AND v.folded_into IS NULL AND (?2 IS NULL OR coalesce(p.host, ?3) = ?2)
             GROUP BY p.user ORDER BY max(v.time_us) DESC",
        )?;
        let rows = stmt.query_map(params![only, host, this_host()], |r| {
            Ok(UserSummary {
                user: r.get(0)?,
                versions: r.get(1)?,
                files: r.get(2)?,
                sessions: r.get(3)?,
                first: time(r.get(4)?),
                last: time(r.get(5)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The files `user` changed, most recent first.
    pub fn user_files(&self, user: &str, host: Option<&str>) -> Result<Vec<FileSummary>> {
        let mut stmt = self.conn().prepare(
            "SELECT v.path, count(*), max(v.time_us), coalesce(p.host, ?3) AS h
             FROM versions v JOIN principals p ON p.id = v.principal
             WHERE p.user = ?1 AND v.folded_into IS NULL AND (?2 IS NULL OR h = ?2)
             GROUP BY h, v.path ORDER BY max(v.time_us) DESC, h, v.path",
        )?;
        let rows = stmt.query_map(params![user, host, this_host()], |r| {
            let raw_path: Vec<u8> = r.get(0)?;
            Ok(FileSummary {
                host: r.get(3)?,
                path: filetrail_wire::path::escape_bytes(&raw_path),
                path_b64: super::query::b64_unless_utf8(&raw_path),
                raw_path,
                versions: r.get(1)?,
                last: time(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// `user`'s login sessions with where they came from, oldest first.
    pub fn user_sessions(&self, user: &str, host: Option<&str>) -> Result<Vec<SessionSummary>> {
        let mut stmt = self.conn().prepare(
            "SELECT p.session, max(p.ssh_client), max(p.tty), min(v.time_us), max(v.time_us), count(*),
                    coalesce(p.host, ?3) AS h
             FROM versions v JOIN principals p ON p.id = v.principal
             WHERE p.user = ?1 AND v.folded_into IS NULL AND (?2 IS NULL OR h = ?2)
             GROUP BY h, p.session ORDER BY min(v.time_us)",
        )?;
        let rows = stmt.query_map(params![user, host, this_host()], |r| {
            Ok(SessionSummary {
                host: r.get(6)?,
                session: r.get::<_, Option<i64>>(0)?.map(|s| s.to_string()),
                ssh_client: r.get(1)?,
                tty: r.get(2)?,
                first: time(r.get(3)?),
                last: time(r.get(4)?),
                versions: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
