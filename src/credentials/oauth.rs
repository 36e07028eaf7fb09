//! OAuth connections in the credential service: storing tokens, refreshing
//! them, revoking them.
//!
//! - **One refresher.** Only the daemon's credential service refreshes, and
//!   only one thread per connection at a time (a lock per connection, then a
//!   re-read: whoever waited finds the fresh token and does not refresh
//!   again). With the proxy's single-flight cache in front, 50 requests that
//!   meet an expiring token cause one refresh.
//! - **Durable rotation.** The new pair is written (compare-and-swap on the
//!   refresh token that was used, `synchronous=FULL`) before the new access
//!   token is returned to anyone.
//! - **Dead refresh tokens.** `invalid_grant` marks the connection `expired`:
//!   the proxy then fails closed with a `authsome login … --force` hint.
//!   Other failures (network, 5xx) keep serving the old token while it is
//!   still valid.
//!
//! The HTTP side is a trait ([`TokenEndpoint`]) implemented by `auth_flow`;
//! this module decides when to call it and what to store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{CredentialService, refresh_due};
use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::providers::{AuthType, Flow, ProviderDef};
use crate::secret::Secret;
pub use crate::vault::oauth::{ClientSource, OAuthClient};
use crate::vault::{ConnectionRecord, ConnectionStatus, NewConnection, RefreshStep};

/// Tokens from a token endpoint.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: Secret<String>,
    pub refresh_token: Option<Secret<String>>,
    /// Seconds from now.
    pub expires_in: Option<i64>,
    pub token_type: Option<String>,
    /// Space-separated scopes the server granted, when it says.
    pub scope: Option<String>,
}

/// Why a grant failed.
#[derive(Debug)]
pub enum GrantError {
    /// The server answered `invalid_grant`: the refresh token is dead.
    InvalidGrant(String),
    /// Another OAuth error answer (`code` is the server's `error`).
    Refused { code: String, message: String },
    /// Anything else (network, 5xx, malformed answer): may be temporary.
    Other(Error),
}

/// The OAuth client a grant uses.
#[derive(Debug, Default)]
pub struct ClientInfo {
    pub id: String,
    pub secret: Option<Secret<String>>,
    /// Instance base URL for self-hosted providers (`{base_url}` in endpoints).
    pub base_url: Option<String>,
    /// Endpoints discovered at registration (providers that name only a resource).
    pub endpoints: Option<DiscoveredEndpoints>,
    /// For a client from dynamic registration: the redirect URI it was
    /// registered with (`Some(None)`: registered before that was stored).
    pub registered_for: Option<Option<String>>,
}

impl ClientInfo {
    /// True for a registered client that does not know `redirect_uri`
    /// (the daemon's callback moved), which must be registered again.
    pub fn registered_elsewhere(&self, redirect_uri: &str) -> bool {
        self.registered_for
            .as_ref()
            .is_some_and(|r| r.as_deref() != Some(redirect_uri))
    }
}

/// Endpoints from authorization-server metadata (RFC 8414), stored with a
/// registered client.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DiscoveredEndpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// The server sends `iss` in authorization responses (RFC 9207 §3).
    #[serde(default)]
    pub iss_parameter: bool,
}

/// Calls a provider's token and revocation endpoints. Blocking: called from
/// the blocking pool.
pub trait TokenEndpoint: Send + Sync + 'static {
    /// `grant_type=refresh_token`.
    fn refresh(
        &self,
        def: &ProviderDef,
        client: &ClientInfo,
        refresh_token: &Secret<String>,
    ) -> std::result::Result<Tokens, GrantError>;
    /// `grant_type=client_credentials`.
    fn client_credentials(
        &self,
        def: &ProviderDef,
        client: &ClientInfo,
        scopes: &[String],
    ) -> std::result::Result<Tokens, GrantError>;
    /// RFC 7009 revocation of one token (`hint`: `refresh_token` or `access_token`).
    fn revoke(
        &self,
        def: &ProviderDef,
        client: &ClientInfo,
        token: &Secret<String>,
        hint: &str,
    ) -> Result<()>;
}

