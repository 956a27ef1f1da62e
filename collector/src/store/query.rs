//! Reading versions back: filters become bound SQL parameters here, and rows
//! become [`VersionRow`]s (the `query --json` contract).

use rusqlite::types::Value;
use rusqlite::{Row, params_from_iter};

use super::Store;
use crate::error::{Error, Result};
use crate::model::{RawPaths, VersionRow};
use crate::pathglob::PathGlob;
use crate::who::user_name;

/// One path argument: the file itself, everything under a directory, or
/// the paths under a directory that a glob matches.
#[derive(Debug, Clone)]
pub struct PathSpec {
    pub path: Vec<u8>,
    pub under: bool,
    /// With `under`: only the paths this glob matches (`path` is its base).
    pub glob: Option<PathGlob>,
}

impl PathSpec {
    pub fn exact(path: Vec<u8>) -> PathSpec {
        PathSpec { path, under: false, glob: None }
    }
}

impl PathSpec {
    /// The file itself (trailing slashes aside), or, for a directory,
    /// anything under it: as [`Store::versions`] matches its columns.
    pub fn matches(&self, path: &[u8]) -> bool {
        let mut dir = &self.path[..];
        while dir.len() > 1 && dir.ends_with(b"/") {
            dir = &dir[..dir.len() - 1];
        }
        let here = path == dir
            || (self.under && (dir == b"/" || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))));
        here && self.glob.as_ref().is_none_or(|g| g.is_match(path))
    }
}

/// What `collector query` asks for. Empty means everything.
#[derive(Debug, Clone, Default)]
pub struct QueryFilter {
    pub paths: Vec<PathSpec>,
    /// The human (`user` field).
    pub user: Option<String>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
    pub session: Option<u32>,
    /// Only this host's versions (`--host`).
    pub host: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    pub limit: Option<u64>,
    /// Every step (`query --all`): also the versions folded into others
    /// (`fold.rs`) and temp files' versions not folded yet.
    pub raw: bool,
}

const COLUMNS: &str = "SELECT v.id, v.time_us, v.path, v.named_path, v.action, v.old_path,
    nullif(lower(hex(b.sha256)), '') AS before_sha, nullif(lower(hex(a.sha256)), '') AS after_sha, a.size AS after_size,
    CASE WHEN b.redacted THEN 'redacted' ELSE v.before_state END AS before_state, v.before_blob,
    CASE WHEN a.redacted THEN 'redacted' ELSE v.after_state END AS after_state, v.after_blob, v.consistent, v.mode, v.owner_uid, v.group_gid,
    v.seen_by, v.gap_before, v.before_mode, v.before_owner_uid, v.before_group_gid, v.via, v.folded_into,
    p.user, p.uid, p.euid, p.chain, p.sudo_user, p.session, p.tty, p.ssh_client, p.host, w.cwd, w.pid, w.exe, w.argv, w.trust";
const JOINS: &str = "JOIN writers w ON w.id = v.writer JOIN principals p ON p.id = v.principal
    LEFT JOIN blobs b ON b.id = v.before_blob LEFT JOIN blobs a ON a.id = v.after_blob";

/// The exclusive upper bound of all byte strings starting with `prefix/`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(b'/' + 1);
    end
}

