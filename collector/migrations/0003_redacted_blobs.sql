-- 0002: contents that must never be stored. A content is redacted when it
-- was in a file whose name matches a `redact` glob, or equals one that was:
-- its blob keeps hash and size, never data, and a stored copy of the same
-- bytes (under another name, or stored before it was known to be secret) is
-- purged by the writer (`store/purge.rs`). A version whose blob is redacted
-- reads as redacted whatever its state column says (no index on versions by
-- blob is kept for relabelling them: it would cost ~10% of the store).
ALTER TABLE blobs ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET redacted = 1 WHERE size > 0 AND id IN (
    SELECT before_blob FROM versions WHERE before_state = 'redacted'
    UNION SELECT after_blob FROM versions WHERE after_state = 'redacted');
