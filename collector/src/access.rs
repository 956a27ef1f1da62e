//! Could this writer have made this change? The collector checks every
//! version against the kernel-verified credentials of the process that
//! reported it, so no user can forge history for files that are not theirs.
//!
//! A change of `path` is plausible when the writer may write the file
//! itself, or may write the directory holding it (create, replace, delete).
//! A rename also needs the directory of `old_path`. Root may write anything.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::identity::Identity;
use crate::model::Draft;

const W: u32 = 0o2;
const WX: u32 = 0o3;

/// Whether `who` (euid + groups) has `want` (rwx bits as in `0o7`) on `md`.
fn permits(who: &Identity, md: &std::fs::Metadata, want: u32) -> bool {
    let mode = md.mode();
    let bits = if md.uid() == who.euid {
        (mode >> 6) & 0o7
    } else if who.groups.contains(&md.gid()) || md.gid() == who.gid {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    bits & want == want
}

fn parent_writable(who: &Identity, path: &Path) -> bool {
    path.parent().and_then(|p| std::fs::metadata(p).ok()).is_some_and(|md| md.is_dir() && permits(who, &md, WX))
}

fn bytes_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

/// True when `who` could have made `draft`'s change.
pub fn plausible(who: &Identity, draft: &Draft) -> bool {
    if who.euid == 0 {
        return true;
    }
    let path = bytes_path(&draft.path);
    let file_ok = std::fs::symlink_metadata(path).is_ok_and(|md| md.is_file() && permits(who, &md, W));
    let path_ok = file_ok || parent_writable(who, path);
    let old_ok = draft.old_path.as_deref().is_none_or(|old| parent_writable(who, bytes_path(old)));
    path_ok && old_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Side};
    use std::os::unix::fs::PermissionsExt;

    fn who(euid: u32, groups: Vec<u32>) -> Identity {
        Identity { euid, uid: euid, gid: groups.first().copied().unwrap_or(euid), groups, ..Default::default() }
    }

    fn draft(path: &Path) -> Draft {
        Draft::new(
            path.as_os_str().as_encoded_bytes().to_vec(),
            Action::Write,
            None,
            Some(Side::from_bytes(vec![1], None, true)),
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn root_owned_files_are_not_forgeable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("shadow");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let alice = who(1000, vec![1000]);
        assert!(!plausible(&alice, &draft(&f)));
        assert!(plausible(&who(0, vec![0]), &draft(&f)));
        // group write on the file is enough
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(plausible(&who(1000, vec![1000, 0]), &draft(&f)));
        // a world-writable directory allows creating and deleting
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(plausible(&alice, &draft(&dir.path().join("new"))));
    }
}
