//! The per-request decisions, as a hudsucker `HttpHandler`.
//!
//! How a request travels (and where it can stop):
//! 1. **Proxy authentication** on every request that opens something (a
//!    CONNECT, or an absolute-form request): the per-run token in
//!    `Proxy-Authorization`, compared in constant time; otherwise 407.
//! 2. **CONNECT** decides the tunnel once: a host some connected provider
//!    claims (and the CA may sign for) is intercepted (`serve_tunnel`: TLS
//!    terminated here with a leaf for that host); any other host is
//!    dialled and tunnelled blind (no TLS termination: the client sees the
//!    server's own certificate; an unreachable one gets 502/504), or refused
//!    with 403 under `--deny-unknown`. Targets that loop back into authsome
//!    (the daemon, the system-wide proxy, any run's listener) are refused:
//!    names are resolved and every address checked (`Handler::dial`, and
//!    the upstream connector's guard for requests).
//! 3. **Inside an intercepted tunnel**, every request must name the tunnel's
//!    authority (HTTP/1 `Host` and absolute-form target, HTTP/2 `:authority`
//!    and `host`); anything else is answered 421 and never forwarded. Why:
//!    the request would otherwise be sent, with credentials, to the
//!    tunnel's host while naming another (or, over HTTP/2, to the other).
//! 4. **Route + credential + inject**: the routing table picks the provider
//!    by host, port and path; the credential cache gives the header value;
//!    [`inject`] replaces whatever the client sent. A provider host whose
//!    credential cannot be resolved gets a JSON error: nothing goes upstream.
//! 5. Plain `http://` to a provider host is refused: credentials only travel
//!    over TLS.
//! 6. **Sending**: every request that is not a CONNECT is sent from here
//!    (`Handler::send`) through this thread's pools, in the child's
//!    protocol; upgrades (WebSocket) are relayed after the upstream's 101.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use http::uri::Scheme;
use http::{Method, Request, Response, StatusCode, header};
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};

use super::error::{ProxyError, Source};
use super::inject::{inject, strip_hop_by_hop};
use super::tls::LeafAuthority;
use super::upstream::{Clients, Upstream};
use crate::credentials::live::Live;
use crate::secret::Secret;

/// Counters, for `/api/proxy/runs` and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests that got a credential.
    pub injected: AtomicU64,
    /// Requests forwarded without one (non-provider hosts, plain HTTP).
    pub passed: AtomicU64,
    /// Blind tunnels opened.
    pub tunnels: AtomicU64,
    /// Requests and tunnels refused.
    pub refused: AtomicU64,
    /// The latest refusals, numbered, for `authsome run` to show on its
    /// stderr (clients rarely show a proxy's error body). Bounded.
    pub recent: std::sync::Mutex<std::collections::VecDeque<(u64, String)>>,
}

/// How many refusals a listener keeps for `run` to read.
const RECENT_REFUSALS: usize = 64;

impl Stats {
    /// Records a refusal (one line, no secret: host, code, message).
    pub fn note_refusal(&self, line: String) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() == RECENT_REFUSALS {
            r.pop_front();
        }
        r.push_back((n, line));
    }

    /// Refusals numbered after `after`, and the number of the last one.
    pub fn refusals_after(&self, after: u64) -> (Vec<(u64, String)>, u64) {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let last = self.refused.load(Ordering::Relaxed);
        (
            r.iter().filter(|(n, _)| *n > after).cloned().collect(),
            last,
        )
    }
}

