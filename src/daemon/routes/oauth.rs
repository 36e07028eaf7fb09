//! `GET /auth/callback/oauth`: where the authorization server sends the
//! browser back. An adapter over
//! [`Logins::oauth_callback`](crate::auth_flow::logins::Logins::oauth_callback),
//! which checks `state` (single use, bound to a waiting session), `iss`
//! (RFC 9207) and exchanges the code; this file only renders the page.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::pages::{escape, page};
use crate::auth_flow::logins::CallbackError;
use crate::daemon::state::AppState;

/// `GET /auth/callback/oauth`: `code` and `state` (or `error`).
pub async fn oauth_callback(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    match state
        .logins
        .oauth_callback(q.as_deref().unwrap_or(""))
        .await
    {
        Ok(view) => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "<p>authsome is now connected to <strong>{}</strong> as <code>{}</code>. You can close this tab.</p>",
                escape(&view.provider),
                escape(&view.connection)
            ),
        ),
        Err(CallbackError::Unknown) => page(
            StatusCode::BAD_REQUEST,
            "Login not recognised",
            "<p>This sign-in response does not belong to a login that is waiting (it is unknown, was already used, or expired). Nothing was stored.</p><p>Start again with <code>authsome login</code>.</p>",
        ),
        Err(CallbackError::Refused(view, e)) => page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            &format!(
                "<p>{}</p><p>Start again with <code>authsome login {}</code>.</p>",
                escape(&e.to_string()),
                escape(&view.provider)
            ),
        ),
        Err(CallbackError::Internal) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login failed",
            "<p>internal error; see the daemon log (<code>authsome daemon logs</code>).</p>",
        ),
        Err(CallbackError::NotStored(_, e)) => {
            let e = crate::daemon::error::ApiError::from(e);
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Login failed",
                &format!("<p>{}</p>", escape(&e.message)),
            )
        }
    }
}
