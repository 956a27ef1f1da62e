//! `collector serve`: the daemon. It ends at SIGTERM/SIGINT after a
//! graceful stop (exit 0), and re-executes itself at SIGHUP keeping its
//! listening socket (see `activation`, `lifecycle`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::activation::{self, Signals};
use crate::cli::Cli;
use crate::config::{self, Config};
use crate::handoff;
use crate::secrets::Secrets;
use crate::server::{self, Ended, Setup};
use crate::store::Store;

/// How long the writer has, at a stop, to commit and checkpoint.
const COMMIT_TIME: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    // First, while this is the only thread: the environment is read and
    // changed here, and a signal from now on means a graceful stop.
    let inherited = activation::inherited(cli.socket()).context("taking the socket passed in (LISTEN_FDS)")?;
    let signals = Signals::install().context("installing signal handlers")?;
    let (config_path, missing_ok) = match &cli.config {
        Some(p) => (p.clone(), false),
        None => (config::default_path(), true),
    };
    let config = Config::load(&config_path, missing_ok).context("loading the config")?;
    // The name versions carry is the one the fleet knows this host by.
    if let Some(host) = config.fleet.as_ref().and_then(|f| f.host.as_deref()) {
        crate::hostname::set(host);
    }
    let mut store = Store::open(&cli.db).with_context(|| format!("opening the store {}", cli.db.display()))?;
    // `collector restore` finds us by this (a warning only: serving matters more).
    if let Err(e) = crate::serving::record(&cli.db, cli.socket()) {
        tracing::warn!("restore will not find this collector: {e}");
    }
    let secrets = std::sync::Arc::new(Secrets::load(&config, &mut store).context("learning the redacted contents")?);
    let registry =
        std::sync::Arc::new(crate::registry::Registry::open(&cli.db).context("loading the session registry")?);
    // What the kernel watch saw and has not recorded yet: the store records
    // it when a library's version of the same file comes first.
    let unrecorded = std::sync::Arc::new(crate::unrecorded::Unrecorded::new(registry.clone()));
    store.set_unrecorded(unrecorded.clone());
    let (tx, writer) = crate::writer::spawn(store);
    // Shipping reads the store on its own connection: it never holds intake up.
    if let Some(fleet) = &config.fleet {
        crate::fleet::ship::start(fleet, &cli.db).context("starting the fleet shipper")?;
    }
    // One quota per user, whichever way their versions arrive.
    let quotas = std::sync::Arc::new(crate::quota::Quotas::new(config.quota));
    crate::spool::start(cli.socket(), inherited.is_some(), &cli.db, &config, secrets.clone(), quotas.clone())
        .context("starting the spool replay")?;
    let handoff = handoff::path_for(&cli.db);
    let setup = Setup { socket: cli.socket(), inherited, handoff: &handoff, signals: &signals };
    let watch = crate::watch::start(
        &config,
        &cli.db,
        secrets.clone(),
        quotas.clone(),
        tx.clone(),
        registry.clone(),
        unrecorded,
    );
    let ended = server::serve(setup, config, secrets, quotas, tx, writer.gaps(), registry).context("serving")?;
    // The watch holds a sender of the writer's queue: it ends first.
    drop(watch);
    match handoff::write(&handoff) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(opens = n, file = %handoff.display(), "opens still held by live processes handed to the next collector")
        }
        Err(e) => tracing::error!("cannot write the handoff file, opens still held are lost: {e}"),
    }
    if !writer.finish(Instant::now() + COMMIT_TIME) {
        tracing::error!("the writer did not finish committing in time");
    }
    match ended {
        Ended::Stopped => {
            crate::serving::clear(&cli.db);
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Ended::Restart { listener, owned } => {
            let err = activation::reexec(listener, owned.as_ref());
            Err(anyhow::Error::new(err).context("re-executing the collector"))
        }
    }
}
