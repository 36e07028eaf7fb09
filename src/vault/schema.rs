//! Numbered, append-only migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Migrations in order; index + 1 is the version each one produces.
/// Append only: an applied migration is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_audit.sql"),
    include_str!("migrations/0003_oauth.sql"),
    include_str!("migrations/0004_oauth_endpoints.sql"),
    include_str!("migrations/0005_oauth_redirect_uri.sql"),
    include_str!("migrations/0006_connection_flow.sql"),
    include_str!("migrations/0007_provider_tags.sql"),
    include_str!("migrations/0008_connection_cookies.sql"),
    include_str!("migrations/0009_provider_choices.sql"),
    include_str!("migrations/0010_team.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The migration that added provider tags (`0007_provider_tags.sql`).
pub const PROVIDER_TAGS_VERSION: u32 = 7;

/// Brings the database up to [`SCHEMA_VERSION`], each step in its own
/// transaction. Returns the version it found.
pub fn migrate(conn: &mut Connection) -> Result<u32> {
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| Error::db("cannot read the vault schema version", e))?;
    if current > SCHEMA_VERSION {
        return Err(Error::invalid(
            format!(
                "the vault was written by a newer authsome (schema {current}, this build knows {SCHEMA_VERSION})"
            ),
            Some("upgrade authsome".into()),
        ));
    }
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
