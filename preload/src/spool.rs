//! The spool: when no collector answers (none at connect, the connection
//! broke, or the process's time budget is spent), the process appends what
//! it would have sent to a spool file of its own, which the collector
//! replays when it runs again (`collector/src/spool.rs`). Names and places
//! are `filetrail_wire::spool`; the frames are the socket's, with a `Clock`
//! before each event and a `Lost` where events could not be spooled.
//!
//! Invariants:
//! - the directory is used only when it is owned by root or by this
//!   process's euid and, if others may write in it, sticky; the file is
//!   created `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, never through a symlink
//!   and never an existing file; the policy file is read only when owned by
//!   root or this euid and writable by nobody else;
//! - the file is locked (`flock`) for as long as the process lives (the
//!   lock goes with the descriptor, which is close-on-exec): the collector
//!   replays it once it can take the lock;
//! - nothing waits: a full disk or a refused write counts the event as
//!   lost (and writes a `Lost` frame when it can); a partly written frame
//!   is cut off again, so the file only ever holds whole frames;
//! - bounded per process: [`CONTENT_LIMIT`] bytes of content, then
//!   snapshots are written `hash_only` (the newest content goes first, never
//!   the fact that a version existed); [`FILE_LIMIT`] bytes of frames, then
//!   events are counted as lost; no content at all when the file system has
//!   less than [`MIN_FREE`] (and a twentieth of its size) free for users.
//!   The library cannot list the directory, so nothing bounds how many
//!   processes of one user spool: the free-space rule and the file system's
//!   own limits (quotas, root's reserved blocks) do.

use std::ffi::CString;
use std::io;

use filetrail_wire::{ClientMsg, PROTOCOL_VERSION, Policy, ServerMsg, SnapState, frame_prefix, read_frame, spool};
use sha2::{Digest, Sha256};

use crate::sys::{self, Errno, Fd};

/// Content bytes one spool file carries; beyond it snapshots are hash-only.
pub const CONTENT_LIMIT: u64 = 16 << 20;
/// Bytes of frames one spool file holds; beyond it events are lost (counted).
pub const FILE_LIMIT: u64 = 32 << 20;
/// Room after [`FILE_LIMIT`] for `Lost` frames only.
const LOST_ROOM: u64 = 1 << 20;
/// Below this much free space (for users) a spool file holds no content.
pub const MIN_FREE: u64 = 256 << 20;
/// The largest policy file read (one `Welcome` frame).
const MAX_POLICY: u64 = 64 << 10;

/// The bounds of one spool file (the constants above; smaller in tests).
#[derive(Clone, Copy)]
struct Limits {
    content: u64,
    file: u64,
}

/// This process's spool file, open and locked.
pub struct Spool {
    fd: Fd,
    name: String,
    /// Bytes in the file: all written by us, whole frames only.
    len: u64,
    /// Content bytes written.
    content: u64,
    limits: Limits,
    /// Lost events not yet recorded in a `Lost` frame.
    lost_versions: u64,
    lost_bytes: u64,
}

fn os_error(e: Errno) -> String {
    io::Error::from_raw_os_error(e).to_string()
}

/// The spool directory beside `socket`, if this process may use it.
fn open_dir(socket: &[u8]) -> Result<Fd, String> {
    let dir = spool::dir_of(socket);
    let shown = String::from_utf8_lossy(&dir).into_owned();
    let path = CString::new(dir).map_err(|_| "the socket path holds a NUL byte".to_string())?;
    // O_PATH: the directory is only searchable (1733), not readable.
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd =
        sys::openat(libc::AT_FDCWD, &path, flags).map_err(|e| format!("spool directory {shown}: {}", os_error(e)))?;
    let st = sys::fstat(fd.raw()).map_err(|e| format!("spool directory {shown}: {}", os_error(e)))?;
    let euid = sys::geteuid();
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(format!("spool directory {shown} is owned by uid {}, neither root nor uid {euid}", st.st_uid));
    }
    if st.st_mode & 0o002 != 0 && st.st_mode & libc::S_ISVTX == 0 {
        return Err(format!("spool directory {shown} is writable by others and not sticky"));
    }
    Ok(fd)
}

/// Reads a file from its start with `pread` (the library's own I/O).
struct FdReader<'a> {
    fd: &'a Fd,
    at: u64,
}

