//! Could this writer have made this change? Every version is checked
//! before it is stored, so no user can forge history for files that are not
//! theirs, or for paths the collector does not track.
//!
//! - **Scope** (text only): `path`, `old_path`, `named_path` and `via` are absolute
//!   and canonical (`wire::path::canonical`); `path` is tracked, or the
//!   version is a rename whose `old_path` is (a tracked file renamed away).
//! - **Permission** (asked of the kernel, as the writer: [`crate::asuser`]):
//!   a change of `path` is plausible when the writer may write the file
//!   itself, or may replace it in its directory: write and search on the
//!   directory and, in a sticky directory, owning the file or the directory
//!   when the file exists. A rename also needs that on `old_path`'s
//!   directory, a write via a temp file on `via`'s. Search permission on every parent is part of the kernel's
//!   check. An `attrib` (mode or owner) needs what `chmod` needs: the
//!   writer owns the file. Root (euid 0) may do anything.
//! - `named_path` (the name a program used when a symlink led to `path`) is
//!   only a detail: it is kept when, as the writer, it still leads to the
//!   same file, and dropped otherwise.
//!
//! The check runs after the change, so it sees the file system as it is
//! now: a file made writable and then locked again in between is refused
//! (a false negative, logged), never the reverse unless the writer really
//! had the permission at the time of the check.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use filetrail_wire::Policy;
use filetrail_wire::path::canonical;

use crate::asuser::{Creds, access, as_user, fsuid};
use crate::model::{Action, Draft};
use crate::who::Identity;

/// Why a version was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A path is not absolute and canonical.
    NotCanonical,
    /// Neither the path nor (for a rename) the old path is tracked.
    NotTracked,
    /// The writer could not have made this change.
    NotPermitted,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::NotCanonical => "a path is not absolute and canonical",
            Refused::NotTracked => "the path is not tracked",
            Refused::NotPermitted => "this process could not have written that path",
        }
    }
}

fn bytes_path(b: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(b))
}

/// Checks `draft` for `who`; drops a `named_path` that does not check out.
pub fn check(policy: &Policy, who: &Identity, draft: &mut Draft) -> Result<(), Refused> {
    let paths = [Some(&draft.path), draft.old_path.as_ref(), draft.named_path.as_ref(), draft.via.as_ref()];
    if !paths.into_iter().flatten().all(|p| canonical(p)) {
        return Err(Refused::NotCanonical);
    }
    let renamed_away = draft.old_path.as_deref().is_some_and(|o| policy.is_tracked(o));
    if !policy.is_tracked(&draft.path) && !renamed_away {
        return Err(Refused::NotTracked);
    }
    if who.euid == 0 {
        return Ok(());
    }
    let creds = Creds::of(who);
    let (permitted, named_ok) = as_user(&creds, || {
        let path = bytes_path(&draft.path);
        let path_ok = match draft.action {
            Action::Attrib => file_owned(path),
            _ => file_writable(path) || may_replace(path),
        };
        let old_ok = [&draft.old_path, &draft.via].into_iter().flatten().all(|o| may_replace(bytes_path(o)));
        let named_ok = draft.named_path.as_deref().is_none_or(|n| same_file(bytes_path(n), path));
        (path_ok && old_ok, named_ok)
    })
    .map_err(|_| Refused::NotPermitted)?;
    if !permitted {
        return Err(Refused::NotPermitted);
    }
    if !named_ok {
        draft.named_path = None;
    }
    Ok(())
}

/// `path` is a regular file the thread's credentials may write.
fn file_writable(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|md| md.is_file()) && access(path, libc::W_OK, false)
}

/// `path` is a regular file the thread's credentials reach and own (may
/// `chmod`/`chown`).
fn file_owned(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|md| md.is_file() && md.uid() == fsuid())
}

