//! The benchmark's client: a keep-alive HTTP/1.1 connection over TLS,
//! straight to the upstream or through a proxy's CONNECT, and one GET on it.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// A keep-alive connection.
pub type Conn = SendRequest<Empty<Bytes>>;

/// A CONNECT through a proxy.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The proxy.
    pub proxy: SocketAddr,
    /// The CONNECT target (`host:port`).
    pub target: String,
    /// `Proxy-Authorization` value, if the proxy wants one.
    pub auth: Option<String>,
}

fn io(context: &str, e: impl std::fmt::Display) -> Error {
    Error::io(context.to_string(), std::io::Error::other(e.to_string()))
}

/// Client TLS trusting `roots` (DER).
pub fn tls(roots: &[CertificateDer<'static>]) -> Result<tokio_rustls::TlsConnector> {
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots.iter().cloned());
    if added == 0 {
        return Err(Error::invalid("no usable certificate to trust", None));
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::invalid(format!("cannot set up TLS: {e}"), None))?
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// Client TLS trusting every certificate in `pem`.
pub fn tls_pem(pem: &[u8]) -> Result<tokio_rustls::TlsConnector> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(std::result::Result::ok)
        .collect();
    tls(&certs)
}

/// A keep-alive HTTP/1.1 connection over TLS (SNI `sni`) to `addr`, or
/// through `via`'s CONNECT tunnel.
pub async fn connect(
    addr: SocketAddr,
    via: Option<&Hop>,
    sni: &str,
    tls: &tokio_rustls::TlsConnector,
) -> Result<Conn> {
    let dial = via.map_or(addr, |v| v.proxy);
    let mut tcp = TcpStream::connect(dial)
        .await
        .map_err(|e| Error::io(format!("cannot connect to {dial}"), e))?;
    tcp.set_nodelay(true)
        .map_err(|e| Error::io("cannot set TCP_NODELAY", e))?;
    if let Some(hop) = via {
        let auth = hop
            .auth
            .as_ref()
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        let t = &hop.target;
        tcp.write_all(format!("CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n{auth}\r\n").as_bytes())
            .await
            .map_err(|e| Error::io(format!("cannot write to the proxy at {dial}"), e))?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(io("the proxy's answer to CONNECT", "too long"));
            }
            tcp.read_exact(&mut b)
                .await
                .map_err(|e| Error::io(format!("the proxy at {dial} closed the tunnel"), e))?;
            head.push(b[0]);
        }
        if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
            let line = String::from_utf8_lossy(&head);
            let line = line.lines().next().unwrap_or_default();
            return Err(io(
                &format!("the proxy at {dial} refused CONNECT {t}", t = hop.target),
                line,
            ));
        }
    }
    let name = ServerName::try_from(sni.to_string())
        .map_err(|e| Error::invalid(format!("`{sni}` is not a host name: {e}"), None))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| Error::io(format!("TLS with {sni} failed"), e))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| io("HTTP/1.1 handshake failed", e))?;
    tokio::spawn(conn);
    Ok(send)
}

/// GET `path` with `Host: authority`, the whole body read; the status.
pub async fn get(send: &mut Conn, authority: &str, path: &str) -> Result<u16> {
    send.ready()
        .await
        .map_err(|e| io("the connection closed", e))?;
    let req = hyper::Request::get(path)
        .header(http::header::HOST, authority)
        .body(Empty::new())
        .map_err(|e| io("cannot build the request", e))?;
    let res = send
        .send_request(req)
        .await
        .map_err(|e| io("the request failed", e))?;
    let status = res.status().as_u16();
    res.into_body()
        .collect()
        .await
        .map_err(|e| io("the answer's body failed", e))?;
    Ok(status)
}
