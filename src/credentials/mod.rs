//! `CredentialService`: the vault's operations on connections and
//! providers, and what the proxy reads.
//!
//! - **Reads** (`list_connections`, `get_connection`, `list_providers`,
//!   `get_provider`, `routes`, `resolve_for_host`) are called by the
//!   daemon's routes directly.
//! - **Writes** (`login_api_key`, `store_oauth`, `logout_and_revoke`,
//!   `set_default`, `export`, `register_provider_suspending`,
//!   `remove_provider`) are called only by
//!   [`Logins`](crate::auth_flow::logins::Logins), which makes the proxy
//!   see each change and records it in the audit log.
//! - **The proxy's side:** [`proxy_tables::ProxyTables`] holds the routing table and the
//!   credential [`cache`] it reads on every request; [`oauth`] refreshes
//!   tokens near expiry.
//!
//! Policy lives here (which connection serves a request, what a valid key
//! looks like, when a token is due), not in the front ends.

pub mod cache;
pub mod oauth;
pub mod proxy_tables;

use std::sync::{Arc, RwLock};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::clock::now_unix;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::providers::{
    AuthType, ExportRole, HostPattern, Injection, KeyFormat, ProviderDef, ProviderSource, Registry,
};
use crate::routing::RouteTable;
use crate::secret::Secret;
use crate::vault::master_key::{self, KeyStore, OsKeyring};
use crate::vault::{
    ConnectionRecord, ConnectionStatus, KeySource, MasterKey, NewConnection, Vault,
};

/// The connection name used when none is given.
pub const DEFAULT_CONNECTION: &str = "default";

/// A connection as shown to users and scripts: metadata only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionView {
    #[serde(flatten)]
    pub record: ConnectionRecord,
    pub display_name: String,
    /// The secret fields, each shown as `"***"` when present.
    pub secrets: Redacted,
}

/// Which secret fields a connection holds, never their values.
#[derive(Debug, Clone, Serialize)]
pub struct Redacted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookies: Option<&'static str>,
}

/// One exported variable.
#[derive(Debug)]
pub struct ExportVar {
    pub name: String,
    pub value: Secret<String>,
}

/// A credential ready to be written into a request.
#[derive(Debug)]
pub struct ResolvedCredential {
    pub provider: String,
    pub connection: String,
    pub injection: Injection,
    /// The full header (or query parameter) value, prefix included.
    pub value: Secret<String>,
    /// Unix seconds, for OAuth tokens and browser sessions.
    pub expires_at: Option<i64>,
    /// Headers written beside it, replacing the client's: a browser
    /// session's `extract` headers (secret) and `extra_headers`.
    pub extra: Vec<(String, Secret<String>)>,
    /// The secrets inside `value` when it holds several (a browser
    /// session's cookie values, as stored and without quotes): what
    /// response redaction looks for. Empty: `value` (less its prefix) is the secret.
    pub parts: Vec<Secret<String>>,
    /// Cookies a response may not set on the client (a browser session's:
    /// a rotated session cookie is as much a credential as the stored one).
    pub cookie_names: Vec<String>,
}

/// A browser session's cookies as stored: name -> value.
pub type CookieJar = std::collections::BTreeMap<String, Secret<String>>;

/// A cookie value without the double quotes some sites wrap it in
/// (LinkedIn's `JSESSIONID` is `"ajax:…"`; its `csrf-token` is the inside).
pub fn unquoted(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

/// When a browser session captured at `now` stops being used: the
/// `ttl_from_cookie` cookie's own expiry (else `now + ttl_hours`), and
/// never after any captured cookie expires. `expiries` holds the cookies'
/// expiry times (unix seconds; session cookies have none).
pub fn browser_expiry(
    spec: &crate::providers::schema::BrowserSpec,
    expiries: &std::collections::BTreeMap<String, i64>,
    now: i64,
) -> i64 {
    let base = spec
        .ttl_from_cookie
        .as_ref()
        .and_then(|c| expiries.get(c).copied())
        .filter(|e| *e > 0)
        .unwrap_or(now + i64::from(spec.ttl_hours) * 3600);
    spec.cookies
        .iter()
        .filter_map(|c| expiries.get(c).copied())
        .filter(|e| *e > 0)
        .fold(base, i64::min)
}

/// A provider as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderSummary {
    pub name: String,
    pub display_name: String,
    #[serde(rename = "type")]
    pub kind: crate::providers::schema::ProviderKind,
    pub auth_type: AuthType,
    pub flow: crate::providers::Flow,
    pub source: ProviderSource,
    pub api_url: Vec<String>,
    pub connections: usize,
    /// Host rules this provider is the chosen one on, among connected
    /// providers that share them (`authsome set-default`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chosen_on: Vec<String>,
}

/// What `register_provider` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutcome {
    Added,
    Replaced,
    OverrodeBundled,
}

/// What `remove_provider` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveOutcome {
    Deleted,
    RestoredBundled,
}

/// The service.
#[derive(Debug)]
pub struct CredentialService {
    home: Home,
    vault: Vault,
    key_source: KeySource,
    key_generated: bool,
    registry: RwLock<Arc<Registry>>,
    token_endpoint: std::sync::OnceLock<Arc<dyn oauth::TokenEndpoint>>,
    refresh_locks: oauth::RefreshLocks,
}

impl std::fmt::Debug for dyn oauth::TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenEndpoint")
    }
}

/// The longest refresh window (seconds): no token is refreshed earlier than this before it expires.
pub const REFRESH_WINDOW_SECS: i64 = 300;

/// How close to expiry a token of `lifetime` seconds is refreshed: the
/// lesser of [`REFRESH_WINDOW_SECS`] and half its lifetime. A 20 s token is
/// due after 10 s, so a freshly refreshed token is never due at once (one
/// expiry, one refresh, however many requests meet it). The one place the
/// window is decided: the proxy's cache, on-demand and background refresh use it.
pub fn refresh_window(lifetime: i64) -> i64 {
    (lifetime.max(0) / 2).min(REFRESH_WINDOW_SECS)
}

/// True when a token issued at `issued_at` that expires at `expires_at` is due for refresh at `now`.
pub fn refresh_due(issued_at: i64, expires_at: i64, now: i64) -> bool {
    expires_at - now <= refresh_window(expires_at - issued_at)
}

