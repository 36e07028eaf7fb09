//! [`Logins`]: the one home for logins and every other change to what the
//! proxy injects.
//!
//! The daemon's routes, and next the dashboard and the team server, call
//! these operations; none of them writes the vault itself. Every write ends
//! in [`Logins::commit`], which, in this order and as one task on the
//! blocking pool (SQLite calls block; a caller that goes away cannot stop
//! it half way):
//! 1. runs the write;
//! 2. makes the proxy see it: its routing table is rebuilt and its cached
//!    credentials of the provider are forgotten, before the caller answers,
//!    so the next proxied request sees the change (after a refused write
//!    too, which may have been partial);
//! 3. records the audit entry, success and refusal alike (a refusal with
//!    its error code, never a value).
//!
//! A login goes: [`Logins::start`] → (API key) [`Logins::resume_with_key`]
//! or the browser form; (OAuth) the authorization-code callback
//! [`Logins::oauth_callback`], the device-code poller, or one
//! client-credentials grant → [`Logins::commit`].
//!
//! Here: the service, its commit path, and API-key logins and sessions;
//! `oauth.rs`: the OAuth flows; `changes.rs`: logout, revoke, default,
//! export and provider definitions.

use std::sync::Arc;

use serde_json::{Value, json};

mod changes;
mod oauth;
mod team;

pub use self::oauth::CallbackError;
pub use self::team::check_did;
use super::oauth::OAuthHttp;
use super::{InputContext, NextAction, SessionError, SessionStatus};
use super::{SessionView, Sessions};
use crate::clock::now_unix;
use crate::credentials::oauth::ProviderNotice;
use crate::credentials::proxy_tables::ProxyTables;
use crate::credentials::{CredentialService, DEFAULT_CONNECTION, ExportVar, RegisterOutcome};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::{AuthType, ProviderDef};
use crate::secret::Secret;

/// Where audit entries go: the vault's audit table today (the
/// [`CredentialService`] implementation); a team server records members'
/// identities through the same seam.
pub trait AuditSink: Send + Sync + std::fmt::Debug + 'static {
    /// Records one entry. Blocking (a vault write). A failure is the
    /// sink's to log: the operation it records already happened.
    fn record(&self, entry: &Change, outcome: &'static str);
}

impl AuditSink for CredentialService {
    fn record(&self, c: &Change, outcome: &'static str) {
        if let Err(e) = self.append_audit(
            c.event,
            c.provider.as_deref(),
            c.connection.as_deref(),
            c.actor.as_deref(),
            outcome,
            &c.detail,
        ) {
            tracing::error!(error = %e, event = c.event, "cannot write the audit log");
        }
    }
}

/// What the proxy must forget after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Nothing it reads changed (an export, a registered OAuth client).
    Nothing,
    /// This provider's connections changed.
    Provider(String),
    /// Anything may have changed (a provider definition).
    All,
}

/// One change, as the audit log records it. The write fills in what it
/// learns (the connection a default resolved to, what the provider said).
#[derive(Debug, Clone)]
pub struct Change {
    pub event: &'static str,
    pub provider: Option<String>,
    pub connection: Option<String>,
    /// Who asked (a did:key, `browser`); `None` for the daemon itself.
    pub actor: Option<String>,
    /// Facts for the record, never a secret.
    pub detail: Value,
    pub scope: Scope,
}

impl Change {
    /// A change of `provider`'s connections.
    pub fn of(event: &'static str, provider: &str, connection: Option<&str>) -> Change {
        Change {
            event,
            provider: Some(provider.to_string()),
            connection: connection.map(String::from),
            actor: None,
            detail: json!({}),
            scope: Scope::Provider(provider.to_string()),
        }
    }

    /// Who asked.
    pub fn by(mut self, actor: Option<String>) -> Change {
        self.actor = actor;
        self
    }

    /// What the proxy must forget.
    pub fn scope(mut self, scope: Scope) -> Change {
        self.scope = scope;
        self
    }

    /// Adds a fact to the record.
    pub fn note(&mut self, key: &str, value: impl serde::Serialize) {
        if let Value::Object(m) = &mut self.detail {
            m.insert(key.to_string(), json!(value));
        }
    }
}

/// What `authsome login` asks for.
#[derive(Debug, Default)]
pub struct LoginRequest {
    pub provider: String,
    /// `None`: [`DEFAULT_CONNECTION`].
    pub connection: Option<String>,
    pub force: bool,
    /// OAuth: `pkce`, `device` or `client_credentials` (default: the provider's).
    pub flow: Option<String>,
    /// OAuth: a client to use (stored once the login succeeds).
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    pub scopes: Option<Vec<String>>,
    /// OAuth: the instance URL of a self-hosted provider.
    pub base_url: Option<String>,
    /// OAuth: with no client configured, ask for one in the browser form.
    pub client_form: bool,
}

