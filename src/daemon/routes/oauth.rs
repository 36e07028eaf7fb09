//! OAuth logins in the daemon: starting a flow for a session, the callback
//! of the authorization-code flow, and the device-code poller.
//!
//! - **Authorization code + PKCE**: `state` is 128-bit random, bound to the
//!   session, single use and gone when the session expires; the redirect URI
//!   is this daemon's `/auth/callback/oauth` (from `AUTHSOME_SERVER_BASE_URL`
//!   when set) and is sent identically in both requests; an `iss` in the
//!   callback must name the authorization server (RFC 9207). A callback with
//!   an unknown, used or expired `state` is refused before any token request.
//! - **Device code**: polled at the server's interval, +5 s on `slow_down`,
//!   until approval, `access_denied`, `expired_token` or the code's expiry.
//! - **Client credentials**: one token request; no browser.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::auth_sessions::{escape, page};
use crate::auth_flow::oauth::{self, DevicePoll, Endpoints};
use crate::auth_flow::{NextAction, PendingOAuth, SESSION_TTL, SessionError, SessionView};
use crate::credentials::oauth::{ClientInfo, Tokens};
use crate::daemon::error::{ApiError, ApiResult};
use crate::daemon::state::AppState;
use crate::error::Error;
use crate::providers::{Flow, ProviderDef};
use crate::secret::Secret;
use crate::vault::now_unix;
use crate::vault::oauth::{ClientSource, OAuthClient};

/// What `POST /api/auth/sessions` carries for an OAuth provider.
#[derive(Debug, Default)]
pub struct OAuthStart {
    pub provider: String,
    pub connection: String,
    pub force: bool,
    pub flow: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    pub scopes: Option<Vec<String>>,
    pub base_url: Option<String>,
    /// With no client configured, open the daemon's form for one (browser
    /// logins) instead of failing.
    pub client_form: bool,
}

fn session_error(e: &Error) -> SessionError {
    SessionError {
        // An expired device code keeps its kind, so the CLI exits "expired".
        code: if e.kind() == crate::error::ErrorKind::Expired {
            "expired"
        } else {
            "oauth_failed"
        }
        .into(),
        message: e.to_string(),
        hint: e.hint(),
    }
}

/// Network and TLS failures toward the provider are the user's to fix (or
/// wait out), not an internal error: say so.
fn reach(e: Error) -> Error {
    match e.kind() {
        crate::error::ErrorKind::Io => Error::invalid(
            e.to_string(),
            Some("check the network (and AUTHSOME_RESOLVE / AUTHSOME_UPSTREAM_CA_FILE for private servers)".into()),
        ),
        _ => e,
    }
}

