//! The upstream leg: how the proxy reaches provider APIs.
//!
//! Our own connector instead of hudsucker's `with_rustls_connector`, which
//! hard-codes webpki roots and system DNS:
//! - **Trust**: the system's roots plus `AUTHSOME_UPSTREAM_CA_FILE` (a
//!   corporate TLS-inspecting gateway, a self-hosted GitLab, the test lab).
//!   Never the run's own CA, never "insecure".
//! - **Names**: `AUTHSOME_RESOLVE=host=ip,…` decides where a host name
//!   connects; SNI and certificate checks still use the name, so the override
//!   cannot weaken verification.
//! - **Never authsome itself**: every connection the proxy opens is checked,
//!   once connected, against [`OwnListeners`] (the daemon's API, the
//!   system-wide proxy, every run's listener); one that reached authsome is
//!   dropped before a byte is written ([`Guarded`]). Names are not trusted:
//!   what counts is the address the name resolved to and was dialled.
//! - **Sockets**: TCP_NODELAY, a connect timeout, pooled keep-alive
//!   connections; HTTP/2 when the child speaks it and the upstream offers
//!   it (ALPN), HTTP/1.1 otherwise ([`Clients`](super::pool::Clients)).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// How long connecting to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled upstream connection is kept.
pub const POOL_IDLE: Duration = Duration::from_secs(90);

/// The connector type the proxy forwards through.
pub type Connector = hyper_rustls::HttpsConnector<Guarded<HttpConnector<OverrideResolver>>>;

/// The addresses authsome itself listens on (the daemon's API, the
/// system-wide proxy, every run's listener), shared by every listener of the
/// daemon and updated as runs start and end.
#[derive(Debug, Default)]
pub struct OwnListeners(std::sync::RwLock<Vec<SocketAddr>>);

impl OwnListeners {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<SocketAddr>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a listener.
    pub fn add(&self, addr: SocketAddr) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).push(addr);
    }

    /// Removes one registration of `addr` (a listener that closed).
    pub fn remove(&self, addr: SocketAddr) {
        let mut v = self.0.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = v.iter().position(|a| *a == addr) {
            v.swap_remove(i);
        }
    }

    /// Adds `addr` until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, addr: SocketAddr) -> OwnRegistration {
        self.add(addr);
        OwnRegistration {
            set: self.clone(),
            addr,
        }
    }

    /// True when a connection to `peer` would reach one of authsome's
    /// listeners.
    ///
    /// The listeners bind 127.0.0.1 (the daemon may bind another configured
    /// address). A socket bound to 127.0.0.1:P is only reachable at exactly
    /// 127.0.0.1:P on Linux, yet any loopback or unspecified address
    /// (127.0.0.0/8, ::1, 0.0.0.0, ::, IPv4-mapped forms) with an own port
    /// counts as own: the check stays right if a listener ever binds
    /// 0.0.0.0 (then all of them reach it), and a refusal there can only
    /// cost another local service that happens to share the port (fail
    /// closed). Other addresses count when they are a listener's exact address.
    pub fn is_own(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        let local = ip.is_loopback() || ip.is_unspecified();
        self.read()
            .iter()
            .any(|l| l.port() == peer.port() && (local || l.ip().to_canonical() == ip))
    }

    /// True when an established connection (`local` → `peer`) reached
    /// authsome: [`OwnListeners::is_own`], or a connection to this host's own
    /// address (peer = local address) on an own port.
    pub fn is_own_connection(&self, peer: SocketAddr, local: SocketAddr) -> bool {
        self.is_own(peer)
            || (peer.ip().to_canonical() == local.ip().to_canonical()
                && self.read().iter().any(|l| l.port() == peer.port()))
    }

    /// True when some listener uses `port` (for the name-based pre-check).
    pub fn has_port(&self, port: u16) -> bool {
        self.read().iter().any(|l| l.port() == port)
    }
}

/// A listener's place in [`OwnListeners`], removed on drop.
#[derive(Debug)]
pub struct OwnRegistration {
    set: Arc<OwnListeners>,
    addr: SocketAddr,
}

impl Drop for OwnRegistration {
    fn drop(&mut self) {
        self.set.remove(self.addr);
    }
}

/// A connection that would reach authsome itself.
#[derive(Debug, thiserror::Error)]
#[error("{0} is authsome itself; the proxy does not connect there")]
pub struct LoopRefused(pub SocketAddr);

/// A connector that drops every connection which reached one of authsome's
/// own listeners, before anything is written to it. The check is on the
/// connected socket, so it covers exactly the address that was dialled,
/// whatever name resolved to it (system DNS, `/etc/hosts`, rebinding).
#[derive(Clone, Debug)]
pub struct Guarded<C> {
    inner: C,
    own: Arc<OwnListeners>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<http::Uri> for Guarded<C>
where
    C: tower_service::Service<http::Uri, Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let fut = self.inner.call(uri);
        let own = self.own.clone();
        Box::pin(async move {
            let io = fut.await.map_err(Into::into)?;
            check_connected(&own, io.inner())?;
            Ok(io)
        })
    }
}