impl Store {
    /// Versions matching `filter`, oldest first.
    pub fn versions(&self, filter: &QueryFilter) -> Result<Vec<VersionRow>> {
        let mut clauses = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        // Globs are matched by a function of this query: `ft_glob(k, path)`
        // with the k-th spec's glob.
        let globs: Vec<Option<PathGlob>> = filter.paths.iter().map(|s| s.glob.clone()).collect();
        if globs.iter().any(Option::is_some) {
            use rusqlite::functions::FunctionFlags;
            let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
            self.conn().create_scalar_function("ft_glob", 2, flags, move |ctx| {
                let k: i64 = ctx.get(0)?;
                let path: Vec<u8> = ctx.get(1)?;
                let glob = usize::try_from(k).ok().and_then(|k| globs.get(k)).and_then(Option::as_ref);
                Ok(glob.is_some_and(|g| g.is_match(&path)))
            })?;
        }
        for (k, spec) in filter.paths.iter().enumerate() {
            let mut dir = spec.path.clone();
            while dir.len() > 1 && dir.ends_with(b"/") {
                dir.pop();
            }
            // One indexed lookup per column (the real path, the name used,
            // the name a file was renamed away from, the temp file renamed over it), as a set of ids: an
            // OR across the columns would scan.
            let mut parts = Vec::new();
            for column in ["path", "named_path", "old_path", "via"] {
                let n = args.len();
                if spec.under {
                    let lo = if dir == b"/" { b"/".to_vec() } else { [&dir[..], b"/"].concat() };
                    let hi = if dir == b"/" { vec![b'/' + 1] } else { prefix_end(&dir) };
                    let glob = if spec.glob.is_some() { format!(" AND ft_glob({k}, {column})") } else { String::new() };
                    parts.push(format!("SELECT id FROM versions WHERE {column} = ?{}{glob}", n + 1));
                    parts.push(format!(
                        "SELECT id FROM versions WHERE {column} >= ?{} AND {column} < ?{}{glob}",
                        n + 2,
                        n + 3
                    ));
                    args.extend([Value::Blob(dir.clone()), Value::Blob(lo), Value::Blob(hi)]);
                } else {
                    parts.push(format!("SELECT id FROM versions WHERE {column} = ?{}", n + 1));
                    args.push(Value::Blob(dir.clone()));
                }
            }
            clauses.push(parts.join(" UNION "));
        }
        // With paths, the matching ids drive the query (CROSS JOIN keeps
        // them the outer loop) and only they are sorted; without, the
        // whole table in time order.
        let mut from = if clauses.is_empty() {
            "FROM versions v".to_owned()
        } else {
            format!("FROM ({}) AS m CROSS JOIN versions v ON v.id = m.id", clauses.join(" UNION "))
        };
        if filter.user.is_some() || filter.session.is_some() || filter.host.is_some() {
            from.push_str(" JOIN principals p ON p.id = v.principal");
        }
        let mut wheres = Vec::new();
        if let Some(user) = &filter.user {
            args.push(Value::Text(user.clone()));
            wheres.push(format!("p.user = ?{}", args.len()));
        }
        if let Some(since) = filter.since {
            args.push(Value::Integer(since.as_microsecond()));
            wheres.push(format!("v.time_us >= ?{}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(Value::Integer(until.as_microsecond()));
            wheres.push(format!("v.time_us < ?{}", args.len()));
        }
        if let Some(session) = filter.session {
            args.push(Value::Integer(session.into()));
            wheres.push(format!("p.session = ?{}", args.len()));
        }
        if let Some(host) = &filter.host {
            // A principal stored without a host name is this machine's.
            args.push(Value::Text(host.clone()));
            let n = args.len();
            args.push(crate::hostname::get().map_or(Value::Null, Value::Text));
            wheres.push(format!("coalesce(p.host, ?{}) = ?{n}", n + 1));
        }
        if !filter.raw {
            // Folded steps are not shown; nor, while a temp file may still
            // be renamed (the fold window), a temp-named path's versions.
            let window = crate::fold::FOLD_WINDOW.as_micros() as i64;
            args.push(Value::Integer(jiff::Timestamp::now().as_microsecond() - window));
            wheres.push(format!("v.folded_into IS NULL AND NOT (v.temp_name AND v.time_us > ?{})", args.len()));
        }
        let filter_sql = if wheres.is_empty() { String::new() } else { format!("WHERE {}", wheres.join(" AND ")) };
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let limit = filter.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        // Time order, not id order: a created file's version is stored a
        // moment after later changes (it waits to see whether it was a
        // temp file), so ids are only roughly chronological.
        // Pick and order the ids first, touching only what filters need;
        // then fetch the columns of just those rows.
        let ids = format!("SELECT v.id AS id {from} {filter_sql} ORDER BY v.time_us {order}, v.id {order}{limit}");
        let sql = format!(
            "{COLUMNS} FROM ({ids}) AS t CROSS JOIN versions v ON v.id = t.id {JOINS} ORDER BY v.time_us {order}, v.id {order}"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut names = Names::default();
        let rows = stmt.query_map(params_from_iter(args), |r| row_to_version(r, &mut names))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every path recorded under directory `dir` (as `path`, `named_path`
    /// or `old_path`), each once, in byte order: what a glob is matched against.
    pub fn paths_under(&self, dir: &[u8]) -> Result<Vec<Vec<u8>>> {
        let (lo, hi) =
            if dir == b"/" { (b"/".to_vec(), vec![b'/' + 1]) } else { ([dir, b"/"].concat(), prefix_end(dir)) };
        let sql = ["path", "named_path", "old_path"]
            .map(|c| format!("SELECT {c} AS p FROM versions WHERE {c} >= ?1 AND {c} < ?2"))
            .join(" UNION ");
        let mut stmt = self.conn().prepare(&format!("{sql} ORDER BY p"))?;
        let rows = stmt.query_map([lo, hi], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One version by id.
    pub fn version(&self, id: i64) -> Result<VersionRow> {
        use rusqlite::OptionalExtension;
        let sql = format!("{COLUMNS} FROM versions v {JOINS} WHERE v.id = ?1");
        self.conn()
            .query_row(&sql, [id], |r| row_to_version(r, &mut Names::default()))
            .optional()?
            .ok_or(Error::NoSuchVersion(id.to_string()))
    }

    /// The exact bytes of a version's after (or before) content, checked
    /// against the SHA-256 it is filed under. A redacted side is refused
    /// whatever its hash points at.
    pub fn content(&self, id: i64, before: bool) -> Result<Vec<u8>> {
        let side = if before { "before" } else { "after" };
        let (blob, state, secret, sha256): (Option<i64>, Option<String>, Option<bool>, Option<String>) = self
            .conn()
            .query_row(
                &format!(
                    "SELECT v.{side}_blob, v.{side}_state, b.redacted, lower(hex(b.sha256)) FROM versions v
                     LEFT JOIN blobs b ON b.id = v.{side}_blob WHERE v.id = ?1"
                ),
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Error::NoSuchVersion(id.to_string()),
                e => e.into(),
            })?;
        if state.as_deref() == Some("redacted") || secret == Some(true) {
            return Err(Error::Redacted { id });
        }
        let why = |state: Option<&str>| not_stored(state, before);
        let Some(blob) = blob else { return Err(Error::NoContent { id, why: why(state.as_deref()) }) };
        let bytes = self.blob_bytes(blob)?.ok_or_else(|| Error::NoContent { id, why: why(state.as_deref()) })?;
        // What was decoded must be what the version recorded: a damaged
        // store never passes for the file's content.
        let got = crate::model::sha256_hex(&bytes);
        match sha256 {
            Some(want) if want == got => Ok(bytes),
            want => Err(Error::Damaged { id, side, want: want.unwrap_or_default(), got }),
        }
    }
}

/// Why a side with this state has no content to show (`Error::NoContent`);
/// `diff` takes "the file did not exist" as no file.
pub(crate) fn not_stored(state: Option<&str>, before: bool) -> String {
    match state {
        None => format!("the file did not exist {}", if before { "before this change" } else { "after this change" }),
        Some("hash_only") => "the file was larger than max_size; only its hash was recorded".into(),
        Some("unreadable") => "the writing process could not read it".into(),
        Some(s) => format!("content not stored ({s})"),
    }
}

/// What `collector restore` needs of a version besides its content: the
/// path as stored (raw bytes), the recorded mode, and the writing process's
/// effective uid and gid as the kernel stated them (`SO_PEERCRED`). The
/// recorded owner is not here: it is whatever the client reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSource {
    pub path: Vec<u8>,
    pub mode: Option<u32>,
    pub euid: u32,
    pub egid: u32,
}

impl Store {
    pub fn restore_source(&self, id: i64) -> Result<RestoreSource> {
        self.conn()
            .query_row(
                "SELECT v.path, v.mode, p.euid, p.gid FROM versions v JOIN principals p ON p.id = v.principal
                 WHERE v.id = ?1",
                [id],
                |r| Ok(RestoreSource { path: r.get(0)?, mode: r.get(1)?, euid: r.get(2)?, egid: r.get(3)? }),
            )
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Error::NoSuchVersion(id.to_string()),
                e => e.into(),
            })
    }
}

/// What `collector verify` found.
#[derive(Debug, Default)]
pub struct Verified {
    pub blobs: u64,
    pub versions: u64,
    pub problems: Vec<String>,
    /// What was checked besides (the fleet: each host's signing key).
    pub notes: Vec<String>,
}

impl Store {
    pub fn verify(&self) -> Result<Verified> {
        let mut report = Verified::default();
        let mut stmt =
            self.conn().prepare("SELECT id, lower(hex(sha256)) FROM blobs WHERE data IS NOT NULL ORDER BY id")?;
        let blobs: Vec<(i64, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        for (id, sha) in blobs {
            report.blobs += 1;
            match self.blob_bytes(id) {
                Ok(Some(bytes)) if crate::model::sha256_hex(&bytes) == sha => {}
                Ok(Some(_)) => report.problems.push(format!("content {sha}: decodes to other bytes")),
                Ok(None) => report.problems.push(format!("content {sha}: a base it needs is missing")),
                Err(e) => report.problems.push(format!("content {sha}: {e}")),
            }
        }
        let mut stmt = self.conn().prepare(
            "SELECT v.id FROM versions v
             LEFT JOIN blobs b ON b.id = v.before_blob LEFT JOIN blobs a ON a.id = v.after_blob
             WHERE (v.before_blob IS NOT NULL AND b.id IS NULL) OR (v.after_blob IS NOT NULL AND a.id IS NULL)",
        )?;
        for id in stmt.query_map([], |r| r.get::<_, i64>(0))? {
            report.problems.push(format!("version {}: its content is missing from the store", id?));
        }
        let mut stmt = self
            .conn()
            .prepare("SELECT lower(hex(sha256)) FROM blobs WHERE redacted = 1 AND data IS NOT NULL ORDER BY id")?;
        for sha in stmt.query_map([], |r| r.get::<_, String>(0))? {
            report.problems.push(format!("content {}: redacted, yet its bytes are stored", sha?));
        }
        super::chain::verify(self.conn(), &mut report.problems)?;
        report.versions = self.conn().query_row("SELECT count(*) FROM versions", [], |r| r.get::<_, i64>(0))? as u64;
        Ok(report)
    }
}

/// What `collector stats` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub versions: i64,
    pub paths: i64,
    pub users: i64,
    /// Distinct contents, the hash-only ones (redacted, over `max_size` or
    /// the quota) included; `stored_blobs` of them hold their bytes (what
    /// `verify` checks).
    pub blobs: i64,
    pub stored_blobs: i64,
    pub content_bytes: i64,
    pub stored_bytes: i64,
    pub disk_bytes: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// What could not be recorded, by kind (`store/gaps.rs`).
    pub gaps: Vec<super::gaps::GapSummary>,
    /// Versions after a change nobody saw (`gap_before`: the collector was
    /// down or the kernel watch off), which no gap record counts.
    pub gap_before_versions: i64,
    /// Shipping to the fleet store, when this store's collector ships.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStats>,
}

/// The shipper's state (`fleet/ship.rs`) and what waits to be shipped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetStats {
    pub host: String,
    pub url: String,
    /// `shipping`, `unreachable` or `stopped` (a chain alert).
    pub state: String,
    pub error: Option<String>,
    /// The last version the fleet store accepted.
    pub shipped_seq: i64,
    /// Versions stored here and not shipped yet.
    pub backlog: i64,
    /// Seconds since the oldest version not shipped yet was stored (0: none waits).
    pub lag_seconds: f64,
    /// When the shipper last reported.
    pub updated: String,
    /// The public key the host signs its checkpoints with (`ed25519:BASE64`).
    pub key: Option<String>,
}

impl Store {
    pub fn stats(&self) -> Result<Stats> {
        let c = self.conn();
        let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0)).map(|v| v.unwrap_or(0));
        let time = |sql: &str| -> Result<Option<String>> {
            let us: Option<i64> = c.query_row(sql, [], |r| r.get(0))?;
            Ok(us.map(crate::when::json))
        };
        let disk_bytes = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", self.path().display())).ok())
            .map(|m| m.len())
            .sum();
        Ok(Stats {
            versions: one("SELECT count(*) FROM versions")?,
            paths: one("SELECT count(DISTINCT path) FROM versions")?,
            users: one("SELECT count(DISTINCT user) FROM principals")?,
            blobs: one("SELECT count(*) FROM blobs")?,
            stored_blobs: one("SELECT count(data) FROM blobs")?,
            content_bytes: one("SELECT sum(size) FROM blobs")?,
            stored_bytes: one("SELECT sum(length(data)) FROM blobs")?,
            disk_bytes,
            oldest: time("SELECT min(time_us) FROM versions")?,
            newest: time("SELECT max(time_us) FROM versions")?,
            gaps: self.gap_summary()?,
            gap_before_versions: one("SELECT count(*) FROM versions WHERE gap_before = 1")?,
            fleet: self.fleet_stats()?,
        })
    }

