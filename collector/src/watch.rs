//! The kernel watch: changes to tracked files that no library reported.
//!
//! The library sees what dynamically linked programs in a session do through
//! libc; setuid programs, static binaries, `env -i`, raw syscalls, daemons
//! and attribute changes escape it. The watch marks every directory under
//! the tracked roots for entry changes (create, delete, move) and every
//! tracked file for content and attribute changes (modify, close-write,
//! attrib) with fanotify ([`crate::fanotify`]: notification events only, so
//! reads cost next to nothing and untracked directories nothing), and keeps
//! the marks up to date as files and directories appear. Per changed path it waits until the path has been
//! quiet for [`QUIET`] (the library's own version of the same change, parked
//! up to 2 s to recognise temp files, lands first), reads the file as root,
//! carefully (through the directory the kernel named, no symlink followed,
//! regular files only, bounded by `max_size`, consistent when its size,
//! mtime and ctime held across the read),
//! and compares it with what the store last knew of the path
//! ([`Store::last_known`]: the newest version's after, else the baseline):
//!
//! - equal: nothing (the library recorded it: one change, one version);
//! - different content: a version `seen_by: kernel` — create, write, delete,
//!   or rename (a `FAN_RENAME` whose source held that very content);
//! - same content, other mode or owner: `attrib`.
//!
//! While a path waits, who changed it is noted in [`Unrecorded`]: a
//! library's version of the same file may be stored before the watch looks,
//! and the store then records the change the watch saw (`store/mod.rs`),
//! after asking the watch to read its queue (a bell beside the queue in
//! the poll: what was queued before the library's version is then noted).
//!
//! Who: the process the event names, read from `/proc` while its pidfid
//! (`FAN_REPORT_PIDFD`) shows it alive, like a library peer
//! ([`identity::from_kernel`], the session registry's labels); a process
//! already gone is `unknown`, every field claimed. Kernel-seen versions are
//! facts the collector observed, so they skip the client access check but
//! are redacted and charged to quotas like any other
//! ([`Intake::submit_observed`]).
//!
//! **Cost.** Per change, not per event: while events keep coming the queue
//! is read at most every [`READ_GAP`], so the kernel merges a burst's
//! events of one file into one, and a file already waiting is found by the
//! kernel's entry name without a lookup; the content is read once per quiet
//! path. The library's report is not trusted to skip that read: it is the
//! check that a library reported what the file holds.
//!
//! **Baseline.** At start, every tracked file the store knows nothing of is
//! read once and recorded in the `baseline` table (hash only above
//! `max_size` or when secret), so that a change only the kernel saw has a
//! `before`.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use filetrail_wire::Policy;
use filetrail_wire::atomic::{self, Lease, Outcome};
use filetrail_wire::path::quote;

use crate::config::Config;
use crate::fanotify::{self, Entry, Event, Fanotify};
use crate::identity;
use crate::intake::Intake;
use crate::model::{Action, Draft, SeenBy, Side};
use crate::quota::Quotas;
use crate::registry::Registry;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::unrecorded::Unrecorded;
use crate::who::{Identity, next_key};
use crate::writer::VersionSender;

/// How long a path must be quiet before the watch looks at it.
const QUIET: Duration = Duration::from_millis(2500);
/// A file still open for writing (modified, not closed) is looked at after
/// this much quiet at the latest.
const QUIET_OPEN: Duration = Duration::from_secs(30);
/// How long the watch waits for a version it sent to reach the store
/// before it compares that path again.
const SETTLE: Duration = Duration::from_secs(5);
/// Most paths waiting at once; beyond, a rescan of the roots.
const MAX_PENDING: usize = 100_000;
/// Deepest directory level marked.
const MAX_DEPTH: usize = 64;
/// Least time between two rescans of the roots after lost events.
const RESCAN_EVERY: Duration = Duration::from_secs(60);
/// Least time between two reads of the event queue. A lone event is read
/// at once; during a burst (an editor saving, a bulk operation), the
/// kernel merges the events of one file by one process into one, so the
/// watch reads one event (one pidfd, one lookup) where it would read
/// hundreds, and wakes up at most 50 times a second. The price: a process
/// that writes during a burst and exits within this time is `unknown`.
const READ_GAP: Duration = Duration::from_millis(20);
/// How long a directory entry resolved to a path is trusted for the
/// content events of a path already waiting (no directory handle opened,
/// no `/proc/self/fd` link read); directory events forget them all.
const RESOLVED_FOR: Duration = Duration::from_secs(1);
/// Files per baseline transaction.
const BASELINE_BATCH: usize = 256;

