//! The proxy's credential cache: ready header values per (provider,
//! connection), so the hot path rarely touches the vault.
//!
//! - **Source as a trait.** [`CredentialSource`] is the in-process
//!   [`CredentialService`] today; a remote daemon (`/api/credentials/resolve`)
//!   can be another implementation without changing the proxy.
//! - **Single flight.** Concurrent misses for one key wait for one
//!   resolution (moka's `try_get_with`): 50 requests that meet an empty
//!   cache cause one vault read (and, with OAuth, one refresh).
//! - **Lifetimes.** An OAuth token is kept until its refresh window
//!   ([`super::refresh_window`] of the lifetime it has left) before it
//!   expires, so a token inside the window is resolved again (and refreshed
//!   by the source when it is due) instead of being served until it dies. API keys are kept
//!   [`API_KEY_TTL`] so changes made by another process show up even without
//!   an invalidation. Errors are never cached: the next request tries again.
//! - **Invalidation.** Login, logout, revoke, refresh and provider changes
//!   call [`CredentialCache::invalidate_provider`] or `invalidate_all`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CredentialService, ResolvedCredential};
use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::routing::RouteTable;

/// How long an API key stays cached without an invalidation.
pub const API_KEY_TTL: Duration = Duration::from_secs(600);

/// Where credentials come from on a cache miss.
pub trait CredentialSource: Send + Sync + 'static {
    /// The credential of `provider`'s `connection` (`None`: its default).
    fn resolve(&self, provider: &str, connection: Option<&str>) -> Result<ResolvedCredential>;
    /// The routing table over the providers that have a connection.
    fn routes(&self) -> Result<RouteTable>;
}

impl CredentialSource for CredentialService {
    fn resolve(&self, provider: &str, connection: Option<&str>) -> Result<ResolvedCredential> {
        self.resolve_connection(provider, connection)
    }

    fn routes(&self) -> Result<RouteTable> {
        CredentialService::routes(self)
    }
}

type Key = (String, String);

struct Lifetime;

impl moka::Expiry<Key, Arc<ResolvedCredential>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<ResolvedCredential>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(ttl(value.expires_at, now_unix()))
    }
}

/// How long a credential may be served from the cache.
fn ttl(expires_at: Option<i64>, now: i64) -> Duration {
    match expires_at {
        None => API_KEY_TTL,
        Some(exp) => {
            let usable = exp - now - super::refresh_window(exp - now);
            Duration::from_secs(usable.clamp(0, API_KEY_TTL.as_secs() as i64) as u64)
        }
    }
}

