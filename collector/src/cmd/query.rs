//! `collector query`: list versions, oldest first, and the gaps among them
//! (what could not be recorded: `store/gaps.rs`); the filters and the order
//! options it shares with `log`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Cli;
use crate::history::History;
use crate::model::{Record, VersionRow};
use crate::print;
use crate::store::QueryFilter;
use crate::store::query::PathSpec;
use crate::when::Clock;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to show the history of; a directory means everything under it; a glob (quoted:
    /// '/etc/nginx/**/*.conf') every recorded path it matches, deleted files included.
    pub paths: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub filters: Filters,
    #[command(flatten)]
    pub order: Order,
    /// One JSON object per line (fields: see README, "Review"); a gap has `"kind": "gap"`.
    #[arg(long)]
    pub json: bool,
}

/// Who and when: the filters `query` and `log` share.
#[derive(Debug, clap::Args)]
pub struct Filters {
    /// Only changes made by this human (login name, as in the USER column).
    #[arg(long, short)]
    pub user: Option<String>,
    /// Only changes at or after this time: 2026-11-25 14:30, yesterday 10:00, 14:30 (today), 2h (ago),
    /// @EPOCH, RFC 3339; in the local zone unless --utc.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only changes before this time (same forms as --since).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only changes from this login session: its audit session id (the SESSION of `collector user`),
    /// or `self` for the session this command runs in.
    #[arg(long, value_name = "ID|self")]
    pub session: Option<String>,
    /// Every step: also a temp file's versions folded into the version that renamed it over its target
    /// (`folded_into` says which), and temp files not renamed yet.
    #[arg(long, alias = "raw")]
    pub all: bool,
    /// Only changes on this host (the HOST column; in a host's own store, its name).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

/// How many and in which order: `query` and `log` share these too.
#[derive(Debug, clap::Args)]
pub struct Order {
    /// Only the N most recent matching versions.
    #[arg(long = "max-count", short = 'n', value_name = "N")]
    pub max_count: Option<u64>,
    /// The other order: `query` newest first, `log` oldest first.
    #[arg(long)]
    pub reverse: bool,
}

impl Filters {
    /// The flags and `paths` as a store filter, checked against `store`: a
    /// user or a path nobody could mean is an error, not an empty answer.
    pub fn filter(
        &self,
        paths: &[std::path::PathBuf],
        store: &dyn History,
        clock: &Clock,
    ) -> anyhow::Result<QueryFilter> {
        let time = |t: &Option<String>, flag: &str| -> anyhow::Result<Option<jiff::Timestamp>> {
            t.as_deref().map(|t| clock.parse(t).map_err(|e| anyhow::anyhow!("{flag}: {e}"))).transpose()
        };
        if let Some(user) = &self.user {
            check_user(store, user)?;
        }
        if let Some(host) = &self.host {
            store.check_host(host)?;
        }
        Ok(QueryFilter {
            paths: paths.iter().map(|p| path_arg(store, p)).collect::<anyhow::Result<_>>()?,
            user: self.user.clone(),
            since: time(&self.since, "--since")?,
            until: time(&self.until, "--until")?,
            session: self.session.as_deref().map(session_id).transpose()?,
            raw: self.all,
            host: self.host.clone(),
            ..QueryFilter::default()
        })
    }
}

/// `--session`: an audit session id, or `self`, this process's own.
pub fn session_id(arg: &str) -> anyhow::Result<u32> {
    if arg != "self" {
        return arg.parse().map_err(|_| anyhow::anyhow!("--session {}: not a session id or `self`", print::q(arg)));
    }
    let text =
        std::fs::read_to_string("/proc/self/sessionid").context("--session self: reading /proc/self/sessionid")?;
    match text.trim().parse::<u32>() {
        // (u32)-1: no login set an audit session for this process.
        Ok(id) if id != u32::MAX => Ok(id),
        _ => anyhow::bail!("--session self: this process is in no audit session (not started from a login)"),
    }
}

impl Order {
    /// The versions and gaps `filter` matches, at most `-n`, the most
    /// recent ones; newest first or not, or the other way with `--reverse`.
    pub fn records(
        &self,
        store: &dyn History,
        mut filter: QueryFilter,
        newest_first: bool,
    ) -> anyhow::Result<Vec<Record>> {
        // The N most recent are fetched newest first, then put in order.
        filter.newest_first = self.max_count.is_some() || newest_first;
        filter.limit = self.max_count;
        let mut rows = store.records(&filter).context("querying versions")?;
        if filter.newest_first != (newest_first != self.reverse) {
            rows.reverse();
        }
        Ok(rows)
    }