impl CredentialService {
    /// Resolves the master key, opens the vault and loads the catalogue.
    ///
    /// With a PostgreSQL store (`AUTHSOME_DATABASE_URL`), the master key is
    /// never generated: every daemon on the store must be given the same one
    /// (env, file or keyring), and the first to initialise the store records
    /// this home's identity as its creator (the team's first admin).
    pub fn open(config: &Config) -> Result<CredentialService> {
        let home = Home::new(&config.home);
        let keyring = config.keyring.then(|| OsKeyring::for_home(&home));
        let keyring = keyring.as_ref().map(|k| k as &dyn KeyStore);
        if let Some(url) = &config.database_url {
            let master = master_key::resolve(config, &home, keyring, true)?;
            home.ensure()?;
            let creator = crate::identity::Identity::load_or_create(&home)?;
            let vault = Vault::open_postgres(
                url.expose(),
                config.database_pool,
                config.database_ca_file.as_deref(),
                &master,
                Some(creator.did()),
            )?;
            return CredentialService::with_vault(home, vault, &master);
        }
        let master = master_key::resolve(config, &home, keyring, Vault::exists(&home))?;
        CredentialService::open_with(home, &master)
    }

    /// Opens with an already resolved master key.
    pub fn open_with(home: Home, master: &MasterKey) -> Result<CredentialService> {
        let vault = Vault::open(&home, master)?;
        CredentialService::with_vault(home, vault, master)
    }

    fn with_vault(home: Home, vault: Vault, master: &MasterKey) -> Result<CredentialService> {
        let (custom, tampered) = vault.custom_providers_checked()?;
        let registry = Registry::with_custom_checked(&custom, &tampered)?;
        Ok(CredentialService {
            home,
            vault,
            key_source: master.source().clone(),
            key_generated: master.was_generated(),
            registry: RwLock::new(Arc::new(registry)),
            token_endpoint: std::sync::OnceLock::new(),
            refresh_locks: oauth::RefreshLocks::default(),
        })
    }

    /// The home directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Where the master key came from.
    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// True when this process generated the master key.
    pub fn key_generated(&self) -> bool {
        self.key_generated
    }

    /// The vault (for diagnostics).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The current catalogue.
    pub fn registry(&self) -> Arc<Registry> {
        match self.registry.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads the custom providers again (another daemon on the store changed them).
    pub fn reload_registry(&self) -> Result<()> {
        let (custom, tampered) = self.vault.custom_providers_checked()?;
        let fresh = Arc::new(Registry::with_custom_checked(&custom, &tampered)?);
        match self.registry.write() {
            Ok(mut r) => *r = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// True when `provider` has a connection named `connection`.
    pub fn has_connection(&self, provider: &str, connection: &str) -> Result<bool> {
        Ok(self.vault.find_connection(provider, connection)?.is_some())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<crate::vault::AuditEntry>> {
        self.vault.list_audit(limit)
    }

    /// Appends one entry to the audit log (never a secret: names and facts).
    pub fn append_audit(
        &self,
        event: &str,
        provider: Option<&str>,
        connection: Option<&str>,
        actor: Option<&str>,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.vault
            .append_audit(event, provider, connection, actor, outcome, detail)
    }

    pub(crate) fn find(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> Result<ConnectionRecord> {
        let found = match connection {
            Some(c) => self.vault.find_connection(provider, c)?,
            None => self.vault.default_connection(provider)?,
        };
        found.ok_or_else(|| {
            let registry = self.registry();
            if registry.get(provider).is_none() {
                registry.not_found(provider)
            } else {
                Error::ConnectionNotFound {
                    provider: provider.into(),
                    connection: connection.unwrap_or(DEFAULT_CONNECTION).into(),
                }
            }
        })
    }
}

// === impl CredentialService: connections ===

impl CredentialService {
    /// Every connection (metadata only).
    pub fn list_connections(&self) -> Result<Vec<ConnectionView>> {
        let reg = self.registry();
        Ok(self
            .vault
            .list_connections()?
            .into_iter()
            .map(|r| view(&reg, r))
            .collect())
    }

    /// One connection, redacted. `connection: None` picks the provider's default.
    pub fn get_connection(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> Result<ConnectionView> {
        let rec = self.find(provider, connection)?;
        Ok(view(&self.registry(), rec))
    }

    /// Stores an API key for an `api_key` provider.
    ///
    /// The key must be visible ASCII (no spaces, line breaks or NUL: those
    /// would let a stored value inject a second header upstream) and must
    /// match the provider's `key_pattern` when it has one. Errors never quote
    /// the key.
    pub fn login_api_key(
        &self,
        provider: &str,
        connection: &str,
        key: Secret<String>,
        force: bool,
    ) -> Result<ConnectionRecord> {
        let reg = self.registry();
        let entry = reg.require(provider)?;
        let def = &entry.def;
        if def.auth_type != AuthType::ApiKey {
            return Err(Error::Unsupported {
                message: format!(
                    "`{provider}` signs in with {} ({}), not with an API key",
                    if def.auth_type == AuthType::Oauth2 {
                        "OAuth"
                    } else {
                        "a browser session"
                    },
                    serde_json::to_value(def.flow)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ),
                hint: Some(if def.auth_type == AuthType::Oauth2 {
                    format!(
                        "run `authsome login {provider}` without --with-api-key: it opens the provider's sign-in"
                    )
                } else {
                    format!(
                        "run `authsome login {provider}` without --with-api-key: it opens a browser where you sign in"
                    )
                }),
            });
        }
        check_connection_name(connection)?;
        let trimmed = key.expose().trim();
        if trimmed.is_empty() {
            return Err(Error::invalid(
                "the API key is empty",
                Some("paste the key, or pipe it into `--with-api-key`".into()),
            ));
        }
        if !trimmed.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::invalid(
                "the API key contains spaces, line breaks or non-ASCII characters",
                Some("copy the key again without surrounding text".into()),
            ));
        }
        if let Some(spec) = &def.api_key
            && let Some(pat) = &spec.key_pattern
        {
            let re = regex_lite::Regex::new(pat).map_err(|e| {
                Error::invalid(
                    format!("provider `{provider}` has an invalid key_pattern: {e}"),
                    None,
                )
            })?;
            if !re.is_match(trimmed) {
                return Err(Error::invalid(
                    format!(
                        "that does not look like an API key for {}",
                        def.display_name
                    ),
                    Some(
                        spec.key_pattern_hint
                            .clone()
                            .unwrap_or_else(|| format!("keys for `{provider}` match {pat}")),
                    ),
                ));
            }
        }
        let value = Secret::new(trimmed.to_string());
        drop(key);
        self.vault.put_connection(
            NewConnection {
                provider: provider.into(),
                name: connection.into(),
                auth_type: AuthType::ApiKey.as_str().into(),
                status: ConnectionStatus::Connected,
                account_label: None,
                token_type: None,
                scopes: Vec::new(),
                expires_at: None,
                api_key: Some(value),
                access_token: None,
                refresh_token: None,
                cookies: None,
                flow: None,
            },
            force,
        )
    }

    /// Stores a browser session's cookies for a `browser` provider.
    ///
    /// Exactly the provider's `browser.cookies` are accepted, each present
    /// and a valid cookie value (visible ASCII, no `;`): a value that could
    /// end the `Cookie` header early or start another is refused. The
    /// connection expires per [`browser_expiry`]. Errors name cookies,
    /// never their values.
    pub fn login_browser(
        &self,
        provider: &str,
        connection: &str,
        cookies: CookieJar,
        expiries: &std::collections::BTreeMap<String, i64>,
        force: bool,
    ) -> Result<ConnectionRecord> {
        let reg = self.registry();
        let def = reg.require(provider)?.def.clone();
        let spec = match (&def.auth_type, &def.browser) {
            (AuthType::Browser, Some(spec)) => spec,
            _ => {
                return Err(Error::invalid(
                    format!("`{provider}` does not sign in with a browser session"),
                    Some(format!("run `authsome login {provider}`")),
                ));
            }
        };
        check_connection_name(connection)?;
        if let Some(extra) = cookies.keys().find(|k| !spec.cookies.contains(k)) {
            return Err(Error::invalid(
                format!(
                    "cookie `{}` is not one of {provider}'s session cookies",
                    extra.escape_debug()
                ),
                Some(format!("{provider} takes {}", spec.cookies.join(", "))),
            ));
        }
        let missing: Vec<&str> = spec
            .cookies
            .iter()
            .filter(|c| cookies.get(*c).is_none_or(|v| v.expose().is_empty()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid(
                format!(
                    "the browser session lacks the cookie(s) {}",
                    missing.join(", ")
                ),
                Some(format!(
                    "sign in completely, then run `authsome login {provider}` again"
                )),
            ));
        }
        for (name, v) in &cookies {
            if !v
                .expose()
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b';')
            {
                return Err(Error::invalid(
                    format!("cookie `{name}` has a value that cannot be sent in a Cookie header"),
                    None,
                ));
            }
        }
        let now = now_unix();
        let expires_at = browser_expiry(spec, expiries, now);
        if expires_at <= now {
            return Err(Error::expired(
                format!(
                    "the {} session cookies have already expired",
                    def.display_name
                ),
                Some(format!("sign in again with `authsome login {provider}`")),
            ));
        }
        let json = {
            let map: serde_json::Map<String, serde_json::Value> = cookies
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().clone())))
                .collect();
            let text = serde_json::Value::Object(map).to_string();
            Secret::new(text)
        };
        drop(cookies);
        self.vault.put_connection(
            NewConnection {
                provider: provider.into(),
                name: connection.into(),
                auth_type: AuthType::Browser.as_str().into(),
                status: ConnectionStatus::Connected,
                account_label: None,
                token_type: None,
                scopes: Vec::new(),
                expires_at: Some(expires_at),
                api_key: None,
                access_token: None,
                refresh_token: None,
                cookies: Some(json),
                flow: Some("browser".into()),
            },
            force,
        )
    }

