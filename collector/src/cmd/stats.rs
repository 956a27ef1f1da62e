//! `collector stats`: how much the store holds.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let s = store.stats()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        crate::print::json(&mut out, &s)?;
    } else {
        let db = filetrail_wire::path::quote(cli.db.as_os_str().as_bytes());
        writeln!(out, "store:        {db} ({} bytes on disk)", s.disk_bytes)?;
        writeln!(out, "versions:     {}", s.versions)?;
        writeln!(out, "files:        {}", s.paths)?;
        writeln!(out, "users:        {}", s.users)?;
        writeln!(
            out,
            "contents:     {} distinct, {} bytes of content in {} bytes stored",
            s.blobs, s.content_bytes, s.stored_bytes
        )?;
        let clock = cli.clock();
        let t =
            |time: Option<&str>| time.map_or("-".to_owned(), |t| format!("{} ({})", clock.show_text(t), clock.zone()));
        writeln!(out, "oldest:       {}", t(s.oldest.as_deref()))?;
        writeln!(out, "newest:       {}", t(s.newest.as_deref()))?;
        if s.gaps.is_empty() {
            writeln!(out, "gaps:         none")?;
        }
        for g in &s.gaps {
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
    }
    Ok(ExitCode::SUCCESS)
}
