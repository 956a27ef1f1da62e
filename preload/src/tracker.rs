//! What a hooked call means for filetrail, and the per-process state.
//!
//! Safe Rust only: hooks hand over paths and descriptor numbers, this module
//! decides whether the call touches a tracked file, takes snapshots and sends
//! events. Invariants:
//! - nothing here runs for read-only opens or untracked descriptors (the
//!   hooks filter with [`may_track_close`] and flag checks first);
//! - the state lock is held across `fork()` by the atfork handlers, so a
//!   child never inherits it half-changed; a `vfork` child (same memory,
//!   other pid) never touches the state;
//! - a process whose collector is missing, slow or run by another user
//!   (neither root nor its own) passes everything through ([`off`]) and
//!   tries again at most once a second, when a tracked change happens,
//!   within its time budget; a process that had a collector keeps what it
//!   reports (bounded, [`Unacked`]) until it is acknowledged, and sends it
//!   again after reconnecting;
//! - when the collector it had goes away, or none answers at all, a process
//!   spools its events instead ([`spool`]; what it kept unacknowledged
//!   first) and keeps spooling until it exits or `exec`s (one ordered
//!   stream per file, replayed by the collector once the process is done);
//! - the hot path never waits for an acknowledgement: acks are read when
//!   they have arrived, as the next event is sent. Only at exit
//!   ([`at_exit`]) does a process that has events not yet acknowledged
//!   wait for them, briefly (the collector's commit), and spool what the
//!   collector did not confirm: a collector killed before its commit
//!   loses nothing a finished process reported;
//! - events lost for good are counted, and the count not yet reported is
//!   sent (`Lost`) on the next connection, or written to the spool: the
//!   collector records it as a gap, each lost event once.

use std::ffi::CStr;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use filetrail_wire::atomic::{Vouched, Witness};
use filetrail_wire::{ClientMsg, Policy, SnapState, WirePath, policy};

use crate::client::{Budget, Conn, Failure};
use crate::config::{debug, settings};
use crate::fdtable::FdTable;
use crate::lock::{Lock, LockGuard};
use crate::snapshot::{self, Follow, Snap};
use crate::spool::{self, Spool};
use crate::sys;
use crate::unacked::Unacked;

/// No connection attempt sooner than this after one failed.
const RETRY_NS: u64 = 1_000_000_000;
/// The most one reconnect attempt (connect, `Hello`, `Welcome`) waits. A
/// process's first attempt may use its whole budget (a collector busy at
/// start-up still gets the process).
const ATTEMPT_NS: u64 = 100_000_000;
/// The most an exiting process waits for its last acknowledgement (the
/// collector's commit: a few ms) before it spools what is unconfirmed.
const EXIT_WAIT_NS: u64 = 500_000_000;
/// The most a snapshot waits for the collector to vouch for it.
const VOUCH_WAIT_NS: u64 = 100_000_000;

static STATE: Lock<Process> = Lock::new(Process::new());
/// The pid that owns STATE; another pid in this memory is a vfork child.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
/// Descriptors in the table, so `close` of anything else costs one load.
static TRACKED_FDS: AtomicUsize = AtomicUsize::new(0);
/// The library's own socket descriptor, or -1.
static SOCKET_FD: AtomicI32 = AtomicI32::new(-1);
/// No collector has answered this process yet ([`Phase::Off`]) ...
static OFF: AtomicBool = AtomicBool::new(false);
/// ... and it is not worth asking again before this (monotonic ns).
static RETRY_AT: AtomicU64 = AtomicU64::new(0);

struct Process {
    phase: Phase,
    fds: FdTable,
    next_token: u64,
    budget: Budget,
    /// Events lost for good (not delivered and not kept) ...
    dropped: u64,
    /// ... and how many of them the collector was told of (`Lost`).
    reported: u64,
    /// Set once no collector answers: every later event goes here.
    spool: Option<Spool>,
    /// The next event's number: 1 first, never reused in this process
    /// image (kept across reconnects).
    next_seq: u64,
    /// Events the collector has not acknowledged, to send again after a
    /// reconnect.
    unacked: Unacked,
    /// The last collector acknowledges events (so they are worth keeping).
    acks: bool,
    /// The last attempt to connect failed, or the connection broke: the
    /// next attempt waits at most [`ATTEMPT_NS`], and not before `retry_at`.
    failing: bool,
    retry_at: u64,
}

enum Phase {
    /// Nothing tracked yet: no connection, no policy.
    New,
    /// The policy of the last collector that answered; connected, or not
    /// (a fresh fork child, a program that closed our socket, a collector
    /// gone away): events are then kept to be sent after a reconnect.
    Ready { policy: Policy, conn: Option<Conn> },
    /// No collector answered yet: pass everything through until it is time
    /// to try again.
    Off,
}

