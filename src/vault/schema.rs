//! Numbered, append-only migrations: SQLite's tracked in `PRAGMA
//! user_version`, PostgreSQL's in the one-row table `authsome_schema`.

use rusqlite::Connection;

use super::db::{Tx, params};
use crate::error::{Error, Result};

/// Migrations in order; index + 1 is the version each one produces.
/// Append only: an applied migration is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_audit.sql"),
    include_str!("migrations/sqlite/0003_oauth.sql"),
    include_str!("migrations/sqlite/0004_oauth_endpoints.sql"),
    include_str!("migrations/sqlite/0005_oauth_redirect_uri.sql"),
    include_str!("migrations/sqlite/0006_connection_flow.sql"),
    include_str!("migrations/sqlite/0007_provider_tags.sql"),
    include_str!("migrations/sqlite/0008_connection_cookies.sql"),
    include_str!("migrations/sqlite/0009_provider_choices.sql"),
    include_str!("migrations/sqlite/0010_team.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// PostgreSQL's migrations, by the version each one produces. No
/// PostgreSQL store predates version 9, so its first step is the whole
/// schema at 9; every later version ships in both dialects.
const PG_MIGRATIONS: &[(u32, &str)] = &[
    (9, include_str!("migrations/postgres/0009_baseline.sql")),
    (10, include_str!("migrations/postgres/0010_team.sql")),
];

/// The migration that added provider tags (`0007_provider_tags.sql`).
pub const PROVIDER_TAGS_VERSION: u32 = 7;

/// Brings the database up to [`SCHEMA_VERSION`], each step in its own
/// transaction. Returns the version it found.
pub fn migrate(conn: &mut Connection) -> Result<u32> {
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| Error::db("cannot read the vault schema version", e))?;
    too_new(current)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let tx = conn
            .transaction()
            .map_err(|e| Error::db("cannot start a migration", e))?;
        tx.execute_batch(sql)
            .map_err(|e| Error::db(format!("vault migration {version:04} failed"), e))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|e| Error::db("cannot record the schema version", e))?;
        tx.commit()
            .map_err(|e| Error::db("cannot commit a migration", e))?;
    }
    Ok(current)
}

/// Brings a PostgreSQL store up to [`SCHEMA_VERSION`] inside `tx`, under an
/// advisory lock: replicas that start together migrate once, the others
/// wait and find it done. Returns the version it found.
pub fn migrate_postgres(tx: &mut Tx<'_>) -> Result<u32> {
    tx.lock_key("authsome-migrate")?;
    tx.batch("CREATE TABLE IF NOT EXISTS authsome_schema (version BIGINT NOT NULL)")?;
    let current = match tx.query_opt("SELECT version FROM authsome_schema", &[])? {
        Some(r) => r.u32(0)?,
        None => {
            tx.execute("INSERT INTO authsome_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    too_new(current)?;
    for (version, sql) in PG_MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch(sql).map_err(|e| match e {
            Error::Database { cause, .. } => {
                Error::db(format!("store migration {version:04} failed"), cause)
            }
            other => other,
        })?;
        tx.execute("UPDATE authsome_schema SET version = ?1", params![*version])?;
    }
    Ok(current)
}

fn too_new(current: u32) -> Result<()> {
    if current > SCHEMA_VERSION {
        return Err(Error::invalid(
            format!(
                "the vault was written by a newer authsome (schema {current}, this build knows {SCHEMA_VERSION})"
            ),
            Some("upgrade authsome".into()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_end_at_the_same_version() {
        assert_eq!(PG_MIGRATIONS.last().map(|m| m.0), Some(SCHEMA_VERSION));
        assert!(PG_MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
