//! The per-request decisions: what the adapter ([`Handler`]) does with a
//! request before anything is sent.
//!
//! How a request travels (and where it can stop):
//! 1. **Proxy authentication** on every request that opens something (a
//!    CONNECT, or an absolute-form request): the per-run token in
//!    `Proxy-Authorization`, compared in constant time; otherwise 407.
//! 2. **CONNECT** decides the tunnel once: a host some connected provider
//!    claims (and the CA may sign for) is intercepted (`serve_tunnel` in
//!    `tunnel.rs`: TLS terminated with a leaf for that host); any other host is
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
//! 6. **Sending** is not decided here: every request that is not a CONNECT
//!    is sent by `Handler::send` (`send.rs`); tunnels are dialled and served
//!    in `tunnel.rs`.
//!
//! Also here: the pure helpers these decisions use (host normalisation,
//! host literals, path normalisation and ambiguity, the `Host` check, the
//! token comparison, the refusals they return), with their unit tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use http::uri::Scheme;
use http::{Method, Request, Response, StatusCode, header};
use hudsucker::{Body, RequestOrResponse};

use super::error::{ProxyError, Source};
use super::hosts::{literal_ip, loop_refused, normalize_host};
use super::inject::{inject, strip_hop_by_hop};
use super::placeholders::{Location, in_head};
use super::shared::{Handler, Tunnel};

