//! `/api/auth/sessions…`: starting a login, its status, and the browser form
//! where the user types an API key (or an OAuth app's client). Adapters over
//! [`Logins`](crate::auth_flow::logins::Logins).
//!
//! The form is reachable only through the session's unguessable URL (a
//! 128-bit id the CLI opened in the browser). A submission must carry the
//! session's CSRF token, and when the browser sends `Origin` or
//! `Sec-Fetch-Site`, they must name this daemon: a page on another site can
//! neither read the token nor post the form.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pages::{client_form_page, escape, finished_page, form_page, page};
use crate::api::{DeviceCode, SessionCreate, SessionResume};
use crate::auth_flow::logins::{ClientForm, LoginRequest, session_error};
use crate::auth_flow::{NextAction, SessionStatus, SessionView};
use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::AppState;
use crate::error::Error;
use crate::providers::Flow;
use crate::secret::Secret;

/// `POST /api/auth/sessions`
pub async fn auth_sessions_create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SessionCreate>,
) -> ApiResult<Json<SessionView>> {
    let view = state
        .logins
        .start(LoginRequest {
            provider: req.provider,
            connection: req.connection,
            force: req.force,
            flow: req.flow,
            client_id: req.client_id,
            client_secret: req.client_secret,
            scopes: req.scopes,
            base_url: req.base_url,
            client_form: req.client_form,
        })
        .await?;
    Ok(Json(view))
}

/// `GET /api/auth/sessions/{id}`
pub async fn auth_sessions_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(state.logins.session(&id)?))
}

/// `POST /api/auth/sessions/{id}/resume`: the CLI sends the key (`--with-api-key`).
pub async fn auth_sessions_resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SessionResume>,
) -> ApiResult<Json<SessionView>> {
    if let Some(cookies) = req.cookies {
        return Ok(Json(
            state
                .logins
                .resume_with_cookies(&id, cookies, req.cookie_expires, caller.did)
                .await?,
        ));
    }
    let Some(key) = req.api_key else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "`api_key` is required for this session",
        ));
    };
    Ok(Json(
        state.logins.resume_with_key(&id, key, caller.did).await?,
    ))
}

/// `GET /api/auth/sessions/{id}/device`: device-code details (OAuth flows only).
pub async fn auth_sessions_device(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceCode>> {
    let (view, action) = state.logins.device(&id)?;
    let NextAction::DeviceCode {
        user_code,
        verification_uri,
        verification_uri_complete,
    } = action
    else {
        return Err(Error::NoDeviceCode.into());
    };
    Ok(Json(DeviceCode {
        provider: view.provider,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at: view.expires_at,
    }))
}

/// `GET /api/auth/sessions/{id}/input`: the browser form.
pub async fn auth_sessions_input_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let Ok(ctx) = state.logins.input_context(&id) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown login",
            "<p>This login link is not valid. Start again with <code>authsome login</code>.</p>",
        );
    };
    if ctx.view.status != SessionStatus::WaitingForInput {
        return finished_page(&ctx.view);
    }
    let Some(def) = state.logins.provider_def(&ctx.view.provider) else {
        return no_provider();
    };
    if ctx.view.flow != Flow::ApiKey {
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
    let Ok(ctx) = state.logins.input_context(&id) else {
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
    if ctx.view.flow == Flow::Browser {
        // Its cookies come from the CLI (`resume`), never from a form.
        return page(
            StatusCode::CONFLICT,
            "Not here",
            "<p>This login completes in the browser window <code>authsome login</code> opened.</p>",
        );
    }
    let def = state.logins.provider_def(&ctx.view.provider);
    if ctx.view.flow != Flow::ApiKey {
        let Some(def) = def else {
            return no_provider();
        };
        let client = ClientForm {
            client_id: form.client_id,
            client_secret: Secret::new(form.client_secret),
            scopes: form.scopes,
            base_url: form.base_url,
        };
        return match state
            .logins
            .continue_with_client(&id, ctx.force, &def, client)
            .await
        {
            Ok(url) => Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, url)
                .header(header::CACHE_CONTROL, "no-store")
                .body(axum::body::Body::empty())
                .unwrap_or_else(|_e| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            Err(e) => client_form_page(
                StatusCode::BAD_REQUEST,
                &def,
                &ctx.view,
                ctx.csrf.expose(),
                Some(&e.to_string()),
            ),
        };
    }
    match state
        .logins
        .resume_with_key(&id, key, "browser".into())
        .await
    {
        Ok(view) => finished_page(&view),
        Err(err) => {
            let outcome = session_error(&err);
            let e = ApiError::from(err);
            if e.status == StatusCode::BAD_REQUEST {
                let msg = match &e.hint {
                    Some(h) => format!("{} ({h})", e.message),
                    None => e.message.clone(),
                };
                let display = def.map(|d| d.display_name.clone()).unwrap_or_default();
                return form_page(
                    StatusCode::BAD_REQUEST,
                    &display,
                    &ctx.view,
                    ctx.csrf.expose(),
                    Some(&msg),
                );
            }
            match state.logins.fail(&id, outcome) {
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

fn no_provider() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown provider",
        "<p>This provider no longer exists.</p>",
    )
}

/// `Origin` / `Sec-Fetch-Site`, when the browser sends them, must say "this
/// daemon" (`Origin: null` only beside `Sec-Fetch-Site: same-origin`).
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Err(format!("Sec-Fetch-Site: {site}"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        // Chromium sends `Origin: null` for a same-origin form post from a
        // page with `Referrer-Policy: no-referrer` (these pages): accepted
        // only when `Sec-Fetch-Site` vouches for it.
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if origin == "null" && fetch_site == Some("same-origin") {
            return Ok(());
        }
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

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
