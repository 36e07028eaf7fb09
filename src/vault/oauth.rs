//! OAuth state in the vault: registered clients (with their sealed secrets
//! and endpoints), token updates after a refresh, and a connection's status
//! change (e.g. `expired` after `invalid_grant`).
//!
//! Why a token update is its own statement: a rotated refresh token is only
//! valid once. The new pair is sealed and written (one `UPDATE`, `IMMEDIATE`
//! transaction, `synchronous=FULL`) before anyone uses the new access token,
//! so a crash right after a refresh never loses the only valid refresh
//! token. The update is conditional on the row still holding the token that
//! was refreshed (compare-and-swap), so a second refresher cannot overwrite
//! a newer pair with an older one.

use super::crypto::{self, Aad};
use super::db::{Topic, params};
use super::{ConnectionRecord, ConnectionStatus, Vault, crypto_to_io};
use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::secret::Secret;

const CLIENTS: &str = "oauth_clients";

/// Where a stored OAuth client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// `authsome login --client-id` (or the API).
    Flag,
    /// The browser input form.
    Form,
    /// Dynamic client registration.
    Registration,
}

impl ClientSource {
    fn as_str(self) -> &'static str {
        match self {
            ClientSource::Flag => "flag",
            ClientSource::Form => "form",
            ClientSource::Registration => "registration",
        }
    }
    fn parse(s: &str) -> ClientSource {
        match s {
            "form" => ClientSource::Form,
            "registration" => ClientSource::Registration,
            _ => ClientSource::Flag,
        }
    }
}

/// An OAuth client of a provider.
#[derive(Debug)]
pub struct OAuthClient {
    pub provider: String,
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
    pub source: ClientSource,
    /// The instance base URL, for self-hosted providers.
    pub base_url: Option<String>,
    /// RFC 7592 management URI and token, from registration.
    pub registration_client_uri: Option<String>,
    pub registration_access_token: Option<Secret<String>>,
    /// Discovered endpoints (JSON), for providers that name only a resource.
    pub endpoints: Option<String>,
    /// The redirect URI a registered client was registered with.
    pub redirect_uri: Option<String>,
}

impl Vault {
    fn seal_client_field(
        &self,
        provider: &str,
        field: &str,
        v: &Secret<String>,
    ) -> Result<Vec<u8>> {
        let aad = Aad {
            table: CLIENTS,
            record_id: provider,
            field,
            key_version: self.key_version,
        };
        crypto::seal(&self.dek, &aad, v.expose().as_bytes()).map_err(crypto_to_io)
    }

    fn open_client_field(
        &self,
        provider: &str,
        field: &str,
        key_version: u32,
        blob: &[u8],
    ) -> Result<Secret<String>> {
        let aad = Aad {
            table: CLIENTS,
            record_id: provider,
            field,
            key_version,
        };
        let corrupt = || Error::Corrupt {
            what: format!("OAuth client of {provider} ({field})"),
        };
        let pt = crypto::open(&self.dek, &aad, blob).map_err(|_err| corrupt())?;
        Ok(Secret::new(
            String::from_utf8(pt.to_vec()).map_err(|_err| corrupt())?,
        ))
    }

    /// Stores (or replaces) the OAuth client of a provider.
    pub fn put_oauth_client(&self, c: &OAuthClient) -> Result<()> {
        let secret = c
            .client_secret
            .as_ref()
            .map(|s| self.seal_client_field(&c.provider, "client_secret", s))
            .transpose()?;
        let rat = c
            .registration_access_token
            .as_ref()
            .map(|s| self.seal_client_field(&c.provider, "registration_access_token", s))
            .transpose()?;
        let now = now_unix();
        self.write(
            &format!("cannot store the OAuth client of {}", c.provider),
            |tx| {
                tx.execute(
                    "INSERT INTO oauth_clients (provider, client_id, source, base_url, registration_client_uri, \
                     key_version, client_secret, registration_access_token, created_at, updated_at, endpoints, \
                     redirect_uri) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11) \
                     ON CONFLICT (provider) DO UPDATE SET client_id = ?2, source = ?3, base_url = ?4, \
                     registration_client_uri = ?5, key_version = ?6, client_secret = ?7, \
                     registration_access_token = ?8, updated_at = ?9, endpoints = ?10, redirect_uri = ?11",
                    params![
                        &c.provider,
                        &c.client_id,
                        c.source.as_str(),
                        &c.base_url,
                        &c.registration_client_uri,
                        self.key_version,
                        secret,
                        rat,
                        now,
                        &c.endpoints,
                        &c.redirect_uri
                    ],
                )
            },
        )?;
        Ok(())
    }

