//! The fleet store's schema: numbered SQL files in
//! `collector/migrations-pg/`, applied in order, one transaction each, under
//! a transaction-scoped advisory lock (collectors of many hosts may start at
//! once); the table `fleet_schema` records which were applied. A fleet store
//! newer than this binary is refused.

use postgres::Client;

pub use super::connect;

use crate::error::{Error, Result};

const MIGRATIONS: &[&str] =
    &[include_str!("../../migrations-pg/0001_fleet.sql"), include_str!("../../migrations-pg/0002_checkpoints.sql")];

/// The advisory lock key migrations hold ("filetrl" in ASCII).
const LOCK: i64 = 0x0066_696c_6574_726c;

/// Applies the migrations this store lacks.
pub fn migrate(client: &mut Client) -> Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = (i + 1) as i32;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
        let current = applied(&mut tx)?;
        if current > MIGRATIONS.len() as i32 {
            return Err(Error::FleetSetup(format!(
                "schema version {current} is newer than this collector ({}); upgrade filetrail",
                MIGRATIONS.len()
            )));
        }
        if current >= version {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO fleet_schema (version, applied_us)
             VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)",
            &[&version],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// How many migrations the store has (0: none, not even `fleet_schema`).
fn applied(tx: &mut postgres::Transaction) -> Result<i32> {
    let exists: bool = tx.query_one("SELECT to_regclass('fleet_schema') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(0);
    }
    Ok(tx.query_one("SELECT coalesce(max(version), 0) FROM fleet_schema", &[])?.get(0))
}
