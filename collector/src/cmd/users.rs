//! `collector users` and `collector user NAME`: per-user review.

use std::io::Write;
use std::process::ExitCode;

use filetrail_wire::path::quote;

use crate::cli::Cli;
use crate::print::q;

#[derive(Debug, clap::Args)]
pub struct UsersArgs {
    /// One JSON object per user per line.
    #[arg(long)]
    pub json: bool,
    /// Only changes on this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// Login name (the USER column of `collector query`).
    pub name: String,
    /// One JSON object: summary, files, sessions.
    #[arg(long)]
    pub json: bool,
    /// Only changes on this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

pub fn run_users(cli: &Cli, args: &UsersArgs) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    if let Some(host) = &args.host {
        store.check_host(host)?;
    }
    let users = store.users(None, args.host.as_deref())?;
    let clock = cli.clock();
    let mut out = std::io::stdout().lock();
    if users.is_empty() {
        super::query::say_empty("no changes recorded");
    } else if args.json {
        for u in &users {
            crate::print::json(&mut out, u)?;
        }
    } else {
        let (first, last) = (format!("FIRST ({})", clock.zone()), format!("LAST ({})", clock.zone()));
        writeln!(out, "{:<16} {:>8} {:>6} {:>8}  {first:<19}  {last}", "USER", "CHANGES", "FILES", "SESSIONS")?;
        for u in &users {
            writeln!(
                out,
                "{:<16} {:>8} {:>6} {:>8}  {:<19}  {}",
                q(&u.user),
                u.versions,
                u.files,
                u.sessions,
                clock.show_text(&u.first),
                clock.show_text(&u.last)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_user(cli: &Cli, args: &UserArgs) -> anyhow::Result<ExitCode> {
    let store = crate::history::open(&cli.db)?;
    super::query::check_user(&*store, &args.name)?;
    if let Some(host) = &args.host {
        store.check_host(host)?;
    }
    let host = args.host.as_deref();
    let Some(summary) = store.users(Some(&args.name), host)?.pop() else {
        eprintln!("no changes recorded for user {} (see `collector users`)", q(&args.name));
        return Ok(ExitCode::SUCCESS);
    };
    let clock = cli.clock();
    let t = |rfc3339: &str| clock.show_text(rfc3339);
    let files = store.user_files(&args.name, host)?;
    let sessions = store.user_sessions(&args.name, host)?;
    // With more than one host, each file and session says whose.
    let many = |hosts: Vec<&Option<String>>| hosts.iter().collect::<std::collections::BTreeSet<_>>().len() > 1;
    let on = |h: &Option<String>| {
        if many(files.iter().map(|f| &f.host).collect()) || many(sessions.iter().map(|s| &s.host).collect()) {
            format!("{}  ", q(h.as_deref().unwrap_or("-")))
        } else {
            String::new()
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let all = serde_json::json!({ "summary": summary, "files": files, "sessions": sessions });
        crate::print::json(&mut out, &all)?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = |k: i64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    writeln!(
        out,
        "{}: {} to {} in {}, {} .. {} ({})",
        q(&summary.user),
        n(summary.versions, "change", "changes"),
        n(summary.files, "file", "files"),
        n(summary.sessions, "session", "sessions"),
        t(&summary.first),
        t(&summary.last),
        clock.zone()
    )?;
    writeln!(out, "\nFILES")?;
    for f in &files {
        writeln!(out, "  {:>5}  {}  {}{}", f.versions, t(&f.last), on(&f.host), quote(&f.raw_path))?;
    }
    writeln!(out, "\nSESSIONS")?;
    for s in &sessions {
        let id = s.session.as_deref().unwrap_or("-");
        let from = s.ssh_client.as_deref().map(|c| format!("ssh from {}", q(c))).unwrap_or_else(|| "local".into());
        writeln!(
            out,
            "  {}session {id:<8} {from:<28} tty {:<12} {} .. {}  {}",
            on(&s.host),
            s.tty.as_deref().map_or("-".into(), q),
            t(&s.first),
            t(&s.last),
            n(s.versions, "change", "changes")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
