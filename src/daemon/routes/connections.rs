//! `/api/connections…` and `/api/credentials/export`: metadata everywhere,
//! secrets only through `export` (PoP-authenticated, audited). Adapters over
//! [`Logins`](crate::auth_flow::logins::Logins) for the changes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::daemon::Caller;
use crate::daemon::error::{ApiJson, ApiResult};
use crate::daemon::state::AppState;

/// `GET /api/connections`
pub async fn connections_list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let list = state.run(|svc| svc.list_connections()).await?;
    Ok(Json(json!({ "connections": list })))
}

/// `GET /api/connections/{provider}/{connection}` (redacted)
pub async fn connections_get(
    State(state): State<AppState>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let view = state
        .run(move |svc| svc.get_connection(&p, Some(&c)))
        .await?;
    Ok(Json(json!(view)))
}

/// `POST /api/connections/{provider}/{connection}/logout`
pub async fn connections_logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let out = state.logins.logout(&p, Some(&c), Some(caller.0)).await?;
    Ok(Json(
        json!({"status": "logged_out", "provider": out.provider, "connection": out.connection, "provider_notified": out.provider_notified}),
    ))
}

/// `POST /api/connections/{provider}/revoke`: removes every connection of the
/// provider (each OAuth provider is asked to revoke its tokens).
pub async fn connections_revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    let out = state.logins.revoke(&p, Some(caller.0)).await?;
    Ok(Json(
        json!({"status": "revoked", "provider": out.provider, "removed": out.removed, "provider_notified": out.provider_notified}),
    ))
}

/// `POST /api/connections/{provider}/{connection}/default`
pub async fn connections_set_default(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state.logins.set_default(&p, &c, Some(caller.0)).await?;
    Ok(Json(
        json!({"status": "ok", "provider": p, "default_connection": c}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ExportRequest {
    provider: String,
    #[serde(default)]
    connection: Option<String>,
}

/// `POST /api/credentials/export`: the explicit way a secret leaves.
pub async fn credentials_export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Json<Value>> {
    let out = state
        .logins
        .export(&req.provider, req.connection.as_deref(), Some(caller.0))
        .await?;
    let map: BTreeMap<String, String> = out
        .variables
        .iter()
        .map(|v| (v.name.clone(), v.value.expose().clone()))
        .collect();
    Ok(Json(
        json!({"provider": out.provider, "connection": out.connection, "variables": map}),
    ))
}
