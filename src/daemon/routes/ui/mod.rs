//! The dashboard: server-rendered pages at `/` and `/ui/…` on the daemon's
//! own port, thin adapters over the same operations as the API (reads from
//! the credential service, the request log and the runs; every change
//! through [`Logins`](crate::auth_flow::logins::Logins)).
//!
//! Access (see [`crate::daemon::dashboard_auth`]):
//! - `authsome dashboard` gets a one-time link from `POST
//!   /api/dashboard/links` (PoP) and opens it; `GET /?t=TOKEN` trades the
//!   token for a session cookie and redirects to `/`, so the token leaves the
//!   address bar and the history.
//! - Without a valid cookie every page answers a short "open it with
//!   `authsome dashboard`" page and no data.
//! - Every change is a `POST` carrying the session's CSRF token (compared in
//!   constant time) from a page of this daemon's origin (`Origin`, or
//!   `Sec-Fetch-Site: same-origin`); a `GET` changes nothing.
//! - A `GET` of a `/ui/…` page from another site (`Sec-Fetch-Site:
//!   same-site` or `cross-site`) is refused before any work.
//! - Every response carries a strict CSP (scripts and styles from this
//!   origin only, no framing), `X-Frame-Options: DENY`, `no-referrer` and
//!   `no-store`. The daemon's `Host` allowlist runs before all of it.

mod actions;
mod events;
pub mod html;
mod pages;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};

use crate::api::DashboardLink;
use crate::clock::now_unix;
use crate::daemon::Caller;
use crate::daemon::error::ApiResult;
use crate::daemon::state::AppState;
use crate::secret::Secret;

/// The dashboard's routes (mounted beside the API by `daemon::router`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/ui/style.css",
            get(|| async { html::asset("text/css; charset=utf-8", html::STYLE) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { html::asset("text/javascript; charset=utf-8", html::SCRIPT) }),
        )
        .route("/ui/providers", get(pages::providers))
        .route("/ui/providers/register", post(actions::register_provider))
        .route(
            "/ui/providers/{provider}/remove",
            post(actions::remove_provider),
        )
        .route(
            "/ui/providers/{provider}/connect",
            get(pages::connect).post(actions::connect),
        )
        .route("/ui/runs", get(pages::runs))
        .route("/ui/requests", get(pages::requests))
        .route("/ui/requests/events", get(events::stream))
        .route(
            "/ui/health",
            get(pages::health).post(actions::recheck_health),
        )
        .route(
            "/ui/connections/{provider}/revoke",
            get(pages::revoke_confirm).post(actions::revoke),
        )
        .route(
            "/ui/connections/{provider}/{connection}/logout",
            post(actions::logout),
        )
        .route(
            "/ui/connections/{provider}/{connection}/default",
            post(actions::set_default),
        )
        .route("/ui/signout", post(actions::signout))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .layer(middleware::from_fn(own_pages_only))
        .layer(middleware::from_fn(security_headers))
}

/// `POST /api/dashboard/links` (PoP): a one-time link to the dashboard.
pub async fn links_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<DashboardLink>> {
    let (token, expires_at) = state.dashboard.issue_link(now_unix())?;
    state
        .audit(
            "dashboard_link",
            None,
            None,
            Some(caller.did),
            "ok",
            serde_json::json!({}),
        )
        .await;
    Ok(Json(DashboardLink {
        url: format!(
            "{}/?t={}",
            state.info.base_url.trim_end_matches('/'),
            token.expose()
        ),
        expires_at,
    }))
}

/// A `GET` (or `HEAD`) of `/` or a `/ui/…` page from another site is refused
/// before any work: the session cookie is `SameSite=Strict`, but a site is
/// the host without its port, so a page of another server on 127.0.0.1 could
/// otherwise load the dashboard's pages with the cookie attached (say,
/// hundreds of `<img src=".../ui/health">`). Allowed: `Sec-Fetch-Site:
/// same-origin` (the dashboard's own links, fetches and event stream),
/// `none` (the address bar, a bookmark) and no header (curl). The one-time
/// link (`/?t=…`) is opened by `xdg-open` or pasted, so it comes as `none`;
/// `/` is guarded too, so another site cannot put its text in the page's
/// notice (`/?done=…&p=…`).
async fn own_pages_only(req: Request, next: Next) -> Response {
    use axum::http::Method;
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let path = req.uri().path();
    if read && (path.starts_with("/ui/") || path == "/") {
        let site = req
            .headers()
            .get("sec-fetch-site")
            .map(|v| v.to_str().unwrap_or(""));
        if let Some(site) = site
            && site != "same-origin"
            && site != "none"
        {
            tracing::warn!(
                site,
                path = req.uri().path(),
                "dashboard read from another site refused"
            );
            return html::locked(
                StatusCode::FORBIDDEN,
                "Refused: dashboard pages open only from the dashboard itself or from the address bar.",
            );
        }
    }
    next.run(req).await
}

