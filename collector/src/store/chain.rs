//! The local store's side of the chain ([`crate::chain`]): reading a
//! version's covered fields (the insert computes the same from the values it
//! stores: `store/mod.rs`), chaining
//! the versions of a store made before migration 0009 (in that migration's
//! transaction), and checking the chain (`collector verify`).

use rusqlite::{Connection, params};

use crate::chain::{Checker, Record, SideRecord, strings};
use crate::error::Result;

/// A version as the chain and the fleet shipper read it: the covered
/// record, the uncovered interpretation, its blobs and its links.
#[derive(Debug, Clone)]
pub struct Row {
    pub record: Record,
    pub action: String,
    pub old_path: Option<Vec<u8>>,
    pub via: Option<Vec<u8>>,
    pub folded_into: Option<i64>,
    pub before_blob: Option<i64>,
    pub after_blob: Option<i64>,
    pub record_hash: Option<Vec<u8>>,
    pub prev_hash: Option<Vec<u8>>,
}

pub(crate) const SELECT: &str = "SELECT v.id, v.time_us, v.path, v.named_path, coalesce(v.via, v.old_path),
        b.sha256, v.before_state, b.size, a.sha256, v.after_state, a.size, v.consistent,
        v.mode, v.owner_uid, v.group_gid, v.before_mode, v.before_owner_uid, v.before_group_gid,
        v.seen_by, v.gap_before, v.temp_name,
        p.user, p.chain, p.uid, p.euid, p.gid, p.loginuid, p.session, p.sudo_user, p.tty, p.ssh_client,
        w.pid, w.exe, w.argv, w.cwd, w.trust,
        v.action, v.old_path, v.via, v.folded_into, v.before_blob, v.after_blob, v.record_hash, v.prev_hash
    FROM versions v JOIN writers w ON w.id = v.writer JOIN principals p ON p.id = v.principal
    LEFT JOIN blobs b ON b.id = v.before_blob LEFT JOIN blobs a ON a.id = v.after_blob";

pub(crate) fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    let side = |i: usize| -> rusqlite::Result<SideRecord> {
        Ok(SideRecord { sha256: r.get(i)?, state: r.get(i + 1)?, size: r.get(i + 2)? })
    };
    let record = Record {
        seq: r.get(0)?,
        time_us: r.get(1)?,
        path: r.get(2)?,
        named_path: r.get(3)?,
        source: r.get(4)?,
        before: side(5)?,
        after: side(8)?,
        consistent: r.get(11)?,
        mode: r.get(12)?,
        owner_uid: r.get(13)?,
        group_gid: r.get(14)?,
        before_mode: r.get(15)?,
        before_owner_uid: r.get(16)?,
        before_group_gid: r.get(17)?,
        seen_by: r.get(18)?,
        gap_before: r.get(19)?,
        temp_name: r.get(20)?,
        user: r.get(21)?,
        chain: strings(&r.get::<_, String>(22)?),
        uid: r.get(23)?,
        euid: r.get(24)?,
        gid: r.get(25)?,
        loginuid: r.get(26)?,
        session: r.get(27)?,
        sudo_user: r.get(28)?,
        tty: r.get(29)?,
        ssh_client: r.get(30)?,
        pid: r.get(31)?,
        exe: r.get(32)?,
        argv: strings(&r.get::<_, String>(33)?),
        cwd: r.get(34)?,
        trust: r.get(35)?,
    };
    Ok(Row {
        record,
        action: r.get(36)?,
        old_path: r.get(37)?,
        via: r.get(38)?,
        folded_into: r.get(39)?,
        before_blob: r.get(40)?,
        after_blob: r.get(41)?,
        record_hash: r.get(42)?,
        prev_hash: r.get(43)?,
    })
}

/// Versions with ids in `from..` (at most `limit`), in id order.
pub(crate) fn rows_from(conn: &Connection, from: i64, limit: i64) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE v.id >= ?1 ORDER BY v.id LIMIT ?2"))?;
    Ok(stmt.query_map(params![from, limit], row)?.collect::<rusqlite::Result<_>>()?)
}

/// Chains every version of a store that has none yet (a store made before
/// migration 0009), in id order; run inside that migration's transaction.
pub(super) fn backfill(conn: &Connection) -> rusqlite::Result<()> {
    let mut prev: Option<Vec<u8>> = None;
    let mut from = 0;
    loop {
        let rows = rows_from(conn, from, 1000).map_err(|e| match e {
            crate::error::Error::Sql(e) => e,
            e => rusqlite::Error::ToSqlConversionFailure(e.to_string().into()),
        })?;
        let Some(last) = rows.last() else { return Ok(()) };
        from = last.record.seq + 1;
        let mut update = conn.prepare_cached("UPDATE versions SET record_hash = ?2, prev_hash = ?3 WHERE id = ?1")?;
        for r in rows {
            let hash = r.record.hash(prev.as_deref());
            update.execute(params![r.record.seq, &hash[..], prev])?;
            prev = Some(hash.to_vec());
        }
    }
}

