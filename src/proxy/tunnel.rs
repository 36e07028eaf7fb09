//! Tunnels, once `decide` has answered the CONNECT: dialling a target past
//! the loop guard (`Handler::dial`), blind tunnels (bytes copied both ways,
//! nothing read), and serving an intercepted tunnel (the TLS client hello
//! read, TLS terminated with a leaf for the tunnel's host, the requests
//! inside bound to the tunnel and answered by the adapter; a hello for
//! another name is passed through blind).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use http::uri::Scheme;
use http::{Request, Response, StatusCode};
use hudsucker::{Body, RequestOrResponse};

use super::error::{ProxyError, Source};
use super::hosts::{literal_ip, loop_refused, normalize_host};
use super::shared::{Handler, refuse};

impl Handler {
    /// Serves an intercepted tunnel once the CONNECT was answered: reads the
    /// TLS client hello, terminates TLS with a leaf for the tunnel's host
    /// and serves the requests inside (HTTP/1.1 or HTTP/2, upgrades
    /// included). Not TLS: served as plain HTTP (where a provider host gets
    /// 403 `authsome_plaintext_refused`). A client hello for another name
    /// (SNI) is passed through blind to the CONNECT target: no certificate
    /// of ours for that name, no decryption, no credential.
    pub(super) async fn serve_tunnel(self, client: hyper::upgrade::OnUpgrade) {
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
                self.serve_requests(
                    hyper_util::rt::TokioIo::new(io),
                    Scheme::HTTP,
                    Alpn::Unknown,
                )
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
            let start = std::time::Instant::now();
            if tokio::io::AsyncWriteExt::write_all(&mut upstream, &seen)
                .await
                .is_ok()
            {
                let (up, down) = tokio::io::copy_bidirectional(&mut io, &mut upstream)
                    .await
                    .unwrap_or((0, 0));
                super::record::tunnel(
                    &self.shared.log,
                    &self.shared.run_id,
                    &t.host,
                    t.port,
                    start,
                    (up + seen.len() as u64, down),
                );
            }
            return;
        }
        // The client hello's bytes are only replayed on a blind pass-through:
        // not kept for the (long) life of an intercepted tunnel.
        drop(seen);
        let Some(config) = self.shared.authority.config_for(&t.host) else {
            return;
        };
        match tokio_rustls::StartHandshake::from_parts(*accepted, io)
            .into_stream(config)
            .await
        {
            Ok(tls) => {
                // The protocol the client chose in ALPN is served without
                // sniffing the first bytes: the sniffer's 24-byte prefix
                // made hyper grow each tunnel's read buffer to 16 KiB.
                // No ALPN over TLS is HTTP/1.1 (HTTP/2 over TLS is
                // negotiated with ALPN, RFC 9113 §3.2), as nginx serves it.
                let alpn = match tls.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Alpn::H2,
                    Some(b"http/1.1") | None => Alpn::H1,
                    Some(_) => Alpn::Unknown,
                };
                self.serve_requests(hyper_util::rt::TokioIo::new(tls), Scheme::HTTPS, alpn)
                    .await;
            }
            Err(e) => {
                tracing::debug!(host = %t.host, error = %e, "TLS handshake in the tunnel failed")
            }
        }
    }

    /// Serves the requests of one intercepted tunnel's connection.
    async fn serve_requests<I>(self, io: I, scheme: Scheme, alpn: Alpn)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let handler = self;
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut h = handler.clone();
            let scheme = scheme.clone();
            async move {
                let start = std::time::Instant::now();
                let (method, path) = (req.method().clone(), req.uri().path().to_string());
                let res = match h.bind_to_tunnel(req.map(Body::from), scheme) {
                    Ok(req) => h.answer(req).await,
                    Err(e) => {
                        // Refused before `answer`: recorded here.
                        let (host, port) = h
                            .tunnel
                            .as_ref()
                            .map(|t| (t.host.clone(), t.port))
                            .unwrap_or_default();
                        let mut r = super::record::Recorder::new(
                            h.shared.log.clone(),
                            &h.shared.run_id,
                            start,
                            &h.shared.placeholders.mask(method.as_str()),
                            &host,
                            port,
                            &h.shared.placeholders.mask(&path),
                        );
                        r.entry.refused = Some(e.code.to_string());
                        r.attach(refuse(e, &h.shared.stats))
                    }
                };
                Ok::<_, std::convert::Infallible>(res)
            }
        });
        // Each connection future is boxed: the tunnel's task then holds only
        // the protocol in use, not room for the largest of the three.
        let ended: Result<(), Box<dyn std::error::Error + Send + Sync>> = match alpn {
            Alpn::H1 => Box::pin(
                super::http1_server()
                    .serve_connection(io, service)
                    .with_upgrades(),
            )
            .await
            .map_err(Into::into),
            Alpn::H2 => Box::pin(super::http2_server().serve_connection(io, service))
                .await
                .map_err(Into::into),
            Alpn::Unknown => {
                Box::pin(super::server_builder().serve_connection_with_upgrades(io, service)).await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "tunnel connection ended");
        }
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
    pub(super) async fn blind_tunnel(
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
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            match client.await {
                Ok(client) => {
                    let mut client = hyper_util::rt::TokioIo::new(client);
                    let bytes = tokio::io::copy_bidirectional(&mut client, &mut upstream)
                        .await
                        .unwrap_or((0, 0));
                    super::record::tunnel(&shared.log, &shared.run_id, &host, port, start, bytes);
                }
                Err(e) => tracing::debug!(%host, error = %e, "tunnel not established"),
            }
        });
        Ok(RequestOrResponse::Response(Response::new(Body::empty())))
    }
}

/// The protocol a tunnel's client chose in ALPN.
#[derive(Debug, Clone, Copy)]
enum Alpn {
    H1,
    H2,
    /// Another protocol, or not TLS: told apart by the first bytes.
    Unknown,
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
    // On the heap, not in the tunnel task's future (which lives as long
    // as the tunnel).
    let mut buf = vec![0u8; 4096];
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
