//! `/api/proxy/routes` and `/api/credentials/resolve`.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::AppState;

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
