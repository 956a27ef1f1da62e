//! The collector's socket: accepts library connections, one thread each.
//!
//! Per connection: take the peer's credentials from the kernel and a pidfd
//! *before* answering `Hello` (the peer is blocked on our answer, so it is
//! alive and is who the kernel says), read its identity from /proc, answer
//! `Welcome` with the tracking policy, then turn its events into versions.
//! A malformed or oversized frame gets an `Error` reply and ends that
//! connection only. When the connection ends, parked versions are released
//! and unfinished opens go to the [`finisher`](crate::finisher).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use filetrail_wire::{ClientMsg, FrameError, PROTOCOL_VERSION, ServerMsg, read_frame, write_frame};
use jiff::Timestamp;

use crate::assemble::{Assembler, Opened};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::identity;
use crate::intake::Intake;
use crate::model::{Draft, Side};
use crate::quota::Quotas;
use crate::secrets::Secrets;
use crate::writer::VersionSender;
use crate::{finisher, holders};

/// How long a client may take to say hello, or to finish a frame it started.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle connection releases parked versions that are due.
const TICK_MS: i32 = 500;
/// Frame payload allowance beyond two `max_size` snapshots.
const FRAME_SLACK: u64 = 1 << 20;

/// Binds `socket` and serves until the process is stopped. The socket
/// appears at its path only once it accepts connections.
pub fn serve(socket: &Path, config: Config, secrets: Secrets, tx: VersionSender) -> Result<()> {
    let intake = Arc::new(Intake::new(secrets, Quotas::new(config.quota), tx));
    let listener = bind(socket)?;
    tracing::info!(socket = %socket.display(), track = ?config.track, "collector listening");
    let config = Arc::new(config);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let (config, intake) = (config.clone(), intake.clone());
                let spawned =
                    std::thread::Builder::new().name("conn".into()).spawn(move || serve_conn(stream, &config, &intake));
                if let Err(e) = spawned {
                    tracing::error!("cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

fn bind(socket: &Path) -> Result<UnixListener> {
    let io_err = |what: String| move |e| Error::io(what, e);
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    if UnixStream::connect(socket).is_ok() {
        return Err(Error::io(
            format!("{} is in use by a running collector", socket.display()),
            io::Error::from(io::ErrorKind::AddrInUse),
        ));
    }
    // Bind under a temporary name, then rename into place: clients never see
    // a socket that refuses them.
    let tmp = socket.with_extension(format!("tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(io_err(format!("binding {}", tmp.display())))?;
    // Every local user's session must be able to report (they can only add).
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666))
        .map_err(io_err(format!("chmod {}", tmp.display())))?;
    std::fs::rename(&tmp, socket).map_err(io_err(format!("placing socket at {}", socket.display())))?;
    Ok(listener)
}

fn serve_conn(mut stream: UnixStream, config: &Config, intake: &Arc<Intake>) {
    let cred = match identity::peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => return tracing::warn!("no peer credentials, dropping connection: {e}"),
    };
    let pidfd = identity::pidfd_open(cred.pid).ok();
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let claims = match read_frame(&mut stream, 0).and_then(|f| f.parse::<ClientMsg>()) {
        Ok(ClientMsg::Hello { claims, .. }) => claims,
        Ok(other) => return refuse(&mut stream, cred.pid, &format!("expected hello, got {other:?}")),
        Err(e) => return refuse(&mut stream, cred.pid, &e.to_string()),
    };
    let who = Arc::new(identity::from_kernel(cred).or_claimed(claims));
    let welcome = ServerMsg::Welcome {
        version: PROTOCOL_VERSION,
        track: config.track.clone(),
        ignore: config.ignore.clone(),
        max_size: config.max_size,
    };
    if write_frame(&mut stream, &welcome, &[]).is_err() {
        return;
    }
    let Ok(policy) = config.policy() else { return };
    let mut asm = Assembler::new(policy);
    let max_payload = config.max_size.saturating_mul(2).saturating_add(FRAME_SLACK);
    let store = |drafts: Vec<Draft>| {
        for draft in drafts {
            intake.submit(draft, &who);
        }
    };
    let Ok(clone) = stream.try_clone() else { return };
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, clone);
    loop {
        if reader.buffer().is_empty() && !readable(&stream, TICK_MS) {
            store(asm.tick(Timestamp::now()));
            continue;
        }
        let frame = match read_frame(&mut reader, max_payload) {
            Ok(f) => f,
            Err(FrameError::Eof) => break,
            Err(e) => {
                refuse(&mut stream, who.pid, &e.to_string());
                break;
            }
        };
        let msg = match frame.parse::<ClientMsg>() {
            Ok(m) => m,
            Err(e) => {
                refuse(&mut stream, who.pid, &e.to_string());
                break;
            }
        };
        let parts = match msg.split_payload(&frame.payload) {
            Ok(p) => p,
            Err(e) => {
                refuse(&mut stream, who.pid, &e.to_string());
                break;
            }
        };
        // A close while children still hold the file for writing: the
        // version ends when they exit, from the file itself. After a fork
        // (`shared`) children may have been re-parented: look everywhere.
        if let ClientMsg::Close { token, shared, .. } = &msg
            && let Some(file) = asm.file_of(*token)
        {
            let candidates = if *shared { holders::all_but(who.pid) } else { holders::descendants(who.pid) };
            let others = holders::writers_among(candidates, file);
            if !others.is_empty() {
                let open = asm.abandon(*token).into_iter().collect();
                finisher::spawn(others, open, who.clone(), config.max_size, intake.clone());
                continue;
            }
        }
        store(apply(&mut asm, msg, &parts, Timestamp::now()));
    }
    let (drafts, unfinished) = asm.finish();
    store(drafts);
    if !unfinished.is_empty() {
        // Wait for the writer (it may have exec'd) and for any descendant
        // that still holds one of the files.
        let mut wait: Vec<_> = pidfd.into_iter().collect();
        for u in &unfinished {
            if let Some(file) = u.file {
                wait.extend(holders::writers_among(holders::descendants(who.pid), file));
            }
        }
        finisher::spawn(wait, unfinished, who.clone(), config.max_size, intake.clone());
    }
}

/// Applies one event to the assembler.
fn apply(asm: &mut Assembler, msg: ClientMsg, parts: &[Option<&[u8]>], now: Timestamp) -> Vec<Draft> {
    let part = |i: usize| parts.get(i).copied().flatten();
    match msg {
        ClientMsg::Begin { token, path, named, file, before, .. } => asm.begin(
            token,
            Opened {
                path: path.0,
                named: named.map(|n| n.0),
                file: file.map(|m| (m.dev, m.ino)),
                before: Side::from_wire(&before, part(0)),
            },
        ),
        ClientMsg::Link { new, after } => asm.link(new.0, Side::from_wire(&after, part(0)), now),
        ClientMsg::Close { token, after, .. } => asm.close(token, Side::from_wire(&after, part(0)), now),
        ClientMsg::Rename { old, new, before, after } => {
            asm.rename(old.0, new.0, Side::from_wire(&before, part(0)), Side::from_wire(&after, part(1)), now)
        }
        ClientMsg::Delete { path, before } => asm.delete(path.0, Side::from_wire(&before, part(0)), now),
        ClientMsg::Truncate { path, before, after } => {
            asm.truncate(path.0, Side::from_wire(&before, part(0)), Side::from_wire(&after, part(1)), now)
        }
        ClientMsg::Hello { .. } | ClientMsg::Unknown => Vec::new(),
    }
}

fn refuse(stream: &mut UnixStream, pid: i32, why: &str) {
    tracing::warn!(pid, "bad frame from client, closing its connection: {why}");
    let _ = write_frame(stream, &ServerMsg::Error { message: why.to_owned() }, &[]);
}

fn readable(stream: &UnixStream, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is a valid pollfd array of length 1.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) > 0 }
}
