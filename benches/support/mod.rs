//! What the end-to-end benches share: the test upstream's TLS settings,
//! client TLS over a PEM bundle, and a keep-alive HTTP/1.1 connection to
//! the provider host, direct or through a proxy's CONNECT. (Benches cannot
//! import `tests/it/common`.)

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The provider host every bench talks to (reached through the resolver
/// override or a direct connection, never DNS).
pub const HOST: &str = "api.acme.test";
/// The repository's test certificates.
pub const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/");

/// TLS for the local upstream (`certs/upstream.pem`), offering `alpn`.
pub fn upstream_tls(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{CERTS}upstream.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{CERTS}upstream.key")).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// Client TLS trusting every certificate in `pem`.
pub fn client_tls(pem: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) =
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem).filter_map(Result::ok));
    assert!(added > 0, "no certificate in the bundle");
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A CONNECT through the proxy at `proxy` to `target`.
pub struct Connect<'a> {
    pub proxy: SocketAddr,
    pub target: &'a str,
    /// base64 of `user:token`, for `Proxy-Authorization: Basic`.
    pub auth: &'a str,
}

/// A keep-alive HTTP/1.1 connection to [`HOST`] over TLS: to `addr`
/// directly, or through `via`'s tunnel.
pub async fn connect(
    addr: SocketAddr,
    via: Option<Connect<'_>>,
    tls: &tokio_rustls::TlsConnector,
) -> SendRequest<Empty<Bytes>> {
    let mut tcp = TcpStream::connect(via.as_ref().map_or(addr, |v| v.proxy))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    if let Some(Connect { target, auth, .. }) = via {
        tcp.write_all(
            format!(
                "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
    }
    let stream = tls
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}
