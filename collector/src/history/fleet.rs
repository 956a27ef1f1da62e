//! [`History`] on the fleet store: every host's shipped versions in one
//! PostgreSQL database (`collector/migrations-pg/`), read with the same
//! filters and into the same records as a host's own store. A version is
//! (host, seq), `seq` being the host's own version id: `query` shows it as
//! the ID, `show HOST:ID` names it. Filters are bound parameters; each path
//! argument is a set of (host, seq) found by the path indexes, as locally.

use std::cell::RefCell;

use postgres::types::ToSql;

use super::{History, VersionId};
use crate::error::{Error, Result};
use crate::model::{RawPaths, VersionRow};
use crate::store::gaps::{GapRow, GapSummary};
use crate::store::query::{Columns, Names, QueryFilter, Stats, b64_unless_utf8, not_stored};
use crate::store::review::{FileSummary, SessionSummary, UserSummary};

pub struct Fleet {
    // postgres::Client needs `&mut` for every query; reads are one at a time.
    client: RefCell<postgres::Client>,
    /// The URL without its password, to name the store.
    shown: String,
}

impl Fleet {
    /// `collector verify` on the fleet store: every content decodes to
    /// bytes of its SHA-256 and size; every host's chain is whole
    /// ([`crate::chain::Checker`], recomputed from the central columns) and
    /// ends at the head the store accepted; the alerts the store raised
    /// (a host whose history forked, rewound or skipped) are listed.
    pub fn verify(&self) -> Result<crate::store::query::Verified> {
        let mut report = crate::store::query::Verified::default();
        let mut after: Vec<u8> = Vec::new();
        loop {
            let rows = self.query(
                "SELECT sha256, size, codec, data FROM blobs WHERE sha256 > $1 ORDER BY sha256 LIMIT 500",
                &[&after],
            )?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0)?;
            for r in &rows {
                report.blobs += 1;
                let (sha, size, codec, data): (Vec<u8>, i64, i16, Vec<u8>) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
                let hex = hex::encode(&sha);
                let bytes = match codec {
                    0 => Ok(data),
                    1 => zstd::decode_all(&data[..]).map_err(|e| e.to_string()),
                    other => Err(format!("unknown codec {other}")),
                };
                match bytes {
                    Ok(b) if b.len() as i64 == size && crate::model::sha256_hex(&b) == hex => {}
                    Ok(_) => report.problems.push(format!("content {hex}: decodes to other bytes")),
                    Err(e) => report.problems.push(format!("content {hex}: {e}")),
                }
            }
        }
        for host in self.query("SELECT host, head_seq, head_hash, public_key FROM hosts ORDER BY host", &[])? {
            let (name, head_seq, head_hash, public): (String, i64, Option<Vec<u8>>, Option<Vec<u8>>) =
                (host.try_get(0)?, host.try_get(1)?, host.try_get(2)?, host.try_get(3)?);
            let q = crate::print::q(&name);
            // Signed checkpoints (`fleet/key.rs`): seq -> the record hash signed.
            let mut signed = std::collections::BTreeMap::new();
            for c in self
                .query("SELECT seq, record_hash, signature FROM checkpoints WHERE host = $1 ORDER BY seq", &[&name])?
            {
                let (seq, hash, signature): (i64, Vec<u8>, Vec<u8>) = (c.try_get(0)?, c.try_get(1)?, c.try_get(2)?);
                let key = public.as_deref().unwrap_or_default();
                // Only a checkpoint the host signed says what it shipped.
                if crate::fleet::key::verify(key, &name, seq, &hash, &signature) {
                    signed.insert(seq, hash);
                } else if public.is_none() {
                    report.problems.push(format!(
                        "host {q}: checkpoint at version {seq}: no key is pinned for the host (removed from the fleet store?)"
                    ));
                } else {
                    report.problems.push(format!(
                        "host {q}: checkpoint at version {seq}: its signature is not the host's pinned key's"
                    ));
                }
            }
            let last_signed = signed.keys().next_back().copied();
            let mut check = crate::chain::Checker::default();
            let mut from = 0i64;
            loop {
                let rows = self.query(
                    &format!("{CHAIN_ROW} WHERE host = $1 AND seq > $2 ORDER BY seq LIMIT 5000"),
                    &[&name, &from],
                )?;
                let Some(last) = rows.last() else { break };
                from = last.try_get("seq")?;
                for r in &rows {
                    report.versions += 1;
                    let (record, hash, prev) = chain_record(r)?;
                    if let Some(want) = signed.remove(&record.seq)
                        && want != hash
                    {
                        report.problems.push(format!(
                            "host {q}: version {}: not the version the host signed there: it or a version before it was rewritten in the fleet store",
                            record.seq
                        ));
                    }
                    check.next(&record, Some(hash), prev.as_deref());
                }
            }
            for seq in signed.keys() {
                report.problems.push(format!(
                    "host {q}: version {seq}: signed by the host, missing from the fleet store (versions cut off after shipping)"
                ));
            }
            report.problems.extend(check.problems.iter().map(|p| format!("host {q}: {p}")));
            let (seq, hash) = check.head();
            if seq != head_seq || hash != head_hash.as_deref() {
                report.problems.push(format!(
                    "host {q}: the store accepted up to version {head_seq}, its versions end at {seq} (rows deleted or added after shipping)"
                ));
            }
            match (&public, last_signed) {
                (Some(key), Some(last)) => {
                    report
                        .notes
                        .push(format!("host {q}: versions up to {last} signed by {}", crate::fleet::key::shown(key)));
                    if last < head_seq {
                        let span = if last + 1 == head_seq {
                            format!("version {head_seq}")
                        } else {
                            format!("versions {}..{head_seq}", last + 1)
                        };
                        report.problems.push(format!(
                            "host {q}: {span} not covered by a signed checkpoint (each shipped batch ends in one: deleted?)"
                        ));
                    }
                }
                (Some(key), None) if head_seq > 0 => report.problems.push(format!(
                    "host {q}: key {} pinned but no checkpoint signed (checkpoints deleted)",
                    crate::fleet::key::shown(key)
                )),
                _ if head_seq == 0 => report.notes.push(format!("host {q}: nothing shipped yet")),
                _ => report.notes.push(format!("host {q}: no signed checkpoints (shipped before signing)")),
            }
        }
        for alert in self
            .query("SELECT host, what, source FROM gaps WHERE seq IS NULL AND what LIKE 'chain_%' ORDER BY id", &[])?
        {
            let (host, what, source): (String, String, Option<String>) =
                (alert.try_get(0)?, alert.try_get(1)?, alert.try_get(2)?);
            report.problems.push(format!(
                "host {}: shipping stopped: {what} ({})",
                crate::print::q(&host),
                crate::print::q(source.as_deref().unwrap_or(""))
            ));
        }
        Ok(report)
    }
}

