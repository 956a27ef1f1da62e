//! `collector query`: list versions, oldest first.

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
    /// One JSON object per line (fields: shared/CONTRACTS.md).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let filter = QueryFilter { paths: args.paths.iter().map(|p| path_spec(p)).collect::<anyhow::Result<_>>()? };
    let rows = store.versions(&filter).context("querying versions")?;
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
fn path_spec(p: &Path) -> anyhow::Result<PathSpec> {
    use std::os::unix::ffi::OsStrExt;
    let raw = p.as_os_str().as_bytes();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let abs = filetrail_wire::policy::absolute(cwd.as_os_str().as_bytes(), raw);
    let under = raw.ends_with(b"/") || p.is_dir();
    Ok(PathSpec { path: abs, under })
}
