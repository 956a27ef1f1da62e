//! The SQLite store: schema and migrations ([`schema`]), writing batches of
//! versions with their content-addressed blobs in one transaction, and
//! reading them back ([`query`]).
//!
//! Invariants: every batch is one transaction (folding a temp file's
//! versions into its rename included: [`fold`]); a blob is stored once per
//! distinct SHA-256; a redacted content's bytes are never stored, under any
//! name ([`purge`]); a version is stored once per origin (a repeat sent
//! after a reconnect is ignored, `delivery.rs`); the database file is created 0600 from its first byte,
//! in a 0700 directory (it holds the content of every tracked file), and the
//! collector refuses to write a store that anyone else could control (see
//! [`Store::open`]); read-only commands open it read-only.

mod baseline;
pub mod blobs;
pub mod chain;
mod export;
mod fold;
pub mod gaps;
mod purge;
pub mod query;
pub mod review;
pub mod schema;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{Action, Draft, NewVersion, SeenBy, Side, Stored};
use crate::who::Identity;

pub use baseline::Known;
pub use purge::Hash;
pub use query::QueryFilter;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Identity key -> (`writers` row, `principals` row), already stored.
    writers: HashMap<u64, (i64, i64)>,
    /// A purge's WAL truncation could not finish: retried after each batch.
    scrub_pending: bool,
    /// What the kernel watch saw and has not recorded yet (`serve` only).
    unrecorded: Option<Arc<dyn UnseenChanges>>,
}

/// Changes the kernel watch saw and has not recorded yet, as the store
/// asks about them when a library's version arrives (`insert`): plain
/// data, whoever learns it (`crate::unrecorded` does, for the watch).
pub trait UnseenChanges: Send + Sync {
    /// Who (already labelled) changed `path` before `pid` reported a change
    /// of it at `time`, and when (earlier than `time`); `None`: nobody else.
    fn earlier(&self, path: &[u8], pid: i32, time: jiff::Timestamp) -> Option<(Arc<Identity>, jiff::Timestamp)>;
    /// `pid`'s library reported its change of `path`: its own changes are
    /// accounted for.
    fn reported(&self, path: &[u8], pid: i32);
}

/// Prepared statements a connection keeps.
const STATEMENT_CACHE: usize = 128;

