//! The MITM proxy engine: hudsucker on hyper + rustls, with our own
//! certificate authority ([`tls`]), upstream connector ([`upstream`]),
//! decisions ([`handler`]) and the one pure function that writes
//! credentials ([`inject`]).
//!
//! `serve(listener, shared, shutdown)` runs one listener until `shutdown`
//! resolves. The daemon process runs one per `authsome run` (and one for
//! system-wide mode); `app` wires them to the credential cache.

pub mod error;
pub mod handler;
pub mod inject;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hudsucker::Proxy;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder as ServerBuilder;
use tokio::net::{TcpListener, TcpSocket};

pub use handler::{Handler, Shared, Stats};

use crate::error::{Error, Result};

/// A loopback listener with TCP_NODELAY (accepted sockets inherit it; without
/// it HTTP/2 clients stall ~40 ms on Nagle + delayed ACK).
pub fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_nodelay(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

/// Serves the proxy on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let connector = shared.upstream.connector();
    let ws = hudsucker::tokio_tungstenite::Connector::Rustls(shared.upstream.tls.clone());
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(upstream::POOL_IDLE)
        .pool_max_idle_per_host(64);
    let mut server = ServerBuilder::new(TokioExecutor::new());
    server
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30));
    server
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(256);
    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(LeafAuthorityHandle(shared.authority.clone()))
        .with_http_connector(connector)
        .with_http_handler(Handler::new(shared))
        .with_websocket_connector(ws)
        .with_client(client)
        .with_server(server)
        .with_graceful_shutdown(shutdown)
        .build()
        .map_err(|e| Error::invalid(format!("cannot build the proxy: {e}"), None))?;
    proxy
        .start()
        .await
        .map_err(|e| Error::io("the proxy stopped", std::io::Error::other(e.to_string())))
}

/// hudsucker takes its CA by value; ours is shared with whoever pre-mints.
struct LeafAuthorityHandle(Arc<tls::LeafAuthority>);

impl hudsucker::certificate_authority::CertificateAuthority for LeafAuthorityHandle {
    async fn gen_server_config(
        &self,
        authority: &http::uri::Authority,
    ) -> Arc<rustls::ServerConfig> {
        self.0.gen_server_config(authority).await
    }
}
