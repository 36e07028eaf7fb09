//! `/api/proxy/routes` and `/api/credentials/resolve`.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::{self, ResolveRequest, RunCreate, SystemRequest};
use crate::auth_flow::logins::{Change, Scope};
use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::{AppState, RunRequest};
use crate::providers::ExportRole;
use crate::secret::Secret;

/// `GET /api/proxy/routes`: the host → provider table over connected providers.
pub async fn proxy_routes(State(state): State<AppState>) -> ApiResult<Json<api::ProxyRoutes>> {
    let routes = state
        .read(|svc| {
            let t = svc.routes()?;
            Ok(t.routes()
                .into_iter()
                .map(|r| api::ProxyRoute {
                    provider: r.provider.to_string(),
                    rule: r.rule.to_string(),
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(api::ProxyRoutes { routes }))
}

/// `POST /api/credentials/resolve`: the header a request to `host` gets.
pub async fn credentials_resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> ApiResult<Json<api::Resolved>> {
    let host = req.host.clone();
    let resolved = state
        .read(move |svc| {
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
            Some(caller.did),
            "ok",
            json!({"host": host}),
        )
        .await;
    Ok(Json(api::Resolved {
        provider: r.provider,
        connection: r.connection,
        header: api::ResolvedHeader {
            name: r.injection.name,
            value: r.value,
        },
        format: r.injection.format,
        expires_at: r.expires_at,
        extra_headers: r
            .extra
            .into_iter()
            .map(|(name, value)| api::ResolvedHeader { name, value })
            .collect(),
    }))
}

/// `POST /api/proxy/runs`: opens a per-run proxy listener.
pub async fn proxy_runs_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RunCreate>,
) -> ApiResult<Json<api::RunCreated>> {
    // Connections chosen for a member from its grants are not checked
    // here: one that does not exist fails closed at its first request, and
    // does not stop the run's other providers.
    let mut picked = std::collections::BTreeMap::new();
    let admin = caller.is_admin();
    let (member, only) = if admin {
        (None, None)
    } else {
        match authorize_run(&state, &caller.did, &req.connections, &mut picked) {
            Ok(only) => (Some(caller.did.clone()), Some(only)),
            Err((p, c, e)) => {
                let mut change = Change::of("proxy.run.start", &p, Some(&c))
                    .by(Some(caller.did.clone()))
                    .scope(Scope::Nothing);
                change.note("code", "not_granted");
                state.logins.record(change, "refused").await;
                return Err(e);
            }
        }
    };
    let wanted = req.connections.clone();
    state
        .read(move |svc| {
            for (p, c) in &wanted {
                svc.get_connection(p, Some(c))?;
            }
            Ok(())
        })
        .await?;
    // Only the masked command is kept (the rule: `daemon::command`).
    let argv = req.command;
    let command = state
        .read(move |svc| {
            let reg = svc.registry();
            let patterns = crate::daemon::command::Patterns::new(reg.iter().filter_map(|e| {
                e.def
                    .api_key
                    .as_ref()
                    .and_then(|k| k.key_pattern.as_deref())
            }));
            Ok(crate::daemon::command::mask(&argv, &patterns))
        })
        .await?;
    let started = state
        .runs
        .start(RunRequest {
            command: command.clone(),
            connections: req.connections.into_iter().chain(picked).collect(),
            deny_unknown: req.deny_unknown,
            // A member's run is confined on the server whatever its client
            // asks: no service on the server's loopback, no host port let
            // through, and a lease instead of a process to watch (a pid it
            // names is a process of the server's, not its own).
            client_pid: if admin { req.pid } else { None },
            sandbox: req.sandbox || !admin,
            allow_localhost: if admin {
                req.allow_localhost
            } else {
                Vec::new()
            },
            redact: req.redact,
            member,
            starter: Some(caller.did.clone()),
            only,
        })
        .await
        .map_err(ApiError::from)?;
    let by_provider = started.placeholders.clone();
    let placeholders = state
        .read(move |svc| {
            let reg = svc.registry();
            let mut out = std::collections::BTreeMap::new();
            for (p, value) in &by_provider {
                if let Some(e) = reg.get(p) {
                    for (name, role) in crate::credentials::export_roles(&e.def) {
                        if matches!(
                            role,
                            ExportRole::ApiKey
                                | ExportRole::AccessToken
                                | ExportRole::RefreshToken
                                | ExportRole::Cookie(_)
                        ) {
                            out.insert(name, value.clone());
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
            Some(caller.did),
            "ok",
            json!({"run": started.id, "providers": started.providers, "deny_unknown": req.deny_unknown, "redact": req.redact, "command": crate::daemon::command::display(&command)}),
        )
        .await;
    Ok(Json(api::RunCreated {
        proxy_url: Secret::new(format!(
            "http://authsome:{}@127.0.0.1:{}",
            started.token.expose(),
            started.port
        )),
        id: started.id,
        port: started.port,
        token: started.token,
        ca_pem: started.ca_pem,
        hosts: started.hosts,
        providers: started.providers,
        placeholders,
        protect: started.protect,
        remote_proxy: started.remote_proxy,
    }))
}

/// A member's run: every connection it asks for must be granted to it
/// (else 403 `not_granted`, naming the first that is not). Where its
/// grants of a provider name connections (no `*`) and it asked for none,
/// the first granted one is chosen, never the provider's default. Returns
/// the providers the run may use.
fn authorize_run(
    state: &AppState,
    did: &str,
    connections: &std::collections::BTreeMap<String, String>,
    picked: &mut std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeSet<String>, (String, String, ApiError)> {
    let roster = state.team.roster();
    for (p, c) in connections.iter() {
        if !roster.may_use(did, p, c) {
            return Err((
                p.clone(),
                c.clone(),
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not_granted",
                    format!("{p}/{c} is not granted to this team member"),
                )
                .with_hint(format!("ask an admin: authsome team grant {did} {p}/{c}")),
            ));
        }
    }
    let mut only = std::collections::BTreeSet::new();
    for g in roster.grants_of(did) {
        only.insert(g.provider.clone());
    }
    for p in &only {
        let grants: Vec<&str> = roster
            .grants_of(did)
            .filter(|g| &g.provider == p)
            .map(|g| g.connection.as_str())
            .collect();
        if !connections.contains_key(p)
            && !grants.contains(&crate::team::ANY_CONNECTION)
            && let Some(first) = grants.iter().min()
        {
            picked.insert(p.clone(), first.to_string());
        }
    }
    Ok(only)
}

/// True when `caller` may see run `id` (its own, or any for an admin).
fn sees_run(state: &AppState, caller: &Caller, id: &str) -> bool {
    match state.runs.member_of(id) {
        None => false,
        Some(_) if caller.is_admin() => true,
        Some(m) => m.as_deref() == Some(caller.did.as_str()),
    }
}

fn no_run(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "run_not_found",
        format!("no run `{id}` (it may have ended already)"),
    )
}

/// `GET /api/proxy/runs`: open runs (no tokens); a member's own only.
pub async fn proxy_runs_list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<api::RunList>> {
    let mut runs = state.runs.list();
    if !caller.is_admin() {
        runs.retain(|r| sees_run(&state, &caller, &r.id));
    }
    Ok(Json(api::RunList { runs }))
}

#[derive(Debug, Deserialize)]
pub struct RefusalsQuery {
    #[serde(default)]
    after: u64,
}

/// `GET /api/proxy/runs/{id}/refusals?after=N`: the run's latest refusals.
pub async fn proxy_runs_refusals(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RefusalsQuery>,
) -> ApiResult<Json<api::RunRefusals>> {
    if !caller.is_admin() && !sees_run(&state, &caller, &id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run `{id}`"),
        ));
    }
    match state.runs.refusals(&id, q.after) {
        Some((list, last)) => Ok(Json(api::RunRefusals {
            refusals: list
                .into_iter()
                .map(|(seq, line)| api::Refusal { seq, line })
                .collect(),
            last,
        })),
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
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<api::RunEnded>> {
    if !caller.is_admin() && !sees_run(&state, &caller, &id) {
        return Err(no_run(&id));
    }
    if state.runs.end(&id).await {
        Ok(Json(api::RunEnded {
            status: "ended".into(),
            id,
        }))
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
) -> ApiResult<Json<api::ProxySystem>> {
    let system = state
        .runs
        .system(req.listen.unwrap_or(true))
        .await
        .map_err(ApiError::from)?;
    Ok(Json(system))
}
