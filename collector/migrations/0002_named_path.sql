-- 0002: the path as the program named it, when a symlink led elsewhere
-- (e.g. /etc/resolv.conf -> /run/...). `path` stays the file really changed.
ALTER TABLE versions ADD COLUMN named_path BLOB;

-- "collector query /etc/resolv.conf" also finds versions made through that name.
CREATE INDEX versions_named_path ON versions (named_path) WHERE named_path IS NOT NULL;
