//! The collector's socket: accepts library connections, one thread each.
//!
//! Per connection: take the peer's credentials from the kernel and a pidfd
//! *before* answering `Hello` (the peer is blocked on our answer, so it is
//! alive and is who the kernel says), read its identity from /proc, answer
//! `Welcome` with the tracking policy, then turn its events into versions.
//! A malformed or oversized frame gets an `Error` reply and ends that
//! connection only. When the connection ends, parked versions are released
//! and unfinished opens go to the [`finisher`](crate::finisher).
//!
//! At a stop ([`lifecycle`]) the accept loop ends, each connection reads
//! what its peer already sent and ends as if the peer had closed, and
//! [`serve`] returns once they have (bounded): the caller commits and
//! exits, or re-executes with the listening socket.
//!
//! A client that numbers its events gets `Ack`s as they become due
//! (`delivery.rs`). What a client reports it lost (`Lost`), and an open the
//! collector will not follow (over [`MAX_OPENS`]), become gaps in the
//! kernel-verified writer's name (`Intake::gap`).

use std::io::{self, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filetrail_wire::frame::{READ_CHUNK, read_bytes, read_head};
use filetrail_wire::path::quote;
use filetrail_wire::{
    ClientMsg, FrameError, PROTOCOL_VERSION, ServerMsg, SnapState, Snapshot, frame_prefix, read_frame, write_frame,
};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::activation::{Bound, Inherited, Signal, Signals};
use crate::assemble::{Assembler, Opened, Unfinished};
use crate::config::Config;
use crate::delivery::{Acks, Origin, Receipt};
use crate::error::{Error, Result};
use crate::identity::{self, Identity};
use crate::intake::Intake;
use crate::limits::{self, Limits, Slot};
use crate::model::{Draft, Side, Stored};
use crate::quota::Quotas;
use crate::registry::{self, Registry};
use crate::secrets::Secrets;
use crate::vouch::{self, Vouches};
use crate::writer::{GapSender, VersionSender};
use crate::{finisher, handoff, holders, lifecycle};

/// How long a client may take to say hello, or to finish a frame it started
/// (in total, however slowly the bytes come).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle connection releases parked versions that are due.
const TICK_MS: i32 = 500;
/// How often a connection looks whether its versions in flight are
/// committed (to acknowledge them).
const ACK_POLL_MS: i32 = 20;
/// The most a connection that reached its end waits for its versions to be
/// committed, to send the last ack (an exiting library waits for it).
const LAST_ACK_WAIT: Duration = Duration::from_secs(2);
/// Most tracked files one process may hold open for writing at once (the
/// collector keeps their paths until the close).
const MAX_OPENS: usize = 1024;
/// Longest path the kernel resolves (PATH_MAX).
const PATH_MAX: usize = 4096;
/// Frame payload allowance beyond two `max_size` snapshots.
const FRAME_SLACK: u64 = 1 << 20;
/// At a stop: how long connections may go on reading what their peers
/// sent, and how long connections and finishers have to end.
const DRAIN: Duration = Duration::from_millis(1500);
const WIND_DOWN: Duration = Duration::from_millis(2500);

/// What every connection thread shares.
struct Shared {
    config: Config,
    intake: Arc<Intake>,
    limits: Arc<Limits>,
    registry: Arc<Registry>,
    vouches: Vouches,
}

/// How [`serve`] ended.
pub enum Ended {
    /// SIGTERM/SIGINT: the socket file (if ours) is gone.
    Stopped,
    /// SIGHUP: the listening socket, to pass to the next image.
    Restart { listener: UnixListener, owned: Option<Bound> },
}

/// What [`serve`] starts from besides the config.
pub struct Setup<'a> {
    /// The socket path (bound here unless `inherited`).
    pub socket: &'a Path,
    /// A listening socket passed in (`LISTEN_FDS`).
    pub inherited: Option<Inherited>,
    /// Where unfinished opens are handed from one collector to the next.
    pub handoff: &'a Path,
    pub signals: &'a Signals,
}

