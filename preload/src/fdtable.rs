//! Which descriptors of this process belong to which tracked open.
//!
//! One tracked open (a `token`) can be reached through several descriptors
//! after `dup`/`dup2`/`fcntl(F_DUPFD)`; it ends when the last of them is
//! closed or replaced. Pure bookkeeping, no I/O.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct FdTable {
    fds: BTreeMap<i32, u64>,
    opens: BTreeMap<u64, usize>,
    /// Opens that were live when the process forked: children may hold them.
    shared: BTreeSet<u64>,
}

impl FdTable {
    pub const fn new() -> Self {
        FdTable { fds: BTreeMap::new(), opens: BTreeMap::new(), shared: BTreeSet::new() }
    }

    /// The process forked: every live open may now be held by a child too.
    pub fn mark_shared(&mut self) {
        self.shared.extend(self.opens.keys().copied());
    }

    /// Whether open `token` was live at a fork (asked once, at its end).
    pub fn take_shared(&mut self, token: u64) -> bool {
        self.shared.remove(&token)
    }

    /// Number of descriptors that belong to tracked opens.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn token(&self, fd: i32) -> Option<u64> {
        self.fds.get(&fd).copied()
    }

    /// Records a new tracked open reached through `fd`. Returns the token
    /// of an open that `fd` still pointed at (stale) and that thereby ended.
    pub fn open(&mut self, fd: i32, token: u64) -> Option<u64> {
        let ended = self.close(fd);
        self.fds.insert(fd, token);
        self.opens.insert(token, 1);
        ended
    }

    /// `new` now refers to what `old` refers to (`dup2(old, new)`). Returns
    /// the token of an open that lost its last descriptor because `new` was
    /// replaced.
    pub fn dup(&mut self, old: i32, new: i32) -> Option<u64> {
        if old == new {
            return None;
        }
        let ended = self.close(new);
        if let Some(token) = self.token(old) {
            self.fds.insert(new, token);
            *self.opens.entry(token).or_insert(0) += 1;
        }
        ended
    }

    /// Forgets `fd`. Returns its token when it was the open's last descriptor.
    pub fn close(&mut self, fd: i32) -> Option<u64> {
        let token = self.fds.remove(&fd)?;
        let refs = self.opens.get_mut(&token)?;
        *refs -= 1;
        if *refs == 0 {
            self.opens.remove(&token);
            Some(token)
        } else {
            None
        }
    }

    /// The tracked descriptors in `first..=last`.
    pub fn in_range(&self, first: i32, last: i32) -> Vec<i32> {
        self.fds.range(first..=last).map(|(fd, _)| *fd).collect()
    }

    /// Forgets everything (a child after `fork` starts with its own table).
    pub fn clear(&mut self) {
        self.fds.clear();
        self.opens.clear();
        self.shared.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ends_at_last_close() {
        let mut t = FdTable::new();
        assert_eq!(t.open(3, 1), None);
        assert_eq!(t.dup(3, 1), None); // dash: dup2(3, 1)
        assert_eq!(t.close(3), None); // close(3): fd 1 still holds it
        assert_eq!(t.len(), 1);
        assert_eq!(t.dup(11, 1), Some(1)); // dup2(saved, 1) replaces the last one
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn dup_onto_itself_changes_nothing() {
        let mut t = FdTable::new();
        t.open(4, 9);
        assert_eq!(t.dup(4, 4), None);
        assert_eq!(t.close(4), Some(9));
    }

    #[test]
    fn untracked_fds_are_ignored() {
        let mut t = FdTable::new();
        assert_eq!(t.close(5), None);
        assert_eq!(t.dup(5, 6), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn opens_live_at_fork_are_shared() {
        let mut t = FdTable::new();
        t.open(3, 1);
        t.mark_shared();
        t.open(4, 2);
        assert!(t.take_shared(1));
        assert!(!t.take_shared(1));
        assert!(!t.take_shared(2));
    }

    #[test]
    fn range_lists_tracked_fds() {
        let mut t = FdTable::new();
        t.open(3, 1);
        t.open(7, 2);
        t.open(12, 3);
        assert_eq!(t.in_range(4, 12), vec![7, 12]);
        assert_eq!(t.in_range(0, i32::MAX), vec![3, 7, 12]);
    }

    #[test]
    fn reused_fd_number_ends_the_stale_open() {
        let mut t = FdTable::new();
        t.open(3, 1);
        assert_eq!(t.open(3, 2), Some(1));
        assert_eq!(t.close(3), Some(2));
    }
}
