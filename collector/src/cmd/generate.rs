//! `collector completions SHELL` and `collector man DIR`: shell completion
//! scripts and man pages (`collector.1`, one `collector-SUBCOMMAND.1` per
//! subcommand), generated from the same clap definitions the CLI parses, so
//! they never drift from it. `scripts/install` installs both.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages to (created if missing).
    pub dir: std::path::PathBuf,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "collector", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    let shown = filetrail_wire::path::quote(args.dir.as_os_str().as_encoded_bytes()).into_owned();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {shown}"))?;
    clap_mangen::generate_to(Cli::command(), &args.dir).with_context(|| format!("write man pages to {shown}"))?;
    Ok(ExitCode::SUCCESS)
}
