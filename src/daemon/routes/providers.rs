//! `/api/providers…`: list, show, register, remove. Registering and removing
//! are adapters over [`Logins`](crate::auth_flow::logins::Logins).

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::AppState;

/// `GET /api/providers`
pub async fn providers_list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let list = state.run(|svc| svc.list_providers()).await?;
    Ok(Json(json!({ "providers": list })))
}

/// `GET /api/providers/{provider}`
pub async fn providers_get(
    State(state): State<AppState>,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    let (def, source) = state.run(move |svc| svc.get_provider(&p)).await?;
    let mut v = serde_json::to_value(def.as_ref())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    v["source"] = json!(source);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
pub struct RegisterRequest {
    /// The definition: a JSON object, or the file's text (comments allowed).
    definition: Value,
    #[serde(default)]
    force: bool,
    /// Where it came from, for error messages (e.g. the file path).
    #[serde(default)]
    origin: Option<String>,
}

/// `POST /api/providers`
pub async fn providers_register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Json<Value>> {
    let text = match &req.definition {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let origin = req.origin.unwrap_or_else(|| "request body".into());
    let out = state
        .logins
        .register_provider(&origin, &text, req.force, Some(caller.0))
        .await?;
    Ok(Json(
        json!({"status": "registered", "provider": out.provider, "outcome": out.outcome, "api_url": out.api_url, "suspended": out.suspended}),
    ))
}

/// `DELETE /api/providers/{provider}`
pub async fn providers_remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    let outcome = state.logins.remove_provider(&p, Some(caller.0)).await?;
    Ok(Json(
        json!({"status": "removed", "provider": p, "outcome": outcome}),
    ))
}