/// Per-connection refresh locks, and when a refresh last failed (so a
/// provider outage is not retried on every request while the token lasts).
#[derive(Debug, Default)]
pub struct RefreshLocks(
    Mutex<HashMap<String, Arc<Mutex<()>>>>,
    Mutex<HashMap<String, std::time::Instant>>,
);

/// How long a failed refresh is not retried while the token is still valid.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl RefreshLocks {
    fn get(&self, id: &str) -> Arc<Mutex<()>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    fn failed(&self, key: &str) {
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), std::time::Instant::now());
    }

    fn recently_failed(&self, key: &str) -> bool {
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }

    fn succeeded(&self, key: &str) {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// What a logout or revoke told the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderNotice {
    /// The provider has no revocation endpoint (or the connection no token).
    NotSupported,
    /// The tokens were revoked at the provider.
    Revoked,
    /// Revocation failed (network, error answer); the connection was removed anyway.
    Failed,
}

fn expires_at(t: &Tokens) -> Option<i64> {
    t.expires_in.filter(|s| *s > 0).map(|s| now_unix() + s)
}

impl CredentialService {
    /// Sets the HTTP side of refresh and revocation (the daemon does this at
    /// start; without it, OAuth tokens are served until they expire).
    pub fn set_token_endpoint(&self, endpoint: Arc<dyn TokenEndpoint>) {
        let _ = self.token_endpoint.set(endpoint);
    }

    /// The OAuth client for `provider`: the stored one (flag, form or
    /// registration), else the public client id in the provider file.
    pub fn oauth_client(&self, provider: &str) -> Result<Option<ClientInfo>> {
        if let Some(c) = self.vault.get_oauth_client(provider)? {
            return Ok(Some(ClientInfo {
                id: c.client_id,
                secret: c.client_secret,
                base_url: c.base_url,
                endpoints: c
                    .endpoints
                    .as_deref()
                    .and_then(|e| serde_json::from_str(e).ok()),
                registered_for: (c.source == ClientSource::Registration).then_some(c.redirect_uri),
            }));
        }
        let reg = self.registry();
        let def = &reg.require(provider)?.def;
        Ok(def
            .oauth
            .as_ref()
            .and_then(|o| o.client_id.clone())
            .map(|id| ClientInfo {
                id,
                ..ClientInfo::default()
            }))
    }

    /// Stores an OAuth client for `provider` (encrypted secret).
    pub fn put_oauth_client(&self, client: &OAuthClient) -> Result<()> {
        self.registry().require(&client.provider)?;
        self.vault.put_oauth_client(client)
    }

    /// True when `connection` exists, is usable, and was granted `scopes`.
    pub fn already_connected(
        &self,
        provider: &str,
        connection: &str,
        scopes: &[String],
    ) -> Result<bool> {
        let Some(rec) = self.vault.find_connection(provider, connection)? else {
            return Ok(false);
        };
        let mut want: Vec<&String> = scopes.iter().collect();
        let mut have: Vec<&String> = rec.scopes.iter().collect();
        want.sort();
        have.sort();
        want.dedup();
        have.dedup();
        Ok(rec.status == ConnectionStatus::Connected
            && rec.expires_at.is_none_or(|e| e > now_unix())
            && want == have)
    }

    /// Stores the tokens of a completed OAuth flow as a connection.
    pub fn store_oauth(
        &self,
        provider: &str,
        connection: &str,
        tokens: Tokens,
        requested_scopes: &[String],
        flow: &str,
        force: bool,
    ) -> Result<ConnectionRecord> {
        super::check_connection_name(connection)?;
        self.registry().require(provider)?;
        let scopes = match &tokens.scope {
            Some(s) if !s.trim().is_empty() => s
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            _ => requested_scopes.to_vec(),
        };
        let expires_at = expires_at(&tokens);
        self.vault.put_connection(
            NewConnection {
                provider: provider.into(),
                name: connection.into(),
                auth_type: AuthType::Oauth2.as_str().into(),
                status: ConnectionStatus::Connected,
                account_label: None,
                token_type: tokens.token_type.clone().or(Some("Bearer".into())),
                scopes,
                expires_at,
                api_key: None,
                access_token: Some(tokens.access_token),
                refresh_token: tokens.refresh_token,
                cookies: None,
                flow: Some(flow.into()),
            },
            force,
        )
    }

