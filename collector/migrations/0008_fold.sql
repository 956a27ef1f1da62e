-- 0008: folding (issue 15). A temp file renamed over a tracked path — by
-- the same process or another one of the same user and session, up to ten
-- minutes later — is one change of that path: the rename's row becomes a
-- `write` (or `create`) of the path `via` the temp name, and the temp
-- file's own versions are folded into it (`folded_into` its id): kept, with
-- their content, shown by `query --all` only. A temp file deleted without
-- being renamed is folded into its delete, which is folded into itself.
ALTER TABLE versions ADD COLUMN via BLOB;            -- raw bytes: the temp name renamed over `path`
ALTER TABLE versions ADD COLUMN folded_into INTEGER; -- NULL: shown; else the version that stands for this step
ALTER TABLE versions ADD COLUMN temp_name INTEGER NOT NULL DEFAULT 0;  -- `path` is named like a temp file
-- A file's history includes it being renamed over another path.
CREATE INDEX versions_via ON versions (via) WHERE via IS NOT NULL;
