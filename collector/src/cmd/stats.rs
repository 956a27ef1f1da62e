//! `collector stats`: how much the store holds.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    let s = store.stats()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        crate::print::json(&mut out, &s)?;
    } else {
        let db = store.name();
        // Sizes as people read them; a small one in bytes.
        let size = |n: u64| if n < 1024 { format!("{n} bytes") } else { crate::fit::size(n) };
        writeln!(out, "store:        {db} ({} on disk)", size(s.disk_bytes))?;
        writeln!(out, "versions:     {}", s.versions)?;
        writeln!(out, "files:        {}", s.paths)?;
        writeln!(out, "users:        {}", s.users)?;
        writeln!(
            out,
            "contents:     {} distinct, {} with their bytes stored (the rest hash only: redacted, over max_size \
             or quota), {} of content in {} stored",
            s.blobs,
            s.stored_blobs,
            size(s.content_bytes.max(0) as u64),
            size(s.stored_bytes.max(0) as u64)
        )?;
        let clock = cli.clock();
        let t =
            |time: Option<&str>| time.map_or("-".to_owned(), |t| format!("{} ({})", clock.show_text(t), clock.zone()));
        writeln!(out, "oldest:       {}", t(s.oldest.as_deref()))?;
        writeln!(out, "newest:       {}", t(s.newest.as_deref()))?;
        if s.gaps.is_empty() && s.gap_before_versions == 0 {
            writeln!(out, "gaps:         none")?;
        }
        if s.gap_before_versions > 0 {
            writeln!(
                out,
                "gaps:         {} {} after a change nobody saw (gap_before: the collector was down or the kernel \
                 watch off)",
                s.gap_before_versions,
                if s.gap_before_versions == 1 { "version" } else { "versions" }
            )?;
        }
        for g in &s.gaps {
            // A fleet store's chain alerts: a host stopped, nothing unrecorded.
            if g.what.starts_with("chain_") {
                writeln!(
                    out,
                    "alerts:       {}: shipping of a host stopped ({} records; `collector verify --db URL` names them); last {}",
                    g.what,
                    g.records,
                    t(g.last.as_deref())
                )?;
                continue;
            }
            // Names from the user database or numbers: quoted like any name.
            let users: Vec<String> =
                g.users.iter().map(|u| filetrail_wire::path::quote(u.as_bytes()).into_owned()).collect();
            writeln!(
                out,
                "gaps:         {}: at least {} versions not recorded ({} bytes of content) in {} records, by {}; last {}",
                g.what,
                g.versions,
                g.bytes,
                g.records,
                users.join(", "),
                t(g.last.as_deref())
            )?;
        }
        if let Some(f) = &s.fleet {
            let why = f.error.as_deref().map_or(String::new(), |e| format!(": {e}"));
            writeln!(out, "fleet:        host {} to {}, {}{why}", f.host, f.url, f.state)?;
            writeln!(
                out,
                "shipped:      up to version {}; backlog {} versions, lag {:.1} s (as of {})",
                f.shipped_seq,
                f.backlog,
                f.lag_seconds,
                t(Some(&f.updated))
            )?;
            if let Some(key) = &f.key {
                writeln!(out, "signing key:  {key} (compare with `collector verify --db URL`)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