    /// For an OAuth connection inside the refresh window: refreshes it (once,
    /// whoever else asks at the same time) and returns the record to read the
    /// token from. Outside the window, or without a way to refresh, returns
    /// `rec` unchanged.
    pub(super) fn refresh_if_due(&self, rec: ConnectionRecord) -> Result<ConnectionRecord> {
        let due = rec.auth_type == AuthType::Oauth2.as_str()
            && rec
                .expires_at
                .is_some_and(|e| refresh_due(rec.updated_at, e, now_unix()));
        if !due {
            return Ok(rec);
        }
        let Some(endpoint) = self.token_endpoint.get().cloned() else {
            return Ok(rec);
        };
        // Keyed by name, not row id: a forced re-login replaces the row.
        let key = format!("{}\0{}", rec.provider, rec.name);
        if rec.expires_at.is_some_and(|e| e > now_unix())
            && self.refresh_locks.recently_failed(&key)
        {
            return Ok(rec);
        }
        let lock = self.refresh_locks.get(&key);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let reg = self.registry();
        let def = reg.require(&rec.provider)?.def.clone();
        // Read before the row is locked: the refresh itself needs no other
        // store connection while it holds one.
        let client = self.oauth_client(&rec.provider)?.unwrap_or_default();
        let (provider, name) = (rec.provider.clone(), rec.name.clone());
        let refreshed = self.vault.refresh_locked(&provider, &name, |rec, secrets| {
            // Someone else (this daemon or another on the store) may have
            // refreshed while we waited.
            if rec.status != ConnectionStatus::Connected
                || rec
                    .expires_at
                    .is_none_or(|e| !refresh_due(rec.updated_at, e, now_unix()))
            {
                return (RefreshStep::Keep, Ok(()));
            }
            let outcome = match &secrets.refresh_token {
                Some(rt) => endpoint.refresh(&def, &client, rt),
                // A machine token is granted again; the connection's own flow
                // decides (it may differ from the provider's default).
                None if rec.flow.as_deref() == Some("client_credentials")
                    || (rec.flow.is_none() && def.flow == Flow::ClientCredentials) =>
                {
                    endpoint.client_credentials(&def, &client, &rec.scopes)
                }
                // Nothing to refresh with: served until it expires.
                None => return (RefreshStep::Keep, Ok(())),
            };
            let still_valid = rec.expires_at.is_some_and(|x| x > now_unix());
            match outcome {
                Ok(tokens) => {
                    self.refresh_locks.succeeded(&key);
                    tracing::info!(provider = %rec.provider, connection = %rec.name, rotated = tokens.refresh_token.is_some(), "token refreshed");
                    // A refresh answer without expires_in keeps a lifetime (an
                    // hour) rather than making the token look eternal.
                    let exp = expires_at(&tokens).or(Some(now_unix() + 3600));
                    let step = RefreshStep::Store {
                        access: tokens.access_token,
                        refresh: tokens.refresh_token,
                        expires_at: exp,
                    };
                    (step, Ok(()))
                }
                Err(GrantError::InvalidGrant(why)) => {
                    tracing::warn!(provider = %rec.provider, connection = %rec.name, %why, "refresh token refused; connection expired");
                    let err = Error::expired(
                        format!(
                            "the `{}` login of connection `{}` has expired (the provider refused the refresh token: {why})",
                            rec.provider, rec.name
                        ),
                        Some(format!(
                            "authsome login {} --connection {} --force",
                            rec.provider, rec.name
                        )),
                    );
                    (RefreshStep::Expire, Err(err))
                }
                Err(GrantError::Refused { message, .. }) => {
                    self.refresh_locks.failed(&key);
                    if still_valid {
                        tracing::warn!(provider = %rec.provider, %message, "refresh refused; the current token is still valid");
                        return (RefreshStep::Keep, Ok(()));
                    }
                    let err = Error::invalid(
                        format!("cannot refresh the `{}` token: {message}", rec.provider),
                        Some(format!(
                            "authsome login {} --connection {} --force",
                            rec.provider, rec.name
                        )),
                    );
                    (RefreshStep::Keep, Err(err))
                }
                Err(GrantError::Other(e)) => {
                    self.refresh_locks.failed(&key);
                    if still_valid {
                        tracing::warn!(provider = %rec.provider, error = %e, "refresh failed; the current token is still valid");
                        return (RefreshStep::Keep, Ok(()));
                    }
                    let err = Error::invalid(
                        format!("cannot refresh the `{}` token: {e}", rec.provider),
                        Some(format!(
                            "check the network, or `authsome login {} --force`",
                            rec.provider
                        )),
                    );
                    (RefreshStep::Keep, Err(err))
                }
            }
        })?;
        match refreshed {
            Some((rec, Ok(()))) => Ok(rec),
            Some((_, Err(e))) => Err(e),
            None => Err(Error::ConnectionNotFound {
                provider,
                connection: name,
            }),
        }
    }

