//! The PostgreSQL store: a team's vault, shared by several daemons.
//!
//! Why the blocking `postgres` client: the vault is synchronous and is
//! called from `spawn_blocking` threads (or plain threads), exactly like
//! SQLite. Each pooled client drives its connection on a small runtime of
//! its own, so a call made on an async worker would panic ("cannot start a
//! runtime from within a runtime") instead of blocking it: tests drive the
//! store from `spawn_blocking` as the daemon does.
//!
//! The pool is a `Mutex<Vec<Client>>` with a `Condvar`: a broken client is
//! dropped, never handed out again, and a new one is connected on demand.
//!
//! Connection policy (the store holds every team secret, sealed):
//! - a host that is not loopback (or a Unix socket) needs `sslmode=require`;
//!   `prefer` (a silent downgrade) is refused;
//! - TLS is rustls with the system's roots plus `AUTHSOME_DATABASE_CA_FILE`,
//!   host names always verified;
//! - the password is never printed: [`PgStore::location`] drops it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::{Client, Config, NoTls, Socket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};

/// Per-session settings: durable commits, bounded waits on locks, and no
/// transaction left open by a stuck caller.
const SESSION: &str = "SET synchronous_commit = on; SET lock_timeout = '15s'; \
                       SET idle_in_transaction_session_timeout = '60s'";

/// A PostgreSQL store's connections.
pub(crate) struct PgStore {
    connector: Connector,
    idle: Mutex<Pool>,
    freed: Condvar,
    max: usize,
}

/// What it takes to open a session: a cheap clone for the change listener's
/// thread.
#[derive(Clone)]
pub(crate) struct Connector {
    config: Config,
    tls: Option<RustlsConnect>,
    location: String,
}

struct Pool {
    idle: Vec<Client>,
    /// Clients out of the pool or being connected.
    out: usize,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.connector.location)
            .finish()
    }
}

/// True when `url` names a PostgreSQL store (`postgres://`, `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Parses `url` and checks the connection policy; connects nothing yet.
    pub(crate) fn new(
        url: &str,
        pool: usize,
        ca_file: Option<&std::path::Path>,
    ) -> Result<PgStore> {
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            Error::invalid(
                format!("the store URL is not a PostgreSQL URL: {}", first_line(&e)),
                Some("use postgres://USER@HOST:PORT/DATABASE?sslmode=require".into()),
            )
        })?;
        let location = describe(&config);
        let remote = config.get_hosts().iter().any(|h| match h {
            Host::Tcp(name) => !is_loopback_name(name),
            Host::Unix(_) => false,
        });
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(RustlsConnect::new(ca_file)?),
            SslMode::Prefer if url.contains("sslmode=prefer") => {
                return Err(Error::invalid(
                    "sslmode=prefer may silently fall back to plaintext",
                    Some("use sslmode=require (or sslmode=disable for a loopback database)".into()),
                ));
            }
            // tokio-postgres's default is `prefer`: for us, no TLS unless asked.
            _ if remote => {
                return Err(Error::invalid(
                    format!("the store at {location} is not on this machine and sslmode=require is not set"),
                    Some("add ?sslmode=require to the URL: the database holds every team secret (sealed) and the connection carries its password".into()),
                ));
            }
            _ => None,
        };
        if tls.is_none() {
            config.ssl_mode(SslMode::Disable);
        }
        config
            .application_name("authsome")
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        Ok(PgStore {
            connector: Connector {
                config,
                tls,
                location,
            },
            idle: Mutex::new(Pool {
                idle: Vec::new(),
                out: 0,
            }),
            freed: Condvar::new(),
            max: pool.max(2),
        })
    }

    /// `postgres://user@host:port/db`: never the password.
    pub(crate) fn location(&self) -> &str {
        &self.connector.location
    }

    /// How to open sessions outside the pool (the change listener's).
    pub(crate) fn connector(&self) -> Connector {
        self.connector.clone()
    }

    fn connect(&self) -> Result<Client> {
        self.connector.connect()
    }
}

