//! `collector query`: list versions, oldest first, and the gaps among them
//! (what could not be recorded: `store/gaps.rs`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Cli;
use crate::print;
use crate::store::query::PathSpec;
use crate::store::{QueryFilter, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to show the history of; a directory means everything under it.
    pub paths: Vec<std::path::PathBuf>,
    /// Only changes made by this human (login name, as in the USER column).
    #[arg(long, short)]
    pub user: Option<String>,
    /// Only changes at or after this time: 2h, 3d, yesterday, 2026-11-25, RFC 3339.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only changes before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only changes from this login session (audit session id).
    #[arg(long)]
    pub session: Option<u32>,
    /// One JSON object per line (fields: see README, "Review"); a gap has `"kind": "gap"`.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The flags as a store filter.
    pub fn filter(&self) -> anyhow::Result<QueryFilter> {
        let now = jiff::ZonedDateTime::now();
        let time = |t: &Option<String>, flag: &str| -> anyhow::Result<Option<jiff::Timestamp>> {
            t.as_deref().map(|t| crate::when::parse(t, &now).map_err(|e| anyhow::anyhow!("{flag}: {e}"))).transpose()
        };
        Ok(QueryFilter {
            paths: self.paths.iter().map(|p| path_spec(p)).collect::<anyhow::Result<_>>()?,
            user: self.user.clone(),
            since: time(&self.since, "--since")?,
            until: time(&self.until, "--until")?,
            session: self.session,
            ..QueryFilter::default()
        })
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let filter = args.filter()?;
    let rows = store.records(&filter).context("querying versions")?;
    if rows.is_empty() {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            eprintln!("no versions match");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        print::json_lines(&mut out, &rows)?;
    } else {
        print::table(&mut out, &rows)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// An argument as the store knows paths: absolute, normalized; a directory
/// on disk (or a trailing `/`) means everything under it.
pub fn path_spec(p: &Path) -> anyhow::Result<PathSpec> {
    use std::os::unix::ffi::OsStrExt;
    let raw = p.as_os_str().as_bytes();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let abs = filetrail_wire::policy::absolute(cwd.as_os_str().as_bytes(), raw);
    let under = raw.ends_with(b"/") || p.is_dir();
    Ok(PathSpec { path: abs, under })
}
