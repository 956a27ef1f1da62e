//! What a stopping collector could not finish, handed to the next one.
//!
//! An open still held by a live process when the collector stops (a shell
//! that `exec`'d a program with a redirect, a process holding a log open)
//! has no after side yet: its finisher was waiting for processes to exit.
//! At a stop each such finisher [`keep`]s its opens here — the path, the
//! before side with its content, the writer's identity (credentials
//! included) and the processes it waited on (pid and start time) — and the
//! stopping collector [`write`]s them to `<db>.handoff` (0600, beside the
//! store, whose directory [`Store::open`](crate::store::Store::open) checked).
//! The next `collector serve` [`resume`]s them at start: it waits for those
//! processes if they still live (a pidfd, and the same start time, so a
//! reused pid is not mistaken for them), then reads each file with the
//! writer's credentials, exactly as the finisher would have.
//!
//! File format: one frame per finisher in the wire's frame layout; its
//! header is `{"record": N}`, and its payload is N bytes of JSON [`Record`]
//! followed by the before contents of its opens, in order.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use filetrail_wire::path::WirePath;
use filetrail_wire::{FrameError, Meta, read_frame, write_frame};
use serde::{Deserialize, Serialize};

use crate::assemble::Unfinished;
use crate::delivery::Origin;
use crate::error::{Error, Result};
use crate::identity;
use crate::intake::Intake;
use crate::model::{Side, Stored};
use crate::who::{Identity, TRUST_FIELDS, Trust};

/// The handoff file of the store at `db`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".handoff");
    PathBuf::from(p)
}

/// A process a finisher waited on: the pid and its start time name one
/// process for the life of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    /// The live process behind `pidfd`; `None` once it has exited.
    fn of(pidfd: &impl AsFd) -> Option<Proc> {
        let fd = pidfd.as_fd().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        let pid: i32 = info.lines().find_map(|l| l.strip_prefix("Pid:"))?.trim().parse().ok()?;
        let start = identity::start_time(pid)?;
        // Read before checking it still lives: the start time is its own.
        (pid > 0 && identity::is_alive(pidfd)).then_some(Proc { pid, start })
    }

    /// A pidfd for this very process, if it still runs.
    fn open(&self) -> Option<OwnedFd> {
        let fd = identity::pidfd_open(self.pid).ok()?;
        // The pidfd names whatever had the pid when it was opened: the same
        // start time afterwards says that was this process.
        (identity::start_time(self.pid) == Some(self.start) && identity::is_alive(&fd)).then_some(fd)
    }
}

/// The writer's identity, as the store and the finisher need it.
#[derive(Debug, Serialize, Deserialize)]
struct Who {
    pid: i32,
    uid: u32,
    euid: u32,
    gid: u32,
    groups: Vec<u32>,
    loginuid: Option<u32>,
    session: Option<u32>,
    user: String,
    chain: Vec<String>,
    exe: String,
    argv: Vec<String>,
    cwd: Option<String>,
    tty: Option<String>,
    sudo_user: Option<String>,
    ssh_client: Option<String>,
    host: Option<String>,
    /// Verified fields as [`crate::who::trust_bits`].
    trust: i64,
}

impl From<&Identity> for Who {
    fn from(w: &Identity) -> Who {
        Who {
            pid: w.pid,
            uid: w.uid,
            euid: w.euid,
            gid: w.gid,
            groups: w.groups.clone(),
            loginuid: w.loginuid,
            session: w.session,
            user: w.user.clone(),
            chain: w.chain.clone(),
            exe: w.exe.clone(),
            argv: w.argv.clone(),
            cwd: w.cwd.clone(),
            tty: w.tty.clone(),
            sudo_user: w.sudo_user.clone(),
            ssh_client: w.ssh_client.clone(),
            host: w.host.clone(),
            trust: crate::who::trust_bits(&w.trust),
        }
    }
}

impl Who {
    fn identity(self) -> Identity {
        let trust = TRUST_FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| (*f, if self.trust & (1 << i) != 0 { Trust::Verified } else { Trust::Claimed }))
            .collect();
        Identity {
            key: crate::who::next_key(),
            pid: self.pid,
            uid: self.uid,
            euid: self.euid,
            gid: self.gid,
            loginuid: self.loginuid,
            session: self.session,
            user: self.user,
            chain: self.chain,
            exe: self.exe,
            argv: self.argv,
            cwd: self.cwd,
            tty: self.tty,
            sudo_user: self.sudo_user,
            ssh_client: self.ssh_client,
            host: self.host,
            trust,
            groups: self.groups,
        }
    }
}

