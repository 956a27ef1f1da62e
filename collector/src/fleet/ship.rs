//! The shipper: a thread of `collector serve` that copies this host's
//! committed versions, their content and its gap records to the fleet
//! store, exactly once, in id (`seq`) order.
//!
//! - **Where it resumes** is the server's: `hosts.head_seq`, read `FOR
//!   UPDATE` at the start of each batch, so a collector killed mid-batch,
//!   a network cut or a PostgreSQL restart loses nothing and repeats
//!   nothing (the batch's transaction is rolled back whole; inserts are
//!   `ON CONFLICT DO NOTHING` besides).
//! - **One batch, one transaction:** the contents its versions lack
//!   centrally (whole, from the local delta chain, zstd again; a content
//!   the host has since found secret is deleted centrally instead), the
//!   versions, the folding updates they caused to versions shipped earlier,
//!   then the host's head.
//! - **The chain:** a batch is shipped only if its first version's
//!   `prev_hash` is the head's hash and every version in it links to the
//!   one before and matches its record hash (the valid prefix is shipped).
//!   Otherwise a fleet alert is recorded in `gaps` (`chain_fork`: the host's
//!   history no longer extends the head; `chain_rewind`: the host holds less
//!   than was accepted; `chain_skip`: versions are missing) and shipping of
//!   the host stops while that alert row exists.
//! - **Folding after shipping:** folding updates only rows related to a
//!   version stored in the same transaction (`store/fold.rs`): its end
//!   (`folded_into`) and the rows folded into it. So with each version
//!   shipped, the mutable fields (`action`, `old_path`, `via`,
//!   `folded_into`) of those rows shipped earlier are sent again, an
//!   idempotent `UPDATE` keyed by (host, seq).
//! - **Never blocks intake:** it reads the store through its own read-only
//!   connection (WAL: readers never wait for the writer).
//! - **Secrets found later:** every content the host has found secret is
//!   deleted centrally, once per session and whenever the host purges
//!   another (also one no new version refers to).
//! - **Outages:** retried with a backoff (0.25 s doubling to 5 s), logged
//!   once per outage and once when it ends.
//!
//! Its state goes to `<db>.fleet` (JSON) after each step, which `collector
//! stats` reads for the backlog and the lag.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::Client;
use serde::{Deserialize, Serialize};

use crate::config::Fleet;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::chain::{Row, rows_from};

/// Versions per batch (one PostgreSQL transaction).
const BATCH: i64 = 1000;
/// How often an idle shipper looks for new versions.
const POLL: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a stopped host looks whether its alert was cleared.
const STOPPED_RECHECK: Duration = Duration::from_secs(30);

/// What the shipper last did, in `<db>.fleet`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub host: String,
    /// The URL without its password.
    pub url: String,
    /// `shipping`, `unreachable` or `stopped`.
    pub state: String,
    /// The last version the fleet store accepted (0: none).
    pub head_seq: i64,
    /// When this status was written (µs since the epoch).
    pub updated_us: i64,
    /// Why it is unreachable or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The public key its checkpoints are signed with (`ed25519:BASE64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The status file of the store `db`.
pub fn status_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".fleet");
    PathBuf::from(p)
}

/// Reads the status the shipper of store `db` left (None: it never ran).
pub fn read_status(db: &Path) -> Option<Status> {
    serde_json::from_slice(&std::fs::read(status_path(db)).ok()?).ok()
}

/// This host's name in the fleet: the config's, else the system's.
pub fn host_name(fleet: &Fleet) -> String {
    fleet.host.clone().or_else(crate::hostname::get).unwrap_or_else(|| "localhost".into())
}

/// Starts the shipper of store `db` (its own thread, for the process's life).
pub fn start(fleet: &Fleet, db: &Path) -> std::io::Result<std::thread::JoinHandle<()>> {
    let shipper = Shipper::new(fleet, db);
    tracing::info!(host = %shipper.host, url = %super::display_url(&fleet.url), "shipping versions to the fleet store");
    std::thread::Builder::new().name("fleet-ship".into()).spawn(move || shipper.run())
}