    /// Removes one connection. `connection: None` removes the provider's default.
    pub fn logout(&self, provider: &str, connection: Option<&str>) -> Result<ConnectionRecord> {
        let rec = self.find(provider, connection)?;
        self.vault.delete_connection(&rec.provider, &rec.name)?;
        Ok(rec)
    }

    /// Makes `connection` the provider's default, and the provider the
    /// chosen one on every host rule it shares with other connected
    /// providers (a lasting answer to a conflict; the run's `--connection`
    /// still overrides it). Returns those rules.
    pub fn set_default(&self, provider: &str, connection: &str) -> Result<Vec<String>> {
        self.registry().require(provider)?;
        let rules = self.routes()?.shared_rules(provider);
        self.vault.set_default(provider, connection, &rules)?;
        Ok(rules)
    }

    /// The values of a connection as environment variables (the provider's
    /// `export` map, or `<PROVIDER>_API_KEY` / `_ACCESS_TOKEN` by default).
    pub fn export(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> Result<(ConnectionRecord, Vec<ExportVar>)> {
        let rec = self.find(provider, connection)?;
        let reg = self.registry();
        let def = reg.require(provider)?.def.clone();
        let secrets = self.vault.read_secrets(&rec)?;
        let jar = match &secrets.cookies {
            Some(c) => parse_jar(c)?,
            None => CookieJar::new(),
        };
        let mut out = Vec::new();
        for (name, role) in export_roles(&def) {
            let value = match role {
                ExportRole::ApiKey => secrets.api_key.as_ref().map(Secret::duplicate),
                ExportRole::AccessToken => secrets.access_token.as_ref().map(Secret::duplicate),
                ExportRole::RefreshToken => secrets.refresh_token.as_ref().map(Secret::duplicate),
                ExportRole::BaseUrl => def
                    .oauth
                    .as_ref()
                    .and_then(|o| o.base_url.clone())
                    .map(Secret::new),
                ExportRole::ApiUrl => def.rules.iter().find_map(|r| match &r.host {
                    HostPattern::Exact(h) => Some(Secret::new(format!(
                        "https://{h}{}{}",
                        r.port.map(|p| format!(":{p}")).unwrap_or_default(),
                        r.path_prefix.as_deref().unwrap_or("")
                    ))),
                    HostPattern::Suffix(_) => None,
                }),
                ExportRole::Cookie(c) => jar.get(&c).map(Secret::duplicate),
            };
            if let Some(value) = value {
                out.push(ExportVar { name, value });
            }
        }
        Ok((rec, out))
    }

    /// The routing table over providers that have at least one connection,
    /// with the providers chosen on shared rules (`set-default`).
    pub fn routes(&self) -> Result<RouteTable> {
        let reg = self.registry();
        let mut names: Vec<String> = self
            .vault
            .list_connections()?
            .into_iter()
            .map(|c| c.provider)
            .collect();
        names.dedup();
        Ok(RouteTable::build(
            names
                .iter()
                .filter_map(|n| reg.get(n))
                .map(|e| e.def.as_ref()),
        )
        .with_choices(&self.provider_choices()?))
    }

    /// The lasting choices (`set-default`), each rule in the form rules
    /// print in today (one stored as `host:443` by an older version is
    /// `host`).
    fn provider_choices(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .vault
            .provider_choices()?
            .into_iter()
            .map(|(rule, p)| {
                let rule = crate::providers::HostRule::parse(&rule)
                    .map(|r| r.to_string())
                    .unwrap_or(rule);
                (rule, p)
            })
            .collect())
    }

