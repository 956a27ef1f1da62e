//! Replaying spool files: what libraries wrote while no collector answered
//! (`preload/src/spool.rs`; names and places: `filetrail_wire::spool`).
//!
//! At start the collector creates `spool/` beside its socket (and
//! `spool_dir` if configured) owned by itself, mode 1733, and leaves the
//! tracking policy there (`policy`, one `Welcome` frame) for processes that
//! find no collector. Then, at start and every second, each `*.ftspool`
//! file is replayed like a connection:
//!
//! - opened `O_NOFOLLOW|O_NONBLOCK` relative to the directory: a symlink,
//!   FIFO, socket, hard link or file others may write is never read; it is
//!   moved aside (`<name>.bad`) with one log line;
//! - replayed only once its writer is done: the library holds `flock` on
//!   it while it lives, the collector takes `LOCK_EX|LOCK_NB`; an empty
//!   file is a writer that has not locked yet (removed after a minute);
//!   and once no connection of this collector still works on the same
//!   process image (`delivery::is_live`: a library spools at exit what
//!   its collector had not yet confirmed);
//! - the writer is the file's owner (the kernel sets it at creation: the
//!   one verified fact), its groups from the user database; the pid in the
//!   name and everything in the frames is `claimed`;
//! - frames are read with the socket's bounded reader and fed to an
//!   [`Assembler`] with the time of the preceding `Clock`; a version whose
//!   origin is stored already (its connection delivered it before the
//!   process began to spool) is skipped; the others pass an [`Intake`]
//!   (scope and the kernel's permission check as the owner, redaction, the
//!   collector's quotas: a version costs its user once) and are committed
//!   by this thread's own store connection; a `Lost` frame becomes a gap
//!   (`store/gaps.rs`); then the file is deleted;
//! - opens the writer never closed (it `exec`'d) are finished from the file
//!   once the claimed pid, if it is alive and the owner's, has exited;
//! - a malformed file is moved aside, with a `spool_malformed` gap;
//!   nothing in a spool file can stop the collector.
//!
//! A crash between the commit and the delete replays a file twice.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io::{BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use filetrail_wire::frame::READ_CHUNK;
use filetrail_wire::{ClientMsg, FrameError, PROTOCOL_VERSION, Policy, ServerMsg, read_frame, spool, write_frame};
use jiff::Timestamp;
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::assemble::{Assembler, Unfinished, complete};
use crate::asuser::{Creds, as_user};
use crate::config::Config;
use crate::delivery::{Delivery, Origin};
use crate::error::{Error, Result};
use crate::intake::Intake;
use crate::model::{Draft, NewVersion, Side};
use crate::quota::Quotas;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::store::gaps::Gap;
use crate::who::{Identity, TRUST_FIELDS, Trust, next_key, user_name};

/// How often the spool directories are looked at.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// An empty spool file older than this is a writer that died before it
/// wrote anything.
const EMPTY_GRACE: Duration = Duration::from_secs(60);
/// The longest a replay waits for a claimed pid to exit.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Most opens one spool file may hold at once (as on a connection).
const MAX_OPENS: usize = 1024;

/// The spool directory beside `socket`.
pub fn dir_beside(socket: &Path) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&spool::dir_of(socket.as_os_str().as_bytes())))
}

/// Prepares the spool directories and starts the replay thread. Unless
/// another collector already serves `socket` (then `serve` fails anyway):
/// `inherited` says the listening socket was passed to us (by systemd or
/// our previous image), so a connection to it reaches us, not another.
/// `quotas`: the collector's, shared with its connections (a replayed
/// version costs its user's quota like any other, once).
pub fn start(
    socket: &Path,
    inherited: bool,
    db: &Path,
    config: &Config,
    secrets: Arc<Secrets>,
    quotas: Arc<Quotas>,
) -> Result<()> {
    if !inherited && std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Ok(());
    }
    let beside = dir_beside(socket);
    let mut dirs = Vec::new();
    for dir in std::iter::once(&beside).chain(config.spool_dir.as_ref()) {
        match prepare_dir(dir) {
            Ok(()) => dirs.push(dir.clone()),
            Err(e) => tracing::error!(dir = %dir.display(), "spool directory not used: {e}"),
        }
    }
    if dirs.first() == Some(&beside)
        && let Err(e) = write_policy(&beside, config)
    {
        tracing::error!(dir = %beside.display(), "cannot leave the policy for libraries in the spool: {e}");
    }
    let mut replay = Replay::new(db, config, secrets, quotas)?;
    std::thread::Builder::new()
        .name("spool".into())
        .spawn(move || {
            loop {
                for dir in &dirs {
                    replay.dir(dir);
                }
                std::thread::sleep(SCAN_EVERY);
            }
        })
        .map_err(|e| Error::io("starting the spool thread", e))?;
    Ok(())
}