/// Binds the socket (or takes the one passed in) and serves until a signal.
/// The socket appears at its path only once it accepts connections. Before
/// returning it stops accepting and lets connections and finishers wind
/// down (see the module doc); the writer still has to commit.
pub fn serve(
    setup: Setup,
    config: Config,
    secrets: Arc<Secrets>,
    quotas: Arc<Quotas>,
    tx: VersionSender,
    gaps: GapSender,
    registry: Arc<Registry>,
) -> Result<Ended> {
    let socket = setup.socket;
    let scope = config.policy().map_err(|e| Error::Config { path: socket.into(), message: e.to_string() })?;
    let intake = Arc::new(Intake::new(scope, secrets, quotas, tx).with_gaps(gaps));
    let nofile = limits::raise_nofile();
    let limits = Arc::new(Limits::new(&config, nofile));
    tracing::info!(
        nofile,
        connections = limits.global(),
        per_uid = config.max_connections_per_uid,
        held_bytes_per_uid = config.max_held_bytes_per_uid,
        "descriptor limit raised to the hard limit; connection caps set"
    );
    let (listener, owned) = match setup.inherited {
        Some(i) => (i.listener, i.owned),
        None => {
            let listener = bind(socket)?;
            (listener, Some(Bound::at(socket)))
        }
    };
    listener.set_nonblocking(true).map_err(|e| Error::io("setting the listener non-blocking", e))?;
    let registry_socket = registry::serve(&registry::socket_path(socket), registry.clone())?;
    let shared = Arc::new(Shared { config, intake, limits, registry, vouches: Vouches::default() });
    match handoff::resume(setup.handoff, &shared.intake, shared.config.max_size) {
        Ok(0) => {}
        Ok(n) => tracing::info!(opens = n, "took over the opens the previous collector could not finish"),
        Err(e) => tracing::error!("handoff file not read: {e}"),
    }
    tracing::info!(socket = %socket.display(), track = ?shared.config.track, "collector listening");
    let signal = loop {
        match setup.signals.wait(&listener) {
            Some(signal) => break signal,
            None => accept_all(&listener, &shared),
        }
    };
    let started = Instant::now();
    tracing::info!(?signal, "stopping: reading what connections sent, finishing what can be finished");
    registry_socket.remove();
    if signal == Signal::Stop {
        // No new connection from here on; those already queued are served.
        if let Some(owned) = &owned {
            owned.remove();
        }
        lifecycle::stop(DRAIN);
        accept_all(&listener, &shared);
    } else {
        lifecycle::stop(DRAIN);
    }
    let left = lifecycle::wait_tasks(started + WIND_DOWN);
    if left > 0 {
        tracing::warn!(left, "connections or finishers still busy at the end of the stop: not waited for");
    }
    Ok(match signal {
        Signal::Stop => Ended::Stopped,
        Signal::Restart => Ended::Restart { listener, owned },
    })
}

/// Accepts every connection waiting in the backlog.
fn accept_all(listener: &UnixListener, shared: &Arc<Shared>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(false).is_ok() {
                    accept(stream, shared);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                return;
            }
        }
    }
}

/// Admits a new connection under its user's caps and starts its thread, or
/// refuses it at once (without a thread).
fn accept(stream: UnixStream, shared: &Arc<Shared>) {
    let cred = match identity::peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => return tracing::warn!("no peer credentials, dropping connection: {e}"),
    };
    let stream = Arc::new(stream);
    let slot = match shared.limits.admit(cred.uid, &stream) {
        Ok(slot) => slot,
        Err(why) => {
            // The socket buffer is empty: a short frame never blocks.
            let _ = stream.set_nonblocking(true);
            let _ = write_frame(&mut &*stream, &ServerMsg::Error { message: why.to_string() }, &[]);
            return;
        }
    };
    let shared = shared.clone();
    let task = lifecycle::task();
    let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
        let _task = task;
        serve_conn(stream, cred, slot, &shared)
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start a connection thread: {e}");
    }
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