    /// The credential for a request to `host:port` + `path`, or `Ok(None)`
    /// when no connected provider claims it. Fails closed: a provider host
    /// whose connection is unusable is an error, never `Ok(None)`; so is a
    /// rule several connected providers share with none chosen.
    pub fn resolve_for_host(
        &self,
        host: &str,
        port: u16,
        path: &str,
    ) -> Result<Option<ResolvedCredential>> {
        let table = self.routes()?;
        let Some(route) = table.resolve(host, port, path) else {
            return Ok(None);
        };
        let provider = route.choose(|_| false).map_err(|all| {
            let (message, hint) = crate::routing::conflict_message(&route.rule.to_string(), &all);
            Error::invalid(message, Some(hint))
        })?;
        self.resolve_connection(&provider, None).map(Some)
    }

    /// The credential of one connection (`None`: the provider's default),
    /// ready to inject. Fails closed on a connection that is not usable.
    pub fn resolve_connection(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> Result<ResolvedCredential> {
        let provider = provider.to_string();
        let reg = self.registry();
        let def = reg.require(&provider)?.def.clone();
        let rec = self.find(&provider, connection)?;
        let rec = if rec.status == ConnectionStatus::Connected {
            self.refresh_if_due(rec)?
        } else {
            rec
        };
        if rec.status == ConnectionStatus::Suspended {
            return Err(Error::ConnectionSuspended {
                provider,
                connection: rec.name,
            });
        }
        if rec.status != ConnectionStatus::Connected {
            let message = format!(
                "the `{provider}` connection `{}` is {:?}",
                rec.name, rec.status
            )
            .to_lowercase();
            let hint = Some(format!("run `authsome login {provider} --force`"));
            // Expired and revoked were good once; `invalid` (unusable stored
            // data) is not an expiry.
            return Err(match rec.status {
                ConnectionStatus::Expired | ConnectionStatus::Revoked => {
                    Error::expired(message, hint)
                }
                _ => Error::invalid(message, hint),
            });
        }
        if rec.expires_at.is_some_and(|e| e <= now_unix()) {
            let what = if def.auth_type == AuthType::Browser {
                "browser session"
            } else {
                "token"
            };
            return Err(Error::expired(
                format!(
                    "the `{provider}` {what} of connection `{}` has expired",
                    rec.name
                ),
                Some(format!(
                    "{}run `authsome login {provider}{} --force`",
                    if def.auth_type == AuthType::Browser {
                        "sign in again: "
                    } else {
                        ""
                    },
                    if rec.name == DEFAULT_CONNECTION {
                        String::new()
                    } else {
                        format!(" --connection {}", rec.name)
                    }
                )),
            ));
        }
        let injection = def.injection().ok_or_else(|| {
            Error::invalid(
                format!("provider `{provider}` has no way to inject a credential"),
                None,
            )
        })?;
        let secrets = self.vault.read_secrets(&rec)?;
        if def.auth_type == AuthType::Browser {
            return browser_credential(&def, rec, injection, secrets.cookies);
        }
        let raw = match injection.source {
            ExportRole::ApiKey => secrets.api_key,
            _ => secrets.access_token,
        }
        .ok_or_else(|| Error::ConnectionNotFound {
            provider: provider.clone(),
            connection: rec.name.clone(),
        })?;
        let value = header_value(&injection, &raw)?;
        Ok(ResolvedCredential {
            provider,
            connection: rec.name,
            injection,
            value,
            expires_at: rec.expires_at,
            extra: Vec::new(),
            parts: Vec::new(),
            cookie_names: Vec::new(),
        })
    }
}

fn parse_jar(stored: &Secret<String>) -> Result<CookieJar> {
    let map: std::collections::BTreeMap<String, String> = serde_json::from_str(stored.expose())
        .map_err(|_e| {
            Error::invalid(
                "the stored browser session is unreadable",
                Some("sign in again with `authsome login … --force`".into()),
            )
        })?;
    Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
}

/// A browser session as the proxy writes it: one `Cookie` header with the
/// provider's cookies, in the definition's order, and its `extract` and
/// `extra_headers` headers.
fn browser_credential(
    def: &ProviderDef,
    rec: ConnectionRecord,
    injection: Injection,
    stored: Option<Secret<String>>,
) -> Result<ResolvedCredential> {
    let spec = def.browser.as_ref().ok_or_else(|| {
        Error::invalid(
            format!("provider `{}` has no browser block", def.name),
            None,
        )
    })?;
    let stored = stored.ok_or_else(|| Error::ConnectionNotFound {
        provider: def.name.clone(),
        connection: rec.name.clone(),
    })?;
    let jar = parse_jar(&stored)?;
    let bad = || {
        Error::invalid(
            "the stored browser session has an invalid format",
            Some(format!(
                "sign in again with `authsome login {} --force`",
                def.name
            )),
        )
    };
    let mut header = String::new();
    let mut parts = Vec::new();
    for name in &spec.cookies {
        let v = jar.get(name).ok_or_else(bad)?;
        let raw = v.expose();
        if raw.is_empty() || !raw.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b';') {
            return Err(bad());
        }
        if !header.is_empty() {
            header.push_str("; ");
        }
        header.push_str(name);
        header.push('=');
        header.push_str(raw);
        parts.push(Secret::new(raw.clone()));
        if unquoted(raw) != raw {
            parts.push(Secret::new(unquoted(raw).to_string()));
        }
    }
    let mut extra = Vec::new();
    for e in &spec.extract {
        let v = jar.get(&e.cookie).ok_or_else(bad)?;
        extra.push((
            e.header.clone(),
            Secret::new(format!("{}{}", e.prefix, unquoted(v.expose()))),
        ));
    }
    for (k, v) in &spec.extra_headers {
        extra.push((k.clone(), Secret::new(v.clone())));
    }
    Ok(ResolvedCredential {
        provider: def.name.clone(),
        connection: rec.name,
        injection,
        value: Secret::new(header),
        expires_at: rec.expires_at,
        extra,
        parts,
        cookie_names: spec.cookies.clone(),
    })
}

