//! `/api/connections…` and `/api/credentials/export`: metadata everywhere,
//! secrets only through `export` (PoP-authenticated, audited). Adapters over
//! [`Logins`](crate::auth_flow::logins::Logins) for the changes.

use axum::Json;
use axum::extract::{Extension, Path, State};

use crate::api::{
    ConnectionList, ConnectionView, DefaultSet, ExportRequest, Exported, LoggedOut, Revoked,
};
use crate::daemon::Caller;
use crate::daemon::error::{ApiJson, ApiResult};
use crate::daemon::state::AppState;

/// `GET /api/connections`
pub async fn connections_list(State(state): State<AppState>) -> ApiResult<Json<ConnectionList>> {
    let connections = state.read(|svc| svc.list_connections()).await?;
    Ok(Json(ConnectionList { connections }))
}

/// `GET /api/connections/{provider}/{connection}` (redacted)
pub async fn connections_get(
    State(state): State<AppState>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    let view = state
        .read(move |svc| svc.get_connection(&p, Some(&c)))
        .await?;
    Ok(Json(view))
}

/// `POST /api/connections/{provider}/{connection}/logout`
pub async fn connections_logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<LoggedOut>> {
    let out = state.logins.logout(&p, Some(&c), Some(caller.0)).await?;
    Ok(Json(LoggedOut {
        status: "logged_out".into(),
        provider: out.provider,
        connection: out.connection,
        provider_notified: out.provider_notified,
    }))
}

/// `POST /api/connections/{provider}/revoke`: removes every connection of the
/// provider (each OAuth provider is asked to revoke its tokens).
pub async fn connections_revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(p): Path<String>,
) -> ApiResult<Json<Revoked>> {
    let out = state.logins.revoke(&p, Some(caller.0)).await?;
    Ok(Json(Revoked {
        status: "revoked".into(),
        provider: out.provider,
        removed: out.removed,
        provider_notified: out.provider_notified,
    }))
}

/// `POST /api/connections/{provider}/{connection}/default`
pub async fn connections_set_default(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<DefaultSet>> {
    let chosen_on = state
        .logins
        .set_default_choosing(&p, &c, Some(caller.0))
        .await?;
    Ok(Json(DefaultSet {
        status: "ok".into(),
        provider: p,
        default_connection: c,
        chosen_on,
    }))
}

/// `POST /api/credentials/export`: the explicit way a secret leaves.
pub async fn credentials_export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Json<Exported>> {
    let out = state
        .logins
        .export(&req.provider, req.connection.as_deref(), Some(caller.0))
        .await?;
    Ok(Json(Exported {
        provider: out.provider,
        connection: out.connection,
        variables: out
            .variables
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect(),
    }))
}
