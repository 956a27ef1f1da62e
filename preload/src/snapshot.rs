//! Reading what a path holds, for the before and after of a version.
//!
//! Invariants: never blocks (FIFOs and devices are opened non-blocking and
//! never read), never holds more than `max_size` bytes (larger files are
//! hashed in fixed chunks), and `consistent` only when the bytes were the
//! file's content at one instant (`filetrail_wire::atomic`: a read lease
//! when the process may take one, else the collector's lease as a
//! [`Witness`], two equal reads where no lease exists). Reads use `O_NOATIME` where
//! the kernel permits, so snapshots do not move access times.

use std::ffi::{CStr, CString};

use filetrail_wire::atomic::{self, Content, Lease, Outcome, Witness};
use filetrail_wire::{Meta, SnapState, Snapshot};
use sha2::{Digest, Sha256};

use crate::sys;

/// A snapshot header and the bytes it carries (empty unless `Stored`).
pub struct Snap {
    pub head: Snapshot,
    pub bytes: Vec<u8>,
    /// The path's final component was a symlink (followed).
    pub via_symlink: bool,
}

impl Snap {
    fn new(head: Snapshot) -> Snap {
        Snap { head, bytes: Vec::new(), via_symlink: false }
    }
}

/// Whether a final symlink in the path is followed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// What a write through this name changes (`open`, `truncate`).
    Yes,
    /// What the name itself is (`rename`, `unlink` act on a symlink, not
    /// its target): a symlink reads as `NotRegular`.
    No,
}

/// What `path` holds now; `witness` vouches when this process may not
/// lease the file.
pub fn of_path(path: &[u8], max_size: u64, follow: Follow, witness: &mut dyn Witness) -> Snap {
    let Ok(cpath) = CString::new(path) else { return unreadable() };
    Reopened(open_cpath(&cpath, follow)).read_with(max_size, Lease::Try, witness)
}

/// What open descriptor `fd` of this process refers to now (even when the
/// descriptor is write-only or its path was renamed). No lease: the process
/// itself still holds it open for writing (a `close_range` or `dup2` over
/// it ends the open before the descriptor goes), which the kernel refuses a
/// lease for; two reads decide.
pub fn of_fd(fd: i32, max_size: u64) -> Snap {
    Reopened::of(fd).read_with(max_size, Lease::Never, &mut ())
}

/// What descriptor `fd` refers to, opened anew read-only so that it can be
/// read after the program's `close`: with no write descriptor of this
/// process left, a lease is possible and proves the after (a writer
/// elsewhere, a writable mapping included, then shows).
pub struct Reopened(Result<(sys::Fd, bool), Box<Snap>>);

impl Reopened {
    pub fn of(fd: i32) -> Reopened {
        let Ok(link) = CString::new(format!("/proc/self/fd/{fd}")) else {
            return Reopened(Err(Box::new(unreadable())));
        };
        Reopened(open_cpath(&link, Follow::Yes))
    }

    /// What the file holds now.
    pub fn read(self, max_size: u64, witness: &mut dyn Witness) -> Snap {
        self.read_with(max_size, Lease::Try, witness)
    }

    fn read_with(self, max_size: u64, lease: Lease, witness: &mut dyn Witness) -> Snap {
        match self.0 {
            Ok((fd, via_symlink)) => Snap { via_symlink, ..read_fd(fd.raw(), max_size, lease, witness) },
            Err(snap) => *snap,
        }
    }
}

fn unreadable() -> Snap {
    Snap::new(Snapshot { state: SnapState::Unreadable, consistent: true, ..Default::default() })
}