/// The covered fields ([`crate::chain::Record`]) of a central version, with
/// its record and previous hashes.
const CHAIN_ROW: &str = "SELECT seq, time_us, path, named_path, coalesce(via, old_path) AS source,
    before_sha, before_state, before_size, after_sha, after_state, after_size, consistent,
    mode, owner_uid, group_gid, before_mode, before_owner_uid, before_group_gid, seen_by, gap_before, temp_name,
    \"user\", chain::text AS chain, uid, euid, gid, loginuid, session, sudo_user, tty, ssh_client,
    pid, exe, argv::text AS argv, cwd, trust, record_hash, prev_hash FROM versions";

fn chain_record(r: &postgres::Row) -> Result<(crate::chain::Record, Vec<u8>, Option<Vec<u8>>)> {
    use crate::chain::{Record, SideRecord, strings};
    let side = |sha: &str, state: &str, size: &str| -> Result<SideRecord> {
        Ok(SideRecord { sha256: r.try_get(sha)?, state: r.try_get(state)?, size: r.try_get(size)? })
    };
    let int = |c: &str| -> Result<Option<i64>> { Ok(r.try_get::<_, Option<i32>>(c)?.map(i64::from)) };
    let record = Record {
        seq: r.try_get("seq")?,
        time_us: r.try_get("time_us")?,
        path: r.try_get("path")?,
        named_path: r.try_get("named_path")?,
        source: r.try_get("source")?,
        before: side("before_sha", "before_state", "before_size")?,
        after: side("after_sha", "after_state", "after_size")?,
        consistent: r.try_get("consistent")?,
        mode: int("mode")?,
        owner_uid: r.try_get("owner_uid")?,
        group_gid: r.try_get("group_gid")?,
        before_mode: int("before_mode")?,
        before_owner_uid: r.try_get("before_owner_uid")?,
        before_group_gid: r.try_get("before_group_gid")?,
        seen_by: r.try_get("seen_by")?,
        gap_before: r.try_get("gap_before")?,
        temp_name: r.try_get("temp_name")?,
        user: r.try_get("user")?,
        chain: strings(&r.try_get::<_, String>("chain")?),
        uid: r.try_get("uid")?,
        euid: r.try_get("euid")?,
        gid: r.try_get("gid")?,
        loginuid: r.try_get("loginuid")?,
        session: r.try_get("session")?,
        sudo_user: r.try_get("sudo_user")?,
        tty: r.try_get("tty")?,
        ssh_client: r.try_get("ssh_client")?,
        pid: i64::from(r.try_get::<_, i32>("pid")?),
        exe: r.try_get("exe")?,
        argv: strings(&r.try_get::<_, String>("argv")?),
        cwd: r.try_get("cwd")?,
        trust: r.try_get("trust")?,
    };
    Ok((record, r.try_get("record_hash")?, r.try_get("prev_hash")?))
}