    fn fleet_stats(&self) -> Result<Option<FleetStats>> {
        let Some(st) = crate::fleet::ship::read_status(self.path()) else { return Ok(None) };
        let (backlog, oldest): (i64, Option<i64>) =
            self.conn().query_row("SELECT count(*), min(time_us) FROM versions WHERE id > ?1", [st.head_seq], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let now = jiff::Timestamp::now().as_microsecond();
        Ok(Some(FleetStats {
            host: st.host,
            url: st.url,
            state: st.state,
            error: st.error,
            shipped_seq: st.head_seq,
            backlog,
            lag_seconds: oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1e6),
            updated: crate::when::json(st.updated_us),
            key: st.key,
        }))
    }
}

fn text(bytes: &[u8]) -> String {
    filetrail_wire::path::escape_bytes(bytes)
}

/// The exact spelling of a path in JSON when it is not UTF-8 (then `path`
/// is only a readable, lossy spelling): its bytes in standard base64.
pub fn b64_unless_utf8(bytes: &[u8]) -> Option<String> {
    use base64::Engine;
    std::str::from_utf8(bytes).is_err().then(|| base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Permission bits as `ls -l`'s tools write them: `"0644"`, `"4755"`.
pub fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// A version's columns as either store holds them (SQLite here, the fleet's
/// PostgreSQL in `history/fleet.rs`): [`Columns::row`] makes them the one
/// `query --json` record.
pub(crate) struct Columns {
    pub id: i64,
    pub time_us: i64,
    pub raw: RawPaths,
    pub action: String,
    pub folded_into: Option<i64>,
    /// Lower-case hex.
    pub before_sha: Option<String>,
    pub after_sha: Option<String>,
    pub after_size: Option<i64>,
    pub after_state: Option<String>,
    pub consistent: bool,
    pub mode: Option<u32>,
    pub owner_uid: Option<u32>,
    pub group_gid: Option<u32>,
    pub before_mode: Option<u32>,
    pub before_owner_uid: Option<u32>,
    pub before_group_gid: Option<u32>,
    pub seen_by: String,
    pub gap_before: bool,
    pub user: String,
    pub uid: u32,
    pub euid: u32,
    /// JSON arrays of strings.
    pub chain: String,
    pub argv: String,
    pub sudo_user: Option<String>,
    pub session: Option<u32>,
    pub tty: Option<String>,
    pub ssh_client: Option<String>,
    pub host: Option<String>,
    pub cwd: Option<String>,
    pub pid: i32,
    pub exe: String,
    pub trust: i64,
}

/// Owner and group names of one query's rows, each looked up once (a
/// lookup reads the user database: per row, it cost more than the query).
#[derive(Default)]
pub(crate) struct Names {
    users: std::collections::HashMap<u32, String>,
    groups: std::collections::HashMap<u32, String>,
}

impl Names {
    fn user(&mut self, uid: u32) -> String {
        self.users.entry(uid).or_insert_with(|| user_name(uid)).clone()
    }

    fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                uzers::get_group_by_gid(gid)
                    .map(|g| g.name().to_string_lossy().into_owned())
                    .unwrap_or_else(|| gid.to_string())
            })
            .clone()
    }
}

