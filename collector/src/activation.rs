//! The listening socket across restarts: taking it from systemd (socket
//! activation, `LISTEN_FDS`) or from our own previous image, handing it to
//! a re-executed image on SIGHUP, and removing the socket path at a stop
//! only when it is still the one we bound.
//!
//! A restart never leaves a moment where the socket path is missing or
//! refuses a connection: the listening socket itself outlives the process
//! image (systemd holds it, or `exec` keeps it as fd 3), so a client that
//! connects meanwhile waits in its backlog for the next image to accept it.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FD: RawFd = 3;
/// Names the socket path as ours (device:inode) across our own re-exec.
const OWNED_ENV: &str = "FILETRAIL_SOCKET_OWNED";

/// What a signal asks of `collector serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM, SIGINT: drain and exit.
    Stop,
    /// SIGHUP: drain and re-execute, keeping the listening socket.
    Restart,
}

/// SIGTERM/SIGINT and SIGHUP, each turned into a readable socket (their
/// handlers only write a byte: signal-hook's self-pipe).
pub struct Signals {
    stop: UnixStream,
    restart: UnixStream,
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        let (stop, stop_w) = UnixStream::pair()?;
        let (restart, restart_w) = UnixStream::pair()?;
        for s in [&stop, &stop_w, &restart, &restart_w] {
            s.set_nonblocking(true)?;
        }
        signal_hook::low_level::pipe::register(SIGTERM, stop_w.try_clone()?)?;
        signal_hook::low_level::pipe::register(SIGINT, stop_w)?;
        signal_hook::low_level::pipe::register(SIGHUP, restart_w)?;
        Ok(Signals { stop, restart })
    }

    /// Waits until `listener` has a connection to accept (`None`) or a
    /// signal came (a stop wins over a restart).
    pub fn wait(&self, listener: &impl AsRawFd) -> Option<Signal> {
        let fd = |fd: RawFd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let mut fds = [fd(self.stop.as_raw_fd()), fd(self.restart.as_raw_fd()), fd(listener.as_raw_fd())];
        // SAFETY: fds is a valid array of 3 pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
        if r <= 0 {
            return None;
        }
        let fired = |s: &UnixStream, revents: i16| revents != 0 && (&*s).read(&mut [0u8; 64]).is_ok_and(|n| n > 0);
        if fired(&self.stop, fds[0].revents) {
            Some(Signal::Stop)
        } else if fired(&self.restart, fds[1].revents) {
            Some(Signal::Restart)
        } else {
            None
        }
    }
}

/// A socket file we bound: removed at a stop only if the path still names
/// it (another collector may have bound the path since).
#[derive(Debug, Clone)]
pub struct Bound {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl Bound {
    /// The socket file now at `path`, which we just bound.
    pub fn at(path: &Path) -> Bound {
        Bound { path: path.to_path_buf(), id: std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino())) }
    }

    /// Removes the socket file if it is still ours.
    pub fn remove(&self) {
        let still = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if still.is_some() && still == self.id {
            match std::fs::remove_file(&self.path) {
                Ok(()) => tracing::info!(socket = %self.path.display(), "socket removed"),
                Err(e) => tracing::warn!(socket = %self.path.display(), "cannot remove the socket: {e}"),
            }
        }
    }
}

/// A listening socket passed to this process: by systemd (the path is
/// systemd's: never removed by us) or by our own previous image.
pub struct Inherited {
    pub listener: UnixListener,
    /// The socket file, when it is ours to remove at a stop.
    pub owned: Option<Bound>,
}

