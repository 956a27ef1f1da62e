//! Command-line entry: global options, subcommand dispatch, error and exit
//! code handling. `collector query | head` exits quietly.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;
use crate::config::DEFAULT_DB;

#[derive(Debug, Parser)]
#[command(
    name = "collector",
    version,
    about = "filetrail: who changed which file, what it held before, and how to get it back",
    long_about = "filetrail records every change a human makes to a tracked file (through ssh, sudo, su or a \
                  console login) as a version: the content before and after, who did it, when and with which \
                  program.\n\n`collector serve` receives versions from the preload library; the other \
                  subcommands read the store directly and need no running collector."
)]
pub struct Cli {
    /// SQLite store; for the review commands also the fleet store, a URL `postgresql://USER@HOST:PORT/DB`
    /// (versions named HOST:ID there).
    #[arg(long, global = true, env = "FILETRAIL_DB", default_value = DEFAULT_DB, value_name = "PATH|URL")]
    pub db: PathBuf,
    /// Socket the library reports to [default: /run/filetrail/collector.sock]. `restore` reports to the
    /// collector that serves --db, and refuses a --socket that names another.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file (TOML: track, ignore, max_size, redact, [quota], [fleet]) [default: /etc/filetrail/config.toml].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Do not pipe review output through $PAGER (default `less -FRX`; only on a terminal).
    #[arg(long, global = true)]
    pub no_pager: bool,
    /// Read and show times in UTC instead of the local time zone (`TZ`, else the system's).
    #[arg(long, global = true)]
    pub utc: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `--socket`, or the default.
    pub fn socket(&self) -> &std::path::Path {
        self.socket.as_deref().unwrap_or(std::path::Path::new(filetrail_wire::DEFAULT_SOCKET))
    }

    /// The zone times are read and shown in.
    pub fn clock(&self) -> crate::when::Clock {
        crate::when::Clock::new(self.utc)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector daemon: listen on --socket, store versions in --db.
    Serve(cmd::serve::Args),
    /// List recorded versions, oldest first.
    Query(cmd::query::Args),
    /// Write the exact content of a version (after, or --before) to stdout.
    Show(cmd::show::Args),
    /// Unified diff of a version (before vs after), of two versions, or of a version and the file now
    /// (--current); exit 1 when they differ.
    Diff(cmd::diff::Args),
    /// History of files (across renames with --follow) or of a login (--session ID|self), newest first,
    /// with who did it and the diffs.
    Log(cmd::log::Args),
    /// Every human who changed something, with counts.
    Users(cmd::users::UsersArgs),
    /// One human's changes: files and sessions (with ssh client and tty).
    User(cmd::users::UserArgs),
    /// Put a version's content back, or a file as it was at a time (PATH --at TIME), atomically (an
    /// existing file keeps its owner and mode); recorded as a new version. --dry-run shows the diff.
    Restore(cmd::restore::Args),
    /// Counts, store size, oldest and newest version.
    Stats(cmd::stats::Args),
    /// Check that every stored content decodes to the hash it is filed under.
    Verify(cmd::verify::Args),
    /// Register a login session (run by pam_exec in the sshd and login PAM stacks).
    Session(cmd::session::Args),
    /// Write the versions stored since the last run to a git repository, one commit per version.
    ///
    /// Each tracked file is at its absolute path without the leading slash; the author is the human at the
    /// version's time, the committer `filetrail`; the message says the action, program and arguments, tty, ssh
    /// client and session, and ends in `Filetrail-Version: ID` and `Filetrail-Exported-Through: N` (the next
    /// run starts after N). Content the store does not hold (redacted, over quota, hash only, unreadable) never
    /// reaches the repository: the file leaves the tree and the message says why.
    ExportGit(cmd::export_git::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::generate::CompletionsArgs),
    /// Write man pages (collector.1 and one per subcommand) to a directory.
    Man(cmd::generate::ManArgs),
}

pub fn main() -> ExitCode {
    reexec_without_preload();
    name_after_argv0();
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve(_)));
    let paged = matches!(
        cli.command,
        Command::Query(_) | Command::Log(_) | Command::Diff(_) | Command::Users(_) | Command::User(_)
    );
    crate::pager::terminal();
    let pager = if paged && !cli.no_pager { crate::pager::start() } else { None };
    let result = match &cli.command {
        Command::Serve(args) => cmd::serve::run(&cli, args),
        Command::Query(args) => cmd::query::run(&cli, args),
        Command::Show(args) => cmd::show::run(&cli, args),
        Command::Stats(args) => cmd::stats::run(&cli, args),
        Command::Diff(args) => cmd::diff::run(&cli, args),
        Command::Log(args) => cmd::log::run(&cli, args),
        Command::Users(args) => cmd::users::run_users(&cli, args),
        Command::User(args) => cmd::users::run_user(&cli, args),
        Command::Restore(args) => cmd::restore::run(&cli, args),
        Command::Verify(args) => cmd::verify::run(&cli, args),
        Command::Session(args) => cmd::session::run(&cli, args),
        Command::ExportGit(args) => cmd::export_git::run(&cli, args),
        Command::Completions(args) => cmd::generate::completions(args),
        Command::Man(args) => cmd::generate::man(args),
    };
    if let Some(pager) = pager {
        pager.finish();
    }
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Paths in messages are quoted where they are made; this is the
            // net for anything else (a path inside an OS or SQLite error).
            let _ = writeln!(io::stderr(), "collector: error: {}", crate::print::visible(&format!("{e:#}")));
            // `diff` says "they differ" with 1, like diff(1): trouble is 2.
            ExitCode::from(if matches!(cli.command, Command::Diff(_)) { 2 } else { 1 })
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// The collector must never capture itself: if started from a captured
/// session, run again without the library before doing anything.
fn reexec_without_preload() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("LD_PRELOAD").is_none() {
        return;
    }
    let mut args = std::env::args_os();
    let Some(argv0) = args.next() else { return };
    let err = std::process::Command::new("/proc/self/exe").arg0(argv0).args(args).env_remove("LD_PRELOAD").exec();
    let _ = writeln!(io::stderr(), "collector: cannot re-run without LD_PRELOAD: {err}");
    std::process::exit(1);
}

/// Our own re-executions (above, and SIGHUP's `activation::reexec`) run
/// `/proc/self/exe`, which the kernel names the process after: `exe`. Name
/// it after `argv[0]` (which both keep) again, so `pgrep collector` finds it.
fn name_after_argv0() {
    use std::os::unix::ffi::OsStrExt;
    if std::fs::read("/proc/self/comm").ok().as_deref() != Some(b"exe\n".as_slice()) {
        return;
    }
    let Some(argv0) = std::env::args_os().next() else { return };
    let Some(name) = std::path::Path::new(&argv0).file_name() else { return };
    // The kernel keeps 15 bytes; a NUL inside would end it early anyway.
    let name: Vec<u8> = name.as_bytes().iter().copied().take_while(|&b| b != 0).take(15).collect();
    let Ok(name) = std::ffi::CString::new(name) else { return };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn init_logging(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if daemon { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("FILETRAIL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
