//! `collector serve`: the daemon.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Cli;
use crate::config::{self, Config};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    let (config_path, missing_ok) = match &cli.config {
        Some(p) => (p.clone(), false),
        None => (config::default_path(), true),
    };
    let config = Config::load(&config_path, missing_ok).context("loading the config")?;
    let store = Store::open(&cli.db).with_context(|| format!("opening the store {}", cli.db.display()))?;
    let registry =
        std::sync::Arc::new(crate::registry::Registry::open(&cli.db).context("loading the session registry")?);
    let (tx, writer) = crate::writer::spawn(store);
    crate::spool::start(&cli.socket, &cli.db, &config).context("starting the spool replay")?;
    crate::server::serve(&cli.socket, config, tx, registry).context("serving")?;
    let _ = writer.join();
    Ok(ExitCode::SUCCESS)
}