impl Store {
    /// Opens (creating if needed) the store for writing and migrates it.
    ///
    /// The collector runs as root and trusts what it reads back, so the
    /// store must be out of every other user's reach, or a user who
    /// pre-created it (`--db` in a world-writable directory) would own the
    /// history. Refused, with the path and what to do: a store, `-wal`,
    /// `-shm` or `-journal` file that is a symlink, not a regular file, not
    /// owned by us, or writable by group or others; a directory holding it
    /// (the ancestors too: they could be renamed away) owned by anyone but us
    /// or root, or writable by group or others (ancestors: unless sticky). A
    /// new store file is created 0600 with `O_EXCL` before SQLite opens it,
    /// so it is never readable by others, not even for a moment; SQLite gives
    /// its `-wal` and `-shm` the same mode.
    pub fn open(path: &Path) -> Result<Store> {
        let path = &prepare(path)?;
        let wrap = |source| Error::Store { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(wrap)?;
        // Freed space is zeroed: purged content leaves no trace in free pages.
        conn.pragma_update(None, "secure_delete", "ON").map_err(wrap)?;
        // FULL: a committed batch survives power loss; batching pays for it.
        conn.pragma_update(None, "synchronous", "FULL").map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(wrap)?;
        // Every statement of an insert stays prepared (rusqlite keeps 16 by
        // default; an insert uses more, and re-parsing cost ~8% of ingest).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        stable_plans(&conn).map_err(wrap)?;
        schema::migrate(&mut conn).map_err(wrap)?;
        let mut store =
            Store { conn, path: path.to_path_buf(), writers: HashMap::new(), scrub_pending: false, unrecorded: None };
        store.purge_leftovers()?;
        Ok(store)
    }

    /// Opens an existing store read-only (review commands). A store that
    /// is missing, or that the user may not read (the collector's is root's
    /// only), is refused saying which, and what to do.
    pub fn open_read(path: &Path) -> Result<Store> {
        if let Err(e) = std::fs::File::open(path) {
            let p = path.display();
            use std::io::ErrorKind::{NotFound, PermissionDenied};
            let what = match e.kind() {
                NotFound => format!("no store at {p} (give the collector's --db, or set FILETRAIL_DB)"),
                PermissionDenied => format!("cannot read the store {p} (it is root's: try sudo)"),
                _ => format!("cannot read the store {p}"),
            };
            return Err(Error::io(what, e));
        }
        let wrap = |source| Error::Store { path: path.to_path_buf(), source };
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(wrap)?;
        stable_plans(&conn).map_err(wrap)?;
        schema::check_readable(&conn).map_err(wrap)?;
        Ok(Store { conn, path: path.to_path_buf(), writers: HashMap::new(), scrub_pending: false, unrecorded: None })
    }

    /// Library versions are from now on checked against what the kernel
    /// watch saw and has not recorded yet ([`Store::insert`]).
    pub fn set_unrecorded(&mut self, unrecorded: Arc<dyn UnseenChanges>) {
        self.unrecorded = Some(unrecorded);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A version of this origin is stored already (`delivery.rs`).
    pub fn has_origin(&self, origin: &[u8; 16]) -> Result<bool> {
        use rusqlite::OptionalExtension;
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM versions WHERE origin = ?1")?;
        Ok(stmt.query_row([&origin[..]], |_| Ok(())).optional()?.is_some())
    }

    /// Stores a batch of versions in one transaction; returns their ids,
    /// `None` for a version whose origin is already stored (not stored again).
    /// A batch that fails is rolled back whole and leaves no trace (not even
    /// in the cache of writers stored), so it can be tried again.
    pub fn insert(&mut self, batch: &[NewVersion]) -> Result<Vec<Option<i64>>> {
        use rusqlite::OptionalExtension;
        // IMMEDIATE: the write lock from the start, so the chain's head read
        // below is the newest (the spool replay writes through a connection
        // of its own) and the id given to each version is free.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(batch.len());
        let mut fresh: HashMap<u64, (i64, i64)> = HashMap::new();
        // The chain's head: each version gets the next id and links to it.
        let mut head = tx
            .prepare_cached("SELECT id, record_hash FROM versions ORDER BY id DESC LIMIT 1")?
            .query_row([], |r| Ok(Head { id: r.get(0)?, hash: r.get(1)?, purged: false }))
            .optional()?
            .unwrap_or(Head { id: 0, hash: None, purged: false });
        for v in batch {
            let origin = v.delivery.as_ref().map(|d| &d.origin[..]);
            if let Some(origin) = origin {
                let mut stored = tx.prepare_cached("SELECT 1 FROM versions WHERE origin = ?1")?;
                if stored.query_row([origin], |_| Ok(())).optional()?.is_some() {
                    ids.push(None);
                    continue;
                }
            }
            let mut writer_of = |who: &Identity| -> Result<(i64, i64)> {
                if let Some(&ids) = self.writers.get(&who.key).or(fresh.get(&who.key)) {
                    return Ok(ids);
                }
                let ids = insert_writer(&tx, who)?;
                fresh.insert(who.key, ids);
                Ok(ids)
            };
            let d = &v.draft;
            // What the path last held: a library version whose before is
            // something else follows a change nobody reported (`gap_before`);
            // one the kernel watch already recorded, from this very process,
            // replaces it: stored as a version of its own, into which the
            // kernel's row is folded (one change, one version shown; the
            // kernel's row, chained when stored, is never rewritten).
            let known = baseline::last_known(&tx, &d.path)?;
            let hash = |s: &Option<Side>| s.as_ref().map(|s| s.sha256.clone());
            let replaces = match &known {
                Some(Known { side, kernel: Some((id, pid)), .. })
                    if d.seen_by == SeenBy::Library
                        && *pid == v.who.pid
                        && hash(side) == hash(&d.after)
                        && kernel_before(&tx, *id)? == hash(&d.before) =>
                {
                    Some(*id)
                }
                _ => None,
            };
            // A report of an earlier change that comes after a later one
            // (a created file the assembler held back while `sed -i`
            // replaced it) is not compared with that later version; it
            // replaces the kernel's row of that change if one was made
            // meanwhile (below: the later report came first).
            let late = known.as_ref().is_some_and(|k| k.time_us.is_some_and(|t| t > d.time.as_microsecond()));
            let replaces = match replaces {
                None if late && d.seen_by == SeenBy::Library => {
                    kernel_row(&tx, &d.path, v.who.pid, (hash(&d.before), hash(&d.after)), head.id)?
                }
                replaces => replaces,
            };
            let in_order = d.seen_by == SeenBy::Library && replaces.is_none() && !late;
            // Another process changed the path while the kernel watch waited
            // for quiet (`unrecorded.rs`): what the library found before its
            // change is that process's change, stored first as the kernel
            // version the watch would have made (once quiet, it would find
            // only the library's after).
            let unseen = match &self.unrecorded {
                Some(unrecorded) if in_order => {
                    let was = known.as_ref().and_then(|k| k.side.as_ref());
                    change_between(was, d.before.as_ref()).and_then(|action| {
                        let (who, at) = unrecorded.earlier(&d.path, v.who.pid, d.time)?;
                        // Its after is what the reporting library says: taken
                        // from root, or from the user the change is credited
                        // to, never put in another user's name (a gap then).
                        if v.who.euid != 0 && v.who.euid != who.euid {
                            return None;
                        }
                        let time_us = known.as_ref().and_then(|k| k.time_us);
                        let time =
                            time_us.and_then(|t| jiff::Timestamp::from_microsecond(t).ok()).map_or(at, |t| at.max(t));
                        let mut draft = Draft::new(d.path.clone(), action, was.cloned(), d.before.clone(), time);
                        draft.seen_by = SeenBy::Kernel;
                        Some(NewVersion { draft, who, delivery: None })
                    })
                }
                _ => None,
            };
            if let Some(unrecorded) = self.unrecorded.as_ref().filter(|_| d.seen_by == SeenBy::Library) {
                unrecorded.reported(&d.path, v.who.pid);
            }
            if let Some(k) = &unseen {
                let path = filetrail_wire::path::quote(&d.path);
                let (action, pid) = (k.draft.action.as_str(), k.who.pid);
                tracing::info!(%path, action, pid, "kernel watch: a change no library reported, seen before the next one");
                put_version(&tx, k, writer_of(&k.who)?, false, None, &mut head)?;
            }
            let gap_before = in_order
                && unseen.is_none()
                && known.as_ref().is_some_and(|k| {
                    let (was, is) = (hash(&k.side), hash(&d.before));
                    // Unknown content (unreadable) on either side proves nothing.
                    was.as_ref().is_none_or(|h| h.is_some()) && is.as_ref().is_none_or(|h| h.is_some()) && was != is
                });
            ids.push(put_version(&tx, v, writer_of(&v.who)?, gap_before, replaces, &mut head)?);
        }
        let purged = head.purged;
        tx.commit()?;
        if self.writers.len() + fresh.len() > 10_000 {
            self.writers.clear();
        }
        self.writers.extend(fresh);
        if purged || self.scrub_pending {
            self.scrub_wal();
        }
        Ok(ids)
    }

    /// Copies the WAL into the database and truncates it (at a stop).
    pub fn checkpoint(&self) -> Result<()> {
        let busy: i64 = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(Error::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("a reader kept the WAL from being truncated".into()),
            )));
        }
        Ok(())
    }

    /// The content of blob `id`, following its delta chain.
    pub fn blob_bytes(&self, id: i64) -> Result<Option<Vec<u8>>> {
        blob_bytes(&self.conn, id)
    }

    /// [`Store::blob_bytes`] through a cache of decoded contents by blob id.
    pub fn blob_bytes_cached(&self, id: i64, cache: &mut HashMap<i64, Vec<u8>>) -> Result<Option<Vec<u8>>> {
        blob_bytes_cached(&self.conn, id, cache)
    }
}

