//! `collector serve`: the daemon.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Cli;
use crate::config::{self, Config};
use crate::secrets::Secrets;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    let (config_path, missing_ok) = match &cli.config {
        Some(p) => (p.clone(), false),
        None => (config::default_path(), true),
    };
    let config = Config::load(&config_path, missing_ok).context("loading the config")?;
    let mut store = Store::open(&cli.db).with_context(|| format!("opening the store {}", cli.db.display()))?;
    let secrets = Secrets::load(&config, &mut store).context("learning the redacted contents")?;
    let registry =
        std::sync::Arc::new(crate::registry::Registry::open(&cli.db).context("loading the session registry")?);
    let (tx, writer) = crate::writer::spawn(store);
    let watch = crate::watch::start(&config, &cli.db, secrets.clone(), tx.clone(), registry.clone());
    crate::server::serve(&cli.socket, config, secrets, tx, registry).context("serving")?;
    drop(watch);
    let _ = writer.join();
    Ok(ExitCode::SUCCESS)
}