/// Fails when `stream` is connected to authsome itself (or its addresses
/// cannot be read: fail closed).
pub fn check_connected(
    own: &OwnListeners,
    stream: &tokio::net::TcpStream,
) -> std::result::Result<(), LoopRefused> {
    let peer = stream
        .peer_addr()
        .map_err(|_e| LoopRefused(SocketAddr::from(([0, 0, 0, 0], 0))))?;
    let local = stream.local_addr().map_err(|_e| LoopRefused(peer))?;
    if own.is_own_connection(peer, local) {
        return Err(LoopRefused(peer));
    }
    Ok(())
}

/// Resolves names through the override map first, then the system resolver.
#[derive(Clone, Debug)]
pub struct OverrideResolver {
    map: Arc<HashMap<String, IpAddr>>,
    system: GaiResolver,
}

impl OverrideResolver {
    /// A resolver with `map` (lowercase host → address) in front of the system's.
    pub fn new(map: Arc<HashMap<String, IpAddr>>) -> OverrideResolver {
        OverrideResolver {
            map,
            system: GaiResolver::new(),
        }
    }
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for OverrideResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Addrs>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = self.map.get(&host) {
            let addrs = vec![SocketAddr::new(*ip, 0)].into_iter();
            return Box::pin(async move { Ok(addrs) });
        }
        let fut = self.system.call(name);
        Box::pin(async move { Ok(fut.await?.collect::<Vec<_>>().into_iter()) })
    }
}

/// Everything about the upstream leg, built once per daemon.
#[derive(Clone)]
pub struct Upstream {
    /// TLS settings for upstream connections (our roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// Host → address overrides.
    pub resolve: Arc<HashMap<String, IpAddr>>,
    /// How many roots came from the system, and from the extra file.
    pub roots: (usize, usize),
    /// authsome's own listeners, never connected to (shared by every clone).
    pub own: Arc<OwnListeners>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("resolve", &self.resolve)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// System roots plus `extra_ca_file`, and the resolver overrides.
    pub fn new(extra_ca_file: Option<&Path>, resolve: &[(String, IpAddr)]) -> Result<Upstream> {
        let extra = match extra_ca_file {
            Some(path) => Some((path.display().to_string(), read_pem_certs(path)?)),
            None => None,
        };
        Upstream::with_roots(extra, resolve)
    }

    /// System roots plus `extra` (where they came from, for errors, and
    /// the certificates), and the resolver overrides: `authsome bench`
    /// trusts its throwaway upstream CA this way, without a file.
    pub fn with_roots(
        extra: Option<(String, Vec<CertificateDer<'static>>)>,
        resolve: &[(String, IpAddr)],
    ) -> Result<Upstream> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "a system root could not be read");
        }
        let (system, _) = roots.add_parsable_certificates(native.certs);
        let mut extra_count = 0;
        if let Some((origin, certs)) = extra {
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::invalid(
                        format!("{origin}: a certificate is not a usable root: {e}"),
                        Some("AUTHSOME_UPSTREAM_CA_FILE must hold PEM CA certificates".into()),
                    )
                })?;
                extra_count += 1;
            }
        }
        let extra = extra_count;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(format!("cannot set up TLS: {e}"), None))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Upstream {
            tls: Arc::new(tls),
            resolve: Arc::new(resolve.iter().cloned().collect()),
            roots: (system, extra),
            own: Arc::new(OwnListeners::default()),
        })
    }

    /// The HTTPS (and plain HTTP) connector for a pooled client; `h2`:
    /// offer HTTP/2 in ALPN (otherwise HTTP/1.1 only).
    pub fn connector(&self, h2: bool) -> Connector {
        let mut http =
            HttpConnector::new_with_resolver(OverrideResolver::new(self.resolve.clone()));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let http = Guarded {
            inner: http,
            own: self.own.clone(),
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.tls).clone())
            .https_or_http();
        if h2 {
            builder.enable_http1().enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        }
    }

    /// Where a blind tunnel to `host` should dial: the override address, if any.
    pub fn override_for(&self, host: &str) -> Option<IpAddr> {
        self.resolve
            .get(&host.trim_end_matches('.').to_ascii_lowercase())
            .copied()
    }
}

/// Every certificate in a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let text =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::invalid(
                format!("{}: not a PEM certificate file: {e}", path.display()),
                None,
            )
        })?;
    if certs.is_empty() {
        return Err(Error::invalid(
            format!("{}: no certificate found", path.display()),
            Some("the file must contain `-----BEGIN CERTIFICATE-----` blocks".into()),
        ));
    }
    Ok(certs)
}
