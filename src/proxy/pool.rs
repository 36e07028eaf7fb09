//! One proxy thread's upstream connections ([`Clients`]): its own
//! HTTP/1.1 connections to HTTPS upstreams ([`H1Pool`]), the path of every
//! HTTPS request a child sends as HTTP/1.1 (most SDKs, and every
//! intercepted tunnel whose client chose `http/1.1`), upgrades excepted;
//! hyper-util's pooled clients for HTTP/2, plain HTTP and upgrades.
//!
//! hyper-util's pooled client did the HTTP/1.1 part before, and cost about 15% of an
//! intercepted request's samples on the proxy thread (see the README's
//! benchmark section): per request a `Checkout` and a `Connecting` future,
//! a SipHash of the pool key under a lock shared with its reaper, and a
//! task spawned to put the connection back once it is ready again. Here a
//! request takes a ready connection from a short list per authority (LIFO,
//! so the connection that just served the tunnel serves it again), sends on
//! it, and puts it back as soon as the answer's head is in; whether it is
//! ready again (its body read to the end) is asked at the next checkout.
//! The connection itself is driven by a task on the same thread, as with
//! the pooled client.
//!
//! - **Stale connections**: a reused connection that the upstream closed
//!   while idle fails before the request is written; the request is then
//!   sent once more on a new connection (hyper hands the unsent request
//!   back). A connection whose answer was abandoned mid-body is closed by
//!   hyper and dropped at the next checkout.
//! - **Bounds**: at most [`MAX_PER_AUTHORITY`] connections per authority
//!   (more are closed when their request is done); one idle longer than
//!   [`POOL_IDLE`] is closed when its
//!   authority is next used, or by [`H1Pool::reap`], which each listener's
//!   thread runs every [`REAP_EVERY`].
//! - **Trust, names, loop guard**: connections are opened by the same
//!   [`Connector`] as the pooled clients'.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, header};
use hudsucker::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::upstream::{Connector, POOL_IDLE, Upstream};

/// How often a listener's thread closes the connections idle too long.
pub const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The upstream connections of one proxy thread (one set per listener
/// and thread). A request goes out in the protocol the child used:
/// HTTP/1.1 over HTTP/1.1 keep-alive connections (most SDKs; an h1 request
/// costs the proxy less than an h2 stream, see the README's benchmarks),
/// HTTP/2 over HTTP/2 where the upstream offers it (one multiplexed
/// connection for many streams).
#[derive(Debug)]
pub struct Clients {
    /// HTTPS requests sent as HTTP/1.1, upgrades excepted (ALPN
    /// `http/1.1` only): the intercepted tunnels' path.
    pub https_h1: H1Pool,
    /// Plain-HTTP requests and upgrades (ALPN `http/1.1` only).
    pub h1: Client<Connector, Body>,
    /// ALPN `h2, http/1.1`.
    pub h2: Client<Connector, Body>,
}

impl Clients {
    /// One proxy thread's connections to the upstreams of `upstream`.
    pub fn new(upstream: &Upstream) -> Clients {
        let client = |h2: bool| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_max_idle_per_host(MAX_PER_AUTHORITY)
                .build(upstream.connector(h2))
        };
        Clients {
            https_h1: H1Pool::new(upstream.connector(false)),
            h1: client(false),
            h2: client(true),
        }
    }
}

/// Connections kept per authority (as hyper-util's pool was set).
pub const MAX_PER_AUTHORITY: usize = 64;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be sent upstream.
#[derive(Debug)]
pub enum Failed {
    /// No connection: the dial, the loop guard or the TLS handshake.
    Connect(BoxError),
    /// The connection failed while sending or waiting for the answer.
    Http(hyper::Error),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Connect(e) => write!(f, "cannot connect: {e}"),
            Failed::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failed::Connect(e) => Some(&**e),
            Failed::Http(e) => Some(e),
        }
    }
}

struct Kept {
    sender: SendRequest<Body>,
    since: Instant,
}

/// One proxy thread's HTTP/1.1 upstream connections for HTTPS requests.
pub struct H1Pool {
    connector: Connector,
    kept: Mutex<HashMap<Authority, Vec<Kept>>>,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool").finish_non_exhaustive()
    }
}

