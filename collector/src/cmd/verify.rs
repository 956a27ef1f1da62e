//! `collector verify`: check the store's integrity: every stored content
//! decodes (following its delta chain) to bytes whose SHA-256 is the one it
//! is filed under, every version's contents exist, and the chain of record
//! hashes is whole (`crate::chain`): a version deleted, edited or moved is
//! named by its id. On the fleet store (`--db postgresql://...`): every
//! host's chain, recomputed from the central rows, up to the head the store
//! accepted, and the alerts it raised.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    let report = match crate::history::fleet_url(&cli.db) {
        Some(url) => crate::history::fleet::Fleet::connect(url)?.verify()?,
        None => Store::open_read(&cli.db)?.verify()?,
    };
    let mut out = std::io::stdout().lock();
    for note in &report.notes {
        writeln!(out, "     {note}")?;
    }
    for problem in &report.problems {
        writeln!(out, "BAD  {problem}")?;
    }
    writeln!(
        out,
        "checked {} stored contents (those with their bytes: hash-only ones have none) and {} versions: {}",
        report.blobs,
        report.versions,
        if report.problems.is_empty() { "all good".to_owned() } else { format!("{} problems", report.problems.len()) }
    )?;
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
