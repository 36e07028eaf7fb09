//! [`ProxyTables`]: the two tables the proxy reads on every request, the
//! routing table (host → provider) and the credential cache, kept in step
//! with the vault.
//!
//! [`Logins::commit`](crate::auth_flow::logins::Logins::commit) calls
//! [`ProxyTables::changed`] after every login, logout, revoke and provider
//! change, and the refresh loop after every refresh. That rebuilds the routing table (a vault
//! query, off the hot path) and swaps it in atomically, so requests in
//! flight keep the table they started with and nothing is dropped; then it
//! forgets the cached credentials of the provider concerned.

use std::sync::{Arc, RwLock};

use super::ResolvedCredential;
use super::cache::{CredentialCache, CredentialSource};
use crate::error::{Error, Result};
use crate::routing::RouteTable;

/// How many credentials the proxy keeps decrypted at most.
const CACHE_CAPACITY: u64 = 1024;

/// The routing table and credential cache the proxy reads.
pub struct ProxyTables {
    source: Arc<dyn CredentialSource>,
    cache: CredentialCache,
    routes: RwLock<Arc<RouteTable>>,
}

impl std::fmt::Debug for ProxyTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTables")
            .field("routes", &self.routes().len())
            .field("cache", &self.cache)
            .finish()
    }
}

impl ProxyTables {
    /// Loads the routing table from `source` (blocking: call it off the
    /// async workers or at start-up).
    pub fn new(source: Arc<dyn CredentialSource>) -> Result<ProxyTables> {
        let routes = source.routes()?;
        Ok(ProxyTables {
            cache: CredentialCache::new(source.clone(), CACHE_CAPACITY),
            source,
            routes: RwLock::new(Arc::new(routes)),
        })
    }

    /// The current routing table (a cheap `Arc` clone).
    pub fn routes(&self) -> Arc<RouteTable> {
        match self.routes.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The credential of `provider`'s `connection` (`None`: its default).
    pub async fn credential(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> std::result::Result<Arc<ResolvedCredential>, Arc<Error>> {
        self.cache.get(provider, connection).await
    }

    /// Something changed for `provider` (`None`: anything, e.g. a provider
    /// file): rebuild the routing table and forget cached credentials.
    /// Blocking (one vault query). The cache is cleared even when the
    /// rebuild fails, so a stale credential is never served.
    pub fn changed(&self, provider: Option<&str>) -> Result<()> {
        match provider {
            Some(p) => self.cache.invalidate_provider(p),
            None => self.cache.invalidate_all(),
        }
        let fresh = Arc::new(self.source.routes()?);
        match self.routes.write() {
            Ok(mut r) => *r = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// Changes made by other daemons on a shared store may go unheard
    /// (`true`): stop trusting the cache, so every request reads the store
    /// (and fails while it is unreachable). `false` when they are heard
    /// again, after a full reload.
    pub fn set_degraded(&self, degraded: bool) {
        self.cache.set_bypass(degraded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::CredentialService;
    use crate::secret::Secret;

    #[tokio::test]
    async fn login_and_logout_show_up_after_changed() {
        let dir = tempfile::tempdir().unwrap();
        let svc = Arc::new(
            CredentialService::open_with(
                crate::home::Home::new(dir.path()),
                &crate::vault::MasterKey::from_bytes([7; 32], crate::vault::KeySource::Env),
            )
            .unwrap(),
        );
        let tables = ProxyTables::new(svc.clone()).unwrap();
        assert!(tables.routes().is_empty());
        svc.login_api_key("ahrefs", "default", Secret::new("k1".into()), false)
            .unwrap();
        assert!(tables.routes().is_empty(), "not before changed()");
        tables.changed(Some("ahrefs")).unwrap();
        assert!(!tables.routes().is_empty());
        assert_eq!(
            tables
                .credential("ahrefs", None)
                .await
                .unwrap()
                .value
                .expose(),
            "Bearer k1"
        );
        svc.logout("ahrefs", None).unwrap();
        tables.changed(Some("ahrefs")).unwrap();
        assert!(tables.routes().is_empty());
        assert!(
            tables.credential("ahrefs", None).await.is_err(),
            "fails closed"
        );
    }
}
