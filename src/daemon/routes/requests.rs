//! `GET /api/requests`: the request log (PoP). An adapter over
//! [`crate::request_log::RequestLog::query`]: parse, read on the blocking
//! pool, answer.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;

use crate::api;
use crate::daemon::Caller;
use crate::daemon::error::{ApiError, ApiResult};
use crate::daemon::state::AppState;
use crate::request_log::{DEFAULT_LIMIT, Filter, StatusFilter};

/// The query string, as text: a malformed value is a JSON error naming it,
/// not the framework's plain-text rejection.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RequestsQuery {
    after: Option<String>,
    run: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

fn number<T: std::str::FromStr>(name: &str, v: Option<&str>) -> Result<Option<T>, ApiError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    v.parse().map(Some).map_err(|_e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("`{name}` must be a whole number"),
        )
    })
}

fn text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `GET /api/requests?after=&run=&provider=&status=&limit=`.
///
/// A team member sees the entries of its own open runs only.
pub async fn requests_list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RequestsQuery>,
) -> ApiResult<Json<api::RequestList>> {
    let status = match text(q.status) {
        Some(s) => Some(s.parse::<StatusFilter>()?),
        None => None,
    };
    let filter = Filter {
        after: number("after", q.after.as_deref())?,
        run: text(q.run),
        provider: text(q.provider),
        status,
        limit: number("limit", q.limit.as_deref())?.unwrap_or(DEFAULT_LIMIT),
    };
    let own: Option<Vec<String>> = (!caller.is_admin()).then(|| {
        state
            .runs
            .list()
            .into_iter()
            .filter(|r| {
                state.runs.member_of(&r.id).flatten().as_deref() == Some(caller.did.as_str())
            })
            .map(|r| r.id)
            .collect()
    });
    if let (Some(own), Some(run)) = (&own, &filter.run)
        && !own.iter().any(|id| id.starts_with(run.as_str()))
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run `{run}` of yours"),
        ));
    }
    let log = state.requests.clone();
    let (mut entries, last) = tokio::task::spawn_blocking(move || log.query(&filter))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "request log task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the daemon log",
            )
        })??;
    if let Some(own) = &own {
        entries.retain(|e| e.run.as_ref().is_some_and(|r| own.contains(r)));
    }
    Ok(Json(api::RequestList {
        entries,
        last,
        dropped: state.requests.dropped(),
    }))
}