/// Starts the provider's OAuth flow for a new session.
pub async fn start(state: &AppState, def: ProviderDef, req: OAuthStart) -> ApiResult<SessionView> {
    let flow = match req.flow.as_deref() {
        None => def.flow,
        Some("pkce" | "browser" | "authorization_code") => Flow::Pkce,
        Some("device" | "device_code") => Flow::DeviceCode,
        Some("client_credentials" | "client-credentials") => Flow::ClientCredentials,
        Some(other) => {
            return Err(Error::invalid(
                format!("unknown flow `{other}`"),
                Some("use pkce, device or client_credentials".into()),
            )
            .into());
        }
    };
    let scopes = req.scopes.clone().unwrap_or_else(|| {
        def.oauth
            .as_ref()
            .map(|o| o.scopes.clone())
            .unwrap_or_default()
    });
    let (p, c, force) = (req.provider.clone(), req.connection.clone(), req.force);
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
    let (client, connected) = state
        .run(move |svc| {
            let client = match given {
                Some(g) => Some(g),
                None => svc.oauth_client(&p)?,
            };
            let connected = !force && svc.already_connected(&p, &c, &want)?;
            if !force && !connected && svc.vault().find_connection(&p, &c)?.is_some() {
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
        return Ok(state.sessions.create_completed(
            &req.provider,
            &req.connection,
            flow,
            "already connected",
            now,
        )?);
    }
    let redirect_uri = format!(
        "{}/auth/callback/oauth",
        state.info.base_url.trim_end_matches('/')
    );
    let client = match client {
        // A client registered for another callback (the daemon moved to
        // another port or base URL) would send a redirect URI the server
        // does not know: register again.
        Some(c) if flow == Flow::DcrPkce && c.registered_elsewhere(&redirect_uri) => {
            tracing::info!(provider = %def.name, "the daemon's callback moved; registering a new OAuth client");
            Some(register_client(state, &def, &redirect_uri, &scopes).await?)
        }
        Some(c) => Some(c),
        None if flow == Flow::DcrPkce => {
            Some(register_client(state, &def, &redirect_uri, &scopes).await?)
        }
        None => None,
    };
    if client.is_none() && flow == Flow::Pkce && req.client_form {
        // Ask for the client in the browser: the form's submission goes on
        // to the authorization step (see `pkce_from_form`).
        let view = state.sessions.create(
            &req.provider,
            &req.connection,
            flow,
            req.force,
            &state.info.base_url,
            now,
        )?;
        return Ok(view);
    }
    let Some(client) = client else {
        return Err(Error::invalid(
            format!("no OAuth client is configured for `{}`", req.provider),
            Some(format!(
                "register an OAuth app with {} and run `authsome login {} --client-id ID --client-secret-stdin`",
                def.display_name, req.provider
            )),
        )
        .into());
    };
    let Some(ep) = Endpoints::for_client(&def, &client) else {
        return Err(
            Error::invalid(format!("provider `{}` has no oauth block", def.name), None).into(),
        );
    };
    match flow {
        Flow::ClientCredentials => {
            let tokens = oauth::client_credentials(state.oauth.as_ref(), &ep, &client, &scopes)
                .await
                .map_err(|e| match e {
                    crate::credentials::oauth::GrantError::InvalidGrant(m) => Error::invalid(
                        format!("the provider refused the client credentials: {m}"),
                        None,
                    ),
                    crate::credentials::oauth::GrantError::Refused { message, .. } => {
                        Error::invalid(message, None)
                    }
                    crate::credentials::oauth::GrantError::Other(e) => reach(e),
                })?;
            store(
                state,
                &req.provider,
                &req.connection,
                tokens,
                &scopes,
                "client_credentials",
                new_client,
            )
            .await?;
            Ok(state.sessions.create_completed(
                &req.provider,
                &req.connection,
                flow,
                "connected",
                now,
            )?)
        }
        Flow::DeviceCode => {
            let ds = oauth::device_start(state.oauth.as_ref(), &ep, &client, &scopes)
                .await
                .map_err(reach)?;
            let view = state.sessions.create_waiting(
                &req.provider,
                &req.connection,
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
            tracing::info!(provider = %req.provider, session = %&view.id[..8], "device flow started");
            let st = state.clone();
            let id = view.id.clone();
            let (p, c) = (req.provider.clone(), req.connection.clone());
            tokio::spawn(async move {
                poll_device(
                    st,
                    id,
                    p,
                    c,
                    ep,
                    client,
                    ds.device_code,
                    ds.interval,
                    scopes,
                    new_client,
                )
                .await;
            });
            Ok(view)
        }
        Flow::Pkce | Flow::DcrPkce => {
            let (url, st, pending) =
                authorization_step(client, ep, &redirect_uri, scopes, req.force, new_client)?;
            let view = state.sessions.create_waiting(
                &req.provider,
                &req.connection,
                flow,
                NextAction::OpenUrl { url },
                SESSION_TTL,
                Some((st, pending)),
                now,
            )?;
            tracing::info!(provider = %req.provider, session = %&view.id[..8], "authorization-code flow started");
            Ok(view)
        }
        Flow::ApiKey | Flow::Browser => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "this provider does not sign in with OAuth",
        )),
    }
}

/// The OAuth client form was submitted: store nothing yet, start the
/// authorization-code flow for the same session, and return the URL the
/// browser goes to next.
pub async fn pkce_from_form(
    state: &AppState,
    id: &str,
    def: &ProviderDef,
    connection_force: bool,
    new_client: OAuthClient,
    scopes: Vec<String>,
) -> Result<String, Error> {
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
    let redirect_uri = format!(
        "{}/auth/callback/oauth",
        state.info.base_url.trim_end_matches('/')
    );
    let (url, st, pending) = authorization_step(
        client,
        ep,
        &redirect_uri,
        scopes,
        connection_force,
        Some(new_client),
    )?;
    state
        .sessions
        .continue_at_provider(
            id,
            NextAction::OpenUrl { url: url.clone() },
            (st, pending),
            now_unix(),
        )
        .ok_or_else(|| Error::invalid("this login is no longer waiting for input", None))?;
    Ok(url)
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
) -> Result<(String, String, PendingOAuth), Error> {
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

/// Dynamic client registration (RFC 7591): discovers the authorization
/// server when the provider file names only the resource, registers this
/// daemon with the loopback callback as its one redirect URI, and stores the
/// client (secret and registration token encrypted) for the next login.
async fn register_client(
    state: &AppState,
    def: &ProviderDef,
    redirect_uri: &str,
    scopes: &[String],
) -> Result<ClientInfo, ApiError> {
    let http = state.oauth.as_ref();
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
    state.run(move |svc| svc.put_oauth_client(&stored)).await?;
    tracing::info!(provider = %def.name, "registered an OAuth client (RFC 7591)");
    state
        .audit(
            "oauth.client.register",
            Some(def.name.clone()),
            None,
            None,
            "ok",
            json!({"discovered": discovered.is_some()}),
        )
        .await;
    Ok(ClientInfo {
        id: reg.client_id,
        secret: reg.client_secret,
        base_url: None,
        endpoints: discovered,
        registered_for: Some(Some(redirect_uri.to_string())),
    })
}

/// Stores the tokens, makes the proxy see them, records the login.
async fn store(
    state: &AppState,
    provider: &str,
    connection: &str,
    tokens: Tokens,
    scopes: &[String],
    flow: &'static str,
    new_client: Option<OAuthClient>,
) -> Result<(), ApiError> {
    let (p, c, s) = (
        provider.to_string(),
        connection.to_string(),
        scopes.to_vec(),
    );
    state
        .run(move |svc| {
            if let Some(nc) = &new_client {
                svc.put_oauth_client(nc)?;
            }
            svc.store_oauth(&p, &c, tokens, &s, flow, true)
        })
        .await?;
    state.changed(Some(provider.to_string())).await;
    state
        .audit(
            "login",
            Some(provider.to_string()),
            Some(connection.to_string()),
            None,
            "ok",
            json!({"flow": flow}),
        )
        .await;
    tracing::info!(%provider, %connection, flow, "OAuth login completed");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn poll_device(
    state: AppState,
    id: String,
    provider: String,
    connection: String,
    ep: Endpoints,
    client: ClientInfo,
    device_code: Secret<String>,
    interval: u64,
    scopes: Vec<String>,
    new_client: Option<OAuthClient>,
) {
    let mut new_client = new_client;
    let mut interval = interval;
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let Some(view) = state.sessions.get(&id, now_unix()) else {
            return;
        };
        if view.status.is_final() {
            tracing::info!(session = %&id[..8], status = ?view.status, "device flow stopped");
            return;
        }
        match oauth::device_poll(state.oauth.as_ref(), &ep, &client, &device_code).await {
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => interval += 5,
            DevicePoll::Done(tokens) => {
                match store(
                    &state,
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
                        state.sessions.complete(&id, now_unix());
                    }
                    Err(e) => {
                        state.sessions.fail(&id, now_unix(), e.to_session_error());
                    }
                }
                return;
            }
            DevicePoll::Stop(e) => {
                tracing::info!(session = %&id[..8], error = %e, "device flow failed");
                state.sessions.fail(&id, now_unix(), session_error(&e));
                return;
            }
        }
    }
}

/// `GET /auth/callback/oauth`: the authorization server sends the browser
/// back here with `code` and `state` (or `error`).
pub async fn oauth_callback(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let pairs = oauth::parse_pairs(q.as_deref().unwrap_or(""));
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let now = now_unix();
    let Some((view, pending)) = get("state").and_then(|s| state.sessions.take_state(&s, now))
    else {
        tracing::warn!("OAuth callback with an unknown, used or expired state");
        return page(
            StatusCode::BAD_REQUEST,
            "Login not recognised",
            "<p>This sign-in response does not belong to a login that is waiting (it is unknown, was already used, or expired). Nothing was stored.</p><p>Start again with <code>authsome login</code>.</p>",
        );
    };
    let fail = |e: Error| {
        state.sessions.fail(&view.id, now, session_error(&e));
        page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            &format!(
                "<p>{}</p><p>Start again with <code>authsome login {}</code>.</p>",
                escape(&e.to_string()),
                escape(&view.provider)
            ),
        )
    };
    if let Some(err) = get("error") {
        let desc = get("error_description").unwrap_or_default();
        return fail(Error::invalid(
            format!(
                "the provider did not authorize the login: {}",
                oauth::clean(&if desc.is_empty() {
                    err
                } else {
                    format!("{err}: {desc}")
                })
            ),
            None,
        ));
    }
    if let (Some(iss), Some(expected)) = (get("iss"), pending.issuer.as_deref())
        && !issuer_matches(&iss, expected, pending.issuer_exact)
    {
        tracing::warn!(provider = %view.provider, "OAuth callback from another issuer refused");
        return fail(Error::invalid(
            "the sign-in response came from another authorization server than the one asked (iss mismatch); nothing was stored",
            None,
        ));
    }
    if pending.iss_required && get("iss").is_none() {
        return fail(Error::invalid(
            "the authorization server promised an `iss` parameter and sent none; nothing was stored",
            None,
        ));
    }
    let Some(code) = get("code").filter(|c| !c.is_empty()) else {
        return fail(Error::invalid("the sign-in response has no code", None));
    };
    let tokens = match oauth::exchange_code(
        state.oauth.as_ref(),
        &pending.endpoints,
        &pending.client,
        &code,
        &pending.redirect_uri,
        &pending.verifier,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return fail(reach(e)),
    };
    let PendingOAuth {
        scopes, new_client, ..
    } = pending;
    if let Err(e) = store(
        &state,
        &view.provider,
        &view.connection,
        tokens,
        &scopes,
        "pkce",
        new_client,
    )
    .await
    {
        state.sessions.fail(&view.id, now, e.to_session_error());
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login failed",
            &format!("<p>{}</p>", escape(&e.message)),
        );
    }
    state.sessions.complete(&view.id, now_unix());
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "<p>authsome is now connected to <strong>{}</strong> as <code>{}</code>. You can close this tab.</p>",
            escape(&view.provider),
            escape(&view.connection)
        ),
    )
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
