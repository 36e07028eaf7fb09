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
//! 4. The dashboard (`/`, `/ui/…`) needs a session cookie obtained with a
//!    one-time link from `POST /api/dashboard/links` (PoP); its POSTs need
//!    the session's CSRF token and a same-origin request (see `routes::ui`).
//!
//! [`CredentialService`]: crate::credentials::CredentialService

pub mod command;
pub mod dashboard_auth;
pub mod docs;
pub mod error;
mod peer;
pub mod routes;
pub mod state;
pub mod tls;

use std::future::Future;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter, get};
use tokio::net::TcpListener;

use self::error::ApiError;
pub use self::state::{AppState, DaemonInfo};
use crate::clock::now_unix;

/// Who made a request: the identity (did:key) that signed its PoP token,
/// and its role in the team (the daemon's own identity is an admin).
#[derive(Debug, Clone)]
pub struct Caller {
    pub did: String,
    pub role: crate::team::Role,
}

impl Caller {
    /// True for an admin (who may use and see everything).
    pub fn is_admin(&self) -> bool {
        self.role == crate::team::Role::Admin
    }
}

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1 << 20;

fn both(r: Router<AppState>, path: &str, m: MethodRouter<AppState>) -> Router<AppState> {
    r.route(&format!("/api{path}"), m.clone()).route(path, m)
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No authentication (health, the browser form behind its capability URL, the docs).
    Open,
    /// `Authorization: PoP <jwt>` signed by this home's identity or a team
    /// member's (a member sees and uses only what it was granted).
    Pop,
    /// PoP, and the caller must be an admin (members get 403 `admin_only`).
    Admin,
}

/// One route of the API: what the router mounts and what `/openapi.json`
/// describes, in one row. The handler is built by the same constructor
/// ([`Endpoint::get`], [`Endpoint::post`], [`Endpoint::delete`]) that sets
/// `method`, so the documented method and the mounted one cannot differ
/// (the two fields are private to keep it so; [`docs`] is a child module).
#[derive(Debug, Clone)]
pub struct Endpoint {
    method: Method,
    /// Path under `/api` (also served at the root, for older clients).
    pub path: &'static str,
    pub auth: Auth,
    pub summary: &'static str,
    /// Example request body, when the endpoint takes one.
    pub body: Option<&'static str>,
    /// What answers it (filtered to `method`).
    handler: MethodRouter<AppState>,
}

impl Endpoint {
    fn new(
        method: Method,
        handler: MethodRouter<AppState>,
        path: &'static str,
        auth: Auth,
        summary: &'static str,
    ) -> Endpoint {
        Endpoint {
            method,
            path,
            auth,
            summary,
            body: None,
            handler,
        }
    }

    /// A `GET` row.
    pub fn get<H, T>(path: &'static str, auth: Auth, summary: &'static str, h: H) -> Endpoint
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Endpoint::new(Method::GET, routing::get(h), path, auth, summary)
    }

    /// A `POST` row.
    pub fn post<H, T>(path: &'static str, auth: Auth, summary: &'static str, h: H) -> Endpoint
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Endpoint::new(Method::POST, routing::post(h), path, auth, summary)
    }

    /// A `DELETE` row.
    pub fn delete<H, T>(path: &'static str, auth: Auth, summary: &'static str, h: H) -> Endpoint
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Endpoint::new(Method::DELETE, routing::delete(h), path, auth, summary)
    }

    /// The HTTP method its handler answers.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// With an example request body (JSON) for the docs.
    pub fn body(mut self, example: &'static str) -> Endpoint {
        self.body = Some(example);
        self
    }
}

