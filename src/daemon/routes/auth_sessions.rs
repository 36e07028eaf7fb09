//! `/api/auth/sessions…`: starting a login, its status, and the browser form
//! where the user types an API key.
//!
//! The form is reachable only through the session's unguessable URL (a
//! 128-bit id the CLI opened in the browser). A submission must carry the
//! session's CSRF token, and when the browser sends `Origin` or
//! `Sec-Fetch-Site`, they must name this daemon: a page on another site can
//! neither read the token nor post the form.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth_flow::{SessionStatus, SessionView};
use crate::clock::now_unix;
use crate::credentials::DEFAULT_CONNECTION;
use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::AppState;
use crate::error::Error;
use crate::providers::AuthType;
use crate::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    provider: String,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    force: bool,
    /// OAuth: `pkce`, `device` or `client_credentials` (default: the provider's).
    #[serde(default)]
    flow: Option<String>,
    /// OAuth: a client to use (and store) for this provider.
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// OAuth: the instance URL of a self-hosted provider (`{base_url}`).
    #[serde(default)]
    base_url: Option<String>,
    /// OAuth: with no client configured, open a form asking for one.
    #[serde(default)]
    client_form: bool,
}

impl std::fmt::Debug for CreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRequest")
            .field("provider", &self.provider)
            .field("connection", &self.connection)
            .field("flow", &self.flow)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "REDACTED"),
            )
            .finish_non_exhaustive()
    }
}

/// `POST /api/auth/sessions`
pub async fn auth_sessions_create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<Json<SessionView>> {
    let connection = req.connection.unwrap_or_else(|| DEFAULT_CONNECTION.into());
    let (provider, conn, force) = (req.provider.clone(), connection.clone(), req.force);
    let p = provider.clone();
    let def = state
        .run(move |svc| {
            crate::credentials::check_connection_name(&conn)?;
            Ok(svc.get_provider(&p)?.0)
        })
        .await?;
    if def.auth_type == AuthType::Oauth2 {
        let view = super::oauth::start(
            &state,
            (*def).clone(),
            super::oauth::OAuthStart {
                provider: provider.clone(),
                connection: connection.clone(),
                force,
                flow: req.flow,
                client_id: req.client_id,
                client_secret: req.client_secret.map(Secret::new),
                scopes: req.scopes,
                base_url: req.base_url,
                client_form: req.client_form,
            },
        )
        .await?;
        return Ok(Json(view));
    }
    let conn = connection.clone();
    let flow = state
        .run(move |svc| {
            let (def, _) = svc.get_provider(&provider)?;
            if def.auth_type != AuthType::ApiKey {
                return Err(Error::Unsupported {
                    message: format!("`{provider}` signs in with a browser session, which this daemon does not run yet"),
                    hint: Some("API-key and OAuth providers work: `authsome provider list` shows their AUTH column".into()),
                });
            }
            if !force && svc.vault().find_connection(&provider, &conn)?.is_some() {
                return Err(Error::ConnectionExists { provider, connection: conn });
            }
            Ok(def.flow)
        })
        .await?;
    let view = state.sessions.create(
        &req.provider,
        &connection,
        flow,
        req.force,
        &state.info.base_url,
        now_unix(),
    )?;
    tracing::info!(session = %short(&view.id), provider = %view.provider, "auth session started");
    Ok(Json(view))
}

/// `GET /api/auth/sessions/{id}`
pub async fn auth_sessions_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    state
        .sessions
        .get(&id, now_unix())
        .map(Json)
        .ok_or_else(not_found)
}

#[derive(Debug, Deserialize)]
pub struct ResumeRequest {
    api_key: Option<String>,
}

/// `POST /api/auth/sessions/{id}/resume`: the CLI sends the key (`--with-api-key`).
pub async fn auth_sessions_resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResumeRequest>,
) -> ApiResult<Json<SessionView>> {
    let Some(key) = req.api_key.map(Secret::new) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "`api_key` is required for this session",
        ));
    };
    complete_with_key(&state, &id, key, caller.0)
        .await
        .map(Json)
}