/// What every request of one proxy listener shares.
pub struct Shared {
    /// Routing table and credential cache.
    pub live: Arc<Live>,
    /// Mints leaves; knows which hosts the CA may sign for.
    pub authority: Arc<LeafAuthority>,
    /// Upstream trust and resolver overrides.
    pub upstream: Upstream,
    /// The proxy token (`None`: no authentication, only for tests of the engine).
    pub token: Option<Secret<String>>,
    /// The routes when the run started. Their hosts stay provider hosts for
    /// the whole run: if a credential disappears mid-run (logout, revoke),
    /// requests there fail closed instead of going out unauthenticated.
    pub pinned: Arc<crate::routing::RouteTable>,
    /// Connection chosen per provider (`--connection PROVIDER=NAME`).
    pub connections: HashMap<String, String>,
    /// Refuse hosts no provider claims.
    pub deny_unknown: bool,
    /// `Some(ports)` for a sandboxed run: no target on this host's loopback,
    /// link-local or unspecified addresses except these ports (a confined
    /// child reaches no local service through the proxy either, unless
    /// `--allow-localhost` names it); names in `AUTHSOME_RESOLVE` are the
    /// user's own mapping and stay reachable.
    pub local_ports: Option<Vec<u16>>,
    /// Counters.
    pub stats: Stats,
    /// Set when the run ends: tunnels still open (hudsucker does not track
    /// them) refuse every further request instead of injecting.
    pub ended: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("deny_unknown", &self.deny_unknown)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The intercepted tunnel a request arrived in (set on the handler clone
/// that serves the tunnel, which is cloned for every request inside).
/// Blind tunnels never reach the request path.
#[derive(Debug, Clone)]
struct Tunnel {
    host: String,
    port: u16,
    /// The CONNECT target as the client wrote it (what requests inside are
    /// sent to).
    authority: http::uri::Authority,
}

/// The hudsucker handler.
#[derive(Debug, Clone)]
pub struct Handler {
    shared: Arc<Shared>,
    /// This thread's upstream pools.
    clients: Arc<Clients>,
    tunnel: Option<Arc<Tunnel>>,
    /// The host the current request goes to, for error messages.
    target: Option<String>,
}

impl Handler {
    /// A handler over `shared`, sending through `clients`.
    pub fn new(shared: Arc<Shared>, clients: Clients) -> Handler {
        Handler {
            shared,
            clients: Arc::new(clients),
            tunnel: None,
            target: None,
        }
    }

    /// Sends a decided request upstream in the protocol the child used.
    /// (hudsucker would send every request through one client, which
    /// offers HTTP/2 to every upstream.)
    async fn send(&self, mut req: Request<Body>) -> Response<Body> {
        let client = self.clients.for_version(req.version());
        // What hudsucker does before sending: hyper writes Host from the
        // URI, HTTP/1.1 has one Cookie line, and the pooled connection's
        // protocol (ALPN) decides the wire version.
        req.headers_mut().remove(header::HOST);
        let cookies: Vec<&[u8]> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if cookies.len() > 1 {
            let joined = cookies.join(&b"; "[..]);
            if let Ok(v) = header::HeaderValue::from_bytes(&joined) {
                req.headers_mut().insert(header::COOKIE, v);
            }
        }
        *req.version_mut() = http::Version::HTTP_11;
        // An upgrade handshake (WebSocket): once the upstream answers 101,
        // both connections are handed over and relayed byte for byte.
        // (strip_hop_by_hop leaves `Connection` only on upgrade handshakes.)
        let downstream = req
            .headers()
            .contains_key(header::CONNECTION)
            .then(|| hyper::upgrade::on(&mut req));
        match client.request(req).await {
            Ok(mut res) => {
                if res.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(downstream) = downstream
                {
                    let upstream = hyper::upgrade::on(&mut res);
                    let host = self.target.clone().unwrap_or_default();
                    tokio::spawn(async move {
                        match tokio::try_join!(downstream, upstream) {
                            Ok((down, up)) => {
                                let mut down = hyper_util::rt::TokioIo::new(down);
                                let mut up = hyper_util::rt::TokioIo::new(up);
                                tokio::io::copy_bidirectional(&mut down, &mut up).await.ok();
                            }
                            Err(e) => tracing::debug!(%host, error = %e, "upgrade not completed"),
                        }
                    });
                }
                res.map(Body::from)
            }
            Err(e) => {
                upstream_error(&e, self.target.as_deref().unwrap_or("the upstream")).into_response()
            }
        }
    }
}

fn refuse(e: ProxyError, stats: &Stats) -> Response<Body> {
    stats.note_refusal(format!(
        "refused {} ({}): {}",
        e.host.as_deref().unwrap_or("a request"),
        e.code,
        e.message.trim_start_matches("authsome: ")
    ));
    e.into_response()
}

impl HttpHandler for Handler {
    async fn handle_request(
        &mut self,
        _ctx: &HttpContext,
        req: Request<Body>,
    ) -> RequestOrResponse {
        RequestOrResponse::Response(self.answer(req).await)
    }

    async fn should_intercept_connect(&mut self, _ctx: &HttpContext, _req: &Request<Body>) -> bool {
        // Every CONNECT is answered by `decide` (intercepted tunnels are
        // served by `serve_tunnel`); hudsucker never opens one itself.
        false
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        err: hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        upstream_error(&err, self.target.as_deref().unwrap_or("the upstream")).into_response()
    }
}

impl Handler {
    /// Decides and, for anything but a refusal or a CONNECT (answered by
    /// `decide`), sends. hudsucker's own client and CONNECT handling are
    /// never used: it would dial names itself, past the loop guard.
    ///
    /// Boxed: a request inside an intercepted tunnel is answered here too,
    /// from the task the CONNECT spawned (a cycle of futures otherwise).
    fn answer(
        &mut self,
        req: Request<Body>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + '_>> {
        Box::pin(async move {
            match self.decide(req).await {
                Ok(RequestOrResponse::Request(req)) if req.method() == Method::CONNECT => {
                    refuse(misdirected_connect(), &self.shared.stats)
                }
                Ok(RequestOrResponse::Request(req)) => self.send(req).await,
                Ok(RequestOrResponse::Response(res)) => res,
                Err(e) => refuse(e, &self.shared.stats),
            }
        })
    }

    /// Serves an intercepted tunnel once the CONNECT was answered: reads the
    /// TLS client hello, terminates TLS with a leaf for the tunnel's host
    /// and serves the requests inside (HTTP/1.1 or HTTP/2, upgrades
    /// included). Not TLS: served as plain HTTP (where a provider host gets
    /// 403 `authsome_plaintext_refused`). A client hello for another name
    /// (SNI) is passed through blind to the CONNECT target: no certificate
    /// of ours for that name, no decryption, no credential.
    async fn serve_tunnel(self, client: hyper::upgrade::OnUpgrade) {
        let Some(t) = self.tunnel.clone() else { return };
        let io = match client.await {
            Ok(u) => hyper_util::rt::TokioIo::new(u),
            Err(e) => {
                tracing::debug!(host = %t.host, error = %e, "tunnel not established");
                return;
            }
        };
        let hello =
            tokio::time::timeout(super::upstream::CONNECT_TIMEOUT * 3, read_client_hello(io)).await;
        let (accepted, seen, io) = match hello {
            Ok(Ok(Hello::Tls(accepted, seen, io))) => (accepted, seen, io),
            Ok(Ok(Hello::Plain(seen, io))) => {
                let io = super::prefixed::Prefixed::new(seen, io);
                self.serve_requests(hyper_util::rt::TokioIo::new(io), Scheme::HTTP)
                    .await;
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(host = %t.host, error = %e, "no TLS client hello in the tunnel");
                return;
            }
            Err(_elapsed) => return,
        };
        let sni_ok = match accepted.client_hello().server_name() {
            None => true,
            Some(sni) => normalize_host(sni).is_some_and(|h| h == t.host),
        };
        if !sni_ok {
            tracing::info!(tunnel = %t.host, "SNI differs from the CONNECT target; not intercepting");
            self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            let mut upstream = match self.dial(&t.host, t.port).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(host = %t.host, error = %e.message, "blind pass-through not opened");
                    return;
                }
            };
            let mut io = io;
            if tokio::io::AsyncWriteExt::write_all(&mut upstream, &seen)
                .await
                .is_ok()
            {
                tokio::io::copy_bidirectional(&mut io, &mut upstream)
                    .await
                    .ok();
            }
            return;
        }
        let Some(config) = self.shared.authority.config_for(&t.host) else {
            return;
        };
        match tokio_rustls::StartHandshake::from_parts(*accepted, io)
            .into_stream(config)
            .await
        {
            Ok(tls) => {
                self.serve_requests(hyper_util::rt::TokioIo::new(tls), Scheme::HTTPS)
                    .await;
            }
            Err(e) => {
                tracing::debug!(host = %t.host, error = %e, "TLS handshake in the tunnel failed")
            }
        }
    }

