//! `/api/health` (open), `/api/ready` and `/api/whoami` (PoP).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, RawQuery, State};

use crate::api::{self, CheckOutcome, ReadyStatus};
use crate::daemon::Caller;
use crate::daemon::error::ApiResult;
use crate::daemon::state::AppState;

/// Liveness: the process answers. Open, so clients can find their daemon.
pub async fn health(State(state): State<AppState>) -> Json<api::Health> {
    let i = &state.info;
    Json(api::Health {
        status: "ok".into(),
        service: api::SERVICE.into(),
        version: Some(i.version.clone()),
        configured_encryption_mode: Some(ENCRYPTION_MODE.into()),
        effective_encryption_source: Some(i.key_source_id.into()),
        // Open route: the source's kind only, no paths (`/api/ready` has the detail).
        encryption_backend: Some(format!(
            "AES-256-GCM; master key from {}",
            backend_kind(i.key_source_id)
        )),
    })
}

/// `configured_encryption_mode` of health, readiness and whoami.
const ENCRYPTION_MODE: &str = "aes-256-gcm";

/// `GET /api/health/proof?challenge=HEX`: proves this daemon holds the key
/// in the `daemon.json` it wrote (only the home's user can read that file).
pub async fn health_proof(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<api::HealthProof>> {
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
    Ok(Json(api::HealthProof {
        proof: crate::pop::daemon_proof(state.info.proof_key.expose(), challenge),
    }))
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
pub async fn ready(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<api::Ready>> {
    let info = state.info.clone();
    let admin = caller.is_admin();
    state
        .read(move |svc| {
            let mut checks = BTreeMap::new();
            let outcome = |ok: bool| {
                if ok {
                    CheckOutcome::Ok
                } else {
                    CheckOutcome::Failed
                }
            };
            let mut issues = Vec::new();
            let mut warnings = Vec::new();
            match svc.vault().check_integrity() {
                Ok(r) => {
                    checks.insert("store".into(), outcome(r.sqlite_ok));
                    checks.insert("vault".into(), CheckOutcome::Ok);
                    if !r.sqlite_ok {
                        issues.push(format!("store: {}", r.sqlite_detail.unwrap_or_default()));
                    }
                    checks.insert("integrity".into(), outcome(r.damaged.is_empty()));
                    if !r.damaged.is_empty() {
                        issues.push(format!(
                            "integrity: records fail to decrypt: {}",
                            r.damaged.join(", ")
                        ));
                    }
                }
                Err(e) => {
                    checks.insert("store".into(), CheckOutcome::Failed);
                    issues.push(format!("store: {e}"));
                }
            }
            checks.insert("identity".into(), CheckOutcome::Ok);
            let reg = svc.registry();
            checks.insert("providers".into(), outcome(reg.problems.is_empty()));
            for (n, e) in &reg.problems {
                issues.push(format!("providers: {n}: {e}"));
            }
            match svc.list_connections() {
                Ok(c) => {
                    checks.insert("connections".into(), CheckOutcome::Ok);
                    if c.is_empty() {
                        warnings.push("no provider connections yet".to_string());
                    }
                }
                Err(e) => {
                    checks.insert("connections".into(), CheckOutcome::Failed);
                    issues.push(format!("connections: {e}"));
                }
            }
            // Team rows written outside authsome are ignored; say so.
            match svc.vault().team_roster_checked() {
                Ok((_, ignored)) if !ignored.is_empty() => warnings.push(format!(
                    "team: {} row(s) ignored, written outside authsome (their integrity tag does not open): {}",
                    ignored.len(),
                    ignored.join(", ")
                )),
                Ok(_) => {}
                Err(e) => issues.push(format!("team: {e}")),
            }
            checks.insert("spec_version".into(), CheckOutcome::Ok);
            // The details (which records, the store's address, rows written
            // outside authsome) are for admins; a member sees the outcome.
            if !admin {
                for i in issues.iter_mut() {
                    let what = i.split(':').next().unwrap_or("check").to_string();
                    *i = format!("{what}: failed (an admin sees why)");
                }
                warnings.retain(|w| !w.starts_with("team:"));
            }
            Ok(Json(api::Ready {
                status: if issues.is_empty() {
                    ReadyStatus::Ready
                } else {
                    ReadyStatus::NotReady
                },
                checks,
                warnings,
                issues,
                configured_encryption_mode: ENCRYPTION_MODE.into(),
                effective_encryption_source: info.key_source_id.into(),
                encryption_backend: if admin {
                    info.key_source.clone()
                } else {
                    String::new()
                },
            }))
        })
        .await
}

/// Who the caller is, and what this daemon serves.
pub async fn whoami(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<api::Whoami>> {
    let info = state.info.clone();
    let (team, did) = (state.team.clone(), caller.did.clone());
    let connected = state
        .read(move |svc| {
            let mut m = BTreeMap::<String, usize>::new();
            // A member counts what it was granted.
            for c in svc
                .list_connections()?
                .into_iter()
                .filter(|c| team.may_use(&did, &c.record.provider, &c.record.name))
            {
                *m.entry(c.record.provider).or_default() += 1;
            }
            Ok(m)
        })
        .await?;
    let grants = if caller.is_admin() {
        Vec::new()
    } else {
        api::TeamGrant::of(&state.team.roster(), &caller.did)
    };
    // Where the server keeps things, and how it unlocks them, is its
    // operator's business: a member sees its identity, role and grants.
    let admin = caller.is_admin();
    let (home, vault, backend) = if admin {
        (
            info.home.clone(),
            std::path::PathBuf::from(state.svc.vault().location()),
            info.key_source.clone(),
        )
    } else {
        Default::default()
    };
    Ok(Json(api::Whoami {
        version: info.version.clone(),
        home,
        home_id: info.home_id.clone(),
        pid: if admin { std::process::id() } else { 0 },
        did: caller.did.clone(),
        identity: caller.did,
        daemon_url: info.base_url.clone(),
        vault,
        configured_encryption_mode: ENCRYPTION_MODE.into(),
        effective_encryption_source: info.key_source_id.into(),
        encryption_backend: backend,
        connected_providers: connected,
        // The daemon's own settings are its operator's business.
        settings: if caller.role == crate::team::Role::Admin {
            info.settings.clone()
        } else {
            BTreeMap::new()
        },
        role: Some(caller.role),
        grants,
    }))
}
