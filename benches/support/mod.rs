//! What the end-to-end benches share: the test upstream's TLS settings
//! (`certs/upstream.pem`, for benches that start the daemon with the test
//! CA), and `authsome bench`'s client (client TLS over a PEM bundle, a
//! keep-alive HTTP/1.1 connection to the provider host, direct or through a
//! proxy's CONNECT) under the names the benches use. (Benches cannot import
//! `tests/it/common`.)

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

/// Client TLS trusting every certificate in `pem` (`authsome bench`'s).
pub fn client_tls(pem: &[u8]) -> tokio_rustls::TlsConnector {
    authsome::bench::client::tls_pem(pem).unwrap()
}

/// A CONNECT through the proxy at `proxy` to `target`.
pub struct Connect<'a> {
    pub proxy: SocketAddr,
    pub target: &'a str,
    /// base64 of `user:token`, for `Proxy-Authorization: Basic`.
    pub auth: &'a str,
}

/// A keep-alive HTTP/1.1 connection to [`HOST`] over TLS: to `addr`
/// directly, or through `via`'s tunnel (`authsome bench`'s client).
pub async fn connect(
    addr: SocketAddr,
    via: Option<Connect<'_>>,
    tls: &tokio_rustls::TlsConnector,
) -> SendRequest<Empty<Bytes>> {
    let hop = via.map(|v| authsome::bench::client::Hop {
        proxy: v.proxy,
        target: v.target.to_string(),
        auth: Some(format!("Basic {}", v.auth)),
    });
    authsome::bench::client::connect(addr, hop.as_ref(), HOST, tls)
        .await
        .unwrap()
}
