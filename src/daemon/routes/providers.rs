//! `/api/providers…`: list, show, register, remove. Registering and removing
//! are adapters over [`Logins`](crate::auth_flow::logins::Logins).

use axum::Json;
use axum::extract::{Extension, Path, State};

use crate::api::{
    ProviderDetail, ProviderList, ProviderRegistered, ProviderRemoved, RegisterProvider,
};
use crate::daemon::Caller;
use crate::daemon::error::{ApiJson, ApiResult};
use crate::daemon::state::AppState;

/// `GET /api/providers`
pub async fn providers_list(State(state): State<AppState>) -> ApiResult<Json<ProviderList>> {
    let providers = state.read(|svc| svc.list_providers()).await?;
    Ok(Json(ProviderList { providers }))
}

/// `GET /api/providers/{provider}`
pub async fn providers_get(
    State(state): State<AppState>,
    Path(p): Path<String>,
) -> ApiResult<Json<ProviderDetail>> {
    let (def, source) = state.read(move |svc| svc.get_provider(&p)).await?;
    Ok(Json(ProviderDetail {
        def: (*def).clone(),
        source,
    }))
}

/// `POST /api/providers`
pub async fn providers_register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RegisterProvider>,
) -> ApiResult<Json<ProviderRegistered>> {
    let text = match &req.definition {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let origin = req.origin.unwrap_or_else(|| "request body".into());
    let out = state
        .logins
        .register_provider(&origin, &text, req.force, Some(caller.did))
        .await?;
    Ok(Json(ProviderRegistered {
        status: "registered".into(),
        provider: out.provider,
        outcome: out.outcome,
        api_url: out.api_url,
        suspended: out.suspended,
    }))
}

/// `DELETE /api/providers/{provider}`
pub async fn providers_remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(p): Path<String>,
) -> ApiResult<Json<ProviderRemoved>> {
    let outcome = state.logins.remove_provider(&p, Some(caller.did)).await?;
    Ok(Json(ProviderRemoved {
        status: "removed".into(),
        provider: p,
        outcome,
    }))
}
