//! `collector log`: the history of a file, newest first, each version with
//! who made it and its diff (like `git log -p`).

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::model::Record;
use crate::print::{self, Color};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file (or directory: everything under it).
    pub path: std::path::PathBuf,
    #[command(flatten)]
    pub filters: super::query::Filters,
    #[command(flatten)]
    pub order: super::query::Order,
    /// Colour the diff: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let clock = cli.clock();
    let filter = args.filters.filter(std::slice::from_ref(&args.path), &store, &clock)?;
    let color = args.color.enabled();
    let mut out = std::io::stdout().lock();
    let records = args.order.records(&store, filter.clone(), true)?;
    if records.is_empty() {
        super::query::say_empty(&format!("no versions of {}", quote(&filter.paths[0].path)));
    }
    for record in records {
        let v = match record {
            Record::Version(v) => v,
            Record::Gap(g) => {
                print::log_gap(&mut out, &g, color, &clock)?;
                continue;
            }
        };
        print::log_header(&mut out, &v, color, &clock)?;
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