impl io::Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = sys::pread(self.fd.raw(), buf, self.at).map_err(io::Error::from_raw_os_error)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// What to track when no collector answers: the `Welcome` the collector
/// left in the spool directory beside `socket` when it started.
pub fn policy(socket: &[u8]) -> Result<Policy, String> {
    let dir = open_dir(socket)?;
    let name = CString::new(spool::POLICY_FILE).expect("no NUL");
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let fd = sys::openat(dir.raw(), &name, flags).map_err(|e| format!("spool policy: {}", os_error(e)))?;
    let st = sys::fstat(fd.raw()).map_err(|e| format!("spool policy: {}", os_error(e)))?;
    let euid = sys::geteuid();
    let trusted = st.st_uid == 0 || st.st_uid == euid;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || !trusted || st.st_mode & 0o022 != 0 {
        return Err("the spool policy is not a regular file owned by root (or us) and writable by no one else".into());
    }
    let frame = read_frame(&mut FdReader { fd: &fd, at: 0 }, 0).map_err(|e| format!("spool policy: {e}"))?;
    if frame.header.len() as u64 > MAX_POLICY {
        return Err("spool policy too large".into());
    }
    match frame.parse::<ServerMsg>() {
        Ok(ServerMsg::Welcome { track, ignore, max_size, .. }) => {
            Policy::new(&track, &ignore, max_size).map_err(|e| format!("spool policy: bad ignore glob: {e}"))
        }
        _ => Err("spool policy is not a Welcome".into()),
    }
}

/// This process's start time (`/proc/self/stat` field 22), 0 when unknown.
fn start_time() -> u64 {
    let stat = crate::snapshot::of_path(b"/proc/self/stat", 4096, crate::snapshot::Follow::Yes, &mut ()).bytes;
    let Some(end) = stat.iter().rposition(|&b| b == b')') else { return 0 };
    let rest = String::from_utf8_lossy(&stat[end + 1..]).into_owned();
    rest.split_whitespace().nth(19).and_then(|f| f.parse().ok()).unwrap_or(0)
}

impl Spool {
    /// Creates, locks and starts (`Hello`) process `pid`'s spool file in the
    /// spool directory beside `socket`.
    pub fn create(socket: &[u8], pid: i32) -> Result<Spool, String> {
        Self::create_with(socket, pid, Limits { content: CONTENT_LIMIT, file: FILE_LIMIT })
    }

    fn create_with(socket: &[u8], pid: i32, mut limits: Limits) -> Result<Spool, String> {
        let dir = open_dir(socket)?;
        let (free, total) = sys::fs_space(dir.raw()).unwrap_or((0, 0));
        if free < MIN_FREE || free < total / 20 {
            limits.content = 0;
        }
        let flags = libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOFOLLOW
            | libc::O_APPEND
            | libc::O_NONBLOCK
            | libc::O_NOCTTY
            | libc::O_CLOEXEC;
        let mut nanos = sys::realtime_ns();
        let (fd, name) = loop {
            let name = spool::file_name(pid, nanos);
            let path = CString::new(name.clone()).expect("no NUL");
            match sys::create_at(dir.raw(), &path, flags, 0o600) {
                Ok(fd) => break (fd, name),
                Err(libc::EEXIST) if nanos % 16 != 15 => nanos += 1,
                Err(e) => return Err(format!("cannot create a spool file: {}", os_error(e))),
            }
        };
        // The file is empty until locked: the collector leaves empty files alone.
        sys::flock(fd.raw(), libc::LOCK_EX | libc::LOCK_NB)
            .map_err(|e| format!("cannot lock spool file {name}: {}", os_error(e)))?;
        let mut s = Spool { fd, name, len: 0, content: 0, limits, lost_versions: 0, lost_bytes: 0 };
        let hello = frame_prefix(
            &ClientMsg::Hello { version: PROTOCOL_VERSION, image: crate::client::image(), start: start_time() },
            &[],
        )
        .map_err(|e| e.to_string())?;
        s.write(&[&hello]).map_err(|e| format!("cannot write spool file {}: {}", s.name, os_error(e)))?;
        Ok(s)
    }

    /// The file's name in the spool directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events lost so far and not yet recorded in the file.
    #[cfg(test)]
    fn unrecorded_losses(&self) -> u64 {
        self.lost_versions
    }

