//! [`Logins`]: the one home for logins and every other change to what the
//! proxy injects.
//!
//! The daemon's routes, and next the dashboard and the team server, call
//! these operations; none of them writes the vault itself. Every write ends
//! in [`Logins::commit`], which, in this order:
//! 1. runs the write on the blocking pool (SQLite calls block);
//! 2. on success, makes the proxy see it: its routing table is rebuilt and
//!    its cached credentials of the provider are forgotten, before the
//!    caller answers, so the next proxied request sees the change;
//! 3. records the audit entry, success and refusal alike (a refusal with
//!    its error code, never a value).
//!
//! A login goes: [`Logins::start`] → (API key) [`Logins::resume_with_key`]
//! or the browser form; (OAuth) the authorization-code callback
//! [`Logins::oauth_callback`], the device-code poller, or one
//! client-credentials grant → [`Logins::commit`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::oauth::{self, DevicePoll, Endpoints, OAuthHttp};
use super::{InputContext, NextAction, PendingOAuth, SESSION_TTL, SessionError, SessionStatus};
use super::{SessionView, Sessions};
use crate::clock::now_unix;
use crate::credentials::oauth::{
    ClientInfo, ClientSource, GrantError, OAuthClient, ProviderNotice, Tokens,
};
use crate::credentials::proxy_tables::ProxyTables;
use crate::credentials::{
    CredentialService, DEFAULT_CONNECTION, ExportVar, RegisterOutcome, RemoveOutcome,
};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::{AuthType, Flow, ProviderDef};
use crate::secret::Secret;

/// Where audit entries go.
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

    /// Records elsewhere than the vault (tests).
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Logins {
        self.audit = audit;
        self
    }

    /// The login sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Runs `f` on the blocking pool (vault calls block).
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialService) -> Result<T> + Send + 'static,
    {
        on_blocking_pool(&self.svc, f).await
    }

    /// The one path every change takes: write, make the proxy see it,
    /// record it (success and refusal alike).
    pub async fn commit<T, F>(&self, change: Change, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialService, &mut Change) -> Result<T> + Send + 'static,
    {
        let svc = self.svc.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut change = change;
            let r = write(&svc, &mut change);
            (r, change)
        })
        .await;
        let (result, mut change) = match joined {
            Ok(v) => v,
            Err(e) => return Err(task_failed(e)),
        };
        match &result {
            Ok(_) => {
                self.invalidate(change.scope.clone()).await;
                self.record(change, "ok").await;
            }
            Err(e) => {
                change.note("code", e.code());
                self.record(change, "refused").await;
            }
        }
        result
    }

    /// Writes an audit entry (on the blocking pool). Changes are recorded
    /// by [`Logins::commit`]; this is for events that change nothing.
    pub async fn record(&self, change: Change, outcome: &'static str) {
        let audit = self.audit.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || audit.record(&change, outcome)).await {
            tracing::error!(error = %e, "audit task failed");
        }
    }

    /// The proxy's routes and cache after a change of `scope`.
    async fn invalidate(&self, scope: Scope) {
        let provider = match scope {
            Scope::Nothing => return,
            Scope::Provider(p) => Some(p),
            Scope::All => None,
        };
        let proxy = self.proxy.clone();
        match tokio::task::spawn_blocking(move || proxy.changed(provider.as_deref())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot rebuild the routing table"),
            Err(e) => tracing::error!(error = %e, "routing table task failed"),
        }
    }

    fn callback_url(&self) -> String {
        format!(
            "{}/auth/callback/oauth",
            self.base_url.trim_end_matches('/')
        )
    }
}

/// `f` on the blocking pool.
pub(crate) async fn on_blocking_pool<T, F>(svc: &Arc<CredentialService>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&CredentialService) -> Result<T> + Send + 'static,
{
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(task_failed)?
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    tracing::error!(error = %e, "vault task failed");
    Error::io("vault task failed", std::io::Error::other(e.to_string()))
}