/// Checks the chain: every version's record hash is its fields' hash after
/// its previous hash, and that previous hash is the record hash of the
/// version before it. Ids are given by SQLite one above the highest and no
/// version is ever deleted, so a missing id is a deleted version. The
/// newest versions can be cut off without a trace here (nothing follows
/// them): the fleet store's head is what catches that.
pub(crate) fn verify(conn: &Connection, problems: &mut Vec<String>) -> Result<()> {
    let mut check = Checker::default();
    let mut from = 0;
    loop {
        let rows = rows_from(conn, from, 1000)?;
        let Some(last) = rows.last() else { break };
        from = last.record.seq + 1;
        for r in rows {
            check.next(&r.record, r.record_hash, r.prev_hash.as_deref());
        }
    }
    problems.append(&mut check.problems);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Store;
    use crate::model::{Action, Draft, NewVersion, Side};
    use crate::who::Identity;

    fn version(name: &str, after: &str) -> NewVersion {
        let side = Some(Side::from_bytes(after.as_bytes().to_vec(), None, true));
        let path = format!("/etc/{name}").into_bytes();
        let draft = Draft::new(path, Action::Create, None, side, jiff::Timestamp::now());
        NewVersion { draft, who: Arc::new(Identity { pid: 7, key: 7, ..Default::default() }), delivery: None }
    }

    fn problems(store: &Store) -> Vec<String> {
        store.verify().unwrap().problems
    }

    #[test]
    fn a_deleted_edited_or_swapped_version_is_named_and_old_stores_are_chained() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        for i in 1..=5 {
            store.insert(&[version(&format!("f{i}"), &format!("v{i}"))]).unwrap();
        }
        assert_eq!(problems(&store), Vec::<String>::new());
        // Folding (the interpretation) is not covered.
        store.conn.execute("UPDATE versions SET folded_into = 2, action = 'write' WHERE id = 1", []).unwrap();
        assert_eq!(problems(&store), Vec::<String>::new());

        // A store chained before 0009 gets its chain from the migration.
        store.conn.execute("UPDATE versions SET record_hash = NULL, prev_hash = NULL", []).unwrap();
        super::backfill(&store.conn).unwrap();
        assert_eq!(problems(&store), Vec::<String>::new());

        store.conn.execute("UPDATE versions SET path = CAST('/etc/x' AS BLOB) WHERE id = 2", []).unwrap();
        let p = problems(&store);
        assert!(p.len() == 1 && p[0].starts_with("version 2: "), "{p:?}");
        store.conn.execute("UPDATE versions SET path = CAST('/etc/f2' AS BLOB) WHERE id = 2", []).unwrap();
        assert_eq!(problems(&store), Vec::<String>::new());

        store.conn.execute("DELETE FROM versions WHERE id = 4", []).unwrap();
        let p = problems(&store);
        assert!(p.len() == 1 && p[0].starts_with("version 4: missing"), "{p:?}");
        // Swapping two rows' ids (reordering): both named.
        store
            .conn
            .execute_batch(
                "UPDATE versions SET id = 100 WHERE id = 2; UPDATE versions SET id = 2 WHERE id = 3;
            UPDATE versions SET id = 3 WHERE id = 100;",
            )
            .unwrap();
        let p = problems(&store);
        assert!(
            p.iter().any(|p| p.starts_with("version 2: ")) && p.iter().any(|p| p.starts_with("version 3: ")),
            "{p:?}"
        );
    }

    #[test]
    fn what_the_insert_hashes_is_what_verify_reads_back() {
        use crate::model::{SeenBy, Stored};
        use filetrail_wire::Meta;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let meta = Some(Meta { mode: 0o100644, uid: 3, gid: 4, ..Default::default() });
        let mut a = version("a", "one");
        a.draft.after.as_mut().unwrap().meta = meta;
        let mut secret = version("k.key", "one");
        secret.draft.after.as_mut().unwrap().stored = Stored::Redacted;
        let mut unreadable = version("u", "x");
        unreadable.draft.after.as_mut().unwrap().sha256 = None;
        let mut renamed = version("b", "two");
        (renamed.draft.action, renamed.draft.old_path) = (Action::Rename, Some(b"/etc/b.tmp".to_vec()));
        let mut kernel = version("c", "three");
        kernel.draft.seen_by = SeenBy::Kernel;
        let who = Identity {
            pid: 9,
            key: 9,
            user: "alice".into(),
            chain: vec!["alice".into(), "root".into()],
            argv: vec!["vi".into(), "x y".into()],
            loginuid: Some(1000),
            session: Some(3),
            tty: Some("/dev/pts/1".into()),
            ..Default::default()
        };
        kernel.who = Arc::new(who.clone());
        let mut library = version("c", "three");
        library.who = Arc::new(Identity { key: 10, ..who });
        store.insert(&[a, secret, unreadable, renamed, kernel]).unwrap();
        store.insert(&[library]).unwrap();
        assert_eq!(problems(&store), Vec::<String>::new());
    }

    #[test]
    fn a_store_from_before_0009_is_chained_by_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let mut store = Store::open(&db).unwrap();
        store.insert(&[version("a", "1"), version("b", "2"), version("c", "3")]).unwrap();
        // Back to schema 8: no chain columns.
        store
            .conn
            .execute_batch(
                "ALTER TABLE versions DROP COLUMN record_hash; ALTER TABLE versions DROP COLUMN prev_hash;
                 PRAGMA user_version = 8;",
            )
            .unwrap();
        drop(store);
        let mut store = Store::open(&db).unwrap();
        assert_eq!(problems(&store), Vec::<String>::new());
        store.insert(&[version("d", "4")]).unwrap();
        assert_eq!(problems(&store), Vec::<String>::new());
        let unchained: i64 =
            store.conn.query_row("SELECT count(*) FROM versions WHERE record_hash IS NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(unchained, 0);
    }
}