    /// Serves the requests of one intercepted tunnel's connection.
    async fn serve_requests<I>(self, io: I, scheme: Scheme)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let handler = self;
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut h = handler.clone();
            let scheme = scheme.clone();
            async move {
                let res = match h.bind_to_tunnel(req.map(Body::from), scheme) {
                    Ok(req) => h.answer(req).await,
                    Err(e) => refuse(e, &h.shared.stats),
                };
                Ok::<_, std::convert::Infallible>(res)
            }
        });
        if let Err(e) = super::server_builder()
            .serve_connection_with_upgrades(io, service)
            .await
        {
            tracing::debug!(error = %e, "tunnel connection ended");
        }
    }

    /// Gives a request inside an intercepted tunnel the tunnel's scheme and
    /// authority. A request that names an authority itself (HTTP/1
    /// absolute-form, HTTP/2 `:authority`) must name the tunnel's: host
    /// compared after normalisation, userinfo ignored, port defaulted by
    /// the scheme; anything else is 421 and never forwarded.
    fn bind_to_tunnel(
        &self,
        req: Request<Body>,
        scheme: Scheme,
    ) -> Result<Request<Body>, ProxyError> {
        let Some(t) = self.tunnel.as_ref() else {
            return Err(misdirected_connect());
        };
        if let Some(a) = req.uri().authority() {
            let port = a
                .port_u16()
                .unwrap_or(if req.uri().scheme() == Some(&Scheme::HTTP) {
                    80
                } else {
                    443
                });
            let same = req.uri().scheme() == Some(&scheme)
                && normalize_host(a.host()).is_some_and(|h| h == t.host)
                && port == t.port;
            if !same {
                return Err(misdirected(&t.host, t.port));
            }
        } else if req.version() == http::Version::HTTP_2 {
            return Err(misdirected(&t.host, t.port));
        }
        if req.uri().authority() == Some(&t.authority) && req.uri().path_and_query().is_some() {
            // HTTP/2 naming the tunnel as the CONNECT did: nothing to rewrite.
            return Ok(req);
        }
        let (mut parts, body) = req.into_parts();
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(scheme);
        uri.authority = Some(t.authority.clone());
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = http::Uri::from_parts(uri).map_err(|_e| misdirected(&t.host, t.port))?;
        Ok(Request::from_parts(parts, body))
    }
}

// === impl Handler: decisions ===

impl Handler {
    async fn decide(&mut self, req: Request<Body>) -> Result<RequestOrResponse, ProxyError> {
        if self.shared.ended.load(Ordering::Acquire) {
            return Err(ProxyError::new(
                StatusCode::FORBIDDEN,
                "authsome_run_ended",
                Source::Downstream,
                "this proxy's run has ended",
            )
            .hint("start the program again with `authsome run -- …`"));
        }
        match self.tunnel.clone() {
            None => {
                self.authenticate(&req)?;
                if req.method() == Method::CONNECT {
                    self.connect(req).await
                } else {
                    self.absolute(req).await
                }
            }
            Some(t) => self.in_tunnel(&t, req).await,
        }
    }

    /// Checks the per-run token.
    fn authenticate(&self, req: &Request<Body>) -> Result<(), ProxyError> {
        let Some(token) = &self.shared.token else {
            return Ok(());
        };
        let ok = req
            .headers()
            .get_all(header::PROXY_AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| basic_matches(v, token.expose()));
        if ok {
            Ok(())
        } else {
            Err(ProxyError::new(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "authsome_proxy_auth_required",
                Source::Downstream,
                "this proxy needs its per-run token",
            )
            .hint(
                "start the program with `authsome run -- …`, which sets HTTPS_PROXY with the token",
            ))
        }
    }

