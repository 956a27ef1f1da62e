//! `collector session`: run by `pam_exec` at session open and close in the
//! `sshd` and `login` PAM stacks; registers the session with the collector
//! (see `registry.rs`). Reads PAM_TYPE, PAM_USER, PAM_SERVICE, PAM_TTY and
//! PAM_RHOST from its environment, as `pam_exec` sets them. It never fails a
//! login: every problem is one line on stderr (which pam_exec `quiet`
//! discards) and exit code 0, within about a second.

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use filetrail_wire::{read_frame, write_frame};

use crate::cli::Cli;
use crate::registry::{self, Reply, SessionEvent};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    let var = |name: &str| std::env::var(name).ok();
    let event = SessionEvent {
        event: var("PAM_TYPE").unwrap_or_default(),
        user: var("PAM_USER").unwrap_or_default(),
        service: var("PAM_SERVICE").unwrap_or_default(),
        tty: var("PAM_TTY"),
        rhost: var("PAM_RHOST"),
    };
    if !matches!(event.event.as_str(), "open_session" | "close_session") {
        // pam_exec in another phase (auth, account): nothing to register.
        return Ok(ExitCode::SUCCESS);
    }
    let socket = registry::socket_path(cli.socket());
    let result = (|| -> anyhow::Result<Reply> {
        let mut s = UnixStream::connect(&socket)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.set_write_timeout(Some(Duration::from_secs(1)))?;
        write_frame(&mut s, &event, &[])?;
        Ok(read_frame(&mut s, 0)?.parse()?)
    })();
    match result {
        Ok(r) if r.ok => {}
        Ok(r) => eprintln!("collector session: refused: {}", r.message),
        Err(e) => eprintln!("collector session: {}: {e:#} (this session stays unregistered)", socket.display()),
    }
    Ok(ExitCode::SUCCESS)
}
