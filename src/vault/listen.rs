//! Hearing what the other daemons on a PostgreSQL store changed.
//!
//! Every write that matters to a proxy (a login, logout, revoke, refresh,
//! provider change) sends a notification on [`CHANNEL`] inside its own
//! transaction, so it is delivered exactly when the change commits. This
//! module's thread `LISTEN`s on its own session (outside the pool) and
//! hands each change to the daemon, which rebuilds its routes and forgets
//! cached credentials: within milliseconds of the commit.
//!
//! Failing closed: when the session is lost, the daemon hears
//! [`Change::Lost`] first (it stops trusting its cache: every request
//! reads the store, and fails while the store is down); on reconnect the
//! thread listens again *before* it reports [`Change::Resync`], so nothing
//! sent in the gap is missed (the daemon reloads everything). A session
//! that goes silent is found by a probe every few seconds and TCP
//! keepalives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Vault;
use super::db::{CHANNEL, Topic};
use super::{Store, pg::Connector};

/// What the listener reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Another daemon changed a provider's connections.
    Provider(String),
    /// Another daemon changed the catalogue of custom providers.
    Providers,
    /// Another daemon changed the team's members or grants.
    Team,
    /// The listening session is gone: changes may be missed from now on.
    Lost,
    /// Listening again after a loss: reload everything, and trust what is
    /// heard again.
    Resync,
    /// Reload everything, whatever was heard or missed (every
    /// `RELOAD_EVERY`, listening or not): a notification lost to a
    /// failed apply, or a session that cannot listen while the store still
    /// answers, is made good within that time. `listening`: the session
    /// is up, so what follows will be heard.
    Reload { listening: bool },
}

const WAIT: Duration = Duration::from_millis(250);
const PROBE_EVERY: Duration = Duration::from_secs(3);
/// How stale a replica can be when every notification is lost.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

impl Vault {
    /// Starts the listener thread for a PostgreSQL store (`None` for a
    /// SQLite file: nobody else writes it through a daemon). `on_change` runs
    /// on that thread (a plain thread: it may block on the store). The
    /// thread ends soon after `stop` is set.
    pub fn listen_for_changes(
        &self,
        on_change: Box<dyn Fn(Change) + Send>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
        let Store::Postgres(pg) = &self.store else {
            return Ok(None);
        };
        let connector = pg.connector();
        std::thread::Builder::new()
            .name("authsome-listen".into())
            .spawn(move || run(&connector, &*on_change, &stop))
            .map(Some)
    }
}

fn run(connector: &Connector, on_change: &dyn Fn(Change), stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    let mut lost = false;
    let mut reloaded = Instant::now();
    let reload_if_due = |reloaded: &mut Instant, listening: bool| {
        if reloaded.elapsed() >= RELOAD_EVERY {
            *reloaded = Instant::now();
            on_change(Change::Reload { listening });
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let mut client = match connector.connect().and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(|e| crate::error::Error::db("cannot listen for changes", e))?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, "lost the store's change notifications; serving from the store only");
                    on_change(Change::Lost);
                    lost = true;
                }
                reload_if_due(&mut reloaded, false);
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if lost {
            tracing::info!("listening for the store's changes again");
            on_change(Change::Resync);
            reloaded = Instant::now();
        }
        let mut probed = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let next = {
                use postgres::fallible_iterator::FallibleIterator;
                client.notifications().timeout_iter(WAIT).next()
            };
            match next {
                Ok(Some(n)) => match Topic::parse(n.payload()) {
                    Some(Topic::Provider(p)) => on_change(Change::Provider(p)),
                    Some(Topic::Providers) => on_change(Change::Providers),
                    Some(Topic::Team) => on_change(Change::Team),
                    None => {}
                },
                Ok(None) => {
                    if client.is_closed() {
                        break;
                    }
                    reload_if_due(&mut reloaded, true);
                    if probed.elapsed() >= PROBE_EVERY {
                        probed = Instant::now();
                        if client.simple_query("SELECT 1").is_err() {
                            break;
                        }
                    }
                }
                Err(_) => break,
            }
        }
        tracing::warn!("lost the store's change notifications; serving from the store only");
        on_change(Change::Lost);
        lost = true;
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(d));
    }
}