/// `path` opened read-only (and whether a final symlink was followed), or
/// the snapshot that says why not.
fn open_cpath(path: &CStr, follow: Follow) -> Result<(sys::Fd, bool), Box<Snap>> {
    let base = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    let open = |flags| match sys::openat(libc::AT_FDCWD, path, flags | libc::O_NOATIME) {
        Err(libc::EPERM) => sys::openat(libc::AT_FDCWD, path, flags),
        other => other,
    };
    // Always try without following first: that is how a symlink is noticed
    // (only then is the resolved path worth asking for).
    let mut via_symlink = false;
    let fd = match open(base | libc::O_NOFOLLOW) {
        Err(libc::ELOOP) if follow == Follow::Yes => {
            via_symlink = true;
            open(base)
        }
        other => other,
    };
    match fd {
        Ok(fd) => Ok((fd, via_symlink)),
        Err(libc::ENOENT) | Err(libc::ENOTDIR) => Err(Box::new(Snap::new(Snapshot::absent()))),
        Err(libc::ELOOP) => Err(Box::new(not_regular(None))),
        // Exists but unreadable to this process (or vanished): say which we can.
        Err(_) => Err(Box::new(match sys::fstatat(libc::AT_FDCWD, path, 0) {
            Ok(st) => Snap::new(Snapshot {
                state: SnapState::Unreadable,
                size: Some(st.st_size as u64),
                meta: Some(meta(&st)),
                consistent: true,
                ..Default::default()
            }),
            Err(_) => Snap::new(Snapshot::absent()),
        })),
    }
}

fn not_regular(meta: Option<Meta>) -> Snap {
    Snap::new(Snapshot { state: SnapState::NotRegular, meta, consistent: true, ..Default::default() })
}

pub fn meta(st: &libc::stat) -> Meta {
    Meta::of(st)
}

fn read_fd(fd: i32, max_size: u64, lease: Lease, witness: &mut dyn Witness) -> Snap {
    let r = match atomic::read(fd, max_size, lease, witness) {
        Ok(Outcome::Read(r)) => r,
        Ok(Outcome::NotRegular(st)) => return not_regular(Some(meta(&st))),
        Err(_) => return unreadable(),
    };
    let (state, bytes, sha256) = match r.content {
        Content::Bytes(bytes) => (SnapState::Stored, bytes, None),
        Content::Sha256(digest) => (SnapState::HashOnly, Vec::new(), Some(hex::encode(digest))),
    };
    let head = Snapshot {
        state,
        len: bytes.len() as u64,
        size: Some(r.len),
        sha256,
        meta: Some(meta(&r.stat)),
        consistent: r.consistent,
    };
    Snap { head, bytes, via_symlink: false }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpfile(content: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("ft-snap-{}-{}", std::process::id(), content.len()));
        std::fs::write(&dir, content).unwrap();
        let bytes = dir.as_os_str().as_encoded_bytes().to_vec();
        (dir, bytes)
    }

    #[test]
    fn stores_small_files_exactly() {
        let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let (p, b) = tmpfile(&content);
        let s = of_path(&b, 4096, Follow::Yes, &mut ());
        assert_eq!(s.head.state, SnapState::Stored);
        assert_eq!(s.bytes, content);
        assert_eq!(s.head.len, 1000);
        assert!(s.head.consistent);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn large_files_are_hashed_not_held() {
        let (p, b) = tmpfile(b"abc");
        let s = of_path(&b, 2, Follow::Yes, &mut ());
        assert_eq!(s.head.state, SnapState::HashOnly);
        assert!(s.bytes.is_empty());
        assert_eq!(s.head.sha256.as_deref(), Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn missing_and_special_files() {
        assert_eq!(of_path(b"/nonexistent/x", 10, Follow::Yes, &mut ()).head.state, SnapState::Absent);
        assert_eq!(of_path(b"/dev/null", 10, Follow::Yes, &mut ()).head.state, SnapState::NotRegular);
    }

    #[test]
    fn symlinks_follow_only_when_asked() {
        let (p, b) = tmpfile(b"target");
        let link = std::env::temp_dir().join(format!("ft-snap-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let lb = link.as_os_str().as_encoded_bytes();
        assert_eq!(of_path(lb, 100, Follow::Yes, &mut ()).bytes, b"target");
        assert_eq!(of_path(lb, 100, Follow::No, &mut ()).head.state, SnapState::NotRegular);
        let _ = b;
        std::fs::remove_file(link).unwrap();
        std::fs::remove_file(p).unwrap();
    }
}
