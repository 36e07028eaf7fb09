//! Stored connections: the records (provider, name, status, default flag,
//! scopes, expiry) and their secret fields (API key, access token, refresh
//! token, a browser session's cookies), each sealed under the data key and bound to its row and column.
//!
//! Listing and finding return a [`ConnectionRecord`], which carries no
//! secret; only [`Vault::read_secrets`] decrypts. Each provider has at most
//! one default connection: the first stored becomes it, and when it is
//! deleted the oldest remaining one takes over.

use serde::{Deserialize, Serialize};

use super::crypto::{self, Aad};
use super::db::{Row, Topic, params};
use super::{Vault, crypto_to_io};
use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The table whose rows the secret fields' associated data names.
pub(super) const TABLE: &str = "connections";
const SECRET_FIELDS: [&str; 4] = ["api_key", "access_token", "refresh_token", "cookies"];

/// Lifecycle state of a stored connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Usable.
    Connected,
    /// The token expired and could not be refreshed.
    Expired,
    /// Revoked at the provider.
    Revoked,
    /// Stored data is unusable.
    Invalid,
    /// Its provider's definition changed where the credential goes (hosts,
    /// paths, header, injection form, token endpoints): not used until the
    /// user logs in again (`authsome login PROVIDER --force`).
    Suspended,
}

impl ConnectionStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Expired => "expired",
            ConnectionStatus::Revoked => "revoked",
            ConnectionStatus::Invalid => "invalid",
            ConnectionStatus::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> ConnectionStatus {
        match s {
            "connected" => ConnectionStatus::Connected,
            "expired" => ConnectionStatus::Expired,
            "revoked" => ConnectionStatus::Revoked,
            "suspended" => ConnectionStatus::Suspended,
            _ => ConnectionStatus::Invalid,
        }
    }
}

/// A stored connection without its secrets: safe to list, log and return.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionRecord {
    #[serde(skip)]
    pub id: String,
    pub provider: String,
    pub name: String,
    pub auth_type: String,
    pub status: ConnectionStatus,
    pub is_default: bool,
    pub account_label: Option<String>,
    pub token_type: Option<String>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub has_api_key: bool,
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    /// A browser session's cookies are stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_cookies: bool,
    /// The login flow that made an OAuth connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
}

/// A connection to store.
#[derive(Debug)]
pub struct NewConnection {
    pub provider: String,
    pub name: String,
    pub auth_type: String,
    pub status: ConnectionStatus,
    pub account_label: Option<String>,
    pub token_type: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub api_key: Option<Secret<String>>,
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
    /// A browser session's cookies: a JSON object of name -> value.
    pub cookies: Option<Secret<String>>,
    /// The login flow (OAuth connections).
    pub flow: Option<String>,
}

/// The decrypted secret fields of one connection.
#[derive(Debug, Default)]
pub struct ConnectionSecrets {
    pub api_key: Option<Secret<String>>,
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
    /// A JSON object of cookie name -> value.
    pub cookies: Option<Secret<String>>,
}

pub(super) const CONNECTION_COLUMNS: &str = "id, provider, name, auth_type, status, is_default, account_label, token_type, \
     scopes, expires_at, created_at, updated_at, api_key IS NOT NULL, access_token IS NOT NULL, \
     refresh_token IS NOT NULL, flow, cookies IS NOT NULL";

pub(super) fn row_to_record(r: &Row) -> Result<ConnectionRecord> {
    let scopes = r.str(8)?;
    Ok(ConnectionRecord {
        id: r.str(0)?,
        provider: r.str(1)?,
        name: r.str(2)?,
        auth_type: r.str(3)?,
        status: ConnectionStatus::parse(&r.str(4)?),
        is_default: r.bool(5)?,
        account_label: r.opt_str(6)?,
        token_type: r.opt_str(7)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        expires_at: r.opt_i64(9)?,
        created_at: r.i64(10)?,
        updated_at: r.i64(11)?,
        has_api_key: r.bool(12)?,
        has_access_token: r.bool(13)?,
        has_refresh_token: r.bool(14)?,
        flow: r.opt_str(15)?,
        has_cookies: r.bool(16)?,
    })
}

impl Vault {
    /// Every connection, ordered by provider then name.
    pub fn list_connections(&self) -> Result<Vec<ConnectionRecord>> {
        self.read("cannot list connections", |tx| {
            tx.query(
                &format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY provider, name"),
                &[],
            )?
            .iter()
            .map(row_to_record)
            .collect()
        })
    }