/// Stores the key of a waiting session and records the outcome in the audit log.
async fn complete_with_key(
    state: &AppState,
    id: &str,
    key: Secret<String>,
    actor: String,
) -> ApiResult<SessionView> {
    let r = store_key(state, id, key).await;
    let (provider, connection) = match state.sessions.get(id, now_unix()) {
        Some(v) => (Some(v.provider), Some(v.connection)),
        None => (None, None),
    };
    match &r {
        Ok(_) => {
            state.changed(provider.clone()).await;
            state
                .audit(
                    "login",
                    provider,
                    connection,
                    Some(actor),
                    "ok",
                    json!({"flow": "api_key"}),
                )
                .await
        }
        Err(e) => {
            state
                .audit(
                    "login",
                    provider,
                    connection,
                    Some(actor),
                    "refused",
                    json!({"flow": "api_key", "code": e.code}),
                )
                .await
        }
    }
    r
}

async fn store_key(state: &AppState, id: &str, key: Secret<String>) -> ApiResult<SessionView> {
    let ctx = state
        .sessions
        .input_context(id, now_unix())
        .ok_or_else(not_found)?;
    if ctx.view.status != SessionStatus::WaitingForInput {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "session_finished",
            format!("this login session is {:?}", ctx.view.status).to_lowercase(),
        )
        .with_hint(format!(
            "start again with `authsome login {}`",
            ctx.view.provider
        )));
    }
    let (p, c, force) = (
        ctx.view.provider.clone(),
        ctx.view.connection.clone(),
        ctx.force,
    );
    state
        .run(move |svc| svc.login_api_key(&p, &c, key, force))
        .await?;
    tracing::info!(session = %short(id), provider = %ctx.view.provider, connection = %ctx.view.connection, "login completed");
    state.sessions.complete(id, now_unix()).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "session_finished",
            "the session ended while the key was being stored",
        )
    })
}

/// `GET /api/auth/sessions/{id}/device`: device-code details (OAuth flows only).
pub async fn auth_sessions_device(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let view = state.sessions.get(&id, now_unix()).ok_or_else(not_found)?;
    match view.next_action {
        crate::auth_flow::NextAction::DeviceCode {
            user_code,
            verification_uri,
            verification_uri_complete,
        } => Ok(Json(json!({
            "provider": view.provider,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": verification_uri_complete,
            "expires_at": view.expires_at,
        }))),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_device_code",
            "this session has no device code",
        )),
    }
}

/// `GET /api/auth/sessions/{id}/input`: the browser form.
pub async fn auth_sessions_input_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let Some(ctx) = state.sessions.input_context(&id, now_unix()) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown login",
            "<p>This login link is not valid. Start again with <code>authsome login</code>.</p>",
        );
    };
    if ctx.view.status != SessionStatus::WaitingForInput {
        return finished_page(&ctx.view);
    }
    let Some(def) = state
        .svc
        .registry()
        .get(&ctx.view.provider)
        .map(|e| e.def.clone())
    else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown provider",
            "<p>This provider no longer exists.</p>",
        );
    };
    if ctx.view.flow != crate::providers::Flow::ApiKey {
        return client_form_page(StatusCode::OK, &def, &ctx.view, ctx.csrf.expose(), None);
    }
    form_page(
        StatusCode::OK,
        &def.display_name,
        &ctx.view,
        ctx.csrf.expose(),
        None,
    )
}