fn serve_conn(stream: Arc<UnixStream>, cred: libc::ucred, slot: Slot, shared: &Shared) {
    let (config, intake) = (&shared.config, &shared.intake);
    let pid = cred.pid;
    let peer = match identity::Peer::of(&*stream) {
        Ok(p) => p,
        Err(e) => return tracing::warn!(pid, "no peer credentials, dropping connection: {e}"),
    };
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    // One descriptor for reading and writing: `Read` and `Write` are
    // implemented for `&UnixStream`.
    let mut reader = BufReader::with_capacity(READ_CHUNK, Timed::new(&stream, CLIENT_TIMEOUT));
    reader.get_mut().start();
    // The process is alive and blocked on our answer: /proc tells who it is.
    let image = match read_frame(&mut reader, 0).and_then(|f| f.parse::<ClientMsg>()) {
        Ok(ClientMsg::Hello { image, .. }) => image,
        Ok(other) => return refuse(&stream, pid, &format!("expected hello, got {other:?}")),
        Err(e) => return refuse(&stream, pid, &e.to_string()),
    };
    let mut who = identity::from_kernel(peer.cred);
    // The groups the kernel fixed at connect(), not what /proc says now
    // (the process may have exec'd a setgid program since).
    who.groups = peer.groups.clone();
    if !peer.alive() {
        // It exited (its socket passed to another process) or its pid now
        // names another process: what /proc said is not about the peer.
        return refuse(&stream, pid, "the process that connected is gone; connect from the process that reports");
    }
    shared.registry.vouch(&mut who);
    let who = Arc::new(who);
    // A client that numbers its events: name its versions, acknowledge them.
    let origin = peer.start().filter(|_| image != 0).map(|start| Origin::new(pid, start, image));
    // Its spool file (if it spools at exit) waits until this connection is
    // done and its versions are committed (each `Delivery` keeps it live).
    let _live = origin.as_ref().map(Origin::live);
    let mut acks = origin.clone().map(Acks::new);
    let pidfd = peer.into_pidfd();
    let welcome = ServerMsg::Welcome {
        version: PROTOCOL_VERSION,
        track: config.track.clone(),
        ignore: config.ignore.clone(),
        max_size: config.max_size,
    };
    if write_frame(&mut &*stream, &welcome, &[]).is_err() {
        return;
    }
    let Ok(policy) = config.policy() else { return };
    let mut asm = Assembler::new(policy);
    let max_payload = config.max_size.saturating_mul(2).saturating_add(FRAME_SLACK);
    let store = |drafts: Vec<Draft>, acks: &Option<Acks>| {
        for draft in drafts {
            let delivery = acks.as_ref().and_then(|a| a.delivery(&draft));
            intake.submit(draft, &who, delivery);
        }
    };
    // Parked versions are released when due even while events keep coming.
    let mut ticked = Instant::now();
    loop {
        if ticked.elapsed() >= Duration::from_millis(TICK_MS as u64) {
            store(asm.tick(Timestamp::now()), &acks);
            ticked = Instant::now();
        }
        reader.get_mut().stop();
        let idle = reader.buffer().is_empty();
        if let Some(a) = &mut acks
            && let Some(upto) = a.due(|| asm.pinned(), !idle)
            && send_ack(&stream, upto)
        {
            a.sent(upto);
        }
        let wait = if acks.as_ref().is_some_and(Acks::waiting) { ACK_POLL_MS } else { TICK_MS };
        if idle && !lifecycle::readable(&*stream, wait) {
            if lifecycle::stopping() {
                break; // everything the peer sent has been read
            }
            continue;
        }
        // A frame started must be complete within CLIENT_TIMEOUT, in total.
        reader.get_mut().start();
        let (msg, sides) = match read_event(&mut reader, max_payload, &slot) {
            Ok(event) => event,
            Err(FrameError::Eof) => break,
            Err(_) if lifecycle::stopping() => break,
            Err(e) => {
                let why = if reader.get_ref().expired() {
                    format!("frame not complete within {} s", CLIENT_TIMEOUT.as_secs())
                } else {
                    e.to_string()
                };
                refuse(&stream, who.pid, &why);
                break;
            }
        };
        slot.touch();
        // Not an event: answered now, while the library waits.
        if let ClientMsg::Vouch { req, path, dev, ino } = &msg {
            let ask = vouch::Ask { req: *req, path: &path.0, dev: *dev, ino: *ino };
            let reply = vouch::answer(&shared.vouches, asm.policy(), &who, ask, config.max_size);
            if write_frame(&mut &*stream, &reply, &[]).is_err() {
                break;
            }
            continue;
        }
        // What the process lost since its last report: a gap in its name.
        if let ClientMsg::Lost { versions, bytes } = &msg {
            intake.gap(&who, "lost_in_library", *versions, *bytes, None);
            continue;
        }
        if let Some(a) = &mut acks {
            a.received(msg.seq());
        }
        asm.event(msg.seq());
        // A close while children still hold the file for writing: the
        // version ends when they exit, from the file itself. After a fork
        // (`shared`) children may have been re-parented: look everywhere.
        // Each such wait takes one of the user's slots; with none left the
        // version ends now, with what the writer reported.
        if let ClientMsg::Close { token, shared: forked, .. } = &msg
            && let Some(file) = asm.file_of(*token)
        {
            let candidates = if *forked { holders::all_but(who.pid) } else { holders::descendants(who.pid) };
            let others = holders::writers_among(candidates, file);
            if !others.is_empty()
                && let Some(extra) = shared.limits.extra(cred.uid)
            {
                let (open, pin) = asm.abandon(*token).unzip();
                // Not acknowledged until the finisher has stored it.
                let claim = (origin.clone(), acks.as_ref().and_then(|a| a.hold(pin.unwrap_or(0))));
                let (who, intake, max_size) = (who.clone(), intake.clone(), config.max_size);
                // A stop waits for this thread: its opens may have to be handed off.
                let task = lifecycle::task();
                let live = origin.as_ref().map(Origin::live);
                let waiting = std::thread::Builder::new().name("finish-wait".into()).spawn(move || {
                    let (_task, _live) = (task, live);
                    finish_holding(None, others, open.into_iter().collect(), who, max_size, intake, extra, claim)
                });
                if let Err(e) = waiting {
                    tracing::error!("cannot start a finisher thread: {e}");
                }
                continue;
            }
        }
        // What a connection keeps between frames is its open files' paths
        // (their content is charged to the user's held bytes): bounded.
        if let ClientMsg::Begin { path, named, .. } = &msg {
            let too_long = [Some(path), named.as_ref()].into_iter().flatten().any(|p| p.0.len() > PATH_MAX);
            if too_long || asm.open_count() >= MAX_OPENS {
                tracing::warn!(
                    pid = who.pid,
                    euid = who.euid,
                    path = %quote(&path.0),
                    "open not recorded: over {MAX_OPENS} open files per process or a path over {PATH_MAX} bytes"
                );
                intake.gap(&who, "open_not_recorded", 1, 0, (!too_long).then(|| path.0.clone()));
                continue;
            }
        }
        store(apply(&mut asm, msg, sides, Timestamp::now()), &acks);
    }
    let (drafts, unfinished) = asm.finish();
    store(drafts, &acks);
    // An exiting library half-closes and waits for this last ack (or
    // spools what it does not get): send it once what it covers is
    // committed. Opens still unfinished are the finisher's, not acked.
    if let Some(a) = &mut acks {
        let held = unfinished.iter().map(|u| u.seq).filter(|&s| s != 0).min();
        let wait = match lifecycle::deadline() {
            _ if crate::writer::store_failing() => Duration::ZERO,
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => LAST_ACK_WAIT,
        };
        if let Some(upto) = a.last(held, wait.min(LAST_ACK_WAIT)) {
            send_ack(&stream, upto);
        }
    }
    // The socket is closed now; the slot stays taken while a finisher waits.
    drop(reader);
    slot.release_stream();
    drop(stream);
    if !unfinished.is_empty() {
        // Wait for the writer (it may have exec'd) and for any descendant
        // that still holds one of the files.
        let mut others = Vec::new();
        for u in &unfinished {
            if let Some(file) = u.file {
                others.extend(holders::writers_among(holders::descendants(who.pid), file));
            }
        }
        let claim = (origin, None);
        finish_holding(pidfd, others, unfinished, who.clone(), config.max_size, intake.clone(), slot, claim);
    }
}