impl H1Pool {
    /// A pool opening its connections with `connector` (ALPN `http/1.1`).
    pub fn new(connector: Connector) -> H1Pool {
        H1Pool {
            connector,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `req` (an absolute `https://` URI; `Host` is written from it)
    /// on a kept connection to its authority, or a new one.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, Failed> {
        let Some(authority) = req.uri().authority().cloned() else {
            return Err(Failed::Connect("the request names no host".into()));
        };
        to_origin_form(&mut req, &authority);
        let (mut sender, reused) = match self.checkout(&authority) {
            Some(s) => (s, true),
            None => (self.dial(&authority).await?, false),
        };
        let res = match sender.try_send_request(req).await {
            Ok(res) => res,
            Err(mut e) => match e.take_message() {
                // Not written: the kept connection had been closed by the
                // upstream. Once more, on a new connection.
                Some(req) if reused => {
                    tracing::debug!(%authority, error = %e.error(), "a kept upstream connection was closed; sending on a new one");
                    sender = self.dial(&authority).await?;
                    sender.send_request(req).await.map_err(Failed::Http)?
                }
                _ => return Err(Failed::Http(e.into_error())),
            },
        };
        self.put_back(authority, sender);
        Ok(res)
    }

    /// A ready connection to `authority`, the one put back last first.
    /// Closed ones, and ones idle too long, are dropped on the way.
    fn checkout(&self, authority: &Authority) -> Option<SendRequest<Body>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let list = kept.get_mut(authority)?;
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            let k = &list[i];
            if k.sender.is_closed() {
                list.swap_remove(i);
            } else if k.sender.is_ready() {
                if k.since.elapsed() > POOL_IDLE {
                    list.swap_remove(i);
                    continue;
                }
                return Some(list.swap_remove(i).sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request to `authority` (ready again once
    /// the answer's body has been read to the end).
    fn put_back(&self, authority: Authority, sender: SendRequest<Body>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let list = kept.entry(authority).or_default();
        if list.len() >= MAX_PER_AUTHORITY {
            list.retain(|k| !k.sender.is_closed());
            if list.len() >= MAX_PER_AUTHORITY {
                // Dropped: the connection closes once its answer is read.
                return;
            }
        }
        list.push(Kept {
            sender,
            since: Instant::now(),
        });
    }

    /// Closes the connections idle longer than `max_idle` (the listener's
    /// thread passes [`POOL_IDLE`]) and forgets closed ones, for every
    /// authority (the ones never used again included).
    pub fn reap(&self, max_idle: std::time::Duration) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, list| {
            list.retain(|k| {
                let expired = k.sender.is_ready() && k.since.elapsed() > max_idle;
                !(k.sender.is_closed() || expired)
            });
            !list.is_empty()
        });
    }

    /// How many connections are kept (busy or idle), for tests.
    pub fn kept(&self) -> usize {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.values().map(Vec::len).sum()
    }

    /// Opens a connection to `authority` and drives it on this thread.
    async fn dial(&self, authority: &Authority) -> Result<SendRequest<Body>, Failed> {
        use tower_service::Service;
        let uri = Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| Failed::Connect(e.into()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(Failed::Connect)?;
        let io = connector.call(uri).await.map_err(Failed::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| Failed::Connect(e.into()))?;
        let host = authority.host().to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%host, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// What hyper-util's client did before sending on an HTTP/1.1 connection:
/// the URI in origin form (`/path?query`), and `Host` from the authority
/// (its port only when not 443).
fn to_origin_form(req: &mut Request<Body>, authority: &Authority) {
    if !req.headers().contains_key(header::HOST) {
        let host = match authority.port_u16() {
            Some(p) if p != 443 => format!("{}:{p}", authority.host()),
            _ => authority.host().to_string(),
        };
        if let Ok(v) = header::HeaderValue::from_str(&host) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_out_in_origin_form_with_the_host_of_their_authority() {
        let cases = [
            (
                "https://api.acme.test/v1/x?a=b",
                "api.acme.test",
                "/v1/x?a=b",
            ),
            ("https://api.acme.test:443", "api.acme.test", "/"),
            ("https://api.acme.test:8443/p", "api.acme.test:8443", "/p"),
            ("https://[::1]:9000/p", "[::1]:9000", "/p"),
        ];
        for (uri, host, path) in cases {
            let mut req = Request::get(uri).body(Body::empty()).unwrap();
            let authority = req.uri().authority().cloned().unwrap();
            to_origin_form(&mut req, &authority);
            assert_eq!(req.uri().to_string(), path, "{uri}");
            assert_eq!(req.headers()[header::HOST], host, "{uri}");
        }
    }
}
