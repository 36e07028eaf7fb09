//! The audit log: one row per security-relevant event (logins, removals,
//! exports, provider changes, credential use), appended and listed newest
//! first. Rows carry names, hosts and outcomes, never a secret.

use serde::{Deserialize, Serialize};

use super::Vault;
use super::db::params;
use crate::clock::now_unix;
use crate::error::Result;

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
        self.write("cannot write the audit log", |tx| {
            tx.execute(
                "INSERT INTO audit (ts, event, provider, connection, actor, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![now_unix(), event, provider, connection, actor, outcome, detail.to_string()],
            )
        })?;
        Ok(())
    }

    /// The newest `limit` audit records, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read("cannot read the audit log", |tx| {
            tx.query(
                "SELECT id, ts, event, provider, connection, actor, outcome, detail FROM audit ORDER BY ts DESC, id DESC LIMIT ?1",
                params![limit as i64],
            )?
            .iter()
            .map(entry)
            .collect()
        })
    }
}

/// An audit row (`id, ts, event, provider, connection, actor, outcome, detail`).
pub(super) fn entry(r: &super::db::Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.i64(0)?,
        ts: r.i64(1)?,
        event: r.str(2)?,
        provider: r.opt_str(3)?,
        connection: r.opt_str(4)?,
        actor: r.opt_str(5)?,
        outcome: r.str(6)?,
        detail: serde_json::from_str(&r.str(7)?).unwrap_or(serde_json::Value::Null),
    })
}