impl Process {
    const fn new() -> Self {
        Process {
            phase: Phase::New,
            fds: FdTable::new(),
            next_token: 1,
            budget: Budget::new(0),
            dropped: 0,
            reported: 0,
            spool: None,
            next_seq: 1,
            unacked: Unacked::new(),
            acks: false,
            failing: false,
            retry_at: 0,
        }
    }
}

/// True while this process has no collector and it is not yet time to try
/// again (one clock read; one load when there is a collector).
pub fn off() -> bool {
    OFF.load(Relaxed) && sys::now_ns() < RETRY_AT.load(Relaxed)
}

/// Whether `close(fd)` (or replacing `fd`) can matter to the library.
pub fn may_track_close(fd: i32) -> bool {
    TRACKED_FDS.load(Relaxed) != 0 || fd == SOCKET_FD.load(Relaxed)
}

/// False in a vfork child: it shares its parent's memory (the owner's)
/// under another pid, and must not change the state.
fn is_owner() -> bool {
    sys::getpid() == OWNER_PID.load(Relaxed)
}

/// Locks the state, unless this is a vfork child.
fn state() -> Option<LockGuard<'static, Process>> {
    is_owner().then(|| STATE.lock())
}

/// Runs when the library is loaded: remember whose memory this is, and
/// install the fork handlers. Two cheap calls; nothing else happens until
/// a program opens a file for writing.
extern "C" fn on_load() {
    OWNER_PID.store(sys::getpid(), Relaxed);
    // SAFETY: the handlers are plain functions that never unwind.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

/// The policy, connecting on first use (or reconnecting, when it is time).
/// `None` while no collector has answered this process.
fn ready(p: &mut Process) -> Option<&Policy> {
    if let Phase::New = p.phase {
        start_process();
        p.budget = Budget::new(settings().budget_ms);
    }
    // spool: a process that spools goes on spooling; one that no collector
    // has answered spools with the policy the collector left there.
    if p.spool.is_none() && !connect(p) && !matches!(p.phase, Phase::Ready { .. }) {
        let _ = start_spooling(p, "no collector answers");
    }
    match &p.phase {
        Phase::Ready { policy, .. } => Some(policy),
        _ => None,
    }
}

fn connected(p: &Process) -> bool {
    matches!(p.phase, Phase::Ready { conn: Some(_), .. })
}

/// Connects unless connected or it is too early to try again; after a
/// reconnect, first sends again what is not acknowledged. True when
/// connected.
fn connect(p: &mut Process) -> bool {
    if connected(p) {
        return true;
    }
    let now = sys::now_ns();
    if now < p.retry_at {
        return false;
    }
    let cap = if p.failing { ATTEMPT_NS } else { u64::MAX };
    match Conn::open(&settings().socket, &mut p.budget, cap) {
        Ok((conn, policy)) => {
            SOCKET_FD.store(conn.fd(), Relaxed);
            p.acks = conn.acks;
            p.phase = Phase::Ready { policy, conn: Some(conn) };
            OFF.store(false, Relaxed);
            p.failing = false;
            resend(p) && report_lost(p)
        }
        Err(why) => {
            let kept = p.unacked.len();
            debug(|| {
                format!("collector unavailable ({why}); {kept} event(s) kept, trying again in 1 s at the earliest")
            });
            retry_later(p, now);
            if let Phase::New | Phase::Off = p.phase {
                p.phase = Phase::Off;
                OFF.store(true, Relaxed);
            }
            false
        }
    }
}

fn retry_later(p: &mut Process, now: u64) {
    p.failing = true;
    p.retry_at = now.saturating_add(RETRY_NS);
    RETRY_AT.store(p.retry_at, Relaxed);
}

/// Sends every unacknowledged event again, oldest first, on a new
/// connection (they keep their numbers: the collector stores each version
/// once). True when all went.
fn resend(p: &mut Process) -> bool {
    if !p.acks {
        // This collector will never acknowledge them.
        p.unacked.clear();
        return true;
    }
    let Phase::Ready { conn: Some(conn), .. } = &mut p.phase else { return false };
    let mut result = Ok(None);
    for kept in p.unacked.iter() {
        let parts: Vec<&[u8]> = kept.payload.iter().map(Vec::as_slice).collect();
        result = conn.send(&kept.msg, &parts, &mut p.budget);
        if result.is_err() {
            break;
        }
    }
    sent(p, result)
}

/// Settles a send: the acks it read, or a broken connection. True when sent.
fn sent(p: &mut Process, result: Result<Option<u64>, Failure>) -> bool {
    match result {
        Ok(acked) => {
            if let Some(upto) = acked {
                p.unacked.ack(upto);
            }
            true
        }
        Err(failure) => {
            broken(p, failure);
            false
        }
    }
}

/// Tells the collector how many events were lost since the last report
/// (it records a gap in this process's name). True unless the connection
/// broke.
fn report_lost(p: &mut Process) -> bool {
    let lost = p.dropped - p.reported;
    let Phase::Ready { conn: Some(conn), .. } = &mut p.phase else { return false };
    if lost == 0 {
        return true;
    }
    let result = conn.send(&ClientMsg::Lost { versions: lost, bytes: 0 }, &[], &mut p.budget);
    if result.is_ok() {
        p.reported = p.dropped;
    }
    sent(p, result)
}

/// The connection is unusable: let it go and try again soon (at once, for
/// the next event: the collector may have restarted already).
fn broken(p: &mut Process, failure: Failure) {
    debug(|| format!("connection to the collector lost: {}", failure.why));
    if failure.refused {
        // What it refused would be refused again.
        p.dropped += p.unacked.len() as u64;
        p.unacked.clear();
    }
    drop_conn(p, LetGo::Close);
    p.failing = true;
    p.retry_at = 0;
}

/// How [`drop_conn`] lets go of the socket.
enum LetGo {
    /// Close it (it is still ours).
    Close,
    /// Only forget it: the program is closing or reusing that number.
    Forget,
}

/// Lets go of the connection; the process reconnects on its next tracked
/// change (`Phase::Ready` without a connection).
fn drop_conn(p: &mut Process, how: LetGo) {
    if let Phase::Ready { conn, .. } = &mut p.phase
        && let Some(c) = conn.take()
    {
        match how {
            LetGo::Close => c.close(),
            LetGo::Forget => c.abandon(),
        }
    }
    SOCKET_FD.store(-1, Relaxed);
}

/// The frame payload of these snapshots: the bytes of those that carry some.
fn payload<const N: usize>(snaps: [Snap; N]) -> Vec<Vec<u8>> {
    snaps.into_iter().filter(|s| s.head.state == SnapState::Stored).map(|s| s.bytes).collect()
}

/// spool: from now on this process writes its events to a spool file of
/// its own, with the policy it has, or else the one the collector left in
/// the spool directory. Fails (saying why) when it cannot: no spool
/// directory, no policy, no room; the caller then stops recording.
fn start_spooling(p: &mut Process, why: &str) -> Result<(), String> {
    let socket = &settings().socket;
    let policy = match &p.phase {
        Phase::Ready { .. } => None,
        _ => Some(spool::policy(socket)?),
    };
    let mut s = Spool::create(socket, sys::getpid())?;
    debug(|| format!("{why}: spooling to {}", s.name()));
    s.lost_before(p.dropped - p.reported);
    p.reported = p.dropped;
    p.spool = Some(s);
    drop_conn(p, LetGo::Close);
    if let Some(policy) = policy {
        p.phase = Phase::Ready { policy, conn: None };
        OFF.store(false, Relaxed);
    }
    Ok(())
}

/// Numbers an event and sends it (reconnecting first if needed and due);
/// the hot path never waits for an ack. Unless this collector does not
/// acknowledge, the event is kept until it is acknowledged, to be sent
/// again after a reconnect. When it cannot be delivered, the process
/// spools (what it kept first, then this event); when it cannot spool
/// either, a kept event waits for a reconnect and any other is lost (and
/// counted, said under FILETRAIL_DEBUG).
fn send(p: &mut Process, mut msg: ClientMsg, payload: Vec<Vec<u8>>) {
    msg.set_seq(p.next_seq);
    p.next_seq += 1;
    // spool: once spooling, every event goes to the spool file.
    if let Some(spool) = &mut p.spool {
        return spool.append(&msg, &parts(&payload));
    }
    if deliver(p, &msg, &payload) {
        if p.acks {
            // Not kept (over its bounds): delivered all the same.
            let _ = p.unacked.keep(msg, payload);
        }
        return;
    }
    // spool: the collector went away, or the budget is spent.
    if start_spooling(p, "the collector is not answering").is_ok()
        && let Some(spool) = &mut p.spool
    {
        for kept in p.unacked.iter() {
            spool.append(&kept.msg, &parts(&kept.payload));
        }
        p.unacked.clear();
        return spool.append(&msg, &parts(&payload));
    }
    if !(p.acks && p.unacked.keep(msg, payload)) {
        lose(p);
    }
}

fn parts(payload: &[Vec<u8>]) -> Vec<&[u8]> {
    payload.iter().map(Vec::as_slice).collect()
}

fn lose(p: &mut Process) {
    p.dropped += 1;
    let dropped = p.dropped;
    debug(|| format!("lost {dropped} event(s) in all: no collector, and no room to keep them"));
}

/// Sends one event on the connection, reconnecting (once) if it breaks.
fn deliver(p: &mut Process, msg: &ClientMsg, payload: &[Vec<u8>]) -> bool {
    let parts: Vec<&[u8]> = payload.iter().map(Vec::as_slice).collect();
    for _ in 0..2 {
        if !connect(p) {
            return false;
        }
        let Phase::Ready { conn: Some(conn), .. } = &mut p.phase else { return false };
        let result = conn.send(msg, &parts, &mut p.budget);
        if sent(p, result) {
            return true;
        }
    }
    false
}

/// The process is exiting (`exit()`, or `_exit()` called by the program):
/// what the collector has not acknowledged yet is waited for, at most
/// [`EXIT_WAIT_NS`] of the budget; what it does not confirm (it went away,
/// or is slow) goes to the spool, replayed by the next collector and
/// stored once (its origin). A process with nothing unacknowledged — no
/// tracked change, or all confirmed already — does nothing here.
pub fn at_exit() {
    let Some(mut guard) = state() else { return };
    let p = &mut *guard;
    let Some(last) = p.unacked.last_seq() else { return };
    if p.spool.is_some() {
        return;
    }
    if let Phase::Ready { conn: Some(conn), .. } = &mut p.phase
        && let Some(upto) = conn.finish(last, &mut p.budget, EXIT_WAIT_NS)
    {
        p.unacked.ack(upto);
    }
    drop_conn(p, LetGo::Close);
    if p.unacked.len() == 0 {
        return;
    }
    let unconfirmed = p.unacked.len();
    if start_spooling(p, "exiting before the collector confirmed what it was sent").is_ok()
        && let Some(spool) = &mut p.spool
    {
        for kept in p.unacked.iter() {
            spool.append(&kept.msg, &parts(&kept.payload));
        }
        p.unacked.clear();
        debug(|| format!("{unconfirmed} unconfirmed event(s) spooled at exit"));
    } else {
        p.dropped += unconfirmed as u64;
    }
}

/// Once per process, at first use: a silent panic hook (this library's std
/// only — a Rust host program keeps its own).
fn start_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| debug(|| format!("internal error (ignored): {info}"))));
    });
}