/// The OAuth client form: the app's client id (and secret), scopes, and the
/// instance URL for self-hosted providers.
fn client_form_page(
    status: StatusCode,
    def: &crate::providers::ProviderDef,
    view: &SessionView,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let err = error.map(error_paragraph).unwrap_or_default();
    let scopes = def
        .oauth
        .as_ref()
        .map(|o| o.scopes.join(","))
        .unwrap_or_default();
    let base = if def.oauth.as_ref().is_some_and(|o| o.base_url.is_some()) {
        r#"<label>Instance URL (self-hosted only) <input name="base_url" spellcheck="false" placeholder="https://gitlab.example.com"></label>"#
    } else {
        ""
    };
    let body = format!(
        r#"<p>To sign in to <b>{d}</b>, authsome needs the OAuth app you registered with {d}. The client secret is stored encrypted on this machine; next you are sent to {d} to approve <code>{p}/{c}</code>.</p>
{err}<form method="post" action="/api/auth/sessions/{id}/input" autocomplete="off">
<input type="hidden" name="csrf" value="{csrf}">
<label>Client ID <input name="client_id" required autofocus spellcheck="false"></label>
<label>Client secret (if the app has one) <input type="password" name="client_secret" spellcheck="false"></label>
<label>Scopes (comma-separated) <input name="scopes" value="{scopes}" spellcheck="false"></label>
{base}<button type="submit">Continue to {d}</button>
</form>"#,
        d = escape(&def.display_name),
        p = escape(&view.provider),
        c = escape(&view.connection),
        id = escape(&view.id),
        csrf = escape(csrf),
        scopes = escape(&scopes),
    );
    page(status, &format!("Connect {}", def.display_name), &body)
}

#[derive(Deserialize)]
pub struct InputForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    api_key: String,
    /// The OAuth client form's fields.
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    base_url: String,
}

impl std::fmt::Debug for InputForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputForm { .. }")
    }
}

/// `POST /api/auth/sessions/{id}/input`: the form submission.
pub async fn auth_sessions_input_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<InputForm>,
) -> Response {
    let mut form = form;
    let key = Secret::new(std::mem::take(&mut form.api_key));
    if let Err(why) = same_origin(&state, &headers) {
        tracing::warn!(session = %short(&id), %why, "cross-site form post refused");
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>This form can only be submitted from the page authsome opened.</p>",
        );
    }
    let Some(ctx) = state.sessions.input_context(&id, now_unix()) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown login",
            "<p>This login link is not valid.</p>",
        );
    };
    if !crate::secret::ct_eq(form.csrf.as_bytes(), ctx.csrf.expose().as_bytes()) {
        tracing::warn!(session = %short(&id), "form post without a valid CSRF token refused");
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>This form has expired or was not opened by authsome. Reload the page from the link in your terminal.</p>",
        );
    }
    let def = state
        .svc
        .registry()
        .get(&ctx.view.provider)
        .map(|e| e.def.clone());
    let display = def
        .as_ref()
        .map(|d| d.display_name.clone())
        .unwrap_or_default();
    if ctx.view.flow != crate::providers::Flow::ApiKey {
        let Some(def) = def else {
            return page(
                StatusCode::NOT_FOUND,
                "Unknown provider",
                "<p>This provider no longer exists.</p>",
            );
        };
        return client_form_submit(&state, &id, &def, &ctx, form).await;
    }
    match complete_with_key(&state, &id, key, "browser".into()).await {
        Ok(view) => finished_page(&view),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let msg = match &e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message.clone(),
            };
            form_page(
                StatusCode::BAD_REQUEST,
                &display,
                &ctx.view,
                ctx.csrf.expose(),
                Some(&msg),
            )
        }
        Err(e) => {
            let view = state.sessions.fail(&id, now_unix(), e.to_session_error());
            match view {
                Some(v) => finished_page(&v),
                None => page(
                    e.status,
                    "Login failed",
                    &format!("<p>{}</p>", escape(&e.message)),
                ),
            }
        }
    }
}

/// The OAuth client form was posted: check it, then send the browser on to
/// the provider's authorization page (303).
async fn client_form_submit(
    state: &AppState,
    id: &str,
    def: &crate::providers::ProviderDef,
    ctx: &crate::auth_flow::InputContext,
    form: InputForm,
) -> Response {
    let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let client_id = form.client_id.trim().to_string();
    let secret = form.client_secret.trim().to_string();
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
        return client_form_page(
            StatusCode::BAD_REQUEST,
            def,
            &ctx.view,
            ctx.csrf.expose(),
            Some(p),
        );
    }
    let scopes: Vec<String> = form
        .scopes
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let client = crate::credentials::oauth::OAuthClient {
        provider: def.name.clone(),
        client_id,
        client_secret: (!secret.is_empty()).then(|| Secret::new(secret)),
        source: crate::credentials::oauth::ClientSource::Form,
        base_url: (!base.is_empty()).then_some(base),
        registration_client_uri: None,
        registration_access_token: None,
        endpoints: None,
        redirect_uri: None,
    };
    match super::oauth::pkce_from_form(state, id, def, ctx.force, client, scopes).await {
        Ok(url) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, url)
            .header(header::CACHE_CONTROL, "no-store")
            .body(axum::body::Body::empty())
            .unwrap_or_else(|_e| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(e) => client_form_page(
            StatusCode::BAD_REQUEST,
            def,
            &ctx.view,
            ctx.csrf.expose(),
            Some(&e.to_string()),
        ),
    }
}

