//! A token refresh as one step of the store, so that the daemons sharing a
//! store never spend one refresh token twice.
//!
//! Why: a rotated refresh token is valid once. Within one daemon a mutex
//! per connection keeps refreshes single-flight; across daemons on a
//! PostgreSQL store, [`Vault::refresh_locked`] reads the connection with
//! `SELECT … FOR UPDATE`, lets the caller talk to the token endpoint while
//! the row is locked, and writes what came back in the same transaction.
//! A second daemon blocks on the row, then reads the fresh token and has
//! nothing to do. If a daemon dies mid-refresh the transaction rolls back,
//! and the next refresh with the old token is refused by the provider
//! (`invalid_grant`: the connection is marked expired, "log in again"),
//! the same window a single SQLite daemon has.
//!
//! On SQLite the lock is not held across the HTTP call (a CLI writing the
//! file would time out on it); the update stays a compare-and-swap on the
//! refresh token that was used ([`Vault::update_tokens`]).

use super::connections::{CONNECTION_COLUMNS, TABLE, row_to_record};
use super::crypto::{self, Aad};
use super::db::{Topic, TxInner, params};
use super::{ConnectionRecord, ConnectionSecrets, ConnectionStatus, Vault, crypto_to_io};
use crate::clock::now_unix;
use crate::error::Result;
use crate::secret::Secret;

/// What a refresh decided, applied by [`Vault::refresh_locked`].
#[derive(Debug)]
pub enum RefreshStep {
    /// Store new tokens (`refresh: None` keeps the stored refresh token).
    Store {
        access: Secret<String>,
        refresh: Option<Secret<String>>,
        expires_at: Option<i64>,
    },
    /// The provider refused the refresh token: the connection is expired.
    Expire,
    /// Nothing to write.
    Keep,
}

impl Vault {
    /// Runs `decide` on the connection's current record and secrets while no
    /// other daemon on the store can refresh it, and applies the step it
    /// returns. Returns the record after the step and `decide`'s value;
    /// `None` when the connection does not exist.
    pub fn refresh_locked<T>(
        &self,
        provider: &str,
        name: &str,
        decide: impl FnOnce(&ConnectionRecord, &ConnectionSecrets) -> (RefreshStep, T),
    ) -> Result<Option<(ConnectionRecord, T)>> {
        if self.backend() == "sqlite" {
            return self.refresh_sqlite(provider, name, decide);
        }
        let what = format!("cannot refresh the token of {provider}/{name}");
        self.write(&what, |tx| {
            debug_assert!(matches!(tx.inner, TxInner::Pg(_)));
            let Some(row) = tx.query_opt(
                &format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = ?1 AND name = ?2 FOR UPDATE"
                ),
                params![provider, name],
            )?
            else {
                return Ok(None);
            };
            let rec = row_to_record(&row)?;
            let secrets = self.read_secrets_in(tx, &rec)?;
            let (step, out) = decide(&rec, &secrets);
            match step {
                RefreshStep::Keep => return Ok(Some((rec, out))),
                RefreshStep::Expire => {
                    tx.execute(
                        "UPDATE connections SET status = ?2, updated_at = ?3 WHERE id = ?1",
                        params![&rec.id, ConnectionStatus::Expired.as_str(), now_unix()],
                    )?;
                }
                RefreshStep::Store {
                    access,
                    refresh,
                    expires_at,
                } => {
                    let kv = tx
                        .query_one(
                            "SELECT key_version FROM connections WHERE id = ?1",
                            params![&rec.id],
                        )?
                        .u32(0)?;
                    let seal = |field: &str, v: &Secret<String>| {
                        let aad = Aad {
                            table: TABLE,
                            record_id: &rec.id,
                            field,
                            key_version: kv,
                        };
                        crypto::seal(&self.dek, &aad, v.expose().as_bytes()).map_err(crypto_to_io)
                    };
                    let access_blob = seal("access_token", &access)?;
                    let refresh_blob = match refresh.as_ref().or(secrets.refresh_token.as_ref()) {
                        Some(r) => Some(seal("refresh_token", r)?),
                        None => None,
                    };
                    tx.execute(
                        "UPDATE connections SET access_token = ?2, refresh_token = ?3, expires_at = ?4, \
                         status = 'connected', updated_at = ?5 WHERE id = ?1",
                        params![&rec.id, access_blob, refresh_blob, expires_at, now_unix()],
                    )?;
                }
            }
            tx.notify(&Topic::Provider(provider.to_string()))?;
            let rec = row_to_record(&tx.query_one(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = ?1"),
                params![&rec.id],
            )?)?;
            Ok(Some((rec, out)))
        })
    }

    fn refresh_sqlite<T>(
        &self,
        provider: &str,
        name: &str,
        decide: impl FnOnce(&ConnectionRecord, &ConnectionSecrets) -> (RefreshStep, T),
    ) -> Result<Option<(ConnectionRecord, T)>> {
        let Some(rec) = self.find_connection(provider, name)? else {
            return Ok(None);
        };
        let secrets = self.read_secrets(&rec)?;
        let (step, out) = decide(&rec, &secrets);
        match step {
            RefreshStep::Keep => return Ok(Some((rec, out))),
            RefreshStep::Expire => self.set_status(&rec, ConnectionStatus::Expired)?,
            RefreshStep::Store {
                access,
                refresh,
                expires_at,
            } => {
                let stored = self.update_tokens(
                    &rec,
                    secrets.refresh_token.as_ref(),
                    &access,
                    refresh.as_ref(),
                    expires_at,
                )?;
                if !stored {
                    tracing::warn!(%provider, connection = %name, "the connection changed during the refresh; using the stored token");
                }
            }
        }
        Ok(self.find_connection(provider, name)?.map(|rec| (rec, out)))
    }
}
