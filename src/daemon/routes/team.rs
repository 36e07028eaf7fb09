//! `/api/team/…` (admins only): the members of a shared daemon and their
//! grants. Adapters over the team operations of
//! [`Logins`](crate::auth_flow::logins::Logins) (each audited with the
//! caller as actor); after each, the daemon trusts and authorises by the
//! new roster ([`AppState::team_changed`]).

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::api::{TeamAdd, TeamGrantRequest, TeamList, TeamRemoved, TeamRevoked};
use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiJson, ApiResult};
use crate::daemon::state::AppState;
use crate::team::{ANY_CONNECTION, Roster};

fn not_a_member(did: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "member_not_found",
        format!("{did} is not a member of this team"),
    )
    .with_hint("`authsome team list` shows the members; `authsome team add DID` adds one")
}

/// The new roster is the one the daemon goes by; the answer lists it.
fn changed(state: &AppState, roster: Roster) -> TeamList {
    let list = TeamList::new(state.team.owner(), &roster, Vec::new());
    state.team_changed(roster);
    list
}

/// `GET /api/team/members`: read again from the store (so a change made
/// elsewhere is seen), with the rows that fail their check.
pub async fn members_list(State(state): State<AppState>) -> ApiResult<Json<TeamList>> {
    let (roster, ignored) = state.read(|svc| svc.vault().team_roster_checked()).await?;
    let list = TeamList::new(state.team.owner(), &roster, ignored);
    state.team_changed(roster);
    Ok(Json(list))
}

/// `POST /api/team/members`: adds a member or changes its role.
pub async fn members_add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<TeamAdd>,
) -> ApiResult<Json<TeamList>> {
    let roster = state
        .logins
        .team_add(&req.did, req.role, caller.did)
        .await?;
    tracing::info!(member = %req.did, role = %req.role, "team member added");
    Ok(Json(changed(&state, roster)))
}

/// `DELETE /api/team/members/{did}`: removes a member, its grants and its runs.
pub async fn members_remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(did): Path<String>,
) -> ApiResult<Json<TeamRemoved>> {
    let Some(roster) = state.logins.team_remove(&did, caller.did).await? else {
        return Err(not_a_member(&did));
    };
    let runs_ended = state.runs.end_member(&did);
    let team = changed(&state, roster);
    tracing::info!(member = %did, runs_ended, "team member removed");
    Ok(Json(TeamRemoved {
        status: "removed".into(),
        did,
        runs_ended,
        team,
    }))
}

/// `POST /api/team/grants`: lets a member use a connection.
pub async fn grants_add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<TeamGrantRequest>,
) -> ApiResult<Json<TeamList>> {
    let connection = req.connection.as_deref().unwrap_or(ANY_CONNECTION);
    let Some(roster) = state
        .logins
        .team_grant(&req.did, &req.provider, connection, req.export, caller.did)
        .await?
    else {
        return Err(not_a_member(&req.did));
    };
    tracing::info!(member = %req.did, provider = %req.provider, %connection, export = req.export, "grant stored");
    Ok(Json(changed(&state, roster)))
}

/// The query of `DELETE /api/team/grants`.
#[derive(Debug, Deserialize)]
pub struct RevokeQuery {
    did: String,
    provider: String,
    #[serde(default)]
    connection: Option<String>,
}

/// `DELETE /api/team/grants?did=&provider=[&connection=]`: takes grants back.
pub async fn grants_remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RevokeQuery>,
) -> ApiResult<Json<TeamRevoked>> {
    let (removed, roster) = state
        .logins
        .team_revoke(&q.did, &q.provider, q.connection.as_deref(), caller.did)
        .await?;
    tracing::info!(member = %q.did, provider = %q.provider, removed, "grants revoked");
    Ok(Json(TeamRevoked {
        status: "revoked".into(),
        removed,
        team: changed(&state, roster),
    }))
}