    /// Appends one event (as it would have been sent) after a `Clock`.
    pub fn append(&mut self, msg: &ClientMsg, payload: &[&[u8]]) {
        let bytes: u64 = payload.iter().map(|p| p.len() as u64).sum();
        if self.lost_versions > 0 {
            self.record_losses();
        }
        let hashed;
        let (msg, payload) = if bytes > 0 && self.content.saturating_add(bytes) > self.limits.content {
            hashed = hash_only(msg, payload);
            (&hashed, &[][..])
        } else {
            (msg, payload)
        };
        let time_us = (sys::realtime_ns() / 1000) as i64;
        let (Ok(clock), Ok(head)) = (frame_prefix(&ClientMsg::Clock { time_us }, &[]), frame_prefix(msg, payload))
        else {
            return self.lose(bytes);
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(payload.len() + 2);
        parts.push(&clock);
        parts.push(&head);
        parts.extend_from_slice(payload);
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if self.len + size > self.limits.file || self.write(&parts).is_err() {
            return self.lose(bytes);
        }
        self.content += payload.iter().map(|p| p.len() as u64).sum::<u64>();
    }

    /// Events lost before this file existed (not yet reported): recorded
    /// in a `Lost` frame like those lost here.
    pub fn lost_before(&mut self, events: u64) {
        if events > 0 {
            self.lost_versions += events;
            self.record_losses();
        }
    }

    fn lose(&mut self, bytes: u64) {
        self.lost_versions += 1;
        self.lost_bytes += bytes;
        self.record_losses();
    }

    /// Writes the pending losses as one `Lost` frame, if there is room.
    fn record_losses(&mut self) {
        let lost = ClientMsg::Lost { versions: self.lost_versions, bytes: self.lost_bytes };
        let Ok(frame) = frame_prefix(&lost, &[]) else { return };
        if self.len + frame.len() as u64 <= self.limits.file + LOST_ROOM && self.write(&[&frame]).is_ok() {
            self.lost_versions = 0;
            self.lost_bytes = 0;
        }
    }

    /// Appends whole frames, or nothing: a partial write is cut off again.
    fn write(&mut self, parts: &[&[u8]]) -> Result<(), Errno> {
        match sys::write_parts(self.fd.raw(), parts) {
            Ok(()) => {
                self.len += parts.iter().map(|p| p.len() as u64).sum::<u64>();
                Ok(())
            }
            Err(e) => {
                let _ = sys::ftruncate(self.fd.raw(), self.len);
                Err(e)
            }
        }
    }
}

/// `msg` with its stored snapshots replaced by their size and hash.
fn hash_only(msg: &ClientMsg, payload: &[&[u8]]) -> ClientMsg {
    let mut msg = msg.clone();
    let mut parts = payload.iter();
    for snap in msg.snapshots_mut().into_iter().filter(|s| s.state == SnapState::Stored) {
        let bytes = parts.next().copied().unwrap_or_default();
        snap.state = SnapState::HashOnly;
        snap.len = 0;
        snap.size = Some(bytes.len() as u64);
        snap.sha256 = Some(Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect());
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    use filetrail_wire::{FrameError, Snapshot};

    use super::*;

    /// A socket path in a fresh directory with a spool directory beside it.
    fn place(mode: u32) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(mode)).unwrap();
        let socket = dir.path().join("collector.sock").into_os_string().into_encoded_bytes();
        (dir, socket)
    }

    fn close_msg(n: usize) -> (ClientMsg, Vec<u8>) {
        let after = Snapshot { state: SnapState::Stored, len: n as u64, size: Some(n as u64), ..Snapshot::absent() };
        (ClientMsg::Close { seq: 0, token: 1, after, shared: false }, vec![b'x'; n])
    }