/// Hands `open` to the [`finisher`], and keeps `slot` (one of the writer's
/// user's) taken until every process it waits on has exited, so that
/// waiting finishers count against their user's cap like connections.
/// `claim`: the writer's origin and the connection's claim on its ack.
#[allow(clippy::too_many_arguments)]
fn finish_holding(
    writer: Option<OwnedFd>,
    others: Vec<OwnedFd>,
    open: Vec<Unfinished>,
    who: Arc<Identity>,
    max_size: u64,
    intake: Arc<Intake>,
    slot: Slot,
    claim: (Option<Origin>, Option<Receipt>),
) {
    let copies: Vec<OwnedFd> = writer.iter().chain(&others).filter_map(|fd| fd.try_clone().ok()).collect();
    finisher::spawn(writer, others, open, who, max_size, intake, claim);
    // At a stop the finisher hands its opens to the next collector.
    lifecycle::wait_exit(&copies);
    drop(slot);
}

/// Reads one event and the sides it reports. Content that would take the
/// user over their cap of bytes held is hashed as it arrives, never kept:
/// those sides are `hash_only`.
fn read_event<R: Read>(r: &mut R, max_payload: u64, slot: &Slot) -> Result<(ClientMsg, Vec<Option<Side>>), FrameError> {
    let head = read_head(r, max_payload)?;
    let msg = head.parse::<ClientMsg>()?;
    let snaps = msg.snapshots();
    let mut stored = snaps.iter().filter(|s| s.state == SnapState::Stored).map(|s| s.len);
    if stored.try_fold(0u64, u64::checked_add) != Some(head.payload_len) {
        return Err(FrameError::PayloadMismatch);
    }
    let reservation = if head.payload_len == 0 { None } else { slot.reserve(head.payload_len) };
    let mut sides = Vec::with_capacity(snaps.len());
    for snap in snaps {
        let side = match (snap.state, &reservation) {
            // Empty content costs nothing to hold (and no frame without
            // payload reserves): stored, not `hash_only`.
            (SnapState::Stored, _) if snap.len == 0 => Some(Side::from_bytes(Vec::new(), snap.meta, snap.consistent)),
            (SnapState::Stored, Some(reserved)) => {
                let side = Side::from_bytes(read_bytes(r, snap.len)?, snap.meta, snap.consistent);
                side.bytes.iter().for_each(|b| reserved.keep(b));
                Some(side)
            }
            (SnapState::Stored, None) => Some(hashed(r, snap)?),
            _ => Side::from_wire(snap, None),
        };
        sides.push(side);
    }
    Ok((msg, sides))
}