/// The headers every dashboard response carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The session cookie's name. Browsers send a cookie to every port of a
/// host, so each daemon (one per home, each on its own port) names its own.
fn cookie_name(state: &AppState) -> String {
    let port: String = state
        .info
        .base_url
        .rsplit(':')
        .next()
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    format!("authsome_dashboard_{port}")
}

/// The values of this daemon's session cookie in a request: every one, since
/// a server on another port of this host can plant a cookie of the same
/// name (cookies are not isolated by port) that the browser sends first.
fn cookie_values(state: &AppState, headers: &HeaderMap) -> Vec<String> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .take(8)
        .map(|(_, v)| v.to_string())
        .collect()
}

/// A signed-in browser.
#[derive(Debug)]
pub struct Authed {
    pub cookie: Secret<String>,
    pub csrf: Secret<String>,
}

/// The session of this request, if it has a valid one (a cookie of the same
/// name planted with another path, sent beside the real one, is skipped; one
/// planted with the same path replaces the real one in the browser, which
/// signs the user out but gives no session).
fn authed(state: &AppState, headers: &HeaderMap) -> Option<Authed> {
    let now = now_unix();
    cookie_values(state, headers).into_iter().find_map(|v| {
        let cookie = Secret::new(v);
        let s = state.dashboard.session(cookie.expose(), now)?;
        Some(Authed {
            cookie,
            csrf: s.csrf,
        })
    })
}

/// The page every dashboard URL answers without a session.
fn locked() -> Response {
    html::locked(
        StatusCode::UNAUTHORIZED,
        "This dashboard needs a session, and this browser has none (or it expired).",
    )
}

/// A refused change: says nothing about which check failed.
#[derive(Debug)]
pub struct Refused;

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        html::locked(
            StatusCode::FORBIDDEN,
            "Refused: changes are accepted only from the dashboard's own pages.",
        )
    }
}

/// A change's checks: a session, its CSRF token, and a request from a page
/// of this daemon.
fn check_post(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Authed, Refused> {
    if let Err(why) = same_origin(state, headers) {
        tracing::warn!(%why, "cross-site dashboard post refused");
        return Err(Refused);
    }
    let Some(a) = authed(state, headers) else {
        tracing::warn!("dashboard post without a session refused");
        return Err(Refused);
    };
    if !crate::secret::ct_eq(a.csrf.expose().as_bytes(), csrf.as_bytes()) {
        tracing::warn!("dashboard post without a valid CSRF token refused");
        return Err(Refused);
    }
    Ok(a)
}

/// A request from a page of this daemon: `Sec-Fetch-Site`, when sent, must
/// say `same-origin`; `Origin`, when sent, must name this daemon, or be
/// `null` beside `Sec-Fetch-Site: same-origin` (what Chromium sends for a
/// same-origin form post under `Referrer-Policy: no-referrer`). A request
/// with neither header is refused (browsers send at least one on a form
/// post; other programs have no session anyway).
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), String> {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""));
    if let Some(site) = site
        && site != "same-origin"
    {
        return Err(format!("Sec-Fetch-Site: {site}"));
    }
    let same_site = site.is_some();
    match headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""))
    {
        Some("null") if same_site => Ok(()),
        Some(origin) => {
            let ok = state
                .info
                .allowed_hosts
                .iter()
                .any(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
            if ok {
                Ok(())
            } else {
                Err(format!("Origin: {origin}"))
            }
        }
        None if same_site => Ok(()),
        None => Err("neither Origin nor Sec-Fetch-Site".into()),
    }
}

/// `?t=` of `GET /`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenQuery {
    t: Option<String>,
    /// A note after a change (a fixed code, never free text).
    done: Option<String>,
    p: Option<String>,
}

/// `GET /?t=TOKEN`: the session for a valid one-time token (then `/`).
async fn exchange(state: &AppState, token: &str) -> Response {
    match state.dashboard.redeem(token, now_unix()) {
        Ok(Some(s)) => {
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                cookie_name(state),
                s.cookie.expose(),
                crate::daemon::dashboard_auth::SESSION_TTL
            );
            tracing::info!("dashboard session opened");
            let mut r = StatusCode::SEE_OTHER.into_response();
            let h = r.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            match HeaderValue::from_str(&cookie) {
                Ok(v) => {
                    h.insert(header::SET_COOKIE, v);
                    r
                }
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Ok(None) => {
            tracing::warn!("dashboard link unknown, used or expired");
            html::locked(
                StatusCode::UNAUTHORIZED,
                "This link is not valid: it works once, within a minute.",
            )
        }
        Err(e) => crate::daemon::error::ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests;
