//! What one version is: turns one connection's events into versions.
//!
//! The library reports low-level facts (an open for writing began, its last
//! descriptor closed, a rename, an unlink). Saves are made of several such
//! facts, and this module applies the rules of shared/CONTRACTS.md:
//! - a write that ends with the same content it began with is no version;
//! - a file the process *created* is parked for a moment: if the same
//!   process renames it over a path (`sed -i`, python `os.replace`, rsync),
//!   that is one version of the target (`write`, or `create` if the target
//!   did not exist) `via` the temp name, and the temp file leaves no version
//!   of its own; if it deletes it, it was a probe or scratch file and leaves
//!   no trace either (a temp file renamed or deleted later, or by another
//!   process, is folded by the store: `fold.rs`);
//! - a tracked file renamed to an ignored name (vim's `f` → `f~`) or
//!   unlinked (`install`, some editors) is parked: when the same process
//!   then creates `f` again, that is one `write` of `f` whose before is the
//!   old content (a delete and a re-create by separate commands stay two
//!   versions);
//! - a mode or owner change (`Attrib`) is an `attrib` version, unless the
//!   file is open for writing or was created by this process: its version
//!   then carries the new mode and owner; a write that changed only those
//!   is an `attrib` too;
//! - anything parked is released as it stands when the connection ends
//!   (the process exited or exec'd) or after [`PARK_WINDOW`].
//!
//! Each version carries the `seq` it is named after and the first event it
//! depends on (its pin); [`Assembler::pinned`] is the lowest event an open
//! or a parked item still needs, which the connection must not acknowledge
//! (`delivery.rs`).
//!
//! Pure logic: no I/O, time and the current event's `seq` are passed in.

use std::collections::HashMap;
use std::time::Duration;

use filetrail_wire::Policy;
use jiff::Timestamp;

use crate::model::{Action, Draft, Side};

/// How long a created file or moved-aside original waits for its sequel.
pub const PARK_WINDOW: Duration = Duration::from_secs(2);

/// Device and inode of an opened file.
pub type FileId = (u64, u64);

/// A tracked open as the library reported it (`Begin`).
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The file really opened.
    pub path: Vec<u8>,
    /// The name the program used, when a symlink led to `path`.
    pub named: Option<Vec<u8>>,
    pub file: Option<FileId>,
    pub before: Option<Side>,
    /// The `Begin`'s `seq` (0: none): a version completing this open is
    /// named after it, whoever completes it.
    pub seq: u64,
}

/// An open whose version must be finished from the file itself: its writer
/// went away without reporting the last close, or other processes still
/// hold the file open.
pub type Unfinished = Opened;

#[derive(Debug)]
enum Parked {
    /// A file this process created (the draft is its `create`).
    Created(Draft),
    /// `old` was renamed to an ignored backup name (the draft is that rename;
    /// its `after` is the content `old` had).
    MovedAside(Draft),
    /// The path was unlinked (the draft is that delete).
    Deleted(Draft),
}

impl Parked {
    fn draft(&self) -> &Draft {
        match self {
            Parked::Created(d) | Parked::MovedAside(d) | Parked::Deleted(d) => d,
        }
    }
    /// The tracked path this parked item speaks for.
    fn subject(&self) -> &[u8] {
        match self {
            Parked::Created(d) | Parked::Deleted(d) => &d.path,
            Parked::MovedAside(d) => d.old_path.as_deref().unwrap_or(&d.path),
        }
    }
    fn into_draft(self) -> Draft {
        match self {
            Parked::Created(d) | Parked::MovedAside(d) | Parked::Deleted(d) => d,
        }
    }
}

pub struct Assembler {
    policy: Policy,
    opens: HashMap<u64, Opened>,
    /// Open token -> the first event that open depends on.
    pins: HashMap<u64, u64>,
    parked: Vec<Parked>,
    /// `seq` of the event being applied.
    seq: u64,
}