/// The running watch: dropping it stops its thread (which holds a sender of
/// the writer's channel) and waits for it.
pub struct Watch {
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: an eventfd takes an 8-byte write.
        unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the watch unless `kernel_watch = false` or the kernel cannot
/// (logged once, in one line; the collector runs on without it).
pub fn start(
    config: &Config,
    db: &Path,
    secrets: Arc<Secrets>,
    quotas: Arc<Quotas>,
    tx: VersionSender,
    registry: Arc<Registry>,
    unrecorded: Arc<Unrecorded>,
) -> Option<Watch> {
    if !config.kernel_watch {
        tracing::info!("kernel watch off (kernel_watch = false): changes by programs without the library are not seen");
        return None;
    }
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!("kernel watch unavailable ({what}: {e}): changes by programs without the library are not seen");
    };
    let fan = match Fanotify::new() {
        Ok(f) => f,
        Err(e) => {
            unavailable("fanotify with directory handles and names, Linux 5.9+, as root", &e);
            return None;
        }
    };
    let store = match Store::open(db) {
        Ok(s) => s,
        Err(e) => {
            unavailable("opening the store", &e);
            return None;
        }
    };
    let policy = config.policy().ok()?;
    // SAFETY: eventfd takes an initial value and flags.
    let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if stop < 0 {
        {
            unavailable("eventfd", &std::io::Error::last_os_error());
            return None;
        };
    }
    // SAFETY: a new descriptor we now own.
    let stop = unsafe { OwnedFd::from_raw_fd(stop) };
    let stop_copy = stop.try_clone().ok()?;
    let intake = Intake::new(policy.clone(), secrets.clone(), quotas, tx);
    let mut state = State {
        fan,
        marks: Marks { mounts: HashMap::new(), count: 0, max: config.max_watched_dirs, warned: false },
        roots: config.track.clone(),
        policy,
        max_size: config.max_size,
        store,
        secrets,
        intake,
        registry,
        unrecorded,
        pending: HashMap::new(),
        resolved: HashMap::new(),
        sent: HashMap::new(),
        ids: HashMap::new(),
        me: std::process::id() as i32,
        rescanned: None,
        rescan_wanted: false,
    };
    let thread = std::thread::Builder::new().name("watch".into()).spawn(move || state.run(stop_copy)).ok()?;
    Some(Watch { stop, thread: Some(thread) })
}

/// While alive, the watch answers the store's asks to read its queue.
struct Answering<'a>(&'a Unrecorded);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.watching(false);
    }
}

/// The marks placed and the file systems they are on.
struct Marks {
    /// fsid -> a descriptor on that file system (for `open_by_handle_at`).
    mounts: HashMap<[i32; 2], OwnedFd>,
    count: usize,
    max: usize,
    warned: bool,
}

/// A path with events not looked at yet.
struct Pending {
    /// The directory the kernel named (held open) and the entry's name.
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    last: Instant,
    /// When the latest event came: the version's time.
    time: jiff::Timestamp,
    /// Modified and not closed since.
    open_write: bool,
    /// The process of the latest event (None: gone, or the collector's own).
    who: Option<Arc<Identity>>,
    pid: i32,
    /// A `FAN_RENAME` brought this path from that one.
    renamed_from: Option<Vec<u8>>,
}

impl Pending {
    /// One more event: the path is quiet from now on, by this process.
    fn note(&mut self, mask: u64, who: Option<Arc<Identity>>, pid: i32, me: i32) {
        (self.last, self.time) = (Instant::now(), jiff::Timestamp::now());
        if mask & libc::FAN_CLOSE_WRITE != 0 {
            self.open_write = false;
        } else if mask & libc::FAN_MODIFY != 0 {
            self.open_write = true;
        }
        if pid != me {
            (self.who, self.pid) = (who, pid);
        }
    }
}