extern "C" fn fork_prepare() {
    STATE.acquire();
}

extern "C" fn fork_parent() {
    // SAFETY: this thread took the lock in fork_prepare.
    unsafe { STATE.get_unchecked() }.fds.mark_shared();
    STATE.release();
}

extern "C" fn fork_child() {
    OWNER_PID.store(sys::getpid(), Relaxed);
    // SAFETY: in the child only this thread exists, and this thread took the
    // lock in fork_prepare: the state is ours.
    let p = unsafe { STATE.get_unchecked() };
    // The child reports on its own connection (the kernel credits a
    // connection to the process that opened it).
    drop_conn(p, LetGo::Close);
    p.fds.clear();
    // spool: the parent's file (and lock) is the parent's; close our copy.
    p.spool = None;
    p.budget = Budget::new(settings().budget_ms);
    // The parent's events (and losses) are the parent's to deliver.
    p.unacked.clear();
    (p.dropped, p.reported) = (0, 0);
    p.failing = false;
    p.retry_at = 0;
    TRACKED_FDS.store(0, Relaxed);
    STATE.release();
}

/// The most content the library holds in memory for one snapshot,
/// whatever the collector's `max_size` says: larger files are hashed in
/// fixed-size chunks instead. A pending version holds at most two.
const HOLD_LIMIT: u64 = 64 << 20;

