//! The request log's side of the request path: a [`Recorder`] per request
//! (filled as the request is decided and sent, written when the answer's
//! body ends or is dropped, so bytes and duration are the whole exchange),
//! the body wrappers that count bytes, and the entry of a blind tunnel.
//!
//! Written through [`RequestLog::record`], which never waits (a full
//! channel drops the entry and counts it). What an entry holds is decided
//! here: names, the path without its query, sizes, times, outcomes; never a
//! header value, a query value, a body, a secret or a placeholder.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use hudsucker::Body;
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};

use super::redact::Counter;
use crate::request_log::{Entry, EntryKind, RequestLog, Tripwire, path_only};

/// One request's entry, being filled.
#[derive(Debug)]
pub(super) struct Recorder {
    pub(super) entry: Entry,
    start: Instant,
    log: RequestLog,
    /// Redactions in this request's answer (headers, body, frames).
    pub(super) counter: Option<Arc<Counter>>,
    /// The request body's size, counted as it is sent (`None`: known
    /// from `Content-Length` or empty).
    pub(super) bytes_up: Option<Arc<AtomicU64>>,
}

impl Recorder {
    /// A request entry for `method host:port path` begun at `start`.
    pub(super) fn new(
        log: RequestLog,
        run: &str,
        start: Instant,
        method: &str,
        host: &str,
        port: u16,
        path: &str,
    ) -> Recorder {
        let mut entry = Entry::new(EntryKind::Request, host, port);
        entry.run = Some(run.to_string());
        entry.method = Some(method.to_string());
        entry.path = Some(path_only(path));
        Recorder {
            entry,
            start,
            log,
            counter: None,
            bytes_up: None,
        }
    }

    /// What the decisions found out.
    pub(super) fn note(&mut self, note: &super::shared::Note) {
        self.entry.provider = note.provider.clone();
        self.entry.connection = note.connection.clone();
        self.entry.injected = note.injected;
        self.entry.refused = note.refused.map(str::to_string);
        self.entry.tripwire = note.tripwire.as_ref().map(|(p, l)| Tripwire {
            provider: p.clone(),
            location: l.as_str().to_string(),
        });
        self.counter = note.counter.clone();
    }

    /// The answer's status, now (the latency is to the answer's head).
    pub(super) fn answered(&mut self, status: http::StatusCode) {
        self.entry.status = Some(status.as_u16());
        self.entry.latency_ms = Some(self.start.elapsed().as_secs_f64() * 1000.0);
    }

    /// Writes the entry: `down` bytes went to the client.
    pub(super) fn finish(mut self, down: u64) {
        self.entry.duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        self.entry.bytes_down = down;
        if let Some(up) = &self.bytes_up {
            self.entry.bytes_up = up.load(Ordering::Relaxed);
        }
        if let Some(c) = &self.counter {
            let mut total = 0u32;
            for (name, n) in [
                ("header", c.header.load(Ordering::Relaxed)),
                ("body", c.body.load(Ordering::Relaxed)),
                ("frame", c.frame.load(Ordering::Relaxed)),
            ] {
                if n > 0 {
                    total = total.saturating_add(n);
                    self.entry.redacted_in.push(name.to_string());
                }
            }
            self.entry.redactions = total;
        }
        self.log.record(self.entry);
    }

    /// `res` with its body counted; the entry is written when the body
    /// ends (or the client goes away).
    pub(super) fn attach(mut self, res: http::Response<Body>) -> http::Response<Body> {
        self.answered(res.status());
        if res.body().is_end_stream() {
            self.finish(0);
            return res;
        }
        res.map(|inner| {
            Body::from(http_body_util::combinators::BoxBody::new(Recorded {
                inner,
                bytes: 0,
                recorder: Some(self),
            }))
        })
    }
}

/// Counts a request body's bytes when its size is not in `Content-Length`
/// (a streamed upload); returns the counter.
pub(super) fn count_up(req: &mut http::Request<Body>) -> Option<Arc<AtomicU64>> {
    if req.body().is_end_stream() {
        return None;
    }
    if let Some(n) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Arc::new(AtomicU64::new(n)));
    }
    let n = Arc::new(AtomicU64::new(0));
    let inner = std::mem::replace(req.body_mut(), Body::empty());
    *req.body_mut() = Body::from(http_body_util::combinators::BoxBody::new(Counted {
        inner,
        n: n.clone(),
    }));
    Some(n)
}

/// A request body that adds its bytes to `n`.
struct Counted {
    inner: Body,
    n: Arc<AtomicU64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled
            && let Some(d) = f.data_ref()
        {
            self.n.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer body that writes its request's entry when it ends.
struct Recorded {
    inner: Body,
    bytes: u64,
    recorder: Option<Recorder>,
}

impl HttpBody for Recorded {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.done();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.done(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Recorded {
    fn done(&mut self) {
        if let Some(r) = self.recorder.take() {
            r.finish(self.bytes);
        }
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.done();
    }
}

/// The entry of a blind tunnel (or a TLS pass-through): host, port,
/// bytes each way and how long it was open.
pub(super) fn tunnel(
    log: &RequestLog,
    run: &str,
    host: &str,
    port: u16,
    start: Instant,
    (up, down): (u64, u64),
) {
    let mut e = Entry::new(EntryKind::Tunnel, host, port);
    e.run = Some(run.to_string());
    e.bytes_up = up;
    e.bytes_down = down;
    e.duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    log.record(e);
}
