//! `collector users` and `collector user NAME`: per-user review.

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::print::q;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct UsersArgs {
    /// One JSON object per user per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// Login name (the USER column of `collector query`).
    pub name: String,
    /// One JSON object: summary, files, sessions.
    #[arg(long)]
    pub json: bool,
}

pub fn run_users(cli: &Cli, args: &UsersArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let users = store.users(None)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for u in &users {
            crate::print::json(&mut out, u)?;
        }
    } else if !users.is_empty() {
        writeln!(out, "{:<16} {:>8} {:>6} {:>8}  {:<20}  LAST", "USER", "CHANGES", "FILES", "SESSIONS", "FIRST")?;
        for u in &users {
            writeln!(
                out,
                "{:<16} {:>8} {:>6} {:>8}  {:<20}  {}",
                q(&u.user),
                u.versions,
                u.files,
                u.sessions,
                u.first,
                u.last
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_user(cli: &Cli, args: &UserArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let Some(summary) = store.users(Some(&args.name))?.pop() else {
        anyhow::bail!("no changes recorded for user {} (see `collector users`)", q(&args.name));
    };
    let files = store.user_files(&args.name)?;
    let sessions = store.user_sessions(&args.name)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let all = serde_json::json!({ "summary": summary, "files": files, "sessions": sessions });
        crate::print::json(&mut out, &all)?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = |k: i64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    writeln!(
        out,
        "{}: {} to {} in {}, {} .. {}",
        q(&summary.user),
        n(summary.versions, "change", "changes"),
        n(summary.files, "file", "files"),
        n(summary.sessions, "session", "sessions"),
        summary.first,
        summary.last
    )?;
    writeln!(out, "\nFILES")?;
    for f in &files {
        writeln!(out, "  {:>5}  {}  {}", f.versions, f.last, quote(&f.raw_path))?;
    }
    writeln!(out, "\nSESSIONS")?;
    for s in &sessions {
        let id = s.session.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let from = s.ssh_client.as_deref().map(|c| format!("ssh from {}", q(c))).unwrap_or_else(|| "local".into());
        writeln!(
            out,
            "  session {id:<8} {from:<28} tty {:<12} {} .. {}  {} changes",
            s.tty.as_deref().map_or("-".into(), q),
            s.first,
            s.last,
            s.versions
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