fn held_max(policy: &Policy) -> u64 {
    policy.max_size.min(HOLD_LIMIT)
}

/// An absolute, lexically normalized path for `path` relative to `dirfd`.
fn resolve(dirfd: i32, path: &CStr) -> Option<Vec<u8>> {
    let path = path.to_bytes();
    if path.first() == Some(&b'/') {
        return Some(policy::absolute(b"/", path));
    }
    let base = if dirfd == libc::AT_FDCWD { sys::getcwd()? } else { sys::fd_path(dirfd)? };
    Some(policy::absolute(&base, path))
}

/// Paths that are never files a human edits: no need to ask the collector.
fn never_tracked(path: &[u8]) -> bool {
    ["/dev/", "/proc/", "/sys/"].iter().any(|p| path.starts_with(p.as_bytes()))
}

/// This call runs in a vfork child (see [`is_owner`]).
struct NotOwner;

/// The tracked path a call names, with the policy's size cap; `Ok(None)`
/// when it is not tracked. An untracked path under a known policy is
/// answered without a system call; ownership (one `getpid`) is checked
/// only before anything that changes the state.
fn tracked_here(dirfd: i32, path: &CStr) -> Result<Option<(Vec<u8>, u64)>, NotOwner> {
    if off() {
        return Ok(None);
    }
    let Some(abs) = resolve(dirfd, path) else { return Ok(None) };
    tracked_abs(abs)
}