/// Builds the value written into the request. The one place a stored secret
/// is combined with its header prefix.
fn header_value(inj: &Injection, raw: &Secret<String>) -> Result<Secret<String>> {
    let v = raw.expose();
    if v.is_empty() || !v.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::invalid(
            "the stored credential has an invalid format (control characters or spaces)",
            Some("store it again with `authsome login … --force`".into()),
        ));
    }
    Ok(Secret::new(match inj.format {
        KeyFormat::Header => format!("{}{v}", inj.prefix),
        KeyFormat::Basic => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{v}:"))
        ),
        KeyFormat::Query => v.clone(),
    }))
}

/// The variables a provider exports, with the role of each: the provider's
/// `export` map, or `<PROVIDER>_API_KEY` / `_ACCESS_TOKEN` by default.
pub fn export_roles(def: &ProviderDef) -> Vec<(String, ExportRole)> {
    let mut roles: Vec<(String, ExportRole)> = def
        .export
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if roles.is_empty() {
        let stem: String = def
            .name
            .to_ascii_uppercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        roles.push((format!("{stem}_API_KEY"), ExportRole::ApiKey));
        roles.push((format!("{stem}_ACCESS_TOKEN"), ExportRole::AccessToken));
    }
    roles
}

/// A fresh placeholder for `def`: its shape's prefix (or `authsome-`) and
/// random letters and digits up to the shape's length. Fresh for every run:
/// a placeholder seen once (in a log, a transcript) says nothing about the
/// next run's, and never works anywhere but through authsome.
pub fn new_placeholder(def: &ProviderDef) -> Result<String> {
    let shape = def
        .placeholder
        .clone()
        .unwrap_or_else(crate::providers::schema::PlaceholderShape::default_shape);
    placeholder_of_shape(&shape)
}

/// A placeholder of `shape` (see [`new_placeholder`]).
pub fn placeholder_of_shape(shape: &crate::providers::schema::PlaceholderShape) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let want = shape.length.saturating_sub(shape.prefix.len());
    let mut out = shape.prefix.clone();
    let mut buf = [0u8; 64];
    while out.len() < shape.prefix.len() + want {
        crate::secret::fill_random(&mut buf)?;
        // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == shape.prefix.len() + want {
                break;
            }
            out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

fn view(reg: &Registry, record: ConnectionRecord) -> ConnectionView {
    let display_name = reg
        .get(&record.provider)
        .map(|e| e.def.display_name.clone())
        .unwrap_or_else(|| record.provider.clone());
    let mark = |b: bool| b.then_some("***");
    let secrets = Redacted {
        api_key: mark(record.has_api_key),
        access_token: mark(record.has_access_token),
        refresh_token: mark(record.has_refresh_token),
        cookies: mark(record.has_cookies),
    };
    ConnectionView {
        record,
        display_name,
        secrets,
    }
}

pub(crate) fn check_connection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("connection name `{}` is not allowed", name.escape_debug()),
            Some("use letters, digits, `.`, `_` and `-`".into()),
        ))
    }
}

// === impl CredentialService: providers ===

impl CredentialService {
    /// Every provider with its connection count.
    pub fn list_providers(&self) -> Result<Vec<ProviderSummary>> {
        let conns = self.vault.list_connections()?;
        let choices = self.provider_choices()?;
        Ok(self
            .registry()
            .iter()
            .map(|e| ProviderSummary {
                name: e.def.name.clone(),
                display_name: e.def.display_name.clone(),
                kind: e.def.kind,
                auth_type: e.def.auth_type,
                flow: e.def.flow,
                source: e.source,
                api_url: e.def.api_url.clone(),
                connections: conns.iter().filter(|c| c.provider == e.def.name).count(),
                chosen_on: choices
                    .iter()
                    .filter(|(_, p)| *p == e.def.name)
                    .map(|(r, _)| r.clone())
                    .collect(),
            })
            .collect())
    }

    /// One provider's definition and source.
    pub fn get_provider(&self, name: &str) -> Result<(Arc<ProviderDef>, ProviderSource)> {
        let reg = self.registry();
        let e = reg.require(name)?;
        Ok((e.def.clone(), e.source))
    }

    /// Registers a custom provider. A bundled name needs `force` (and then
    /// overrides the bundled definition); so does replacing a custom one.
    pub fn register_provider(&self, def: ProviderDef, force: bool) -> Result<RegisterOutcome> {
        self.register_provider_suspending(def, force)
            .map(|(o, _)| o)
    }

    /// Registers a provider; when the new definition sends credentials
    /// elsewhere or in another form than the one it replaces
    /// ([`ProviderDef::binding`]), the provider's connections are suspended
    /// until the user logs in again. Returns their names.
    pub fn register_provider_suspending(
        &self,
        def: ProviderDef,
        force: bool,
    ) -> Result<(RegisterOutcome, Vec<String>)> {
        let reg = self.registry();
        let before = reg.get(&def.name).map(|e| e.def.binding());
        let outcome = match reg.get(&def.name).map(|e| e.source) {
            None => RegisterOutcome::Added,
            Some(ProviderSource::Bundled) if force => RegisterOutcome::OverrodeBundled,
            Some(ProviderSource::Custom | ProviderSource::Override) if force => {
                RegisterOutcome::Replaced
            }
            Some(ProviderSource::Bundled) => {
                return Err(Error::Exists {
                    message: format!("`{}` is a bundled provider", def.name),
                    hint: Some(format!(
                        "add --force to override it; `authsome provider remove {}` restores the bundled form",
                        def.name
                    )),
                });
            }
            Some(_) => {
                return Err(Error::Exists {
                    message: format!("a custom provider `{}` is already registered", def.name),
                    hint: Some("add --force to replace it".into()),
                });
            }
        };
        let suspended = if before.is_some_and(|b| b != def.binding()) {
            self.vault.suspend_connections(&def.name)?
        } else {
            Vec::new()
        };
        self.vault.put_custom_provider(&def.name, &def.to_json())?;
        self.reload_registry()?;
        Ok((outcome, suspended))
    }

