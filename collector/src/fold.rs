//! Folding across processes: when a temp file ends — renamed over a path,
//! or deleted — which of its versions the store folds into that end.
//!
//! The assembler (`assemble.rs`) folds what one process does within
//! [`crate::assemble::PARK_WINDOW`]. Package managers and admin scripts
//! spread one change over processes and minutes: dpkg unpacks
//! `X.dpkg-new` and renames it over `X` in a later `dpkg --configure`;
//! `add-shell` runs `cat f > f.tmp`, appends with `echo >> f.tmp` from a
//! shell, `chmod`s and `chown`s it, then `mv f.tmp f`. The store applies
//! these rules each time it stores the end of a file (`store/fold.rs`),
//! to the versions of that file since it last came into being, in the
//! [`FOLD_WINDOW`] before the end:
//!
//! - **Renamed over a path.** If the file was created in the window (its
//!   first step is a `create`, not one made by a rename) and every
//!   step was made by the same user (euid) in the same login session as the
//!   rename, and the rename replaced a file or the source has a temp
//!   file's name ([`temp_name`]; `mv a.conf b.conf` of a new file stays a
//!   rename), its steps are folded into the rename, which becomes a `write`
//!   of the target (`create` if the target did not exist) `via` the temp
//!   name: one version, before = what the target held, after = what it
//!   holds. A rename that changes nothing (same content, mode, owner) is
//!   folded into itself. Otherwise it stays a `rename`.
//! - **Deleted.** A file created in the window the same way and deleted, by the same user and session, is a scratch file when it has a
//!   temp file's name ([`temp_name`]) or when one process made every step
//!   and the delete (a lock file held while an editor ran): its steps and
//!   the delete are folded away. Any other delete stays a version (a
//!   package purge: one `delete` per file).
//!
//! Nothing is lost: folded steps keep their rows and content
//! (`query --all`). Steps of a temp-named path not folded yet are hidden
//! from the default view until the window has passed (`store/query.rs`).
//!
//! Pure logic: the store passes the rows in.

use std::time::Duration;

/// How long after a temp file came into being its end still folds it.
pub const FOLD_WINDOW: Duration = Duration::from_secs(600);

/// A stored version as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: i64,
    /// `create`, `write`, `rename`, `delete`, `truncate`, `attrib`.
    pub action: String,
    /// Made by renaming another temp file over this path.
    pub via: bool,
    pub euid: u32,
    pub session: Option<u32>,
    pub pid: i32,
    /// The path held a file before this step (a rename over it).
    pub replaced: bool,
}

/// How a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Renamed over another path (a `rename` from it, or a `write`/`create` via it).
    Renamed,
    Deleted,
}

/// What the store does with an end and the steps before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fold {
    /// Nothing: every version stays as it is.
    Keep,
    /// These steps fold into the end (a rename: now a write via the temp name).
    Into(Vec<i64>),
    /// A scratch file: these steps and the delete itself are folded away.
    Scratch(Vec<i64>),
}

/// What to fold when `source` ends by `end` (`how`); `steps` are its
/// versions since it last came into being, within the window, oldest first.
pub fn decide(end: &Step, how: Ending, steps: &[Step], source: &[u8]) -> Fold {
    let Some(first) = steps.first() else { return Fold::Keep };
    let same_actor = steps.iter().all(|s| s.euid == end.euid && s.session == end.session);
    // A file made by a rename is a real file (an installed conffile), not a temp.
    if first.action != "create" || first.via || !same_actor {
        return Fold::Keep;
    }
    let ids = steps.iter().map(|s| s.id).collect();
    match how {
        // A file renamed to a new name is that file under another name
        // (`mv a.conf b.conf`) unless it has a temp file's name.
        Ending::Renamed if !end.replaced && !temp_name(source) => Fold::Keep,
        Ending::Renamed => Fold::Into(ids),
        Ending::Deleted if temp_name(source) || steps.iter().all(|s| s.pid == end.pid) => Fold::Scratch(ids),
        Ending::Deleted => Fold::Keep,
    }
}

/// Suffixes (of the last component, after its last `.`) that name a temp
/// file: dpkg's unpacked-not-configured and backup-during-unpack names,
/// ucf's, and the common `tmp`/`new`, optionally numbered (`.tmp2`).
/// `.dpkg-dist`, `.dpkg-old`, `.dpkg-bak`, `.ucf-dist`, `.ucf-old` are
/// files left for the admin: not temp names.
const TEMP_SUFFIXES: &[&str] = &["dpkg-new", "dpkg-tmp", "ucf-new", "ucf-tmp", "tmp", "temp", "new", "edit"];