struct State {
    fan: Fanotify,
    marks: Marks,
    roots: Vec<String>,
    policy: Policy,
    max_size: u64,
    store: Store,
    secrets: Arc<Secrets>,
    intake: Intake,
    registry: Arc<Registry>,
    /// Who changed the paths waiting, for the store (a library's version may come first).
    unrecorded: Arc<Unrecorded>,
    pending: HashMap<Vec<u8>, Pending>,
    /// Entries of waiting paths as the kernel names them, resolved when.
    resolved: HashMap<Entry, (Instant, Vec<u8>)>,
    /// Versions sent to the writer: path -> (when, after hash), until the store shows them.
    sent: HashMap<Vec<u8>, (Instant, Option<Option<String>>)>,
    /// pid -> identity read recently (a burst of events from one process).
    ids: HashMap<i32, (Instant, Option<Arc<Identity>>)>,
    me: i32,
    /// When the roots were last rescanned after lost events.
    rescanned: Option<Instant>,
    /// Events were lost since the last rescan.
    rescan_wanted: bool,
}

impl State {
    fn run(&mut self, stop: OwnedFd) {
        let started = Instant::now();
        let files = self.mark_roots();
        let added = self.baseline(&files);
        tracing::info!(
            dirs = self.marks.count,
            files = files.len(),
            baselines = added,
            pidfds = self.fan.pidfds,
            renames = self.fan.renames,
            ms = started.elapsed().as_millis() as u64,
            "kernel watch on the tracked directories"
        );
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_read: Option<Instant> = None;
        let unrecorded = self.unrecorded.clone();
        let bell = unrecorded.bell().map_or(-1, |b| b.as_raw_fd());
        unrecorded.watching(true);
        let _answering = Answering(&unrecorded);
        loop {
            // Right after a read, the queue is left alone for READ_GAP: the
            // events of a burst pile up and the kernel merges them.
            let resting = last_read.map(|t| (t + READ_GAP).saturating_duration_since(Instant::now()));
            let resting = resting.filter(|d| !d.is_zero());
            let timeout = self.next_due().into_iter().chain(resting).min();
            let timeout = timeout.map_or(-1, |d| d.as_micros().div_ceil(1000).min(60_000) as i32);
            let mut fds = [
                libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: bell, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.fan.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            let nfds = if resting.is_some() { 2 } else { 3 };
            // SAFETY: fds is a valid pollfd array of at least nfds entries.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout) };
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                tracing::error!("kernel watch stopped: poll: {}", std::io::Error::last_os_error());
                return;
            }
            if fds[0].revents != 0 {
                return;
            }
            last_read = last_read.filter(|t| t.elapsed() < READ_GAP);
            if fds[1].revents & libc::POLLIN != 0 {
                // The store waits for what the queue holds now (`unrecorded.rs`).
                let asked = unrecorded.rung();
                if !self.read_queue(&mut buf, true) {
                    return;
                }
                unrecorded.answered(asked);
            } else if fds[2].revents & libc::POLLIN != 0 {
                last_read = Some(Instant::now());
                if !self.read_queue(&mut buf, false) {
                    return;
                }
            }
            self.look_at_due();
        }
    }

    /// Reads the queue once (the poll said it has events), or, `all`, until
    /// it is empty (bounded). `false`: the watch must stop.
    fn read_queue(&mut self, buf: &mut [u8], all: bool) -> bool {
        for _ in 0..if all { 64 } else { 1 } {
            if all {
                let mut fd = libc::pollfd { fd: self.fan.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: fd is a valid pollfd array of length 1; no wait.
                if unsafe { libc::poll(&mut fd, 1, 0) } <= 0 || fd.revents & libc::POLLIN == 0 {
                    return true;
                }
            }
            match self.fan.read(buf) {
                Ok(events) => events.into_iter().for_each(|e| self.event(e)),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("kernel watch stopped: reading events: {e}");
                    return false;
                }
            }
        }
        true
    }