/// The OAuth client form's fields, as typed.
pub struct ClientForm {
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub scopes: String,
    pub base_url: String,
}

impl std::fmt::Debug for ClientForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientForm { .. }")
    }
}

/// A connection's values, leaving through `export` (the audited way out).
#[derive(Debug)]
pub struct Exported {
    pub provider: String,
    pub connection: String,
    pub variables: Vec<ExportVar>,
}

/// A connection removed at logout.
#[derive(Debug)]
pub struct LoggedOut {
    pub provider: String,
    pub connection: String,
    /// What the provider's revocation endpoint said (OAuth).
    pub provider_notified: ProviderNotice,
}

/// Every connection of a provider removed.
#[derive(Debug)]
pub struct Revoked {
    pub provider: String,
    pub removed: usize,
    pub provider_notified: Vec<ProviderNotice>,
}

/// A provider definition registered.
#[derive(Debug)]
pub struct Registered {
    pub provider: String,
    pub outcome: RegisterOutcome,
    pub api_url: Vec<String>,
    /// Connections suspended because the definition re-bound them.
    pub suspended: Vec<String>,
}

/// The logins and changes service (see the module docs).
#[derive(Debug)]
pub struct Logins {
    svc: Arc<CredentialService>,
    sessions: Arc<Sessions>,
    http: Arc<dyn OAuthHttp>,
    proxy: Arc<ProxyTables>,
    audit: Arc<dyn AuditSink>,
    /// The daemon's URL, for the form and the OAuth callback.
    base_url: String,
}

impl Logins {
    /// The service over `svc`, audited into its vault.
    pub fn new(
        svc: Arc<CredentialService>,
        sessions: Arc<Sessions>,
        http: Arc<dyn OAuthHttp>,
        proxy: Arc<ProxyTables>,
        base_url: String,
    ) -> Logins {
        Logins {
            audit: svc.clone(),
            svc,
            sessions,
            http,
            proxy,
            base_url,
        }
    }

    /// Runs `f` on the blocking pool (vault calls block).
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialService) -> Result<T> + Send + 'static,
    {
        let svc = self.svc.clone();
        tokio::task::spawn_blocking(move || f(&svc))
            .await
            .map_err(task_failed)?
    }

    /// The one path every change takes: write, make the proxy see it,
    /// record it (success and refusal alike).
    ///
    /// The three steps run as one task on the blocking pool (each is a
    /// blocking vault call), so a caller that goes away mid-change (a CLI
    /// interrupted during a slow revocation, a closed browser tab) cannot
    /// leave a written change that the proxy does not see or the audit log
    /// does not hold. The proxy is told even when the write failed: a
    /// refused write may have been partial (a revoke that removed some
    /// connections), and telling it again is harmless.
    pub async fn commit<T, F>(&self, change: Change, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialService, &mut Change) -> Result<T> + Send + 'static,
    {
        let (svc, proxy, audit) = (self.svc.clone(), self.proxy.clone(), self.audit.clone());
        tokio::task::spawn_blocking(move || {
            let mut change = change;
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(&svc, &mut change)))
                    .unwrap_or_else(|_| {
                        tracing::error!(event = change.event, "a change panicked");
                        Err(Error::io(
                            "the change failed",
                            std::io::Error::other("panic"),
                        ))
                    });
            invalidate(&proxy, &change.scope);
            match &result {
                Ok(_) => audit.record(&change, "ok"),
                Err(e) => {
                    change.note("code", e.code());
                    audit.record(&change, "refused");
                }
            }
            result
        })
        .await
        .map_err(task_failed)?
    }

    /// Writes an audit entry (on the blocking pool). Changes are recorded
    /// by [`Logins::commit`]; this is for events that change nothing.
    pub async fn record(&self, change: Change, outcome: &'static str) {
        let audit = self.audit.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || audit.record(&change, outcome)).await {
            tracing::error!(error = %e, "audit task failed");
        }
    }

    fn callback_url(&self) -> String {
        format!(
            "{}/auth/callback/oauth",
            self.base_url.trim_end_matches('/')
        )
    }
}