/// Creates `dir` (and its parents) or checks it is ours and a directory,
/// then makes it mode 1733.
fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)?,
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    // Through a descriptor: never a symlink, checked and changed as one file.
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?;
    let md = d.metadata()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me {
        return Err(std::io::Error::other(format!("it is owned by uid {}, not by us (uid {me})", md.uid())));
    }
    d.set_permissions(std::fs::Permissions::from_mode(0o1733))
}

/// Leaves the `Welcome` a connection would get in `dir/policy`, for
/// processes that find no collector (written aside, renamed into place).
fn write_policy(dir: &Path, config: &Config) -> std::io::Result<()> {
    let welcome = ServerMsg::Welcome {
        version: PROTOCOL_VERSION,
        track: config.track.clone(),
        ignore: config.ignore.clone(),
        max_size: config.max_size,
    };
    let tmp = dir.join(format!(".{}.{}", spool::POLICY_FILE, std::process::id()));
    // Anyone may create names here: whatever is at ours goes first.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    write_frame(&mut f, &welcome, &[])?;
    std::fs::rename(&tmp, dir.join(spool::POLICY_FILE))
}

struct Replay {
    store: Store,
    intake: Intake,
    rx: crossbeam_channel::Receiver<NewVersion>,
    policy: Policy,
    max_size: u64,
    /// Files replayed once their claimed writer (pid) has exited, or
    /// [`MAX_WAIT`] after they were first seen (the pid is a claim, and may
    /// name another process by now).
    waiting: HashMap<Vec<u8>, (i32, Instant)>,
    /// Files whose failure was logged already (by name).
    warned: HashMap<Vec<u8>, ()>,
}

/// What became of one file.
enum Outcome {
    /// Not now: its writer is still at work.
    Later,
    /// Replayed and deleted.
    Done,
    /// Moved aside, for this reason.
    Aside(String),
}

/// Why a file's frames could not be used.
struct Malformed(String);

/// What one spool file holds.
struct Contents {
    /// The versions, assembled as on a connection.
    drafts: Vec<Draft>,
    /// Opens never closed (the writer `exec`'d or died).
    unfinished: Vec<Unfinished>,
    /// What the library says it lost: versions, bytes, between these times.
    lost: Option<(u64, u64, (Timestamp, Timestamp))>,
    /// The last frame was cut off (the writer died while writing it).
    truncated: bool,
    /// The time of the last `Clock`.
    last: Timestamp,
    /// The writer's image and start time from its `Hello` (0: none): with
    /// the pid they name its versions as its live connection would have,
    /// so what it sent before spooling is stored once.
    named: (u64, u64),
}

impl Replay {
    /// A replayer with its own connection to the store at `db`.
    /// Shares the collector's [`Secrets`], so what one path learns is
    /// secret is redacted in the other too.
    fn new(db: &Path, config: &Config, secrets: Arc<Secrets>, quotas: Arc<Quotas>) -> Result<Replay> {
        let config_err = |e: glob::PatternError| Error::Config { path: db.into(), message: e.to_string() };
        let policy = config.policy().map_err(config_err)?;
        let store = Store::open(db)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let intake = Intake::new(policy.clone(), secrets, quotas, tx);
        let max_size = config.max_size;
        Ok(Replay { store, intake, rx, policy, max_size, waiting: HashMap::new(), warned: HashMap::new() })
    }

