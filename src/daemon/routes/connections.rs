//! `/api/connections…` and `/api/credentials/export`: metadata everywhere,
//! secrets only through `export` (PoP-authenticated, audited). Adapters over
//! [`Logins`](crate::auth_flow::logins::Logins) for the changes.

use axum::Json;
use axum::extract::{Extension, Path, State};

use crate::api::{
    ConnectionList, ConnectionView, DefaultSet, ExportRequest, Exported, LoggedOut, Revoked,
};
use axum::http::StatusCode;

use crate::auth_flow::logins::{Change, Scope};
use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::AppState;
use crate::error::Error;

/// `GET /api/connections`: a member's granted ones only.
pub async fn connections_list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ConnectionList>> {
    let mut connections = state.read(|svc| svc.list_connections()).await?;
    connections.retain(|c| {
        state
            .team
            .may_use(&caller.did, &c.record.provider, &c.record.name)
    });
    Ok(Json(ConnectionList { connections }))
}

/// `GET /api/connections/{provider}/{connection}` (redacted). Not granted
/// to a member: 404, as if it did not exist.
pub async fn connections_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    if !state.team.may_use(&caller.did, &p, &c) {
        return Err(Error::ConnectionNotFound {
            provider: p,
            connection: c,
        }
        .into());
    }
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
    let out = state.logins.logout(&p, Some(&c), Some(caller.did)).await?;
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
    let out = state.logins.revoke(&p, Some(caller.did)).await?;
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
        .set_default_choosing(&p, &c, Some(caller.did))
        .await?;
    Ok(Json(DefaultSet {
        status: "ok".into(),
        provider: p,
        default_connection: c,
        chosen_on,
    }))
}

/// `POST /api/credentials/export`: the explicit way a secret leaves. A
/// member needs a grant that allows it (a refusal is on the record).
pub async fn credentials_export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Json<Exported>> {
    if !caller.is_admin() {
        let (p, c) = (req.provider.clone(), req.connection.clone());
        // The connection a default resolves to; a connection the member
        // cannot see is "not allowed" too, never "not found".
        let name = state
            .read(move |svc| {
                Ok(svc
                    .get_connection(&p, c.as_deref())
                    .ok()
                    .map(|v| v.record.name))
            })
            .await?;
        let allowed = name
            .as_deref()
            .is_some_and(|n| state.team.may_export(&caller.did, &req.provider, n));
        if !allowed {
            let mut change = Change::of(
                "export",
                &req.provider,
                name.as_deref().or(req.connection.as_deref()),
            )
            .by(Some(caller.did.clone()))
            .scope(Scope::Nothing);
            change.note("code", "export_not_allowed");
            state.logins.record(change, "refused").await;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "export_not_allowed",
                format!("exporting {} is not allowed for this member", req.provider),
            )
            .with_hint(format!(
                "ask an admin: authsome team grant {} {} --export",
                caller.did, req.provider
            )));
        }
    }
    let out = state
        .logins
        .export(&req.provider, req.connection.as_deref(), Some(caller.did))
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
