//! `collector log`: the history of files, newest first, each version with
//! who made it and its diff (like `git log -p`): of one file (across its
//! renames with `--follow`), of a directory or a glob, or of everything a
//! filter picks, such as one login session (`--session ID|self`).

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::history::{History, VersionId};
use crate::model::{Record, VersionRow};
use crate::print::{self, Color};
use crate::store::QueryFilter;
use crate::store::query::PathSpec;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files (a directory: everything under it; a quoted glob: every recorded path it matches). None:
    /// every change the filters pick, e.g. `--session self`.
    pub paths: Vec<std::path::PathBuf>,
    /// Follow one file across renames (`mv old new`): its history under its earlier names too.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub filters: super::query::Filters,
    #[command(flatten)]
    pub order: super::query::Order,
    /// Colour the diff: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    let store = &*store;
    let clock = cli.clock();
    let filter = args.filters.filter(&args.paths, store, &clock)?;
    let color = args.color.enabled();
    let mut out = std::io::stdout().lock();
    let records: Vec<Record> = if args.follow {
        let [spec] = &filter.paths[..] else { anyhow::bail!("--follow takes exactly one file") };
        if spec.under {
            anyhow::bail!("--follow takes one file, not a directory or a glob: {}", quote(&spec.path));
        }
        let names = renamed_from(store, &spec.path)?;
        let mut rows = Vec::new();
        for name in &names {
            let mut one = QueryFilter { paths: vec![PathSpec::exact(name.path.clone())], ..filter.clone() };
            one.since = later(one.since, name.since);
            one.until = earlier(one.until, name.until);
            rows.extend(store.versions(&one)?);
        }
        args.order.arrange(rows, true).into_iter().map(Record::Version).collect()
    } else {
        args.order.records(store, filter.clone(), true)?
    };
    if records.is_empty() {
        match &filter.paths[..] {
            [one] => super::query::say_empty(&format!("no versions of {}", quote(&one.path))),
            _ => super::query::say_empty("no versions match"),
        }
    } else if let Some(session) = filter.session {
        let versions: Vec<VersionRow> = records
            .iter()
            .filter_map(|r| match r {
                Record::Version(v) => Some(v.clone()),
                Record::Gap(_) => None,
            })
            .collect();
        print::session_header(&mut out, session, &versions, &clock)?;
    }
    // With more than one host, a version is named HOST:ID.
    let hosts = print::many_hosts(&records);
    for record in records {
        let v = match record {
            Record::Version(v) => v,
            Record::Gap(g) => {
                print::log_gap(&mut out, &g, color, &clock)?;
                continue;
            }
        };
        print::log_header(&mut out, &v, color, &clock, hosts)?;
        let id = VersionId::of(&v);
        let before = super::diff::side(store, &id, true);
        let after = super::diff::side(store, &id, false);
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

/// One name of a followed file, and when it had it: from the rename that
/// gave it (`since`, inclusive) to the rename that took it away (`until`,
/// exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    path: Vec<u8>,
    since: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
}

/// `path` and the names it had before, newest first: each step back is the
/// newest `rename` onto the name before the time it took the later one.
/// Only renames count (`mv`, a rename that kept the content); a save
/// through a temp file is a write of its target and has no earlier name.
fn renamed_from(store: &dyn History, path: &[u8]) -> anyhow::Result<Vec<Name>> {
    let mut names = vec![Name { path: path.to_vec(), since: None, until: None }];
    // A bound on the walk: a file renamed back and forth ends it too.
    for _ in 0..256 {
        let last = names.last().expect("one name at least");
        let filter = QueryFilter {
            paths: vec![PathSpec::exact(last.path.clone())],
            until: last.until,
            newest_first: true,
            ..QueryFilter::default()
        };
        let rows = store.versions(&filter)?;
        let Some((old, at)) = rows.iter().find_map(|r| rename_onto(r, &last.path)) else { break };
        names.last_mut().expect("one name at least").since = Some(at);
        names.push(Name { path: old, since: None, until: Some(at) });
    }
    Ok(names)
}

/// The earlier name and the time, when `r` renamed a file onto `path`.
fn rename_onto(r: &VersionRow, path: &[u8]) -> Option<(Vec<u8>, jiff::Timestamp)> {
    let old = r.raw.old_path.as_ref().filter(|old| r.action == "rename" && r.raw.path == path && *old != path)?;
    Some((old.clone(), r.time.parse().ok()?))
}

fn later(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    a.into_iter().chain(b).max()
}

fn earlier(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    a.into_iter().chain(b).min()
}
