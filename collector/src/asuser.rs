//! Acting as the writer. The collector runs as root, but every file-system
//! operation it makes on a writer's behalf — "could this process have
//! changed that path?" and reading a file to finish a version — runs with
//! that writer's file-system credentials, so the kernel itself decides, with
//! every rule it applies (search permission on each parent, ACLs, sticky
//! directories, read-only mounts), and no user can make root read or vouch
//! for something they could not reach themselves.
//!
//! Linux keeps credentials per thread; the raw `setfsuid`/`setfsgid`/
//! `setgroups` system calls change only the calling thread (glibc's wrappers
//! would change every thread of the collector). Changing the fsuid away from
//! 0 drops the file-system capabilities (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`,
//! ...) from the thread's effective set; changing it back raises them again.
//! [`as_user`] switches, runs one closure and switches back, also when the
//! closure panics. The credentials are the ones the kernel fixed at
//! `connect()` (`SO_PEERCRED`, `SO_PEERGROUPS`), not what `/proc` says now.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::who::Identity;

/// File-system credentials of a writer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Creds {
    /// The credentials the kernel fixed for `who` at `connect()`.
    pub fn of(who: &Identity) -> Creds {
        Creds { uid: who.euid, gid: who.gid, groups: who.groups.clone() }
    }
}

/// Runs `f` on this thread with `creds` as its file-system identity.
/// `Err` when the switch is impossible (a collector that is not root can
/// act only as its own user).
pub fn as_user<T>(creds: &Creds, f: impl FnOnce() -> T) -> io::Result<T> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me == 0 && creds.uid == 0 {
        return Ok(f());
    }
    if me != 0 {
        return if creds.uid == me {
            Ok(f())
        } else {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "only a root collector can act as another user"))
        };
    }
    let _guard = Switched::enter(creds)?;
    Ok(f())
}

struct Switched {
    groups: Vec<libc::gid_t>,
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn set_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live slice; the raw system
    // call changes this thread's credentials only.
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// Sets this thread's fsuid and fsgid; verifies the fsuid took effect
/// (`setfsuid` reports no error, only the previous value).
fn set_fs_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain system calls on integers, for this thread only.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
        // An invalid id changes nothing and returns the current one.
        let now = libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32;
        let gnow = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
        if now != uid || gnow != gid {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "setfsuid/setfsgid did not take effect"));
        }
    }
    Ok(())
}

impl Switched {
    fn enter(creds: &Creds) -> io::Result<Switched> {
        // SAFETY: getgroups with a null buffer returns the count; then fills
        // a buffer of that size.
        let saved = unsafe {
            let n = check(libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<libc::gid_t>()))? as usize;
            let mut g = vec![0; n];
            let n = check(libc::syscall(libc::SYS_getgroups, n, g.as_mut_ptr()))? as usize;
            g.truncate(n);
            g
        };
        let guard = Switched { groups: saved };
        set_groups(&creds.groups)?;
        set_fs_ids(creds.uid, creds.gid)?;
        Ok(guard)
    }
}

impl Drop for Switched {
    fn drop(&mut self) {
        // Back to root. If this fails the thread must not go on as root's
        // stand-in for someone else, nor as someone else: give up.
        if set_fs_ids(0, 0).is_err() || set_groups(&self.groups).is_err() {
            tracing::error!("cannot restore the collector's credentials after acting as a writer; exiting");
            std::process::abort();
        }
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The kernel's access check with the thread's current (file-system)
/// credentials; a final symlink is followed only when `follow`. `mode`:
/// `libc::W_OK` etc.
pub fn access(path: &Path, mode: i32, follow: bool) -> bool {
    let Ok(c) = cpath(path) else { return false };
    // SAFETY: `c` is a NUL-terminated path; faccessat2 only reads it.
    // AT_EACCESS: check with the effective (file-system) ids, which are the
    // writer's inside `as_user`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            mode,
            libc::AT_EACCESS | if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW },
        )
    };
    r == 0
}

/// This thread's fsuid (the writer's, inside `as_user`).
pub fn fsuid() -> u32 {
    // SAFETY: an invalid id changes nothing and returns the current fsuid.
    unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn the_kernel_decides_as_the_writer_and_root_comes_back() {
        if !is_root() {
            return eprintln!("not root: skipped");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("root-only");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let nobody = Creds { uid: 65534, gid: 65534, groups: vec![] };
        assert!(access(&f, libc::W_OK, false), "root may");
        let (w, r, me) =
            as_user(&nobody, || (access(&f, libc::W_OK, false), std::fs::read(&f).is_ok(), fsuid())).unwrap();
        assert!(!w && !r, "nobody may neither write nor read a 0600 root file");
        assert_eq!(me, 65534);
        assert_eq!(fsuid(), 0, "back to root");
        assert!(std::fs::read(&f).is_ok());
        // Groups count: a group-writable file for a member of that group.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o660)).unwrap();
        let member = Creds { uid: 65534, gid: 65534, groups: vec![0] };
        assert!(as_user(&member, || access(&f, libc::W_OK, false)).unwrap());
        // Search permission on the parent is checked too.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!as_user(&member, || access(&f, libc::W_OK, false)).unwrap());
    }

    #[test]
    fn a_panic_inside_still_switches_back() {
        if !is_root() {
            return eprintln!("not root: skipped");
        }
        let nobody = Creds { uid: 65534, gid: 65534, groups: vec![] };
        let r = std::panic::catch_unwind(|| as_user(&nobody, || panic!("inside")));
        assert!(r.is_err());
        assert_eq!(fsuid(), 0);
    }
}