    /// Removes one connection after telling the provider to revoke its
    /// tokens (when it has a revocation endpoint); the local removal happens
    /// whatever the provider answers.
    pub fn logout_and_revoke(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> Result<(ConnectionRecord, ProviderNotice)> {
        let rec = self.find(provider, connection)?;
        let notice = self.revoke_at_provider(&rec);
        self.vault.delete_connection(&rec.provider, &rec.name)?;
        Ok((rec, notice))
    }

    /// Refreshes every OAuth connection inside the refresh window (the
    /// daemon calls this every 30 s, so the proxy rarely meets an expiring
    /// token). Returns the providers whose tokens changed.
    pub fn refresh_due(&self) -> Vec<String> {
        let Ok(list) = self.vault.list_connections() else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for rec in list {
            let due = rec.auth_type == AuthType::Oauth2.as_str()
                && rec.status == ConnectionStatus::Connected
                && rec
                    .expires_at
                    .is_some_and(|e| refresh_due(rec.updated_at, e, now_unix()));
            if !due {
                continue;
            }
            let before = rec.expires_at;
            match self.refresh_if_due(rec) {
                Ok(after) if after.expires_at != before => changed.push(after.provider),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "background refresh failed"),
            }
        }
        changed.sort();
        changed.dedup();
        changed
    }

    /// Tells the provider to revoke a connection's tokens (refresh token
    /// first, then access token). Never fails: says what happened.
    pub fn revoke_at_provider(&self, rec: &ConnectionRecord) -> ProviderNotice {
        if rec.auth_type != AuthType::Oauth2.as_str() {
            return ProviderNotice::NotSupported;
        }
        let reg = self.registry();
        let Some(entry) = reg.get(&rec.provider) else {
            return ProviderNotice::NotSupported;
        };
        let def = entry.def.clone();
        let has_endpoint = def
            .oauth
            .as_ref()
            .and_then(|o| o.revocation_url.as_ref())
            .is_some()
            || self
                .oauth_client(&rec.provider)
                .ok()
                .flatten()
                .is_some_and(|c| c.endpoints.is_some_and(|e| e.revocation_endpoint.is_some()));
        if !has_endpoint {
            return ProviderNotice::NotSupported;
        }
        let Some(endpoint) = self.token_endpoint.get().cloned() else {
            return ProviderNotice::NotSupported;
        };
        let (Ok(secrets), Ok(client)) = (
            self.vault.read_secrets(rec),
            self.oauth_client(&rec.provider),
        ) else {
            return ProviderNotice::Failed;
        };
        let client = client.unwrap_or_default();
        let mut notice = ProviderNotice::NotSupported;
        for (token, hint) in [
            (secrets.refresh_token.as_ref(), "refresh_token"),
            (secrets.access_token.as_ref(), "access_token"),
        ] {
            let Some(t) = token else { continue };
            match endpoint.revoke(&def, &client, t, hint) {
                Ok(()) => {
                    if notice == ProviderNotice::NotSupported {
                        notice = ProviderNotice::Revoked;
                    }
                }
                Err(e) => {
                    tracing::warn!(provider = %rec.provider, error = %e, "revocation failed");
                    notice = ProviderNotice::Failed;
                }
            }
        }
        notice
    }
}