/// `Origin` / `Sec-Fetch-Site`, when the browser sends them, must say "this daemon".
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Err(format!("Sec-Fetch-Site: {site}"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let ok = state
            .info
            .allowed_hosts
            .iter()
            .any(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
        if !ok {
            return Err(format!("Origin: {origin}"));
        }
    }
    Ok(())
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "session_not_found",
        "no such login session (it may have expired, or the daemon restarted)",
    )
    .with_hint("start again with `authsome login PROVIDER`")
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Escapes text for HTML.
/// An error for a page: escaped, with the hint's `backticked` commands
/// shown as code rather than as raw Markdown.
fn error_paragraph(e: &str) -> String {
    let mut out = String::from(r#"<p class="err">"#);
    let paired = e.matches('`').count().is_multiple_of(2);
    for (i, part) in e.split('`').enumerate() {
        let inside = !i.is_multiple_of(2);
        if inside && paired {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else if inside {
            // An unpaired backtick: keep it as text.
            out.push('`');
            out.push_str(&escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out.push_str("</p>");
    out
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn form_page(
    status: StatusCode,
    display: &str,
    view: &SessionView,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let err = error.map(error_paragraph).unwrap_or_default();
    let body = format!(
        r#"<p>Paste your <b>{d}</b> API key. It is stored encrypted on this machine as <code>{p}/{c}</code>; agents you run with authsome use it without seeing it.</p>
{err}<form method="post" action="/api/auth/sessions/{id}/input" autocomplete="off">
<input type="hidden" name="csrf" value="{csrf}">
<label>API key <input type="password" name="api_key" required autofocus spellcheck="false"></label>
<button type="submit">Save</button>
</form>"#,
        d = escape(display),
        p = escape(&view.provider),
        c = escape(&view.connection),
        id = escape(&view.id),
        csrf = escape(csrf),
    );
    page(status, &format!("Connect {display}"), &body)
}

fn finished_page(view: &SessionView) -> Response {
    match view.status {
        SessionStatus::Completed => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "<p>Saved the key for <code>{}/{}</code>. You can close this tab.</p>",
                escape(&view.provider),
                escape(&view.connection)
            ),
        ),
        SessionStatus::Expired => page(
            StatusCode::GONE,
            "Expired",
            "<p>This login expired. Start again with <code>authsome login</code>.</p>",
        ),
        _ => page(
            StatusCode::CONFLICT,
            "Login ended",
            &format!(
                "<p>This login has ended: {}</p>",
                escape(
                    view.error
                        .as_ref()
                        .map(|e| e.message.as_str())
                        .unwrap_or("failed")
                )
            ),
        ),
    }
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>authsome: {t}</title><style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
input[type=password]{{width:100%;padding:.5rem;margin:.5rem 0;font:inherit}}button{{padding:.5rem 1rem;font:inherit}}.err{{color:#b00}}code{{background:#eee;padding:0 .2rem}}</style></head>
<body><h1>{t}</h1>{body}</body></html>"#,
        t = escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    resp
}

#[cfg(test)]
mod page_tests {
    #[test]
    fn an_errors_backticks_become_code_and_nothing_is_unescaped() {
        assert_eq!(
            super::error_paragraph("bad key (run `authsome login <x>`)"),
            r#"<p class="err">bad key (run <code>authsome login &lt;x&gt;</code>)</p>"#
        );
        assert_eq!(
            super::error_paragraph("one ` tick"),
            r#"<p class="err">one ` tick</p>"#
        );
    }
}