    /// Marks every directory under the roots; returns the tracked regular
    /// files found (directory, name, path).
    fn mark_roots(&mut self) -> Vec<(Arc<OwnedFd>, Vec<u8>, Vec<u8>)> {
        let mut files = Vec::new();
        for root in self.roots.clone() {
            self.mark_tree(Path::new(&root), true, &mut files);
        }
        files
    }

    /// Marks `top` and the directories under it, and the tracked files in
    /// them, collecting those files.
    fn mark_tree(&mut self, top: &Path, follow: bool, files: &mut Vec<(Arc<OwnedFd>, Vec<u8>, Vec<u8>)>) {
        let start = files.len();
        let (marks, fan) = (&mut self.marks, &mut self.fan);
        walk(top, follow, &self.policy, files, |dir, fd| {
            if marks.count >= marks.max {
                if !marks.warned {
                    marks.warned = true;
                    tracing::warn!(
                        max_watched_dirs = marks.max,
                        dir = %quote(dir.as_os_str().as_bytes()),
                        "kernel watch: more directories under the tracked roots than max_watched_dirs; \
                         changes in the others are seen only by the library (raise max_watched_dirs)"
                    );
                }
                return false;
            }
            if let Ok(fsid) = fanotify::fsid(fd.as_fd())
                && !marks.mounts.contains_key(&fsid)
                && let Ok(copy) = fd.try_clone()
            {
                marks.mounts.insert(fsid, copy);
            }
            if let Err(e) = fan.mark_dir(fd.as_fd()) {
                tracing::warn!(dir = %quote(dir.as_os_str().as_bytes()), "kernel watch: cannot watch this directory: {e}");
                return false;
            }
            marks.count += 1;
            true
        });
        for (dir, name, _) in &files[start..] {
            let _ = self.fan.mark_file(dir.as_fd(), name);
        }
    }

    /// Records the baselines of `files` the store knows nothing of.
    fn baseline(&mut self, files: &[(Arc<OwnedFd>, Vec<u8>, Vec<u8>)]) -> usize {
        let mut added = 0;
        for chunk in files.chunks(BASELINE_BATCH) {
            let mut sides = Vec::new();
            for (dir, name, path) in chunk {
                if !matches!(self.store.last_known(path), Ok(None)) {
                    continue;
                }
                let Some(side) = read_file(dir.as_fd(), name, self.max_size) else { continue };
                // Redacted by the intake's rules: by name, or a known secret's hash.
                let draft = Draft::new(path.clone(), Action::Create, None, Some(side), jiff::Timestamp::now());
                if let Some(side) = self.secrets.redact(draft).after {
                    sides.push((path.clone(), side));
                }
            }
            match self.store.add_baselines(&sides, jiff::Timestamp::now()) {
                Ok(n) => added += n,
                Err(e) => tracing::error!("kernel watch: cannot record baselines: {e}"),
            }
        }
        added
    }

