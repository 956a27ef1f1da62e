//! Review output through a pager, as git does: only when stdout is a
//! terminal (and not a dumb one), unless `--no-pager`; the pager is
//! `$PAGER` (empty or `cat`: none), else `less -FRX` when `less` exists
//! (`-F`: one screen is just printed; `-R`: colours; `-X`: the screen is
//! left as it was). Whether stdout is a terminal is decided once, before
//! the pager takes stdout over, so colours follow the terminal, not the pipe;
//! so is its width, which tables fit ([`width`]).

use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// Whether stdout is a terminal, and its width in columns.
static TERMINAL: OnceLock<(bool, Option<usize>)> = OnceLock::new();

fn term() -> (bool, Option<usize>) {
    *TERMINAL.get_or_init(|| {
        let stdout = std::io::stdout();
        if !stdout.is_terminal() {
            return (false, None);
        }
        // `COLUMNS` first (as less and git read it), else the terminal's own.
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok());
        let asked = || rustix::termios::tcgetwinsize(&stdout).ok().map(|w| usize::from(w.ws_col));
        (true, columns.or_else(asked).filter(|&w| w > 0))
    })
}

/// Whether the output goes to a terminal (through a pager or not).
pub fn terminal() -> bool {
    term().0
}

/// The terminal's width in columns; `None` when the output is not a
/// terminal (piped output is never cut) or the width is unknown.
pub fn width() -> Option<usize> {
    term().1
}

/// The pager command to run, if any.
fn command() -> Option<String> {
    if !terminal() || std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        return None;
    }
    match std::env::var("PAGER") {
        Ok(p) if p.trim().is_empty() || p.trim() == "cat" => None,
        Ok(p) => Some(p),
        Err(_) => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path).any(|d| d.join("less").is_file()).then(|| "less -FRX".to_owned())
        }
    }
}

/// A running pager that has our stdout; [`Pager::finish`] waits for it.
pub struct Pager(Child);

/// Starts the pager and points stdout at it; `None` when there is none
/// to start (or it cannot be started: the output then goes to the terminal).
pub fn start() -> Option<Pager> {
    terminal();
    let cmd = command()?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::piped())
        .env("LESS", std::env::var_os("LESS").unwrap_or_else(|| "FRX".into()))
        .spawn()
        .ok()?;
    let pipe = child.stdin.take()?;
    // SAFETY: both descriptors are open (the pipe is owned here until the
    // end of this function); dup2 replaces fd 1 atomically.
    if unsafe { libc::dup2(pipe.as_raw_fd(), libc::STDOUT_FILENO) } < 0 {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    Some(Pager(child))
}

impl Pager {
    /// Closes our end of the pipe (the pager sees the end of the output;
    /// stdout becomes /dev/null) and waits until the reader quits it.
    pub fn finish(mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        match std::fs::OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: both descriptors are open; dup2 replaces fd 1 (the
            // pipe's write end) atomically.
            Ok(null) => unsafe {
                libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
            },
            // SAFETY: fd 1 is the pipe's write end; nothing writes to it after this.
            Err(_) => unsafe {
                libc::close(libc::STDOUT_FILENO);
            },
        }
        let _ = self.0.wait();
    }
}
