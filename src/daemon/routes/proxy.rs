//! `/api/proxy/routes` and `/api/credentials/resolve`.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::{AppState, RunRequest};
use crate::providers::ExportRole;

/// `GET /api/proxy/routes`: the host → provider table over connected providers.
pub async fn proxy_routes(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let routes = state
        .run(|svc| {
            let t = svc.routes()?;
            Ok(t.routes()
                .into_iter()
                .map(|r| json!({"provider": r.provider, "rule": r.rule.to_string()}))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(json!({ "routes": routes })))
}

#[derive(Debug, Deserialize)]
pub struct ResolveRequest {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    path: Option<String>,
}

/// `POST /api/credentials/resolve`: the header a request to `host` gets.
pub async fn credentials_resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> ApiResult<Json<Value>> {
    let host = req.host.clone();
    let resolved = state
        .run(move |svc| {
            svc.resolve_for_host(
                &req.host,
                req.port.unwrap_or(443),
                req.path.as_deref().unwrap_or("/"),
            )
        })
        .await?;
    let Some(r) = resolved else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_route",
            format!("no connected provider serves {host}"),
        ));
    };
    tracing::info!(provider = %r.provider, connection = %r.connection, %host, "credential resolved");
    state
        .audit(
            "credential.resolve",
            Some(r.provider.clone()),
            Some(r.connection.clone()),
            Some(caller.0),
            "ok",
            json!({"host": host}),
        )
        .await;
    Ok(Json(json!({
        "provider": r.provider,
        "connection": r.connection,
        "header": {"name": r.injection.name, "value": r.value.expose()},
        "format": r.injection.format,
        "expires_at": r.expires_at,
    })))
}

/// The value a child sees in place of each secret its SDKs look for.
pub const PLACEHOLDER: &str = "authsome-managed";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    #[serde(default)]
    connections: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    deny_unknown: bool,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    sandbox: bool,
    #[serde(default)]
    allow_localhost: Vec<u16>,
}

/// `POST /api/proxy/runs`: opens a per-run proxy listener.
pub async fn proxy_runs_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RunCreate>,
) -> ApiResult<Json<Value>> {
    let wanted = req.connections.clone();
    state
        .run(move |svc| {
            for (p, c) in &wanted {
                svc.get_connection(p, Some(c))?;
            }
            Ok(())
        })
        .await?;
    let started = state
        .runs
        .start(RunRequest {
            connections: req.connections,
            deny_unknown: req.deny_unknown,
            client_pid: req.pid,
            sandbox: req.sandbox,
            allow_localhost: req.allow_localhost,
        })
        .await
        .map_err(ApiError::from)?;
    let providers = started.providers.clone();
    let placeholders = state
        .run(move |svc| {
            let reg = svc.registry();
            let mut out = serde_json::Map::new();
            for p in &providers {
                if let Some(e) = reg.get(p) {
                    for (name, role) in crate::credentials::export_roles(&e.def) {
                        if matches!(
                            role,
                            ExportRole::ApiKey | ExportRole::AccessToken | ExportRole::RefreshToken
                        ) {
                            out.insert(name, json!(PLACEHOLDER));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await?;
    tracing::info!(run = %started.id, port = started.port, providers = ?started.providers, "run started");
    state
        .audit(
            "proxy.run.start",
            None,
            None,
            Some(caller.0),
            "ok",
            json!({"run": started.id, "providers": started.providers, "deny_unknown": req.deny_unknown}),
        )
        .await;
    Ok(Json(json!({
        "id": started.id,
        "port": started.port,
        "proxy_url": format!("http://authsome:{}@127.0.0.1:{}", started.token.expose(), started.port),
        "token": started.token.expose(),
        "ca_pem": started.ca_pem,
        "hosts": started.hosts,
        "providers": started.providers,
        "placeholders": placeholders,
        "protect": started.protect,
    })))
}

/// `GET /api/proxy/runs`: open runs (no tokens).
pub async fn proxy_runs_list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "runs": state.runs.list() }))
}

#[derive(Debug, Deserialize)]
pub struct RefusalsQuery {
    #[serde(default)]
    after: u64,
}

/// `GET /api/proxy/runs/{id}/refusals?after=N`: the run's latest refusals.
pub async fn proxy_runs_refusals(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RefusalsQuery>,
) -> ApiResult<Json<Value>> {
    match state.runs.refusals(&id, q.after) {
        Some((list, last)) => Ok(Json(json!({
            "refusals": list.iter().map(|(n, line)| json!({"seq": n, "line": line})).collect::<Vec<_>>(),
            "last": last,
        }))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run `{id}`"),
        )),
    }
}

/// `DELETE /api/proxy/runs/{id}`: closes a run's listener.
pub async fn proxy_runs_end(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if state.runs.end(&id).await {
        Ok(Json(json!({"status": "ended", "id": id})))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "run_not_found",
            "no such run (it may have ended already)",
        ))
    }
}

/// `POST /api/proxy/system`: starts (if needed) the system-wide listener and
/// says how to use it.
pub async fn proxy_system(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SystemRequest>,
) -> ApiResult<Json<Value>> {
    state
        .runs
        .system(req.listen.unwrap_or(true))
        .await
        .map(Json)
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemRequest {
    #[serde(default)]
    listen: Option<bool>,
}
