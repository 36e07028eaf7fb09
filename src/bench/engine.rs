//! authsome's proxy engine as a benchmark runs it: the same
//! [`Workers::serve`] the daemon runs for `authsome run`, with one
//! throwaway provider for the target host and a throwaway credential held
//! in memory (no vault, no home, no keyring), a fresh CA, a proxy token and
//! a request log that discards.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;

use crate::ca::{Ca, RUN_VALIDITY};
use crate::credentials::ResolvedCredential;
use crate::credentials::cache::CredentialSource;
use crate::credentials::proxy_tables::ProxyTables;
use crate::error::{Error, Result};
use crate::providers::{ProviderDef, parse_file};
use crate::proxy::tls::LeafAuthority;
use crate::proxy::upstream::Upstream;
use crate::proxy::{Shared, Stats, Workers};
use crate::routing::RouteTable;
use crate::secret::Secret;

/// The provider's name.
pub const PROVIDER: &str = "authsome-bench";

/// A credential source with one provider and one throwaway value.
struct Source {
    def: ProviderDef,
    value: Secret<String>,
}

impl CredentialSource for Source {
    fn resolve(&self, provider: &str, _connection: Option<&str>) -> Result<ResolvedCredential> {
        Ok(ResolvedCredential {
            provider: provider.into(),
            connection: "default".into(),
            injection: self
                .def
                .injection()
                .ok_or_else(|| Error::invalid("the bench provider injects nothing", None))?,
            value: self.value.duplicate(),
            expires_at: None,
            extra: Vec::new(),
            parts: Vec::new(),
            cookie_names: Vec::new(),
        })
    }
    fn routes(&self) -> Result<RouteTable> {
        Ok(RouteTable::build([&self.def]))
    }
}

/// A proxy listener on 127.0.0.1 that intercepts `host:port` and injects
/// `header: value` (the bare value, no prefix); every other CONNECT target
/// is tunnelled blind.
pub struct BenchProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The listener's CA, PEM (what the MITM's clients trust).
    pub ca_pem: String,
    /// The listener's state (its counters: `stats.injected`).
    pub shared: Arc<Shared>,
    /// `Proxy-Authorization` value for [`super::client::Hop`].
    pub auth: String,
    /// Dropped with the proxy: its listener closes.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for BenchProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The options of [`BenchProxy::start`].
#[derive(Debug)]
pub struct ProxyOptions<'a> {
    /// The intercepted host and port.
    pub host: &'a str,
    pub port: u16,
    /// The header injected, and its value.
    pub header: &'a str,
    pub value: Secret<String>,
    /// Upstream trust and resolver overrides.
    pub upstream: Upstream,
    /// Response redaction (the default is on).
    pub redact: bool,
}

impl BenchProxy {
    /// Starts the listener, served by `workers`; `rt` awaits the serve future.
    pub fn start(
        rt: &tokio::runtime::Handle,
        workers: Arc<Workers>,
        o: ProxyOptions<'_>,
    ) -> Result<BenchProxy> {
        let def = serde_json::json!({
            "name": PROVIDER,
            "auth_type": "api_key",
            "flow": "api_key",
            "api_url": [format!("{}:{}", o.host, o.port)],
            "api_key": {"header_name": o.header, "header_prefix": null},
        });
        let def = parse_file("authsome bench", &def.to_string())?;
        let tables = Arc::new(ProxyTables::new(Arc::new(Source {
            def,
            value: o.value,
        }))?);
        let ca = Arc::new(Ca::generate(
            "authsome bench CA",
            &[o.host.to_string()],
            RUN_VALIDITY,
        )?);
        let ca_pem = ca.cert_pem().to_string();
        let authority = Arc::new(LeafAuthority::new(ca)?);
        authority.premint([o.host]);
        let mut token = [0u8; 16];
        crate::secret::fill_random(&mut token)?;
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("authsome:{token}"))
        );
        let pinned = tables.routes();
        let shared = Arc::new(Shared {
            tables,
            authority,
            upstream: o.upstream,
            token: Some(Secret::new(token)),
            pinned,
            connections: Default::default(),
            only: None,
            deny_unknown: false,
            local_ports: None,
            run_id: "bench".into(),
            placeholders: Default::default(),
            redact: o.redact,
            log: crate::request_log::RequestLog::discard(),
            redactors: Default::default(),
            stats: Stats::default(),
            ended: Default::default(),
        });
        let listener = crate::proxy::bind_loopback(0)
            .map_err(|e| Error::io("cannot listen on 127.0.0.1", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot listen on 127.0.0.1", e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        rt.spawn(async move {
            let stopped = async move {
                stopped.await.ok();
            };
            if let Err(e) = workers.serve(listener, sh, stopped).await {
                tracing::warn!(error = %e, "the bench proxy stopped");
            }
        });
        Ok(BenchProxy {
            addr,
            ca_pem,
            shared,
            auth,
            _stop: stop,
        })
    }
}