/// As [`tracked_here`], for an absolute, normalized path.
fn tracked_abs(abs: Vec<u8>) -> Result<Option<(Vec<u8>, u64)>, NotOwner> {
    if never_tracked(&abs) {
        return Ok(None);
    }
    let mut p = STATE.lock();
    // Reading the cached policy is safe in a vfork child too.
    if let Phase::Ready { policy, .. } = &p.phase
        && !policy.is_tracked(&abs)
    {
        return Ok(None);
    }
    if !is_owner() {
        return Err(NotOwner);
    }
    let Some(policy) = ready(&mut p) else { return Ok(None) };
    Ok(policy.is_tracked(&abs).then(|| (abs, held_max(policy))))
}

/// As [`tracked_here`], for calls a vfork child does not report.
fn tracked(dirfd: i32, path: &CStr) -> Option<(Vec<u8>, u64)> {
    tracked_here(dirfd, path).ok().flatten()
}

/// A writable open about to happen, with what the path held before it.
pub struct PendingOpen {
    path: Vec<u8>,
    flags: i32,
    before: Snap,
    /// In a vfork child: a connection of its own, used once and left open.
    oneshot: Option<(Conn, Budget)>,
}

/// Before a writable open: is the path tracked? If so, snapshot it.
pub fn open_before(dirfd: i32, path: &CStr, flags: i32) -> Option<PendingOpen> {
    let (path, max_size, oneshot) = match tracked_here(dirfd, path) {
        Ok(found) => {
            let (path, max_size) = found?;
            (path, max_size, None)
        }
        Err(NotOwner) => {
            let (path, max_size, conn) = tracked_in_vfork_child(dirfd, path)?;
            (path, max_size, Some(conn))
        }
    };
    let mut oneshot = oneshot;
    let before = match &mut oneshot {
        Some((conn, budget)) => snapshot::of_path(&path, max_size, Follow::Yes, &mut Oneshot(conn, budget)),
        None => snapshot::of_path(&path, max_size, Follow::Yes, &mut Collector),
    };
    if before.head.state == SnapState::NotRegular {
        return None;
    }
    Some(PendingOpen { path, flags, before, oneshot })
}

/// The collector, asked on this process's connection to vouch for a
/// reading of a file this process may not lease (`atomic`). Takes the
/// state lock: never used while it is held.
struct Collector;

impl Witness for Collector {
    fn vouch(&mut self, fd: i32) -> Option<Vouched> {
        let ask = vouch_ask(fd)?;
        let mut guard = state()?;
        let p = &mut *guard;
        let Phase::Ready { conn: Some(conn), .. } = &mut p.phase else { return None };
        p.next_token += 1;
        let result = conn.vouch(p.next_token, ask, &mut p.budget, VOUCH_WAIT_NS);
        let vouched = result.as_ref().ok().and_then(|(vouched, _)| *vouched);
        sent(p, result.map(|(_, acked)| acked));
        vouched
    }
}

/// A vfork child's own connection as the witness.
struct Oneshot<'a>(&'a mut Conn, &'a mut Budget);

impl Witness for Oneshot<'_> {
    fn vouch(&mut self, fd: i32) -> Option<Vouched> {
        self.0.vouch(1, vouch_ask(fd)?, self.1, VOUCH_WAIT_NS).ok()?.0
    }
}

/// The file open as `fd`, as the collector is asked about it: its path
/// (the kernel's, never a deleted one), device and inode.
fn vouch_ask(fd: i32) -> Option<(Vec<u8>, u64, u64)> {
    let path = sys::fd_path(fd).filter(|r| r.first() == Some(&b'/') && !r.ends_with(b" (deleted)"))?;
    let st = sys::fstat(fd).ok()?;
    Some((path, st.st_dev, st.st_ino))
}

/// A vfork child (dash runs commands this way, and opens their redirects
/// in the child) shares its parent's memory and must not change the state.
/// It reports on a connection of its own, opened here, left open, and
/// closed by the `exec` that follows (close-on-exec): the collector then
/// finishes the version when the process exits.
fn tracked_in_vfork_child(dirfd: i32, path: &CStr) -> Option<(Vec<u8>, u64, (Conn, Budget))> {
    // tracked_here already refused what the parent's cached policy excludes.
    let abs = resolve(dirfd, path).filter(|a| !never_tracked(a))?;
    let mut budget = Budget::new(settings().budget_ms);
    let (conn, policy) = Conn::open(&settings().socket, &mut budget, u64::MAX).ok()?;
    if !policy.is_tracked(&abs) {
        conn.close();
        return None;
    }
    Some((abs, held_max(&policy), (conn, budget)))
}

