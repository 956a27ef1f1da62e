-- 0006: the kernel watch (issue 11). Who reported a version (`library`, or
-- `kernel`: the collector's fanotify watch saw a change that no library
-- reported); whether a change went unseen before it (`gap_before`: its
-- before is not what the path last held as far as the store knows); the
-- mode and owner before the change (attribute changes).
ALTER TABLE versions ADD COLUMN seen_by TEXT NOT NULL DEFAULT 'library';
ALTER TABLE versions ADD COLUMN gap_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE versions ADD COLUMN before_mode INTEGER;
ALTER TABLE versions ADD COLUMN before_owner_uid INTEGER;
ALTER TABLE versions ADD COLUMN before_group_gid INTEGER;

-- The last known content of tracked files that have no version yet, taken
-- when the collector first saw them (not versions: never shown as changes).
-- A path's last known content is its newest version's after, else this.
CREATE TABLE baseline (
    path      BLOB PRIMARY KEY,           -- raw bytes
    time_us   INTEGER NOT NULL,           -- when it was read
    blob      INTEGER REFERENCES blobs (id),
    state     TEXT NOT NULL,              -- stored | hash_only | redacted | unreadable
    mode      INTEGER,
    owner_uid INTEGER,
    group_gid INTEGER
) WITHOUT ROWID;
