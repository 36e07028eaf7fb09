//! The child-facing TLS: server configs for intercepted provider hosts,
//! minted by our [`Ca`] and handed to hudsucker through its
//! `CertificateAuthority` trait.
//!
//! Why not hudsucker's bundled `RcgenAuthority`: it signs every leaf with the
//! CA's own key as the leaf key and knows nothing of name constraints. Ours
//! gives each leaf its own key (see `ca.rs`) and refuses to serve any name
//! the CA may not speak for: such a handshake fails instead of presenting a
//! certificate the client would (rightly) reject anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hudsucker::certificate_authority::CertificateAuthority;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ca::Ca;
use crate::error::{Error, Result};

/// Server configs kept per host before the map is cleared.
const MAX_CONFIGS: usize = 4096;

/// Mints (and caches) the TLS server config for each intercepted host.
pub struct LeafAuthority {
    ca: Arc<Ca>,
    configs: Mutex<HashMap<String, (Arc<ServerConfig>, Instant)>>,
    refuse: Arc<ServerConfig>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for LeafAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafAuthority")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Answers every handshake with "no certificate": the handshake fails.
#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

fn tls_err(e: rustls::Error) -> Error {
    Error::invalid(format!("cannot set up TLS: {e}"), None)
}

impl LeafAuthority {
    /// An authority over `ca`.
    pub fn new(ca: Arc<Ca>) -> Result<LeafAuthority> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let refuse = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCertificate));
        Ok(LeafAuthority {
            ca,
            configs: Mutex::new(HashMap::new()),
            refuse: Arc::new(refuse),
            provider,
        })
    }

    /// The CA behind this authority.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// The server config for `host`, minted on first use. `None` when the CA
    /// may not sign for `host`.
    pub fn config_for(&self, host: &str) -> Option<Arc<ServerConfig>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let fresh_for =
            Duration::from_secs((self.ca.validity().whole_seconds() / 2).max(60) as u64);
        if let Some((c, at)) = self.lock().get(&host)
            && at.elapsed() < fresh_for
        {
            return Some(c.clone());
        }
        if !self.ca.permits(&host) {
            return None;
        }
        match self.build(&host) {
            Ok(cfg) => {
                let cfg = Arc::new(cfg);
                let mut map = self.lock();
                if map.len() >= MAX_CONFIGS {
                    map.clear();
                }
                map.insert(host, (cfg.clone(), Instant::now()));
                Some(cfg)
            }
            Err(e) => {
                tracing::error!(error = %e, %host, "cannot mint a leaf certificate");
                None
            }
        }
    }

    /// Mints the leaves for `hosts` now, so no request waits for minting.
    pub fn premint<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) {
        for h in hosts {
            self.config_for(h);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<ServerConfig>, Instant)>> {
        self.configs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn build(&self, host: &str) -> Result<ServerConfig> {
        let leaf = self.ca.leaf(host)?;
        let chain = vec![CertificateDer::from(leaf.cert_der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.to_vec()));
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_err)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Resumed handshakes are ~200 µs cheaper on a new connection.
        if let Ok(t) = rustls::crypto::aws_lc_rs::Ticketer::new() {
            cfg.ticketer = t;
        }
        Ok(cfg)
    }
}

impl CertificateAuthority for LeafAuthority {
    async fn gen_server_config(&self, authority: &Authority) -> Arc<ServerConfig> {
        self.config_for(authority.host())
            .unwrap_or_else(|| self.refuse.clone())
    }
}