    /// The stored OAuth client of a provider, secrets decrypted.
    pub fn get_oauth_client(&self, provider: &str) -> Result<Option<OAuthClient>> {
        let row = self.read("cannot read an OAuth client", |tx| {
            tx.query_opt(
                "SELECT client_id, source, base_url, registration_client_uri, key_version, \
                 client_secret, registration_access_token, endpoints, redirect_uri FROM oauth_clients \
                 WHERE provider = ?1",
                params![provider],
            )?
            .map(|r| {
                Ok((
                    r.str(0)?,
                    r.str(1)?,
                    r.opt_str(2)?,
                    r.opt_str(3)?,
                    r.u32(4)?,
                    r.opt_blob(5)?,
                    r.opt_blob(6)?,
                    r.opt_str(7)?,
                    r.opt_str(8)?,
                ))
            })
            .transpose()
        })?;
        let Some((client_id, source, base_url, uri, kv, secret, rat, endpoints, redirect_uri)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(OAuthClient {
            provider: provider.to_string(),
            client_id,
            client_secret: secret
                .map(|b| self.open_client_field(provider, "client_secret", kv, &b))
                .transpose()?,
            source: ClientSource::parse(&source),
            base_url,
            registration_client_uri: uri,
            registration_access_token: rat
                .map(|b| self.open_client_field(provider, "registration_access_token", kv, &b))
                .transpose()?,
            endpoints,
            redirect_uri,
        }))
    }

    /// Forgets a provider's OAuth client. True when there was one.
    pub fn delete_oauth_client(&self, provider: &str) -> Result<bool> {
        self.write("cannot remove an OAuth client", |tx| {
            Ok(tx.execute(
                "DELETE FROM oauth_clients WHERE provider = ?1",
                params![provider],
            )? > 0)
        })
    }

    /// Replaces the tokens of `record` after a refresh, if the row still
    /// holds the refresh token that was used (`used`). Returns false when
    /// another refresh got there first (the caller re-reads). A `None`
    /// `refresh` keeps the stored refresh token (the server did not rotate).
    pub fn update_tokens(
        &self,
        record: &ConnectionRecord,
        used: Option<&Secret<String>>,
        access: &Secret<String>,
        refresh: Option<&Secret<String>>,
        expires_at: Option<i64>,
    ) -> Result<bool> {
        let what = format!(
            "cannot store the new token of {}/{}",
            record.provider, record.name
        );
        self.write(&what, |tx| {
            let Some(row) = tx.query_opt(
                "SELECT key_version, refresh_token FROM connections WHERE id = ?1",
                params![&record.id],
            )?
            else {
                return Ok(false);
            };
            let (kv, current) = (row.u32(0)?, row.opt_blob(1)?);
            if kv != self.key_version {
                return Err(Error::invalid(
                    "the connection was sealed with another key version",
                    Some("log in again".into()),
                ));
            }
            let current = current
                .map(|b| self.open_field(record, "refresh_token", kv, &b))
                .transpose()?;
            let unchanged = match (used, &current) {
                (Some(u), Some(c)) => u.expose() == c.expose(),
                (None, None) => true,
                _ => false,
            };
            if !unchanged {
                return Ok(false);
            }
            let seal = |field: &str, v: &Secret<String>| {
                let aad = Aad {
                    table: super::connections::TABLE,
                    record_id: &record.id,
                    field,
                    key_version: kv,
                };
                crypto::seal(&self.dek, &aad, v.expose().as_bytes()).map_err(crypto_to_io)
            };
            let access_blob = seal("access_token", access)?;
            let refresh_blob = match refresh.or(current.as_ref()) {
                Some(r) => Some(seal("refresh_token", r)?),
                None => None,
            };
            tx.execute(
                "UPDATE connections SET access_token = ?2, refresh_token = ?3, expires_at = ?4, \
                 status = 'connected', updated_at = ?5 WHERE id = ?1",
                params![
                    &record.id,
                    access_blob,
                    refresh_blob,
                    expires_at,
                    now_unix()
                ],
            )?;
            tx.notify(&Topic::Provider(record.provider.clone()))?;
            Ok(true)
        })
    }

