//! `/api/connections…` and `/api/credentials/export`: metadata everywhere,
//! secrets only through `export` (PoP-authenticated).

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
    let (rec, notice) = state
        .run(move |svc| svc.logout_and_revoke(&p, Some(&c)))
        .await?;
    state.changed(Some(rec.provider.clone())).await;
    state
        .audit(
            "logout",
            Some(rec.provider.clone()),
            Some(rec.name.clone()),
            Some(caller.0),
            "ok",
            json!({"provider_notified": notice}),
        )
        .await;
    Ok(Json(
        json!({"status": "logged_out", "provider": rec.provider, "connection": rec.name, "provider_notified": notice}),
    ))
}

/// `POST /api/connections/{provider}/revoke`: removes every connection of the
/// provider. (Calling the provider's revocation endpoint arrives with OAuth.)
pub async fn connections_revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    let provider = p.clone();
    let removed = state
        .run(move |svc| {
            svc.registry().require(&p)?;
            let mut n = 0;
            let mut notices = Vec::new();
            for c in svc
                .list_connections()?
                .into_iter()
                .filter(|c| c.record.provider == p)
            {
                let (_, notice) = svc.logout_and_revoke(&p, Some(&c.record.name))?;
                notices.push(notice);
                n += 1;
            }
            Ok((n, notices))
        })
        .await?;
    state.changed(Some(provider.clone())).await;
    state
        .audit(
            "revoke",
            Some(provider.clone()),
            None,
            Some(caller.0),
            "ok",
            json!({"removed": removed.0, "provider_notified": removed.1}),
        )
        .await;
    Ok(Json(
        json!({"status": "revoked", "provider": provider, "removed": removed.0, "provider_notified": removed.1}),
    ))
}

/// `POST /api/connections/{provider}/{connection}/default`
pub async fn connections_set_default(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, c)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (pp, cc) = (p.clone(), c.clone());
    state.run(move |svc| svc.set_default(&pp, &cc)).await?;
    state.changed(Some(p.clone())).await;
    state
        .audit(
            "set_default",
            Some(p.clone()),
            Some(c.clone()),
            Some(caller.0),
            "ok",
            json!({}),
        )
        .await;
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
    let (rec, vars) = state
        .run(move |svc| svc.export(&req.provider, req.connection.as_deref()))
        .await?;
    tracing::info!(provider = %rec.provider, connection = %rec.name, count = vars.len(), "credentials exported");
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    state
        .audit(
            "export",
            Some(rec.provider.clone()),
            Some(rec.name.clone()),
            Some(caller.0),
            "ok",
            json!({"variables": names}),
        )
        .await;
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|v| (v.name.clone(), v.value.expose().clone()))
        .collect();
    Ok(Json(
        json!({"provider": rec.provider, "connection": rec.name, "variables": map}),
    ))
}