    /// [`Order::records`] for rows gathered from several queries (in any
    /// order, possibly twice): each once, by time, the `-n` most recent.
    pub fn arrange(&self, mut rows: Vec<VersionRow>, newest_first: bool) -> Vec<VersionRow> {
        let key = |r: &VersionRow| (r.time.parse::<jiff::Timestamp>().ok(), r.host.clone(), r.id);
        rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
        rows.dedup_by_key(|r| (r.host.clone(), r.id));
        if let Some(n) = self.max_count {
            rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if newest_first == self.reverse {
            rows.reverse();
        }
        rows
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    let clock = cli.clock();
    let filter = args.filters.filter(&args.paths, &*store, &clock)?;
    let rows = args.order.records(&*store, filter, false)?;
    if rows.is_empty() {
        say_empty("no versions match");
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        print::json_lines(&mut out, &rows)?;
    } else {
        print::table(&mut out, &rows, &clock)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// An empty answer on a terminal says so (on stderr); piped, it is empty.
pub fn say_empty(what: &str) {
    if crate::pager::terminal() {
        eprintln!("{what}");
    }
}

/// `--user NAME`: a name neither this system nor the store knows is a typo.
pub fn check_user(store: &dyn History, name: &str) -> anyhow::Result<()> {
    if uzers::get_user_by_name(name).is_none() && !store.knows_user(name)? {
        anyhow::bail!(
            "--user {}: no such user on this system, and none by that name in the store (see `collector users`)",
            print::q(name)
        );
    }
    Ok(())
}

/// What one path argument matches: itself ([`checked_path_spec`]), or, for
/// a glob ([`pathglob`](crate::pathglob)), the recorded paths it matches; a
/// glob that matches none is refused like a missing file.
pub fn path_arg(store: &dyn History, p: &Path) -> anyhow::Result<PathSpec> {
    use std::os::unix::ffi::OsStrExt;
    let raw = p.as_os_str().as_bytes();
    if !crate::pathglob::is_glob(raw, p.symlink_metadata().is_ok()) {
        return checked_path_spec(store, p);
    }
    let glob = crate::pathglob::PathGlob::new(&path_spec(p)?.path)?;
    if !store.paths_under(glob.base())?.iter().any(|path| glob.is_match(path)) {
        anyhow::bail!("{}: no recorded path matches this glob", filetrail_wire::path::quote(&glob.pattern));
    }
    Ok(PathSpec { path: glob.base().to_vec(), under: true, glob: Some(glob) })
}

/// [`path_spec`], refusing a path that does not exist and of which nothing
/// was ever recorded (a typo: an empty answer would look like "no changes").
pub fn checked_path_spec(store: &dyn History, p: &Path) -> anyhow::Result<PathSpec> {
    let spec = path_spec(p)?;
    if p.symlink_metadata().is_err() {
        let any = QueryFilter { paths: vec![spec.clone()], limit: Some(1), raw: true, ..QueryFilter::default() };
        if store.records(&any)?.is_empty() {
            use std::os::unix::ffi::OsStrExt;
            anyhow::bail!(
                "{}: no such file or directory, and no version of it is recorded",
                filetrail_wire::path::quote(p.as_os_str().as_bytes())
            );
        }
    }
    Ok(spec)
}

/// An argument as the store knows paths: absolute, normalized; a directory
/// on disk (or a trailing `/`) means everything under it.
pub fn path_spec(p: &Path) -> anyhow::Result<PathSpec> {
    use std::os::unix::ffi::OsStrExt;
    let raw = p.as_os_str().as_bytes();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let abs = filetrail_wire::policy::absolute(cwd.as_os_str().as_bytes(), raw);
    let under = raw.ends_with(b"/") || p.is_dir();
    Ok(PathSpec { path: abs, under, glob: None })
}
