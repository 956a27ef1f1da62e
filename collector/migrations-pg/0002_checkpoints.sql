-- Fleet store (PostgreSQL) 0002: signed checkpoints (collector/src/fleet/key.rs).
-- Each batch a host ships ends in a checkpoint: the seq and record hash of
-- its last version, signed (Ed25519) with the host's own key over
-- "filetrail checkpoint 1\0" || host || "\0" || seq (8 bytes, big-endian)
-- || record_hash. The host's public key is pinned at its first signed batch;
-- a host shipping with another key is stopped with a `chain_key` alert.

ALTER TABLE hosts ADD COLUMN public_key BYTEA;  -- Ed25519, 32 bytes; NULL: never signed

CREATE TABLE checkpoints (
    host        TEXT NOT NULL REFERENCES hosts (host),
    seq         BIGINT NOT NULL,   -- the batch's last version
    record_hash BYTEA NOT NULL,    -- its record hash
    signature   BYTEA NOT NULL,    -- 64 bytes
    signed_us   BIGINT NOT NULL,   -- server clock when accepted
    PRIMARY KEY (host, seq)
);