/// The chain's head while a batch is stored: the last id and its record
/// hash; and whether storing the batch purged content stored earlier.
struct Head {
    id: i64,
    hash: Option<Vec<u8>>,
    purged: bool,
}

/// Stores one version (its blobs, its chained row) by `writer` (its
/// `writers` and `principals` ids), with `gap_before`; `replaces`: the
/// kernel's row of the same change, folded into it. `None` when an equal
/// row is stored already.
fn put_version(
    tx: &rusqlite::Transaction,
    v: &NewVersion,
    (writer, principal): (i64, i64),
    gap_before: bool,
    replaces: Option<i64>,
    head: &mut Head,
) -> Result<Option<i64>> {
    let d = &v.draft;
    let origin = v.delivery.as_ref().map(|d| &d.origin[..]);
    let before = match &d.before {
        Some(side) => put_blob(tx, side, None)?,
        None => None,
    };
    // The after content is delta-encoded against the before content.
    let base = before
        .filter(|b| b.data)
        .zip(d.before.as_ref().and_then(|s| s.bytes.as_deref()))
        .map(|(b, bytes)| (b.id, b.depth, bytes.as_slice()));
    let after = match &d.after {
        Some(side) => put_blob(tx, side, base)?,
        None => None,
    };
    head.purged |= [before, after].iter().flatten().any(|b| b.purged);
    // A content known to be secret is labelled so, whatever the intake thought.
    let state = |s: &Option<Side>, b: Option<Put>| {
        s.as_ref().map(|s| if b.is_some_and(|b| b.secret) { Stored::Redacted } else { s.stored }.as_str())
    };
    let consistent = [&d.before, &d.after].into_iter().flatten().all(|s| s.consistent);
    let meta = d.after.as_ref().and_then(|s| s.meta).or_else(|| d.before.as_ref().and_then(|s| s.meta));
    let before_meta = d.before.as_ref().and_then(|s| s.meta);
    // The record hash, from the values this row is given (what
    // `store/chain.rs` reads back from it: `collector verify`).
    let id = head.id + 1;
    let side_record = |s: &Option<Side>, b: Option<Put>| crate::chain::SideRecord {
        sha256: b.and(s.as_ref()).and_then(|s| s.sha256.as_deref()).and_then(|h| hex::decode(h).ok()),
        state: state(s, b).map(str::to_owned),
        size: b.and(s.as_ref()).map(|s| s.size as i64),
    };
    let w = &v.who;
    let record = crate::chain::Record {
        seq: id,
        time_us: d.time.as_microsecond(),
        path: d.path.clone(),
        named_path: d.named_path.clone(),
        source: d.via.clone().or_else(|| d.old_path.clone()),
        before: side_record(&d.before, before),
        after: side_record(&d.after, after),
        consistent,
        mode: meta.map(|m| (m.mode & 0o7777) as i64),
        owner_uid: meta.map(|m| m.uid as i64),
        group_gid: meta.map(|m| m.gid as i64),
        before_mode: before_meta.map(|m| (m.mode & 0o7777) as i64),
        before_owner_uid: before_meta.map(|m| m.uid as i64),
        before_group_gid: before_meta.map(|m| m.gid as i64),
        seen_by: d.seen_by.as_str().into(),
        gap_before,
        temp_name: crate::fold::temp_name(&d.path),
        user: w.user.clone(),
        chain: w.chain.clone(),
        uid: w.uid.into(),
        euid: w.euid.into(),
        gid: w.gid.into(),
        loginuid: w.loginuid.map(i64::from),
        session: w.session.map(i64::from),
        sudo_user: w.sudo_user.clone(),
        tty: w.tty.clone(),
        ssh_client: w.ssh_client.clone(),
        pid: w.pid.into(),
        exe: w.exe.clone(),
        argv: w.argv.clone(),
        cwd: w.cwd.clone(),
        trust: crate::who::trust_bits(&w.trust),
    };
    let record_hash = record.hash(head.hash.as_deref());
    let inserted = tx
        .prepare_cached(
            "INSERT INTO versions (time_us, path, named_path, action, old_path, before_blob, before_state,
                    after_blob, after_state, consistent, mode, owner_uid, group_gid, writer, principal,
                    seen_by, gap_before, before_mode, before_owner_uid, before_group_gid, origin, via, temp_name,
                    id, record_hash, prev_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                    ?22, ?23, ?24, ?25, ?26)
                 ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            d.time.as_microsecond(),
            &d.path,
            &d.named_path,
            d.action.as_str(),
            &d.old_path,
            before.map(|b| b.id),
            state(&d.before, before),
            after.map(|b| b.id),
            state(&d.after, after),
            consistent,
            meta.map(|m| m.mode & 0o7777),
            meta.map(|m| m.uid),
            meta.map(|m| m.gid),
            writer,
            principal,
            d.seen_by.as_str(),
            gap_before,
            before_meta.map(|m| m.mode & 0o7777),
            before_meta.map(|m| m.uid),
            before_meta.map(|m| m.gid),
            origin,
            &d.via,
            record.temp_name,
            id,
            &record_hash[..],
            &head.hash,
        ])?;
    let id = (inserted > 0).then_some(id);
    if let Some(id) = id {
        (head.id, head.hash) = (id, Some(record_hash.to_vec()));
        if let Some(kernel) = replaces {
            tx.prepare_cached("UPDATE versions SET folded_into = ?2 WHERE id = ?1")?.execute([kernel, id])?;
        }
        fold::after_insert(tx, id)?;
    }
    Ok(id)
}