/// Takes the listening socket passed as fd 3 with `LISTEN_FDS` and
/// `LISTEN_PID` naming this process, and unsets those variables (children
/// must not take them for theirs). Must run before any thread starts.
pub fn inherited(socket: &Path) -> io::Result<Option<Inherited>> {
    let var = |name: &str| std::env::var(name).ok();
    let (pid, fds, owned) = (var("LISTEN_PID"), var("LISTEN_FDS"), var(OWNED_ENV));
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", OWNED_ENV] {
        // SAFETY: called at the start of `collector serve`, before any other
        // thread exists that could read the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    if pid.and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
        return Ok(None);
    }
    let n: i32 = fds.and_then(|n| n.parse().ok()).unwrap_or(0);
    if n < 1 {
        return Ok(None);
    }
    if n > 1 {
        tracing::warn!(fds = n, "LISTEN_FDS passes {n} sockets: using the first (fd 3) only");
    }
    check_listening_unix(LISTEN_FD)?;
    // SAFETY: fd 3 is a listening Unix stream socket (checked above) that was
    // passed to this process to own; nothing else in it uses fd 3.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FD) };
    // SAFETY: F_SETFD on a descriptor we own.
    unsafe { libc::fcntl(LISTEN_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    // Ours only if the previous image said so and the path is still that file.
    let owned = owned.and_then(|o| {
        let (dev, ino) = o.split_once(':')?;
        let b = Bound { path: socket.to_path_buf(), id: Some((dev.parse().ok()?, ino.parse().ok()?)) };
        (Bound::at(socket).id == b.id).then_some(b)
    });
    // systemd binds at the path it was given (we bind under a temporary
    // name and rename: our own socket's address is not the path).
    if owned.is_none()
        && let Some(path) = listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf))
        && path != socket
    {
        tracing::warn!(passed = %path.display(), socket = %socket.display(), "the passed socket is not --socket: sessions reporting to --socket will not reach this collector");
    }
    tracing::info!(socket = %socket.display(), from = if owned.is_some() { "previous image" } else { "systemd" }, "listening socket passed in (LISTEN_FDS)");
    Ok(Some(Inherited { listener, owned }))
}

fn check_listening_unix(fd: RawFd) -> io::Result<()> {
    let get = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v/len are valid out-parameters of the sizes given.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut v as *mut libc::c_int).cast(), &mut len) };
        if r == 0 { Ok(v) } else { Err(io::Error::last_os_error()) }
    };
    let ok = get(libc::SO_DOMAIN)? == libc::AF_UNIX
        && get(libc::SO_TYPE)? == libc::SOCK_STREAM
        && get(libc::SO_ACCEPTCONN)? == 1;
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "fd 3 (LISTEN_FDS) is not a listening Unix stream socket"))
    }
}

/// Replaces this process image with the collector binary, same arguments
/// (`argv[0]` included: `pgrep -f 'collector serve'` still finds it), the
/// listening socket as fd 3 (`LISTEN_FDS=1`, `LISTEN_PID`: exec keeps
/// the pid). The binary is the file we were started from, so an upgrade
/// installed since takes effect. Returns only on failure.
pub fn reexec(listener: UnixListener, owned: Option<&Bound>) -> io::Error {
    let fd: OwnedFd = listener.into();
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` is ours; fd 3 is replaced (whatever held it is closed by
    // dup2, and every other descriptor of ours is close-on-exec). dup2 onto
    // itself keeps FD_CLOEXEC: clear it explicitly.
    unsafe {
        if raw != LISTEN_FD && libc::dup2(raw, LISTEN_FD) < 0 {
            return io::Error::last_os_error();
        }
        libc::fcntl(LISTEN_FD, libc::F_SETFD, 0);
    }
    let exe = program();
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0(args.next().unwrap_or_else(|| "collector".into()))
        .args(args)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .env_remove("LISTEN_FDNAMES");
    if let Some((dev, ino)) = owned.and_then(|b| b.id) {
        cmd.env(OWNED_ENV, format!("{dev}:{ino}"));
    }
    tracing::info!(exe = %exe.to_string_lossy(), "re-executing with the listening socket");
    cmd.exec()
}

/// The binary to re-execute: the path we were started from when the file
/// there was replaced (an upgrade), else our own image (whatever path, maybe
/// relative, started it; the kernel names the process `exe` then, and
/// `cli::main` names it back).
fn program() -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    if let Ok(link) = std::fs::read_link("/proc/self/exe") {
        let bytes = link.as_os_str().as_bytes();
        if let Some(path) = bytes.strip_suffix(b" (deleted)") {
            let path = OsString::from_vec(path.to_vec());
            if Path::new(&path).is_file() {
                return path;
            }
        }
    }
    OsString::from("/proc/self/exe")
}
