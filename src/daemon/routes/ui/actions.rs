//! The dashboard's changes (`POST`, each behind [`check_post`]): log out,
//! set default, revoke, connect, sign out. Every change goes through
//! [`Logins`](crate::auth_flow::logins::Logins), the same calls the API
//! routes make for the CLI; the actor in the audit log is `dashboard`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::check_post;
use super::html::{enc, esc, page};
use super::pages::connect_form;
use crate::auth_flow::NextAction;
use crate::auth_flow::logins::LoginRequest;
use crate::daemon::error::ApiError;
use crate::daemon::state::AppState;
use crate::providers::{AuthType, ProviderSource};
use crate::secret::Secret;

/// Who the audit log names for a dashboard change.
const ACTOR: &str = "dashboard";

/// The fields of the dashboard's forms. `api_key` moves into a [`Secret`]
/// at once and is never shown again.
#[derive(serde::Deserialize, Default)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    connection: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    force: String,
    #[serde(default)]
    confirm: String,
    /// A provider definition (the file's text).
    #[serde(default)]
    definition: String,
    /// Your own OAuth client (optional; `--client-id`, `--client-secret`).
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
}

impl std::fmt::Debug for ActionForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionForm { .. }")
    }
}

/// `303 See Other` to `to` (after a change, so a reload repeats nothing).
fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(to) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Back to the connections with a note.
fn done(what: &str, provider: &str) -> Response {
    see_other(&format!("/?done={what}&p={}", enc(provider)))
}

/// An error's message and hint, in one line.
fn say(e: &ApiError) -> String {
    match &e.hint {
        Some(h) => format!("{} ({h})", e.message),
        None => e.message.clone(),
    }
}

/// A refused change, as a page of the session.
fn refused(csrf: &str, e: ApiError) -> Response {
    let msg = say(&e);
    page(
        e.status,
        "/",
        "Not done",
        csrf,
        &format!(
            r#"<p class="flash err" role="alert">{}</p><p><a href="/">Back to the connections</a></p>"#,
            esc(&msg)
        ),
    )
}

/// `POST /ui/connections/{provider}/{connection}/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((p, c)): Path<(String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    match state.logins.logout(&p, Some(&c), Some(ACTOR.into())).await {
        Ok(out) => done("logged_out", &out.provider),
        Err(e) => refused(a.csrf.expose(), e.into()),
    }
}

/// `POST /ui/connections/{provider}/{connection}/default`.
pub async fn set_default(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((p, c)): Path<(String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    match state.logins.set_default(&p, &c, Some(ACTOR.into())).await {
        Ok(()) => done("default", &p),
        Err(e) => refused(a.csrf.expose(), e.into()),
    }
}

/// `POST /ui/connections/{provider}/revoke` (from the confirmation page:
/// `confirm=yes`).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    if form.confirm != "yes" {
        return see_other(&format!("/ui/connections/{}/revoke", enc(&p)));
    }
    match state.logins.revoke(&p, Some(ACTOR.into())).await {
        Ok(out) => done("revoked", &out.provider),
        Err(e) => refused(a.csrf.expose(), e.into()),
    }
}

/// `POST /ui/providers/{provider}/connect`: an API key through the same
/// login session the CLI uses (start, then complete it with the key), or
/// the start of an OAuth sign-in.
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(provider): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let mut form = form;
    let key = Secret::new(std::mem::take(&mut form.api_key));
    let client_secret = Secret::new(std::mem::take(&mut form.client_secret));
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let csrf = a.csrf.expose();
    let Some(def) = state.logins.provider_def(&provider) else {
        return refused(
            csrf,
            ApiError::new(
                StatusCode::NOT_FOUND,
                "provider_not_found",
                "no such provider",
            ),
        );
    };
    let connection = match form.connection.trim() {
        "" => crate::credentials::DEFAULT_CONNECTION.to_string(),
        c => c.to_string(),
    };
    let force = form.force == "1";
    let source = state
        .logins
        .provider_source(&def.name)
        .unwrap_or(ProviderSource::Custom);
    let again = |status: StatusCode, msg: &str| {
        connect_form(status, &def, source, &connection, csrf, Some(msg))
    };
    if def.auth_type == AuthType::ApiKey && key.expose().trim().is_empty() {
        return again(StatusCode::BAD_REQUEST, "Paste the API key.");
    }
    // An OAuth client typed into the form is used as `--client-id` and
    // `--client-secret` are (stored with the connection's provider).
    let client_id = form.client_id.trim();
    let own_client = def.auth_type == AuthType::Oauth2 && !client_id.is_empty();
    let started = state
        .logins
        .start(LoginRequest {
            provider: provider.clone(),
            connection: Some(connection.clone()),
            force,
            client_form: def.auth_type == AuthType::Oauth2,
            client_id: own_client.then(|| client_id.to_string()),
            client_secret: (own_client && !client_secret.expose().trim().is_empty())
                .then(|| Secret::new(client_secret.expose().trim().to_string())),
            ..LoginRequest::default()
        })
        .await;
    let view = match started {
        Ok(v) => v,
        Err(e) => {
            let e = ApiError::from(e);
            return again(e.status, &say(&e));
        }
    };
    if def.auth_type != AuthType::ApiKey {
        return oauth_next(csrf, &def.display_name, view.next_action);
    }
    match state
        .logins
        .resume_with_key(&view.id, key, ACTOR.into())
        .await
    {
        Ok(_) => done("connected", &provider),
        Err(e) => {
            let outcome = crate::auth_flow::logins::session_error(&e);
            let e = ApiError::from(e);
            state.logins.fail(&view.id, outcome);
            again(e.status, &say(&e))
        }
    }
}

