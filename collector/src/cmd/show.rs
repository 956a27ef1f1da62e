//! `collector show`: the exact bytes of one version.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::history::VersionId;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Version id (from `collector query`); in a fleet store HOST:ID (the HOST column), or ID alone when
    /// only one host has that id.
    pub id: VersionId,
    /// The content before the change instead of after.
    #[arg(long)]
    pub before: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    let bytes = store.content(&args.id, args.before)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