    /// One connection's record, if it exists.
    pub fn find_connection(&self, provider: &str, name: &str) -> Result<Option<ConnectionRecord>> {
        self.read("cannot read a connection", |tx| {
            tx.query_opt(
                &format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = ?1 AND name = ?2"
                ),
                params![provider, name],
            )?
            .as_ref()
            .map(row_to_record)
            .transpose()
        })
    }

    /// The provider's default connection, if any.
    pub fn default_connection(&self, provider: &str) -> Result<Option<ConnectionRecord>> {
        self.read("cannot read a connection", |tx| {
            tx.query_opt(
                &format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = ?1 AND is_default = 1"
                ),
                params![provider],
            )?
            .as_ref()
            .map(row_to_record)
            .transpose()
        })
    }

    /// Decrypts a connection's secret fields.
    pub fn read_secrets(&self, record: &ConnectionRecord) -> Result<ConnectionSecrets> {
        self.read("cannot read a connection", |tx| {
            self.read_secrets_in(tx, record)
        })
    }

    /// [`Vault::read_secrets`] inside a transaction.
    pub(super) fn read_secrets_in(
        &self,
        tx: &mut super::db::Tx<'_>,
        record: &ConnectionRecord,
    ) -> Result<ConnectionSecrets> {
        let row = tx
            .query_opt(
                "SELECT key_version, api_key, access_token, refresh_token, cookies FROM connections WHERE id = ?1",
                params![&record.id],
            )?
            .ok_or_else(|| Error::ConnectionNotFound {
                provider: record.provider.clone(),
                connection: record.name.clone(),
            })?;
        let key_version = row.u32(0)?;
        let blobs = [
            row.opt_blob(1)?,
            row.opt_blob(2)?,
            row.opt_blob(3)?,
            row.opt_blob(4)?,
        ];
        let mut out: [Option<Secret<String>>; 4] = [None, None, None, None];
        for (i, blob) in blobs.iter().enumerate() {
            if let Some(blob) = blob {
                out[i] = Some(self.open_field(record, SECRET_FIELDS[i], key_version, blob)?);
            }
        }
        let [api_key, access_token, refresh_token, cookies] = out;
        Ok(ConnectionSecrets {
            api_key,
            access_token,
            refresh_token,
            cookies,
        })
    }

    pub(super) fn open_field(
        &self,
        record: &ConnectionRecord,
        field: &str,
        key_version: u32,
        blob: &[u8],
    ) -> Result<Secret<String>> {
        let aad = Aad {
            table: TABLE,
            record_id: &record.id,
            field,
            key_version,
        };
        let corrupt = || Error::Corrupt {
            what: format!("connection {}/{} ({field})", record.provider, record.name),
        };
        let pt = crypto::open(&self.dek, &aad, blob).map_err(|_err| corrupt())?;
        let s = std::str::from_utf8(&pt).map_err(|_err| corrupt())?;
        Ok(Secret::new(s.to_string()))
    }

    /// Stores a connection. With `replace`, an existing connection of the same
    /// provider and name is replaced (keeping its default flag); without it,
    /// that is a [`Error::ConnectionExists`]. The first connection of a
    /// provider becomes its default.
    pub fn put_connection(&self, new: NewConnection, replace: bool) -> Result<ConnectionRecord> {
        let id = random_id()?;
        let now = now_unix();
        let mut sealed: [Option<Vec<u8>>; 4] = [None, None, None, None];
        for (i, value) in [
            &new.api_key,
            &new.access_token,
            &new.refresh_token,
            &new.cookies,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = value {
                let aad = Aad {
                    table: TABLE,
                    record_id: &id,
                    field: SECRET_FIELDS[i],
                    key_version: self.key_version,
                };
                sealed[i] = Some(
                    crypto::seal(&self.dek, &aad, v.expose().as_bytes()).map_err(crypto_to_io)?,
                );
            }
        }
        let scopes = serde_json::to_string(&new.scopes).unwrap_or_else(|_| "[]".into());
        let what = format!("cannot store connection {}/{}", new.provider, new.name);
        self.write(&what, |tx| {
            tx.lock_key(&format!("connections:{}", new.provider))?;
            let existing = tx
                .query_opt(
                    "SELECT is_default, created_at FROM connections WHERE provider = ?1 AND name = ?2",
                    params![&new.provider, &new.name],
                )?
                .map(|r| Ok::<_, Error>((r.bool(0)?, r.i64(1)?)))
                .transpose()?;
            if existing.is_some() && !replace {
                return Err(Error::ConnectionExists {
                    provider: new.provider.clone(),
                    connection: new.name.clone(),
                });
            }
            let has_default = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM connections WHERE provider = ?1 AND is_default = 1 AND name != ?2)",
                    params![&new.provider, &new.name],
                )?
                .bool(0)?;
            let is_default = existing.map(|(d, _)| d).unwrap_or(false) || !has_default;
            let created_at = existing.map(|(_, c)| c).unwrap_or(now);
            tx.execute(
                "DELETE FROM connections WHERE provider = ?1 AND name = ?2",
                params![&new.provider, &new.name],
            )?;
            tx.execute(
                "INSERT INTO connections (id, provider, name, auth_type, status, is_default, account_label, token_type, \
                 scopes, expires_at, key_version, api_key, access_token, refresh_token, created_at, updated_at, flow, cookies) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    &id,
                    &new.provider,
                    &new.name,
                    &new.auth_type,
                    new.status.as_str(),
                    is_default,
                    &new.account_label,
                    &new.token_type,
                    scopes,
                    new.expires_at,
                    self.key_version,
                    &sealed[0],
                    &sealed[1],
                    &sealed[2],
                    created_at,
                    now,
                    &new.flow,
                    &sealed[3]
                ],
            )?;
            tx.notify(&Topic::Provider(new.provider.clone()))
        })?;
        self.find_connection(&new.provider, &new.name)?
            .ok_or_else(|| Error::ConnectionNotFound {
                provider: new.provider.clone(),
                connection: new.name.clone(),
            })
    }

    /// Deletes a connection; returns whether it existed. When it was the
    /// default, the oldest remaining connection of the provider takes over.
    pub fn delete_connection(&self, provider: &str, name: &str) -> Result<bool> {
        let what = format!("cannot remove connection {provider}/{name}");
        self.write(&what, |tx| {
            tx.lock_key(&format!("connections:{provider}"))?;
            let Some(was_default) = tx
                .query_opt(
                    "SELECT is_default FROM connections WHERE provider = ?1 AND name = ?2",
                    params![provider, name],
                )?
                .map(|r| r.bool(0))
                .transpose()?
            else {
                return Ok(false);
            };
            tx.execute(
                "DELETE FROM connections WHERE provider = ?1 AND name = ?2",
                params![provider, name],
            )?;
            if was_default {
                tx.execute(
                    "UPDATE connections SET is_default = 1 WHERE id = \
                     (SELECT id FROM connections WHERE provider = ?1 ORDER BY created_at, name LIMIT 1)",
                    params![provider],
                )?;
            }
            // The provider's last connection gone: it is no longer anyone's
            // choice (connecting it again does not make it chosen again).
            tx.execute(
                "DELETE FROM provider_choices WHERE provider = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM connections WHERE provider = ?1)",
                params![provider],
            )?;
            tx.notify(&Topic::Provider(provider.to_string()))?;
            Ok(true)
        })
    }

    /// `(rule, provider)`: the provider chosen on each host rule several
    /// providers claim, sorted by rule.
    pub fn provider_choices(&self) -> Result<Vec<(String, String)>> {
        self.read("cannot read the chosen providers", |tx| {
            tx.query(
                "SELECT rule, provider FROM provider_choices ORDER BY rule",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.str(0)?, r.str(1)?)))
            .collect()
        })
    }

    /// Makes `name` the provider's default connection, and the provider the
    /// chosen one on each of `rules` (host rules it shares with other
    /// connected providers), in one transaction.
    pub fn set_default(&self, provider: &str, name: &str, rules: &[String]) -> Result<()> {
        let what = format!("cannot change the default connection of {provider}");
        self.write(&what, |tx| {
            tx.lock_key(&format!("connections:{provider}"))?;
            let exists = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM connections WHERE provider = ?1 AND name = ?2)",
                    params![provider, name],
                )?
                .bool(0)?;
            if !exists {
                return Err(Error::ConnectionNotFound {
                    provider: provider.into(),
                    connection: name.into(),
                });
            }
            tx.execute(
                "UPDATE connections SET is_default = 0 WHERE provider = ?1",
                params![provider],
            )?;
            tx.execute(
                "UPDATE connections SET is_default = 1, updated_at = ?3 WHERE provider = ?1 AND name = ?2",
                params![provider, name, now_unix()],
            )?;
            for rule in rules {
                tx.execute(
                    "INSERT INTO provider_choices (rule, provider, chosen_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (rule) DO UPDATE SET provider = excluded.provider, chosen_at = excluded.chosen_at",
                    params![rule, provider, now_unix()],
                )?;
            }
            tx.notify(&Topic::Provider(provider.to_string()))
        })
    }
}