/// After the open: if it succeeded on a regular file, the version begins.
pub fn open_after(open: PendingOpen, fd: i32) {
    let file = match sys::fstat(fd) {
        Ok(st) if fd >= 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG => snapshot::meta(&st),
        _ => {
            if let Some((conn, _)) = open.oneshot {
                conn.close();
            }
            return;
        }
    };
    // The file actually opened, when a symlink led there.
    let real = open
        .before
        .via_symlink
        .then(|| sys::fd_path(fd))
        .flatten()
        .filter(|r| r.first() == Some(&b'/') && !r.ends_with(b" (deleted)"));
    let (path, named) = match real {
        Some(real) if real != open.path => (real, Some(WirePath(open.path))),
        _ => (open.path, None),
    };
    let begin = |token| ClientMsg::Begin {
        seq: 0,
        token,
        path: WirePath(path),
        named,
        file: Some(file),
        flags: open.flags,
        before: open.before.head.clone(),
    };
    if let Some((mut conn, mut budget)) = open.oneshot {
        // Unnumbered: this connection lives until the exec, never resent.
        let msg = begin(1);
        let parts = payload([open.before]);
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let _ = conn.send(&msg, &parts, &mut budget);
        conn.abandon(); // stays open until exec or exit
        return;
    }
    let Some(mut p) = state() else { return };
    if !matches!(p.phase, Phase::Ready { .. }) {
        return;
    }
    let token = p.next_token;
    p.next_token += 1;
    p.fds.open(fd, token);
    TRACKED_FDS.store(p.fds.len(), Relaxed);
    let msg = begin(token);
    send(&mut p, msg, payload([open.before]));
}

/// A file was just created and opened as `fd` (the `mkstemp` family): a
/// version that begins with nothing.
pub fn created(dirfd: i32, path: &CStr, fd: i32) {
    if let Some((path, _)) = tracked(dirfd, path) {
        let before = Snap { head: filetrail_wire::Snapshot::absent(), bytes: Vec::new(), via_symlink: false };
        open_after(PendingOpen { path, flags: libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, before, oneshot: None }, fd);
    }
}

/// What the close hook must do after [`before_close`].
pub enum CloseAction {
    /// Call the real `close`.
    Real,
    /// The program closed the library's own socket, which it never opened:
    /// the library closed it; answer EBADF as if it had never been open.
    NotOpen,
    /// Call the real `close`, then [`after_close`]: it ended a tracked open.
    RealThen(Closing),
}

/// Before `close(fd)`: if it ends a tracked open, the file is opened anew
/// to be read once the program's descriptor is gone ([`after_close`]).
pub fn before_close(fd: i32) -> CloseAction {
    let Some(mut p) = state() else { return CloseAction::Real };
    if fd == SOCKET_FD.load(Relaxed) {
        drop_conn(&mut p, LetGo::Close);
        return CloseAction::NotOpen;
    }
    match closing(&mut p, fd) {
        Some(c) => CloseAction::RealThen(c),
        None => CloseAction::Real,
    }
}

/// `fd` is going away; if it was the last descriptor of a tracked open,
/// the version ends now (the descriptor is still open for the snapshot).
fn end_if_last(p: &mut Process, fd: i32) {
    if let Some(token) = p.fds.close(fd) {
        TRACKED_FDS.store(p.fds.len(), Relaxed);
        let max_size = match &p.phase {
            Phase::Ready { policy, .. } => held_max(policy),
            _ => return,
        };
        let after = snapshot::of_fd(fd, max_size);
        let shared = p.fds.take_shared(token);
        send(p, ClientMsg::Close { seq: 0, token, after: after.head.clone(), shared }, payload([after]));
    }
}

/// A tracked open whose last descriptor the program is about to close
/// (`close`, or `fclose`, which flushes and closes inside libc): the file
/// opened anew read-only, to read what it holds once the program's
/// descriptor is gone.
pub struct Closing {
    token: u64,
    held: snapshot::Reopened,
}

/// Before `close`/`fclose`: if `fd` is the last descriptor of a tracked open.
pub fn before_fclose(fd: i32) -> Option<Closing> {
    closing(&mut *state()?, fd)
}

fn closing(p: &mut Process, fd: i32) -> Option<Closing> {
    let token = p.fds.close(fd);
    TRACKED_FDS.store(p.fds.len(), Relaxed);
    Some(Closing { token: token?, held: snapshot::Reopened::of(fd) })
}

/// After the program's `close`/`fclose`: the version ends with what the
/// file holds now.
pub fn after_close(c: Closing) {
    let max_size = match &state().as_deref().map(|p| &p.phase) {
        Some(Phase::Ready { policy, .. }) => held_max(policy),
        _ => return,
    };
    // Unlocked: the collector may be asked to vouch (it takes the lock).
    let after = c.held.read(max_size, &mut Collector);
    let Some(mut p) = state() else { return };
    let shared = p.fds.take_shared(c.token);
    let msg = ClientMsg::Close { seq: 0, token: c.token, after: after.head.clone(), shared };
    send(&mut p, msg, payload([after]));
}

