//! `GET /ui/requests/events?after=SEQ&provider=&run=&status=`: the request
//! log's new entries as server-sent events (`event: entry`, `id: SEQ`,
//! `data: {entry JSON}`), for the Requests page. A task polls the log every
//! [`POLL`] and stops when the browser goes away or its session ends.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::authed;
use super::pages::requests_filter;
use crate::clock::now_unix;
use crate::daemon::state::AppState;

/// How often the log is read.
const POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps idle connections open (in polls).
const HEARTBEAT: u32 = 30;
/// How far back a stream starts at most: a client's `after` (or
/// `Last-Event-ID`) older than this many entries is moved up, so no stream
/// replays the whole log.
const CATCH_UP: u64 = 200;

#[derive(Debug, Default, serde::Deserialize)]
pub struct EventsQuery {
    after: Option<u64>,
    provider: Option<String>,
    run: Option<String>,
    status: Option<String>,
}

/// A response body fed by a channel: the stream ends when the task drops
/// its sender; the task sees the browser leave when the receiver is gone.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// `GET /ui/requests/events`.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let Some(a) = authed(&state, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let filter = match requests_filter(q.provider.as_deref(), q.run.as_deref(), q.status.as_deref())
    {
        Ok(f) => f,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    // A reconnecting EventSource says where it stopped.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // Streams are capped per session and in all (each is a polling task in
    // the proxy's process).
    let Some(slot) = state.dashboard.open_stream(a.cookie.expose(), now_unix()) else {
        tracing::warn!("dashboard live stream refused: too many open");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many live request streams are open: close other dashboard tabs",
        )
            .into_response();
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let cookie = a.cookie;
    tokio::spawn(async move {
        let _slot = slot;
        let log = state.requests.clone();
        let newest = tokio::task::spawn_blocking(move || {
            log.query(&crate::request_log::Filter {
                limit: 1,
                ..Default::default()
            })
        })
        .await;
        let Ok(Ok((_, newest))) = newest else {
            return;
        };
        let mut after = q
            .after
            .unwrap_or(0)
            .max(resume)
            .max(newest.saturating_sub(CATCH_UP));
        let mut idle = 0u32;
        // Tell the browser how soon to come back after a drop.
        if tx
            .send(Bytes::from_static(b"retry: 2000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(POLL).await;
            if tx.is_closed()
                || state
                    .dashboard
                    .session(cookie.expose(), now_unix())
                    .is_none()
            {
                return;
            }
            let mut f = filter.clone();
            f.after = Some(after);
            let log = state.requests.clone();
            let limit = f.limit;
            let (entries, last) = match tokio::task::spawn_blocking(move || log.query(&f)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "request log read failed");
                    continue;
                }
                Err(_) => return,
            };
            // Oldest first after `after`; when the page was full, go on from
            // its last entry, else from the log's last seq.
            after = match entries.last() {
                Some(e) if entries.len() >= limit => e.seq,
                _ => after.max(last),
            };
            idle += 1;
            for e in entries {
                let Ok(json) = serde_json::to_string(&e) else {
                    continue;
                };
                let msg = format!("event: entry\nid: {}\ndata: {json}\n\n", e.seq);
                if tx.send(Bytes::from(msg)).await.is_err() {
                    return;
                }
                idle = 0;
            }
            if idle >= HEARTBEAT {
                idle = 0;
                if tx.send(Bytes::from_static(b": ping\n\n")).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut r = Body::new(ChannelBody(rx)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}
