-- 0009: the tamper-evident chain (issue 13; collector/src/chain.rs,
-- docs/security.md). Each version's `record_hash` is the SHA-256 of its
-- covered fields after `prev_hash`, the record hash of the version before it
-- in id order (NULL for the first). Set in the transaction that inserts the
-- version; a store made before this migration is chained by the migration
-- itself (collector/src/store/schema.rs runs the hashing in its transaction).
ALTER TABLE versions ADD COLUMN record_hash BLOB;
ALTER TABLE versions ADD COLUMN prev_hash BLOB;