    /// Removes a custom provider; a bundled one of the same name comes back.
    pub fn remove_provider(&self, name: &str) -> Result<RemoveOutcome> {
        let reg = self.registry();
        let entry = reg.require(name)?;
        match entry.source {
            ProviderSource::Bundled => {
                return Err(Error::invalid(
                    format!(
                        "`{name}` is a bundled provider and has no custom definition to remove"
                    ),
                    None,
                ));
            }
            ProviderSource::Custom => {
                let n = self
                    .vault
                    .list_connections()?
                    .iter()
                    .filter(|c| c.provider == name)
                    .count();
                if n > 0 {
                    return Err(Error::invalid(
                        format!(
                            "provider `{name}` still has {}",
                            crate::error::count(n, "connection")
                        ),
                        Some(format!("run `authsome logout {name}` first")),
                    ));
                }
            }
            ProviderSource::Override => {}
        }
        let restored = entry.source == ProviderSource::Override;
        let before = entry.def.binding();
        self.vault.delete_custom_provider(name)?;
        self.reload_registry()?;
        if restored
            && self
                .registry()
                .get(name)
                .is_some_and(|e| e.def.binding() != before)
        {
            // The bundled definition sends the credential elsewhere.
            self.vault.suspend_connections(name)?;
        }
        Ok(if restored {
            RemoveOutcome::RestoredBundled
        } else {
            RemoveOutcome::Deleted
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::master_key::KeySource;

    fn service() -> (tempfile::TempDir, CredentialService) {
        let dir = tempfile::tempdir().unwrap();
        let svc = CredentialService::open_with(
            Home::new(dir.path()),
            &MasterKey::from_bytes([3; 32], KeySource::Env),
        )
        .unwrap();
        (dir, svc)
    }

    #[test]
    fn the_refresh_window_scales_with_short_lifetimes() {
        assert_eq!(refresh_window(3600), 300);
        assert_eq!(refresh_window(600), 300);
        assert_eq!(refresh_window(300), 150);
        assert_eq!(refresh_window(20), 10);
        assert_eq!(refresh_window(-5), 0);
        // A fresh 20 s token is not due; it is after 10 s; a 1 h one 5 min before expiry.
        assert!(!refresh_due(1000, 1020, 1000));
        assert!(!refresh_due(1000, 1020, 1009));
        assert!(refresh_due(1000, 1020, 1010));
        assert!(!refresh_due(0, 3600, 3299));
        assert!(refresh_due(0, 3600, 3300));
    }

    fn key(s: &str) -> Secret<String> {
        Secret::new(s.into())
    }

    #[test]
    fn api_key_is_checked_against_the_pattern_without_echoing_it() {
        let (_d, s) = service();
        let err = s
            .login_api_key("openai", "default", key("not-a-key-CANARY"), false)
            .unwrap_err();
        assert!(!err.to_string().contains("CANARY"));
        assert!(err.hint().unwrap().contains("sk-"));
        s.login_api_key(
            "openai",
            "default",
            key("sk-aaaaaaaaaaaaaaaaaaaaaaaa"),
            false,
        )
        .unwrap();
    }

    #[test]
    fn keys_with_line_breaks_are_refused() {
        let (_d, s) = service();
        for bad in [
            "sk-aaaaaaaaaaaaaaaaaaaaaaaa\r\nX-Evil: 1",
            "a b",
            "k\0ey",
            "ключ",
        ] {
            assert!(
                s.login_api_key("ahrefs", "default", key(bad), false)
                    .is_err(),
                "{bad:?}"
            );
        }
        // surrounding whitespace (a pasted newline) is trimmed
        s.login_api_key("ahrefs", "default", key("  abc123\n"), false)
            .unwrap();
        let (_, vars) = s.export("ahrefs", None).unwrap();
        assert_eq!(vars[0].value.expose(), "abc123");
    }

    #[test]
    fn oauth_providers_are_not_api_key_logins() {
        let (_d, s) = service();
        let err = s
            .login_api_key("github", "default", key("x"), false)
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }));
    }

