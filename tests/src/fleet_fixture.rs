//! TEST FIXTURE, not the shipper: copies one host's SQLite store into the
//! fleet store (`collector/migrations-pg/0001_fleet.sql`) with the row
//! shape the shipper writes — a version keyed (host, seq = its local id),
//! "who" denormalized onto it, content once per SHA-256 (whole, `codec` 0
//! raw or 1 zstd), the host's gaps with their local id as `seq` — so the
//! fleet-review tests can compare the fleet's answers with the host's own.
//! The content bytes are what `collector show` gives on the host's store
//! (decoding the local blobs, deltas included, is the collector's job). No
//! chain: `record_hash` is a placeholder.

use std::path::Path;
use std::process::Command;

use rusqlite::OptionalExtension;

/// `collector show` on the host's store: the bytes of one side, if it has any.
fn local_content(db: &Path, id: i64, before: bool) -> Option<Vec<u8>> {
    let mut cmd = Command::new(crate::collector_bin());
    cmd.args(["show", "--db"]).arg(db).arg(id.to_string());
    if before {
        cmd.arg("--before");
    }
    let out = cmd.output().unwrap();
    out.status.success().then_some(out.stdout)
}

/// Ships every version and gap of the store `db` as host `host`; content is
/// stored zstd-compressed when `zstd`, raw otherwise. Returns how many versions.
pub fn ship(db: &Path, host: &str, fleet: &mut postgres::Client, zstd: bool) -> usize {
    let local = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut tx = fleet.transaction().unwrap();
    tx.execute("INSERT INTO hosts (host) VALUES ($1) ON CONFLICT DO NOTHING", &[&host]).unwrap();
    let mut stmt = local
        .prepare(
            "SELECT v.id, v.time_us, v.path, v.named_path, v.action, v.old_path, v.via,
                    b.sha256, CASE WHEN b.redacted THEN 'redacted' ELSE v.before_state END, b.size,
                    a.sha256, CASE WHEN a.redacted THEN 'redacted' ELSE v.after_state END, a.size,
                    v.consistent, v.mode, v.owner_uid, v.group_gid, v.before_mode, v.before_owner_uid,
                    v.before_group_gid, v.seen_by, v.gap_before, v.temp_name, v.folded_into,
                    p.user, p.chain, p.uid, p.euid, p.gid, p.loginuid, p.session, p.sudo_user, p.tty, p.ssh_client,
                    w.pid, w.exe, w.argv, w.cwd, w.trust
             FROM versions v JOIN principals p ON p.id = v.principal JOIN writers w ON w.id = v.writer
             LEFT JOIN blobs b ON b.id = v.before_blob LEFT JOIN blobs a ON a.id = v.after_blob
             ORDER BY v.id",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0;
    while let Some(r) = rows.next().unwrap() {
        let id: i64 = r.get(0).unwrap();
        for (before, sha_col, state_col) in [(true, 7, 8), (false, 10, 11)] {
            let sha: Option<Vec<u8>> = r.get(sha_col).unwrap();
            let state: Option<String> = r.get(state_col).unwrap();
            if let (Some(sha), Some("stored")) = (sha, state.as_deref())
                && let Some(bytes) = local_content(db, id, before)
            {
                let (codec, data): (i16, Vec<u8>) =
                    if zstd { (1, ::zstd::encode_all(&bytes[..], 3).unwrap()) } else { (0, bytes.clone()) };
                tx.execute(
                    "INSERT INTO blobs (sha256, size, codec, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&sha, &(bytes.len() as i64), &codec, &data],
                )
                .unwrap();
            }
        }
        let i = |k: usize| r.get::<_, Option<i64>>(k).unwrap();
        let i32_ = |k: usize| r.get::<_, Option<i64>>(k).unwrap().map(|v| v as i32);
        let t = |k: usize| r.get::<_, Option<String>>(k).unwrap();
        let b = |k: usize| r.get::<_, Option<Vec<u8>>>(k).unwrap();
        let flag = |k: usize| r.get::<_, bool>(k).unwrap();
        tx.execute(
            "INSERT INTO versions (host, seq, time_us, path, named_path, action, old_path, via,
                 before_sha, before_state, before_size, after_sha, after_state, after_size, consistent,
                 mode, owner_uid, group_gid, before_mode, before_owner_uid, before_group_gid, seen_by, gap_before,
                 temp_name, folded_into, \"user\", chain, uid, euid, gid, loginuid, session, sudo_user, tty,
                 ssh_client, pid, exe, argv, cwd, trust, record_hash, prev_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                 $21, $22, $23, $24, $25, $26, $27::text::jsonb, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38::text::jsonb, $39,
                 $40, $41, NULL)
             ON CONFLICT DO NOTHING",
            &[
                &host,
                &id,
                &i(1).unwrap(),
                &b(2).unwrap(),
                &b(3),
                &t(4).unwrap(),
                &b(5),
                &b(6),
                &b(7),
                &t(8),
                &i(9),
                &b(10),
                &t(11),
                &i(12),
                &flag(13),
                &i32_(14),
                &i(15),
                &i(16),
                &i32_(17),
                &i(18),
                &i(19),
                &t(20).unwrap(),
                &flag(21),
                &flag(22),
                &i(23),
                &t(24).unwrap(),
                &t(25).unwrap(),
                &i(26).unwrap(),
                &i(27).unwrap(),
                &i(28).unwrap(),
                &i(29),
                &i(30),
                &t(31),
                &t(32),
                &t(33),
                &i32_(34).unwrap(),
                &t(35).unwrap(),
                &t(36).unwrap(),
                &t(37),
                &i(38).unwrap(),
                &crate::sha256(format!("{host}:{id}").as_bytes()).into_bytes(),
            ],
        )
        .unwrap();
        n += 1;
    }
    let mut stmt = local
        .prepare(
            "SELECT id, time_us, since_us, until_us, uid, user, what, versions, bytes, source, pid, exe, path
             FROM gaps ORDER BY id",
        )
        .unwrap();
    let mut gaps = stmt.query([]).unwrap();
    while let Some(g) = gaps.next().unwrap() {
        let i = |k: usize| g.get::<_, Option<i64>>(k).unwrap();
        let t = |k: usize| g.get::<_, Option<String>>(k).unwrap();
        tx.execute(
            "INSERT INTO gaps (host, seq, time_us, since_us, until_us, uid, \"user\", what, versions, bytes, source,
                 pid, exe, path)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
            &[
                &host,
                &i(0),
                &i(1).unwrap(),
                &i(2),
                &i(3),
                &i(4),
                &t(5),
                &t(6).unwrap(),
                &i(7).unwrap(),
                &i(8).unwrap(),
                &t(9),
                &i(10).map(|p| p as i32),
                &t(11),
                &g.get::<_, Option<Vec<u8>>>(12).unwrap(),
            ],
        )
        .unwrap();
    }
    let head: Option<i64> =
        local.query_row("SELECT max(id) FROM versions", [], |r| r.get(0)).optional().unwrap().flatten();
    tx.execute("UPDATE hosts SET head_seq = $2 WHERE host = $1", &[&host, &head.unwrap_or(0)]).unwrap();
    tx.commit().unwrap();
    n
}
