//! What `collector export-git` reads besides the versions themselves: which
//! versions a run exports, in which order, and whether a version arrived
//! after a later change of its file was exported.
//!
//! A run exports the versions stored since the last one, by id (`after <
//! id <= through`, `through` fixed at the start of the run, so a version
//! committed meanwhile waits for the next run), in time order within the
//! run: a created file's version is stored a moment after later changes
//! (the assembler holds it back), so ids are only roughly chronological.
//! As in the default review: one commit per real change — steps folded
//! into a rename over the target are not exported, and a run stops before a
//! temp-named file's version that may still fold (younger than the fold
//! window, `fold::FOLD_WINDOW`).

use rusqlite::OptionalExtension;

use super::Store;
use crate::error::Result;

impl Store {
    /// The highest version id (0 for an empty store).
    pub fn last_version_id(&self) -> Result<i64> {
        Ok(self.conn().query_row("SELECT coalesce(max(id), 0) FROM versions", [], |r| r.get(0))?)
    }

    /// Where a run that starts after id `after` may stop: the highest id,
    /// or, when a temp-named file's version not folded yet is younger than
    /// the fold window at `now_us` (the file may still be renamed over its
    /// target, its versions then fold into that change), just before the
    /// first such version; and how many versions wait for a later run.
    pub fn export_limit(&self, after: i64, now_us: i64) -> Result<(i64, u64)> {
        let last = self.last_version_id()?;
        let cutoff = now_us - crate::fold::FOLD_WINDOW.as_micros() as i64;
        let young: Option<i64> = self.conn().query_row(
            "SELECT min(id) FROM versions
             WHERE id > ?1 AND folded_into IS NULL AND temp_name AND time_us > ?2",
            rusqlite::params![after, cutoff],
            |r| r.get(0),
        )?;
        let through = young.map_or(last, |id| id - 1);
        Ok((through, (last - through) as u64))
    }

    /// Ids of the versions with `after < id <= through` that are not a
    /// step folded into another change, by time, then id.
    pub fn export_ids(&self, after: i64, through: i64) -> Result<Vec<i64>> {
        let mut stmt = self.conn().prepare(
            "SELECT id FROM versions WHERE id > ?1 AND id <= ?2 AND folded_into IS NULL ORDER BY time_us, id",
        )?;
        let ids = stmt.query_map([after, through], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// A version of `path` with an id up to `through` (already exported)
    /// that is later than `time_us`: its content, not this one's, is the
    /// file's newest.
    pub fn exported_later(&self, path: &[u8], through: i64, time_us: i64) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM versions WHERE path = ?1 AND id <= ?2 AND time_us > ?3 ORDER BY id DESC LIMIT 1",
                rusqlite::params![path, through, time_us],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether `path` has a version before `id` (in time, then id) that is
    /// not a step folded into another change.
    pub fn earlier_version_of(&self, path: &[u8], id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM versions v, versions me WHERE me.id = ?2 AND v.path = ?1 AND v.folded_into IS NULL
                   AND (v.time_us < me.time_us OR (v.time_us = me.time_us AND v.id < me.id)) LIMIT 1",
                rusqlite::params![path, id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// A version's time in microseconds since the epoch.
    pub fn version_time_us(&self, id: i64) -> Result<Option<i64>> {
        Ok(self.conn().query_row("SELECT time_us FROM versions WHERE id = ?1", [id], |r| r.get(0)).optional()?)
    }
}