/// Before `dup2(old, new)`/`dup3`: `new` is replaced, which may end an open
/// or take over the library's socket descriptor.
pub fn before_replace(old: i32, new: i32) {
    if old == new {
        return;
    }
    let Some(mut p) = state() else { return };
    if new == SOCKET_FD.load(Relaxed) {
        // The program is about to reuse the number: forget, don't close.
        drop_conn(&mut p, LetGo::Forget);
        return;
    }
    end_if_last(&mut p, new);
}

/// After a successful `dup`-like call: `new` reaches what `old` reaches.
pub fn after_dup(old: i32, new: i32) {
    if new < 0 || TRACKED_FDS.load(Relaxed) == 0 {
        return;
    }
    let Some(mut p) = state() else { return };
    p.fds.dup(old, new);
    TRACKED_FDS.store(p.fds.len(), Relaxed);
}

/// A rename about to happen that involves a tracked path.
pub struct PendingRename {
    old: Vec<u8>,
    new: Vec<u8>,
    max_size: u64,
    before: Snap,
}

pub fn rename_before(olddir: i32, old: &CStr, newdir: i32, new: &CStr) -> Option<PendingRename> {
    if off() {
        return None;
    }
    let old = resolve(olddir, old)?;
    let new = resolve(newdir, new)?;
    let max_size = {
        let mut p = state()?;
        let policy = ready(&mut p)?;
        if !policy.is_tracked(&new) && !policy.is_tracked(&old) {
            return None;
        }
        held_max(policy)
    };
    // A symlink or nothing at `new` is replaced: its before is "no file".
    let before = snapshot::of_path(&new, max_size, Follow::No, &mut Collector);
    Some(PendingRename { old, new, max_size, before })
}

pub fn rename_after(r: PendingRename, ok: bool) {
    if !ok {
        return;
    }
    let after = snapshot::of_path(&r.new, r.max_size, Follow::No, &mut Collector);
    if after.head.state == SnapState::NotRegular {
        return; // a directory or symlink was renamed: not a file version
    }
    let Some(mut p) = state() else { return };
    let msg = ClientMsg::Rename {
        seq: 0,
        old: WirePath(r.old),
        new: WirePath(r.new),
        before: r.before.head.clone(),
        after: after.head.clone(),
    };
    send(&mut p, msg, payload([r.before, after]));
}

/// An unlink about to happen of a tracked regular file.
pub struct PendingDelete {
    path: Vec<u8>,
    before: Snap,
}

pub fn unlink_before(dirfd: i32, path: &CStr) -> Option<PendingDelete> {
    let (path, max_size) = tracked(dirfd, path)?;
    let before = snapshot::of_path(&path, max_size, Follow::No, &mut Collector);
    matches!(before.head.state, SnapState::Stored | SnapState::HashOnly | SnapState::Unreadable)
        .then_some(PendingDelete { path, before })
}

pub fn unlink_after(d: PendingDelete, ok: bool) {
    if !ok {
        return;
    }
    let Some(mut p) = state() else { return };
    let msg = ClientMsg::Delete { seq: 0, path: WirePath(d.path), before: d.before.head.clone() };
    send(&mut p, msg, payload([d.before]));
}

/// A `truncate(path)` about to happen.
pub struct PendingTruncate {
    path: Vec<u8>,
    max_size: u64,
    before: Snap,
}

pub fn truncate_before(path: &CStr) -> Option<PendingTruncate> {
    let (path, max_size) = tracked(libc::AT_FDCWD, path)?;
    let before = snapshot::of_path(&path, max_size, Follow::Yes, &mut Collector);
    matches!(before.head.state, SnapState::Stored | SnapState::HashOnly).then_some(PendingTruncate {
        path,
        max_size,
        before,
    })
}

pub fn truncate_after(t: PendingTruncate, ok: bool) {
    if !ok {
        return;
    }
    let after = snapshot::of_path(&t.path, t.max_size, Follow::Yes, &mut Collector);
    let Some(mut p) = state() else { return };
    let msg = ClientMsg::Truncate {
        seq: 0,
        path: WirePath(t.path),
        before: t.before.head.clone(),
        after: after.head.clone(),
    };
    send(&mut p, msg, payload([t.before, after]));
}

/// A new name about to be linked (`link`, `linkat`): the tracked path and
/// the size cap, when `new` is tracked.
pub fn link_before(newdir: i32, new: &CStr) -> Option<(Vec<u8>, u64)> {
    tracked(newdir, new)
}