/// The URL as it may be shown: a password in it is replaced by `***`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') && !userinfo.contains('/') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Query parameters, numbered as they are pushed (`$1`, `$2`...).
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync>>);

impl Params {
    /// Adds `value`; returns its placeholder.
    fn push(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

const COLUMNS: &str = "SELECT v.host, v.seq, v.time_us, v.path, v.named_path, v.action, v.old_path, v.via,
    encode(v.before_sha, 'hex') AS before_sha, encode(v.after_sha, 'hex') AS after_sha, v.after_size, v.after_state,
    v.consistent, v.mode, v.owner_uid, v.group_gid, v.before_mode, v.before_owner_uid, v.before_group_gid,
    v.seen_by, v.gap_before, v.folded_into, v.\"user\", v.uid, v.euid, v.chain::text AS chain, v.sudo_user,
    v.session, v.tty, v.ssh_client, v.cwd, v.pid, v.exe, v.argv::text AS argv, v.trust";

/// An id column of the fleet (BIGINT) as the host's u32.
fn u32_of(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

fn row_to_version(r: &postgres::Row, names: &mut Names) -> Result<VersionRow> {
    let mode = |c: &str| -> Result<Option<u32>> { Ok(r.try_get::<_, Option<i32>>(c)?.map(|m| m as u32)) };
    Ok(Columns {
        id: r.try_get("seq")?,
        time_us: r.try_get("time_us")?,
        raw: RawPaths {
            path: r.try_get("path")?,
            named_path: r.try_get("named_path")?,
            old_path: r.try_get("old_path")?,
            via: r.try_get("via")?,
        },
        action: r.try_get("action")?,
        folded_into: r.try_get("folded_into")?,
        before_sha: r.try_get("before_sha")?,
        after_sha: r.try_get("after_sha")?,
        after_size: r.try_get("after_size")?,
        after_state: r.try_get("after_state")?,
        consistent: r.try_get("consistent")?,
        mode: mode("mode")?,
        owner_uid: u32_of(r.try_get("owner_uid")?),
        group_gid: u32_of(r.try_get("group_gid")?),
        before_mode: mode("before_mode")?,
        before_owner_uid: u32_of(r.try_get("before_owner_uid")?),
        before_group_gid: u32_of(r.try_get("before_group_gid")?),
        seen_by: r.try_get("seen_by")?,
        gap_before: r.try_get("gap_before")?,
        user: r.try_get("user")?,
        uid: u32_of(r.try_get("uid")?).unwrap_or(u32::MAX),
        euid: u32_of(r.try_get("euid")?).unwrap_or(u32::MAX),
        chain: r.try_get("chain")?,
        argv: r.try_get("argv")?,
        sudo_user: r.try_get("sudo_user")?,
        session: u32_of(r.try_get("session")?),
        tty: r.try_get("tty")?,
        ssh_client: r.try_get("ssh_client")?,
        host: r.try_get("host")?,
        cwd: r.try_get("cwd")?,
        pid: r.try_get("pid")?,
        exe: r.try_get("exe")?,
        trust: r.try_get("trust")?,
    }
    .row(names))
}

fn time(us: i64) -> String {
    crate::when::json(us)
}

impl Fleet {
    /// Connects to the fleet store at `url` (a libpq URL).
    pub fn connect(url: &str) -> Result<Fleet> {
        let shown = shown_url(url);
        let client = crate::fleet::connect(url)
            .map_err(|source| Error::FleetAt { url: shown.clone(), source: Box::new(source) })?;
        Ok(Fleet { client: RefCell::new(client), shown })
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        Ok(self.client.borrow_mut().query(sql, params)?)
    }

    /// Every value under `dir` (or `dir` itself) in the four path columns,
    /// each once: what a glob argument is matched against.
    fn values_under(&self, dir: &[u8], columns: &[&str]) -> Result<Vec<Vec<u8>>> {
        let (lo, hi) = range(dir);
        let sql = columns
            .iter()
            .map(|c| format!("SELECT {c} AS p FROM versions WHERE {c} = $3 OR ({c} >= $1 AND {c} < $2)"))
            .collect::<Vec<_>>()
            .join(" UNION ");
        let rows = self.query(&format!("{sql} ORDER BY p"), &[&lo, &hi, &dir])?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The host and seq `id` names: a plain id must be one host's.
    fn resolve(&self, id: &VersionId) -> Result<(String, i64)> {
        if let Some(host) = &id.host {
            return Ok((host.clone(), id.id));
        }
        let rows = self.query("SELECT host FROM versions WHERE seq = $1 ORDER BY host", &[&id.id])?;
        let hosts: Vec<String> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        match &hosts[..] {
            [] => Err(Error::NoSuchVersion(id.to_string())),
            [one] => Ok((one.clone(), id.id)),
            many => Err(Error::Usage(format!(
                "version {} is on {} hosts ({}): name one as HOST:{}",
                id.id,
                many.len(),
                many.iter().map(|h| crate::print::q(h).into_owned()).collect::<Vec<_>>().join(", "),
                id.id
            ))),
        }
    }
}

/// `[lo, hi)`: every byte string under directory `dir` (`dir/...`).
fn range(dir: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if dir == b"/" { (b"/".to_vec(), vec![b'/' + 1]) } else { ([dir, b"/"].concat(), [dir, &[b'/' + 1]].concat()) }
}

const PATH_COLUMNS: [&str; 4] = ["path", "named_path", "old_path", "via"];

impl History for Fleet {
    fn versions(&self, filter: &QueryFilter) -> Result<Vec<VersionRow>> {
        let mut p = Params::default();
        let mut sets = Vec::new();
        for spec in &filter.paths {
            let mut dir = spec.path.clone();
            while dir.len() > 1 && dir.ends_with(b"/") {
                dir.pop();
            }
            for column in PATH_COLUMNS {
                let select = format!("SELECT host, seq FROM versions WHERE {column}");
                if let Some(glob) = &spec.glob {
                    // The recorded paths the glob matches, by equality.
                    let matched: Vec<Vec<u8>> =
                        self.values_under(&dir, &[column])?.into_iter().filter(|path| glob.is_match(path)).collect();
                    if !matched.is_empty() {
                        let list: Vec<String> = matched.into_iter().map(|m| p.push(m)).collect();
                        sets.push(format!("{select} IN ({})", list.join(", ")));
                    }
                } else if spec.under {
                    let (lo, hi) = range(&dir);
                    let (d, lo, hi) = (p.push(dir.clone()), p.push(lo), p.push(hi));
                    sets.push(format!("{select} = {d}"));
                    sets.push(format!("{select} >= {lo} AND {column} < {hi}"));
                } else {
                    sets.push(format!("{select} = {}", p.push(dir.clone())));
                }
            }
        }
        let from = match (&filter.paths[..], &sets[..]) {
            ([], _) => "versions v".to_owned(),
            (_, []) => return Ok(Vec::new()),
            _ => format!("({}) AS m JOIN versions v ON v.host = m.host AND v.seq = m.seq", sets.join(" UNION ")),
        };
        let mut wheres = Vec::new();
        if let Some(user) = &filter.user {
            wheres.push(format!("v.\"user\" = {}", p.push(user.clone())));
        }
        if let Some(since) = filter.since {
            wheres.push(format!("v.time_us >= {}", p.push(since.as_microsecond())));
        }
        if let Some(until) = filter.until {
            wheres.push(format!("v.time_us < {}", p.push(until.as_microsecond())));
        }
        if let Some(session) = filter.session {
            wheres.push(format!("v.session = {}", p.push(i64::from(session))));
        }
        if let Some(host) = &filter.host {
            wheres.push(format!("v.host = {}", p.push(host.clone())));
        }
        if !filter.raw {
            // As locally: folded steps hidden, and temp names in the fold window.
            let window = crate::fold::FOLD_WINDOW.as_micros() as i64;
            let recent = p.push(jiff::Timestamp::now().as_microsecond() - window);
            wheres.push(format!("v.folded_into IS NULL AND NOT (v.temp_name AND v.time_us > {recent})"));
        }
        let filter_sql = if wheres.is_empty() { String::new() } else { format!("WHERE {}", wheres.join(" AND ")) };
        let o = if filter.newest_first { "DESC" } else { "ASC" };
        let limit = filter.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql = format!("{COLUMNS} FROM {from} {filter_sql} ORDER BY v.time_us {o}, v.host {o}, v.seq {o}{limit}");
        let mut names = Names::default();
        self.query(&sql, &p.refs())?.iter().map(|r| row_to_version(r, &mut names)).collect()
    }

    fn gaps(&self, filter: &QueryFilter) -> Result<Vec<GapRow>> {
        if filter.session.is_some() {
            return Ok(Vec::new());
        }
        let uid = filter.user.as_deref().and_then(uzers::get_user_by_name).map(|u| i64::from(u.uid()));
        let o = if filter.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT id, host, seq, time_us, since_us, until_us, uid, \"user\", what, versions, bytes, source, pid, exe,
                    path, coalesce(since_us, time_us) AS start
             FROM gaps
             WHERE ($1::text IS NULL OR \"user\" = $1 OR ($2::bigint IS NOT NULL AND uid = $2))
               AND ($3::bigint IS NULL OR greatest(coalesce(until_us, time_us), time_us) >= $3)
               AND ($4::bigint IS NULL OR coalesce(since_us, time_us) < $4)
               AND ($5::text IS NULL OR host = $5)
             ORDER BY start {o}, host {o}, id {o}"
        );
        let (since, until) = (filter.since.map(|t| t.as_microsecond()), filter.until.map(|t| t.as_microsecond()));
        let rows = self.query(&sql, &[&filter.user, &uid, &since, &until, &filter.host])?;
        let mut gaps = Vec::new();
        for r in &rows {
            let raw_path: Option<Vec<u8>> = r.try_get("path")?;
            let wanted = filter.paths.is_empty()
                || raw_path.as_deref().is_some_and(|p| filter.paths.iter().any(|spec| spec.matches(p)));
            if !wanted {
                continue;
            }
            let start: i64 = r.try_get("start")?;
            let seq: Option<i64> = r.try_get("seq")?;
            gaps.push(GapRow {
                kind: "gap",
                // The host's own gap id; the fleet's own alerts have none.
                id: seq.unwrap_or(r.try_get("id")?),
                time: time(start),
                what: r.try_get("what")?,
                versions: r.try_get::<_, i64>("versions")?.max(0) as u64,
                bytes: r.try_get::<_, i64>("bytes")?.max(0) as u64,
                since: r.try_get::<_, Option<i64>>("since_us")?.map(time),
                until: r.try_get::<_, Option<i64>>("until_us")?.map(time),
                recorded: time(r.try_get("time_us")?),
                path: raw_path.as_deref().map(filetrail_wire::path::escape_bytes),
                uid: u32_of(r.try_get("uid")?),
                user: r.try_get("user")?,
                pid: r.try_get("pid")?,
                exe: r.try_get("exe")?,
                source: r.try_get("source")?,
                host: r.try_get("host")?,
                raw_path,
                time_us: start,
            });
        }
        if let Some(n) = filter.limit {
            gaps.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(gaps)
    }

    fn paths_under(&self, dir: &[u8]) -> Result<Vec<Vec<u8>>> {
        let (lo, hi) = range(dir);
        let sql = ["path", "named_path", "old_path"]
            .map(|c| format!("SELECT {c} AS p FROM versions WHERE {c} >= $1 AND {c} < $2"))
            .join(" UNION ");
        let rows = self.query(&format!("{sql} ORDER BY p"), &[&lo, &hi])?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn knows_user(&self, name: &str) -> Result<bool> {
        let rows = self.query("SELECT EXISTS (SELECT 1 FROM versions WHERE \"user\" = $1)", &[&name])?;
        Ok(rows[0].try_get(0)?)
    }

    fn hosts(&self) -> Result<Vec<String>> {
        let rows = self.query("SELECT host FROM hosts ORDER BY host", &[])?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn version(&self, id: &VersionId) -> Result<VersionRow> {
        let (host, seq) = self.resolve(id)?;
        let rows =
            self.query(&format!("{COLUMNS} FROM versions v WHERE v.host = $1 AND v.seq = $2"), &[&host, &seq])?;
        rows.first()
            .map(|r| row_to_version(r, &mut Names::default()))
            .unwrap_or_else(|| Err(Error::NoSuchVersion(id.to_string())))
    }

    fn content(&self, id: &VersionId, before: bool) -> Result<Vec<u8>> {
        let (host, seq) = self.resolve(id)?;
        let side = if before { "before" } else { "after" };
        let rows = self.query(
            &format!(
                "SELECT v.{side}_state, encode(v.{side}_sha, 'hex'), b.codec, b.data FROM versions v
                 LEFT JOIN blobs b ON b.sha256 = v.{side}_sha WHERE v.host = $1 AND v.seq = $2"
            ),
            &[&host, &seq],
        )?;
        let Some(r) = rows.first() else { return Err(Error::NoSuchVersion(id.to_string())) };
        let (state, sha256): (Option<String>, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
        let (codec, data): (Option<i16>, Option<Vec<u8>>) = (r.try_get(2)?, r.try_get(3)?);
        if state.as_deref() == Some("redacted") {
            return Err(Error::Redacted { id: seq });
        }
        if state.as_deref() != Some("stored") {
            return Err(Error::NoContent { id: seq, why: not_stored(state.as_deref(), before) });
        }
        let Some(data) = data else {
            let why = "its content is not in the fleet store (not shipped)".to_owned();
            return Err(Error::NoContent { id: seq, why });
        };
        let bytes = match codec {
            Some(0) => data,
            Some(1) => zstd::decode_all(&data[..]).map_err(|e| Error::Corrupt(format!("version {id}: {e}")))?,
            other => return Err(Error::Corrupt(format!("version {id}: unknown codec {other:?}"))),
        };
        // What was decoded must be what the version recorded.
        let got = crate::model::sha256_hex(&bytes);
        match sha256 {
            Some(want) if want == got => Ok(bytes),
            want => Err(Error::Damaged { id: seq, side, want: want.unwrap_or_default(), got }),
        }
    }

    fn users(&self, only: Option<&str>, host: Option<&str>) -> Result<Vec<UserSummary>> {
        let rows = self.query(
            "SELECT \"user\", count(*), count(DISTINCT (host, path)), count(DISTINCT (host, coalesce(session, -1))),
                    min(time_us), max(time_us)
             FROM versions WHERE ($1::text IS NULL OR \"user\" = $1) AND ($2::text IS NULL OR host = $2)
               AND folded_into IS NULL
             GROUP BY \"user\" ORDER BY max(time_us) DESC",
            &[&only, &host],
        )?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    user: r.try_get(0)?,
                    versions: r.try_get(1)?,
                    files: r.try_get(2)?,
                    sessions: r.try_get(3)?,
                    first: time(r.try_get(4)?),
                    last: time(r.try_get(5)?),
                })
            })
            .collect()
    }

    fn user_files(&self, user: &str, host: Option<&str>) -> Result<Vec<FileSummary>> {
        let rows = self.query(
            "SELECT host, path, count(*), max(time_us) FROM versions
             WHERE \"user\" = $1 AND ($2::text IS NULL OR host = $2) AND folded_into IS NULL
             GROUP BY host, path ORDER BY max(time_us) DESC, host, path",
            &[&user, &host],
        )?;
        rows.iter()
            .map(|r| {
                let raw_path: Vec<u8> = r.try_get(1)?;
                Ok(FileSummary {
                    host: r.try_get(0)?,
                    path: filetrail_wire::path::escape_bytes(&raw_path),
                    path_b64: b64_unless_utf8(&raw_path),
                    raw_path,
                    versions: r.try_get(2)?,
                    last: time(r.try_get(3)?),
                })
            })
            .collect()
    }

    fn user_sessions(&self, user: &str, host: Option<&str>) -> Result<Vec<SessionSummary>> {
        let rows = self.query(
            "SELECT host, session, max(ssh_client), max(tty), min(time_us), max(time_us), count(*) FROM versions
             WHERE \"user\" = $1 AND ($2::text IS NULL OR host = $2) AND folded_into IS NULL
             GROUP BY host, session ORDER BY min(time_us), host",
            &[&user, &host],
        )?;
        rows.iter()
            .map(|r| {
                Ok(SessionSummary {
                    host: r.try_get(0)?,
                    session: r.try_get::<_, Option<i64>>(1)?.map(|s| s.to_string()),
                    ssh_client: r.try_get(2)?,
                    tty: r.try_get(3)?,
                    first: time(r.try_get(4)?),
                    last: time(r.try_get(5)?),
                    versions: r.try_get(6)?,
                })
            })
            .collect()
    }

    fn stats(&self) -> Result<Stats> {
        let one = |sql: &str| -> Result<Option<i64>> { Ok(self.query(sql, &[])?[0].try_get(0)?) };
        let rows = self.query(
            "SELECT what, count(*), sum(versions)::bigint, sum(bytes)::bigint, min(time_us), max(time_us),
                    string_agg(DISTINCT coalesce(\"user\", uid::text), ',')
             FROM gaps GROUP BY what ORDER BY what",
            &[],
        )?;
        let gaps = rows
            .iter()
            .map(|r| {
                let users: Option<String> = r.try_get(6)?;
                Ok(GapSummary {
                    what: r.try_get(0)?,
                    records: r.try_get(1)?,
                    versions: r.try_get::<_, Option<i64>>(2)?.unwrap_or(0),
                    bytes: r.try_get::<_, Option<i64>>(3)?.unwrap_or(0),
                    users: users.map(|u| u.split(',').map(str::to_owned).collect()).unwrap_or_default(),
                    first: r.try_get::<_, Option<i64>>(4)?.map(time),
                    last: r.try_get::<_, Option<i64>>(5)?.map(time),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Stats {
            versions: one("SELECT count(*) FROM versions")?.unwrap_or(0),
            paths: one("SELECT count(*) FROM (SELECT DISTINCT host, path FROM versions) AS p")?.unwrap_or(0),
            users: one("SELECT count(DISTINCT \"user\") FROM versions")?.unwrap_or(0),
            blobs: one("SELECT count(*) FROM blobs")?.unwrap_or(0),
            stored_blobs: one("SELECT count(data) FROM blobs")?.unwrap_or(0),
            content_bytes: one("SELECT sum(size)::bigint FROM blobs")?.unwrap_or(0),
            stored_bytes: one("SELECT sum(octet_length(data))::bigint FROM blobs")?.unwrap_or(0),
            disk_bytes: one("SELECT pg_database_size(current_database())")?.unwrap_or(0).max(0) as u64,
            oldest: one("SELECT min(time_us) FROM versions")?.map(time),
            newest: one("SELECT max(time_us) FROM versions")?.map(time),
            gaps,
            gap_before_versions: one("SELECT count(*) FROM versions WHERE gap_before")?.unwrap_or(0),
            // Shipping is a host's: the fleet store is where it ships to.
            fleet: None,
        })
    }

    fn name(&self) -> String {
        crate::print::q(&self.shown).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(shown_url("postgresql://ft:s3cret@db:5432/fleet"), "postgresql://ft:***@db:5432/fleet");
        assert_eq!(shown_url("postgresql://ft@db/fleet"), "postgresql://ft@db/fleet");
        assert_eq!(shown_url("postgres://db/fleet?sslmode=require"), "postgres://db/fleet?sslmode=require");
    }

    #[test]
    fn a_directory_range_holds_its_entries_only() {
        let (lo, hi) = range(b"/etc");
        for inside in [&b"/etc/a"[..], b"/etc/zz/y"] {
            assert!(inside >= &lo[..] && inside < &hi[..]);
        }
        for outside in [&b"/etc"[..], b"/etc.d/a", b"/etc0", b"/et"] {
            assert!(!(outside >= &lo[..] && outside < &hi[..]));
        }
    }
}