    /// A CONNECT: decide intercept, blind tunnel or refusal.
    async fn connect(&mut self, mut req: Request<Body>) -> Result<RequestOrResponse, ProxyError> {
        let (host, port) = req
            .uri()
            .authority()
            .and_then(|a| Some((normalize_host(a.host())?, a.port_u16()?)))
            .ok_or_else(|| {
                ProxyError::new(
                    StatusCode::BAD_REQUEST,
                    "authsome_bad_connect",
                    Source::Downstream,
                    "CONNECT needs a target of the form host:port",
                )
            })?;
        self.check_loop(&host, port)?;
        if self.claims(&host, port) {
            if !self.shared.authority.ca().permits(&host) {
                return Err(ProxyError::new(
                    StatusCode::FORBIDDEN,
                    "authsome_host_not_in_run",
                    Source::Internal,
                    format!("{host} belongs to a provider this proxy's certificate authority does not cover (it was added later)"),
                )
                .host(&host)
                .hint("under `authsome run`, start the program again; in system-wide mode, `authsome doctor` says how to renew the CA"));
            }
            let authority = req
                .uri()
                .authority()
                .cloned()
                .ok_or_else(misdirected_connect)?;
            let mut tunnel = self.clone();
            tunnel.tunnel = Some(Arc::new(Tunnel {
                host,
                port,
                authority,
            }));
            // hyper hands the client's connection over once the 200 is written.
            let client = hyper::upgrade::on(&mut req);
            tokio::spawn(tunnel.serve_tunnel(client));
            return Ok(RequestOrResponse::Response(Response::new(Body::empty())));
        }
        if self.shared.deny_unknown {
            return Err(deny_unknown(&host));
        }
        self.blind_tunnel(req, host, port).await
    }