/// A failed OAuth step as a session's outcome (an expired device code
/// keeps its own code: the CLI exits 9 for it).
fn oauth_failed(e: &Error) -> SessionError {
    SessionError {
        code: if e.kind() == ErrorKind::Expired {
            "expired"
        } else {
            "oauth_failed"
        }
        .into(),
        message: e.to_string(),
        hint: e.hint(),
    }
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
        if def.auth_type != AuthType::ApiKey {
            return Err(Error::Unsupported {
                message: format!(
                    "`{}` signs in with a browser session, which this daemon does not run yet",
                    req.provider
                ),
                hint: Some(
                    "API-key and OAuth providers work: `authsome provider list` shows their AUTH column"
                        .into(),
                ),
            });
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

    /// Completes a session waiting for an API key: stores it (audited,
    /// refusals too) and marks the session completed.
    pub async fn resume_with_key(
        &self,
        id: &str,
        key: Secret<String>,
        actor: String,
    ) -> Result<SessionView> {
        let ctx = self.sessions.input_context(id, now_unix());
        let mut change = match &ctx {
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
        change.note("flow", "api_key");
        let (provider, connection) = self
            .commit(change, move |svc, _| {
                let ctx = ctx.ok_or(Error::SessionNotFound)?;
                let v = ctx.view;
                if v.status != SessionStatus::WaitingForInput {
                    return Err(Error::SessionFinished {
                        message: format!("this login session is {:?}", v.status).to_lowercase(),
                        hint: Some(format!("start again with `authsome login {}`", v.provider)),
                    });
                }
                svc.login_api_key(&v.provider, &v.connection, key, ctx.force)?;
                Ok((v.provider, v.connection))
            })
            .await?;
        tracing::info!(session = %short(id), %provider, %connection, "login completed");
        self.sessions
            .complete(id, now_unix())
            .ok_or_else(|| Error::SessionFinished {
                message: "the session ended while the key was being stored".into(),
                hint: None,
            })
    }

    /// Marks a waiting session failed (the form shows why).
    pub fn fail(&self, id: &str, error: SessionError) -> Option<SessionView> {
        self.sessions.fail(id, now_unix(), error)
    }

    /// The OAuth client form was submitted: check it, store nothing yet,
    /// start the authorization-code flow for the same session, and return
    /// the URL the browser goes to next.
    pub async fn continue_with_client(
        &self,
        id: &str,
        force: bool,
        def: &ProviderDef,
        form: ClientForm,
    ) -> Result<String> {
        let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        let client_id = form.client_id.trim().to_string();
        let secret = form.client_secret.expose().trim().to_string();
        let base = form.base_url.trim().trim_end_matches('/').to_string();
        let problem = if !visible(&client_id) {
            Some("the client id is empty or has spaces or control characters")
        } else if !secret.is_empty() && !visible(&secret) {
            Some("the client secret has spaces or control characters")
        } else if !base.is_empty() && !base.starts_with("https://") {
            Some("the instance URL must start with https://")
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(Error::invalid(p, None));
        }
        let scopes: Vec<String> = form
            .scopes
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let new_client = OAuthClient {
            provider: def.name.clone(),
            client_id,
            client_secret: (!secret.is_empty()).then(|| Secret::new(secret)),
            source: ClientSource::Form,
            base_url: (!base.is_empty()).then_some(base),
            registration_client_uri: None,
            registration_access_token: None,
            endpoints: None,
            redirect_uri: None,
        };
        let client = ClientInfo {
            id: new_client.client_id.clone(),
            secret: new_client.client_secret.as_ref().map(Secret::duplicate),
            base_url: new_client.base_url.clone(),
            endpoints: None,
            registered_for: None,
        };
        let ep = Endpoints::for_client(def, &client).ok_or_else(|| {
            Error::invalid(format!("provider `{}` has no oauth block", def.name), None)
        })?;
        let (url, st, pending) = authorization_step(
            client,
            ep,
            &self.callback_url(),
            scopes,
            force,
            Some(new_client),
        )?;
        self.sessions
            .continue_at_provider(
                id,
                NextAction::OpenUrl { url: url.clone() },
                (st, pending),
                now_unix(),
            )
            .ok_or_else(|| Error::invalid("this login is no longer waiting for input", None))?;
        Ok(url)
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

// ---------------------------------------------------------------- OAuth

impl Logins {
    async fn start_oauth(
        &self,
        def: ProviderDef,
        req: LoginRequest,
        connection: String,
    ) -> Result<SessionView> {
        let flow = match req.flow.as_deref() {
            None => def.flow,
            Some("pkce" | "browser" | "authorization_code") => Flow::Pkce,
            Some("device" | "device_code") => Flow::DeviceCode,
            Some("client_credentials" | "client-credentials") => Flow::ClientCredentials,
            Some(other) => {
                return Err(Error::invalid(
                    format!("unknown flow `{other}`"),
                    Some("use pkce, device or client_credentials".into()),
                ));
            }
        };
        let scopes = req.scopes.clone().unwrap_or_else(|| {
            def.oauth
                .as_ref()
                .map(|o| o.scopes.clone())
                .unwrap_or_default()
        });
        let provider = req.provider.clone();
        let (p, c, force) = (provider.clone(), connection.clone(), req.force);
        let new_client = req.client_id.clone().map(|id| OAuthClient {
            provider: p.clone(),
            client_id: id,
            client_secret: req.client_secret.as_ref().map(Secret::duplicate),
            source: ClientSource::Flag,
            base_url: req.base_url.clone(),
            registration_client_uri: None,
            registration_access_token: None,
            endpoints: None,
            redirect_uri: None,
        });
        let want = scopes.clone();
        let given = new_client.as_ref().map(|nc| ClientInfo {
            id: nc.client_id.clone(),
            secret: nc.client_secret.as_ref().map(Secret::duplicate),
            base_url: nc.base_url.clone(),
            endpoints: None,
            registered_for: None,
        });
        let (client, connected) = self
            .blocking(move |svc| {
                let client = match given {
                    Some(g) => Some(g),
                    None => svc.oauth_client(&p)?,
                };
                let connected = !force && svc.already_connected(&p, &c, &want)?;
                if !force && !connected && svc.has_connection(&p, &c)? {
                    return Err(Error::ConnectionExists {
                        provider: p,
                        connection: c,
                    });
                }
                Ok((client, connected))
            })
            .await?;
        let now = now_unix();
        if connected {
            return self.sessions.create_completed(
                &provider,
                &connection,
                flow,
                "already connected",
                now,
            );
        }
        let redirect_uri = self.callback_url();
        let client = match client {
            // A client registered for another callback (the daemon moved to
            // another port or base URL) would send a redirect URI the server
            // does not know: register again.
            Some(c) if flow == Flow::DcrPkce && c.registered_elsewhere(&redirect_uri) => {
                tracing::info!(provider = %def.name, "the daemon's callback moved; registering a new OAuth client");
                Some(self.register_client(&def, &redirect_uri, &scopes).await?)
            }
            Some(c) => Some(c),
            None if flow == Flow::DcrPkce => {
                Some(self.register_client(&def, &redirect_uri, &scopes).await?)
            }
            None => None,
        };
        if client.is_none() && flow == Flow::Pkce && req.client_form {
            // Ask for the client in the browser: the form's submission goes on
            // to the authorization step (see `continue_with_client`).
            return self.sessions.create(
                &provider,
                &connection,
                flow,
                req.force,
                &self.base_url,
                now,
            );
        }
        let Some(client) = client else {
            return Err(Error::invalid(
                format!("no OAuth client is configured for `{provider}`"),
                Some(format!(
                    "register an OAuth app with {} and run `authsome login {} --client-id ID --client-secret-stdin`",
                    def.display_name, provider
                )),
            ));
        };
        let Some(ep) = Endpoints::for_client(&def, &client) else {
            return Err(Error::invalid(
                format!("provider `{}` has no oauth block", def.name),
                None,
            ));
        };
        match flow {
            Flow::ClientCredentials => {
                let tokens = oauth::client_credentials(self.http.as_ref(), &ep, &client, &scopes)
                    .await
                    .map_err(|e| match e {
                        GrantError::InvalidGrant(m) => Error::invalid(
                            format!("the provider refused the client credentials: {m}"),
                            None,
                        ),
                        GrantError::Refused { message, .. } => Error::invalid(message, None),
                        GrantError::Other(e) => reach(e),
                    })?;
                self.store_tokens(
                    &provider,
                    &connection,
                    tokens,
                    &scopes,
                    "client_credentials",
                    new_client,
                )
                .await?;
                self.sessions
                    .create_completed(&provider, &connection, flow, "connected", now)
            }
            Flow::DeviceCode => {
                let ds = oauth::device_start(self.http.as_ref(), &ep, &client, &scopes)
                    .await
                    .map_err(reach)?;
                let view = self.sessions.create_waiting(
                    &provider,
                    &connection,
                    flow,
                    NextAction::DeviceCode {
                        user_code: ds.user_code.clone(),
                        verification_uri: ds.verification_uri.clone(),
                        verification_uri_complete: ds.verification_uri_complete.clone(),
                    },
                    ds.expires_in,
                    None,
                    now,
                )?;
                tracing::info!(provider = %provider, session = %short(&view.id), "device flow started");
                let poll = DevicePoller {
                    id: view.id.clone(),
                    provider,
                    connection,
                    ep,
                    client,
                    device_code: ds.device_code,
                    interval: ds.interval,
                    scopes,
                    new_client,
                };
                self.spawn_device_poll(poll);
                Ok(view)
            }
            Flow::Pkce | Flow::DcrPkce => {
                let (url, st, pending) =
                    authorization_step(client, ep, &redirect_uri, scopes, req.force, new_client)?;
                let view = self.sessions.create_waiting(
                    &provider,
                    &connection,
                    flow,
                    NextAction::OpenUrl { url },
                    SESSION_TTL,
                    Some((st, pending)),
                    now,
                )?;
                tracing::info!(provider = %provider, session = %short(&view.id), "authorization-code flow started");
                Ok(view)
            }
            Flow::ApiKey | Flow::Browser => Err(Error::invalid(
                "this provider does not sign in with OAuth",
                None,
            )),
        }
    }

    /// Stores the tokens of a finished OAuth login (and the client it was
    /// given): one commit.
    async fn store_tokens(
        &self,
        provider: &str,
        connection: &str,
        tokens: Tokens,
        scopes: &[String],
        flow: &'static str,
        new_client: Option<OAuthClient>,
    ) -> Result<()> {
        let mut change = Change::of("login", provider, Some(connection));
        change.note("flow", flow);
        let (p, c, s) = (
            provider.to_string(),
            connection.to_string(),
            scopes.to_vec(),
        );
        self.commit(change, move |svc, _| {
            if let Some(nc) = &new_client {
                svc.put_oauth_client(nc)?;
            }
            svc.store_oauth(&p, &c, tokens, &s, flow, true)
        })
        .await?;
        tracing::info!(%provider, %connection, flow, "OAuth login completed");
        Ok(())
    }

    /// A login that ended before anything was stored (the provider said
    /// no, a forged or mismatched callback, an expired device code): the
    /// session fails, and the refusal is on the record too.
    async fn refuse_login(&self, view: &SessionView, flow: &'static str, e: Error) -> Error {
        let mut change =
            Change::of("login", &view.provider, Some(&view.connection)).scope(Scope::Nothing);
        change.note("flow", flow);
        change.note("code", e.code());
        self.record(change, "refused").await;
        self.sessions.fail(&view.id, now_unix(), oauth_failed(&e));
        e
    }

    async fn callback_refused(
        &self,
        view: SessionView,
        e: Error,
    ) -> std::result::Result<SessionView, CallbackError> {
        let e = self.refuse_login(&view, "pkce", e).await;
        Err(CallbackError::Refused(view, e))
    }

    /// Dynamic client registration (RFC 7591): discovers the authorization
    /// server when the provider file names only the resource, registers this
    /// daemon with the loopback callback as its one redirect URI, and stores
    /// the client (secret and registration token encrypted) for the next login.
    async fn register_client(
        &self,
        def: &ProviderDef,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Result<ClientInfo> {
        let http = self.http.as_ref();
        let (endpoint, discovered) = match (&def.registration, &def.oauth) {
            (Some(r), Some(_)) => (r.registration_endpoint.clone(), None),
            (file_reg, _) => {
                let resource = resource_origin(def).ok_or_else(|| {
                    Error::invalid(format!("provider `{}` names no exact host to discover its authorization server from", def.name), None)
                })?;
                let md = oauth::discover(http, &resource).await.map_err(reach)?;
                let endpoint = md
                    .registration_endpoint
                    .clone()
                    .or_else(|| file_reg.as_ref().map(|r| r.registration_endpoint.clone()))
                    .ok_or_else(|| {
                        Error::invalid(
                            format!(
                                "{} offers no dynamic client registration",
                                md.endpoints.issuer
                            ),
                            Some(format!(
                                "register an app there and run `authsome login {} --client-id ID`",
                                def.name
                            )),
                        )
                    })?;
                (endpoint, Some(md.endpoints))
            }
        };
        let reg = oauth::register(http, &endpoint, redirect_uri, scopes)
            .await
            .map_err(reach)?;
        let stored = OAuthClient {
            provider: def.name.clone(),
            client_id: reg.client_id.clone(),
            client_secret: reg.client_secret.as_ref().map(Secret::duplicate),
            source: ClientSource::Registration,
            base_url: None,
            registration_client_uri: reg.registration_client_uri,
            registration_access_token: reg.registration_access_token,
            endpoints: discovered
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok()),
            redirect_uri: Some(redirect_uri.to_string()),
        };
        let mut change = Change::of("oauth.client.register", &def.name, None).scope(Scope::Nothing);
        change.note("discovered", discovered.is_some());
        self.commit(change, move |svc, _| svc.put_oauth_client(&stored))
            .await?;
        tracing::info!(provider = %def.name, "registered an OAuth client (RFC 7591)");
        Ok(ClientInfo {
            id: reg.client_id,
            secret: reg.client_secret,
            base_url: None,
            endpoints: discovered,
            registered_for: Some(Some(redirect_uri.to_string())),
        })
    }

    /// The authorization server sent the browser back with `query` (`code`
    /// and `state`, or `error`). Returns the completed session, or the
    /// session (when the state was known) and why it failed.
    pub async fn oauth_callback(
        &self,
        query: &str,
    ) -> std::result::Result<SessionView, CallbackError> {
        let pairs = oauth::parse_pairs(query);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let now = now_unix();
        let Some((view, pending)) = get("state").and_then(|s| self.sessions.take_state(&s, now))
        else {
            tracing::warn!("OAuth callback with an unknown, used or expired state");
            return Err(CallbackError::Unknown);
        };
        if let Some(err) = get("error") {
            let desc = get("error_description").unwrap_or_default();
            return self
                .callback_refused(
                    view,
                    Error::invalid(
                        format!(
                            "the provider did not authorize the login: {}",
                            oauth::clean(&if desc.is_empty() {
                                err
                            } else {
                                format!("{err}: {desc}")
                            })
                        ),
                        None,
                    ),
                )
                .await;
        }
        if let (Some(iss), Some(expected)) = (get("iss"), pending.issuer.as_deref())
            && !issuer_matches(&iss, expected, pending.issuer_exact)
        {
            tracing::warn!(provider = %view.provider, "OAuth callback from another issuer refused");
            return self.callback_refused(view, Error::invalid(
                "the sign-in response came from another authorization server than the one asked (iss mismatch); nothing was stored",
                None,
            ))
            .await;
        }
        if pending.iss_required && get("iss").is_none() {
            return self.callback_refused(view, Error::invalid(
                "the authorization server promised an `iss` parameter and sent none; nothing was stored",
                None,
            ))
            .await;
        }
        let Some(code) = get("code").filter(|c| !c.is_empty()) else {
            return self
                .callback_refused(
                    view,
                    Error::invalid("the sign-in response has no code", None),
                )
                .await;
        };
        let tokens = match oauth::exchange_code(
            self.http.as_ref(),
            &pending.endpoints,
            &pending.client,
            &code,
            &pending.redirect_uri,
            &pending.verifier,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => return self.callback_refused(view, reach(e)).await,
        };
        let PendingOAuth {
            scopes, new_client, ..
        } = pending;
        if let Err(e) = self
            .store_tokens(
                &view.provider,
                &view.connection,
                tokens,
                &scopes,
                "pkce",
                new_client,
            )
            .await
        {
            self.sessions.fail(&view.id, now, session_error(&e));
            return Err(CallbackError::NotStored(view, e));
        }
        Ok(self.sessions.complete(&view.id, now_unix()).unwrap_or(view))
    }

    fn spawn_device_poll(&self, poll: DevicePoller) {
        let me = Logins {
            svc: self.svc.clone(),
            sessions: self.sessions.clone(),
            http: self.http.clone(),
            proxy: self.proxy.clone(),
            audit: self.audit.clone(),
            base_url: self.base_url.clone(),
        };
        tokio::spawn(async move { me.poll_device(poll).await });
    }

    /// Polls the token endpoint at the server's interval (+5 s on
    /// `slow_down`) until approval, refusal or the code's expiry.
    async fn poll_device(&self, poll: DevicePoller) {
        let DevicePoller {
            id,
            provider,
            connection,
            ep,
            client,
            device_code,
            mut interval,
            scopes,
            mut new_client,
        } = poll;
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            let Some(view) = self.sessions.get(&id, now_unix()) else {
                return;
            };
            if view.status.is_final() {
                tracing::info!(session = %short(&id), status = ?view.status, "device flow stopped");
                return;
            }
            match oauth::device_poll(self.http.as_ref(), &ep, &client, &device_code).await {
                DevicePoll::Pending => {}
                DevicePoll::SlowDown => interval += 5,
                DevicePoll::Done(tokens) => {
                    match self
                        .store_tokens(
                            &provider,
                            &connection,
                            tokens,
                            &scopes,
                            "device_code",
                            new_client.take(),
                        )
                        .await
                    {
                        Ok(()) => {
                            self.sessions.complete(&id, now_unix());
                        }
                        Err(e) => {
                            self.sessions.fail(&id, now_unix(), session_error(&e));
                        }
                    }
                    return;
                }
                DevicePoll::Stop(e) => {
                    tracing::info!(session = %short(&id), error = %e, "device flow failed");
                    self.refuse_login(&view, "device_code", e).await;
                    return;
                }
            }
        }
    }
}

/// Why an OAuth callback did not connect.
#[derive(Debug)]
pub enum CallbackError {
    /// Its `state` names no waiting login (unknown, used or expired):
    /// nothing was asked, nothing stored.
    Unknown,
    /// The sign-in failed (refused, mismatched issuer, no code, the token
    /// request failed); nothing was stored.
    Refused(SessionView, Error),
    /// The tokens came, but storing them failed.
    NotStored(SessionView, Error),
}

/// What the device-code poller needs.
struct DevicePoller {
    id: String,
    provider: String,
    connection: String,
    ep: Endpoints,
    client: ClientInfo,
    device_code: Secret<String>,
    interval: u64,
    scopes: Vec<String>,
    new_client: Option<OAuthClient>,
}

/// The authorization URL, its `state`, and what the callback will need:
/// a fresh PKCE pair, and the issuer an `iss` must name (exactly, when it
/// was discovered).
fn authorization_step(
    client: ClientInfo,
    ep: Endpoints,
    redirect_uri: &str,
    scopes: Vec<String>,
    force: bool,
    new_client: Option<OAuthClient>,
) -> Result<(String, String, PendingOAuth)> {
    let pkce = oauth::new_pkce()?;
    let st = oauth::new_state()?;
    let url = oauth::authorize_url(&ep, &client.id, redirect_uri, &st, &pkce.challenge, &scopes)?;
    let iss_required = client.endpoints.as_ref().is_some_and(|d| d.iss_parameter);
    let discovered = client.endpoints.as_ref().map(|d| d.issuer.clone());
    let issuer_exact = discovered.is_some();
    let issuer = discovered.or_else(|| ep.expected_issuer());
    let pending = PendingOAuth {
        redirect_uri: redirect_uri.to_string(),
        verifier: pkce.verifier,
        client,
        endpoints: ep,
        scopes,
        issuer,
        issuer_exact,
        iss_required,
        new_client,
        force,
    };
    Ok((url, st, pending))
}

/// RFC 9207: with metadata, `iss` must be the issuer exactly; without, it
/// must be on the authorization endpoint's origin (issuers may carry a path,
/// like a tenant).
fn issuer_matches(iss: &str, expected: &str, exact: bool) -> bool {
    let iss = iss.trim_end_matches('/');
    let expected = expected.trim_end_matches('/');
    if exact {
        return iss == expected;
    }
    iss == expected
        || iss
            .strip_prefix(expected)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `https://host[:port]` of the provider's first exact host: the resource
/// whose metadata names its authorization server.
fn resource_origin(def: &ProviderDef) -> Option<String> {
    def.rules.iter().find_map(|r| match &r.host {
        crate::providers::HostPattern::Exact(h) => Some(match r.port {
            Some(p) if p != 443 => format!("https://{h}:{p}"),
            _ => format!("https://{h}"),
        }),
        crate::providers::HostPattern::Suffix(_) => None,
    })
}

// ---------------------------------------------------------------- changes

impl Logins {
    /// Removes one connection (`None`: the provider's default), telling an
    /// OAuth provider to revoke its tokens.
    pub async fn logout(
        &self,
        provider: &str,
        connection: Option<&str>,
        actor: Option<String>,
    ) -> Result<LoggedOut> {
        let change = Change::of("logout", provider, connection).by(actor);
        let (p, c) = (provider.to_string(), connection.map(String::from));
        self.commit(change, move |svc, change| {
            let (rec, notice) = svc.logout_and_revoke(&p, c.as_deref())?;
            change.connection = Some(rec.name.clone());
            change.note("provider_notified", notice);
            Ok(LoggedOut {
                provider: rec.provider,
                connection: rec.name,
                provider_notified: notice,
            })
        })
        .await
    }

    /// Removes every connection of a provider.
    pub async fn revoke(&self, provider: &str, actor: Option<String>) -> Result<Revoked> {
        let change = Change::of("revoke", provider, None).by(actor);
        let p = provider.to_string();
        self.commit(change, move |svc, change| {
            svc.registry().require(&p)?;
            let mut removed = 0;
            let mut notices = Vec::new();
            for c in svc
                .list_connections()?
                .into_iter()
                .filter(|c| c.record.provider == p)
            {
                let (_, notice) = svc.logout_and_revoke(&p, Some(&c.record.name))?;
                notices.push(notice);
                removed += 1;
            }
            change.note("removed", removed);
            change.note("provider_notified", &notices);
            Ok(Revoked {
                provider: p,
                removed,
                provider_notified: notices,
            })
        })
        .await
    }

    /// Makes `connection` the provider's default.
    pub async fn set_default(
        &self,
        provider: &str,
        connection: &str,
        actor: Option<String>,
    ) -> Result<()> {
        let change = Change::of("set_default", provider, Some(connection)).by(actor);
        let (p, c) = (provider.to_string(), connection.to_string());
        self.commit(change, move |svc, _| svc.set_default(&p, &c))
            .await
    }

    /// A connection's values as environment variables: the one explicit
    /// way a secret leaves, always on the record (names, never values).
    pub async fn export(
        &self,
        provider: &str,
        connection: Option<&str>,
        actor: Option<String>,
    ) -> Result<Exported> {
        let change = Change::of("export", provider, connection)
            .by(actor)
            .scope(Scope::Nothing);
        let (p, c) = (provider.to_string(), connection.map(String::from));
        let out = self
            .commit(change, move |svc, change| {
                let (rec, vars) = svc.export(&p, c.as_deref())?;
                let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
                change.connection = Some(rec.name.clone());
                change.note("variables", names);
                Ok(Exported {
                    provider: rec.provider,
                    connection: rec.name,
                    variables: vars,
                })
            })
            .await?;
        tracing::info!(provider = %out.provider, connection = %out.connection, count = out.variables.len(), "credentials exported");
        Ok(out)
    }

    /// Registers a custom provider from its file's text (`origin` names it
    /// in errors). A definition that re-binds the provider suspends its
    /// connections until the user logs in again.
    pub async fn register_provider(
        &self,
        origin: &str,
        text: &str,
        force: bool,
        actor: Option<String>,
    ) -> Result<Registered> {
        let change = Change {
            event: "provider.register",
            provider: None,
            connection: None,
            actor,
            detail: json!({}),
            scope: Scope::All,
        };
        let (origin, text) = (origin.to_string(), text.to_string());
        let out = self
            .commit(change, move |svc, change| {
                let def = crate::providers::parse_file(&origin, &text)?;
                let name = def.name.clone();
                let hosts = def.api_url.clone();
                change.provider = Some(name.clone());
                let (outcome, suspended) = svc.register_provider_suspending(def, force)?;
                change.note("outcome", outcome);
                change.note("api_url", &hosts);
                change.note("suspended", &suspended);
                Ok(Registered {
                    provider: name,
                    outcome,
                    api_url: hosts,
                    suspended,
                })
            })
            .await?;
        tracing::info!(provider = %out.provider, outcome = ?out.outcome, "provider registered");
        Ok(out)
    }

    /// Removes a custom provider (a bundled one of the same name comes back).
    pub async fn remove_provider(
        &self,
        name: &str,
        actor: Option<String>,
    ) -> Result<RemoveOutcome> {
        let change = Change::of("provider.remove", name, None)
            .by(actor)
            .scope(Scope::All);
        let n = name.to_string();
        let outcome = self
            .commit(change, move |svc, change| {
                let outcome = svc.remove_provider(&n)?;
                change.note("outcome", outcome);
                Ok(outcome)
            })
            .await?;
        tracing::info!(provider = %name, ?outcome, "provider removed");
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::issuer_matches;

    #[test]
    fn issuer_comparison() {
        assert!(issuer_matches("https://as.test", "https://as.test", true));
        assert!(!issuer_matches(
            "https://as.test/t1",
            "https://as.test",
            true
        ));
        assert!(issuer_matches(
            "https://as.test/t1/v2.0",
            "https://as.test",
            false
        ));
        assert!(!issuer_matches(
            "https://as.test.evil.test",
            "https://as.test",
            false
        ));
        assert!(!issuer_matches(
            "https://evil.test",
            "https://as.test",
            false
        ));
        assert!(!issuer_matches(
            "https://as.testx/",
            "https://as.test",
            false
        ));
    }
}