    fn event(&mut self, ev: Event) {
        if ev.mask & libc::FAN_Q_OVERFLOW != 0 {
            // At most one rescan a minute: a flood of events must not turn
            // into a flood of whole-tree reads.
            tracing::warn!("kernel watch: the kernel's event queue overflowed; the tracked roots will be rescanned");
            self.rescan_wanted = true;
            return self.rescan_if_due();
        }
        let who = if ev.pid == self.me { None } else { self.identity(ev.pid, ev.pidfd.as_ref()) };
        if ev.mask & libc::FAN_RENAME != 0 {
            let (Some(old), Some(new)) = (&ev.old, &ev.new) else { return };
            let Some((_, _, old_path)) = self.resolve(old) else { return };
            if let Some((dir, name, path)) = self.resolve(new) {
                if ev.mask & libc::FAN_ONDIR != 0 {
                    return self.new_dir(&path, who, ev.pid);
                }
                self.touch(path.clone(), dir, name, ev.mask, who, ev.pid);
                if let Some(p) = self.pending.get_mut(&path) {
                    p.renamed_from = Some(old_path);
                }
            }
            return;
        }
        let Some(entry) = &ev.dir else { return };
        // More content events of a path already waiting: no lookup.
        if ev.mask & !fanotify::FILE_MASK == 0
            && let Some((at, path)) = self.resolved.get(entry)
            && at.elapsed() < RESOLVED_FOR
            && let Some(p) = self.pending.get_mut(path)
        {
            if ev.pid != self.me {
                self.unrecorded.note(path, ev.pid, who.as_ref(), jiff::Timestamp::now());
            }
            return p.note(ev.mask, who, ev.pid, self.me);
        }
        let Some((dir, name, path)) = self.resolve(entry) else { return };
        if ev.mask & libc::FAN_ONDIR != 0 {
            // A directory moved: the paths under it are no longer what they were.
            self.resolved.clear();
            if ev.mask & (libc::FAN_CREATE | libc::FAN_MOVED_TO) != 0 {
                self.new_dir(&path, who, ev.pid);
            }
            return;
        }
        self.touch(path.clone(), dir, name, ev.mask, who, ev.pid);
        if self.pending.contains_key(&path) {
            self.resolved.insert(entry.clone(), (Instant::now(), path));
        }
    }

    /// A directory appeared (made or moved in): mark it and what is under
    /// it, and look at the files already in it.
    fn new_dir(&mut self, path: &[u8], who: Option<Arc<Identity>>, pid: i32) {
        let mut files = Vec::new();
        self.mark_tree(Path::new(std::ffi::OsStr::from_bytes(path)), false, &mut files);
        for (dir, name, path) in files {
            self.touch(path, dir, name, libc::FAN_CLOSE_WRITE, who.clone(), pid);
        }
    }

    /// Rescans if events were lost and the last rescan is old enough.
    fn rescan_if_due(&mut self) {
        let now = Instant::now();
        if self.rescan_wanted && self.rescanned.is_none_or(|t| now.duration_since(t) >= RESCAN_EVERY) {
            (self.rescanned, self.rescan_wanted) = (Some(now), false);
            self.rescan();
        }
    }

    /// Everything under the roots is looked at again (after lost events).
    fn rescan(&mut self) {
        let mut files = Vec::new();
        for root in self.roots.clone() {
            walk(Path::new(&root), true, &self.policy, &mut files, |_, _| true);
        }
        for (dir, name, path) in files {
            let _ = self.fan.mark_file(dir.as_fd(), &name);
            self.touch(path, dir, name, libc::FAN_CLOSE_WRITE, None, 0);
        }
    }

    fn touch(
        &mut self,
        path: Vec<u8>,
        dir: Arc<OwnedFd>,
        name: Vec<u8>,
        mask: u64,
        who: Option<Arc<Identity>>,
        pid: i32,
    ) {
        if !self.policy.is_tracked(&path) {
            return;
        }
        // A file that appeared under a name: watch its content from now on.
        if mask & (libc::FAN_CREATE | libc::FAN_MOVED_TO | libc::FAN_RENAME) != 0 {
            let _ = self.fan.mark_file(dir.as_fd(), &name);
        }
        if !self.pending.contains_key(&path) && self.pending.len() >= MAX_PENDING {
            tracing::warn!("kernel watch: over {MAX_PENDING} changed paths waiting; some are looked at later");
            return;
        }
        if pid != self.me {
            self.unrecorded.note(&path, pid, who.as_ref(), jiff::Timestamp::now());
        }
        let p = self.pending.entry(path).or_insert_with(|| Pending {
            dir: dir.clone(),
            name: name.clone(),
            last: Instant::now(),
            time: jiff::Timestamp::now(),
            open_write: false,
            who: None,
            pid,
            renamed_from: None,
        });
        (p.dir, p.name) = (dir, name);
        p.note(mask, who, pid, self.me);
    }