/// What changed a path from `was` (what the store last knew it held;
/// `None`: absent) to `is` (what a library found before its own change),
/// as the kernel watch names it: nothing when they are the same content,
/// mode and owner, or when either content is unknown (unreadable).
fn change_between(was: Option<&Side>, is: Option<&Side>) -> Option<Action> {
    let owner = |s: &Side| s.meta.map(|m| (m.mode & 0o7777, m.uid, m.gid));
    match (was, is) {
        (None, None) => None,
        (Some(_), None) => Some(Action::Delete),
        (None, Some(_)) => Some(Action::Create),
        (Some(w), Some(i)) if w.sha256.is_none() || i.sha256.is_none() => None,
        (Some(w), Some(i)) if w.sha256 != i.sha256 => Some(Action::Write),
        (Some(w), Some(i)) => {
            (owner(w).is_some() && owner(i).is_some() && owner(w) != owner(i)).then_some(Action::Attrib)
        }
    }
}

/// The newest kernel row of `path` not folded, among the last 100,000
/// rows (`head` is the newest id), whose process was `pid` and whose
/// before and after hashes are `sides` (`None`: absent).
fn kernel_row(
    tx: &rusqlite::Transaction,
    path: &[u8],
    pid: i32,
    sides: (Option<Option<String>>, Option<Option<String>>),
    head: i64,
) -> Result<Option<i64>> {
    let mut stmt = tx.prepare_cached(
        "SELECT v.id, v.before_state IS NOT NULL, nullif(lower(hex(b.sha256)), ''),
            v.after_state IS NOT NULL, nullif(lower(hex(a.sha256)), '')
         FROM versions v JOIN writers w ON w.id = v.writer
         LEFT JOIN blobs b ON b.id = v.before_blob LEFT JOIN blobs a ON a.id = v.after_blob
         WHERE v.path = ?1 AND v.id > ?2 AND v.seen_by = 'kernel' AND v.folded_into IS NULL AND w.pid = ?3
         ORDER BY v.id DESC LIMIT 16",
    )?;
    let rows = stmt.query_map(params![path, head - 100_000, pid], |r| {
        let side = |exists: bool, hash: Option<String>| exists.then_some(hash);
        Ok((r.get::<_, i64>(0)?, (side(r.get(1)?, r.get(2)?), side(r.get(3)?, r.get(4)?))))
    })?;
    for row in rows {
        let (id, got) = row?;
        if got == sides {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The before hash of version `id` (`None`: the path did not exist).
fn kernel_before(tx: &rusqlite::Transaction, id: i64) -> Result<Option<Option<String>>> {
    Ok(tx
        .prepare_cached(
            "SELECT v.before_state IS NOT NULL, nullif(lower(hex(b.sha256)), '') FROM versions v
             LEFT JOIN blobs b ON b.id = v.before_blob WHERE v.id = ?1",
        )?
        .query_row([id], |r| Ok(r.get::<_, bool>(0)?.then_some(r.get(1)?)))?)
}

/// One plan per statement whatever its bound values (SQLite's query planner
/// stability guarantee). Since SQLite 3.54 a statement with a join and a
/// `col = ?` term is otherwise parsed and planned again after each use
/// (rusqlite's cache clears its bindings, which expires it): 7% of the
/// collector's time at ingest. The store's plans need no bound value (no
/// `LIKE ?`; a partial index on `x IS NOT NULL` serves `x = ?` anyway).
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map(drop)
}

/// Checks (creating what is missing) the store's directory, its ancestors and
/// its files as [`Store::open`] says; returns the store's path with its
/// directory resolved, which is what SQLite then opens.
fn prepare(path: &Path) -> Result<PathBuf> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let refuse = |p: &Path, why: String, fix: &str| {
        Error::UnsafeStore(format!("refusing the store: {} {why}; {fix}", p.display()))
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| refuse(path, "is not a file name".into(), "give --db a file"))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
    for (i, d) in dir.ancestors().enumerate() {
        let md = std::fs::symlink_metadata(d).map_err(|e| Error::io(format!("checking {}", d.display()), e))?;
        let fix =
            "keep the store in a directory only root (or the collector's user) can write, like /var/lib/filetrail";
        if md.uid() != me && md.uid() != 0 {
            return Err(refuse(d, format!("is owned by uid {}, neither root nor us (uid {me})", md.uid()), fix));
        }
        // A sticky directory (/tmp) keeps others from renaming what is in
        // it, but not from creating the store's files first.
        if md.mode() & 0o022 != 0 && (i == 0 || md.mode() & 0o1000 == 0) {
            return Err(refuse(d, format!("is writable by group or others (mode {:o})", md.mode() & 0o7777), fix));
        }
    }
    let store = dir.join(name);
    if let Err(e) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&store)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(Error::io(format!("creating {}", store.display()), e));
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut f = store.clone().into_os_string();
        f.push(suffix);
        let f = PathBuf::from(f);
        let md = match std::fs::symlink_metadata(&f) {
            Err(e) if !suffix.is_empty() && e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r.map_err(|e| Error::io(format!("checking {}", f.display()), e))?,
        };
        let fix = "if it is not the collector's own, move it away and start again (or choose another --db)";
        if !md.file_type().is_file() {
            return Err(refuse(&f, "is a symlink or not a regular file".into(), fix));
        }
        if md.uid() != me {
            return Err(refuse(&f, format!("is owned by uid {}, not by us (uid {me})", md.uid()), fix));
        }
        if md.mode() & 0o022 != 0 {
            let why = format!("is writable by group or others (mode {:o})", md.mode() & 0o7777);
            return Err(refuse(&f, why, "check who changed it, then chmod 600 it"));
        }
    }
    Ok(store)
}

