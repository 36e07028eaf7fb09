//! The team server's remote listener (`authsome daemon serve --listen`):
//! the API over TLS for members' CLIs on other machines.
//!
//! [`TlsListener`] runs the TLS handshake of every accepted socket in its
//! own task, with a [`HANDSHAKE_TIMEOUT`]: a client that connects and never
//! speaks (or speaks garbage) costs one task for at most that long and
//! never holds up the next client's accept. At most [`PENDING`] handshakes
//! run at once, so a flood is bounded too.
//!
//! [`serve_remote`] serves the same API as the loopback listener, with three
//! differences:
//! - no uid check on accept (`peer::OwnUserOnly`): a remote peer has no
//!   local uid; PoP on every protected route is what admits it;
//! - the `Host` allowlist is the authority of `AUTHSOME_SERVER_BASE_URL`
//!   only (the caller builds the state's [`DaemonInfo`] with it);
//! - the dashboard (`/`, `/ui/…`) and its one-time links are not served
//!   there: it stays on the loopback listener in this version.
//!
//! [`DaemonInfo`]: super::DaemonInfo

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::AppState;
use super::error::ApiError;
use crate::error::{Error, Result};

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at once.
pub const PENDING: usize = 256;

/// The server's TLS configuration from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1), ALPN `http/1.1`, on aws-lc.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::invalid(
            format!("cannot read the TLS {what} {}: {e}", path.display()),
            Some(
                "--tls-cert takes a PEM certificate chain (leaf first), --tls-key its PEM private key"
                    .into(),
            ),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("certificate", cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(bad("certificate", cert, &"no CERTIFICATE block in it"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("configuration", cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| {
            Error::invalid(
                format!(
                    "the TLS key {} does not fit the certificate {}: {e}",
                    key.display(),
                    cert.display()
                ),
                Some(
                    "give --tls-key the private key of the first certificate in --tls-cert".into(),
                ),
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A listener that hands the server only connections whose TLS handshake
/// completed (see the module docs).
#[derive(Debug)]
pub struct TlsListener {
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

impl TlsListener {
    /// Accepts on `inner`; handshakes with `config`.
    pub fn new(inner: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener::with_timeout(inner, config, HANDSHAKE_TIMEOUT)
    }

    fn with_timeout(
        inner: TcpListener,
        config: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> TlsListener {
        let local = inner.local_addr();
        let acceptor = TlsAcceptor::from(config);
        let (tx, accepted) = tokio::sync::mpsc::channel(PENDING);
        let slots = Arc::new(tokio::sync::Semaphore::new(PENDING));
        let mut inner = inner;
        tokio::spawn(async move {
            loop {
                // Ends when the server drops the listener (the receiver).
                let slot = tokio::select! {
                    () = tx.closed() => return,
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_closed) => return,
                    },
                };
                let (io, peer) = tokio::select! {
                    () = tx.closed() => return,
                    c = axum::serve::Listener::accept(&mut inner) => c,
                };
                io.set_nodelay(true).ok();
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            tx.send((tls, peer)).await.ok();
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_elapsed) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        TlsListener { accepted, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.accepted.recv().await {
            Some(c) => c,
            // The accepting task ended (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// The API as the remote listener serves it: [`super::router`] without the
/// dashboard. `state.info.allowed_hosts` is that listener's own list.
pub fn remote_router(state: AppState) -> Router {
    super::router(state).layer(middleware::from_fn(loopback_only))
}

/// True for the paths only the loopback listener serves: the dashboard's
/// pages and actions, and the one-time links into it.
fn is_loopback_only(path: &str) -> bool {
    path == "/"
        || path == "/ui"
        || path.starts_with("/ui/")
        || path == "/dashboard/links"
        || path == "/api/dashboard/links"
}

async fn loopback_only(req: Request, next: Next) -> Response {
    if is_loopback_only(req.uri().path()) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the dashboard is not served on the team server's remote listener",
        )
        .with_hint(
            "open it on the server itself: `authsome dashboard` there uses the loopback listener",
        )
        .into_response();
    }
    next.run(req).await
}

/// Serves [`remote_router`] on `listener` (a [`TlsListener`], or a plain
/// loopback listener behind a TLS-terminating proxy) until `shutdown`
/// resolves. It does not wait on `state.shutdown` itself: the composition
/// root stops it when the loopback server stops, so `POST
/// /api/daemon/shutdown` stops both whichever listener it came through.
pub async fn serve_remote<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, remote_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pems(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["team.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn pem_files_load_and_bad_ones_say_which() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = pems(d.path());
        let cfg = server_config(&c, &k).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let e = server_config(&k, &k).unwrap_err().to_string();
        assert!(e.contains("certificate") && e.contains("key.pem"), "{e}");
        let e = server_config(&c, &c).unwrap_err().to_string();
        assert!(e.contains("TLS key"), "{e}");
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let (_, other_key) = pems(&other);
        let e = server_config(&c, &other_key).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn only_the_dashboard_is_kept_off_the_remote_listener() {
        for p in [
            "/",
            "/ui",
            "/ui/providers",
            "/api/dashboard/links",
            "/dashboard/links",
        ] {
            assert!(is_loopback_only(p), "{p}");
        }
        for p in [
            "/api/health",
            "/api/connections",
            "/docs",
            "/uix",
            "/api/ui",
        ] {
            assert!(!is_loopback_only(p), "{p}");
        }
    }

    /// A client that connects and never sends a byte must not keep the next
    /// one from completing its handshake; it is dropped after the timeout.
    #[tokio::test]
    async fn a_silent_client_does_not_block_the_next_and_times_out() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = pems(d.path());
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut l = TlsListener::with_timeout(
            tcp,
            server_config(&c, &k).unwrap(),
            Duration::from_millis(300),
        );
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // A second client that sends garbage instead of a ClientHello.
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let client = {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(&c).unwrap())
                .unwrap();
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
        };
        let good = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("team.test").unwrap();
            client.connect(name, tcp).await.unwrap()
        });
        let (mut io, _) = tokio::time::timeout(
            Duration::from_secs(5),
            axum::serve::Listener::accept(&mut l),
        )
        .await
        .expect("the good client was accepted despite the silent one");
        let mut client_io = good.await.unwrap();
        client_io.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // The silent client is hung up on once its handshake times out.
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut b))
            .await
            .expect("the silent client was dropped after the timeout");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
