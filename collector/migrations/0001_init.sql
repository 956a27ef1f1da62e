-- 0001: versions and content-addressed blobs.

-- One row per distinct content, keyed by its SHA-256 (lowercase hex).
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL
) WITHOUT ROWID;

-- One row per version (shared/CONTRACTS.md, "One version").
CREATE TABLE versions (
    id           INTEGER PRIMARY KEY,
    time_us      INTEGER NOT NULL,          -- completion, microseconds since the epoch, UTC
    path         BLOB NOT NULL,             -- raw bytes: Linux paths need not be UTF-8
    action       TEXT NOT NULL,
    old_path     BLOB,
    before_sha   TEXT,                      -- NULL: did not exist (or unknown, see before_state)
    before_state TEXT,                      -- stored | hash_only | unreadable; NULL when absent
    before_size  INTEGER,
    after_sha    TEXT,
    after_state  TEXT,
    after_size   INTEGER,
    consistent   INTEGER NOT NULL,
    mode         INTEGER,
    owner_uid    INTEGER,
    group_gid    INTEGER,
    pid          INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    euid         INTEGER NOT NULL,
    gid          INTEGER NOT NULL,
    loginuid     INTEGER,
    session      INTEGER,
    user         TEXT NOT NULL,
    chain        TEXT NOT NULL,             -- JSON array
    sudo_user    TEXT,
    tty          TEXT,
    ssh_client   TEXT,
    host         TEXT,
    cwd          TEXT,
    exe          TEXT NOT NULL,
    argv         TEXT NOT NULL,             -- JSON array
    trust        TEXT NOT NULL              -- JSON object: field -> verified | claimed
);

-- History of one file and of everything under a directory (range scans on path).
CREATE INDEX versions_path ON versions (path, id);
-- "What happened between T1 and T2".
CREATE INDEX versions_time ON versions (time_us);
-- Per-user review.
CREATE INDEX versions_user ON versions (user, id);