impl Handler {
    /// Decides one request: a refusal (`Err`), an answer (a CONNECT's
    /// 200, its tunnel already handed to `tunnel.rs`), or the request to
    /// send (its credential injected when a provider claims it).
    pub(super) async fn decide(
        &mut self,
        req: Request<Body>,
    ) -> Result<RequestOrResponse, ProxyError> {
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
            return Ok(());
        }
        let e = ProxyError::new(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "authsome_proxy_auth_required",
            Source::Downstream,
            "this proxy needs its per-run token",
        )
        .hint("start the program with `authsome run -- …`, which sets HTTPS_PROXY with the token");
        // No credentials at all: the challenge step of clients that send
        // them only when asked (git, libcurl with `--proxy-anyauth`), not
        // worth a line in `authsome run`'s output. A wrong token is.
        if req.headers().contains_key(header::PROXY_AUTHORIZATION) {
            Err(e)
        } else {
            Err(e.quiet())
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
        self.check_granted(&host, port)?;
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
            // A copy: the request's own `Authority` shares the proxy
            // connection's whole read buffer (16 KiB), which the tunnel would
            // keep alive for as long as it stays open.
            let authority = req
                .uri()
                .authority()
                .and_then(|a| http::uri::Authority::try_from(a.as_str()).ok())
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

    /// Gives a request inside an intercepted tunnel the tunnel's scheme and
    /// authority. A request that names an authority itself (HTTP/1
    /// absolute-form, HTTP/2 `:authority`) must name the tunnel's: host
    /// compared after normalisation, userinfo ignored, port defaulted by
    /// the scheme; anything else is 421 and never forwarded.
    pub(super) fn bind_to_tunnel(
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
        if claimed {
            self.check_granted(host, port)?;
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
            // A rule two connected providers share goes to the one the run
            // chose (`--connection`), or to none: never a silent guess.
            let picked = self
                .shared
                .tables
                .routes()
                .resolve(host, port, path)
                .or_else(|| self.shared.pinned.resolve(host, port, path))
                .map(|r| {
                    r.choose(|p| self.shared.connections.contains_key(p) || self.only(p))
                        .map_err(|all| (r.rule.to_string(), all))
                });
            match picked {
                Some(Ok(p)) if !self.granted(&p) => return Err(not_granted(host, Some(&p))),
                Some(Ok(p)) => Some(p),
                Some(Err((rule, all))) => {
                    let (message, hint) = crate::routing::conflict_message(&rule, &all);
                    return Err(ProxyError::new(
                        StatusCode::CONFLICT,
                        "authsome_provider_conflict",
                        Source::Internal,
                        message,
                    )
                    .host(host)
                    .hint(hint));
                }
                None => None,
            }
        } else {
            None
        };
        self.tripwire_check(req, host, port, provider.as_deref())
            .await?;
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
            .tables
            .credential(&provider, connection)
            .await
            .map_err(|e| {
                if e.code() == "store_unavailable" {
                    // Never the store's address or the driver's words to
                    // the client: it may be the agent.
                    tracing::error!(%provider, error = %e, "the store is unreachable");
                    return ProxyError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "authsome_store_unavailable",
                        Source::Internal,
                        format!("the credential store is unreachable; nothing was sent to {host}"),
                    )
                    .provider(&provider)
                    .host(host)
                    .hint("try again shortly".to_string());
                }
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
        self.note.provider = Some(provider.to_string());
        self.note.connection = Some(cred.connection.clone());
        self.note.injected = true;
        if !cred.cookie_names.is_empty() {
            self.note.session_cookies = Some(cred.cookie_names.clone().into());
        }
        if self.shared.redact {
            let placeholder = self.shared.placeholders.get(&provider).map_err(|e| {
                ProxyError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "authsome_internal",
                    Source::Internal,
                    format!("no placeholder for {provider}: {e}"),
                )
            })?;
            self.note.redact = Some(self.shared.redactors.for_credential(&cred, &placeholder));
            self.note.counter = Some(Default::default());
            redactable(req);
        }
        Ok(())
    }

    /// The tripwire: a placeholder of a provider other than the ones this
    /// request's host belongs to, in the request's headers, path, query or
    /// first body frame, is noted for the request log and the audit, and
    /// refused under `--deny-unknown` when it is in the headers, path or
    /// query (a body hit is only recorded: agents send tool output, which
    /// may quote a placeholder, to their model). A placeholder is worthless
    /// anywhere but through authsome, so sending one on is no leak; it says
    /// the child tried to send a credential somewhere it does not belong.
    async fn tripwire_check(
        &mut self,
        req: &mut Request<Body>,
        host: &str,
        port: u16,
        routed: Option<&str>,
    ) -> Result<(), ProxyError> {
        // The host's providers: the routed one, or (on a path no rule
        // claims) every provider with a rule for the host.
        let claimants: Vec<std::sync::Arc<str>> = match routed {
            Some(_) => Vec::new(),
            None => {
                let mut c = self.shared.tables.routes().claimants(host, port);
                c.extend(self.shared.pinned.claimants(host, port));
                c
            }
        };
        let own: Vec<&str> = match routed {
            Some(p) => vec![p],
            None => claimants.iter().map(|p| p.as_ref()).collect(),
        };
        let placeholders = &self.shared.placeholders;
        if !placeholders.any_other_than(&own) {
            return Ok(());
        }
        let mut found = in_head(placeholders, req, &own);
        if found.is_none()
            && let Some(first) = peek_body(req).await?
        {
            found = placeholders
                .foreign_in(&first, &own)
                .map(|p| (p, Location::Body));
        }
        let Some((owner, location)) = found else {
            return Ok(());
        };
        tracing::warn!(placeholder_of = %owner, host, location = location.as_str(), "tripwire: a placeholder was sent to a host of another provider or none");
        self.note.tripwire = Some((owner.clone(), location));
        if self.shared.deny_unknown && location != Location::Body {
            return Err(ProxyError::new(
                StatusCode::FORBIDDEN,
                "authsome_placeholder_misuse",
                Source::Downstream,
                format!(
                    "the request carries the placeholder of {owner} (in its {}), and {host} is not one of {owner}'s hosts",
                    location.as_str()
                ),
            )
            .host(host)
            .hint(format!(
                "a placeholder only works on its own provider's hosts; send requests for {owner} to its API"
            )));
        }
        Ok(())
    }

    /// A sandboxed run's rule for local destinations (see
    /// [`Shared::local_ports`](super::Shared::local_ports)).
    pub(super) fn check_local(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), ProxyError> {
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
        self.shared.tables.routes().path_scoped(host, port)
            || self.shared.pinned.path_scoped(host, port)
    }

    /// True when `provider` may be used by this listener's run (every
    /// provider, unless it is a team member's run).
    fn granted(&self, provider: &str) -> bool {
        self.shared
            .only
            .as_ref()
            .is_none_or(|only| only.contains(provider))
    }

    /// True when this is a member's run and `provider` is granted to it.
    fn only(&self, provider: &str) -> bool {
        self.shared
            .only
            .as_ref()
            .is_some_and(|only| only.contains(provider))
    }

    /// A member's run: refuses a host that providers claim, none of them
    /// granted (before anything is dialled: such a host is never tunnelled
    /// blind, with the member's own credentials or otherwise).
    fn check_granted(&self, host: &str, port: u16) -> Result<(), ProxyError> {
        if self.shared.only.is_none() || !self.claims(host, port) {
            return Ok(());
        }
        let mut claimants = self.shared.tables.routes().claimants(host, port);
        claimants.extend(self.shared.pinned.claimants(host, port));
        if claimants.iter().any(|p| self.granted(p)) {
            return Ok(());
        }
        claimants.sort();
        claimants.dedup();
        Err(not_granted(host, claimants.first().map(|p| p.as_ref())))
    }

    /// True when a provider claims `host:port`, now or when the run started.
    fn claims(&self, host: &str, port: u16) -> bool {
        self.shared.tables.routes().claims(host, port) || self.shared.pinned.claims(host, port)
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

/// A member's run asked for a provider it was not granted.
fn not_granted(host: &str, provider: Option<&str>) -> ProxyError {
    let who = provider.unwrap_or("a provider");
    let mut e = ProxyError::new(
        StatusCode::FORBIDDEN,
        "authsome_not_granted",
        Source::Downstream,
        format!("{host} belongs to {who}, which this team member was not granted"),
    )
    .host(host)
    .hint(format!(
        "ask an admin of the team: `authsome team grant YOUR_DID {who}`"
    ));
    if let Some(p) = provider {
        e = e.provider(p);
    }
    e
}

/// Asks the upstream only for what the redactor can read: `gzip` (decoded,
/// redacted and passed on identity-encoded) when the client accepts any
/// compression, else `identity`; no WebSocket extension (with
/// permessage-deflate the frames could not be read); and whole answers
/// only: no `Range` (an echo served in byte ranges would hand the secret
/// over piece by piece, no piece a whole form the redactor knows).
fn redactable<B>(req: &mut Request<B>) {
    let h = req.headers_mut();
    h.remove(header::RANGE);
    h.remove(header::IF_RANGE);
    let compressed = h
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .any(|c| !c.is_empty() && c != "identity");
    h.insert(
        header::ACCEPT_ENCODING,
        http::HeaderValue::from_static(if compressed { "gzip" } else { "identity" }),
    );
    h.remove(header::SEC_WEBSOCKET_EXTENSIONS);
}

/// How long the tripwire waits for a request body's first frame (it
/// normally arrives with the headers; a client that sends its body later
/// is not held up longer than this, and that body is not looked at).
const PEEK_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// The first frame of `req`'s body, which is put back in front of the rest.
async fn peek_body(req: &mut Request<Body>) -> Result<Option<hyper::body::Bytes>, ProxyError> {
    use http_body_util::BodyExt;
    if hyper::body::Body::is_end_stream(req.body()) {
        return Ok(None);
    }
    let mut body = std::mem::replace(req.body_mut(), Body::empty());
    let first = tokio::time::timeout(PEEK_WAIT, body.frame()).await;
    match first {
        Err(_elapsed) => {
            *req.body_mut() = body;
            Ok(None)
        }
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(ProxyError::new(
            StatusCode::BAD_REQUEST,
            "authsome_bad_request_body",
            Source::Downstream,
            format!("the request body could not be read: {e}"),
        )),
        Ok(Some(Ok(frame))) => {
            let data = frame.data_ref().cloned();
            *req.body_mut() = Body::from(http_body_util::combinators::BoxBody::new(
                super::bodies::Prepend::new(frame, body),
            ));
            Ok(data)
        }
    }
}

pub(super) fn misdirected_connect() -> ProxyError {
    ProxyError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "authsome_misdirected_request",
        Source::Downstream,
        "a CONNECT is only answered on the proxy connection itself",
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
