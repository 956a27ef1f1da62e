//! Which collector serves a store. `collector serve` leaves `<db>.serving`
//! beside the store (its pid and the absolute path of its socket, JSON,
//! 0600, written to a temporary name and renamed) and removes it at a stop;
//! `collector restore` reports to that collector only, once the process
//! listening on that socket is shown by the kernel (`SO_PEERCRED`) to be
//! that pid, run by root or by us. A file left by a collector that was
//! killed names a socket nobody answers on, or another pid: no collector
//! serves the store then.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use filetrail_wire::WirePath;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `<db>.serving` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    pub pid: i32,
    pub socket: WirePath,
}

impl Serving {
    pub fn socket(&self) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(self.socket.as_bytes()))
    }
}

/// The serving file of the store at `db`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".serving");
    PathBuf::from(p)
}

/// Says that this process serves `db` on `socket`.
pub fn record(db: &Path, socket: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = std::path::absolute(socket).map_err(|e| Error::io("resolving the socket path", e))?;
    let me = Serving { pid: std::process::id() as i32, socket: WirePath(socket.as_os_str().as_bytes().to_vec()) };
    let path = path_for(db);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let what = || format!("writing {}", path.display());
    let write = || -> std::io::Result<()> {
        // A leftover of a crashed process that had our pid.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(&me).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(what(), e)
    })
}

/// Removes `db`'s serving file if it names this process.
pub fn clear(db: &Path) {
    if read(db).is_some_and(|s| s.pid == std::process::id() as i32) {
        let _ = std::fs::remove_file(path_for(db));
    }
}

/// What `db`'s serving file says, if it is there and trustworthy: a
/// regular file (not a symlink) owned by root or us, that only its owner
/// may write.
pub fn read(db: &Path) -> Option<Serving> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path_for(db)).ok()?;
    let md = f.metadata().ok()?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !md.is_file() || (md.uid() != 0 && md.uid() != euid) || md.mode() & 0o022 != 0 {
        return None;
    }
    serde_json::from_reader(std::io::Read::take(f, 64 * 1024)).ok()
}

/// A connection to the collector that serves `db`, verified (above); `None`
/// when none does.
pub fn connect(db: &Path) -> Option<(Serving, UnixStream)> {
    let serving = read(db)?;
    let stream = UnixStream::connect(serving.socket()).ok()?;
    let cred = crate::identity::peer_cred(&stream).ok()?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    (cred.pid == serving.pid && (cred.uid == 0 || cred.uid == euid)).then_some((serving, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_file_names_a_listener_only_while_it_is_that_process() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("trail.db");
        let socket = dir.path().join("s.sock");
        assert!(connect(&db).is_none());
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        record(&db, &socket).unwrap();
        let (serving, _stream) = connect(&db).expect("our own listener");
        assert_eq!(serving.socket(), socket);
        // Another pid in the file: the listener is not that collector.
        let other = Serving { pid: serving.pid + 1, ..serving };
        std::fs::write(path_for(&db), serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(connect(&db).is_none());
        clear(&db);
        assert!(path_for(&db).exists(), "another collector's file is left alone");
        record(&db, &socket).unwrap();
        clear(&db);
        assert!(!path_for(&db).exists());
    }
}