/// Every endpoint with its handler, in the order the docs list them.
pub fn endpoints() -> Vec<Endpoint> {
    use Auth::{Admin, Open, Pop};
    vec![
        Endpoint::get(
            "/health",
            Open,
            "Liveness: version, encryption source (no paths, no home id, no pid).",
            routes::health::health,
        ),
        Endpoint::get(
            "/health/proof",
            Open,
            "`?challenge=HEX`: HMAC-SHA256 of the challenge under the key in daemon.json, so the CLI knows it talks to its own daemon.",
            routes::health::health_proof,
        ),
        Endpoint::get(
            "/ready",
            Pop,
            "Readiness: store, vault, integrity, identity, providers, connections.",
            routes::health::ready,
        ),
        Endpoint::get(
            "/whoami",
            Pop,
            "The caller's identity and what this daemon serves.",
            routes::health::whoami,
        ),
        Endpoint::get(
            "/connections",
            Pop,
            "Every connection, metadata only.",
            routes::connections::connections_list,
        ),
        Endpoint::get(
            "/connections/{provider}/{connection}",
            Pop,
            "One connection, redacted.",
            routes::connections::connections_get,
        ),
        Endpoint::post(
            "/connections/{provider}/{connection}/logout",
            Admin,
            "Remove one connection.",
            routes::connections::connections_logout,
        )
        .body("{}"),
        Endpoint::post(
            "/connections/{provider}/{connection}/default",
            Admin,
            "Make a connection the provider's default.",
            routes::connections::connections_set_default,
        )
        .body("{}"),
        Endpoint::post(
            "/connections/{provider}/revoke",
            Admin,
            "Remove every connection of a provider.",
            routes::connections::connections_revoke,
        )
        .body("{}"),
        Endpoint::post(
            "/credentials/export",
            Pop,
            "A connection's values as environment variables (returns secrets).",
            routes::connections::credentials_export,
        )
        .body(r#"{"provider":"openai","connection":"default"}"#),
        Endpoint::post(
            "/credentials/resolve",
            Admin,
            "The header a request to a host gets.",
            routes::proxy::credentials_resolve,
        )
        .body(r#"{"host":"api.openai.com","port":443,"path":"/v1/models"}"#),
        Endpoint::get(
            "/proxy/routes",
            Admin,
            "The host to provider table over connected providers.",
            routes::proxy::proxy_routes,
        ),
        Endpoint::post(
            "/proxy/runs",
            Pop,
            "Open a per-run proxy listener (its own CA and token); used by `authsome run`.",
            routes::proxy::proxy_runs_create,
        )
        .body(r#"{"connections":{"github":"work"},"deny_unknown":false,"pid":1234}"#),
        Endpoint::get(
            "/proxy/runs",
            Pop,
            "Open runs: port, providers, counters (no tokens).",
            routes::proxy::proxy_runs_list,
        ),
        Endpoint::delete(
            "/proxy/runs/{id}",
            Pop,
            "Close a run's listener.",
            routes::proxy::proxy_runs_end,
        ),
        Endpoint::get(
            "/proxy/runs/{id}/refusals",
            Pop,
            "A run's latest refusals after `?after=N` (host, error code, message; never a secret), for `authsome run` to show.",
            routes::proxy::proxy_runs_refusals,
        ),
        Endpoint::post(
            "/proxy/system",
            Admin,
            "Create the persistent CA and (with listen) start the system-wide proxy; returns its URL and CA paths.",
            routes::proxy::proxy_system,
        )
        .body(r#"{"listen":true}"#),
        Endpoint::get(
            "/providers",
            Pop,
            "The provider catalogue.",
            routes::providers::providers_list,
        ),
        Endpoint::post(
            "/providers",
            Admin,
            "Register a custom provider.",
            routes::providers::providers_register,
        )
        .body(
            r#"{"definition":{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["api.acme.example"],"api_key":{}},"force":false}"#,
        ),
        Endpoint::get(
            "/providers/{provider}",
            Pop,
            "One provider definition.",
            routes::providers::providers_get,
        ),
        Endpoint::delete(
            "/providers/{provider}",
            Admin,
            "Remove a custom provider (a bundled one comes back).",
            routes::providers::providers_remove,
        ),
        Endpoint::post(
            "/auth/sessions",
            Admin,
            "Start a login session.",
            routes::auth_sessions::auth_sessions_create,
        )
        .body(r#"{"provider":"openai","connection":"default","force":false}"#),
        Endpoint::get(
            "/auth/sessions/{id}",
            Admin,
            "A login session's status.",
            routes::auth_sessions::auth_sessions_get,
        ),
        Endpoint::post(
            "/auth/sessions/{id}/resume",
            Admin,
            "Complete a session with an API key.",
            routes::auth_sessions::auth_sessions_resume,
        )
        .body(r#"{"api_key":"sk-..."}"#),
        Endpoint::get(
            "/auth/sessions/{id}/input",
            Open,
            "The browser form (reachable through the session URL only).",
            routes::auth_sessions::auth_sessions_input_page,
        ),
        Endpoint::post(
            "/auth/sessions/{id}/input",
            Open,
            "Form submission (CSRF token and same-origin required).",
            routes::auth_sessions::auth_sessions_input_submit,
        ),
        Endpoint::get(
            "/auth/sessions/{id}/device",
            Open,
            "Device-code details (OAuth device flow).",
            routes::auth_sessions::auth_sessions_device,
        ),
        Endpoint::get(
            "/auth/callback/oauth",
            Open,
            "OAuth redirect target.",
            routes::oauth::oauth_callback,
        ),
        Endpoint::get(
            "/audit",
            Pop,
            "The newest audit records (?limit=1..500).",
            audit_list,
        ),
        Endpoint::get("/audit/events", Pop, "Alias of /audit.", audit_list),
        Endpoint::get(
            "/requests",
            Pop,
            "The request log (?after=SEQ&run=ID&provider=P&status=404|4xx|refused&limit=1..1000): without `after` the newest entries first; with it the ones after that seq, oldest first. Never a header value, query or body.",
            routes::requests::requests_list,
        ),
        Endpoint::post(
            "/dashboard/links",
            Admin,
            "A one-time link to the dashboard (`url` with a 256-bit token, single use, valid 60 s); used by `authsome dashboard`.",
            routes::ui::links_create,
        )
        .body("{}"),
        Endpoint::post(
            "/daemon/shutdown",
            Admin,
            "Stop the daemon.",
            daemon_shutdown,
        )
        .body("{}"),
        Endpoint::get(
            "/team/members",
            Admin,
            "The team: members with their roles and grants, and the rows ignored because their tag does not open.",
            routes::team::members_list,
        ),
        Endpoint::post(
            "/team/members",
            Admin,
            "Add a member (a did:key, as `authsome whoami` prints it) with a role, or change its role.",
            routes::team::members_add,
        )
        .body(r#"{"did":"did:key:z6Mk...","role":"member"}"#),
        Endpoint::delete(
            "/team/members/{did}",
            Admin,
            "Remove a member and its grants; its runs end and its next request is refused. The last admin stays (409).",
            routes::team::members_remove,
        ),
        Endpoint::post(
            "/team/grants",
            Admin,
            "Let a member use a provider's connection (`*`: any), and export it with `export`.",
            routes::team::grants_add,
        )
        .body(r#"{"did":"did:key:z6Mk...","provider":"github","connection":"*","export":false}"#),
        Endpoint::delete(
            "/team/grants",
            Admin,
            "`?did=&provider=[&connection=]`: take back a member's grants of a provider (`connection` omitted: all of them).",
            routes::team::grants_remove,
        ),
    ]
}

/// Builds the daemon's router from [`endpoints`].
pub fn router(state: AppState) -> Router {
    let mut protected = Router::new();
    let mut admin = Router::new();
    let mut open = Router::new();
    for e in endpoints() {
        let r = match e.auth {
            Auth::Pop => &mut protected,
            Auth::Admin => &mut admin,
            Auth::Open => &mut open,
        };
        *r = both(std::mem::take(r), e.path, e.handler);
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_pop));
    // The last layer added runs first: PoP, then the role.
    let admin = admin
        .route_layer(middleware::from_fn(require_admin))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_pop));
    Router::new()
        .merge(protected)
        .merge(admin)
        .merge(open)
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/docs/app.js", get(docs::script))
        .merge(routes::ui::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves or a
/// client calls `POST /api/daemon/shutdown`. Connections of other users are
/// refused as they are accepted (`peer`).
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
    axum::serve(peer::OwnUserOnly::new(listener), router(state))
        .with_graceful_shutdown(stop)
        .await
}

#[derive(Debug, serde::Deserialize)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/audit?limit=N`: the newest audit records (1–500, default 50);
/// a member's own only.
async fn audit_list(
    State(state): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<Caller>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> Result<axum::Json<crate::api::AuditList>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    // A member sees its own entries only.
    let entries = if caller.is_admin() {
        state.read(move |svc| svc.list_audit(limit)).await?
    } else {
        state
            .read(move |svc| svc.vault().list_audit_of(&caller.did, limit))
            .await?
    };
    Ok(axum::Json(crate::api::AuditList { entries }))
}

/// `POST /api/daemon/shutdown`: stops this daemon (PoP). Used by
/// `authsome daemon stop` and to replace a daemon of another version.
async fn daemon_shutdown(State(state): State<AppState>) -> axum::Json<crate::api::ShuttingDown> {
    tracing::info!("shutdown requested");
    state.shutdown.notify_one();
    axum::Json(crate::api::ShuttingDown {
        status: "stopping".into(),
        pid: std::process::id(),
    })
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
    // Daemons sharing a store share one replay set: a token accepted by one
    // replica is refused by the others (each replica's own set, in memory,
    // already refuses it twice).
    if state.svc.vault().backend() == "postgres" {
        let (svc, jti, exp) = (state.svc.clone(), claims.jti.clone(), claims.exp);
        let first = tokio::task::spawn_blocking(move || svc.vault().pop_first_use(&jti, exp))
            .await
            .map_err(|_e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the replay check failed",
                )
            })?
            .map_err(ApiError::from)?;
        if !first {
            tracing::warn!(path = %parts.uri.path(), "PoP check failed: replayed on another daemon");
            return Err(ApiError::from(crate::pop::PopError::Replay)
                .with_hint("use the authsome CLI, which signs its requests"));
        }
    }
    // Trusted by the verifier but no longer in the team (removed while the
    // request was in flight): nobody.
    let Some(role) = state.team.role(&claims.iss) else {
        tracing::warn!(path = %parts.uri.path(), caller = %claims.iss, "PoP check failed: not in the team");
        return Err(ApiError::from(crate::pop::PopError::UnknownIssuer)
            .with_hint("ask an admin of this team to add you: `authsome team add DID`"));
    };
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), caller = %claims.iss, %role, bytes = bytes.len(), "request");
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(Caller {
        did: claims.iss,
        role,
    });
    Ok(next.run(req).await)
}

/// Refuses callers that are not admins (after [`require_pop`]).
async fn require_admin(req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<Caller>() {
        Some(c) if c.is_admin() => Ok(next.run(req).await),
        _ => Err(admin_only()),
    }
}

/// The answer to a member calling an admin's endpoint.
pub fn admin_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "admin_only",
        "this needs an admin of the team",
    )
    .with_hint("ask an admin of this team (`authsome team list` shows them)")
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

    /// The router tests don't open proxy listeners (the integration tests do).
    #[derive(Debug)]
    struct NoRuns;

    impl crate::daemon::state::ProxyRuns for NoRuns {
        fn start(
            &self,
            _req: crate::daemon::state::RunRequest,
        ) -> crate::daemon::state::BoxFuture<'_, crate::Result<crate::daemon::state::RunStarted>>
        {
            Box::pin(async {
                Err(crate::Error::Unsupported {
                    message: "runs".into(),
                    hint: None,
                })
            })
        }
        fn end(&self, _id: &str) -> crate::daemon::state::BoxFuture<'_, bool> {
            Box::pin(async { false })
        }
        fn refusals(&self, _id: &str, _after: u64) -> Option<(Vec<(u64, String)>, u64)> {
            None
        }
        fn list(&self) -> Vec<crate::api::RunSummary> {
            Vec::new()
        }
        fn system(
            &self,
            _listen: bool,
        ) -> crate::daemon::state::BoxFuture<'_, crate::Result<crate::api::ProxySystem>> {
            Box::pin(async {
                Err(crate::Error::Unsupported {
                    message: "system".into(),
                    hint: None,
                })
            })
        }
    }

    /// Router tests render given checks (the real ones, `doctor`'s, are
    /// wired in by `app` and tested through the binary).
    #[derive(Debug)]
    struct Checks;

    impl crate::daemon::state::HealthSource for Checks {
        fn checks(&self) -> Vec<crate::daemon::state::HealthCheck> {
            use crate::daemon::state::{HealthCheck, HealthStatus};
            vec![
                HealthCheck {
                    name: "home".into(),
                    status: HealthStatus::Pass,
                    detail: "/home/x (mode 700)".into(),
                    hint: None,
                },
                HealthCheck {
                    name: "vault <file>".into(),
                    status: HealthStatus::Fail,
                    detail: "/x/vault.db is readable by others (mode 644)".into(),
                    hint: Some("run `chmod 600 <vault.db>` so only you can read it".into()),
                },
            ]
        }
    }

    /// Router tests never reach an OAuth server.
    struct NoHttp;

    impl crate::auth_flow::oauth::OAuthHttp for NoHttp {
        fn send(
            &self,
            _req: crate::auth_flow::oauth::HttpRequest,
        ) -> crate::auth_flow::oauth::BoxFuture<'_, crate::Result<crate::auth_flow::oauth::HttpReply>>
        {
            Box::pin(async { Err(crate::Error::invalid("no network in router tests", None)) })
        }
    }

    pub(crate) fn state() -> (tempfile::TempDir, AppState, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let svc = CredentialService::open_with(
            home.clone(),
            &MasterKey::from_bytes([5; 32], KeySource::Env),
        )
        .unwrap();
        let id = Identity::load_or_create(&home).unwrap();
        let svc = Arc::new(svc);
        let logins = crate::auth_flow::logins::Logins::new(
            svc.clone(),
            Arc::new(Sessions::new(300)),
            Arc::new(NoHttp),
            Arc::new(crate::credentials::proxy_tables::ProxyTables::new(svc.clone()).unwrap()),
            "http://127.0.0.1:7998".into(),
        );
        let state = AppState {
            logins: Arc::new(logins),
            runs: Arc::new(NoRuns),
            svc,
            pop: Arc::new(Verifier::new([id.did()])),
            team: Arc::new(crate::team::Team::new(id.did())),
            info: Arc::new(DaemonInfo {
                version: "test".into(),
                home: dir.path().into(),
                home_id: "abc".into(),
                base_url: "http://127.0.0.1:7998".into(),
                allowed_hosts: vec!["127.0.0.1:7998".into(), "localhost:7998".into()],
                key_source_id: "env",
                key_source: "AUTHSOME_MASTER_KEY".into(),
                proof_key: Arc::new(crate::secret::Secret::new("k".into())),
                settings: Default::default(),
            }),
            shutdown: Arc::new(tokio::sync::Notify::new()),
            requests: crate::request_log::RequestLog::discard(),
            dashboard: Arc::new(crate::daemon::dashboard_auth::DashboardAuth::new()),
            health: Arc::new(Checks),
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
            crate::clock::now_unix(),
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
    async fn requests_are_listed_filtered_and_followed() {
        use crate::request_log::{Entry, EntryKind, RequestLog};
        let (d, mut s, id) = state();
        let log = RequestLog::open(&d.path().join("logs"), 1 << 20, Box::new(|_| {})).unwrap();
        for (provider, status) in [("github", 200), ("openai", 404), ("github", 502)] {
            log.record(Entry {
                provider: Some(provider.into()),
                status: Some(status),
                path: Some("/x?token=QUERYCANARY".into()),
                ..Entry::new(EntryKind::Request, "api.example.test", 443)
            });
        }
        log.sync();
        s.requests = log;
        let get = |path: &str| {
            let auth = pop::authorization(&id, "GET", path, b"", crate::clock::now_unix());
            req("GET", path, "127.0.0.1:7998", Some(auth), "")
        };
        let (st, v) = call(&s, get("/api/requests?provider=github")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["last"], 3);
        assert_eq!(v["dropped"], 0);
        let seqs: Vec<_> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].clone())
            .collect();
        assert_eq!(seqs, vec![3, 1], "newest first");
        assert!(!v.to_string().contains("QUERYCANARY"));
        let (_, v) = call(&s, get("/api/requests?after=1&status=4xx")).await;
        assert_eq!(v["entries"].as_array().unwrap().len(), 1);
        assert_eq!(v["entries"][0]["status"], 404);
        assert_eq!(v["last"], 3);
        for bad in [
            "/api/requests?status=teapot",
            "/api/requests?after=-1",
            "/api/requests?limit=x",
        ] {
            let (st, v) = call(&s, get(bad)).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert_eq!(v["error"]["code"], "invalid_input", "{bad}");
        }
    }

    #[tokio::test]
    async fn session_then_resume_stores_the_key() {
        let (_d, s, id) = state();
        let now = crate::clock::now_unix();
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

    /// The endpoints only an admin may call: the role column, stated here
    /// once more so that a row cannot drift to members unnoticed.
    const ADMIN_ONLY: &[(&str, &str)] = &[
        ("GET", "/proxy/routes"),
        ("POST", "/connections/{provider}/{connection}/logout"),
        ("POST", "/connections/{provider}/{connection}/default"),
        ("POST", "/connections/{provider}/revoke"),
        ("POST", "/credentials/resolve"),
        ("POST", "/proxy/system"),
        ("POST", "/providers"),
        ("DELETE", "/providers/{provider}"),
        ("POST", "/auth/sessions"),
        ("GET", "/auth/sessions/{id}"),
        ("POST", "/auth/sessions/{id}/resume"),
        ("POST", "/dashboard/links"),
        ("POST", "/daemon/shutdown"),
        ("GET", "/team/members"),
        ("POST", "/team/members"),
        ("DELETE", "/team/members/{did}"),
        ("POST", "/team/grants"),
        ("DELETE", "/team/grants"),
    ];

    /// Each row carries its own handler, so a row cannot lack one; what can
    /// still go wrong is a row whose path or auth is not what is served:
    /// open, PoP, or PoP by an admin (a member gets 403 `admin_only`).
    #[tokio::test]
    async fn every_endpoint_is_mounted_at_both_paths_with_its_auth() {
        let (d, s, _) = state();
        let member = Identity::load_or_create(&Home::new(d.path().join("member"))).unwrap();
        s.team_changed(crate::team::Roster {
            members: vec![crate::team::Member {
                did: member.did().into(),
                role: crate::team::Role::Member,
                added_by: None,
                added_at: 0,
            }],
            grants: vec![],
        });
        for e in endpoints() {
            let admin_only = ADMIN_ONLY.contains(&(e.method.as_str(), e.path));
            assert_eq!(
                e.auth == Auth::Admin,
                admin_only,
                "{} {}: the role column says {:?}",
                e.method,
                e.path,
                e.auth
            );
            let path = e
                .path
                .replace("{provider}", "openai")
                .replace("{connection}", "default")
                .replace("{did}", "did:key:z6Mkx")
                .replace("{id}", "x");
            for p in [format!("/api{path}"), path.clone()] {
                let body = e.body.unwrap_or("");
                let resp = router(s.clone())
                    .oneshot(req(e.method.as_str(), &p, "127.0.0.1:7998", None, body))
                    .await
                    .unwrap();
                let st = resp.status();
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains("no such route"),
                    "{} {p} is not mounted",
                    e.method
                );
                assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{} {p}", e.method);
                if e.auth == Auth::Open {
                    assert_ne!(
                        st,
                        StatusCode::UNAUTHORIZED,
                        "{} {p} is documented as open",
                        e.method
                    );
                    continue;
                }
                assert_eq!(
                    st,
                    StatusCode::UNAUTHORIZED,
                    "{} {p} must need PoP",
                    e.method
                );
                // Signed by a member: refused as such on admin rows only.
                let auth = pop::authorization(
                    &member,
                    e.method.as_str(),
                    &p,
                    body.as_bytes(),
                    crate::clock::now_unix(),
                );
                let (st, v) = call(
                    &s,
                    req(e.method.as_str(), &p, "127.0.0.1:7998", Some(auth), body),
                )
                .await;
                if e.auth == Auth::Admin {
                    assert_eq!(st, StatusCode::FORBIDDEN, "{} {p}: {v}", e.method);
                    assert_eq!(v["error"]["code"], "admin_only", "{} {p}", e.method);
                } else {
                    assert_ne!(v["error"]["code"], "admin_only", "{} {p}", e.method);
                    assert_ne!(st, StatusCode::UNAUTHORIZED, "{} {p}: {v}", e.method);
                }
            }
        }
    }

    /// A member sees only what it was granted; the owner sees everything;
    /// a member removed from the team is refused from its next request on.
    #[tokio::test]
    async fn members_see_their_grants_and_lose_access_when_removed() {
        let (d, s, owner) = state();
        let member = Identity::load_or_create(&Home::new(d.path().join("member"))).unwrap();
        s.svc
            .vault()
            .put_connection(
                crate::vault::NewConnection {
                    provider: "openai".into(),
                    name: "default".into(),
                    auth_type: "api_key".into(),
                    status: crate::vault::ConnectionStatus::Connected,
                    account_label: None,
                    token_type: None,
                    scopes: vec![],
                    expires_at: None,
                    api_key: Some(crate::secret::Secret::new("sk-x".into())),
                    access_token: None,
                    refresh_token: None,
                    cookies: None,
                    flow: None,
                },
                false,
            )
            .unwrap();
        let get = |id: &Identity, path: &str| {
            let auth = pop::authorization(id, "GET", path, b"", crate::clock::now_unix());
            req("GET", path, "127.0.0.1:7998", Some(auth), "")
        };
        let roster = s
            .logins
            .team_add(member.did(), crate::team::Role::Member, owner.did().into())
            .await
            .unwrap();
        s.team_changed(roster);
        let (st, v) = call(&s, get(&member, "/api/connections")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["connections"], serde_json::json!([]));
        let (st, _) = call(&s, get(&member, "/api/connections/openai/default")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let roster = s
            .logins
            .team_grant(member.did(), "openai", "*", false, owner.did().into())
            .await
            .unwrap()
            .unwrap();
        s.team_changed(roster);
        let (_, v) = call(&s, get(&member, "/api/connections")).await;
        assert_eq!(v["connections"][0]["provider"], "openai");
        let (_, v) = call(&s, get(&member, "/api/whoami")).await;
        assert_eq!(v["role"], "member");
        assert_eq!(v["grants"][0]["provider"], "openai");
        let (_, v) = call(&s, get(&owner, "/api/whoami")).await;
        assert_eq!(v["role"], "admin");
        // Export needs its own grant; the refusal is on the record.
        let body = r#"{"provider":"openai"}"#;
        let auth = pop::authorization(
            &member,
            "POST",
            "/api/credentials/export",
            body.as_bytes(),
            crate::clock::now_unix(),
        );
        let (st, v) = call(
            &s,
            req(
                "POST",
                "/api/credentials/export",
                "127.0.0.1:7998",
                Some(auth),
                body,
            ),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["code"], "export_not_allowed");
        assert!(!v.to_string().contains("sk-x"));
        // The member's audit view holds its own entries only.
        let (_, v) = call(&s, get(&member, "/api/audit")).await;
        let entries = v["entries"].as_array().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e["event"] == "export" && e["outcome"] == "refused")
        );
        assert!(entries.iter().all(|e| e["actor"] == member.did()), "{v}");
        let (_, v) = call(&s, get(&owner, "/api/audit")).await;
        assert!(
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "team.add" && e["actor"] == owner.did())
        );
        // Removed: the next request is refused.
        let roster = s
            .logins
            .team_remove(member.did(), owner.did().into())
            .await
            .unwrap()
            .unwrap();
        s.team_changed(roster);
        let (st, v) = call(&s, get(&member, "/api/connections")).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
        let (st, _) = call(&s, get(&owner, "/api/connections")).await;
        assert_eq!(st, StatusCode::OK);
    }

    /// Two rows for one method and path would make axum panic when the
    /// router is built (and the docs would show only the last); a path that
    /// is not absolute, has a stray brace or clashes with the docs' own
    /// routes would be rejected by axum or shadow them.
    #[test]
    fn rows_are_unique_and_their_paths_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(
                seen.insert((e.method.clone(), e.path)),
                "{} {} appears twice",
                e.method,
                e.path
            );
            assert!(
                e.path.starts_with('/') && !e.path.ends_with('/'),
                "{}",
                e.path
            );
            assert!(
                !e.path.starts_with("/api/") && !e.path.starts_with("/docs"),
                "{} would clash with the /api prefix or the docs",
                e.path
            );
            for seg in e.path[1..].split('/') {
                assert!(!seg.is_empty(), "{}: empty segment", e.path);
                let param = seg.starts_with('{') && seg.ends_with('}');
                let inner = if param { &seg[1..seg.len() - 1] } else { seg };
                assert!(
                    !inner.is_empty() && !inner.contains(['{', '}', '*', ':']),
                    "{}: segment `{seg}`",
                    e.path
                );
            }
        }
    }

    #[tokio::test]
    async fn docs_and_openapi_are_served() {
        let (_d, s, _) = state();
        let (st, v) = call(&s, req("GET", "/openapi.json", "127.0.0.1:7998", None, "")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["openapi"], "3.1.0");
        assert!(v["paths"]["/api/credentials/export"]["post"].is_object());
        for p in ["/docs", "/docs/app.js"] {
            let resp = router(s.clone())
                .oneshot(req("GET", p, "127.0.0.1:7998", None, ""))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{p}");
        }
    }

    #[tokio::test]
    async fn unknown_route_is_json_404() {
        let (_d, s, _) = state();
        let (st, v) = call(&s, req("GET", "/nope", "127.0.0.1:7998", None, "")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["code"], "not_found");
    }
}
