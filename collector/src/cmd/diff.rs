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
use crate::print::{self, Color};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A version id: its before against its after.
    pub id: i64,
    /// A second version id: the first one's after against this one's after.
    pub other: Option<i64>,
    /// The version's after against what its file holds on disk now (read as you, never through a symlink).
    #[arg(long, conflicts_with = "other")]
    pub current: bool,
    /// Colour the diff: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

/// Content of one side, `None` when the file did not exist then; an error
/// when it existed but its content was not stored.
pub fn side(store: &Store, id: i64, before: bool) -> anyhow::Result<Option<Vec<u8>>> {
    match store.content(id, before) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(Error::NoContent { why, .. }) if why.starts_with("the file did not exist") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let v = store.version(args.id)?;
    let (a, b, la, lb) = match args.other {
        None if args.current => (
            side(&store, args.id, false)?,
            super::restore::on_disk(v.id, &v.raw.path)?,
            format!("{} (version {})", quote(&v.raw.path), v.id),
            format!("{} (on disk now)", quote(&v.raw.path)),
        ),
        None => (
            side(&store, args.id, true)?,
            side(&store, args.id, false)?,
            format!("{} (before {})", quote(&v.raw.path), v.id),
            format!("{} (after {})", quote(&v.raw.path), v.id),
        ),
        Some(other) => {
            let w = store.version(other)?;
            (
                side(&store, args.id, false)?,
                side(&store, other, false)?,
                format!("{} (version {})", quote(&v.raw.path), v.id),
                format!("{} (version {})", quote(&w.raw.path), w.id),
            )
        }
    };
    let mut out = std::io::stdout().lock();
    print::diff(&mut out, a.as_deref(), b.as_deref(), &la, &lb, args.color.enabled())?;
    out.flush()?;
    Ok(if a == b { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
