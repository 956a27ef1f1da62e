//! The SQLite store: schema and migrations ([`schema`]), writing batches of
//! versions with their content-addressed blobs in one transaction, and
//! reading them back ([`query`]).
//!
//! Invariants: every batch is one transaction; a blob is stored once per
//! distinct SHA-256; the database file is created 0600 in a 0700 directory
//! (it holds the content of every tracked file); read-only commands open it
//! read-only.

pub mod query;
pub mod schema;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::model::{NewVersion, Side};

pub use query::QueryFilter;

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store for writing and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let wrap = |source| Error::Store { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let mut conn = Connection::open(path).map_err(wrap)?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        conn.pragma_update(None, "journal_mode", "WAL").map_err(wrap)?;
        // FULL: a committed batch survives power loss; batching pays for it.
        conn.pragma_update(None, "synchronous", "FULL").map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(wrap)?;
        schema::migrate(&mut conn).map_err(wrap)?;
        Ok(Store { conn, path: path.to_path_buf() })
    }

    /// Opens an existing store read-only (review commands).
    pub fn open_read(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(Error::io(
                format!("no store at {} (is the collector running with this --db?)", path.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let wrap = |source| Error::Store { path: path.to_path_buf(), source };
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(wrap)?;
        schema::check_readable(&conn).map_err(wrap)?;
        Ok(Store { conn, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Stores a batch of versions in one transaction; returns their ids.
    pub fn insert(&mut self, batch: &[NewVersion]) -> Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(batch.len());
        {
            let mut blob = tx.prepare_cached("INSERT OR IGNORE INTO blobs (sha256, size, data) VALUES (?1, ?2, ?3)")?;
            let mut version = tx.prepare_cached(
                "INSERT INTO versions (time_us, path, action, old_path,
                    before_sha, before_state, before_size, after_sha, after_state, after_size,
                    consistent, mode, owner_uid, group_gid,
                    pid, uid, euid, gid, loginuid, session, user, chain, sudo_user, tty, ssh_client, host, cwd, exe, argv, trust,
                    named_path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                         ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
            )?;
            for v in batch {
                let d = &v.draft;
                for side in [&d.before, &d.after].into_iter().flatten() {
                    if let (Some(sha), Some(bytes)) = (&side.sha256, &side.bytes) {
                        blob.execute(params![sha, bytes.len() as i64, &bytes[..]])?;
                    }
                }
                let sha = |s: &Option<Side>| s.as_ref().and_then(|s| s.sha256.clone());
                let state = |s: &Option<Side>| s.as_ref().map(|s| s.stored.as_str());
                let size = |s: &Option<Side>| s.as_ref().map(|s| s.size as i64);
                let consistent = [&d.before, &d.after].into_iter().flatten().all(|s| s.consistent);
                let meta = d.after.as_ref().and_then(|s| s.meta).or_else(|| d.before.as_ref().and_then(|s| s.meta));
                let w = &v.who;
                version.execute(params![
                    d.time.as_microsecond(),
                    &d.path,
                    d.action.as_str(),
                    &d.old_path,
                    sha(&d.before),
                    state(&d.before),
                    size(&d.before),
                    sha(&d.after),
                    state(&d.after),
                    size(&d.after),
                    consistent,
                    meta.map(|m| m.mode & 0o7777),
                    meta.map(|m| m.uid),
                    meta.map(|m| m.gid),
                    w.pid,
                    w.uid,
                    w.euid,
                    w.gid,
                    w.loginuid,
                    w.session,
                    &w.user,
                    serde_json::to_string(&w.chain).unwrap_or_default(),
                    &w.sudo_user,
                    &w.tty,
                    &w.ssh_client,
                    &w.host,
                    &w.cwd,
                    &w.exe,
                    serde_json::to_string(&w.argv).unwrap_or_default(),
                    serde_json::to_string(&w.trust).unwrap_or_default(),
                    &d.named_path,
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// The bytes of a stored content, by hash.
    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        Ok(self.conn.query_row("SELECT data FROM blobs WHERE sha256 = ?1", [sha256], |r| r.get(0)).optional()?)
    }
}