fn random_id() -> Result<String> {
    let mut b = [0u8; 16];
    crate::secret::fill_random(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::tests::{api_key_conn, fresh};

    #[test]
    fn put_then_read_secrets() {
        let (_d, _h, v) = fresh();
        let rec = v
            .put_connection(api_key_conn("openai", "default", "sk-one"), false)
            .unwrap();
        assert!(rec.is_default && rec.has_api_key && !rec.has_access_token);
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-one"
        );
    }

    #[test]
    fn open_fails_when_row_swapped() {
        let (_d, _h, v) = fresh();
        let a = v
            .put_connection(api_key_conn("openai", "default", "sk-AAAA"), false)
            .unwrap();
        let b = v
            .put_connection(api_key_conn("anthropic", "default", "sk-ant-BBBB"), false)
            .unwrap();
        v.write("test", |tx| {
            let blob = tx
                .query_one(
                    "SELECT api_key FROM connections WHERE id = ?1",
                    params![&a.id],
                )?
                .opt_blob(0)?
                .unwrap();
            tx.execute(
                "UPDATE connections SET api_key = ?1 WHERE id = ?2",
                params![blob, &b.id],
            )
        })
        .unwrap();
        assert!(matches!(v.read_secrets(&b), Err(Error::Corrupt { .. })));
        // the untouched record still opens
        assert_eq!(
            v.read_secrets(&a).unwrap().api_key.unwrap().expose(),
            "sk-AAAA"
        );
        let report = v.check_integrity().unwrap();
        assert_eq!(
            report.damaged,
            vec!["connection anthropic/default (api_key)".to_string()]
        );
    }

    #[test]
    fn open_fails_when_field_swapped() {
        let (_d, _h, v) = fresh();
        let mut n = api_key_conn("github", "default", "unused");
        n.api_key = None;
        n.access_token = Some(Secret::new("at".into()));
        n.refresh_token = Some(Secret::new("rt".into()));
        let rec = v.put_connection(n, false).unwrap();
        v.write("test", |tx| {
            tx.execute(
                "UPDATE connections SET access_token = refresh_token WHERE id = ?1",
                params![&rec.id],
            )
        })
        .unwrap();
        assert!(matches!(v.read_secrets(&rec), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn truncated_row_is_corrupt_not_a_panic() {
        let (_d, _h, v) = fresh();
        let rec = v
            .put_connection(api_key_conn("openai", "default", "sk-one"), false)
            .unwrap();
        v.write("test", |tx| {
            let blob = tx
                .query_one(
                    "SELECT api_key FROM connections WHERE id = ?1",
                    params![&rec.id],
                )?
                .opt_blob(0)?
                .unwrap();
            tx.execute(
                "UPDATE connections SET api_key = ?1 WHERE id = ?2",
                params![blob[..5].to_vec(), &rec.id],
            )
        })
        .unwrap();
        assert!(matches!(v.read_secrets(&rec), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn duplicate_without_replace_is_refused_and_keeps_the_old_value() {
        let (_d, _h, v) = fresh();
        v.put_connection(api_key_conn("openai", "default", "sk-old"), false)
            .unwrap();
        let err = v
            .put_connection(api_key_conn("openai", "default", "sk-new"), false)
            .unwrap_err();
        assert!(matches!(err, Error::ConnectionExists { .. }));
        let rec = v.find_connection("openai", "default").unwrap().unwrap();
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-old"
        );
        let rec = v
            .put_connection(api_key_conn("openai", "default", "sk-new"), true)
            .unwrap();
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-new"
        );
    }

    #[test]
    fn default_moves_on_delete_and_set_default() {
        let (_d, _h, v) = fresh();
        v.put_connection(api_key_conn("openai", "work", "sk-w"), false)
            .unwrap();
        v.put_connection(api_key_conn("openai", "home", "sk-h"), false)
            .unwrap();
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "work"
        );
        v.set_default("openai", "home", &[]).unwrap();
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "home"
        );
        assert!(v.delete_connection("openai", "home").unwrap());
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "work"
        );
        assert!(!v.delete_connection("openai", "home").unwrap());
        assert!(matches!(
            v.set_default("openai", "nope", &[]),
            Err(Error::ConnectionNotFound { .. })
        ));
    }

    #[test]
    fn rewrite_uses_a_fresh_nonce_each_time() {
        let (_d, _h, v) = fresh();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            v.put_connection(api_key_conn("openai", "default", "sk-same"), true)
                .unwrap();
            let blob = v
                .read("test", |tx| {
                    Ok(tx
                        .query_one("SELECT api_key FROM connections", &[])?
                        .opt_blob(0)?
                        .unwrap())
                })
                .unwrap();
            assert!(seen.insert(blob[1..13].to_vec()));
        }
    }
}