    fn dir(&mut self, dir: &Path) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(dirfd) = rustix::fs::open(dir, flags, Mode::empty()) else { return };
        let Ok(entries) = rustix::fs::Dir::read_from(&dirfd) else { return };
        let names: Vec<CString> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.to_bytes().ends_with(spool::SUFFIX.as_bytes()))
            .collect();
        for name in names {
            let shown = String::from_utf8_lossy(name.to_bytes()).into_owned();
            match self.file(&dirfd, &name) {
                Ok(Outcome::Later) | Ok(Outcome::Done) => {}
                Ok(Outcome::Aside(why)) => {
                    let mut bad = name.as_bytes().to_vec();
                    bad.extend_from_slice(b".bad");
                    let moved = rustix::fs::renameat(&dirfd, name.as_c_str(), &dirfd, OsStr::from_bytes(&bad));
                    tracing::warn!(dir = %dir.display(), file = %shown, moved = moved.is_ok(), "spool file moved aside: {why}");
                }
                Err(e) => {
                    if self.warned.insert(name.as_bytes().to_vec(), ()).is_none() {
                        tracing::error!(dir = %dir.display(), file = %shown, "cannot replay spool file yet: {e}");
                    }
                }
            }
        }
    }

    /// Replays one file if it is a spool file whose writer is done.
    fn file(&mut self, dirfd: &OwnedFd, name: &CString) -> Result<Outcome> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dirfd, name.as_c_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Outcome::Later),
            Err(Errno::LOOP) => return Ok(Outcome::Aside("a symlink".into())),
            Err(e) => return Ok(Outcome::Aside(format!("cannot open it: {e}"))),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("fstat of a spool file", e.into()))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Ok(Outcome::Aside("not a regular file".into()));
        }
        if st.st_nlink > 1 {
            return Ok(Outcome::Aside("a hard link to another file".into()));
        }
        if st.st_mode & 0o022 != 0 {
            return Ok(Outcome::Aside("writable by others than its owner".into()));
        }
        if st.st_size == 0 {
            let age = Timestamp::now().as_second().saturating_sub(st.st_mtime);
            if age > EMPTY_GRACE.as_secs() as i64 {
                let _ = rustix::fs::unlinkat(dirfd, name.as_c_str(), AtFlags::empty());
            }
            return Ok(Outcome::Later);
        }
        if st.st_size as u64 > spool::MAX_FILE {
            self.gap("spool_malformed", st.st_uid, 0, None, name)?;
            return Ok(Outcome::Aside(format!("larger than {} bytes", spool::MAX_FILE)));
        }
        let pid = spool::pid_of(&String::from_utf8_lossy(name.as_bytes())).unwrap_or(0);
        let waiting = self.waiting.get(name.as_bytes()).copied();
        if let Some((waited, since)) = waiting
            && alive_as(waited, st.st_uid)
            && since.elapsed() < MAX_WAIT
        {
            return Ok(Outcome::Later);
        }
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(Outcome::Later),
            Err(e) => return Err(Error::io("locking a spool file", e.into())),
        }
        // Another collector may have replayed and deleted it meanwhile.
        if rustix::fs::fstat(&fd).map(|s| s.st_nlink).unwrap_or(0) == 0 {
            return Ok(Outcome::Later);
        }
        let who = Arc::new(writer(st.st_uid, pid));
        let mtime = Timestamp::from_second(st.st_mtime).unwrap_or_else(|_| Timestamp::now());
        let file = std::fs::File::from(fd);
        let read = self.read(&file, mtime);
        let Contents { drafts, unfinished, lost, truncated, last, named } = match read {
            Ok(r) => r,
            Err(Malformed(why)) => {
                self.gap("spool_malformed", st.st_uid, 0, None, name)?;
                return Ok(Outcome::Aside(why));
            }
        };
        if crate::delivery::is_live(pid, named.1, named.0) {
            // Its connection is still finishing the same events (it spooled
            // at exit what was not yet confirmed): those versions, verified,
            // go first; this file's copies are then repeats.
            return Ok(Outcome::Later);
        }
        let waited_enough = waiting.is_some_and(|(_, since)| since.elapsed() >= MAX_WAIT);
        if !unfinished.is_empty() && alive_as(pid, st.st_uid) && !waited_enough {
            // It exec'd and the program still runs: finish when it exits.
            self.waiting.entry(name.as_bytes().to_vec()).or_insert((pid, Instant::now()));
            return Ok(Outcome::Later);
        }
        let creds = Creds::of(&who);
        let finished = unfinished.into_iter().filter_map(|u| {
            let after = as_user(&creds, || crate::finisher::snapshot(&u.path, self.max_size)).ok().flatten();
            complete(u, after, last)
        });
        let drafts: Vec<Draft> = drafts.into_iter().chain(finished.collect::<Vec<_>>()).collect();
        let origin = (named.0 != 0 && named.1 != 0).then(|| Origin::new(pid, named.1, named.0));
        let mut repeats = 0;
        for draft in drafts {
            let delivery = origin.as_ref().filter(|_| draft.seq != 0).map(|o| Delivery {
                origin: o.key(draft.seq),
                receipt: None,
                live: None,
            });
            // Stored already (its connection delivered it before the spool
            // took over): not offered again, so it costs no quota twice.
            if let Some(d) = &delivery
                && self.store.has_origin(&d.origin)?
            {
                repeats += 1;
                continue;
            }
            self.intake.submit(draft, &who, delivery);
        }
        let batch: Vec<NewVersion> = self.rx.try_iter().collect();
        if !batch.is_empty() {
            self.store.insert(&batch)?;
        }
        let mut gaps = Vec::new();
        if let Some((versions, bytes, span)) = lost {
            gaps.push(self.gap_of("lost_in_library", st.st_uid, versions, bytes, Some(span), name));
        }
        if truncated {
            gaps.push(self.gap_of("spool_truncated", st.st_uid, 1, 0, Some((last, last)), name));
        }
        if !gaps.is_empty() {
            self.store.insert_gaps(&gaps)?;
        }
        tracing::info!(
            file = %String::from_utf8_lossy(name.as_bytes()),
            uid = st.st_uid,
            versions = batch.len(),
            repeats,
            "spool file replayed"
        );
        // Deleted before the lock goes (with `file`): a collector that
        // opened it meanwhile sees it unlinked.
        rustix::fs::unlinkat(dirfd, name.as_c_str(), AtFlags::empty())
            .map_err(|e| Error::io("deleting a replayed spool file", e.into()))?;
        self.waiting.remove(name.as_bytes());
        self.warned.remove(name.as_bytes());
        drop(file);
        Ok(Outcome::Done)
    }

    /// Reads a spool file's frames (`mtime`: the time of events before
    /// any `Clock`).
    fn read(&self, file: &std::fs::File, mtime: Timestamp) -> Result<Contents, Malformed> {
        let mut r = BufReader::with_capacity(READ_CHUNK, file.take(spool::MAX_FILE));
        let bad = |e: FrameError| Malformed(e.to_string());
        let named = match read_frame(&mut r, 0).map_err(bad)?.parse::<ClientMsg>().map_err(bad)? {
            ClientMsg::Hello { image, start, .. } => (image, start),
            other => return Err(Malformed(format!("starts with {other:?}, not hello"))),
        };
        let mut asm = Assembler::new(self.policy.clone());
        let mut drafts = Vec::new();
        let mut now = mtime;
        let mut lost: Option<(u64, u64, (Timestamp, Timestamp))> = None;
        let mut truncated = false;
        loop {
            let frame = match read_frame(&mut r, spool::MAX_FILE) {
                Ok(f) => f,
                Err(FrameError::Eof) => break,
                // The writer died in the middle of a frame: keep what came before.
                Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    truncated = true;
                    break;
                }
                Err(e) => return Err(bad(e)),
            };
            let msg = frame.parse::<ClientMsg>().map_err(bad)?;
            match msg {
                ClientMsg::Clock { time_us } => {
                    now = Timestamp::from_microsecond(time_us).map_err(|e| Malformed(format!("bad clock: {e}")))?;
                }
                ClientMsg::Lost { versions, bytes } => {
                    let (v, b, (since, _)) = lost.unwrap_or((0, 0, (now, now)));
                    lost = Some((v.saturating_add(versions), b.saturating_add(bytes), (since, now)));
                }
                ClientMsg::Hello { .. } | ClientMsg::Unknown => {}
                msg => {
                    if matches!(msg, ClientMsg::Begin { .. }) && asm.open_count() >= MAX_OPENS {
                        continue;
                    }
                    let parts = msg.split_payload(&frame.payload).map_err(bad)?;
                    let sides: Vec<Option<Side>> = msg
                        .snapshots()
                        .into_iter()
                        .zip(parts)
                        .map(|(snap, bytes)| Side::from_wire(snap, bytes))
                        .collect();
                    drafts.extend(crate::server::apply(&mut asm, msg, sides, now));
                }
            }
        }
        let (parked, unfinished) = asm.finish();
        drafts.extend(parked);
        Ok(Contents { drafts, unfinished, lost, truncated, last: now, named })
    }

    fn gap_of(
        &self,
        what: &'static str,
        uid: u32,
        versions: u64,
        bytes: u64,
        span: Option<(Timestamp, Timestamp)>,
        name: &CString,
    ) -> Gap {
        Gap {
            time_us: Timestamp::now().as_microsecond(),
            since_us: span.map(|s| s.0.as_microsecond()),
            until_us: span.map(|s| s.1.as_microsecond()),
            uid: Some(uid),
            user: Some(user_name(uid)),
            what,
            versions,
            bytes,
            source: Some(String::from_utf8_lossy(name.as_bytes()).into_owned()),
            ..Gap::default()
        }
    }

    fn gap(
        &mut self,
        what: &'static str,
        uid: u32,
        versions: u64,
        span: Option<(Timestamp, Timestamp)>,
        name: &CString,
    ) -> Result<()> {
        let gap = self.gap_of(what, uid, versions, 0, span, name);
        self.store.insert_gaps(&[gap])
    }
}