    /// Connects to `host:port` for a blind tunnel: resolves the name (the
    /// `AUTHSOME_RESOLVE` override, else the system resolver), refuses when
    /// any address is one of authsome's own listeners, and dials exactly
    /// the addresses that were checked (the connected socket is checked
    /// again, for listeners on this host's other addresses).
    async fn dial(&self, host: &str, port: u16) -> Result<tokio::net::TcpStream, ProxyError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            ProxyError::new(
                StatusCode::BAD_GATEWAY,
                "authsome_upstream_unreachable",
                Source::Upstream,
                format!("cannot connect to {host}:{port}: {e}"),
            )
            .host(host)
        };
        let own = &self.shared.upstream.own;
        let attempt = async {
            let addrs: Vec<SocketAddr> =
                match literal_ip(host).or_else(|| self.shared.upstream.override_for(host)) {
                    Some(ip) => vec![SocketAddr::new(ip, port)],
                    None => tokio::net::lookup_host((host, port))
                        .await
                        .map_err(|e| unreachable(&e))?
                        .collect(),
                };
            if addrs.iter().any(|a| own.is_own(*a)) {
                return Err(loop_refused(host, port));
            }
            self.check_local(host, &addrs)?;
            let mut last: Option<std::io::Error> = None;
            for a in &addrs {
                match tokio::net::TcpStream::connect(a).await {
                    Ok(s) => {
                        super::upstream::check_connected(own, &s)
                            .map_err(|_e| loop_refused(host, port))?;
                        return Ok(s);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(match last {
                Some(e) => unreachable(&e),
                None => unreachable(&"the name has no address"),
            })
        };
        match tokio::time::timeout(super::upstream::CONNECT_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_elapsed) => Err(ProxyError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "authsome_upstream_timeout",
                Source::Upstream,
                format!("{host}:{port} did not accept a connection in time"),
            )
            .host(host)),
        }
    }

    /// A tunnel that is not intercepted: the target is dialled first (so an
    /// unreachable one gets a 502/504 the client can read, not a 200 and a
    /// closed connection), then the CONNECT is answered and the bytes are
    /// copied both ways. Nothing is read or decrypted, and nothing waits
    /// for the client to speak first (SMTP-style servers work).
    async fn blind_tunnel(
        &mut self,
        mut req: Request<Body>,
        host: String,
        port: u16,
    ) -> Result<RequestOrResponse, ProxyError> {
        let mut upstream = self.dial(&host, port).await?;
        upstream.set_nodelay(true).ok();
        self.shared.stats.tunnels.fetch_add(1, Ordering::Relaxed);
        // hyper hands the client's connection over once the 200 is written.
        let client = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match client.await {
                Ok(client) => {
                    let mut client = hyper_util::rt::TokioIo::new(client);
                    tokio::io::copy_bidirectional(&mut client, &mut upstream)
                        .await
                        .ok();
                }
                Err(e) => tracing::debug!(%host, error = %e, "tunnel not established"),
            }
        });
        Ok(RequestOrResponse::Response(Response::new(Body::empty())))
    }

    /// An absolute-form request on the proxy connection itself: plain
    /// `http://…`, or `https://…` from clients (axios) that send the whole
    /// request to the proxy instead of opening a tunnel. The upstream leg
    /// of the latter is TLS, so it may carry a credential.
    async fn absolute(&mut self, mut req: Request<Body>) -> Result<RequestOrResponse, ProxyError> {
        let Some(scheme) = req.uri().scheme().cloned() else {
            return Err(ProxyError::new(
                StatusCode::BAD_REQUEST,
                "authsome_not_a_proxy_request",
                Source::Downstream,
                "this is a proxy: send absolute-form requests or CONNECT",
            ));
        };
        let https = scheme == Scheme::HTTPS;
        if !https && scheme != Scheme::HTTP {
            return Err(ProxyError::new(
                StatusCode::BAD_REQUEST,
                "authsome_bad_scheme",
                Source::Downstream,
                format!("cannot proxy {scheme}:// requests"),
            ));
        }
        let (host, port) = req
            .uri()
            .authority()
            .and_then(|a| {
                let host = normalize_host(a.host())?;
                Some((host, a.port_u16().unwrap_or(if https { 443 } else { 80 })))
            })
            .ok_or_else(|| {
                ProxyError::new(
                    StatusCode::BAD_REQUEST,
                    "authsome_bad_target",
                    Source::Downstream,
                    "the request target has no valid host",
                )
            })?;
        self.check_loop(&host, port)?;
        check_host_header(&req, &host, port, https)?;
        self.forward(&mut req, &host, port, https).await?;
        Ok(req.into())
    }

    /// A request inside a CONNECT tunnel.
    async fn in_tunnel(
        &mut self,
        t: &Tunnel,
        mut req: Request<Body>,
    ) -> Result<RequestOrResponse, ProxyError> {
        if req.method() == Method::CONNECT {
            return Err(misdirected(&t.host, t.port));
        }
        let https = req.uri().scheme() == Some(&Scheme::HTTPS);
        let authority = req.uri().authority().and_then(|a| {
            let h = normalize_host(a.host())?;
            Some((h, a.port_u16().unwrap_or(if https { 443 } else { 80 })))
        });
        let same = |h: &str, p: u16| h == t.host && p == t.port;
        match authority {
            Some((h, p)) if same(&h, p) => {}
            _ => return Err(misdirected(&t.host, t.port)),
        }
        check_host_header(&req, &t.host, t.port, https)?;
        self.forward(&mut req, &t.host, t.port, https)
            .await
            .map(|()| req.into())
    }

    /// Route, credential, inject; or pass a non-provider request through.
    async fn forward(
        &mut self,
        req: &mut Request<Body>,
        host: &str,
        port: u16,
        https: bool,
    ) -> Result<(), ProxyError> {
        self.target = Some(host.to_string());
        let claimed = self.claims(host, port);
        if !claimed && self.shared.deny_unknown {
            return Err(deny_unknown(host));
        }
        if claimed && !https {
            return Err(ProxyError::new(
                StatusCode::FORBIDDEN,
                "authsome_plaintext_refused",
                Source::Downstream,
                format!("refusing to send credentials over plain HTTP to {host}"),
            )
            .host(host)
            .hint(if port == 80 {
                format!("use https://{host}/")
            } else {
                format!("use https:// (the provider is served on {host}:{port} over TLS)")
            }));
        }
        if claimed && req.uri().path().contains('%') {
            // `/v1.0/me/driv%65` is `/v1.0/me/drive` to the server: route
            // and forward the path as the server will read it.
            normalise_path(req);
        }
        let path = req.uri().path();
        if claimed
            && (ambiguous_path(path) || (path.contains("//") && self.path_scoped(host, port)))
        {
            return Err(ProxyError::new(
                StatusCode::BAD_REQUEST,
                "authsome_ambiguous_path",
                Source::Downstream,
                format!("the path has dot segments, empty segments or encoded separators; {host} would read it differently than the route table"),
            )
            .host(host)
            .hint("send the normalised path"));
        }
        let provider = if claimed {
            self.shared
                .live
                .routes()
                .resolve(host, port, path)
                .or_else(|| self.shared.pinned.resolve(host, port, path))
                .map(|r| r.provider.clone())
        } else {
            None
        };
        let Some(provider) = provider else {
            if !claimed && self.shared.local_ports.is_some() {
                // Plain HTTP to a local service from a confined run. (The
                // connector resolves the name again: a name that changes
                // its answer in between is the one case not covered here;
                // CONNECT tunnels dial exactly the checked address.)
                let addrs: Vec<SocketAddr> =
                    match literal_ip(host).or_else(|| self.shared.upstream.override_for(host)) {
                        Some(ip) => vec![SocketAddr::new(ip, port)],
                        None => tokio::net::lookup_host((host, port))
                            .await
                            .map(Iterator::collect)
                            .unwrap_or_default(),
                    };
                self.check_local(host, &addrs)?;
            }
            // Not ours (or a path no rule claims): forwarded as sent, minus
            // the proxy's own headers.
            strip_hop_by_hop(req);
            self.shared.stats.passed.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let connection = self
            .shared
            .connections
            .get(provider.as_ref())
            .map(String::as_str);
        let cred = self
            .shared
            .live
            .credential(&provider, connection)
            .await
            .map_err(|e| {
                let mut err = ProxyError::new(
                    StatusCode::UNAUTHORIZED,
                    if matches!(*e, crate::Error::ConnectionSuspended { .. }) {
                        "authsome_connection_suspended"
                    } else {
                        "authsome_credential_unavailable"
                    },
                    Source::Internal,
                    format!("no usable credential for {provider}: {e}"),
                )
                .provider(&provider)
                .host(host);
                err.hint = Some(
                    e.hint()
                        .unwrap_or_else(|| format!("authsome login {provider}")),
                );
                err
            })?;
        inject(req, &cred).map_err(|e| {
            ProxyError::new(
                StatusCode::BAD_GATEWAY,
                "authsome_invalid_credential_format",
                Source::Internal,
                format!("the credential of {provider} cannot be sent: {e}"),
            )
            .provider(&provider)
            .hint(format!("authsome login {provider} --force"))
        })?;
        tracing::debug!(%provider, connection = %cred.connection, host, path = req.uri().path(), "credential injected");
        self.shared.stats.injected.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A sandboxed run's rule for local destinations (see
    /// [`Shared::local_ports`]).
    fn check_local(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), ProxyError> {
        let Some(allowed) = &self.shared.local_ports else {
            return Ok(());
        };
        if let Some(a) = addrs.iter().find(|a| self.shared.upstream.own.is_own(**a)) {
            return Err(loop_refused(host, a.port()));
        }
        if literal_ip(host).is_none() && self.shared.upstream.override_for(host).is_some() {
            return Ok(());
        }
        let local = |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_unspecified() || v4.is_link_local()
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6
                        .to_ipv4_mapped()
                        .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
            }
        };
        match addrs.iter().find(|a| local(a.ip()) && !allowed.contains(&a.port())) {
            None => Ok(()),
            Some(a) => Err(ProxyError::new(
                StatusCode::FORBIDDEN,
                "authsome_local_refused",
                Source::Downstream,
                format!(
                    "{host}:{} is a service on this machine, which a sandboxed program does not reach",
                    a.port()
                ),
            )
            .host(host)
            .hint(format!(
                "`authsome run --allow-localhost {}` lets the program reach that port",
                a.port()
            ))),
        }
    }

    /// True when some rule for `host:port` is scoped to a path (the key
    /// depends on the path there).
    fn path_scoped(&self, host: &str, port: u16) -> bool {
        self.shared.live.routes().path_scoped(host, port)
            || self.shared.pinned.path_scoped(host, port)
    }

    /// True when a provider claims `host:port`, now or when the run started.
    fn claims(&self, host: &str, port: u16) -> bool {
        self.shared.live.routes().claims(host, port) || self.shared.pinned.claims(host, port)
    }

    /// Refuses targets that are authsome itself, as far as the name alone
    /// tells (literals, `AUTHSOME_RESOLVE`, `localhost`): a clear 403 before
    /// anything is dialled. Names are resolved and checked where they are
    /// dialled ([`Handler::dial`], the upstream connector's guard).
    fn check_loop(&self, host: &str, port: u16) -> Result<(), ProxyError> {
        let own = &self.shared.upstream.own;
        let refused = match literal_ip(host).or_else(|| self.shared.upstream.override_for(host)) {
            Some(ip) => own.is_own(SocketAddr::new(ip, port)),
            None => (host == "localhost" || host.ends_with(".localhost")) && own.has_port(port),
        };
        if refused {
            return Err(loop_refused(host, port));
        }
        Ok(())
    }
}

