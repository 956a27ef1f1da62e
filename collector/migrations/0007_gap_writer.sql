-- 0007: gaps say whose and where (issue 10, "gaps are records"). A gap
-- reported on a live connection names the process the kernel verified
-- (pid, program); a gap about one file names it, so `query PATH` and `log
-- PATH` show it beside that file's versions.
ALTER TABLE gaps ADD COLUMN pid INTEGER;
ALTER TABLE gaps ADD COLUMN exe TEXT;
ALTER TABLE gaps ADD COLUMN path BLOB;        -- raw bytes; NULL: not about one known file
CREATE INDEX gaps_path ON gaps (path) WHERE path IS NOT NULL;