/// How a session with the fleet store ended without an error.
enum Ended {
    /// A chain alert for this host is in the fleet store.
    Stopped(String),
}

pub struct Shipper {
    url: String,
    password_file: Option<PathBuf>,
    host: String,
    db: PathBuf,
    head_seq: i64,
    /// The local gaps as last shipped (count, newest id, versions, bytes).
    gaps_shipped: Option<(i64, i64, i64, i64)>,
    /// How many contents the host knew secret when it last told the fleet
    /// store to drop them (`None`: not yet in this session).
    redactions_shipped: Option<i64>,
    /// Contents decoded from the local delta chains, by blob id: the next
    /// version of a file is a delta of the last (emptied past [`DECODED_MAX`]).
    decoded: std::collections::HashMap<i64, Vec<u8>>,
    /// What `<db>.fleet` says, and when it was written.
    status_written: Option<(StatusKey, Instant)>,
    /// Signs each batch's checkpoint (`key.rs`; read at the first session).
    key: Option<ed25519_dalek::SigningKey>,
}

/// What a status says that matters: state, head, error.
type StatusKey = (String, i64, Option<String>);

/// How often an unchanged status is written again.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Decoded contents kept between batches (at most this many).
const DECODED_MAX: usize = 4096;

/// Ships what store `db` holds now, until the fleet store has it all;
/// returns how many versions were shipped (the fleet benchmark).
pub fn drain(fleet: &Fleet, db: &Path) -> Result<usize> {
    let mut s = Shipper::new(fleet, db);
    let mut pg = super::connect_with(&s.url, s.password_file.as_deref())?;
    let local = Store::open_read(db)?;
    if let Some(why) = s.prepare(&mut pg, &local)? {
        return Err(Error::FleetSetup(why));
    }
    let mut total = 0;
    loop {
        match s.batch(&mut pg, &local)? {
            Shipped::Versions(0) => return Ok(total),
            Shipped::Versions(n) => total += n,
            Shipped::Alert(why) => return Err(Error::FleetSetup(why)),
        }
    }
}

impl Shipper {
    fn new(fleet: &Fleet, db: &Path) -> Shipper {
        Shipper {
            url: fleet.url.clone(),
            password_file: fleet.password_file.clone(),
            host: host_name(fleet),
            db: db.to_path_buf(),
            head_seq: 0,
            gaps_shipped: None,
            redactions_shipped: None,
            decoded: Default::default(),
            status_written: None,
            key: None,
        }
    }