/// The content of blob `id`, following its delta chain; `None` when a blob
/// on the way holds no data.
fn blob_bytes(conn: &Connection, id: i64) -> Result<Option<Vec<u8>>> {
    blob_bytes_cached(conn, id, &mut HashMap::new())
}

/// [`blob_bytes`], starting from a content in `cache` (by blob id) when the
/// chain reaches one, and leaving each content decoded there (a file's
/// successive versions are deltas of each other: the fleet shipper decodes
/// each once).
fn blob_bytes_cached(conn: &Connection, id: i64, cache: &mut HashMap<i64, Vec<u8>>) -> Result<Option<Vec<u8>>> {
    // Walk down to a full (or already decoded) blob, then decode back up.
    let mut chain = Vec::new();
    let mut next = Some(id);
    let mut content: Option<Vec<u8>> = None;
    while let Some(id) = next {
        if let Some(bytes) = cache.get(&id) {
            content = Some(bytes.clone());
            break;
        }
        let row: (i64, i64, Option<i64>, Option<Vec<u8>>) = conn
            .prepare_cached("SELECT size, codec, base, data FROM blobs WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let Some(data) = row.3 else { return Ok(None) };
        let codec =
            blobs::Codec::from_i64(row.1).ok_or_else(|| Error::Corrupt(format!("blob {id}: codec {}", row.1)))?;
        next = if codec == blobs::Codec::Delta { row.2 } else { None };
        chain.push((id, codec, data, row.0 as usize));
        if chain.len() as i64 > blobs::MAX_DEPTH + 1 {
            return Err(Error::Corrupt(format!("blob {id}: delta chain too long")));
        }
    }
    for (id, codec, data, size) in chain.into_iter().rev() {
        let bytes = blobs::decode(codec, &data, size, content.as_deref())?;
        cache.insert(id, bytes.clone());
        content = Some(bytes);
    }
    Ok(content)
}

/// Stores the writer of `w` (one per process image) and, unless an equal
/// one exists, its principal. Returns (writer id, principal id).
fn insert_writer(tx: &rusqlite::Transaction, w: &Identity) -> Result<(i64, i64)> {
    use rusqlite::OptionalExtension;
    let chain = serde_json::to_string(&w.chain).unwrap_or_default();
    // Every principal names its host: one the identity did not name (a
    // spooled or kernel-seen writer) is this machine.
    let host = w.host.clone().or_else(crate::hostname::get);
    // `IS` compares NULLs as equal, which a UNIQUE constraint would not.
    let principal: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM principals WHERE user = ?1 AND session IS ?2 AND chain = ?3 AND uid = ?4 AND euid = ?5
             AND gid = ?6 AND loginuid IS ?7 AND sudo_user IS ?8 AND tty IS ?9 AND ssh_client IS ?10 AND host IS ?11",
        )?
        .query_row(
            params![
                &w.user,
                w.session,
                &chain,
                w.uid,
                w.euid,
                w.gid,
                w.loginuid,
                &w.sudo_user,
                &w.tty,
                &w.ssh_client,
                &host
            ],
            |r| r.get(0),
        )
        .optional()?;
    let principal = match principal {
        Some(id) => id,
        None => {
            tx.prepare_cached(
                "INSERT INTO principals (user, session, chain, uid, euid, gid, loginuid, sudo_user, tty, ssh_client, host)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![&w.user, w.session, &chain, w.uid, w.euid, w.gid, w.loginuid, &w.sudo_user, &w.tty, &w.ssh_client, &host])?;
            tx.last_insert_rowid()
        }
    };
    tx.prepare_cached("INSERT INTO writers (principal, pid, exe, argv, cwd, trust) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![
        principal,
        w.pid,
        &w.exe,
        serde_json::to_string(&w.argv).unwrap_or_default(),
        &w.cwd,
        crate::who::trust_bits(&w.trust),
    ])?;
    Ok((tx.last_insert_rowid(), principal))
}