    /// Sets a connection's status (e.g. `expired` after `invalid_grant`).
    pub fn set_status(&self, record: &ConnectionRecord, status: ConnectionStatus) -> Result<()> {
        self.write("cannot update a connection's status", |tx| {
            tx.execute(
                "UPDATE connections SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![&record.id, status.as_str(), now_unix()],
            )?;
            tx.notify(&Topic::Provider(record.provider.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::Home;
    use crate::vault::{KeySource, MasterKey, NewConnection};

    fn vault() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(
            &Home::new(dir.path()),
            &MasterKey::from_bytes([3; 32], KeySource::Env),
        )
        .unwrap();
        (dir, v)
    }

    fn s(v: &str) -> Secret<String> {
        Secret::new(v.into())
    }

    #[test]
    fn clients_round_trip_encrypted() {
        let (dir, v) = vault();
        v.put_oauth_client(&OAuthClient {
            provider: "github".into(),
            client_id: "cid".into(),
            client_secret: Some(s("CSCANARY_1")),
            source: ClientSource::Registration,
            base_url: None,
            registration_client_uri: Some("https://as.test/reg/1".into()),
            registration_access_token: Some(s("RATCANARY_1")),
            endpoints: None,
            redirect_uri: Some("http://127.0.0.1:7998/auth/callback/oauth".into()),
        })
        .unwrap();
        let c = v.get_oauth_client("github").unwrap().unwrap();
        assert_eq!(
            c.redirect_uri.as_deref(),
            Some("http://127.0.0.1:7998/auth/callback/oauth")
        );
        assert_eq!(c.client_secret.unwrap().expose(), "CSCANARY_1");
        assert_eq!(c.registration_access_token.unwrap().expose(), "RATCANARY_1");
        assert_eq!(c.source, ClientSource::Registration);
        drop(v);
        let raw = std::fs::read(dir.path().join("vault.db")).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("CSCANARY") && !text.contains("RATCANARY"));
    }

    #[test]
    fn token_update_is_a_compare_and_swap_on_the_refresh_token() {
        let (_d, v) = vault();
        let rec = v
            .put_connection(
                NewConnection {
                    provider: "github".into(),
                    name: "default".into(),
                    auth_type: "oauth2".into(),
                    status: ConnectionStatus::Connected,
                    account_label: None,
                    token_type: Some("Bearer".into()),
                    scopes: vec![],
                    expires_at: Some(1),
                    api_key: None,
                    access_token: Some(s("AT1")),
                    refresh_token: Some(s("RT1")),
                    cookies: None,
                    flow: Some("pkce".into()),
                },
                false,
            )
            .unwrap();
        assert!(
            v.update_tokens(&rec, Some(&s("RT1")), &s("AT2"), Some(&s("RT2")), Some(99))
                .unwrap()
        );
        // A second refresher that used RT1 loses: RT2 is kept.
        assert!(
            !v.update_tokens(&rec, Some(&s("RT1")), &s("AT3"), Some(&s("RT3")), Some(100))
                .unwrap()
        );
        let rec = v.find_connection("github", "default").unwrap().unwrap();
        let sec = v.read_secrets(&rec).unwrap();
        assert_eq!(sec.access_token.unwrap().expose(), "AT2");
        assert_eq!(sec.refresh_token.unwrap().expose(), "RT2");
        assert_eq!(rec.expires_at, Some(99));
        // No rotation: the refresh token stays.
        assert!(
            v.update_tokens(&rec, Some(&s("RT2")), &s("AT4"), None, Some(200))
                .unwrap()
        );
        let sec = v.read_secrets(&rec).unwrap();
        assert_eq!(sec.refresh_token.unwrap().expose(), "RT2");
        v.set_status(&rec, ConnectionStatus::Expired).unwrap();
        assert_eq!(
            v.find_connection("github", "default")
                .unwrap()
                .unwrap()
                .status,
            ConnectionStatus::Expired
        );
    }
}