/// The writer of a spool file: its owner (kernel-verified), with the
/// owner's groups from the user database; everything else is unknown or
/// claimed (the pid is the one in the file's name).
fn writer(uid: u32, pid: i32) -> Identity {
    let user = uzers::get_user_by_uid(uid);
    // An owner the user database does not know gets no group at all.
    let gid = user.as_ref().map(|u| u.primary_group_id()).unwrap_or(65534);
    let groups = user
        .as_ref()
        .and_then(|u| uzers::get_user_groups(u.name(), gid))
        .map(|gs| gs.iter().map(|g| g.gid()).collect())
        .unwrap_or_default();
    let name = user_name(uid);
    let mut trust: std::collections::BTreeMap<&'static str, Trust> =
        TRUST_FIELDS.iter().map(|f| (*f, Trust::Claimed)).collect();
    trust.insert("uid", Trust::Verified);
    trust.insert("euid", Trust::Verified);
    Identity {
        key: next_key(),
        pid,
        uid,
        euid: uid,
        gid,
        user: name.clone(),
        chain: vec![name],
        trust,
        groups,
        ..Default::default()
    }
}

/// Process `pid` exists and runs as `uid` (real or effective).
fn alive_as(pid: i32, uid: u32) -> bool {
    if pid <= 0 {
        return false;
    }
    std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|md| md.uid() == uid)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use filetrail_wire::{SnapState, Snapshot, WirePath};

    use super::*;

    struct Place {
        dir: tempfile::TempDir,
        replay: Replay,
    }

    impl Place {
        fn new() -> Place {
            Place::with_quota(crate::config::Config::default().quota)
        }
        fn with_quota(quota: crate::config::Quota) -> Place {
            let dir = tempfile::tempdir().unwrap();
            let track = dir.path().join("track");
            std::fs::create_dir(&track).unwrap();
            std::fs::create_dir(dir.path().join("spool")).unwrap();
            let config = Config { track: vec![track.display().to_string()], quota, ..Config::default() };
            let secrets = Arc::new(Secrets::new(config.redactions().unwrap(), Default::default()));
            let quotas = Arc::new(Quotas::new(config.quota));
            let replay = Replay::new(&dir.path().join("db").join("t.db"), &config, secrets, quotas).unwrap();
            Place { dir, replay }
        }
        fn spool(&self) -> PathBuf {
            self.dir.path().join("spool")
        }
        fn track(&self, name: &str) -> Vec<u8> {
            self.dir.path().join("track").join(name).into_os_string().into_encoded_bytes()
        }
        /// Writes a spool file of these frames (0600) and returns its path.
        fn file(&self, name: &str, frames: &[(ClientMsg, &[u8])]) -> PathBuf {
            let path = self.spool().join(name);
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
            for (msg, payload) in frames {
                write_frame(&mut f, msg, &[payload]).unwrap();
            }
            path
        }
        fn count(&self, sql: &str) -> i64 {
            self.replay.store.conn().query_row(sql, [], |r| r.get(0)).unwrap()
        }
    }

    fn create(path: Vec<u8>, content: &'static [u8]) -> [(ClientMsg, &'static [u8]); 4] {
        let n = content.len() as u64;
        let after = Snapshot { state: SnapState::Stored, len: n, size: Some(n), ..Snapshot::absent() };
        let begin = ClientMsg::Begin {
            seq: 0,
            token: 1,
            path: WirePath(path),
            named: None,
            file: None,
            flags: libc::O_WRONLY | libc::O_CREAT,
            before: Snapshot::absent(),
        };
        [
            (ClientMsg::Clock { time_us: 1_700_000_000_000_000 }, b""),
            (begin, b""),
            (ClientMsg::Clock { time_us: 1_700_000_000_500_000 }, b""),
            (ClientMsg::Close { seq: 0, token: 1, after, shared: false }, content),
        ]
    }

    const HELLO: (ClientMsg, &[u8]) = (ClientMsg::Hello { version: 1, image: 0, start: 0 }, b"");

    #[test]
    fn a_replayed_version_keeps_its_time_and_the_file_goes() {
        let mut p = Place::new();
        let [c1, b, c2, close] = create(p.track("a"), b"one\n");
        let file = p.file("10.1.ftspool", &[HELLO, c1, b, c2, close]);
        p.replay.dir(&p.spool());
        assert!(!file.exists());
        assert_eq!(p.count("SELECT count(*) FROM versions WHERE time_us = 1700000000500000"), 1);
        assert_eq!(p.count("SELECT pid FROM writers"), 10);
    }

    /// The events of `create`, numbered from `first` as the library does.
    fn numbered(frames: [(ClientMsg, &'static [u8]); 4], first: u64) -> Vec<(ClientMsg, &'static [u8])> {
        let mut seq = first;
        frames
            .into_iter()
            .map(|(mut msg, payload)| {
                if matches!(msg, ClientMsg::Begin { .. } | ClientMsg::Close { .. }) {
                    msg.set_seq(seq);
                    seq += 1;
                }
                (msg, payload)
            })
            .collect()
    }

    #[test]
    fn a_replay_of_stored_versions_costs_no_quota_and_new_ones_cost_once() {
        // Two versions a minute: `a` once, then `b`.
        let mut p = Place::with_quota(crate::config::Quota { versions_per_minute: 2, bytes_per_day: 1 << 30 });
        let hello = (ClientMsg::Hello { version: 2, image: 99, start: 1234 }, &b""[..]);
        let a = numbered(create(p.track("a"), b"one\n"), 1);
        let b = numbered(create(p.track("b"), b"two\n"), 3);
        // The process delivered `a` (stored: that charged it) ...
        p.file("20.1.ftspool", &[vec![hello.clone()], a.clone()].concat());
        p.replay.dir(&p.spool());
        // ... and its spool holds `a` again (never acknowledged), then `b`.
        p.file("20.2.ftspool", &[vec![hello], a, b].concat());
        p.replay.dir(&p.spool());
        assert_eq!(p.count("SELECT count(*) FROM versions"), 2, "a once, b once");
        assert_eq!(p.count("SELECT count(*) FROM versions WHERE after_state = 'stored'"), 2, "b within the quota");
        // A third version is over it: recorded, without content.
        let c = numbered(create(p.track("c"), b"three\n"), 5);
        let hello = (ClientMsg::Hello { version: 2, image: 99, start: 1234 }, &b""[..]);
        p.file("20.3.ftspool", &[vec![hello], c].concat());
        p.replay.dir(&p.spool());
        assert_eq!(p.count("SELECT count(*) FROM versions WHERE after_state = 'quota'"), 1);
    }

    #[test]
    fn a_locked_or_empty_file_waits() {
        let mut p = Place::new();
        let [c1, b, c2, close] = create(p.track("a"), b"one\n");
        let file = p.file("11.1.ftspool", &[HELLO, c1, b, c2, close]);
        let empty = p.file("12.1.ftspool", &[]);
        let held = std::fs::File::open(&file).unwrap();
        rustix::fs::flock(&held, FlockOperation::LockExclusive).unwrap();
        p.replay.dir(&p.spool());
        assert!(file.exists() && empty.exists());
        assert_eq!(p.count("SELECT count(*) FROM versions"), 0);
        drop(held);
        p.replay.dir(&p.spool());
        assert!(!file.exists() && empty.exists());
        assert_eq!(p.count("SELECT count(*) FROM versions"), 1);
    }

    #[test]
    fn a_cut_off_frame_keeps_what_came_before_and_leaves_a_gap() {
        let mut p = Place::new();
        let [c1, b, c2, close] = create(p.track("a"), b"one\n");
        let lost = (ClientMsg::Lost { versions: 4, bytes: 40 }, &b""[..]);
        let [d1, _, _, _] = create(p.track("b"), b"two\n");
        let file = p.file("13.1.ftspool", &[HELLO, c1, b, c2, close, lost, d1]);
        // The writer died in the middle of its next frame.
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
        p.replay.dir(&p.spool());
        assert!(!file.exists());
        assert_eq!(p.count("SELECT count(*) FROM versions"), 1);
        assert_eq!(p.count("SELECT versions FROM gaps WHERE what = 'lost_in_library'"), 4);
        assert_eq!(p.count("SELECT count(*) FROM gaps WHERE what = 'spool_truncated'"), 1);
    }

    #[test]
    fn a_file_others_may_write_or_without_hello_is_moved_aside() {
        let mut p = Place::new();
        let [c1, b, c2, close] = create(p.track("a"), b"one\n");
        let open = p.file("14.1.ftspool", &[HELLO, c1.clone(), b.clone(), c2.clone(), close.clone()]);
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o622)).unwrap();
        p.file("15.1.ftspool", &[c1, b, c2, close]);
        p.replay.dir(&p.spool());
        assert!(p.spool().join("14.1.ftspool.bad").exists());
        assert!(p.spool().join("15.1.ftspool.bad").exists());
        assert_eq!(p.count("SELECT count(*) FROM versions"), 0);
        assert_eq!(p.count("SELECT count(*) FROM gaps WHERE what = 'spool_malformed'"), 1);
    }

    #[test]
    fn the_writer_is_the_owner_and_nothing_else_is_verified() {
        let who = writer(0, 77);
        assert_eq!((who.uid, who.euid, who.gid, who.pid), (0, 0, 0, 77));
        assert_eq!(who.trust["uid"], Trust::Verified);
        assert_eq!(who.trust["euid"], Trust::Verified);
        for f in TRUST_FIELDS.iter().filter(|f| !["uid", "euid"].contains(f)) {
            assert_eq!(who.trust[f], Trust::Claimed, "{f}");
        }
        // An owner the user database does not know: no group at all.
        let nobody = writer(4_000_000_000, 1);
        assert_eq!((nobody.gid, nobody.groups.len()), (65534, 0));
    }
}