pub fn link_after((path, max_size): (Vec<u8>, u64), ok: bool) {
    if !ok {
        return;
    }
    let after = snapshot::of_path(&path, max_size, Follow::No, &mut Collector);
    if after.head.state == SnapState::NotRegular {
        return;
    }
    let Some(mut p) = state() else { return };
    send(&mut p, ClientMsg::Link { seq: 0, new: WirePath(path), after: after.head.clone() }, payload([after]));
}

/// A mode or owner change about to happen (`chmod`, `chown` and their
/// variants) of a tracked regular file, with what the file held before.
pub struct PendingAttrib {
    /// The file changed (symlinks resolved), and the name used when different.
    path: Vec<u8>,
    named: Option<Vec<u8>>,
    /// The call acts on this descriptor of the program's (`fchmod`): the
    /// after side is read through it.
    fd: Option<i32>,
    follow: Follow,
    max_size: u64,
    before: Snap,
}

/// Before `chmod`/`chown` and their `f`/`l`/`at` variants: is the file
/// tracked? `path` `None` (or empty with `AT_EMPTY_PATH`): the call acts on
/// descriptor `dirfd`. Untracked names cost what an open's do (the cached
/// policy); a descriptor costs one `readlink` of `/proc/self/fd/N`. A file
/// this process holds open for writing is left to that open's version.
pub fn attrib_before(dirfd: i32, path: Option<&CStr>, flags: i32) -> Option<PendingAttrib> {
    let by_fd = path.is_none_or(|p| p.is_empty() && flags & libc::AT_EMPTY_PATH != 0);
    let follow = if !by_fd && flags & libc::AT_SYMLINK_NOFOLLOW != 0 { Follow::No } else { Follow::Yes };
    if off() {
        return None;
    }
    let (name, max_size) = match path.filter(|_| !by_fd) {
        Some(path) => tracked(dirfd, path)?,
        None => {
            if TRACKED_FDS.load(Relaxed) != 0 && state()?.fds.token(dirfd).is_some() {
                return None;
            }
            let abs = sys::fd_path(dirfd).filter(|p| p.first() == Some(&b'/') && !p.ends_with(b" (deleted)"))?;
            tracked_abs(abs).ok().flatten()?
        }
    };
    let before = if by_fd {
        snapshot::of_fd(dirfd, max_size)
    } else {
        snapshot::of_path(&name, max_size, follow, &mut Collector)
    };
    if !matches!(before.head.state, SnapState::Stored | SnapState::HashOnly | SnapState::Unreadable) {
        return None;
    }
    let real = before.via_symlink.then(|| real_path(&name)).flatten();
    let (path, named) = match real {
        Some(real) if real != name => (real, Some(name)),
        _ => (name, None),
    };
    Some(PendingAttrib { path, named, fd: by_fd.then_some(dirfd), follow, max_size, before })
}

/// The file `path` leads to (following symlinks), by the kernel's answer.
fn real_path(path: &[u8]) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(path).ok()?;
    let fd = sys::openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_CLOEXEC).ok()?;
    sys::fd_path(fd.raw()).filter(|r| r.first() == Some(&b'/') && !r.ends_with(b" (deleted)"))
}

pub fn attrib_after(a: PendingAttrib, ok: bool) {
    if !ok {
        return;
    }
    let after = match a.fd {
        Some(fd) => snapshot::of_fd(fd, a.max_size),
        None => snapshot::of_path(a.named.as_ref().unwrap_or(&a.path), a.max_size, a.follow, &mut Collector),
    };
    if !matches!(after.head.state, SnapState::Stored | SnapState::HashOnly | SnapState::Unreadable) {
        return;
    }
    let Some(mut p) = state() else { return };
    let msg = ClientMsg::Attrib {
        seq: 0,
        path: WirePath(a.path),
        named: a.named.map(WirePath),
        before: a.before.head.clone(),
        after: after.head.clone(),
    };
    send(&mut p, msg, payload([a.before, after]));
}

/// Before `close_range(first, last)`/`closefrom(first)`: tracked opens in
/// the range end now, and the library's socket, if in range, is forgotten
/// (the real call closes it).
pub fn before_close_range(first: u32, last: u32) {
    let first = i32::try_from(first).unwrap_or(i32::MAX);
    let last = i32::try_from(last).unwrap_or(i32::MAX);
    let Some(mut p) = state() else { return };
    let sock = SOCKET_FD.load(Relaxed);
    if sock >= first && sock <= last {
        drop_conn(&mut p, LetGo::Forget);
    }
    for fd in p.fds.in_range(first, last) {
        end_if_last(&mut p, fd);
    }
}

/// Whether a descriptor range can matter to the library.
pub fn may_track_range(first: u32, last: u32) -> bool {
    let sock = SOCKET_FD.load(Relaxed);
    TRACKED_FDS.load(Relaxed) != 0 || (sock >= 0 && (sock as u32) >= first && (sock as u32) <= last)
}