/// Where a side's content went: its blob, how deep in a delta chain,
/// whether the blob holds data, and whether that content is secret.
#[derive(Debug, Clone, Copy)]
struct Put {
    id: i64,
    depth: i64,
    data: bool,
    /// The content is redacted: never stored, whatever name it came under.
    secret: bool,
    /// Storing this side purged data stored earlier under another name.
    purged: bool,
}

/// Stores `side`'s content once (by hash); `base` is (id, depth, content)
/// of the blob to delta against. `None` when the content is unknown
/// (unreadable). A redacted side marks its content secret: a blob already
/// holding those bytes is purged; a stored side whose content is secret is
/// not stored.
fn put_blob(tx: &rusqlite::Transaction, side: &Side, base: Option<(i64, i64, &[u8])>) -> Result<Option<Put>> {
    use rusqlite::OptionalExtension;
    let Some(sha) = side.sha256.as_deref().and_then(|h| hex::decode(h).ok()) else { return Ok(None) };
    // Empty content hides nothing: never secret (or every empty file would be).
    let secret = side.stored == Stored::Redacted && side.size > 0;
    let existing: Option<(i64, i64, bool, bool)> = tx
        .prepare_cached(
            "SELECT id, depth, data IS NOT NULL, redacted FROM blobs
             WHERE substr(sha256, 1, 8) = substr(?1, 1, 8) AND sha256 = ?1",
        )?
        .query_row([&sha], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let bytes = side.bytes.as_deref().filter(|_| side.stored == Stored::Stored);
    if let Some((id, depth, data, redacted)) = existing {
        let put = Put { id, depth, data, secret: redacted, purged: false };
        if secret && !redacted {
            purge::purge(tx, id)?;
            return Ok(Some(Put { depth: 0, data: false, secret: true, purged: data, ..put }));
        }
        if redacted || data || bytes.is_none() {
            return Ok(Some(put));
        }
    }
    // Filling in an older row: no delta, so that a delta's base is always
    // an older blob (purging relies on it).
    let base = base.filter(|(_, depth, _)| *depth < blobs::MAX_DEPTH && existing.is_none());
    let (codec, data, base_id, depth) = match bytes {
        Some(bytes) => {
            let (codec, data) = blobs::encode(bytes, base.map(|b| b.2));
            let (base_id, depth) = match (codec, base) {
                (blobs::Codec::Delta, Some((id, depth, _))) => (Some(id), depth + 1),
                _ => (None, 0),
            };
            (codec as i64, Some(data), base_id, depth)
        }
        None => (blobs::Codec::Raw as i64, None, None, 0),
    };
    let put = |id| Put { id, depth, data: data.is_some(), secret, purged: false };
    if let Some((id, ..)) = existing {
        tx.prepare_cached("UPDATE blobs SET codec = ?2, base = ?3, depth = ?4, data = ?5 WHERE id = ?1")?
            .execute(params![id, codec, base_id, depth, data])?;
        return Ok(Some(put(id)));
    }
    tx.prepare_cached(
        "INSERT INTO blobs (sha256, size, codec, base, depth, data, redacted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![sha, side.size as i64, codec, base_id, depth, data, secret])?;
    Ok(Some(put(tx.last_insert_rowid())))
}
