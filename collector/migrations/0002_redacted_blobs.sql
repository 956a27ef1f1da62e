-- 0002: contents that must never be stored. A content is redacted when it
-- was in a file whose name matches a `redact` glob, or equals one that was:
-- its blob keeps hash and size, never data, and a stored copy of the same
-- bytes (under another name, or stored before it was known to be secret) is
-- purged by the writer (`store/purge.rs`).
ALTER TABLE blobs ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET redacted = 1 WHERE size > 0 AND id IN (
    SELECT before_blob FROM versions WHERE before_state = 'redacted'
    UNION SELECT after_blob FROM versions WHERE after_state = 'redacted');
-- A purge re-encodes the blobs whose delta chain goes through the purged one,
-- and relabels the versions that refer to it.
CREATE INDEX blobs_base ON blobs (base) WHERE base IS NOT NULL;
CREATE INDEX versions_before_blob ON versions (before_blob) WHERE before_blob IS NOT NULL;
CREATE INDEX versions_after_blob ON versions (after_blob) WHERE after_blob IS NOT NULL;