/// The thread's credentials may create, replace or remove `path` in its
/// directory.
fn may_replace(path: &Path) -> bool {
    let Some(dir) = path.parent() else { return false };
    if !access(dir, libc::W_OK | libc::X_OK, true) {
        return false;
    }
    let Ok(dir_md) = std::fs::metadata(dir) else { return false };
    if dir_md.mode() & libc::S_ISVTX == 0 {
        return true;
    }
    // Sticky (/tmp-like): an existing entry belongs to its owner and to the
    // directory's owner only.
    match std::fs::symlink_metadata(path) {
        Ok(md) => md.uid() == fsuid() || dir_md.uid() == fsuid(),
        Err(_) => true,
    }
}

/// `named` leads (following symlinks) to the same file as `path`.
fn same_file(named: &Path, path: &Path) -> bool {
    match (std::fs::metadata(named), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Side;
    use std::os::unix::fs::PermissionsExt;

    fn who(euid: u32, groups: Vec<u32>) -> Identity {
        Identity { euid, uid: euid, gid: groups.first().copied().unwrap_or(euid), groups, ..Default::default() }
    }

    fn draft(path: &Path) -> Draft {
        Draft::new(
            path.as_os_str().as_bytes().to_vec(),
            Action::Write,
            None,
            Some(Side::from_bytes(vec![1], None, true)),
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    fn policy(root: &Path) -> Policy {
        Policy::new(&[root.to_str().unwrap()], &["*~"], 1 << 20).unwrap()
    }

    fn ok(p: &Policy, who: &Identity, path: &Path) -> bool {
        check(p, who, &mut draft(path)).is_ok()
    }

    fn root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn scope_canonical_tracked_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let me = who(0, vec![0]);
        assert!(ok(&p, &me, &dir.path().join("f")));
        assert_eq!(check(&p, &me, &mut draft(Path::new("/elsewhere/f"))), Err(Refused::NotTracked));
        assert_eq!(check(&p, &me, &mut draft(&dir.path().join("f~"))), Err(Refused::NotTracked));
        let dotdot = dir.path().join("a/../f");
        assert_eq!(check(&p, &me, &mut draft(&dotdot)), Err(Refused::NotCanonical));
        // A tracked file renamed to an ignored name is in scope.
        let mut away = draft(&dir.path().join("f~"));
        away.old_path = Some(dir.path().join("f").as_os_str().as_bytes().to_vec());
        assert!(check(&p, &me, &mut away).is_ok());
    }

    #[test]
    fn root_owned_files_are_not_forgeable_by_others() {
        if !root() {
            return eprintln!("not root: skipped");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("shadow");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let alice = who(65534, vec![65534]);
        assert!(!ok(&p, &alice, &f));
        assert!(ok(&p, &who(0, vec![0]), &f));
        // group write on the file is enough
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(ok(&p, &who(65534, vec![0]), &f));
        // a world-writable directory allows creating and replacing
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ok(&p, &alice, &dir.path().join("new")));
        assert!(ok(&p, &alice, &f));
        // ... unless it is sticky: then only new names, or one's own files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(ok(&p, &alice, &dir.path().join("new")));
        assert!(!ok(&p, &alice, &f), "root's file in a sticky directory");
        // Without search permission on a parent nothing below is reachable.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ok(&p, &alice, &sub.join("x")));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(!ok(&p, &alice, &sub.join("x")));
    }

    #[test]
    fn a_mode_or_owner_change_needs_the_owner_or_root() {
        if !root() {
            return eprintln!("not root: skipped");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let attrib = |path: &Path| Draft { action: Action::Attrib, ..draft(path) };
        let (root_file, own) = (dir.path().join("root.conf"), dir.path().join("own.conf"));
        std::fs::write(&root_file, "x").unwrap();
        std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::write(&own, "x").unwrap();
        std::os::unix::fs::chown(&own, Some(65534), None).unwrap();
        let alice = who(65534, vec![65534]);
        // She may write root's file, not chmod it; her own file, both.
        assert!(ok(&p, &alice, &root_file));
        assert_eq!(check(&p, &alice, &mut attrib(&root_file)), Err(Refused::NotPermitted));
        assert!(check(&p, &alice, &mut attrib(&own)).is_ok());
        assert!(check(&p, &who(0, vec![0]), &mut attrib(&root_file)).is_ok());
        assert_eq!(check(&p, &alice, &mut attrib(&dir.path().join("missing"))), Err(Refused::NotPermitted));
    }
}
