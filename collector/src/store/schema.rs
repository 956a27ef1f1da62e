//! Schema migrations: numbered SQL files in `collector/migrations/`, applied
//! in order inside one transaction each; `PRAGMA user_version` records how
//! many have been applied. A store newer than this binary is refused.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_sessions.sql"),
    include_str!("../../migrations/0003_redacted_blobs.sql"),
    include_str!("../../migrations/0004_gaps.sql"),
    include_str!("../../migrations/0005_origin.sql"),
    include_str!("../../migrations/0006_kernel_watch.sql"),
    include_str!("../../migrations/0007_gap_writer.sql"),
    include_str!("../../migrations/0008_fold.sql"),
    include_str!("../../migrations/0009_chain.sql"),
];

/// Migration 0009 adds the chain; the versions already stored are chained
/// in its transaction (SHA-256 is computed here, not in SQL).
const CHAIN: usize = 9;

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(too_new(current));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if i + 1 == CHAIN {
            super::chain::backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// A read-only opener can't migrate: it checks the store is not newer.
pub fn check_readable(conn: &Connection) -> rusqlite::Result<()> {
    let current = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() { Err(too_new(current)) } else { Ok(()) }
}

fn too_new(v: usize) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(
        format!("store schema version {v} is newer than this collector ({}); upgrade filetrail", MIGRATIONS.len())
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v = c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).unwrap() as usize;
        assert_eq!(v, MIGRATIONS.len());
    }
}
