//! `collector log`: the history of a file, newest first, each version with
//! who made it and its diff (like `git log -p`), and the gaps about it
//! (what could not be recorded) in their place.

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::model::Record;
use crate::print::{self, Color};
use crate::store::{QueryFilter, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file (or directory: everything under it).
    pub path: std::path::PathBuf,
    /// At most this many versions (and gaps).
    #[arg(long, short = 'n')]
    pub max_count: Option<u64>,
    /// Colour the diff: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let filter = QueryFilter {
        paths: vec![super::query::path_spec(&args.path)?],
        newest_first: true,
        limit: args.max_count,
        ..QueryFilter::default()
    };
    let color = args.color.enabled();
    let mut out = std::io::stdout().lock();
    for record in store.records(&filter)? {
        let v = match record {
            Record::Version(v) => v,
            Record::Gap(g) => {
                print::log_gap(&mut out, &g, color)?;
                continue;
            }
        };
        print::log_header(&mut out, &v, color)?;
        let before = super::diff::side(&store, v.id, true);
        let after = super::diff::side(&store, v.id, false);
        match (before, after) {
            (Ok(a), Ok(b)) => {
                let la = quote(v.raw.old_path.as_deref().unwrap_or(&v.raw.path));
                print::diff(&mut out, a.as_deref(), b.as_deref(), &la, &quote(&v.raw.path), color)?
            }
            (Err(e), _) | (_, Err(e)) => writeln!(out, "(no diff: {})", print::visible(&e.to_string()))?,
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