impl Columns {
    pub fn row(self, names: &mut Names) -> VersionRow {
        let json_list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
        let trust = crate::who::trust_json(self.trust);
        let raw = self.raw;
        VersionRow {
            time_us: self.time_us,
            id: self.id,
            time: crate::when::json(self.time_us),
            path: text(&raw.path),
            path_b64: b64_unless_utf8(&raw.path),
            named_path: raw.named_path.as_deref().map(text),
            named_path_b64: raw.named_path.as_deref().and_then(b64_unless_utf8),
            action: self.action,
            old_path: raw.old_path.as_deref().map(text),
            old_path_b64: raw.old_path.as_deref().and_then(b64_unless_utf8),
            via: raw.via.as_deref().map(text),
            via_b64: raw.via.as_deref().and_then(b64_unless_utf8),
            folded_into: self.folded_into,
            before: self.before_sha,
            after: self.after_sha,
            size: self.after_size.map(|s| s as u64),
            mode: self.mode.map(octal),
            owner: self.owner_uid.map(|u| names.user(u)),
            group: self.group_gid.map(|g| names.group(g)),
            owner_uid: self.owner_uid,
            group_gid: self.group_gid,
            before_mode: self.before_mode.map(octal),
            before_owner_uid: self.before_owner_uid,
            before_group_gid: self.before_group_gid,
            seen_by: self.seen_by,
            gap_before: self.gap_before,
            content: self.after_state.unwrap_or_else(|| "none".into()),
            consistent: self.consistent,
            user: self.user,
            uid: self.uid,
            euid: self.euid,
            chain: json_list(&self.chain),
            sudo_user: self.sudo_user,
            unregistered_session: self.session.is_some() && trust["session"] != "verified",
            session: self.session.map(|s| s.to_string()),
            tty: self.tty,
            ssh_client: self.ssh_client,
            // A principal stored without a host name is this machine's.
            host: self.host.or_else(crate::hostname::get),
            cwd: self.cwd,
            pid: self.pid,
            exe: self.exe,
            argv: json_list(&self.argv),
            trust,
            raw,
        }
    }
}