/// Where an OAuth sign-in goes next: a link to the provider (or to the
/// daemon's client form), or the device code to enter there.
fn oauth_next(csrf: &str, display: &str, next: NextAction) -> Response {
    let body = match next {
        NextAction::OpenUrl { url }
            if url.starts_with("https://") || url.starts_with("http://") =>
        {
            format!(
                r#"<div class="card"><p>Continue at {d} to approve access; this tab comes back to authsome when you are done.</p>
<p><a class="primary" href="{u}" rel="noreferrer" id="continue">Continue to {d}</a></p></div>"#,
                d = esc(display),
                u = esc(&url)
            )
        }
        NextAction::DeviceCode {
            user_code,
            verification_uri,
            verification_uri_complete,
        } => {
            let link = verification_uri_complete.unwrap_or(verification_uri);
            let link = if link.starts_with("https://") || link.starts_with("http://") {
                format!(
                    r#"<a href="{0}" rel="noreferrer" target="_blank">{0}</a>"#,
                    esc(&link)
                )
            } else {
                esc(&link)
            };
            format!(
                r#"<div class="card"><p>Enter this code at {link}:</p><p class="devicecode">{}</p><p class="muted">The connection appears on the <a href="/">Connections</a> page once you approve.</p></div>"#,
                esc(&user_code)
            )
        }
        _ => r#"<p>Signed in.</p><p><a href="/">Back to the connections</a></p>"#.into(),
    };
    page(
        StatusCode::OK,
        "/ui/providers",
        &format!("Sign in with {display}"),
        csrf,
        &body,
    )
}

/// `POST /ui/health`: "Check again": the Health page's checks run anew
/// (instead of showing the result kept from a few seconds ago).
pub async fn recheck_health(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    if let Err(r) = check_post(&state, &headers, &form.csrf) {
        return r.into_response();
    }
    state.health.forget();
    see_other("/ui/health")
}

/// `POST /ui/signout`: ends this browser's session.
pub async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    state.dashboard.end(a.cookie.expose());
    let mut r = super::html::locked(StatusCode::OK, "Signed out.");
    let gone = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        super::cookie_name(&state)
    );
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The largest provider definition the form takes (the bundled ones are
/// under 4 KiB).
const MAX_DEFINITION: usize = 64 * 1024;

/// `POST /ui/providers/register`: a custom provider from a file's text,
/// as `authsome provider register FILE [--force]` does.
pub async fn register_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    if form.definition.len() > MAX_DEFINITION {
        let e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "definition_too_large",
            format!(
                "a provider definition is at most {} KiB",
                MAX_DEFINITION / 1024
            ),
        );
        return refused(a.csrf.expose(), e);
    }
    match state
        .logins
        .register_provider(
            "the dashboard's form",
            &form.definition,
            form.force == "1",
            Some(ACTOR.into()),
        )
        .await
    {
        Ok(out) => see_other(&format!(
            "/ui/providers?q={}&done=registered",
            enc(&out.provider)
        )),
        Err(e) => refused(a.csrf.expose(), e.into()),
    }
}

/// `POST /ui/providers/{provider}/remove`: removes a custom provider (a
/// bundled one of the same name comes back).
pub async fn remove_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let a = match check_post(&state, &headers, &form.csrf) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    match state.logins.remove_provider(&p, Some(ACTOR.into())).await {
        Ok(_) => see_other(&format!("/ui/providers?q={}&done=removed", enc(&p))),
        Err(e) => refused(a.csrf.expose(), e.into()),
    }
}