/// A before side; its content (`len` bytes) follows the record.
#[derive(Debug, Serialize, Deserialize)]
struct Before {
    sha256: Option<String>,
    size: u64,
    stored: String,
    meta: Option<Meta>,
    consistent: bool,
    /// Bytes of content in the payload (None: no content kept).
    len: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Open {
    /// The event the open's version is named after (0: none).
    #[serde(default)]
    seq: u64,
    path: WirePath,
    named: Option<WirePath>,
    file: Option<(u64, u64)>,
    before: Option<Before>,
}

/// One finisher's unfinished work.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    who: Who,
    /// (pid, start, image) of the writer's origin, so a library that sends
    /// the same open again to the next collector gets one version.
    #[serde(default)]
    origin: Option<(i32, u64, u64)>,
    writer: Option<Proc>,
    others: Vec<Proc>,
    opens: Vec<Open>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Head {
    record: u64,
}

/// Unfinished work kept for the handoff file.
struct Kept {
    record: Record,
    contents: Vec<Arc<Vec<u8>>>,
}

static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

/// A finisher's opens, kept for the next collector: the collector stops
/// while `writer` or some of `others` still live.
pub fn keep<F: AsFd>(
    writer: Option<&F>,
    others: &[F],
    opens: Vec<Unfinished>,
    who: &Identity,
    origin: Option<&Origin>,
) {
    let mut contents = Vec::new();
    let opens = opens
        .into_iter()
        .map(|u| Open {
            seq: u.seq,
            path: WirePath(u.path),
            named: u.named.map(WirePath),
            file: u.file,
            before: u.before.map(|s| {
                let len = s.bytes.as_ref().map(|b| b.len() as u64);
                contents.extend(s.bytes.clone());
                Before {
                    sha256: s.sha256,
                    size: s.size,
                    stored: s.stored.as_str().into(),
                    meta: s.meta,
                    consistent: s.consistent,
                    len,
                }
            }),
        })
        .collect();
    let record = Record {
        who: Who::from(who),
        origin: origin.map(|o| o.parts),
        writer: writer.and_then(Proc::of),
        others: others.iter().filter_map(Proc::of).collect(),
        opens,
    };
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(Kept { record, contents });
}

/// Writes what was kept to `path` (0600, replacing it atomically); removes
/// `path` when nothing was. Returns how many opens it holds.
pub fn write(path: &Path) -> Result<usize> {
    let kept = std::mem::take(&mut *KEPT.lock().unwrap_or_else(|e| e.into_inner()));
    let opens: usize = kept.iter().map(|k| k.record.opens.len()).sum();
    let io_err = |e| Error::io(format!("writing {}", path.display()), e);
    if kept.is_empty() {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(e)),
            _ => return Ok(0),
        }
    }
    let tmp = path.with_extension(format!("handoff.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io_err)?;
    let mut out = BufWriter::new(&file);
    for k in &kept {
        let record = serde_json::to_vec(&k.record).map_err(|e| io_err(std::io::Error::other(e)))?;
        let mut parts: Vec<&[u8]> = vec![&record];
        parts.extend(k.contents.iter().map(|c| c.as_slice()));
        write_frame(&mut out, &Head { record: record.len() as u64 }, &parts).map_err(io_err)?;
    }
    out.flush().map_err(io_err)?;
    drop(out);
    file.sync_all().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    Ok(opens)
}

/// Opens the handoff file if it is ours: a regular file (no symlink)
/// owned by this user, writable by no one else.
fn open_ours(path: &Path) -> Result<Option<File>> {
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    let md = file.metadata().map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !md.is_file() || md.uid() != me || md.mode() & 0o022 != 0 {
        return Err(Error::UnsafeStore(format!(
            "{} is not a regular file of ours writable only by us (mode {:o}, uid {}): not read; remove it",
            path.display(),
            md.mode() & 0o7777,
            md.uid()
        )));
    }
    Ok(Some(file))
}

/// Finishes what the previous collector handed off in `path`, then
/// removes it. Returns how many opens it took over.
pub fn resume(path: &Path, intake: &Arc<Intake>, max_size: u64) -> Result<usize> {
    let Some(file) = open_ours(path)? else { return Ok(0) };
    let mut reader = BufReader::new(file);
    let mut opens = 0;
    loop {
        let frame = match read_frame(&mut reader, u64::MAX) {
            Ok(f) => f,
            Err(FrameError::Eof) => break,
            Err(e) => {
                tracing::error!(file = %path.display(), "handoff file damaged, the rest of it is lost: {e}");
                break;
            }
        };
        match decode(&frame.header, frame.payload) {
            Some((record, unfinished)) => {
                opens += unfinished.len();
                let writer = record.writer.and_then(|p| p.open());
                let others = record.others.iter().filter_map(Proc::open).collect();
                let who = Arc::new(record.who.identity());
                let origin = record.origin.map(|(pid, start, image)| Origin::new(pid, start, image));
                crate::finisher::spawn(writer, others, unfinished, who, max_size, intake.clone(), (origin, None));
            }
            None => tracing::error!(file = %path.display(), "a record of the handoff file does not decode: skipped"),
        }
    }
    std::fs::remove_file(path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    Ok(opens)
}

fn decode(header: &[u8], payload: Vec<u8>) -> Option<(Record, Vec<Unfinished>)> {
    let head: Head = serde_json::from_slice(header).ok()?;
    let split = usize::try_from(head.record).ok().filter(|&n| n <= payload.len())?;
    let mut record: Record = serde_json::from_slice(&payload[..split]).ok()?;
    let mut rest = &payload[split..];
    let mut unfinished = Vec::new();
    for open in std::mem::take(&mut record.opens) {
        let before = match open.before {
            None => None,
            Some(b) => {
                let bytes = match b.len {
                    Some(len) => {
                        let len = usize::try_from(len).ok().filter(|&n| n <= rest.len())?;
                        let (bytes, tail) = rest.split_at(len);
                        rest = tail;
                        Some(Arc::new(bytes.to_vec()))
                    }
                    None => None,
                };
                let stored = match b.stored.as_str() {
                    "stored" => Stored::Stored,
                    "hash_only" => Stored::HashOnly,
                    "redacted" => Stored::Redacted,
                    _ => Stored::Unreadable,
                };
                // Stored content is hashed again, never taken from the file.
                Some(match bytes {
                    Some(bytes) if stored == Stored::Stored => {
                        Side::from_bytes(Arc::unwrap_or_clone(bytes), b.meta, b.consistent)
                    }
                    bytes => {
                        Side { sha256: b.sha256, size: b.size, stored, bytes, meta: b.meta, consistent: b.consistent }
                    }
                })
            }
        };
        unfinished.push(Unfinished {
            seq: open.seq,
            path: open.path.0,
            named: open.named.map(|n| n.0),
            file: open.file,
            before,
        });
    }
    Some((record, unfinished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("t.db"));
        let mut who =
            Identity { pid: 42, euid: 1000, user: "alice".into(), groups: vec![1000, 27], ..Default::default() };
        who.trust.insert("euid", Trust::Verified);
        who.argv = vec!["sh".into(), "-c".into(), "exec 3>f".into()];
        let open = |p: &str, before: Option<Side>| Unfinished {
            seq: 0,
            path: p.into(),
            named: None,
            file: Some((1, 2)),
            before,
        };
        let before = Side::from_bytes(b"old \xff content".to_vec(), None, true);
        let hashed = Side { bytes: None, stored: Stored::HashOnly, ..before.clone() };
        let opens =
            vec![open("/etc/a", Some(before.clone())), open("/etc/b\u{1}", None), open("/etc/c", Some(hashed.clone()))];
        keep::<OwnedFd>(None, &[], opens.clone(), &who, None);
        assert_eq!(write(&path).unwrap(), 3);
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);

        let frame = read_frame(&mut File::open(&path).unwrap(), u64::MAX).unwrap();
        let (record, back) = decode(&frame.header, frame.payload).unwrap();
        assert_eq!(back, opens);
        let id = record.who.identity();
        assert_eq!((id.pid, id.euid, id.groups, id.argv), (42, 1000, vec![1000, 27], who.argv.clone()));
        assert_eq!(id.trust["euid"], Trust::Verified);
        assert_eq!(id.trust["exe"], Trust::Claimed);

        // Nothing kept: the file goes.
        assert_eq!(write(&path).unwrap(), 0);
        assert!(!path.exists());
    }
}
