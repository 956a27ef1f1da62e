-- 0004: gaps. What could not be recorded is a record of its own: "N
-- versions by uid U could not be recorded (between these times)", so that
-- "no record" never silently means "no change".
CREATE TABLE gaps (
    id        INTEGER PRIMARY KEY,
    time_us   INTEGER NOT NULL,   -- when the collector learned of it
    since_us  INTEGER,            -- the span it covers, as the writer claimed (NULL: unknown)
    until_us  INTEGER,
    uid       INTEGER,            -- whose versions are missing (a spool file's owner: kernel-verified)
    user      TEXT,
    what      TEXT NOT NULL,      -- lost_in_library | spool_malformed | spool_truncated
    versions  INTEGER NOT NULL,   -- how many versions (at least; 0: unknown)
    bytes     INTEGER NOT NULL,   -- content bytes they carried (0: unknown)
    source    TEXT                -- where it was learned, e.g. the spool file's name
);
CREATE INDEX gaps_time ON gaps (time_us);
