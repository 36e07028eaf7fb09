//! Sending a decided request upstream: through this thread's pools, in
//! the protocol the child used (hudsucker would send every request through
//! one client, which offers HTTP/2 to every upstream); upgrades
//! (WebSocket) are relayed byte for byte after the upstream's 101. A
//! failed upstream request becomes a [`ProxyError`] in words
//! (`upstream_error`, with TLS certificate problems and their likely fix).

use http::{Request, Response, StatusCode, header};
use hudsucker::Body;

use super::error::{ProxyError, Source};
use super::record::Recorder;
use super::redact::{
    Counter, Encoding, Patterns, encoding_of, redact_body, redact_headers, relay_ws_redacted,
};
use super::shared::Handler;

impl Handler {
    /// Sends a decided request upstream in the protocol the child used.
    /// (hudsucker would send every request through one client, which
    /// offers HTTP/2 to every upstream.)
    ///
    /// With a credential injected and redaction on, the answer is
    /// redacted on its way back (headers, body, WebSocket frames from the
    /// server) and `recorder` writes the request's entry when the answer
    /// ends.
    pub(super) async fn send(
        &self,
        mut req: Request<Body>,
        mut recorder: Recorder,
    ) -> Response<Body> {
        let bodiless = req.method() == http::Method::HEAD;
        let h2 = req.version() == http::Version::HTTP_2;
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
        let redact = self.note.redact.clone();
        let counter = self.note.counter.clone().unwrap_or_default();
        let session_cookies = self.note.session_cookies.clone();
        // HTTPS over HTTP/1.1 (every intercepted h1 tunnel): this thread's
        // own connections. HTTP/2, plain HTTP and upgrades: the pooled
        // clients.
        let https = req.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
        let sent = if https && !h2 && downstream.is_none() {
            self.clients
                .https_h1
                .send(req)
                .await
                .map_err(|e| failed(&e, self.target.as_deref()))
        } else {
            let client = if h2 {
                &self.clients.h2
            } else {
                &self.clients.h1
            };
            client
                .request(req)
                .await
                .map_err(|e| upstream_error(&e, self.target.as_deref().unwrap_or("the upstream")))
        };
        match sent {
            Ok(mut res) => {
                if let Some(names) = &session_cookies {
                    drop_session_cookies(res.headers_mut(), names);
                }
                if let Some(p) = &redact {
                    let n = redact_headers(res.headers_mut(), p);
                    counter
                        .header
                        .fetch_add(n as u32, std::sync::atomic::Ordering::Relaxed);
                    // HTTP/1 writes a non-standard reason phrase back as
                    // received: the standard one for the status instead.
                    res.extensions_mut().remove::<hyper::ext::ReasonPhrase>();
                }
                if res.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(downstream) = downstream
                {
                    let upstream = hyper::upgrade::on(&mut res);
                    let host = self.target.clone().unwrap_or_default();
                    recorder.answered(res.status());
                    tokio::spawn(async move {
                        match tokio::try_join!(downstream, upstream) {
                            Ok((down, up)) => {
                                let down = hyper_util::rt::TokioIo::new(down);
                                let up = hyper_util::rt::TokioIo::new(up);
                                let bytes = relay(down, up, redact, counter).await;
                                recorder.finish(bytes);
                            }
                            Err(e) => {
                                tracing::debug!(%host, error = %e, "upgrade not completed");
                                recorder.finish(0);
                            }
                        }
                    });
                    return res.map(Body::from);
                }
                let res = match redact {
                    Some(p) => match redacted(res, p, counter, bodiless) {
                        Ok(res) => res,
                        Err(e) => {
                            recorder.entry.refused = Some(e.code.to_string());
                            e.into_response()
                        }
                    },
                    None if bodiless => without_body(res),
                    None => res.map(Body::from),
                };
                recorder.attach(res)
            }
            Err(e) => {
                recorder.entry.refused = Some(e.code.to_string());
                recorder.attach(e.into_response())
            }
        }
    }
}