    /// The frames of the only spool file in `dir/spool`.
    fn frames(dir: &Path) -> Vec<(ClientMsg, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".ftspool"))
            .collect();
        assert_eq!(files.len(), 1);
        let bytes = std::fs::read(files.pop().unwrap()).unwrap();
        let mut r = &bytes[..];
        let mut out = Vec::new();
        loop {
            match read_frame(&mut r, u64::MAX) {
                Ok(f) => out.push((f.parse().unwrap(), f.payload)),
                Err(FrameError::Eof) => return out,
                Err(e) => panic!("bad frame: {e}"),
            }
        }
    }

    #[test]
    fn frames_are_the_sockets_with_a_clock_before_each_event() {
        let (dir, socket) = place(0o1733);
        let mut s = Spool::create(&socket, 42).unwrap();
        assert!(s.name().starts_with("42.") && s.name().ends_with(".ftspool"));
        let (msg, content) = close_msg(5);
        s.append(&msg, &[&content]);
        let f = frames(dir.path());
        assert_eq!(f.len(), 3);
        assert!(matches!(f[0].0, ClientMsg::Hello { version: PROTOCOL_VERSION, .. }));
        assert!(matches!(f[1].0, ClientMsg::Clock { time_us } if time_us > 1_600_000_000_000_000));
        assert_eq!((&f[2].0, &f[2].1), (&msg, &content));
        let md = std::fs::metadata(dir.path().join("spool").join(s.name())).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(md.uid(), sys::geteuid());
    }

    #[test]
    fn the_file_is_locked_while_the_spool_lives() {
        let (dir, socket) = place(0o1733);
        let s = Spool::create(&socket, 7).unwrap();
        let path = CString::new(dir.path().join("spool").join(s.name()).into_os_string().into_encoded_bytes()).unwrap();
        let other = sys::openat(libc::AT_FDCWD, &path, libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
        assert_eq!(sys::flock(other.raw(), libc::LOCK_EX | libc::LOCK_NB), Err(libc::EWOULDBLOCK));
        drop(s);
        assert_eq!(sys::flock(other.raw(), libc::LOCK_EX | libc::LOCK_NB), Ok(()));
    }

    #[test]
    fn over_the_content_limit_the_fact_stays_and_the_bytes_go() {
        let (dir, socket) = place(0o1733);
        let mut s = Spool::create_with(&socket, 1, Limits { content: 10, file: 1 << 20 }).unwrap();
        let (small, a) = close_msg(6);
        let (big, b) = close_msg(6);
        s.append(&small, &[&a]);
        s.append(&big, &[&b]); // 12 > 10: hash only
        let f = frames(dir.path());
        assert_eq!(f[2].1, a);
        let ClientMsg::Close { after, .. } = &f[4].0 else { panic!("{:?}", f[4]) };
        assert_eq!(after.state, SnapState::HashOnly);
        assert_eq!((after.len, after.size), (0, Some(6)));
        let want: String = Sha256::digest(&b).iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(after.sha256.as_deref(), Some(want.as_str()));
        assert!(f[4].1.is_empty());
    }

    #[test]
    fn over_the_file_limit_events_are_counted_as_lost() {
        let (dir, socket) = place(0o1733);
        let mut s = Spool::create_with(&socket, 1, Limits { content: 1 << 20, file: 400 }).unwrap();
        for _ in 0..20 {
            let (msg, c) = close_msg(50);
            s.append(&msg, &[&c]);
        }
        assert_eq!(s.unrecorded_losses(), 0);
        let f = frames(dir.path());
        let kept = f.iter().filter(|(m, _)| matches!(m, ClientMsg::Close { .. })).count() as u64;
        let (lost, bytes) = f.iter().fold((0, 0), |(v, b), (m, _)| match m {
            ClientMsg::Lost { versions, bytes } => (v + versions, b + bytes),
            _ => (v, b),
        });
        assert!(kept > 0 && lost > 0, "{kept} kept, {lost} lost");
        assert_eq!((kept + lost, bytes), (20, lost * 50));
        let len = std::fs::metadata(dir.path().join("spool").join(s.name())).unwrap().len();
        assert!(len <= 400 + LOST_ROOM);
    }

    #[test]
    fn a_directory_others_control_is_not_used() {
        // Writable by all and not sticky: others could swap our file.
        let (_dir, socket) = place(0o777);
        assert!(Spool::create(&socket, 1).err().unwrap().contains("not sticky"));
        // No spool directory at all (no collector ever ran there).
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("c.sock").into_os_string().into_encoded_bytes();
        assert!(Spool::create(&socket, 1).is_err());
        assert!(policy(&socket).is_err());
    }

    #[test]
    fn the_policy_is_read_only_from_a_trusted_regular_file() {
        let (dir, socket) = place(0o1733);
        let file = dir.path().join("spool").join(spool::POLICY_FILE);
        let welcome = ServerMsg::Welcome { version: 1, track: vec!["/srv".into()], ignore: vec![], max_size: 9 };
        let mut bytes = Vec::new();
        filetrail_wire::write_frame(&mut bytes, &welcome, &[]).unwrap();
        std::fs::write(&file, &bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = policy(&socket).unwrap();
        assert!(p.is_tracked(b"/srv/a") && !p.is_tracked(b"/etc/a"));
        assert_eq!(p.max_size, 9);
        // Writable by others: anyone could have written it.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(policy(&socket).is_err());
        // A symlink to a good policy is not followed.
        let good = dir.path().join("good");
        std::fs::write(&good, &bytes).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&good, &file).unwrap();
        assert!(policy(&socket).is_err());
    }
}
