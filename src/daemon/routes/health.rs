//! `/api/health` (open), `/api/ready` and `/api/whoami` (PoP).

use axum::Json;
use axum::extract::{Extension, RawQuery, State};
use serde_json::{Value, json};

use crate::daemon::Caller;
use crate::daemon::error::ApiResult;
use crate::daemon::state::AppState;

/// Liveness: the process answers. Open, so clients can find their daemon.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let i = &state.info;
    Json(json!({
        "status": "ok",
        "service": "authsome",
        "version": i.version,
        "configured_encryption_mode": "aes-256-gcm",
        "effective_encryption_source": i.key_source_id,
        // Open route: the source's kind only, no paths (`/api/ready` has the detail).
        "encryption_backend": format!("AES-256-GCM; master key from {}", backend_kind(i.key_source_id)),
    }))
}

/// `GET /api/health/proof?challenge=HEX`: proves this daemon holds the key
/// in the `daemon.json` it wrote (only the home's user can read that file).
pub async fn health_proof(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let challenge = q
        .as_deref()
        .and_then(|q| q.strip_prefix("challenge="))
        .filter(|c| (32..=128).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            crate::error::Error::invalid(
                "`challenge` must be 32 to 128 hex digits",
                Some("the authsome CLI sends a fresh random challenge".into()),
            )
        })?;
    Ok(Json(json!({
        "proof": crate::pop::daemon_proof(state.info.proof_key.expose(), challenge),
    })))
}

fn backend_kind(id: &str) -> &'static str {
    match id {
        "env" => "AUTHSOME_MASTER_KEY",
        "key_file" => "AUTHSOME_MASTER_KEY_FILE",
        "keyring" => "the OS keyring",
        _ => "the home's key file",
    }
}

/// Readiness: store, vault, integrity, identity, providers, connections.
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let info = state.info.clone();
    state
        .run(move |svc| {
            let mut checks = serde_json::Map::new();
            let mut issues = Vec::new();
            let mut warnings = Vec::new();
            match svc.vault().check_integrity() {
                Ok(r) => {
                    checks.insert(
                        "store".into(),
                        json!(if r.sqlite_ok { "ok" } else { "failed" }),
                    );
                    checks.insert("vault".into(), json!("ok"));
                    if !r.sqlite_ok {
                        issues.push(format!("store: {}", r.sqlite_detail.unwrap_or_default()));
                    }
                    if r.damaged.is_empty() {
                        checks.insert("integrity".into(), json!("ok"));
                    } else {
                        checks.insert("integrity".into(), json!("failed"));
                        issues.push(format!(
                            "integrity: records fail to decrypt: {}",
                            r.damaged.join(", ")
                        ));
                    }
                }
                Err(e) => {
                    checks.insert("store".into(), json!("failed"));
                    issues.push(format!("store: {e}"));
                }
            }
            checks.insert("identity".into(), json!("ok"));
            let reg = svc.registry();
            if reg.problems.is_empty() {
                checks.insert("providers".into(), json!("ok"));
            } else {
                checks.insert("providers".into(), json!("failed"));
                for (n, e) in &reg.problems {
                    issues.push(format!("providers: {n}: {e}"));
                }
            }
            match svc.list_connections() {
                Ok(c) => {
                    checks.insert("connections".into(), json!("ok"));
                    if c.is_empty() {
                        warnings.push("no provider connections yet".to_string());
                    }
                }
                Err(e) => {
                    checks.insert("connections".into(), json!("failed"));
                    issues.push(format!("connections: {e}"));
                }
            }
            checks.insert("spec_version".into(), json!("ok"));
            Ok(Json(json!({
                "status": if issues.is_empty() { "ready" } else { "not_ready" },
                "checks": checks,
                "warnings": warnings,
                "issues": issues,
                "configured_encryption_mode": "aes-256-gcm",
                "effective_encryption_source": info.key_source_id,
                "encryption_backend": info.key_source,
            })))
        })
        .await
}

/// Who the caller is, and what this daemon serves.
pub async fn whoami(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let info = state.info.clone();
    let connected = state
        .run(|svc| {
            let mut m = std::collections::BTreeMap::<String, usize>::new();
            for c in svc.list_connections()? {
                *m.entry(c.record.provider).or_default() += 1;
            }
            Ok(m)
        })
        .await?;
    Ok(Json(json!({
        "version": info.version,
        "home": info.home,
        "home_id": info.home_id,
        "pid": std::process::id(),
        "did": caller.0,
        "identity": caller.0,
        "daemon_url": info.base_url,
        "vault": info.home.join("vault.db"),
        "configured_encryption_mode": "aes-256-gcm",
        "effective_encryption_source": info.key_source_id,
        "encryption_backend": info.key_source,
        "connected_providers": connected,
        "settings": info.settings,
    })))
}
