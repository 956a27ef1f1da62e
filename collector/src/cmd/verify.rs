//! `collector verify`: check the store's integrity: every stored content
//! decodes (following its delta chain) to bytes whose SHA-256 is the one it
//! is filed under, every version's contents exist, and the chain of record
//! hashes is whole (`crate::chain`): a version deleted, edited or moved is
//! named by its id.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    if crate::history::fleet_url(&cli.db).is_some() {
        // The fleet's check (every host's chain) is the shipping side's.
        anyhow::bail!("verify of the fleet store is not available yet: run it on each host's own store");
    }
    let store = Store::open_read(&cli.db)?;
    let report = store.verify()?;
    let mut out = std::io::stdout().lock();
    for problem in &report.problems {
        writeln!(out, "BAD  {problem}")?;
    }
    writeln!(
        out,
        "checked {} stored contents and {} versions: {}",
        report.blobs,
        report.versions,
        if report.problems.is_empty() { "all good".to_owned() } else { format!("{} problems", report.problems.len()) }
    )?;
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