#[cfg(test)]
mod certificate_words {
    #[test]
    fn certificate_problems_are_said_in_words_with_a_fix() {
        let (w, h) = super::certificate_problem(
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
            "api.acme.test",
        );
        assert!(w.contains("CA:TRUE") && h.contains("CA:FALSE"), "{w} / {h}");
        assert!(!w.contains("Other("));
        let (w, h) =
            super::certificate_problem("invalid peer certificate: UnknownIssuer", "x.test");
        assert!(w.contains("does not trust") && h.contains("AUTHSOME_UPSTREAM_CA_FILE"));
        let (w, h) = super::certificate_problem(
            "invalid peer certificate: NotValidForNameContext { expected: DnsName(\"x.test\"), presented: [] }",
            "x.test",
        );
        assert!(
            w.contains("x.test") && h.contains("subjectAltName"),
            "{w} / {h}"
        );
        let (w, _) =
            super::certificate_problem("invalid peer certificate: ExpiredContext { time: 1 }", "x");
        assert!(w.contains("expired"));
    }
}

fn loop_refused(host: &str, port: u16) -> ProxyError {
    ProxyError::new(
        StatusCode::FORBIDDEN,
        "authsome_loop_refused",
        Source::Downstream,
        format!("{host}:{port} is authsome itself; the proxy does not forward there"),
    )
}

fn misdirected_connect() -> ProxyError {
    ProxyError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "authsome_misdirected_request",
        Source::Downstream,
        "a CONNECT is only answered on the proxy connection itself",
    )
}

/// The first bytes of a tunnel: a complete TLS client hello (and the bytes
/// it took), or the start of something else.
enum Hello<I> {
    Tls(Box<rustls::server::Accepted>, Vec<u8>, I),
    Plain(Vec<u8>, I),
}

/// Reads until a whole TLS client hello is in (at most 64 KiB), or until
/// the first bytes show that the client does not speak TLS.
async fn read_client_hello<I: tokio::io::AsyncRead + Unpin>(
    mut io: I,
) -> std::io::Result<Hello<I>> {
    use tokio::io::AsyncReadExt;
    let mut acceptor = rustls::server::Acceptor::default();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.first() != Some(&0x16) {
            return Ok(Hello::Plain(seen, io));
        }
        if seen.len() > 64 * 1024 {
            return Err(std::io::Error::other("the TLS client hello is too large"));
        }
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            if acceptor.read_tls(&mut rd)? == 0 {
                return Err(std::io::Error::other("the TLS client hello is too large"));
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok(Hello::Tls(Box::new(accepted), seen, io)),
            Ok(None) => {}
            Err((e, _alert)) => return Err(std::io::Error::other(e)),
        }
    }
}