/// Header values by (provider, connection).
#[derive(Clone)]
pub struct CredentialCache {
    source: Arc<dyn CredentialSource>,
    cache: moka::future::Cache<Key, Arc<ResolvedCredential>>,
    /// Set while changes made elsewhere may go unheard (a shared store's
    /// notifications are lost): every lookup reads the source.
    bypass: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl CredentialCache {
    /// A cache over `source` holding at most `capacity` credentials.
    pub fn new(source: Arc<dyn CredentialSource>, capacity: u64) -> CredentialCache {
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .expire_after(Lifetime)
            .support_invalidation_closures()
            .build();
        CredentialCache {
            source,
            cache,
            bypass: Arc::default(),
        }
    }

    /// The credential, from the cache or (once, however many callers wait) from the source.
    pub async fn get(
        &self,
        provider: &str,
        connection: Option<&str>,
    ) -> std::result::Result<Arc<ResolvedCredential>, Arc<Error>> {
        let key = (provider.to_string(), connection.unwrap_or("").to_string());
        let source = self.source.clone();
        let (p, c) = (key.0.clone(), connection.map(String::from));
        let lookup = async move {
            let r = tokio::task::spawn_blocking(move || source.resolve(&p, c.as_deref()))
                .await
                .map_err(|e| {
                    Error::io(
                        "credential lookup task failed",
                        std::io::Error::other(e.to_string()),
                    )
                })?;
            r.map(Arc::new)
        };
        if self.bypass.load(std::sync::atomic::Ordering::Acquire) {
            return lookup.await.map_err(Arc::new);
        }
        self.cache.try_get_with(key, lookup).await
    }

    /// While set, every lookup reads the source and nothing is cached.
    pub fn set_bypass(&self, on: bool) {
        self.bypass.store(on, std::sync::atomic::Ordering::Release);
        if on {
            self.cache.invalidate_all();
        }
    }

    /// Forgets every cached credential of `provider`.
    pub fn invalidate_provider(&self, provider: &str) {
        let p = provider.to_string();
        if let Err(e) = self.cache.invalidate_entries_if(move |k, _| k.0 == p) {
            tracing::warn!(error = %e, "cannot invalidate by provider; clearing the whole cache");
            self.cache.invalidate_all();
        }
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::providers::{ExportRole, Injection, KeyFormat};
    use crate::secret::Secret;

    struct Counting {
        calls: AtomicUsize,
        expires_in: Option<i64>,
        fail: bool,
    }

    impl CredentialSource for Counting {
        fn resolve(&self, provider: &str, connection: Option<&str>) -> Result<ResolvedCredential> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(Duration::from_millis(20));
            if self.fail {
                return Err(Error::ConnectionNotFound {
                    provider: provider.into(),
                    connection: "default".into(),
                });
            }
            Ok(ResolvedCredential {
                provider: provider.into(),
                connection: connection.unwrap_or("default").into(),
                injection: Injection {
                    name: "Authorization".into(),
                    prefix: "Bearer ".into(),
                    format: KeyFormat::Header,
                    source: ExportRole::AccessToken,
                },
                value: Secret::new(format!("Bearer token-{n}")),
                expires_at: self.expires_in.map(|s| now_unix() + s),
                extra: Vec::new(),
                parts: Vec::new(),
                cookie_names: Vec::new(),
            })
        }

        fn routes(&self) -> Result<RouteTable> {
            Ok(RouteTable::default())
        }
    }

    fn source(expires_in: Option<i64>, fail: bool) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicUsize::new(0),
            expires_in,
            fail,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_misses_resolve_once() {
        let src = source(None, false);
        let cache = CredentialCache::new(src.clone(), 100);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = cache.clone();
            tasks.push(tokio::spawn(async move {
                c.get("github", None).await.unwrap().value.expose().clone()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "Bearer token-1");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidation_forces_a_new_lookup() {
        let src = source(None, false);
        let cache = CredentialCache::new(src.clone(), 100);
        cache.get("github", None).await.unwrap();
        cache.get("github", None).await.unwrap();
        cache.get("openai", None).await.unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
        cache.invalidate_provider("github");
        assert_eq!(
            cache.get("github", None).await.unwrap().value.expose(),
            "Bearer token-3"
        );
        cache.get("openai", None).await.unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 3, "openai stayed cached");
        cache.invalidate_all();
        cache.get("openai", None).await.unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_expired_token_is_not_served_from_cache() {
        let src = source(Some(0), false);
        let cache = CredentialCache::new(src.clone(), 100);
        cache.get("github", None).await.unwrap();
        cache.get("github", None).await.unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let src = source(None, true);
        let cache = CredentialCache::new(src.clone(), 100);
        assert!(cache.get("github", None).await.is_err());
        assert!(cache.get("github", None).await.is_err());
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ttl_rules() {
        assert_eq!(ttl(None, 0), API_KEY_TTL);
        assert_eq!(ttl(Some(1000), 0), Duration::from_secs(600));
        assert_eq!(ttl(Some(900), 0), Duration::from_secs(600));
        // Inside the 300 s window: kept for half of what is left, never to expiry.
        assert_eq!(ttl(Some(400), 0), Duration::from_secs(200));
        assert_eq!(ttl(Some(100), 0), Duration::from_secs(50));
        assert_eq!(ttl(Some(20), 0), Duration::from_secs(10));
        assert_eq!(ttl(Some(0), 0), Duration::ZERO);
        assert_eq!(ttl(Some(-5), 0), Duration::ZERO);
    }

    #[tokio::test]
    async fn the_service_is_a_source() {
        let dir = tempfile::tempdir().unwrap();
        let svc = CredentialService::open_with(
            crate::home::Home::new(dir.path()),
            &crate::vault::MasterKey::from_bytes([9; 32], crate::vault::KeySource::Env),
        )
        .unwrap();
        svc.login_api_key("ahrefs", "default", Secret::new("k1".into()), false)
            .unwrap();
        let svc = Arc::new(svc);
        let cache = CredentialCache::new(svc.clone(), 10);
        assert_eq!(
            cache.get("ahrefs", None).await.unwrap().value.expose(),
            "Bearer k1"
        );
        assert!(
            cache.get("apollo", None).await.is_err(),
            "fails closed without a connection"
        );
    }
}
