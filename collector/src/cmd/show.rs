//! `collector show`: the exact bytes of one version.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Version id (from `collector query`).
    pub id: i64,
    /// The content before the change instead of after.
    #[arg(long)]
    pub before: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let bytes = store.content(args.id, args.before)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