    fn run(mut self) {
        let mut down: Option<Instant> = None;
        let mut backoff = BACKOFF_MIN;
        let mut stopped_logged = false;
        loop {
            match self.session(&mut down, &mut backoff) {
                Ok(Ended::Stopped(why)) => {
                    if !stopped_logged {
                        tracing::error!(host = %self.host, "shipping to the fleet store stopped: {why}");
                        stopped_logged = true;
                    }
                    self.status("stopped", Some(why));
                    std::thread::sleep(STOPPED_RECHECK);
                }
                Err(Error::HostKey(why)) => {
                    if !stopped_logged {
                        tracing::error!(host = %self.host, "shipping to the fleet store waits: {why}");
                        stopped_logged = true;
                    }
                    self.status("stopped", Some(why));
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    if down.is_none() {
                        tracing::warn!(
                            host = %self.host,
                            url = %super::display_url(&self.url),
                            "fleet store unavailable, versions wait in the local store (retrying): {e}"
                        );
                        down = Some(Instant::now());
                    }
                    self.status("unreachable", Some(error_text(&e)));
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Connects and ships until an error (returned) or a chain alert.
    fn session(&mut self, down: &mut Option<Instant>, backoff: &mut Duration) -> Result<Ended> {
        let mut pg = super::connect_with(&self.url, self.password_file.as_deref())?;
        let local = Store::open_read(&self.db)?;
        if let Some(why) = self.prepare(&mut pg, &local)? {
            return Ok(Ended::Stopped(why));
        }
        if let Some(since) = down.take() {
            tracing::info!(host = %self.host, after_s = since.elapsed().as_secs(), "fleet store available again");
        }
        *backoff = BACKOFF_MIN;
        self.gaps_shipped = None;
        self.redactions_shipped = None;
        loop {
            let shipped = match self.batch(&mut pg, &local)? {
                Shipped::Versions(n) => n,
                Shipped::Alert(why) => return Ok(Ended::Stopped(why)),
            };
            self.gaps(&mut pg, &local)?;
            self.redactions(&mut pg, &local)?;
            self.status("shipping", None);
            if shipped == 0 {
                std::thread::sleep(POLL);
            }
        }
    }

    /// Migrates the fleet store, registers the host and pins its public
    /// key (the first time); the alert that stops this host, if any (one is
    /// recorded when the pinned key is not this host's).
    fn prepare(&mut self, pg: &mut Client, local: &Store) -> Result<Option<String>> {
        super::schema::migrate(pg)?;
        pg.execute("INSERT INTO hosts (host) VALUES ($1) ON CONFLICT DO NOTHING", &[&self.host])?;
        if self.key.is_none() {
            self.key = Some(super::key::load_or_create(&super::key::key_path(&self.db))?);
        }
        let public = self.public();
        let pinned: Option<Vec<u8>> = pg
            .query_one(
                "UPDATE hosts SET public_key = coalesce(public_key, $2) WHERE host = $1 RETURNING public_key",
                &[&self.host, &public.as_slice()],
            )?
            .get(0);
        if pinned.as_deref() != Some(public.as_slice()) {
            if let Some(why) = self.alert(pg, true)? {
                return Ok(Some(why));
            }
            return self.key_alert(pg, pinned.as_deref()).map(Some);
        }
        // The pinned key is this host's: another collector's `chain_key`
        // alert under this name does not stop it.
        if let Some(why) = self.alert(pg, false)? {
            return Ok(Some(why));
        }
        // A head shipped before this host signed (an older collector) is
        // signed now, if the local store holds that very version.
        let head = pg.query_one(
            "SELECT head_seq, head_hash,
                EXISTS (SELECT 1 FROM checkpoints c WHERE c.host = h.host AND c.seq = h.head_seq)
             FROM hosts h WHERE host = $1",
            &[&self.host],
        )?;
        let (seq, hash, signed): (i64, Option<Vec<u8>>, bool) = (head.get(0), head.get(1), head.get(2));
        if let Some(hash) = hash.filter(|_| seq > 0 && !signed)
            && own_hash(local, seq)?.as_deref() == Some(&hash[..])
        {
            self.checkpoint(pg, seq, &hash)?;
        }
        Ok(None)
    }

    /// This host's public key (the key is loaded by `prepare`).
    fn public(&self) -> [u8; 32] {
        self.key.as_ref().map_or([0; 32], |k| k.verifying_key().to_bytes())
    }

    /// Records that the fleet store pins another key than this host's for
    /// its name; the alert's text.
    fn key_alert(&self, pg: &mut Client, pinned: Option<&[u8]>) -> Result<String> {
        let why = format!(
            "the fleet store pins key {} for host name {}, this collector's key is {} (another host configured with this name, a reinstalled host, or the pin replaced in the fleet store)",
            super::key::shown(pinned.unwrap_or_default()),
            crate::print::q(&self.host),
            super::key::shown(&self.public())
        );
        self.record_alert(pg, "chain_key", &why)?;
        Ok(format!("chain_key: {why}"))
    }

    /// Signs and stores the checkpoint at version `seq` of record hash `head`.
    fn checkpoint(&self, pg: &mut impl postgres::GenericClient, seq: i64, head: &[u8]) -> Result<()> {
        let Some(key) = &self.key else { return Ok(()) };
        let signature = super::key::sign(key, &self.host, seq, head);
        pg.execute(
            "INSERT INTO checkpoints (host, seq, record_hash, signature, signed_us)
             VALUES ($1, $2, $3, $4, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
             ON CONFLICT DO NOTHING",
            &[&self.host, &seq, &head, &signature],
        )?;
        Ok(())
    }

    /// The chain alert that stops this host, if one is recorded.
    /// `keys`: `chain_key` alerts count too (this collector's key is not the
    /// pinned one).
    fn alert(&self, pg: &mut Client, keys: bool) -> Result<Option<String>> {
        let row = pg.query_opt(
            "SELECT id, what, source FROM gaps WHERE host = $1 AND seq IS NULL AND what LIKE 'chain\\_%'
                AND ($2 OR what <> 'chain_key')
             ORDER BY id LIMIT 1",
            &[&self.host, &keys],
        )?;
        Ok(row.map(|r| {
            let (id, what, source): (i64, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
            format!(
                "{what} (fleet gaps id {id}: {}); delete that row after review to resume",
                source.unwrap_or_default()
            )
        }))
    }

    /// Ships the next batch; the number of versions shipped.
    fn batch(&mut self, pg: &mut Client, local: &Store) -> Result<Shipped> {
        let mut tx = pg.transaction()?;
        let head = tx
            .query_one("SELECT head_seq, head_hash, public_key FROM hosts WHERE host = $1 FOR UPDATE", &[&self.host])?;
        let (head_seq, head_hash, pinned): (i64, Option<Vec<u8>>, Option<Vec<u8>>) =
            (head.get(0), head.get(1), head.get(2));
        // The pin changed in the fleet store since this session began.
        if self.key.is_some() && pinned.as_deref() != Some(&self.public()[..]) {
            drop(tx);
            return Ok(Shipped::Alert(self.key_alert(pg, pinned.as_deref())?));
        }
        // The fleet store's head is not this host's version at that seq:
        // changed there after it was shipped (the host's own chain is
        // checked as it ships). Seen at once, not at the next version.
        if head_seq > 0
            && let Some(ours) = own_hash(local, head_seq)?
            && Some(&ours) != head_hash.as_ref()
        {
            drop(tx);
            let why = format!(
                "the fleet store's version {head_seq} has record hash {}, this host's has {}: the fleet store was changed after shipping (this host's chain is whole: `collector verify`)",
                short(head_hash.as_deref()),
                short(Some(&ours))
            );
            self.record_alert(pg, "chain_fork", &why)?;
            return Ok(Shipped::Alert(format!("chain_fork: {why}")));
        }
        if head_seq < self.head_seq {
            tracing::warn!(
                host = %self.host,
                "the fleet store's head moved back from version {} to {head_seq} (versions deleted there): shipping them again",
                self.head_seq
            );
        }
        self.head_seq = head_seq;
        let mut rows = rows_from(local.conn(), head_seq + 1, BATCH)?;
        let broken = match rows.first() {
            None => {
                let newest: i64 =
                    local.conn().query_row("SELECT coalesce(max(id), 0) FROM versions", [], |r| r.get(0))?;
                (newest < head_seq).then(|| {
                    ("chain_rewind", format!("the fleet holds up to seq {head_seq}; the host's store ends at {newest}"))
                })
            }
            Some(_) => chain_break(&mut rows, head_seq, head_hash.as_deref()),
        };
        if rows.is_empty() {
            drop(tx);
            if let Some((what, why)) = broken {
                self.record_alert(pg, what, &why)?;
                return Ok(Shipped::Alert(format!("{what}: {why}")));
            }
            return Ok(Shipped::Versions(0));
        }
        self.blobs(&mut tx, local, &rows)?;
        insert_versions(&mut tx, &self.host, &rows)?;
        self.refolds(&mut tx, local, &rows)?;
        let last = rows.last().expect("not empty");
        let newest = rows.iter().map(|r| r.record.time_us).max();
        tx.execute(
            "UPDATE hosts SET head_seq = $2, head_hash = $3, newest_us = greatest(newest_us, $4),
                shipped_us = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
             WHERE host = $1",
            &[&self.host, &last.record.seq, &last.record_hash, &newest],
        )?;
        if let Some(head) = &last.record_hash {
            self.checkpoint(&mut tx, last.record.seq, head)?;
        }
        tx.commit()?;
        self.head_seq = last.record.seq;
        // A break after a valid prefix is found (and recorded) by the next batch.
        Ok(Shipped::Versions(rows.len()))
    }

    fn record_alert(&self, pg: &mut Client, what: &str, why: &str) -> Result<()> {
        tracing::error!(host = %self.host, what, "fleet alert recorded: {why}");
        pg.execute(
            "INSERT INTO gaps (host, seq, time_us, what, versions, bytes, source)
             VALUES ($1, NULL, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, $2, 0, 0, $3)",
            &[&self.host, &what, &why],
        )?;
        Ok(())
    }

    /// Sends the contents of `rows` the fleet store lacks; deletes there
    /// those the host has since found secret.
    fn blobs(&mut self, tx: &mut postgres::Transaction, local: &Store, rows: &[Row]) -> Result<()> {
        let mut seen = HashSet::new();
        let mut wanted: Vec<(i64, Vec<u8>)> = Vec::new();
        for r in rows {
            for (blob, side) in [(r.before_blob, &r.record.before), (r.after_blob, &r.record.after)] {
                if let (Some(id), Some(sha)) = (blob, &side.sha256)
                    && seen.insert(sha.clone())
                {
                    wanted.push((id, sha.clone()));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let shas: Vec<&[u8]> = wanted.iter().map(|(_, s)| s.as_slice()).collect();
        let present: HashSet<Vec<u8>> =
            tx.query("SELECT sha256 FROM blobs WHERE sha256 = ANY($1)", &[&shas])?.iter().map(|r| r.get(0)).collect();
        let mut redacted = local.conn().prepare_cached("SELECT redacted FROM blobs WHERE id = ?1")?;
        let (mut secret, mut new_sha): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
        let (mut new_size, mut new_data): (Vec<i64>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
        for (id, sha) in &wanted {
            if redacted.query_row([id], |r| r.get::<_, bool>(0))? {
                secret.push(sha.as_slice());
                continue;
            }
            if present.contains(sha) {
                continue;
            }
            if self.decoded.len() > DECODED_MAX {
                self.decoded.clear();
            }
            let Some(bytes) = local.blob_bytes_cached(*id, &mut self.decoded)? else { continue };
            let data =
                zstd::encode_all(bytes.as_slice(), 3).map_err(|e| Error::io("compressing a content".to_owned(), e))?;
            new_sha.push(sha.as_slice());
            new_size.push(bytes.len() as i64);
            new_data.push(data);
        }
        if !secret.is_empty() {
            tx.execute("DELETE FROM blobs WHERE sha256 = ANY($1)", &[&secret])?;
        }
        if !new_sha.is_empty() {
            tx.execute(
                "INSERT INTO blobs (sha256, size, codec, data)
                 SELECT sha, size, 1, data FROM unnest($1::bytea[], $2::bigint[], $3::bytea[]) AS t(sha, size, data)
                 ON CONFLICT DO NOTHING",
                &[&new_sha, &new_size, &new_data],
            )?;
        }
        Ok(())
    }

    /// Sends again the mutable fields of versions shipped before `rows`
    /// that folding changed when `rows` were stored (module doc).
    fn refolds(&self, tx: &mut postgres::Transaction, local: &Store, rows: &[Row]) -> Result<()> {
        let first = rows[0].record.seq;
        let mut ends: Vec<i64> = Vec::new();
        for r in rows {
            ends.push(r.record.seq);
            if let Some(into) = r.folded_into.filter(|&i| i != r.record.seq) {
                ends.push(into);
            }
        }
        ends.sort_unstable();
        ends.dedup();
        let c = local.conn();
        let mut end_row = c.prepare_cached(
            "SELECT path, coalesce(via, old_path), action, old_path, via, folded_into FROM versions WHERE id = ?1",
        )?;
        let mut folded = c.prepare_cached(
            "SELECT id, action, old_path, via, folded_into FROM versions
             WHERE path IN (?1, ?2) AND folded_into = ?3 AND id < ?4",
        )?;
        let update = tx.prepare(
            "UPDATE versions SET action = $3, old_path = $4, via = $5, folded_into = $6 WHERE host = $1 AND seq = $2",
        )?;
        type Mutable = (i64, String, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);
        type EndRow = (Vec<u8>, Option<Vec<u8>>, String, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);
        for end in ends {
            use rusqlite::OptionalExtension;
            let Some((path, source, action, old_path, via, into)) = end_row
                .query_row([end], |r| {
                    let row: EndRow = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                    Ok(row)
                })
                .optional()?
            else {
                continue;
            };
            let mut changed: Vec<Mutable> = Vec::new();
            if end < first {
                changed.push((end, action, old_path, via, into));
            }
            let source = source.unwrap_or_else(|| path.clone());
            let rows = folded.query_map(rusqlite::params![path, source, end, first], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            for row in rows {
                changed.push(row?);
            }
            for (seq, action, old_path, via, into) in changed {
                tx.execute(&update, &[&self.host, &seq, &action, &old_path, &via, &into])?;
            }
        }
        Ok(())
    }

    /// Ships the host's gap records when they changed (they are few; a
    /// gap's counts grow while it is the newest of its kind).
    fn gaps(&mut self, pg: &mut Client, local: &Store) -> Result<()> {
        let c = local.conn();
        let sig: (i64, i64, i64, i64) = c.query_row(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(versions), 0), coalesce(sum(bytes), 0) FROM gaps",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        if self.gaps_shipped == Some(sig) {
            return Ok(());
        }
        let mut stmt = c.prepare_cached(
            "SELECT id, time_us, since_us, until_us, uid, user, what, versions, bytes, source, pid, exe, path FROM gaps",
        )?;
        let mut tx = pg.transaction()?;
        let upsert = tx.prepare(
            "INSERT INTO gaps (host, seq, time_us, since_us, until_us, uid, \"user\", what, versions, bytes, source, pid,
                exe, path)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (host, seq) DO UPDATE SET until_us = EXCLUDED.until_us, versions = EXCLUDED.versions,
                bytes = EXCLUDED.bytes",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (id, time_us, since, until, uid): (i64, i64, Option<i64>, Option<i64>, Option<i64>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let (user, what, versions, bytes, source): (Option<String>, String, i64, i64, Option<String>) =
                (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?);
            let (pid, exe, path): (Option<i32>, Option<String>, Option<Vec<u8>>) = (r.get(10)?, r.get(11)?, r.get(12)?);
            tx.execute(
                &upsert,
                &[
                    &self.host, &id, &time_us, &since, &until, &uid, &user, &what, &versions, &bytes, &source, &pid,
                    &exe, &path,
                ],
            )?;
        }
        tx.commit()?;
        self.gaps_shipped = Some(sig);
        Ok(())
    }

    /// Deletes from the fleet store every content this host knows is secret
    /// (`store/purge.rs`), when that set grew: a content found secret with
    /// no new version referring to it (learned at start-up from a file
    /// under a `redact` name that no library reported) goes too. Once per
    /// session and after each purge; idempotent.
    fn redactions(&mut self, pg: &mut Client, local: &Store) -> Result<()> {
        let c = local.conn();
        let known: i64 = c.query_row("SELECT count(*) FROM blobs WHERE redacted", [], |r| r.get(0))?;
        if self.redactions_shipped == Some(known) {
            return Ok(());
        }
        let secret: Vec<Vec<u8>> = c
            .prepare_cached("SELECT sha256 FROM blobs WHERE redacted")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for chunk in secret.chunks(1000) {
            pg.execute("DELETE FROM blobs WHERE sha256 = ANY($1)", &[&chunk])?;
        }
        self.redactions_shipped = Some(known);
        Ok(())
    }

    /// Writes `<db>.fleet` when the state, the head or the error changed, and
    /// otherwise at most every [`STATUS_EVERY`] (its time says how fresh it is).
    fn status(&mut self, state: &str, error: Option<String>) {
        let key = (state.to_owned(), self.head_seq, error.clone());
        if self.status_written.as_ref().is_some_and(|(k, at)| *k == key && at.elapsed() < STATUS_EVERY) {
            return;
        }
        self.status_written = Some((key, Instant::now()));
        let status = Status {
            host: self.host.clone(),
            url: super::display_url(&self.url),
            state: state.into(),
            head_seq: self.head_seq,
            updated_us: jiff::Timestamp::now().as_microsecond(),
            error,
            key: self.key.as_ref().map(|k| super::key::public(&k.verifying_key())),
        };
        let path = status_path(&self.db);
        let tmp = path.with_extension("fleet.tmp");
        let written = serde_json::to_vec(&status)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::debug!("cannot write {}: {e}", path.display());
        }
    }
}

enum Shipped {
    Versions(usize),
    Alert(String),
}

/// Checks that `rows` extend the head and each other; cuts `rows` to the
/// valid prefix and says what broke, if anything.
fn chain_break(rows: &mut Vec<Row>, head_seq: i64, head_hash: Option<&[u8]>) -> Option<(&'static str, String)> {
    let (mut seq, mut hash) = (head_seq, head_hash.map(<[u8]>::to_vec));
    for (i, r) in rows.iter().enumerate() {
        let id = r.record.seq;
        let broken = if id != seq + 1 {
            Some(("chain_skip", format!("after seq {seq} came seq {id}: versions {}..{} are missing", seq + 1, id - 1)))
        } else if r.prev_hash != hash {
            Some((
                "chain_fork",
                format!(
                    "seq {id} follows a record hash {} where {} was accepted (seq {seq})",
                    short(r.prev_hash.as_deref()),
                    short(hash.as_deref())
                ),
            ))
        } else if r.record_hash.as_deref() != Some(&r.record.hash(r.prev_hash.as_deref())[..]) {
            Some(("chain_fork", format!("seq {id}: its fields do not match its record hash (edited on the host)")))
        } else {
            None
        };
        if let Some(b) = broken {
            rows.truncate(i);
            return Some(b);
        }
        (seq, hash) = (id, r.record_hash.clone());
    }
    None
}

/// This host's record hash of version `seq` (`None`: not held, or not chained).
fn own_hash(local: &Store, seq: i64) -> Result<Option<Vec<u8>>> {
    use rusqlite::OptionalExtension;
    let mut stmt = local.conn().prepare_cached("SELECT record_hash FROM versions WHERE id = ?1")?;
    Ok(stmt.query_row([seq], |r| r.get(0)).optional()?.flatten())
}

fn short(h: Option<&[u8]>) -> String {
    h.map_or("none".into(), |h| hex::encode(&h[..h.len().min(8)]))
}

fn error_text(e: &Error) -> String {
    match e {
        Error::Fleet(pg) => match pg.as_db_error() {
            Some(db) => format!("{pg}: {}", db.message()),
            None => match std::error::Error::source(pg) {
                Some(src) => format!("{pg}: {src}"),
                None => pg.to_string(),
            },
        },
        e => e.to_string(),
    }
}

/// Every version of a batch in one statement: one array per column,
/// `unnest`ed (one round trip and one plan for the batch, not per row).
const INSERT: &str = "INSERT INTO versions (host, seq, time_us, path, named_path, action, old_path, via,
        before_sha, before_state, before_size, after_sha, after_state, after_size, consistent,
        mode, owner_uid, group_gid, before_mode, before_owner_uid, before_group_gid,
        seen_by, gap_before, temp_name, folded_into, \"user\", chain, uid, euid, gid, loginuid, session,
        sudo_user, tty, ssh_client, pid, exe, argv, cwd, trust, record_hash, prev_hash)
    SELECT $1, seq, time_us, path, named_path, action, old_path, via,
        before_sha, before_state, before_size, after_sha, after_state, after_size, consistent,
        mode, owner_uid, group_gid, before_mode, before_owner_uid, before_group_gid,
        seen_by, gap_before, temp_name, folded_into, usr, chain::jsonb, uid, euid, gid, loginuid, session,
        sudo_user, tty, ssh_client, pid, exe, argv::jsonb, cwd, trust, record_hash, prev_hash
    FROM unnest($2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::bytea[], $8::bytea[],
        $9::bytea[], $10::text[], $11::bigint[], $12::bytea[], $13::text[], $14::bigint[], $15::boolean[],
        $16::integer[], $17::bigint[], $18::bigint[], $19::integer[], $20::bigint[], $21::bigint[],
        $22::text[], $23::boolean[], $24::boolean[], $25::bigint[], $26::text[], $27::text[], $28::bigint[],
        $29::bigint[], $30::bigint[], $31::bigint[], $32::bigint[], $33::text[], $34::text[], $35::text[],
        $36::integer[], $37::text[], $38::text[], $39::text[], $40::bigint[], $41::bytea[], $42::bytea[])
    AS t(seq, time_us, path, named_path, action, old_path, via,
        before_sha, before_state, before_size, after_sha, after_state, after_size, consistent,
        mode, owner_uid, group_gid, before_mode, before_owner_uid, before_group_gid,
        seen_by, gap_before, temp_name, folded_into, usr, chain, uid, euid, gid, loginuid, session,
        sudo_user, tty, ssh_client, pid, exe, argv, cwd, trust, record_hash, prev_hash)
    ON CONFLICT (host, seq) DO NOTHING";

fn insert_versions(tx: &mut postgres::Transaction, host: &str, rows: &[Row]) -> Result<()> {
    fn col<T>(rows: &[Row], f: impl Fn(&Row) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    let int = |x: Option<i64>| x.map(|x| x as i32);
    let json = |l: &[String]| serde_json::to_string(l).unwrap_or_else(|_| "[]".into());
    let r = rows;
    tx.execute(
        INSERT,
        &[
            &host,
            &col(r, |r| r.record.seq),
            &col(r, |r| r.record.time_us),
            &col(r, |r| r.record.path.clone()),
            &col(r, |r| r.record.named_path.clone()),
            &col(r, |r| r.action.clone()),
            &col(r, |r| r.old_path.clone()),
            &col(r, |r| r.via.clone()),
            &col(r, |r| r.record.before.sha256.clone()),
            &col(r, |r| r.record.before.state.clone()),
            &col(r, |r| r.record.before.size),
            &col(r, |r| r.record.after.sha256.clone()),
            &col(r, |r| r.record.after.state.clone()),
            &col(r, |r| r.record.after.size),
            &col(r, |r| r.record.consistent),
            &col(r, |r| int(r.record.mode)),
            &col(r, |r| r.record.owner_uid),
            &col(r, |r| r.record.group_gid),
            &col(r, |r| int(r.record.before_mode)),
            &col(r, |r| r.record.before_owner_uid),
            &col(r, |r| r.record.before_group_gid),
            &col(r, |r| r.record.seen_by.clone()),
            &col(r, |r| r.record.gap_before),
            &col(r, |r| r.record.temp_name),
            &col(r, |r| r.folded_into),
            &col(r, |r| r.record.user.clone()),
            &col(r, |r| json(&r.record.chain)),
            &col(r, |r| r.record.uid),
            &col(r, |r| r.record.euid),
            &col(r, |r| r.record.gid),
            &col(r, |r| r.record.loginuid),
            &col(r, |r| r.record.session),
            &col(r, |r| r.record.sudo_user.clone()),
            &col(r, |r| r.record.tty.clone()),
            &col(r, |r| r.record.ssh_client.clone()),
            &col(r, |r| r.record.pid as i32),
            &col(r, |r| r.record.exe.clone()),
            &col(r, |r| json(&r.record.argv)),
            &col(r, |r| r.record.cwd.clone()),
            &col(r, |r| r.record.trust),
            &col(r, |r| r.record_hash.clone()),
            &col(r, |r| r.prev_hash.clone()),
        ],
    )?;
    Ok(())
}