    /// The directory an entry names, its path, and the entry's full path.
    fn resolve(&self, entry: &Entry) -> Option<(Arc<OwnedFd>, Vec<u8>, Vec<u8>)> {
        let mount = self.marks.mounts.get(&entry.fsid)?;
        let dir = fanotify::open_by_handle(mount.as_fd(), &entry.handle).ok()?;
        let dir_path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
        let dir_path = dir_path.as_os_str().as_bytes();
        if !dir_path.starts_with(b"/") || dir_path.ends_with(b" (deleted)") {
            return None;
        }
        if entry.name.is_empty() || entry.name == b"." || entry.name.contains(&b'/') {
            return None;
        }
        let mut path = dir_path.to_vec();
        if path != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(&entry.name);
        Some((Arc::new(dir), entry.name.clone(), path))
    }

    /// Who `pid` is (as the kernel and /proc say: not yet labelled), read
    /// while its pidfd shows it alive; `None`: gone.
    fn identity(&mut self, pid: i32, pidfd: Option<&OwnedFd>) -> Option<Arc<Identity>> {
        let now = Instant::now();
        self.ids.retain(|_, (at, _)| now.duration_since(*at) < Duration::from_secs(1));
        if let Some((_, who)) = self.ids.get(&pid) {
            return who.clone();
        }
        let who = read_identity(pid, pidfd, self.fan.pidfds).map(Arc::new);
        self.ids.insert(pid, (now, who.clone()));
        who
    }

    /// Time until the next pending path is due.
    fn next_due(&self) -> Option<Duration> {
        let now = Instant::now();
        let rescan =
            self.rescanned.filter(|_| self.rescan_wanted).map(|t| (t + RESCAN_EVERY).saturating_duration_since(now));
        self.pending.values().map(|p| (p.last + wait_for(p)).saturating_duration_since(now)).chain(rescan).min()
    }

    fn look_at_due(&mut self) {
        self.rescan_if_due();
        let now = Instant::now();
        self.sent.retain(|_, (at, _)| now.duration_since(*at) < SETTLE);
        let mut due: Vec<Vec<u8>> =
            self.pending.iter().filter(|(_, p)| now >= p.last + wait_for(p)).map(|(k, _)| k.clone()).collect();
        // Renames first: their sources are then no separate delete.
        due.sort_by_key(|k| self.pending[k].renamed_from.is_none());
        self.resolved.retain(|_, (at, _)| now.duration_since(*at) < RESOLVED_FOR);
        for path in due {
            let Some(p) = self.pending.remove(&path) else { continue };
            // Before the store is read: a library version stored from now
            // on is compared with what the watch records (or has a gap).
            self.unrecorded.forget(&path);
            if let Some(retry) = self.look_at(&path, &p) {
                self.pending.insert(path, Pending { last: retry, ..p });
            }
        }
    }

    /// Compares what `path` holds with what the store last knew; sends a
    /// version when they differ. `Some(time)`: look again later (a version
    /// the watch sent has not reached the store yet).
    fn look_at(&mut self, path: &[u8], p: &Pending) -> Option<Instant> {
        let known = match self.store.last_known(path) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(path = %quote(path), "kernel watch: cannot read the store: {e}");
                return None;
            }
        };
        let known_hash = known.as_ref().map(|k| k.side.as_ref().map(|s| s.sha256.clone()));
        if let Some((_, hash)) = self.sent.get(path)
            && known_hash.as_ref() != Some(hash)
        {
            return Some(Instant::now() - QUIET + Duration::from_millis(200));
        }
        let before = known.and_then(|k| k.side);
        let after = read_file(p.dir.as_fd(), &p.name, self.max_size);
        // The source of a rename whose target is not looked at yet: the
        // target decides whether this is a rename or a delete.
        if after.is_none() && self.pending.values().any(|q| q.renamed_from.as_deref() == Some(path)) {
            return Some(Instant::now());
        }
        let mut old_path = None;
        let action = match (&before, &after) {
            (None, None) => return None,
            (Some(b), Some(a)) if b.sha256.is_some() && b.sha256 == a.sha256 => {
                let owner = |s: &Side| s.meta.map(|m| (m.mode & 0o7777, m.uid, m.gid));
                if owner(b).is_none() || owner(b) == owner(a) {
                    return None;
                }
                Action::Attrib
            }
            (_, None) => Action::Delete,
            (before, Some(a)) => {
                let source = p.renamed_from.as_ref().filter(|old| {
                    let held = self.store.last_known(old).ok().flatten().and_then(|k| k.side);
                    held.is_some_and(|h| h.sha256.is_some() && h.sha256 == a.sha256)
                        && !Path::new(std::ffi::OsStr::from_bytes(old)).exists()
                });
                match (source, before) {
                    (Some(old), _) => {
                        old_path = Some(old.clone());
                        self.pending.remove(old);
                        self.unrecorded.forget(old);
                        Action::Rename
                    }
                    (None, None) => Action::Create,
                    (None, Some(_)) => Action::Write,
                }
            }
        };
        let who = attribute(&self.registry, p.who.as_ref(), p.pid);
        let hash = after.as_ref().map(|s| s.sha256.clone());
        let mut draft = Draft::new(path.to_vec(), action, before, after, p.time);
        draft.old_path = old_path;
        draft.seen_by = SeenBy::Kernel;
        tracing::info!(path = %quote(path), action = action.as_str(), pid = p.pid, user = %who.user, "kernel watch: a change no library reported");
        self.intake.submit_observed(draft, &who);
        self.sent.insert(path.to_vec(), (Instant::now(), hash));
        None
    }
}

