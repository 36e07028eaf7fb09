//! OAuth logins: starting a flow (authorization code + PKCE, device code,
//! client credentials, dynamic client registration), the callback, and the
//! device-code poller. Every outcome ends in [`Logins::commit`] (stored) or
//! is recorded as a refusal.
//!
//! - **Authorization code + PKCE**: `state` is 128-bit random, bound to the
//!   session, single use and gone when the session expires; the redirect URI
//!   is the daemon's `/auth/callback/oauth` (from `AUTHSOME_SERVER_BASE_URL`
//!   when set) and is sent identically in both requests; an `iss` in the
//!   callback must name the authorization server (RFC 9207). A callback with
//!   an unknown, used or expired `state` is refused before any token request.
//! - **Device code**: polled at the server's interval, +5 s on `slow_down`,
//!   until approval, `access_denied`, `expired_token` or the code's expiry.
//! - **Client credentials**: one token request; no browser.

use std::sync::Arc;
use std::time::Duration;

use super::{Change, ClientForm, LoginRequest, Logins, Scope, reach, session_error, short};
use crate::auth_flow::oauth::{self, DevicePoll, Endpoints};
use crate::auth_flow::{
    NextAction, PendingOAuth, SESSION_TTL, SessionError, SessionStatus, SessionView,
};
use crate::clock::now_unix;
use crate::credentials::oauth::{ClientInfo, ClientSource, GrantError, OAuthClient, Tokens};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::{Flow, ProviderDef};
use crate::secret::Secret;

impl Logins {
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

    pub(super) async fn start_oauth(
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
                let r = self.register_client(&def, &redirect_uri, &scopes).await;
                Some(self.on_refusal(r, &provider, &connection, flow).await?)
            }
            Some(c) => Some(c),
            None if flow == Flow::DcrPkce => {
                let r = self.register_client(&def, &redirect_uri, &scopes).await;
                Some(self.on_refusal(r, &provider, &connection, flow).await?)
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
                let r = oauth::client_credentials(self.http.as_ref(), &ep, &client, &scopes)
                    .await
                    .map_err(|e| match e {
                        GrantError::InvalidGrant(m) => Error::invalid(
                            format!("the provider refused the client credentials: {m}"),
                            None,
                        ),
                        GrantError::Refused { message, .. } => Error::invalid(message, None),
                        GrantError::Other(e) => reach(e),
                    });
                let tokens = self.on_refusal(r, &provider, &connection, flow).await?;
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
                let r = oauth::device_start(self.http.as_ref(), &ep, &client, &scopes)
                    .await
                    .map_err(reach);
                let ds = self.on_refusal(r, &provider, &connection, flow).await?;
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

    /// A step of a starting login that the provider (or the network)
    /// refused: on the record, then returned.
    async fn on_refusal<T>(
        &self,
        r: Result<T>,
        provider: &str,
        connection: &str,
        flow: Flow,
    ) -> Result<T> {
        if let Err(e) = &r {
            let mut change = Change::of("login", provider, Some(connection)).scope(Scope::Nothing);
            change.note("flow", flow);
            change.note("code", e.code());
            self.record(change, "refused").await;
        }
        r
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
    ///
    /// Runs as its own task: a browser tab closed mid-exchange still leaves
    /// the session completed (or failed) for the waiting CLI.
    pub async fn oauth_callback(
        self: &Arc<Self>,
        query: &str,
    ) -> std::result::Result<SessionView, CallbackError> {
        let (me, query) = (self.clone(), query.to_string());
        match tokio::spawn(async move { me.callback(&query).await }).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "OAuth callback task failed");
                Err(CallbackError::Internal)
            }
        }
    }

    async fn callback(&self, query: &str) -> std::result::Result<SessionView, CallbackError> {
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
            if view.status == SessionStatus::Expired {
                // The code's lifetime ran out with nobody approving.
                tracing::info!(session = %short(&id), "device flow expired");
                let mut change =
                    Change::of("login", &provider, Some(&connection)).scope(Scope::Nothing);
                change.note("flow", "device_code");
                change.note("code", "expired");
                self.record(change, "refused").await;
                return;
            }
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
    /// The callback's task failed (logged).
    Internal,
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
