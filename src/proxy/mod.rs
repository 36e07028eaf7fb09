//! The MITM proxy engine: hudsucker on hyper + rustls, with our own
//! certificate authority ([`tls`]), upstream connector and pools
//! ([`upstream`]), and the one pure function that writes credentials
//! ([`inject`]). The request path is split by concern:
//! - [`handler`]: the hudsucker adapter (thin: calls decide, then send);
//! - `shared`: what every request of a listener shares ([`Shared`],
//!   [`Stats`], the [`Handler`] itself), used by the files below;
//! - [`decide`]: the decisions (proxy authentication, CONNECT → intercept,
//!   blind or refuse, tunnel binding, route + credential + inject, the loop
//!   guard) and the pure helpers they use;
//! - `send`: sending upstream in the child's protocol, the WebSocket relay,
//!   upstream errors in words;
//! - `tunnel`: dialling, blind tunnels, serving intercepted tunnels;
//! - [`hosts`]: the pure host-name helpers both of them use.
//!
//! Around them: [`placeholders`] (what the child holds in place of each
//! secret, and the tripwire that notices one sent elsewhere), [`redact`]
//! (the streaming response redactor: headers, bodies, gzip/deflate,
//! WebSocket frames; `send` applies it), `record` (the request log's
//! entries, written when an answer ends) and `bodies` (small body
//! adapters).
//!
//! [`error`] turns refusals into responses; [`prefixed`] replays bytes
//! already read from a tunnel; [`pool`] holds each proxy thread's upstream
//! connections (its own HTTP/1.1 connections to HTTPS upstreams, the
//! intercepted tunnels' path, and hyper-util's pooled clients for the rest).
//!
//! `serve(listener, shared, shutdown)` runs one listener on the current
//! runtime until `shutdown` resolves; [`Workers::serve`] runs it on the
//! proxy's own threads. The daemon process serves one listener per
//! `authsome run` (and one for system-wide mode); `app` wires them to the
//! credential cache.

mod bodies;
pub mod decide;
pub mod error;
pub mod handler;
pub mod hosts;
pub mod inject;
pub mod placeholders;
pub mod pool;
pub mod prefixed;
mod record;
pub mod redact;
mod send;
mod shared;
pub mod tls;
mod tunnel;
pub mod upstream;
pub mod workers;

use std::future::Future;
use std::sync::Arc;

use hudsucker::Proxy;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder as ServerBuilder;
use tokio::net::TcpListener;

pub use shared::{Handler, Shared, Stats};
pub use workers::{Workers, bind_loopback};

use crate::error::{Error, Result};

/// Serves the proxy on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // This thread's pools; the handler answers every CONNECT and sends
    // every request itself (in the child's protocol, upgrades included), and
    // serves intercepted tunnels itself, so hudsucker's own client,
    // WebSocket path and CONNECT handling are left with nothing to do: it
    // accepts connections and hands their requests to the handler.
    let clients = Arc::new(pool::Clients::new(&shared.upstream));
    tokio::spawn(reap(Arc::downgrade(&clients)));
    let server = server_builder();
    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(LeafAuthorityHandle(shared.authority.clone()))
        .with_http_connector(shared.upstream.connector(false))
        .with_http_handler(Handler::new(shared, clients))
        .with_server(server)
        .with_graceful_shutdown(shutdown)
        .build()
        .map_err(|e| Error::invalid(format!("cannot build the proxy: {e}"), None))?;
    proxy
        .start()
        .await
        .map_err(|e| Error::io("the proxy stopped", std::io::Error::other(e.to_string())))
}

/// Closes this thread's upstream connections idle too long, every
/// [`pool::REAP_EVERY`], until the listener's handler (and its clients)
/// are gone.
async fn reap(clients: std::sync::Weak<pool::Clients>) {
    loop {
        tokio::time::sleep(pool::REAP_EVERY).await;
        match clients.upgrade() {
            Some(c) => c.https_h1.reap(upstream::POOL_IDLE),
            None => return,
        }
    }
}

/// The HTTP server settings of the proxy connection and of every
/// intercepted tunnel.
pub(crate) fn server_builder() -> ServerBuilder<TokioExecutor> {
    let mut server = ServerBuilder::new(TokioExecutor::new());
    server
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30));
    server
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(256);
    server
}

/// The HTTP/1.1 server of an intercepted tunnel whose client chose
/// `http/1.1` in ALPN: the settings of [`server_builder`], without its
/// sniffing of the first bytes (whose 24-byte prefix makes hyper grow the
/// connection's read buffer from 8 to 16 KiB, for the tunnel's life).
pub(crate) fn http1_server() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30));
    b
}

/// The HTTP/2 server of an intercepted tunnel whose client chose `h2`:
/// the settings of [`server_builder`].
pub(crate) fn http2_server() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(256);
    b
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
