//! The local control API: an axum router over [`CredentialService`].
//!
//! [`router`] is pure (testable with `oneshot`); [`serve`] runs it on a
//! listener until a shutdown future resolves. Every route exists under
//! `/api/…` and, for older clients, at the root (`/health`, `/connections`, …).
//!
//! Access control, in order:
//! 1. **Host allowlist** on every request: a browser tricked by DNS
//!    rebinding sends `Host: evil.example`, which is refused.
//! 2. **PoP** on protected routes: `Authorization: PoP <jwt>` signed by an
//!    identity of this home (see [`crate::pop`]).
//! 3. The browser form is open but reachable only through a session's
//!    unguessable URL, and its POST needs the session's CSRF token and a
//!    same-origin `Origin`/`Sec-Fetch-Site` (see `routes::auth_sessions`).
//!
//! [`CredentialService`]: crate::credentials::CredentialService

pub mod error;
pub mod routes;
pub mod state;

use std::future::Future;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tokio::net::TcpListener;

use self::error::ApiError;
use self::routes::{auth_sessions as s, connections as c, health as h, providers as p, proxy as x};
pub use self::state::{AppState, DaemonInfo};
use crate::vault::now_unix;

/// The identity (did:key) that signed a request's PoP token.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1 << 20;

fn both(r: Router<AppState>, path: &str, m: MethodRouter<AppState>) -> Router<AppState> {
    r.route(&format!("/api{path}"), m.clone()).route(path, m)
}

/// Builds the daemon's router.
pub fn router(state: AppState) -> Router {
    let mut protected = Router::new();
    for (path, m) in [
        ("/ready", get(h::ready)),
        ("/whoami", get(h::whoami)),
        ("/connections", get(c::connections_list)),
        (
            "/connections/{provider}/{connection}",
            get(c::connections_get),
        ),
        (
            "/connections/{provider}/{connection}/logout",
            post(c::connections_logout),
        ),
        (
            "/connections/{provider}/{connection}/default",
            post(c::connections_set_default),
        ),
        (
            "/connections/{provider}/revoke",
            post(c::connections_revoke),
        ),
        ("/credentials/export", post(c::credentials_export)),
        ("/credentials/resolve", post(x::credentials_resolve)),
        ("/proxy/routes", get(x::proxy_routes)),
        (
            "/providers",
            get(p::providers_list).post(p::providers_register),
        ),
        (
            "/providers/{provider}",
            get(p::providers_get).delete(p::providers_remove),
        ),
        ("/auth/sessions", post(s::auth_sessions_create)),
        ("/auth/sessions/{id}", get(s::auth_sessions_get)),
        ("/auth/sessions/{id}/resume", post(s::auth_sessions_resume)),
        ("/daemon/shutdown", post(daemon_shutdown)),
    ] {
        protected = both(protected, path, m);
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_pop));

    let mut open = Router::new();
    for (path, m) in [
        ("/health", get(h::health)),
        (
            "/auth/sessions/{id}/input",
            get(s::auth_sessions_input_page).post(s::auth_sessions_input_submit),
        ),
        ("/auth/sessions/{id}/device", get(s::auth_sessions_device)),
        ("/auth/callback/oauth", get(s::oauth_callback)),
    ] {
        open = both(open, path, m);
    }

    Router::new()
        .merge(protected)
        .merge(open)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves or a
/// client calls `POST /api/daemon/shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let notify = state.shutdown.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = notify.notified() => {}
        }
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await
}

/// `POST /api/daemon/shutdown`: stops this daemon (PoP). Used by
/// `authsome daemon stop` and to replace a daemon of another version.
async fn daemon_shutdown(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    tracing::info!("shutdown requested");
    state.shutdown.notify_one();
    axum::Json(serde_json::json!({"status": "stopping", "pid": std::process::id()}))
}

/// Refuses requests whose `Host` is not one of this daemon's names.
async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    match host {
        Some(h) if state.info.allowed_hosts.contains(&h) => next.run(req).await,
        other => {
            tracing::warn!(host = ?other, "request with a foreign Host header refused");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                "this daemon only answers requests addressed to itself",
            )
            .with_hint("connect to http://127.0.0.1:PORT directly")
            .into_response()
        }
    }
}

