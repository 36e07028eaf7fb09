//! The audit log: one row per security-relevant event (logins, removals,
//! exports, provider changes, credential use), appended and listed newest
//! first. Rows carry names, hosts and outcomes, never a secret.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::Vault;
use crate::clock::now_unix;
use crate::error::{Error, Result};

/// One audit record. Carries names, hosts and outcomes; never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub ts: i64,
    /// `login`, `logout`, `revoke`, `export`, `set_default`, `provider.register`,
    /// `provider.remove`, `credential.resolve`.
    pub event: String,
    pub provider: Option<String>,
    pub connection: Option<String>,
    /// The caller's `did:key`, or `browser` for the input form.
    pub actor: Option<String>,
    /// `ok`, `failed` or `refused`.
    pub outcome: String,
    pub detail: serde_json::Value,
}

impl Vault {
    /// Appends an audit record.
    pub fn append_audit(
        &self,
        event: &str,
        provider: Option<&str>,
        connection: Option<&str>,
        actor: Option<&str>,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO audit (ts, event, provider, connection, actor, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![now_unix(), event, provider, connection, actor, outcome, detail.to_string()],
            )
            .map_err(|e| Error::db("cannot write the audit log", e))?;
        Ok(())
    }

    /// The newest `limit` audit records, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, ts, event, provider, connection, actor, outcome, detail FROM audit ORDER BY ts DESC, id DESC LIMIT ?1",
            )
            .map_err(|e| Error::db("cannot read the audit log", e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                let detail: String = r.get(7)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    event: r.get(2)?,
                    provider: r.get(3)?,
                    connection: r.get(4)?,
                    actor: r.get(5)?,
                    outcome: r.get(6)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| Error::db("cannot read the audit log", e))?;
        Ok(rows)
    }
}
