//! `collector export-git DIR`: write the versions stored since the last run
//! as commits of a git repository (see `gitexport.rs` for what a commit
//! holds and what never reaches the repository).

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository: created (bare, mode 0700) when missing or empty; it must belong to you and be closed
    /// to others.
    pub dir: std::path::PathBuf,
    /// The branch to commit on (a new repository's HEAD points to it).
    #[arg(long, default_value = "filetrail", value_name = "NAME")]
    pub branch: String,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    crate::history::local_only(&cli.db, "export-git")?;
    let store = Store::open_read(&cli.db)?;
    let report = crate::gitexport::export(&store, &args.dir, &args.branch, &cli.clock())?;
    let dir = quote(args.dir.as_os_str().as_encoded_bytes());
    let mut out = std::io::stdout().lock();
    if report.commits == 0 {
        writeln!(out, "{dir}: nothing new (branch {} has every version through {})", args.branch, report.through)?;
    } else {
        writeln!(
            out,
            "{dir}: {} commits on branch {}, through version {}{}",
            report.commits,
            args.branch,
            report.through,
            if report.left_out > 0 {
                format!("; {} left a file out of the tree (content not stored: see their messages)", report.left_out)
            } else {
                String::new()
            }
        )?;
    }
    if report.waiting > 0 {
        writeln!(
            out,
            "{} versions wait for a later run: a temp file may still be renamed over its target (at most {} minutes)",
            report.waiting,
            crate::fold::FOLD_WINDOW.as_secs() / 60
        )?;
    }
    if report.damaged > 0 {
        writeln!(out, "{} contents are damaged in the store (run `collector verify`)", report.damaged)?;
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