    #[test]
    fn resolve_builds_each_header_form() {
        let (_d, s) = service();
        s.login_api_key(
            "openai",
            "default",
            key("sk-aaaaaaaaaaaaaaaaaaaaaaaa"),
            false,
        )
        .unwrap();
        s.login_api_key("anthropic", "default", key("sk-ant-xyz"), false)
            .unwrap();
        s.login_api_key("ashby", "default", key("ashbykey"), false)
            .unwrap();
        let r = s
            .resolve_for_host("api.openai.com", 443, "/v1/models")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.injection.name.as_str(), r.value.expose().as_str()),
            ("Authorization", "Bearer sk-aaaaaaaaaaaaaaaaaaaaaaaa")
        );
        let r = s
            .resolve_for_host("api.anthropic.com", 443, "/v1/messages")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.injection.name.as_str(), r.value.expose().as_str()),
            ("x-api-key", "sk-ant-xyz")
        );
        let r = s
            .resolve_for_host("api.ashbyhq.com", 443, "/")
            .unwrap()
            .unwrap();
        assert_eq!(r.value.expose(), "Basic YXNoYnlrZXk6");
        // unconnected provider hosts and unknown hosts resolve to nothing
        assert!(
            s.resolve_for_host("api.groq.com", 443, "/")
                .unwrap()
                .is_none()
        );
        assert!(
            s.resolve_for_host("example.com", 443, "/")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_expired_or_revoked_connection_is_expired_not_invalid_input() {
        let (_d, s) = service();
        s.login_api_key("ahrefs", "default", key("k"), false)
            .unwrap();
        for (status, kind) in [
            (ConnectionStatus::Expired, crate::error::ErrorKind::Expired),
            (ConnectionStatus::Revoked, crate::error::ErrorKind::Expired),
            (
                ConnectionStatus::Invalid,
                crate::error::ErrorKind::InvalidInput,
            ),
        ] {
            let rec = s.find("ahrefs", None).unwrap();
            s.vault().set_status(&rec, status).unwrap();
            let err = s.resolve_connection("ahrefs", None).unwrap_err();
            assert_eq!(err.kind(), kind, "{status:?}: {err}");
            assert!(err.hint().unwrap().contains("--force"), "{err}");
        }
    }

    #[test]
    fn default_connection_serves_and_can_be_switched() {
        let (_d, s) = service();
        s.login_api_key("ahrefs", "work", key("work-key"), false)
            .unwrap();
        s.login_api_key("ahrefs", "home", key("home-key"), false)
            .unwrap();
        let v = |s: &CredentialService| {
            s.resolve_for_host("api.ahrefs.com", 443, "/")
                .unwrap()
                .unwrap()
                .value
                .expose()
                .clone()
        };
        assert_eq!(v(&s), "Bearer work-key");
        s.set_default("ahrefs", "home").unwrap();
        assert_eq!(v(&s), "Bearer home-key");
        s.logout("ahrefs", None).unwrap();
        assert_eq!(v(&s), "Bearer work-key");
    }

    #[test]
    fn set_default_chooses_among_rivals_until_the_chosen_one_logs_out() {
        let (_d, s) = service();
        for name in ["acme", "acme2"] {
            let def = crate::providers::parse_file(
                "t",
                &format!(
                    r#"{{"name":"{name}","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test"],"api_key":{{"header_name":"X-Acme-Key","header_prefix":null}}}}"#
                ),
            )
            .unwrap();
            s.register_provider(def, false).unwrap();
        }
        let v = |s: &CredentialService| {
            s.resolve_for_host("api.acme.test", 443, "/")
                .map(|c| c.unwrap().value.expose().clone())
        };
        // Alone, a provider setting its default chooses nothing.
        s.login_api_key("acme", "default", key("k1"), false)
            .unwrap();
        assert!(s.set_default("acme", "default").unwrap().is_empty());
        s.login_api_key("acme2", "default", key("k2"), false)
            .unwrap();
        let err = v(&s).unwrap_err();
        assert!(
            err.hint()
                .unwrap()
                .contains("authsome set-default PROVIDER CONNECTION"),
            "{err:?}"
        );
        // Chosen for good: rivals connected later keep the choice.
        assert_eq!(
            s.set_default("acme2", "default").unwrap(),
            ["api.acme.test"]
        );
        assert_eq!(v(&s).unwrap(), "k2");
        s.login_api_key("acme", "other", key("k3"), false).unwrap();
        assert_eq!(v(&s).unwrap(), "k2");
        let listed = s.list_providers().unwrap();
        let chosen = |n: &str| {
            listed
                .iter()
                .find(|p| p.name == n)
                .unwrap()
                .chosen_on
                .clone()
        };
        assert_eq!(chosen("acme2"), ["api.acme.test"]);
        assert!(chosen("acme").is_empty());
        // Another choice replaces it.
        s.set_default("acme", "other").unwrap();
        assert_eq!(v(&s).unwrap(), "k3");
        // The chosen provider's last connection gone: the choice goes too.
        s.logout("acme", Some("default")).unwrap();
        assert_eq!(v(&s).unwrap(), "k3");
        s.logout("acme", Some("other")).unwrap();
        assert!(s.vault().provider_choices().unwrap().is_empty());
        assert_eq!(v(&s).unwrap(), "k2");
        s.login_api_key("acme", "default", key("k1"), false)
            .unwrap();
        assert!(
            v(&s).is_err(),
            "logging in again does not bring the choice back"
        );
        // A choice an older version stored as `host:443` still counts.
        s.vault()
            .set_default("acme", "default", &["api.acme.test:443".to_string()])
            .unwrap();
        assert_eq!(v(&s).unwrap(), "k1");
    }

    #[test]
    fn provider_register_override_and_restore() {
        let (_d, s) = service();
        let custom = crate::providers::parse_file(
            "t",
            r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test"],"api_key":{"header_name":"X-Acme-Key","header_prefix":null}}"#,
        )
        .unwrap();
        assert_eq!(
            s.register_provider(custom.clone(), false).unwrap(),
            RegisterOutcome::Added
        );
        assert!(s.register_provider(custom.clone(), false).is_err());
        assert_eq!(
            s.register_provider(custom, true).unwrap(),
            RegisterOutcome::Replaced
        );
        s.login_api_key("acme", "default", key("acme-secret"), false)
            .unwrap();
        let r = s
            .resolve_for_host("api.acme.test", 443, "/")
            .unwrap()
            .unwrap();
        assert_eq!(r.injection.name, "X-Acme-Key");
        assert!(s.remove_provider("acme").is_err(), "has connections");

        let openai2 = crate::providers::parse_file(
            "t",
            r#"{"name":"openai","auth_type":"api_key","flow":"api_key","api_url":["api.openai.com"],"api_key":{"header_name":"X-Other"}}"#,
        )
        .unwrap();
        assert!(s.register_provider(openai2.clone(), false).is_err());
        assert_eq!(
            s.register_provider(openai2, true).unwrap(),
            RegisterOutcome::OverrodeBundled
        );
        assert_eq!(
            s.get_provider("openai")
                .unwrap()
                .0
                .api_key
                .as_ref()
                .unwrap()
                .header_name,
            "X-Other"
        );
        assert_eq!(
            s.remove_provider("openai").unwrap(),
            RemoveOutcome::RestoredBundled
        );
        assert_eq!(
            s.get_provider("openai")
                .unwrap()
                .0
                .api_key
                .as_ref()
                .unwrap()
                .header_name,
            "Authorization"
        );
        assert!(s.remove_provider("openai").is_err());
    }

    #[test]
    fn a_host_shared_by_two_connected_providers_is_never_guessed() {
        let (_d, s) = service();
        let def = crate::providers::parse_file(
            "t",
            r#"{"name":"ahrefs-2","auth_type":"api_key","flow":"api_key","api_url":["api.ahrefs.com"],"api_key":{}}"#,
        )
        .unwrap();
        // Registering a second claimant is allowed.
        s.register_provider(def, false).unwrap();
        s.login_api_key("ahrefs", "default", key("AKCANARY_one"), false)
            .unwrap();
        let r = s
            .resolve_for_host("api.ahrefs.com", 443, "/")
            .unwrap()
            .unwrap();
        assert_eq!(r.provider, "ahrefs");
        s.login_api_key("ahrefs-2", "default", key("AKCANARY_two"), false)
            .unwrap();
        let err = s.resolve_for_host("api.ahrefs.com", 443, "/").unwrap_err();
        assert!(err.to_string().contains("ahrefs and ahrefs-2"), "{err}");
    }

    fn jar(pairs: &[(&str, &str)]) -> CookieJar {
        pairs.iter().map(|(k, v)| (k.to_string(), key(v))).collect()
    }

    #[test]
    fn a_browser_session_is_checked_stored_and_injected_as_cookie_and_csrf() {
        let (_d, s) = service();
        let none = std::collections::BTreeMap::new();
        let err = s
            .login_browser(
                "linkedin-browser",
                "default",
                jar(&[("li_at", "AQEDx")]),
                &none,
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("JSESSIONID"), "{err}");
        let err = s
            .login_browser(
                "linkedin-browser",
                "default",
                jar(&[("li_at", "x;CANARY=1"), ("JSESSIONID", "\"ajax:1\"")]),
                &none,
                false,
            )
            .unwrap_err();
        assert!(!err.to_string().contains("CANARY"), "{err}");
        let err = s
            .login_browser(
                "linkedin-browser",
                "default",
                jar(&[("li_at", "a"), ("JSESSIONID", "b"), ("other", "c")]),
                &none,
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
        assert!(
            s.login_browser("openai", "default", jar(&[("li_at", "a")]), &none, false)
                .is_err()
        );

        let now = now_unix();
        let exp = [("li_at".to_string(), now + 7200)].into();
        let rec = s
            .login_browser(
                "linkedin-browser",
                "default",
                jar(&[
                    ("li_at", "AQEDsecretCANARY"),
                    ("JSESSIONID", "\"ajax:77CANARY\""),
                ]),
                &exp,
                false,
            )
            .unwrap();
        assert_eq!(rec.expires_at, Some(now + 7200), "the cookie's own expiry");
        assert!(rec.has_cookies && !rec.has_api_key);
        let r = s
            .resolve_for_host("www.linkedin.com", 443, "/voyager/api/me")
            .unwrap()
            .unwrap();
        assert_eq!(r.injection.name, "Cookie");
        assert_eq!(
            r.value.expose(),
            "li_at=AQEDsecretCANARY; JSESSIONID=\"ajax:77CANARY\""
        );
        assert_eq!(r.extra.len(), 1);
        assert_eq!(r.extra[0].0, "csrf-token");
        assert_eq!(r.extra[0].1.expose(), "ajax:77CANARY", "without its quotes");
        assert_eq!(r.cookie_names, ["li_at", "JSESSIONID"]);
        assert!(!format!("{r:?}").contains("CANARY"));
        let view = s.get_connection("linkedin-browser", None).unwrap();
        let json = serde_json::to_string(&view).unwrap();
        assert!(
            json.contains(r#""cookies":"***""#) && !json.contains("CANARY"),
            "{json}"
        );
        let (_, vars) = s.export("linkedin-browser", None).unwrap();
        let li = vars.iter().find(|v| v.name == "LINKEDIN_LI_AT").unwrap();
        assert_eq!(li.value.expose(), "AQEDsecretCANARY");

        // A second login needs --force; without a cookie expiry, ttl_hours.
        let again = || jar(&[("li_at", "AQEDnew"), ("JSESSIONID", "\"ajax:78\"")]);
        assert!(matches!(
            s.login_browser("linkedin-browser", "default", again(), &none, false),
            Err(Error::ConnectionExists { .. })
        ));
        let rec = s
            .login_browser("linkedin-browser", "default", again(), &none, true)
            .unwrap();
        let e = rec.expires_at.unwrap() - now;
        assert!((24 * 3600..24 * 3600 + 60).contains(&e), "{e}");
        // Cookies that already expired are refused.
        let past = [("li_at".to_string(), now - 10)].into();
        let err = s
            .login_browser("linkedin-browser", "default", again(), &past, true)
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Expired);
    }

    #[test]
    fn browser_expiry_is_the_cookies_own_and_never_past_any_cookie() {
        let reg = Registry::bundled().unwrap();
        let spec = reg.get("x-browser").unwrap().def.browser.clone().unwrap();
        let e = |pairs: &[(&str, i64)]| {
            let m = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            browser_expiry(&spec, &m, 1000)
        };
        assert_eq!(e(&[]), 1000 + 24 * 3600);
        assert_eq!(e(&[("auth_token", 500_000)]), 500_000);
        assert_eq!(e(&[("auth_token", 500_000), ("ct0", 9000)]), 9000);
        assert_eq!(e(&[("ct0", 9000)]), 9000);
        assert_eq!(unquoted("\"ajax:1\""), "ajax:1");
        assert_eq!(unquoted("\"x"), "\"x");
    }

    #[test]
    fn debug_of_resolved_credential_is_redacted() {
        let (_d, s) = service();
        s.login_api_key("ahrefs", "default", key("AKCANARY_dbg"), false)
            .unwrap();
        let r = s
            .resolve_for_host("api.ahrefs.com", 443, "/")
            .unwrap()
            .unwrap();
        assert!(!format!("{r:?}").contains("AKCANARY"));
        let (_, vars) = s.export("ahrefs", None).unwrap();
        assert!(!format!("{vars:?}").contains("AKCANARY"));
    }

    #[test]
    fn bundled_placeholders_have_their_shape_pass_the_key_check_and_are_fresh() {
        let reg = Registry::bundled().unwrap();
        let mut shaped = 0;
        for e in reg.iter() {
            let a = new_placeholder(&e.def).unwrap();
            let b = new_placeholder(&e.def).unwrap();
            assert_ne!(a, b, "{}", e.def.name);
            let shape = e
                .def
                .placeholder
                .clone()
                .unwrap_or_else(crate::providers::schema::PlaceholderShape::default_shape);
            assert_eq!(a.len(), shape.length, "{}", e.def.name);
            assert!(a.starts_with(&shape.prefix), "{}", e.def.name);
            assert!(
                a[shape.prefix.len()..]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric())
            );
            if let Some(pattern) = e.def.api_key.as_ref().and_then(|k| k.key_pattern.as_ref()) {
                let re = regex_lite::Regex::new(pattern).unwrap();
                assert!(re.is_match(&a), "{}: {a} fails {pattern}", e.def.name);
                shaped += 1;
            }
        }
        assert!(shaped >= 10, "{shaped}");
        let openai = reg.get("openai").unwrap();
        assert!(new_placeholder(&openai.def).unwrap().starts_with("sk-"));
    }
}