/// Removes every `Set-Cookie` of the answer that sets one of `names` (a
/// browser session's cookies, whatever their case): the server rotating
/// the session must not hand the new value to the agent. Redaction would
/// only catch the value authsome sent, not a new one.
pub(super) fn drop_session_cookies(headers: &mut http::HeaderMap, names: &[String]) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let kept: Vec<header::HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let name = v
                .as_bytes()
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            !names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    let dropped = headers.get_all(header::SET_COOKIE).iter().count() - kept.len();
    if dropped > 0 {
        tracing::debug!(
            dropped,
            "session cookies set by the upstream were not passed on"
        );
        headers.remove(header::SET_COOKIE);
        for v in kept {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// The answer to a HEAD: its headers (a `Content-Length` describes the
/// GET's body) and an empty body. (Passing the upstream's empty body on
/// made HTTP/2 clients see a stream reset: the body checked itself against
/// that `Content-Length`.)
fn without_body(res: Response<hyper::body::Incoming>) -> Response<Body> {
    res.map(|_unread| Body::empty())
}

/// Statuses that never have a body.
fn no_body(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The answer with its body redacted as it streams: a gzip or deflate body
/// is decoded (and passed on identity-encoded); `Content-Length` is dropped
/// when a replacement may change the length (the answer is re-framed). An
/// encoding the redactor cannot read (the upstream ignored the
/// `Accept-Encoding` authsome sent) is refused: never passed on unread.
///
/// A partial answer (206, `Content-Range`: authsome sends no `Range`) and a
/// transfer coding other than chunked (which hyper would pass on
/// undecoded) are refused the same way. A HEAD answer gets the headers the
/// GET's would have.
fn redacted(
    mut res: Response<hyper::body::Incoming>,
    patterns: std::sync::Arc<Patterns>,
    counter: std::sync::Arc<Counter>,
    head: bool,
) -> Result<Response<Body>, ProxyError> {
    let unreadable = |what: String| {
        ProxyError::new(
            StatusCode::BAD_GATEWAY,
            "authsome_unredactable_response",
            Source::Upstream,
            format!("the upstream answered with {what}, which authsome cannot read whole to remove the credential from it"),
        )
        .hint("the upstream should honour Accept-Encoding and send whole answers (authsome asks for gzip or identity, without Range); AUTHSOME_REDACT=off passes answers on unread")
    };
    let encoding = encoding_of(res.headers())
        .map_err(|name| unreadable(format!("Content-Encoding `{name}`")))?;
    if res.status() == StatusCode::PARTIAL_CONTENT
        || res.headers().contains_key(header::CONTENT_RANGE)
    {
        return Err(unreadable("a partial answer (206, Content-Range)".into()));
    }
    let chunked_only = res
        .headers()
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .all(|c| c.trim().eq_ignore_ascii_case("chunked"));
    if !chunked_only {
        return Err(unreadable("a Transfer-Encoding other than chunked".into()));
    }
    let h = res.headers_mut();
    if encoding != Encoding::Identity {
        h.remove(header::CONTENT_ENCODING);
        h.remove(header::CONTENT_LENGTH);
    } else if !patterns.length_preserving() {
        h.remove(header::CONTENT_LENGTH);
    }
    if head || no_body(res.status()) {
        return Ok(without_body(res));
    }
    let (parts, body) = res.into_parts();
    Ok(Response::from_parts(
        parts,
        redact_body(body, patterns, encoding, counter),
    ))
}

/// Relays an upgraded connection until both sides are done; the bytes that
/// went to the client. With patterns, frames from the server are redacted;
/// when the server's side ends (or breaks the protocol, answered with a
/// close frame 1011 to the client), the relay ends: the client's side is
/// not left open.
async fn relay<D, U>(
    down: D,
    mut up: U,
    redact: Option<std::sync::Arc<Patterns>>,
    counter: std::sync::Arc<Counter>,
) -> u64
where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let Some(patterns) = redact else {
        let mut down = down;
        return tokio::io::copy_bidirectional(&mut down, &mut up)
            .await
            .map_or(0, |(_to_up, to_down)| to_down);
    };
    let (mut down_r, down_w) = tokio::io::split(down);
    let (up_r, mut up_w) = tokio::io::split(up);
    let mut down_w = Counting {
        inner: down_w,
        n: 0,
    };
    let to_up = async {
        tokio::io::copy(&mut down_r, &mut up_w).await.ok();
        up_w.shutdown().await.ok();
        // The server may still be sending (its close reply): wait for it.
        std::future::pending::<()>().await;
    };
    let to_down = async {
        if let Err(e) = relay_ws_redacted(up_r, &mut down_w, patterns, counter).await {
            tracing::debug!(error = %e, "WebSocket relay ended with an error");
            // Close frame, status 1011 (internal error), unmasked.
            down_w.write_all(&[0x88, 0x02, 0x03, 0xf3]).await.ok();
            down_w.shutdown().await.ok();
        }
    };
    tokio::select! {
        () = to_up => {}
        () = to_down => {}
    }
    down_w.n
}

/// A writer that counts what it wrote.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counting<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            self.n += *n as u64;
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

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

/// A failed request of the pooled clients as the client sees it.
pub(super) fn upstream_error(err: &hyper_util::client::legacy::Error, host: &str) -> ProxyError {
    use std::error::Error as _;
    described(err.source(), err.is_connect(), host)
}

/// A failed request of [`H1Pool`](super::pool::H1Pool) as the client sees it.
fn failed(err: &super::pool::Failed, host: Option<&str>) -> ProxyError {
    use std::error::Error as _;
    let connect = matches!(err, super::pool::Failed::Connect(_));
    described(err.source(), connect, host.unwrap_or("the upstream"))
}

/// An upstream failure in words, from its chain of causes (`chain`, the
/// first cause): authsome itself, a timeout, a TLS problem with its likely
/// fix, no connection, or a failed request.
fn described(
    chain: Option<&(dyn std::error::Error + 'static)>,
    is_connect: bool,
    host: &str,
) -> ProxyError {
    let mut timed_out = false;
    let mut tls: Option<String> = None;
    let mut cause = String::new();
    let mut src = chain;
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
    if is_connect {
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
    #[test]
    fn a_rotated_session_cookie_never_reaches_the_client() {
        let mut h = http::HeaderMap::new();
        for v in [
            "li_at=NEWSECRET; Domain=.linkedin.com; Secure",
            " JSESSIONID =\"ajax:9\"; Path=/",
            "lang=v=2&lang=en-us; Path=/",
        ] {
            h.append(http::header::SET_COOKIE, v.parse().unwrap());
        }
        super::drop_session_cookies(&mut h, &["li_at".into(), "jsessionid".into()]);
        let left: Vec<_> = h.get_all(http::header::SET_COOKIE).iter().collect();
        assert_eq!(left, ["lang=v=2&lang=en-us; Path=/"]);
    }

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