/// Verifies the PoP token against the exact method, path+query and body.
async fn require_pop(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body too large",
        )
    })?;
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| parts.uri.path());
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = match state
        .pop
        .verify(auth, parts.method.as_str(), pq, &bytes, now_unix())
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %parts.uri.path(), reason = %e, "PoP check failed");
            return Err(
                ApiError::from(e).with_hint("use the authsome CLI, which signs its requests")
            );
        }
    };
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), caller = %claims.iss, bytes = bytes.len(), "request");
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(Caller(claims.iss));
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::auth_flow::Sessions;
    use crate::credentials::CredentialService;
    use crate::home::Home;
    use crate::identity::Identity;
    use crate::pop::{self, Verifier};
    use crate::vault::{KeySource, MasterKey};

    fn state() -> (tempfile::TempDir, AppState, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let svc = CredentialService::open_with(
            home.clone(),
            &MasterKey::from_bytes([5; 32], KeySource::Env),
        )
        .unwrap();
        let id = Identity::load_or_create(&home).unwrap();
        let state = AppState {
            svc: Arc::new(svc),
            pop: Arc::new(Verifier::new([id.did()])),
            sessions: Arc::new(Sessions::new(300)),
            info: Arc::new(DaemonInfo {
                version: "test".into(),
                home: dir.path().into(),
                home_id: "abc".into(),
                base_url: "http://127.0.0.1:7998".into(),
                allowed_hosts: vec!["127.0.0.1:7998".into(), "localhost:7998".into()],
                key_source_id: "env",
                key_source: "AUTHSOME_MASTER_KEY".into(),
            }),
            shutdown: Arc::new(tokio::sync::Notify::new()),
        };
        (dir, state, id)
    }

    fn req(
        method: &str,
        path: &str,
        host: &str,
        auth: Option<String>,
        body: &str,
    ) -> Request<Body> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from(body.to_string())).unwrap()
    }

    async fn call(state: &AppState, r: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = router(state.clone()).oneshot(r).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn health_is_open_on_both_paths() {
        let (_d, s, _) = state();
        for p in ["/api/health", "/health"] {
            let (st, v) = call(&s, req("GET", p, "127.0.0.1:7998", None, "")).await;
            assert_eq!(st, StatusCode::OK);
            assert_eq!(v["service"], "authsome");
        }
    }

    #[tokio::test]
    async fn dns_rebinding_host_is_refused() {
        let (_d, s, _) = state();
        let (st, v) = call(&s, req("GET", "/api/health", "evil.test:7998", None, "")).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "host_not_allowed");
    }

    #[tokio::test]
    async fn api_needs_pop_and_accepts_it() {
        let (_d, s, id) = state();
        let (st, v) = call(
            &s,
            req("GET", "/api/connections", "localhost:7998", None, ""),
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "unauthorized");
        let auth = pop::authorization(
            &id,
            "GET",
            "/api/connections",
            b"",
            crate::vault::now_unix(),
        );
        let (st, v) = call(
            &s,
            req("GET", "/api/connections", "localhost:7998", Some(auth), ""),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["connections"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn session_then_resume_stores_the_key() {
        let (_d, s, id) = state();
        let now = crate::vault::now_unix();
        let body = r#"{"provider":"ahrefs"}"#;
        let auth = pop::authorization(&id, "POST", "/api/auth/sessions", body.as_bytes(), now);
        let (st, v) = call(
            &s,
            req(
                "POST",
                "/api/auth/sessions",
                "127.0.0.1:7998",
                Some(auth),
                body,
            ),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "waiting_for_input");
        let sid = v["id"].as_str().unwrap().to_string();
        let path = format!("/api/auth/sessions/{sid}/resume");
        let body = r#"{"api_key":"k-123"}"#;
        let auth = pop::authorization(&id, "POST", &path, body.as_bytes(), now);
        let (st, v) = call(&s, req("POST", &path, "127.0.0.1:7998", Some(auth), body)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "completed");
        let body = r#"{"host":"api.ahrefs.com"}"#;
        let auth = pop::authorization(
            &id,
            "POST",
            "/api/credentials/resolve",
            body.as_bytes(),
            now,
        );
        let (st, v) = call(
            &s,
            req(
                "POST",
                "/api/credentials/resolve",
                "127.0.0.1:7998",
                Some(auth),
                body,
            ),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["header"]["value"], "Bearer k-123");
        let auth = pop::authorization(&id, "GET", "/api/proxy/routes", b"", now);
        let (_, v) = call(
            &s,
            req("GET", "/api/proxy/routes", "127.0.0.1:7998", Some(auth), ""),
        )
        .await;
        assert_eq!(v["routes"][0]["provider"], "ahrefs");
    }

    #[tokio::test]
    async fn unknown_route_is_json_404() {
        let (_d, s, _) = state();
        let (st, v) = call(&s, req("GET", "/nope", "127.0.0.1:7998", None, "")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["code"], "not_found");
    }
}
