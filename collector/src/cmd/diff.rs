//! `collector diff`: what a version changed, how two versions differ, or
//! how the file on disk now differs from a version (`--current`: read
//! without following any symlink, as `restore` reads it).
//! Exit status as `diff(1)` and `git diff --exit-code`: 0 when the two
//! contents are equal, 1 when they differ, 2 on trouble (`cli.rs`).

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::error::Error;
use crate::history::{History, VersionId};
use crate::print::{self, Color};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A version id: its before against its after. In a fleet store HOST:ID, or ID alone when only one
    /// host has that id.
    pub id: VersionId,
    /// A second version id (of any host): the first one's after against this one's after.
    pub other: Option<VersionId>,
    /// The version's after against what its file holds on disk now (read as you, never through a symlink).
    #[arg(long, conflicts_with = "other")]
    pub current: bool,
    /// Colour the diff: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

/// Content of one side, `None` when the file did not exist then; an error
/// when it existed but its content was not stored.
pub fn side(store: &dyn History, id: &VersionId, before: bool) -> anyhow::Result<Option<Vec<u8>>> {
    match store.content(id, before) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(Error::NoContent { why, .. }) if why.starts_with("the file did not exist") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    let store = &*store;
    let v = store.version(&args.id)?;
    // The id as it was given: `h1:42` in a fleet, `42` in a host's store.
    let (id, vid) = (&args.id, args.id.to_string());
    let (a, b, la, lb) = match &args.other {
        None if args.current => {
            crate::history::local_only(&cli.db, "diff --current")?;
            (
                side(store, id, false)?,
                super::restore::on_disk(v.id, &v.raw.path)?,
                format!("{} (version {vid})", quote(&v.raw.path)),
                format!("{} (on disk now)", quote(&v.raw.path)),
            )
        }
        None => (
            side(store, id, true)?,
            side(store, id, false)?,
            format!("{} (before {vid})", quote(&v.raw.path)),
            format!("{} (after {vid})", quote(&v.raw.path)),
        ),
        Some(other) => {
            let w = store.version(other)?;
            (
                side(store, id, false)?,
                side(store, other, false)?,
                format!("{} (version {vid})", quote(&v.raw.path)),
                format!("{} (version {other})", quote(&w.raw.path)),
            )
        }
    };
    let mut out = std::io::stdout().lock();
    print::diff(&mut out, a.as_deref(), b.as_deref(), &la, &lb, args.color.enabled())?;
    out.flush()?;
    Ok(if a == b { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