fn wait_for(p: &Pending) -> Duration {
    if p.open_write { QUIET_OPEN } else { QUIET }
}

/// Opens a directory to mark it (the root may be a symlink, nothing under it).
fn open_dir(path: &Path, follow: bool) -> Option<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | nofollow) };
    // SAFETY: a new descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Walks `top` (followed if it is a symlink and `follow`; nothing below
/// it is) and the directories under it, to [`MAX_DEPTH`], collecting the
/// tracked regular files (directory, name, path). `enter(dir, fd)` says
/// whether to look into a directory.
fn walk(
    top: &Path,
    follow: bool,
    policy: &Policy,
    files: &mut Vec<(Arc<OwnedFd>, Vec<u8>, Vec<u8>)>,
    mut enter: impl FnMut(&Path, &OwnedFd) -> bool,
) {
    let mut stack = vec![(top.to_path_buf(), 0usize, follow)];
    while let Some((dir, depth, follow)) = stack.pop() {
        let Some(fd) = open_dir(&dir, follow) else { continue };
        if !enter(&dir, &fd) {
            continue;
        }
        let fd = Arc::new(fd);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            if kind.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1, false));
            } else if kind.is_file() && policy.is_tracked(path.as_os_str().as_bytes()) {
                files.push((fd.clone(), e.file_name().as_bytes().to_vec(), path.into_os_string().into_vec()));
            }
        }
    }
}