/// `path` is named like a temp file (see [`TEMP_SUFFIXES`]).
pub fn temp_name(path: &[u8]) -> bool {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else { return false };
    if dot == 0 {
        return false;
    }
    let ext = &name[dot + 1..];
    let end = ext.iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |i| i + 1);
    TEMP_SUFFIXES.iter().any(|s| s.as_bytes() == &ext[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: i64, action: &str, pid: i32) -> Step {
        Step { id, action: action.into(), via: false, euid: 0, session: Some(3), pid, replaced: false }
    }

    #[test]
    fn add_shell_cp_append_chmod_mv_folds_into_the_rename() {
        // cp (pid 10) creates, the shell (11) appends, chmod (12); mv (13) renames.
        let steps = [step(1, "create", 10), step(2, "write", 11), step(3, "write", 11), step(4, "attrib", 12)];
        let end = step(5, "rename", 13);
        assert_eq!(decide(&end, Ending::Renamed, &steps, b"/etc/shells.tmp"), Fold::Into(vec![1, 2, 3, 4]));
    }

    #[test]
    fn dpkg_new_created_by_unpack_renamed_by_configure_folds() {
        let steps = [step(1, "create", 20)];
        assert_eq!(
            decide(&step(2, "rename", 21), Ending::Renamed, &steps, b"/etc/screenrc.dpkg-new"),
            Fold::Into(vec![1])
        );
    }

    #[test]
    fn a_temp_made_by_renaming_another_temp_over_it_folds_as_a_chain() {
        // mksh's prerm: `grep -v > f.tmp2; mv f.tmp2 f.tmp` (a write of f.tmp via f.tmp2), then `mv f.tmp f`.
        let via = Step { via: true, ..step(2, "write", 31) };
        let steps = [step(1, "create", 30), via];
        assert_eq!(decide(&step(3, "rename", 32), Ending::Renamed, &steps, b"/etc/shells.tmp"), Fold::Into(vec![1, 2]));
    }

    #[test]
    fn a_new_file_moved_to_a_new_name_stays_a_rename_unless_it_replaces_one() {
        let steps = [step(1, "create", 10), step(2, "write", 10)];
        assert_eq!(decide(&step(3, "rename", 11), Ending::Renamed, &steps, b"/etc/a.conf"), Fold::Keep);
        let over = Step { replaced: true, ..step(3, "rename", 11) };
        assert_eq!(decide(&over, Ending::Renamed, &steps, b"/etc/a.conf"), Fold::Into(vec![1, 2]));
    }

    #[test]
    fn a_file_that_existed_before_the_window_is_renamed_not_folded() {
        // `mv a b` of a file written (not created) in the window.
        let steps = [step(1, "write", 10)];
        assert_eq!(decide(&step(2, "rename", 11), Ending::Renamed, &steps, b"/etc/a"), Fold::Keep);
        assert_eq!(decide(&step(2, "rename", 11), Ending::Renamed, &[], b"/etc/a"), Fold::Keep);
        // A conffile dpkg installed via .dpkg-new, then moved aside to .dpkg-old.
        let installed = Step { via: true, ..step(1, "create", 20) };
        assert_eq!(decide(&step(2, "rename", 21), Ending::Renamed, &[installed], b"/etc/mkshrc"), Fold::Keep);
    }

    #[test]
    fn another_users_or_sessions_steps_are_never_folded() {
        let mallory = Step { euid: 1000, ..step(1, "create", 10) };
        assert_eq!(decide(&step(2, "rename", 11), Ending::Renamed, &[mallory], b"/srv/x.tmp"), Fold::Keep);
        let other_session = Step { session: Some(4), ..step(1, "create", 10) };
        assert_eq!(decide(&step(2, "rename", 11), Ending::Renamed, &[other_session], b"/srv/x.tmp"), Fold::Keep);
    }

    #[test]
    fn a_temp_named_file_deleted_unrenamed_is_scratch() {
        // add-shell interrupted: `cp f f.tmp; echo >> f.tmp; rm f.tmp`.
        let steps = [step(1, "create", 10), step(2, "write", 11)];
        assert_eq!(
            decide(&step(3, "delete", 12), Ending::Deleted, &steps, b"/etc/shells.tmp"),
            Fold::Scratch(vec![1, 2])
        );
    }

    #[test]
    fn a_lock_file_one_process_created_and_deleted_is_scratch() {
        // vipw: link shadow.PID -> shadow.lock, run the editor, unlink shadow.lock.
        let steps = [step(1, "create", 40)];
        assert_eq!(
            decide(&step(2, "delete", 40), Ending::Deleted, &steps, b"/etc/shadow.lock"),
            Fold::Scratch(vec![1])
        );
    }

    #[test]
    fn deleting_a_real_file_stays_a_version() {
        // An admin's `echo x > f` then `rm f`: two commands, a real file.
        let steps = [step(1, "create", 10)];
        assert_eq!(decide(&step(2, "delete", 11), Ending::Deleted, &steps, b"/etc/motd.local"), Fold::Keep);
        // A package purge deleting a conffile the install created via .dpkg-new.
        let installed = Step { via: true, ..step(1, "create", 20) };
        assert_eq!(decide(&step(2, "delete", 20), Ending::Deleted, &[installed], b"/etc/mkshrc"), Fold::Keep);
    }

    #[test]
    fn temp_names() {
        for t in [
            "/etc/x.dpkg-new",
            "/etc/x.dpkg-tmp",
            "/etc/x.ucf-new",
            "/etc/shells.tmp",
            "/etc/shells.tmp2",
            "/etc/a.new",
            "/etc/shadow.edit",
        ] {
            assert!(temp_name(t.as_bytes()), "{t}");
        }
        for k in [
            "/etc/x.dpkg-dist",
            "/etc/x.dpkg-old",
            "/etc/x.dpkg-bak",
            "/etc/x.ucf-dist",
            "/etc/tmp",
            "/etc/.tmp",
            "/etc/x.conf",
            "/etc/new/x",
        ] {
            assert!(!temp_name(k.as_bytes()), "{k}");
        }
    }
}