/// The address a host literal names, including the legacy IPv4 forms the
/// system resolver accepts (`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`).
fn literal_ip(host: &str) -> Option<IpAddr> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = h.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        if let Some(x) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(x, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let nums: Vec<u64> = parts.iter().map(|p| num(p)).collect::<Option<_>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    let mut v: u64 = 0;
    for n in head {
        v = (v << 8) | n;
    }
    let shift = 8 * (4 - head.len() as u32);
    if *last >= (1u64 << shift) {
        return None;
    }
    v = (v << shift) | last;
    Some(IpAddr::V4(std::net::Ipv4Addr::from(v as u32)))
}

fn deny_unknown(host: &str) -> ProxyError {
    ProxyError::new(
        StatusCode::FORBIDDEN,
        "authsome_host_denied",
        Source::Downstream,
        format!("{host} belongs to no connected provider and unknown hosts are denied"),
    )
    .host(host)
    .hint("run without --deny-unknown, or connect a provider for this host")
}

fn misdirected(host: &str, port: u16) -> ProxyError {
    ProxyError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "authsome_misdirected_request",
        Source::Downstream,
        format!(
            "this tunnel was opened to {host}:{port}; a request inside it must be for that host"
        ),
    )
    .host(host)
}

/// True for paths a server may normalise into another route than the one
/// matched here: `.`/`..` segments (literal or percent-encoded), encoded
/// slashes or backslashes, and backslashes. Why: path-scoped routes
/// (`/drive/v3` vs `/gmail/v1` on one host) pick the credential by path.
fn ambiguous_path(path: &str) -> bool {
    if !path.bytes().any(|b| matches!(b, b'%' | b'.' | b'\\')) {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return true;
    }
    lower
        .replace("%2e", ".")
        .split('/')
        .any(|seg| seg == "." || seg == "..")
}

/// Decodes percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// in the request's path, which RFC 3986 makes equivalent to the character
/// itself; the query is left as sent.
fn normalise_path<B>(req: &mut Request<B>) {
    let path = req.uri().path();
    let b = path.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(c);
                changed = true;
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    if !changed {
        return;
    }
    if let Some(q) = req.uri().query() {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = http::uri::PathAndQuery::try_from(out) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// HTTP/1 `Host` (or HTTP/2 `host`), when present, must name the target.
fn check_host_header(
    req: &Request<Body>,
    host: &str,
    port: u16,
    https: bool,
) -> Result<(), ProxyError> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let Some(v) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(misdirected(host, port));
    }
    let parsed = v
        .to_str()
        .ok()
        .and_then(|s| s.parse::<http::uri::Authority>().ok())
        .and_then(|a| {
            Some((
                normalize_host(a.host())?,
                a.port_u16().unwrap_or(if https { 443 } else { 80 }),
            ))
        });
    match parsed {
        Some((h, p)) if h == host && p == port => Ok(()),
        _ => Err(misdirected(host, port)),
    }
}

/// The canonical form of a host: lowercase, one trailing dot dropped,
/// letters/digits/`-`/`_`/`.` only (or an IP literal). `None` for anything
/// else (percent signs, backslashes, control bytes, empty labels).
pub fn normalize_host(host: &str) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| format!("[{ip}]"));
    }
    let h = host.strip_suffix('.').unwrap_or(host);
    if h.is_empty()
        || h.len() > 253
        || h.split('.').any(|l| l.is_empty() || l.len() > 63)
        || !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(h.to_ascii_lowercase())
    } else {
        Some(h.to_string())
    }
}

/// True when a `Proxy-Authorization` value carries `token` (as the Basic
/// password, or the user name for clients that only send one).
fn basic_matches(value: &str, token: &str) -> bool {
    let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let (user, pass) = match raw.iter().position(|&b| b == b':') {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (&raw[..], &[][..]),
    };
    // Percent-decoding: userinfo in a proxy URL may be percent-encoded.
    let pass = crate::percent::decode_bytes(pass, false);
    let user = crate::percent::decode_bytes(user, false);
    crate::secret::ct_eq(&pass, token.as_bytes()) | crate::secret::ct_eq(&user, token.as_bytes())
}

/// A failed upstream request as the client sees it.
/// A TLS failure toward the upstream in words, and the likely fix (rustls
/// reports certificate problems as debug text: `invalid peer certificate:
/// Other(OtherError(CaUsedAsEndEntity))`).
fn certificate_problem(rustls_text: &str, host: &str) -> (String, String) {
    let ca_file = "if the server's certificate comes from your own CA (a corporate gateway, a self-hosted instance), put that CA in a PEM file and set AUTHSOME_UPSTREAM_CA_FILE (then `authsome daemon restart`)";
    let t = rustls_text;
    if t.contains("CaUsedAsEndEntity") {
        (
            "the server presents a CA certificate (basicConstraints CA:TRUE) as its own certificate".into(),
            "give the server a leaf certificate (CA:FALSE, with the name in subjectAltName) signed by a CA, and put that CA in AUTHSOME_UPSTREAM_CA_FILE; a certificate made with a bare `openssl req -x509` is a CA".into(),
        )
    } else if t.contains("UnknownIssuer") {
        (
            "the server's certificate is signed by a CA this machine does not trust".into(),
            ca_file.into(),
        )
    } else if t.contains("NotValidForName") {
        (
            format!("the server's certificate is not valid for the name {host}"),
            format!(
                "the certificate must list {host} in its subjectAltName (the common name alone is not enough)"
            ),
        )
    } else if t.contains("Expired") {
        (
            "the server's certificate has expired".into(),
            "renew the server's certificate, or check this machine's clock".into(),
        )
    } else if t.contains("NotValidYet") {
        (
            "the server's certificate is not valid yet".into(),
            "check this machine's clock and the certificate's notBefore date".into(),
        )
    } else if t.contains("Revoked") {
        (
            "the server's certificate is revoked".into(),
            "the server needs a new certificate".into(),
        )
    } else if t.contains("BadSignature") || t.contains("BadEncoding") {
        (
            "the server's certificate is malformed or badly signed".into(),
            ca_file.into(),
        )
    } else if t.contains("peer certificate") {
        (
            "the server's certificate was refused".into(),
            ca_file.into(),
        )
    } else {
        (
            format!(
                "the TLS handshake failed ({})",
                t.trim_start_matches("received fatal alert: ")
            ),
            ca_file.into(),
        )
    }
}