/// What the entry `name` of `dir` holds, read as root without following a
/// symlink, without blocking, without touching its atime; `None` when it
/// is absent or not a regular file. `consistent` as the library's
/// (`filetrail_wire::atomic`: a read lease, else two equal reads). Above
/// `max_size`: hash only.
pub fn read_file(dir: BorrowedFd, name: &[u8], max_size: u64) -> Option<Side> {
    let c = CString::new(name).ok()?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let open = |extra| {
        // SAFETY: dir is an open directory, c a valid NUL-terminated name.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | extra) };
        // SAFETY: a new descriptor we now own.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let file = open(libc::O_NOATIME).or_else(|| open(0))?;
    match atomic::read(file.as_raw_fd(), max_size, Lease::Try, &mut ()).ok()? {
        Outcome::Read(r) => Some(Side::from_reading(r)),
        Outcome::NotRegular(_) => None,
    }
}

/// Who `pid` is, from `/proc`; `None` when it is gone (or, with a pidfd,
/// no longer the process the kernel named).
fn read_identity(pid: i32, pidfd: Option<&OwnedFd>, pidfds: bool) -> Option<Identity> {
    if pid <= 0 || (pidfds && pidfd.is_none()) {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let second = |key: &str| -> Option<u32> {
        status.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().nth(1)?.parse().ok()
    };
    let cred = libc::ucred { pid, uid: second("Uid:")?, gid: second("Gid:")? };
    let mut who = identity::from_kernel(cred);
    match pidfd {
        Some(fd) => {
            let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: pfd is a valid pollfd array of length 1; a pidfd is
            // readable once its process has exited.
            if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
                return None;
            }
        }
        // No pidfd from this kernel: the pid may have been reused already.
        None => who.trust.values_mut().for_each(|t| *t = crate::who::Trust::Claimed),
    }
    Some(who)
}

/// Whom a version of a change by `pid` (`seen`: as read from `/proc`,
/// `None` when gone) is credited to: labelled when it is made, not when its
/// event came, so a login whose registration reached the collector a
/// moment after the process wrote (a slow `collector session` at login)
/// still counts as a login.
pub(crate) fn attribute(registry: &Registry, seen: Option<&Arc<Identity>>, pid: i32) -> Arc<Identity> {
    let Some(seen) = seen else { return Arc::new(unknown(pid)) };
    let mut who = Identity::clone(seen);
    registry.vouch(&mut who);
    not_a_human_unless_logged_in(&mut who);
    Arc::new(who)
}

/// A process outside any login session that PAM registered (a cron job, a
/// daemon, a process that set its own login uid) is not attributed to the
/// human its login uid names: `user` is its real uid's name and `chain`
/// its effective uid's (the login uid and session stay, claimed).
fn not_a_human_unless_logged_in(who: &mut Identity) {
    if who.loginuid.is_none() || who.trust.get("session") == Some(&crate::who::Trust::Verified) {
        return;
    }
    who.user = crate::who::user_name(who.uid);
    who.chain = vec![crate::who::user_name(who.euid)];
    for f in ["user", "chain"] {
        who.trust.insert(f, if who.exe.is_empty() { crate::who::Trust::Claimed } else { crate::who::Trust::Verified });
    }
}

/// A writer the kernel named by pid only, gone before it could be read:
/// nobody is attributed, every field is claimed.
fn unknown(pid: i32) -> Identity {
    Identity {
        key: next_key(),
        pid,
        uid: u32::MAX,
        euid: u32::MAX,
        gid: u32::MAX,
        user: "unknown".into(),
        chain: vec!["unknown".into()],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::who::Trust;

    #[test]
    fn a_login_uid_without_a_registered_session_names_no_human() {
        // alice's cron job running `sudo sed`: login uid alice, session unregistered.
        let mut who = Identity {
            uid: 0,
            euid: 0,
            loginuid: Some(4242),
            session: Some(7),
            exe: "/usr/bin/sed".into(),
            ..Default::default()
        };
        who.user = "alice".into();
        who.chain = vec!["alice".into(), "root".into()];
        who.trust.insert("session", Trust::Claimed);
        not_a_human_unless_logged_in(&mut who);
        assert_eq!((who.user.as_str(), who.chain.clone()), ("root", vec!["root".to_string()]));
        // A registered login keeps its human.
        let mut who = Identity { loginuid: Some(4242), session: Some(7), user: "alice".into(), ..Default::default() };
        who.trust.insert("session", Trust::Verified);
        not_a_human_unless_logged_in(&mut who);
        assert_eq!(who.user, "alice");
    }

    #[test]
    fn reads_regular_files_only_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "content").unwrap();
        std::os::unix::fs::symlink(dir.path().join("f"), dir.path().join("link")).unwrap();
        let fd = open_dir(dir.path(), true).unwrap();
        let side = read_file(fd.as_fd(), b"f", 100).unwrap();
        assert_eq!((side.bytes.as_deref().map(|b| &b[..]), side.consistent), (Some(&b"content"[..]), true));
        assert_eq!(read_file(fd.as_fd(), b"link", 100), None);
        assert_eq!(read_file(fd.as_fd(), b"missing", 100), None);
        let big = read_file(fd.as_fd(), b"f", 3).unwrap();
        assert_eq!(
            (big.stored, big.size, big.sha256),
            (crate::model::Stored::HashOnly, 7, Some(crate::model::sha256_hex(b"content")))
        );
    }
}
