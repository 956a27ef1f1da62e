-- 0003: where a version came from, so that one sent twice is stored once.
-- A library numbers its events and sends again, after a reconnect, what the
-- collector had not acknowledged; `origin` names the version after the
-- event it came from: the first 16 bytes of a SHA-256 over the boot id, the
-- writer's pid and start time (the kernel's), the library's random number
-- for that process image and the event's number (collector/src/delivery.rs).
-- NULL: from an older client, `restore`, or stored before this migration.
ALTER TABLE versions ADD COLUMN origin BLOB;
CREATE UNIQUE INDEX versions_origin ON versions (origin) WHERE origin IS NOT NULL;