/// Reads a snapshot's bytes through a hash, keeping none of them.
fn hashed<R: Read>(r: &mut R, snap: &Snapshot) -> Result<Side, FrameError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut left = snap.len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(Side {
        sha256: Some(hex::encode(hasher.finalize())),
        size: snap.len,
        stored: Stored::HashOnly,
        bytes: None,
        meta: snap.meta,
        consistent: snap.consistent,
    })
}

/// Applies one event to the assembler; `sides` are the event's snapshots
/// in [`ClientMsg::snapshots`] order.
pub(crate) fn apply(asm: &mut Assembler, msg: ClientMsg, sides: Vec<Option<Side>>, now: Timestamp) -> Vec<Draft> {
    let mut sides = sides.into_iter();
    let mut side = || sides.next().flatten();
    match msg {
        ClientMsg::Begin { seq, token, path, named, file, .. } => asm.begin(
            token,
            Opened { path: path.0, named: named.map(|n| n.0), file: file.map(|m| (m.dev, m.ino)), before: side(), seq },
        ),
        ClientMsg::Link { new, .. } => asm.link(new.0, side(), now),
        ClientMsg::Close { token, .. } => asm.close(token, side(), now),
        ClientMsg::Rename { old, new, .. } => {
            let (before, after) = (side(), side());
            asm.rename(old.0, new.0, before, after, now)
        }
        ClientMsg::Delete { path, .. } => asm.delete(path.0, side(), now),
        ClientMsg::Truncate { path, .. } => {
            let (before, after) = (side(), side());
            asm.truncate(path.0, before, after, now)
        }
        ClientMsg::Attrib { path, named, .. } => {
            let (before, after) = (side(), side());
            asm.attrib(path.0, named.map(|n| n.0), before, after, now)
        }
        // Clock only appears in spool files (`spool.rs`); a Lost on a
        // connection is a gap (`serve_conn`), in a spool file too; a Vouch
        // is answered on the connection (`vouch.rs`), ignored in a spool.
        ClientMsg::Hello { .. }
        | ClientMsg::Vouch { .. }
        | ClientMsg::Clock { .. }
        | ClientMsg::Lost { .. }
        | ClientMsg::Unknown => Vec::new(),
    }
}