fn row_to_version(r: &Row, names: &mut Names) -> rusqlite::Result<VersionRow> {
    Ok(Columns {
        id: r.get("id")?,
        time_us: r.get("time_us")?,
        raw: RawPaths {
            path: r.get("path")?,
            named_path: r.get("named_path")?,
            old_path: r.get("old_path")?,
            via: r.get("via")?,
        },
        action: r.get("action")?,
        folded_into: r.get("folded_into")?,
        before_sha: r.get("before_sha")?,
        after_sha: r.get("after_sha")?,
        after_size: r.get("after_size")?,
        after_state: r.get("after_state")?,
        consistent: r.get("consistent")?,
        mode: r.get("mode")?,
        owner_uid: r.get("owner_uid")?,
        group_gid: r.get("group_gid")?,
        before_mode: r.get("before_mode")?,
        before_owner_uid: r.get("before_owner_uid")?,
        before_group_gid: r.get("before_group_gid")?,
        seen_by: r.get("seen_by")?,
        gap_before: r.get("gap_before")?,
        user: r.get("user")?,
        uid: r.get("uid")?,
        euid: r.get("euid")?,
        chain: r.get("chain")?,
        argv: r.get("argv")?,
        sudo_user: r.get("sudo_user")?,
        session: r.get("session")?,
        tty: r.get("tty")?,
        ssh_client: r.get("ssh_client")?,
        host: r.get("host")?,
        cwd: r.get("cwd")?,
        pid: r.get("pid")?,
        exe: r.get("exe")?,
        trust: r.get("trust")?,
    }
    .row(names))
}