fn upstream_error(err: &hyper_util::client::legacy::Error, host: &str) -> ProxyError {
    use std::error::Error as _;
    let mut timed_out = false;
    let mut tls: Option<String> = None;
    let mut cause = String::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = src {
        if e.downcast_ref::<super::upstream::LoopRefused>().is_some() {
            return ProxyError::new(
                StatusCode::FORBIDDEN,
                "authsome_loop_refused",
                Source::Downstream,
                format!("{host} is authsome itself; the proxy does not forward there"),
            )
            .host(host);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                timed_out = true;
            }
            if let Some(inner) = io.get_ref()
                && let Some(r) = inner.downcast_ref::<rustls::Error>()
            {
                tls = Some(r.to_string());
            }
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            tls = Some(r.to_string());
        }
        let text = e.to_string();
        if text.contains("timed out") {
            timed_out = true;
        }
        if tls.is_none() && text.contains("peer certificate") {
            tls = Some(text.clone());
        }
        cause = text;
        src = e.source();
    }
    if timed_out {
        return ProxyError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "authsome_upstream_timeout",
            Source::Upstream,
            format!("{host} did not answer in time"),
        )
        .host(host);
    }
    if let Some(t) = tls {
        let (what, hint) = certificate_problem(&t, host);
        return ProxyError::new(
            StatusCode::BAD_GATEWAY,
            "authsome_upstream_tls_failed",
            Source::Upstream,
            format!("the TLS connection to {host} failed: {what}"),
        )
        .host(host)
        .hint(hint);
    }
    if err.is_connect() {
        return ProxyError::new(
            StatusCode::BAD_GATEWAY,
            "authsome_upstream_unreachable",
            Source::Upstream,
            format!("cannot connect to {host}: {cause}"),
        )
        .host(host);
    }
    ProxyError::new(
        StatusCode::BAD_GATEWAY,
        "authsome_upstream_failed",
        Source::Upstream,
        format!("the request to {host} failed: {cause}"),
    )
    .host(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalise_and_look_alikes_fail() {
        assert_eq!(
            normalize_host("Api.GitHub.TEST.").as_deref(),
            Some("api.github.test")
        );
        assert_eq!(normalize_host("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            ".",
            "a..b",
            "api.github.test..",
            "api%2egithub.test",
            "api.github.test\\@evil.test",
            "user@evil.test",
            "a b",
            "a\0b",
            "аpi.github.test",
        ] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn legacy_ipv4_forms_are_recognised() {
        for (h, ip) in [
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ] {
            assert_eq!(literal_ip(h), Some(ip.parse().unwrap()), "{h}");
        }
        assert_eq!(literal_ip("api.acme.test"), None);
        assert_eq!(literal_ip("256.1.1.1"), None);
        assert!(
            literal_ip("[::ffff:127.0.0.1]")
                .unwrap()
                .to_canonical()
                .is_loopback()
        );
    }

    #[test]
    fn ambiguous_paths_are_detected() {
        for p in [
            "/drive/v3/../../gmail/v1",
            "/a/./b",
            "/a/%2e%2E/b",
            "/a/..",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
        ] {
            assert!(ambiguous_path(p), "{p}");
        }
        for p in ["/v1/models", "/a.b/c..d/.well-known", "/"] {
            assert!(!ambiguous_path(p), "{p}");
        }
    }

    #[test]
    fn encoded_unreserved_characters_in_paths_are_decoded() {
        for (from, to) in [
            ("/v1.0/me/driv%65/x?k=%65", "/v1.0/me/drive/x?k=%65"),
            ("/a%2Db%7e%7E%5F%2e", "/a-b~~_."),
            ("/keep%2F%20%C3%A9%zz%4", "/keep%2F%20%C3%A9%zz%4"),
            ("/plain", "/plain"),
        ] {
            let mut req = Request::builder()
                .uri(format!("https://h.test{from}"))
                .body(())
                .unwrap();
            normalise_path(&mut req);
            assert_eq!(req.uri().path_and_query().unwrap().as_str(), to);
            assert_eq!(req.uri().host(), Some("h.test"));
        }
    }

    #[test]
    fn proxy_token_in_basic_auth() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(basic_matches(&enc("authsome:tok123"), "tok123"));
        assert!(basic_matches(&enc("tok123:"), "tok123"));
        assert!(basic_matches(&enc("authsome:tok%31"), "tok1"));
        assert!(!basic_matches(&enc("authsome:tok12"), "tok123"));
        assert!(!basic_matches(&enc("authsome:tok1234"), "tok123"));
        assert!(!basic_matches("Bearer tok123", "tok123"));
        assert!(!basic_matches("Basic !!!", "tok123"));
    }
}
