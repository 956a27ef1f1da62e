-- 0001: content-addressed blobs, the writers who reported, and versions.

-- One row per distinct content, keyed by its SHA-256 (32 raw bytes).
-- `data` holds the content encoded by `codec`: 0 raw, 1 zstd, 2 zstd using
-- the content of blob `base` as dictionary (a delta against the previous
-- version of the same file). NULL data: the content was not stored
-- (hash_only over max_size, or redacted by config).
CREATE TABLE blobs (
    id     INTEGER PRIMARY KEY,
    sha256 BLOB NOT NULL,
    size   INTEGER NOT NULL,
    codec  INTEGER NOT NULL DEFAULT 0,
    base   INTEGER REFERENCES blobs (id),
    depth  INTEGER NOT NULL DEFAULT 0,    -- deltas to follow to reach a full blob
    data   BLOB
);
-- Finding a content by hash. An index on the first 8 bytes finds it as
-- surely (the row's full hash is compared) at a third of the size.
CREATE INDEX blobs_sha ON blobs (substr(sha256, 1, 8));

-- Who, as a person at a terminal: the identity shared by every process of
-- one login path (user, users gone through, session, tty, ssh client).
-- Many processes of a session point at one row, which keeps the store small.
CREATE TABLE principals (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL,             -- the human
    chain      TEXT NOT NULL,             -- JSON array, login user first
    uid        INTEGER NOT NULL,
    euid       INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    loginuid   INTEGER,
    session    INTEGER,
    sudo_user  TEXT,
    tty        TEXT,
    ssh_client TEXT,
    host       TEXT
);
-- Per-user review ("what did alice change"), and finding a principal again.
CREATE INDEX principals_user ON principals (user, session);
-- Per-session review.
CREATE INDEX principals_session ON principals (session);

-- One row per reporting process image (one library connection).
CREATE TABLE writers (
    id         INTEGER PRIMARY KEY,
    principal  INTEGER NOT NULL REFERENCES principals (id),
    pid        INTEGER NOT NULL,
    exe        TEXT NOT NULL,
    argv       TEXT NOT NULL,             -- JSON array
    cwd        TEXT,
    trust      INTEGER NOT NULL           -- bit i set: field i of identity::TRUST_FIELDS is verified
);

-- One row per version (shared/CONTRACTS.md, "One version").
CREATE TABLE versions (
    id           INTEGER PRIMARY KEY,
    time_us      INTEGER NOT NULL,        -- completion, microseconds since the epoch (UTC)
    path         BLOB NOT NULL,           -- raw bytes: Linux paths need not be UTF-8
    named_path   BLOB,                    -- the name used, when a symlink led to `path`
    action       TEXT NOT NULL,
    old_path     BLOB,
    before_blob  INTEGER REFERENCES blobs (id),
    before_state TEXT,                    -- NULL: did not exist; else stored | hash_only | redacted | unreadable
    after_blob   INTEGER REFERENCES blobs (id),
    after_state  TEXT,
    consistent   INTEGER NOT NULL,
    mode         INTEGER,
    owner_uid    INTEGER,
    group_gid    INTEGER,
    writer       INTEGER NOT NULL REFERENCES writers (id),
    principal    INTEGER NOT NULL REFERENCES principals (id)   -- = writers.principal, indexed
);
-- History of one file, and of everything under a directory (range scan).
CREATE INDEX versions_path ON versions (path, id);
-- "collector query /etc/resolv.conf" also finds versions made through that name.
CREATE INDEX versions_named_path ON versions (named_path) WHERE named_path IS NOT NULL;
-- A file's history includes it being renamed away.
CREATE INDEX versions_old_path ON versions (old_path) WHERE old_path IS NOT NULL;
-- --since / --until, and time order.
CREATE INDEX versions_time ON versions (time_us);
-- Per-user and per-session review: principals -> their versions.
CREATE INDEX versions_principal ON versions (principal, id);