/// Sends `Ack { upto }` without waiting: a frame this small enters a Unix
/// stream socket whole or not at all (`EAGAIN` when the client has not read
/// what was sent before; a later, cumulative ack replaces it). False when
/// not sent.
fn send_ack(stream: &UnixStream, upto: u64) -> bool {
    let Ok(frame) = frame_prefix(&ServerMsg::Ack { upto }, &[]) else { return false };
    // SAFETY: frame is readable for its length.
    let sent = unsafe {
        libc::send(stream.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    match usize::try_from(sent) {
        Ok(n) if n == frame.len() => true,
        // Never seen; if the kernel ever splits it, finish it (write timeout).
        Ok(n) => std::io::Write::write_all(&mut &*stream, &frame[n..]).is_ok(),
        Err(_) => false,
    }
}

fn refuse(stream: &UnixStream, pid: i32, why: &str) {
    tracing::warn!(pid, "bad frame from client, closing its connection: {why}");
    let _ = write_frame(&mut &*stream, &ServerMsg::Error { message: why.to_owned() }, &[]);
}

/// Reads from the socket within an overall deadline, when one is set, and
/// within the drain deadline of a stopping collector: each read waits at
/// most for what is left of it.
struct Timed<'a> {
    stream: &'a UnixStream,
    limit: Duration,
    deadline: Option<Instant>,
}

impl<'a> Timed<'a> {
    fn new(stream: &'a UnixStream, limit: Duration) -> Self {
        Timed { stream, limit, deadline: None }
    }
    fn start(&mut self) {
        self.deadline = Some(Instant::now() + self.limit);
    }
    fn stop(&mut self) {
        self.deadline = None;
    }
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline.into_iter().chain(lifecycle::deadline()).min() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        let mut stream = self.stream;
        stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_frame_must_complete_within_the_limit_however_slowly_it_comes() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let sender = std::thread::spawn(move || {
            // A 64-byte header announced, then one byte every 20 ms: each
            // read succeeds quickly, the frame never completes in time.
            let _ = theirs.write_all(&[64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(20));
                if theirs.write_all(b" ").is_err() {
                    break;
                }
            }
        });
        let mut timed = Timed::new(&ours, Duration::from_millis(200));
        timed.start();
        let started = Instant::now();
        assert!(read_frame(&mut timed, 0).is_err());
        assert!(timed.expired());
        assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
        drop(ours);
        sender.join().unwrap();
    }
}