impl Connector {
    /// A new session, configured.
    pub(crate) fn connect(&self) -> Result<Client> {
        let mut c = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
        .map_err(|e| Error::db(format!("cannot reach the store at {}", self.location), e))?;
        c.batch_execute(SESSION)
            .map_err(|e| Error::db("cannot configure a store session", e))?;
        Ok(c)
    }
}

impl PgStore {
    /// A pooled client; waits (up to 15 s) when all are in use.
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut pool = self.lock()?;
        loop {
            while let Some(c) = pool.idle.pop() {
                if !c.is_closed() {
                    pool.out += 1;
                    return Ok(Pooled {
                        store: self,
                        client: Some(c),
                    });
                }
            }
            if pool.out < self.max {
                pool.out += 1;
                drop(pool);
                return match self.connect() {
                    Ok(c) => Ok(Pooled {
                        store: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        self.lock()?.out -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Error::db(
                    "cannot get a store connection",
                    crate::error::DbError::Busy(self.max),
                ));
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .map_err(|_err| poisoned())?
                .0;
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Pool>> {
        self.idle.lock().map_err(|_err| poisoned())
    }
}

fn poisoned() -> Error {
    Error::invalid("the store's pool lock was poisoned by a panic", None)
}

/// A client borrowed from the pool; goes back when dropped, unless broken.
pub(crate) struct Pooled<'a> {
    store: &'a PgStore,
    client: Option<Client>,
}

impl Pooled<'_> {
    /// The client (present until the guard is dropped).
    pub(crate) fn client(&mut self) -> Result<&mut Client> {
        self.client.as_mut().ok_or_else(|| {
            Error::invalid("a store connection was used after it was returned", None)
        })
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.store.idle.lock() {
            pool.out = pool.out.saturating_sub(1);
            if let Some(c) = self.client.take()
                && !c.is_closed()
            {
                pool.idle.push(c);
            }
        }
        self.store.freed.notify_one();
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn describe(c: &Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = c.get_dbname().unwrap_or("");
    format!("postgres://{user}{host}:{port}/{db}")
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

// === TLS: rustls under tokio-postgres ===

/// tokio-postgres's TLS hook over rustls (aws-lc, already built for the
/// proxy). No channel binding: SCRAM-SHA-256 works, `-PLUS` does not.
#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    fn new(ca_file: Option<&std::path::Path>) -> Result<RustlsConnect> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ignored = roots.add(c);
        }
        if let Some(path) = ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect())
                .map_err(|e| {
                    Error::invalid(
                        format!("cannot read the store's CA file {}: {e}", path.display()),
                        Some(
                            "AUTHSOME_DATABASE_CA_FILE names a PEM file of CA certificates".into(),
                        ),
                    )
                })?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::invalid(
                        format!("a certificate in {} is not usable: {e}", path.display()),
                        None,
                    )
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(format!("TLS setup failed: {e}"), None))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(RustlsConnect(Arc::new(config)))
    }
}

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<RustlsConnector, Self::Error> {
        Ok(RustlsConnector {
            config: self.0.clone(),
            name: rustls::pki_types::ServerName::try_from(domain.to_string())?,
        })
    }
}

struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnector {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_store_needs_tls_and_prefer_is_refused() {
        let err = PgStore::new("postgres://u:pw@db.example.com/authsome", 4, None).unwrap_err();
        assert!(err.to_string().contains("sslmode=require"), "{err}");
        assert!(!format!("{err:?}").contains("pw"));
        let err = PgStore::new("postgres://u@127.0.0.1/a?sslmode=prefer", 4, None).unwrap_err();
        assert!(err.to_string().contains("prefer"), "{err}");
        assert!(PgStore::new("postgres://u@db.example.com/a?sslmode=require", 4, None).is_ok());
        assert!(PgStore::new("postgres://u@127.0.0.1:5433/a", 4, None).is_ok());
        assert!(PgStore::new("postgres://u@localhost/a", 4, None).is_ok());
    }

    #[test]
    fn the_location_never_shows_the_password() {
        let s = PgStore::new("postgres://alice:s3cr3t-pw@127.0.0.1:5433/team", 4, None).unwrap();
        assert_eq!(s.location(), "postgres://alice@127.0.0.1:5433/team");
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