/// The lower of two event numbers, 0 meaning none.
fn lower(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

impl Assembler {
    pub fn new(policy: Policy) -> Self {
        Assembler { policy, opens: HashMap::new(), pins: HashMap::new(), parked: Vec::new(), seq: 0 }
    }

    /// What the connection's process must report (the collector's policy).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The next calls apply the event numbered `seq` (0: unnumbered).
    pub fn event(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// A draft made by the current event, depending on events from `pin` on.
    fn made(&self, draft: Draft, pin: u64) -> Draft {
        Draft { seq: self.seq, pin: lower(pin, self.seq), ..draft }
    }

    /// The lowest event an open or a parked item still depends on.
    pub fn pinned(&self) -> Option<u64> {
        self.pins.values().copied().chain(self.parked.iter().map(|p| p.draft().pin)).filter(|&p| p != 0).min()
    }

    fn take_parked(&mut self, pred: impl Fn(&Parked) -> bool) -> Option<Parked> {
        let i = self.parked.iter().position(pred)?;
        Some(self.parked.remove(i))
    }

    /// Releases whatever is parked for `path`, so versions stay in order.
    fn flush_path(&mut self, path: &[u8], out: &mut Vec<Draft>) {
        while let Some(p) = self.take_parked(|p| p.subject() == path) {
            out.push(p.into_draft());
        }
    }

    /// What `path` held before this process moved it aside or unlinked it
    /// in the middle of a save, and the event that depends on from; `None`
    /// when no such save is under way.
    fn take_previous(&mut self, path: &[u8]) -> Option<(Option<Side>, u64)> {
        match self.take_parked(|p| matches!(p, Parked::MovedAside(_) | Parked::Deleted(_)) && p.subject() == path)? {
            Parked::MovedAside(d) => Some((d.after, d.pin)),
            Parked::Deleted(d) => Some((d.before, d.pin)),
            Parked::Created(_) => None,
        }
    }

    /// An open for writing began (`before` is what the path held).
    pub fn begin(&mut self, token: u64, mut open: Opened) -> Vec<Draft> {
        let mut out = Vec::new();
        let mut pin = self.seq;
        if open.before.is_none()
            && let Some((previous, since)) = self.take_previous(&open.path)
        {
            open.before = previous;
            pin = lower(pin, since);
        }
        self.flush_path(&open.path, &mut out);
        self.opens.insert(token, open);
        self.pins.insert(token, pin);
        out
    }

    /// How many opens are waiting for their close.
    pub fn open_count(&self) -> usize {
        self.opens.len()
    }

    /// The device and inode of open `token`, as reported at its start.
    pub fn file_of(&self, token: u64) -> Option<FileId> {
        self.opens.get(&token)?.file
    }

    /// Takes open `token` out, to be finished from the file itself; with
    /// the first event it depends on.
    pub fn abandon(&mut self, token: u64) -> Option<(Unfinished, u64)> {
        let pin = self.pins.remove(&token).unwrap_or(0);
        Some((self.opens.remove(&token)?, pin))
    }

    /// A new name was linked to a file (an `O_TMPFILE` file made visible, a
    /// hard link): like a file this process created.
    pub fn link(&mut self, new: Vec<u8>, after: Option<Side>, now: Timestamp) -> Vec<Draft> {
        let mut out = Vec::new();
        self.flush_path(&new, &mut out);
        self.parked.push(Parked::Created(self.made(Draft::new(new, Action::Create, None, after, now), 0)));
        finish(out)
    }

    /// The last descriptor of open `token` closed; `after` is what it holds.
    pub fn close(&mut self, token: u64, after: Option<Side>, now: Timestamp) -> Vec<Draft> {
        let Some(open) = self.opens.remove(&token) else { return Vec::new() };
        let pin = self.pins.remove(&token).unwrap_or(0);
        let action = if open.before.is_some() { Action::Write } else { Action::Create };
        let draft = Draft {
            named_path: open.named,
            seq: open.seq,
            pin: lower(pin, open.seq),
            ..Draft::new(open.path, action, open.before, after, now)
        };
        if action == Action::Create {
            self.parked.push(Parked::Created(draft));
            Vec::new()
        } else {
            finish(vec![draft])
        }
    }

    /// `old` was renamed to `new`; `before` is what `new` held before.
    pub fn rename(
        &mut self,
        old: Vec<u8>,
        new: Vec<u8>,
        mut before: Option<Side>,
        after: Option<Side>,
        now: Timestamp,
    ) -> Vec<Draft> {
        let mut out = Vec::new();
        let mut pin = 0;
        if before.is_none()
            && let Some((previous, since)) = self.take_previous(&new)
        {
            before = previous;
            pin = since;
        }
        if let Some(temp) = self.take_parked(|p| matches!(p, Parked::Created(_)) && p.subject() == old.as_slice()) {
            self.flush_path(&new, &mut out);
            let action = if before.is_some() { Action::Write } else { Action::Create };
            let draft = Draft { via: Some(old), ..Draft::new(new, action, before, after, now) };
            out.push(self.made(draft, lower(pin, temp.draft().pin)));
            return finish(out);
        }
        self.flush_path(&old, &mut out);
        self.flush_path(&new, &mut out);
        let draft =
            self.made(Draft { old_path: Some(old), ..Draft::new(new, Action::Rename, before, after, now) }, pin);
        let aside = draft.old_path.as_deref().is_some_and(|o| !self.policy.is_ignored(o))
            && self.policy.is_ignored(&draft.path);
        if aside {
            self.parked.push(Parked::MovedAside(draft));
        } else {
            out.push(draft);
        }
        finish(out)
    }

    /// `path` was unlinked; `before` is what it held.
    pub fn delete(&mut self, path: Vec<u8>, before: Option<Side>, now: Timestamp) -> Vec<Draft> {
        if self.take_parked(|p| matches!(p, Parked::Created(_)) && p.subject() == path.as_slice()).is_some() {
            return Vec::new(); // a scratch file of this process: no trace
        }
        let mut out = Vec::new();
        self.flush_path(&path, &mut out);
        self.parked.push(Parked::Deleted(self.made(Draft::new(path, Action::Delete, before, None, now), 0)));
        finish(out)
    }

    /// `path` was truncated by name.
    pub fn truncate(&mut self, path: Vec<u8>, before: Option<Side>, after: Option<Side>, now: Timestamp) -> Vec<Draft> {
        let mut out = Vec::new();
        self.flush_path(&path, &mut out);
        out.push(self.made(Draft::new(path, Action::Truncate, before, after, now), 0));
        finish(out)
    }

    /// The mode or owner of `path` changed; `before` and `after` are what it
    /// held around the call. A file this process holds open for writing, or
    /// created and parked, gets it in the version that open or file makes
    /// (its after side is taken later, or here): no version of its own.
    pub fn attrib(
        &mut self,
        path: Vec<u8>,
        named: Option<Vec<u8>>,
        before: Option<Side>,
        after: Option<Side>,
        now: Timestamp,
    ) -> Vec<Draft> {
        if self.opens.values().any(|o| o.path == path) {
            return Vec::new();
        }
        if let Some(Parked::Created(d)) =
            self.parked.iter_mut().find(|p| matches!(p, Parked::Created(_)) && p.subject() == path.as_slice())
        {
            if let (Some(mine), Some(now)) = (d.after.as_mut(), after.as_ref()) {
                mine.meta = now.meta;
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        self.flush_path(&path, &mut out);
        let draft = Draft { named_path: named, ..Draft::new(path, Action::Attrib, before, after, now) };
        out.push(self.made(draft, 0));
        finish(out)
    }

    /// Releases parked items older than [`PARK_WINDOW`].
    pub fn tick(&mut self, now: Timestamp) -> Vec<Draft> {
        let window = jiff::SignedDuration::try_from(PARK_WINDOW).unwrap_or_default();
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.parked).into_iter().partition(|p| now.duration_since(p.draft().time) >= window);
        self.parked = keep;
        finish(due.into_iter().map(Parked::into_draft).collect())
    }

    /// The connection ended: everything parked is released, and opens that
    /// never closed are handed back to be finished from the file itself.
    pub fn finish(mut self) -> (Vec<Draft>, Vec<Unfinished>) {
        let drafts = finish(std::mem::take(&mut self.parked).into_iter().map(Parked::into_draft).collect());
        let mut unfinished: Vec<(u64, Unfinished)> = self.opens.into_iter().collect();
        unfinished.sort_by_key(|(t, _)| *t);
        (drafts, unfinished.into_iter().map(|(_, u)| u).collect())
    }
}

/// Completes an unfinished open with what the file holds now.
pub fn complete(u: Unfinished, after: Option<Side>, now: Timestamp) -> Option<Draft> {
    let action = if u.before.is_some() { Action::Write } else { Action::Create };
    finish(vec![Draft { named_path: u.named, seq: u.seq, ..Draft::new(u.path, action, u.before, after, now) }]).pop()
}

fn finish(drafts: Vec<Draft>) -> Vec<Draft> {
    // Nothing changed, or nothing existed on either side: no version. The
    // same content with another mode or owner (a save that left the file
    // 0600, an `fchmod` on a file open for writing) is an `attrib`.
    drafts
        .into_iter()
        .filter(|d| !d.is_noop() && (d.before.is_some() || d.after.is_some()))
        .map(|d| match d.action {
            Action::Write | Action::Truncate if d.same_content() => Draft { action: Action::Attrib, ..d },
            _ => d,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(s: &str) -> Option<Side> {
        Some(Side::from_bytes(s.as_bytes().to_vec(), None, true))
    }
    fn p(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn asm() -> Assembler {
        Assembler::new(Policy::new(&["/etc"], &["*~", "*.swp"], 100).unwrap())
    }
    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }
    fn opened(path: &str, before: Option<Side>) -> Opened {
        Opened { path: p(path), named: None, file: None, before, seq: 0 }
    }
    fn summary(d: &Draft) -> (String, Action, Option<String>) {
        let text =
            |s: &Option<Side>| s.as_ref().map(|s| String::from_utf8(s.bytes.as_ref().unwrap().to_vec()).unwrap());
        (String::from_utf8(d.path.clone()).unwrap(), d.action, text(&d.after).or(text(&d.before)))
    }

    #[test]
    fn in_place_write_is_one_version() {
        let mut a = asm();
        assert!(a.begin(1, opened("/etc/f", side("old"))).is_empty());
        let v = a.close(1, side("new"), t(0));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].action, Action::Write);
        assert_eq!(v[0].before, side("old"));
        assert_eq!(v[0].after, side("new"));
    }

    #[test]
    fn unchanged_content_is_no_version() {
        let mut a = asm();
        a.begin(1, opened("/etc/f", side("same")));
        assert!(a.close(1, side("same"), t(0)).is_empty());
    }

    #[test]
    fn sed_style_temp_rename_is_one_write_of_the_target() {
        let mut a = asm();
        a.begin(1, opened("/etc/sedAbc", None));
        assert!(a.close(1, side("new"), t(0)).is_empty());
        let v = a.rename(p("/etc/sedAbc"), p("/etc/f"), side("old"), side("new"), t(0));
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].path.as_slice(), v[0].action, v[0].old_path.clone()), (&b"/etc/f"[..], Action::Write, None));
        assert_eq!(v[0].before, side("old"));
        let (rest, unfinished) = a.finish();
        assert!(rest.is_empty() && unfinished.is_empty());
    }

    #[test]
    fn temp_rename_onto_missing_target_is_a_create() {
        let mut a = asm();
        a.begin(1, opened("/etc/.tmp1", None));
        a.close(1, side("x"), t(0));
        let v = a.rename(p("/etc/.tmp1"), p("/etc/new"), None, side("x"), t(0));
        assert_eq!(v[0].action, Action::Create);
    }

    #[test]
    fn mv_of_existing_files_is_a_rename() {
        let mut a = asm();
        let v = a.rename(p("/etc/a"), p("/etc/b"), side("b-old"), side("a"), t(0));
        assert_eq!(v[0].action, Action::Rename);
        assert_eq!(v[0].old_path.as_deref(), Some(&b"/etc/a"[..]));
    }

    #[test]
    fn vim_backup_rename_then_recreate_is_one_write() {
        let mut a = asm();
        assert!(a.rename(p("/etc/f"), p("/etc/f~"), None, side("old"), t(0)).is_empty());
        a.begin(7, opened("/etc/f", None));
        let v = a.close(7, side("new"), t(1));
        assert_eq!(v.len(), 1);
        assert_eq!(summary(&v[0]), ("/etc/f".into(), Action::Write, Some("new".into())));
        assert_eq!(v[0].before, side("old"));
        assert!(a.finish().0.is_empty());
    }

    #[test]
    fn created_then_deleted_scratch_file_leaves_nothing() {
        let mut a = asm();
        a.begin(1, opened("/etc/4913", None));
        a.close(1, side(""), t(0));
        assert!(a.delete(p("/etc/4913"), side(""), t(0)).is_empty());
        assert!(a.finish().0.is_empty());
    }

    #[test]
    fn created_file_is_released_at_the_end_or_after_the_window() {
        let mut a = asm();
        a.begin(1, opened("/etc/new", None));
        a.close(1, side("x"), t(0));
        assert!(a.tick(t(1)).is_empty());
        let v = a.tick(t(3));
        assert_eq!(summary(&v[0]), ("/etc/new".into(), Action::Create, Some("x".into())));

        let mut a = asm();
        a.begin(1, opened("/etc/new", None));
        a.close(1, side("x"), t(0));
        assert_eq!(a.finish().0.len(), 1);
    }

    #[test]
    fn versions_of_one_path_stay_in_order() {
        let mut a = asm();
        a.begin(1, opened("/etc/n", None));
        a.close(1, side("a"), t(0));
        let first = a.begin(2, opened("/etc/n", side("a")));
        assert_eq!(first.len(), 1, "the create is released before the next write begins");
        assert_eq!(first[0].action, Action::Create);
        let second = a.close(2, side("ab"), t(1));
        assert_eq!(second[0].before, side("a"));
    }

    #[test]
    fn linked_tmpfile_renamed_over_target_is_one_write() {
        let mut a = asm();
        assert!(a.link(p("/etc/.tmpXYZ"), side("new"), t(0)).is_empty());
        let v = a.rename(p("/etc/.tmpXYZ"), p("/etc/f"), side("old"), side("new"), t(0));
        assert_eq!((v.len(), v[0].action), (1, Action::Write));
        assert_eq!(v[0].via.as_deref(), Some(&b"/etc/.tmpXYZ"[..]), "the temp name is kept as a detail");
    }

    #[test]
    fn symlinked_name_is_kept() {
        let mut a = asm();
        a.begin(1, Opened { path: p("/run/real"), named: Some(p("/etc/link")), file: None, before: side("a"), seq: 0 });
        let v = a.close(1, side("b"), t(0));
        assert_eq!(v[0].path, p("/run/real"));
        assert_eq!(v[0].named_path, Some(p("/etc/link")));
    }

    #[test]
    fn unlink_then_recreate_in_one_process_is_one_write() {
        let mut a = asm();
        assert!(a.delete(p("/etc/f"), side("old"), t(0)).is_empty());
        a.begin(1, opened("/etc/f", None));
        let v = a.close(1, side("new"), t(0));
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].action, v[0].before.clone()), (Action::Write, side("old")));
        assert!(a.finish().0.is_empty());
    }

    #[test]
    fn delete_and_unfinished_opens() {
        let mut a = asm();
        assert!(a.delete(p("/etc/f"), side("gone"), t(0)).is_empty());
        let (v, _) = a.finish();
        assert_eq!((v[0].action, v[0].after.is_none()), (Action::Delete, true));
        let mut a = asm();
        a.begin(9, opened("/etc/g", side("before")));
        let (drafts, unfinished) = a.finish();
        assert!(drafts.is_empty());
        assert_eq!(unfinished, vec![opened("/etc/g", side("before"))]);
        let d = complete(unfinished[0].clone(), side("after"), t(1)).unwrap();
        assert_eq!(d.action, Action::Write);
    }

    fn with_mode(s: &str, mode: u32, uid: u32) -> Option<Side> {
        let meta = filetrail_wire::Meta { mode: 0o100000 | mode, uid, ..Default::default() };
        Some(Side::from_bytes(s.as_bytes().to_vec(), Some(meta), true))
    }

    #[test]
    fn a_mode_or_owner_change_is_an_attrib_version() {
        let mut a = asm();
        let v = a.attrib(p("/etc/f"), None, with_mode("x", 0o644, 0), with_mode("x", 0o600, 0), t(0));
        assert_eq!((v.len(), v[0].action), (1, Action::Attrib));
        // chmod to the mode it had: nothing changed.
        assert!(a.attrib(p("/etc/f"), None, with_mode("x", 0o600, 0), with_mode("x", 0o600, 0), t(0)).is_empty());
        let v = a.attrib(p("/etc/f"), None, with_mode("x", 0o600, 0), with_mode("x", 0o600, 65534), t(0));
        assert_eq!(v[0].action, Action::Attrib);
    }

    #[test]
    fn a_mode_change_of_a_file_being_written_or_created_is_part_of_that_version() {
        let mut a = asm();
        a.begin(1, opened("/etc/f", with_mode("old", 0o644, 0)));
        assert!(a.attrib(p("/etc/f"), None, with_mode("old", 0o644, 0), with_mode("old", 0o600, 0), t(0)).is_empty());
        let v = a.close(1, with_mode("new", 0o600, 0), t(0));
        assert_eq!((v.len(), v[0].action), (1, Action::Write));
        // A write that changed nothing but the mode is an attrib.
        a.begin(2, opened("/etc/f", with_mode("new", 0o600, 0)));
        let v = a.close(2, with_mode("new", 0o640, 0), t(1));
        assert_eq!((v.len(), v[0].action), (1, Action::Attrib));
        // A temp file chmod'ed by name, then renamed over the target: one write.
        a.begin(3, opened("/etc/.tmp1", None));
        assert!(a.close(3, with_mode("newer", 0o600, 0), t(2)).is_empty());
        assert!(
            a.attrib(p("/etc/.tmp1"), None, with_mode("newer", 0o600, 0), with_mode("newer", 0o640, 0), t(2))
                .is_empty()
        );
        let v = a.rename(p("/etc/.tmp1"), p("/etc/f"), with_mode("new", 0o640, 0), with_mode("newer", 0o640, 0), t(2));
        assert_eq!((v.len(), v[0].action), (1, Action::Write));
        assert!(a.finish().0.is_empty());
        // A created file released as it stands carries the mode it was given.
        let mut a = asm();
        a.begin(1, opened("/etc/n", None));
        a.close(1, with_mode("n", 0o600, 0), t(0));
        a.attrib(p("/etc/n"), None, with_mode("n", 0o600, 0), with_mode("n", 0o644, 0), t(0));
        let (v, _) = a.finish();
        assert_eq!(
            (v.len(), v[0].action, v[0].after.as_ref().unwrap().meta.unwrap().mode & 0o777),
            (1, Action::Create, 0o644)
        );
    }

    #[test]
    fn versions_are_named_after_their_event_and_pin_what_they_need() {
        let numbered = |a: &mut Assembler, seq| a.event(seq);
        // In place: named after the Begin (a finisher completing the same
        // open names it alike); the open pins its Begin until the close.
        let mut a = asm();
        numbered(&mut a, 5);
        a.begin(1, Opened { seq: 5, ..opened("/etc/f", side("old")) });
        assert_eq!(a.pinned(), Some(5));
        numbered(&mut a, 6);
        let v = a.close(1, side("new"), t(0));
        assert_eq!((v[0].seq, v[0].pin, a.pinned()), (5, 5, None));

        // Temp file + rename: named after the rename, depends on the temp's Begin.
        let mut a = asm();
        numbered(&mut a, 1);
        a.begin(1, Opened { seq: 1, ..opened("/etc/.tmp", None) });
        numbered(&mut a, 2);
        assert!(a.close(1, side("x"), t(0)).is_empty());
        assert_eq!(a.pinned(), Some(1), "the parked temp file needs its Begin");
        numbered(&mut a, 3);
        let v = a.rename(p("/etc/.tmp"), p("/etc/f"), side("old"), side("x"), t(0));
        assert_eq!((v[0].seq, v[0].pin, a.pinned()), (3, 1, None));

        // vim: the backup rename is needed until the new file is closed.
        let mut a = asm();
        numbered(&mut a, 1);
        assert!(a.rename(p("/etc/f"), p("/etc/f~"), None, side("old"), t(0)).is_empty());
        numbered(&mut a, 2);
        a.begin(7, Opened { seq: 2, ..opened("/etc/f", None) });
        assert_eq!(a.pinned(), Some(1));
        numbered(&mut a, 3);
        let v = a.close(7, side("new"), t(0));
        assert_eq!((v[0].seq, v[0].pin, v[0].before.clone()), (2, 1, side("old")));
        assert_eq!(a.pinned(), None);

        // An open handed to the finisher gives back its pin; completed, it
        // is named after its Begin like the Close would have.
        let mut a = asm();
        numbered(&mut a, 9);
        a.begin(3, Opened { seq: 9, ..opened("/etc/g", side("a")) });
        let (u, pin) = a.abandon(3).unwrap();
        assert_eq!((pin, a.pinned()), (9, None));
        assert_eq!(complete(u, side("b"), t(1)).unwrap().seq, 9);
    }

    /// A fuzz target run by `cargo test`: arbitrary sequences of events
    /// with arbitrary paths, tokens and sides never panic, and every version
    /// (and every open handed back unfinished) names only paths that some
    /// event gave. `PROPTEST_CASES` sets the number of cases (default 2000).
    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::model::Stored;

        #[derive(Debug, Clone)]
        enum Event {
            Begin(u64, Vec<u8>, Option<Vec<u8>>, Option<Side>),
            Close(u64, Option<Side>),
            Abandon(u64),
            Link(Vec<u8>, Option<Side>),
            Rename(Vec<u8>, Vec<u8>, Option<Side>, Option<Side>),
            Delete(Vec<u8>, Option<Side>),
            Truncate(Vec<u8>, Option<Side>, Option<Side>),
            Attrib(Vec<u8>, Option<Side>, Option<Side>),
            Tick,
        }

        fn path() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::sample::select(vec![
                    "/etc/f",
                    "/etc/f~",
                    "/etc/g",
                    "/etc/.tmp1",
                    "/etc/x.swp",
                    "/tmp/t",
                    "/etc/4913"
                ])
                .prop_map(|s| s.as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 0..12),
            ]
        }

        fn side() -> impl Strategy<Value = Option<Side>> {
            prop_oneof![
                Just(None),
                prop::sample::select(vec!["", "a", "b", "ab"]).prop_map(|s| Some(Side::from_bytes(
                    s.into(),
                    None,
                    true
                ))),
                (any::<u64>(), any::<bool>()).prop_map(|(size, hashed)| Some(Side {
                    sha256: hashed.then(|| "cd".repeat(32)),
                    size,
                    stored: if hashed { Stored::HashOnly } else { Stored::Unreadable },
                    bytes: None,
                    meta: None,
                    consistent: hashed,
                })),
            ]
        }

        fn event() -> impl Strategy<Value = Event> {
            let token = 0..4u64;
            prop_oneof![
                (token.clone(), path(), prop::option::of(path()), side())
                    .prop_map(|(t, p, n, b)| Event::Begin(t, p, n, b)),
                (token.clone(), side()).prop_map(|(t, a)| Event::Close(t, a)),
                token.prop_map(Event::Abandon),
                (path(), side()).prop_map(|(p, a)| Event::Link(p, a)),
                (path(), path(), side(), side()).prop_map(|(o, n, b, a)| Event::Rename(o, n, b, a)),
                (path(), side()).prop_map(|(p, b)| Event::Delete(p, b)),
                (path(), side(), side()).prop_map(|(p, b, a)| Event::Truncate(p, b, a)),
                (path(), side(), side()).prop_map(|(p, b, a)| Event::Attrib(p, b, a)),
                Just(Event::Tick),
            ]
        }

        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
            ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn versions_name_only_paths_given(events in prop::collection::vec((event(), 0..3i64), 0..40)) {
                let mut a = asm();
                let mut given: Vec<Vec<u8>> = Vec::new();
                let mut out = Vec::new();
                let mut unfinished = Vec::new();
                let mut clock = 0;
                for (event, dt) in events {
                    clock += dt;
                    let now = t(clock);
                    out.extend(match event {
                        Event::Begin(token, path, named, before) => {
                            given.push(path.clone());
                            given.extend(named.clone());
                            a.begin(token, Opened { path, named, file: None, before, seq: 0 })
                        }
                        Event::Close(token, after) => a.close(token, after, now),
                        Event::Abandon(token) => {
                            unfinished.extend(a.abandon(token).map(|(u, _)| u));
                            Vec::new()
                        }
                        Event::Link(path, after) => {
                            given.push(path.clone());
                            a.link(path, after, now)
                        }
                        Event::Rename(old, new, before, after) => {
                            given.extend([old.clone(), new.clone()]);
                            a.rename(old, new, before, after, now)
                        }
                        Event::Delete(path, before) => {
                            given.push(path.clone());
                            a.delete(path, before, now)
                        }
                        Event::Truncate(path, before, after) => {
                            given.push(path.clone());
                            a.truncate(path, before, after, now)
                        }
                        Event::Attrib(path, before, after) => {
                            given.push(path.clone());
                            a.attrib(path, None, before, after, now)
                        }
                        Event::Tick => a.tick(now),
                    });
                }
                let (rest, left) = a.finish();
                out.extend(rest);
                unfinished.extend(left);
                out.extend(unfinished.iter().cloned().filter_map(|u| complete(u, side_of("z"), t(clock + 1))));
                for d in &out {
                    prop_assert!(given.contains(&d.path), "path {:?} of {:?}", d.path, d);
                    for other in d.old_path.iter().chain(&d.named_path).chain(&d.via) {
                        prop_assert!(given.contains(other), "{:?} of {:?}", other, d);
                    }
                    prop_assert!(!d.is_noop(), "a version that changes nothing: {:?}", d);
                }
                for u in &unfinished {
                    prop_assert!(given.contains(&u.path));
                }
            }
        }

        fn side_of(s: &str) -> Option<Side> {
            Some(Side::from_bytes(s.into(), None, true))
        }
    }
}