/// The proxy's routes and cache after a change of `scope` (blocking: one
/// vault query rebuilds the routing table).
fn invalidate(proxy: &ProxyTables, scope: &Scope) {
    let provider = match scope {
        Scope::Nothing => return,
        Scope::Provider(p) => Some(p.as_str()),
        Scope::All => None,
    };
    if let Err(e) = proxy.changed(provider) {
        tracing::error!(error = %e, "cannot rebuild the routing table");
    }
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    tracing::error!(error = %e, "vault task failed");
    Error::io("vault task failed", std::io::Error::other(e.to_string()))
}

/// A refused write as a session's outcome (internal causes stay in the log).
pub fn session_error(e: &Error) -> SessionError {
    match e.code() {
        "internal" => SessionError {
            code: "internal".into(),
            message: "internal error; see the daemon log".into(),
            hint: Some("run `authsome daemon logs`".into()),
        },
        code => SessionError {
            code: code.into(),
            message: e.to_string(),
            hint: e.hint(),
        },
    }
}

/// Network and TLS failures toward the provider are the user's to fix (or
/// wait out), not an internal error: say so.
fn reach(e: Error) -> Error {
    match e.kind() {
        ErrorKind::Io => Error::invalid(
            e.to_string(),
            Some("check the network (and AUTHSOME_RESOLVE / AUTHSOME_UPSTREAM_CA_FILE for private servers)".into()),
        ),
        _ => e,
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

// ---------------------------------------------------------------- logins

impl Logins {
    /// Starts a login: an API-key session waiting for the key, or the
    /// provider's OAuth flow.
    pub async fn start(&self, req: LoginRequest) -> Result<SessionView> {
        let connection = req
            .connection
            .clone()
            .unwrap_or_else(|| DEFAULT_CONNECTION.into());
        let (p, c) = (req.provider.clone(), connection.clone());
        let def = self
            .blocking(move |svc| {
                crate::credentials::check_connection_name(&c)?;
                Ok(svc.get_provider(&p)?.0)
            })
            .await?;
        if def.auth_type == AuthType::Oauth2 {
            return self.start_oauth((*def).clone(), req, connection).await;
        }
        let (p, c, force) = (req.provider.clone(), connection.clone(), req.force);
        self.blocking(move |svc| {
            if !force && svc.has_connection(&p, &c)? {
                return Err(Error::ConnectionExists {
                    provider: p,
                    connection: c,
                });
            }
            Ok(())
        })
        .await?;
        if def.auth_type == AuthType::Browser {
            // The CLI runs the browser on the user's desktop (the daemon
            // may have no display) and sends the cookies it read.
            let entry_url = def
                .browser
                .as_ref()
                .and_then(|b| b.entry_url.clone())
                .unwrap_or_default();
            let view = self.sessions.create_waiting(
                &req.provider,
                &connection,
                def.flow,
                NextAction::OpenUrl { url: entry_url },
                super::BROWSER_SESSION_TTL,
                None,
                now_unix(),
            )?;
            self.sessions.set_force(&view.id, req.force);
            tracing::info!(session = %short(&view.id), provider = %view.provider, "browser login started");
            return Ok(view);
        }
        let view = self.sessions.create(
            &req.provider,
            &connection,
            def.flow,
            req.force,
            &self.base_url,
            now_unix(),
        )?;
        tracing::info!(session = %short(&view.id), provider = %view.provider, "auth session started");
        Ok(view)
    }

    /// A session's current view.
    pub fn session(&self, id: &str) -> Result<SessionView> {
        self.sessions
            .get(id, now_unix())
            .ok_or(Error::SessionNotFound)
    }

    /// The form's context of a session (its CSRF token, whether it forces).
    pub fn input_context(&self, id: &str) -> Result<InputContext> {
        self.sessions
            .input_context(id, now_unix())
            .ok_or(Error::SessionNotFound)
    }

    /// The provider of a session, for its form.
    pub fn provider_def(&self, name: &str) -> Option<Arc<ProviderDef>> {
        self.svc.registry().get(name).map(|e| e.def.clone())
    }

    /// Where a provider's definition comes from (bundled, custom, override).
    pub fn provider_source(&self, name: &str) -> Option<crate::providers::ProviderSource> {
        self.svc.registry().get(name).map(|e| e.source)
    }

    /// Completes a session waiting for an API key: stores it (audited,
    /// refusals too) and marks the session completed.
    ///
    /// Runs as its own task: a caller that goes away after the key is
    /// stored still leaves the session completed.
    pub async fn resume_with_key(
        self: &Arc<Self>,
        id: &str,
        key: Secret<String>,
        actor: String,
    ) -> Result<SessionView> {
        let (me, id) = (self.clone(), id.to_string());
        tokio::spawn(async move { me.store_key(&id, key, actor).await })
            .await
            .map_err(task_failed)?
    }

    async fn store_key(&self, id: &str, key: Secret<String>, actor: String) -> Result<SessionView> {
        let (ctx, mut change) = self.input_login(id, actor);
        change.note("flow", "api_key");
        let (provider, connection) = self
            .commit(change, move |svc, _| {
                let ctx = ctx.ok_or(Error::SessionNotFound)?;
                let v = ctx.view;
                still_waiting(&v, SessionStatus::WaitingForInput)?;
                svc.login_api_key(&v.provider, &v.connection, key, ctx.force)?;
                Ok((v.provider, v.connection))
            })
            .await?;
        tracing::info!(session = %short(id), %provider, %connection, "login completed");
        self.complete_input(id, "the key")
    }

    /// A waiting session's context and the audit record of its login
    /// (provider and connection unknown when the session is gone).
    fn input_login(&self, id: &str, actor: String) -> (Option<InputContext>, Change) {
        let ctx = self.sessions.input_context(id, now_unix());
        let change = match &ctx {
            Some(ctx) => Change::of("login", &ctx.view.provider, Some(&ctx.view.connection)),
            None => Change {
                event: "login",
                provider: None,
                connection: None,
                actor: None,
                detail: json!({}),
                scope: Scope::Nothing,
            },
        }
        .by(Some(actor));
        (ctx, change)
    }

    /// Marks a session whose `what` was stored completed.
    fn complete_input(&self, id: &str, what: &str) -> Result<SessionView> {
        self.sessions
            .complete(id, now_unix())
            .ok_or_else(|| Error::SessionFinished {
                message: format!("the session ended while {what} was being stored"),
                hint: None,
            })
    }

    /// Completes a browser-session login with the cookies the CLI read
    /// from the browser it ran: stores them (audited, refusals too; the
    /// record names the cookies, never their values) and marks the session
    /// completed.
    pub async fn resume_with_cookies(
        self: &Arc<Self>,
        id: &str,
        cookies: crate::credentials::CookieJar,
        expiries: std::collections::BTreeMap<String, i64>,
        actor: String,
    ) -> Result<SessionView> {
        let (me, id) = (self.clone(), id.to_string());
        tokio::spawn(async move { me.store_cookies(&id, cookies, expiries, actor).await })
            .await
            .map_err(task_failed)?
    }

    async fn store_cookies(
        &self,
        id: &str,
        cookies: crate::credentials::CookieJar,
        expiries: std::collections::BTreeMap<String, i64>,
        actor: String,
    ) -> Result<SessionView> {
        let (ctx, mut change) = self.input_login(id, actor);
        change.note("flow", "browser");
        change.note("cookies", cookies.keys().collect::<Vec<_>>());
        let (provider, connection) = self
            .commit(change, move |svc, change| {
                let ctx = ctx.ok_or(Error::SessionNotFound)?;
                let v = ctx.view;
                if v.flow != crate::providers::Flow::Browser {
                    return Err(Error::invalid(
                        "this login session does not take browser cookies",
                        None,
                    ));
                }
                still_waiting(&v, SessionStatus::WaitingForUser)?;
                let rec =
                    svc.login_browser(&v.provider, &v.connection, cookies, &expiries, ctx.force)?;
                change.note("expires_at", rec.expires_at);
                Ok((v.provider, v.connection))
            })
            .await?;
        tracing::info!(session = %short(id), %provider, %connection, "browser login completed");
        self.complete_input(id, "the cookies")
    }

    /// Marks a waiting session failed (the form shows why).
    pub fn fail(&self, id: &str, error: SessionError) -> Option<SessionView> {
        self.sessions.fail(id, now_unix(), error)
    }

    /// The device-code details of a session (OAuth device flow).
    pub fn device(&self, id: &str) -> Result<(SessionView, NextAction)> {
        let view = self.session(id)?;
        match &view.next_action {
            a @ NextAction::DeviceCode { .. } => {
                let a = a.clone();
                Ok((view, a))
            }
            _ => Err(Error::NoDeviceCode),
        }
    }
}

/// An error unless the session still waits as `expected`.
fn still_waiting(v: &SessionView, expected: SessionStatus) -> Result<()> {
    if v.status == expected {
        return Ok(());
    }
    Err(Error::SessionFinished {
        message: format!("this login session is {:?}", v.status).to_lowercase(),
        hint: Some(format!("start again with `authsome login {}`", v.provider)),
    })
}
