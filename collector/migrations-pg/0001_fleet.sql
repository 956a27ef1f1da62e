-- Fleet store (PostgreSQL) 0001: every host's versions, one table, keyed by
-- (host, seq). Created and migrated by the collector (numbered files in
-- collector/migrations-pg/, applied in order, one transaction each; the
-- table fleet_schema records how many). A version's "who" is stored with it
-- (no principals/writers tables): the fleet is read far more than written,
-- and every review query then reads one table.

CREATE TABLE fleet_schema (
    version    INTEGER PRIMARY KEY,
    applied_us BIGINT NOT NULL
);

-- One row per host that ever shipped: where its chain stands.
CREATE TABLE hosts (
    host         TEXT PRIMARY KEY,
    head_seq     BIGINT NOT NULL DEFAULT 0,  -- the last version accepted (its seq; 0: none yet)
    head_hash    BYTEA,                      -- its record hash: the next batch must chain from it
    shipped_us   BIGINT,                     -- when the last batch was accepted (server clock)
    newest_us    BIGINT                      -- time_us of the newest version accepted (lag)
);

-- Content, deduplicated across hosts by SHA-256 (32 raw bytes), whole
-- (no deltas between blobs centrally), compressed by `codec`: 0 raw, 1 zstd.
-- Content that was not stored on the host (hash_only, redacted,
-- unreadable) has no row: the version carries its hash and state.
CREATE TABLE blobs (
    sha256 BYTEA PRIMARY KEY,
    size   BIGINT NOT NULL,
    codec  SMALLINT NOT NULL,
    data   BYTEA NOT NULL
);

-- One row per version, as `collector query --json` shows it on the host.
CREATE TABLE versions (
    host             TEXT NOT NULL REFERENCES hosts (host),
    seq              BIGINT NOT NULL,         -- the host's own version id (increasing per host)
    time_us          BIGINT NOT NULL,         -- completion, microseconds since the epoch (UTC)
    path             BYTEA NOT NULL,          -- raw bytes
    named_path       BYTEA,
    action           TEXT NOT NULL,
    old_path         BYTEA,
    via              BYTEA,
    before_sha       BYTEA,                   -- NULL with before_state NULL: did not exist
    before_state     TEXT,                    -- stored | hash_only | redacted | unreadable | over_quota
    before_size      BIGINT,
    after_sha        BYTEA,
    after_state      TEXT,
    after_size       BIGINT,
    consistent       BOOLEAN NOT NULL,
    mode             INTEGER,
    owner_uid        BIGINT,
    group_gid        BIGINT,
    before_mode      INTEGER,
    before_owner_uid BIGINT,
    before_group_gid BIGINT,
    seen_by          TEXT NOT NULL,
    gap_before       BOOLEAN NOT NULL,
    temp_name        BOOLEAN NOT NULL,
    folded_into      BIGINT,                  -- seq (same host) of the version that stands for this one
    "user"           TEXT NOT NULL,
    chain            JSONB NOT NULL,
    uid              BIGINT NOT NULL,
    euid             BIGINT NOT NULL,
    gid              BIGINT NOT NULL,
    loginuid         BIGINT,
    session          BIGINT,
    sudo_user        TEXT,
    tty              TEXT,
    ssh_client       TEXT,
    pid              INTEGER NOT NULL,
    exe              TEXT NOT NULL,
    argv             JSONB NOT NULL,
    cwd              TEXT,
    trust            BIGINT NOT NULL,         -- bit i: field i of TRUST_FIELDS verified (as on the host)
    record_hash      BYTEA NOT NULL,          -- the host's chain (docs/security.md)
    prev_hash        BYTEA,
    PRIMARY KEY (host, seq)
);
-- One file's history and a directory's (range scan on the raw bytes).
CREATE INDEX versions_path ON versions (path, time_us);
CREATE INDEX versions_named_path ON versions (named_path) WHERE named_path IS NOT NULL;
CREATE INDEX versions_old_path ON versions (old_path) WHERE old_path IS NOT NULL;
CREATE INDEX versions_via ON versions (via) WHERE via IS NOT NULL;
-- A user's changes, newest first.
CREATE INDEX versions_user ON versions ("user", time_us);
-- A time window, the whole fleet.
CREATE INDEX versions_time ON versions (time_us);
-- One login session of one host.
CREATE INDEX versions_session ON versions (host, session);

-- The hosts' gap records (`seq`: the host's gap id) and the fleet's own
-- alerts (`seq` NULL): what = chain_fork | chain_rewind | chain_skip, with
-- `source` saying what was expected and what came.
CREATE TABLE gaps (
    id        BIGSERIAL PRIMARY KEY,
    host      TEXT NOT NULL,
    seq       BIGINT,
    time_us   BIGINT NOT NULL,
    since_us  BIGINT,
    until_us  BIGINT,
    uid       BIGINT,
    "user"    TEXT,
    what      TEXT NOT NULL,
    versions  BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    source    TEXT,
    pid       INTEGER,
    exe       TEXT,
    path      BYTEA,
    UNIQUE (host, seq)
);
CREATE INDEX gaps_time ON gaps (time_us);
CREATE INDEX gaps_path ON gaps (path) WHERE path IS NOT NULL;
