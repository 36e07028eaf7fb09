//! The local HTTPS upstream of a benchmark: a throwaway CA made for the run
//! (P-256, memory only), a leaf for [`HOST`], and a hyper server on
//! 127.0.0.1 that answers a ~100 B JSON body (which echoes nothing), or N
//! bytes streamed in 64 KiB chunks for `/bytes/N`. It checks the injected
//! header on every request it answers ([`Checks`]), so a benchmark can
//! prove that every request through the MITM carried the credential.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full, StreamBody};
use hudsucker::futures::stream;
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ca::{Ca, RUN_VALIDITY};
use crate::error::{Error, Result};

/// The name the local upstream's certificate is for (reached through the
/// resolver override, never DNS).
pub const HOST: &str = "bench.authsome.test";

/// The small answer.
const BODY: &[u8] =
    br#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"message":{"content":"ok"}}]}"#;

/// One chunk of a `/bytes/N` answer.
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// What the upstream saw of the injected header, per request.
#[derive(Debug, Default)]
pub struct Checks {
    injected: AtomicU64,
    wrong: AtomicU64,
    absent: AtomicU64,
}

/// A snapshot of [`Checks`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Requests that carried the expected value.
    pub injected: u64,
    /// Requests that carried the header with another value.
    pub wrong: u64,
    /// Requests without the header.
    pub absent: u64,
}

impl Checks {
    /// The counts so far.
    pub fn seen(&self) -> Seen {
        Seen {
            injected: self.injected.load(Ordering::Relaxed),
            wrong: self.wrong.load(Ordering::Relaxed),
            absent: self.absent.load(Ordering::Relaxed),
        }
    }
}

impl Seen {
    /// What was seen after `before`.
    pub fn since(self, before: Seen) -> Seen {
        Seen {
            injected: self.injected - before.injected,
            wrong: self.wrong - before.wrong,
            absent: self.absent - before.absent,
        }
    }
}

/// A running local upstream. It serves until its runtime stops.
#[derive(Debug)]
pub struct LocalUpstream {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// Its throwaway CA, PEM (what clients of the upstream trust).
    pub ca_pem: String,
    /// The same, DER.
    pub ca_der: CertificateDer<'static>,
    /// The injected header, as the upstream saw it.
    pub checks: Arc<Checks>,
    /// Connections accepted (pooling shows here).
    pub accepts: Arc<AtomicUsize>,
}

impl LocalUpstream {
    /// Starts the upstream on `rt`, offering `alpn` (e.g. `h2`,
    /// `http/1.1`), checking that header `header` carries `expected`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        alpn: &[&[u8]],
        header: http::HeaderName,
        expected: String,
    ) -> Result<LocalUpstream> {
        let ca = Ca::generate("authsome bench upstream CA", &[HOST.into()], RUN_VALIDITY)?;
        let leaf = ca.mint(HOST)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.to_vec()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("cannot set up TLS: {e}"), None))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.cert_der.clone())], key)
        .map_err(|e| Error::invalid(format!("cannot set up TLS: {e}"), None))?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let std_listener = crate::proxy::bind_loopback(0)
            .map_err(|e| Error::io("cannot listen on 127.0.0.1", e))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| Error::io("cannot listen on 127.0.0.1", e))?;
        let checks = Arc::new(Checks::default());
        let accepts = Arc::new(AtomicUsize::new(0));
        let expected: Arc<str> = expected.into();
        let (c, a) = (checks.clone(), accepts.clone());
        rt.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::Relaxed);
                let (acceptor, checks) = (acceptor.clone(), c.clone());
                let (header, expected) = (header.clone(), expected.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let seen = match req.headers().get(&header) {
                            None => &checks.absent,
                            Some(v) if v.as_bytes() == expected.as_bytes() => &checks.injected,
                            Some(_) => &checks.wrong,
                        };
                        seen.fetch_add(1, Ordering::Relaxed);
                        answer(req)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(LocalUpstream {
            addr,
            ca_pem: ca.cert_pem().to_string(),
            ca_der: CertificateDer::from(ca.cert_der().to_vec()),
            checks,
            accepts,
        })
    }
}

type AnswerBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
) -> std::result::Result<hyper::Response<AnswerBody>, std::convert::Infallible> {
    let n = req
        .uri()
        .path()
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok());
    let body = match n {
        // N bytes of `x` in 64 KiB chunks (one static buffer: the
        // upstream's own cost stays out of the way).
        Some(n) => {
            let chunks = stream::unfold(n, |left| async move {
                if left == 0 {
                    return None;
                }
                let k = left.min(CHUNK.len());
                Some((
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(&CHUNK[..k]))),
                    left - k,
                ))
            });
            StreamBody::new(chunks).boxed()
        }
        None => Full::new(Bytes::from_static(BODY)).boxed(),
    };
    let mut res = hyper::Response::new(body);
    if let Some(n) = n {
        res.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
    }
    Ok(res)
}
