//! Shared state of the daemon's handlers: `Arc` handles only.

use std::sync::Arc;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::auth_flow::logins::Logins;
use crate::credentials::CredentialService;
use crate::error::Error;
use crate::pop::Verifier;
use crate::request_log::RequestLog;
use crate::secret::Secret;

use super::dashboard_auth::DashboardAuth;
use super::error::ApiError;

/// Facts about this daemon, fixed at start.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// Crate version.
    pub version: String,
    /// `$AUTHSOME_HOME`.
    pub home: std::path::PathBuf,
    /// A short, stable id of the home (hash); on `/api/whoami` (PoP) only.
    pub home_id: String,
    /// The URL browsers and OAuth callbacks use (`AUTHSOME_SERVER_BASE_URL` or the bound address).
    pub base_url: String,
    /// Accepted `Host` header values.
    pub allowed_hosts: Vec<String>,
    /// Where the master key came from (`env`, `key_file`, `keyring`, `local_key`).
    pub key_source_id: &'static str,
    /// Human description of the key source.
    pub key_source: String,
    /// The daemon-side settings it started with ([`crate::config::DAEMON_SIDE`]),
    /// as their variables had them; on `/api/whoami` (PoP) only.
    pub settings: std::collections::BTreeMap<String, String>,
    /// The key in `daemon.json` this daemon proves it holds (`/api/health/proof`).
    pub proof_key: Arc<Secret<String>>,
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Reads (connections, providers, audit) go straight to the service.
    pub svc: Arc<CredentialService>,
    /// Every login and every change goes through here.
    pub logins: Arc<Logins>,
    pub pop: Arc<Verifier>,
    /// Who may call, with which role, and what each member may use.
    pub team: Arc<crate::team::Team>,
    pub info: Arc<DaemonInfo>,
    /// Notified by `POST /api/daemon/shutdown`.
    pub shutdown: Arc<tokio::sync::Notify>,
    /// Per-run proxy listeners (the proxy engine, wired in by `app`).
    pub runs: Arc<dyn ProxyRuns>,
    /// What the proxy handled (`GET /api/requests` reads it; the proxy records).
    pub requests: RequestLog,
    /// The dashboard's one-time links and browser sessions (memory only).
    pub dashboard: Arc<DashboardAuth>,
    /// `doctor`'s checks, run in this process (wired in by `app`, so
    /// `daemon` never imports `diagnostics`).
    pub health: Arc<dyn HealthSource>,
}

/// How one health check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Pass,
    Warn,
    Fail,
}

/// One of `doctor`'s checks, for display: what was looked at, what was
/// found, and the command that fixes it. Never a secret.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub name: String,
    pub status: HealthStatus,
    pub detail: String,
    pub hint: Option<String>,
}

/// The checks `authsome doctor` runs, as this daemon sees them (its home,
/// its settings, this kernel). Blocking: file reads, the vault, a probe.
pub trait HealthSource: Send + Sync + std::fmt::Debug + 'static {
    fn checks(&self) -> Vec<HealthCheck>;
    /// Drops a kept result, so the next [`checks`](Self::checks) runs them
    /// again (the Health page's "Check again").
    fn forget(&self) {}
}

/// What `POST /api/proxy/runs` asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The connection to use per provider (default: the provider's default).
    pub connections: BTreeMap<String, String>,
    /// Refuse hosts no provider claims.
    pub deny_unknown: bool,
    /// The `authsome run` process; the run ends when it is gone.
    pub client_pid: Option<u32>,
    /// The child is confined: the proxy reaches no local service for it
    /// except `allow_localhost`.
    pub sandbox: bool,
    /// Host loopback ports the confined child may reach.
    pub allow_localhost: Vec<u16>,
    /// Replace injected secrets in responses.
    pub redact: bool,
    /// The child's command, already masked (`daemon::command::mask`).
    pub command: Vec<String>,
    /// The team member the run is for (`None`: an admin's run, unscoped).
    pub member: Option<String>,
    /// Who started it (a member or an admin): its runs end when that
    /// identity loses its role or a grant.
    pub starter: Option<String>,
    /// A member's run: the only providers it may use. Every other provider
    /// host is refused before anything is dialled (`None`: all).
    pub only: Option<std::collections::BTreeSet<String>>,
}

/// A started run.
#[derive(Debug)]
pub struct RunStarted {
    pub id: String,
    pub port: u16,
    /// The per-run proxy token (goes into the child's `HTTPS_PROXY`).
    pub token: Secret<String>,
    /// The run's CA certificate, PEM.
    pub ca_pem: String,
    /// The DNS names the run's CA may sign for.
    pub hosts: Vec<String>,
    /// The providers whose hosts this run intercepts.
    pub providers: Vec<String>,
    /// Paths the run's child must not reach when sandboxed.
    pub protect: Vec<std::path::PathBuf>,
    /// Provider → the placeholder its secret is replaced by (fresh per run).
    pub placeholders: std::collections::BTreeMap<String, String>,
    /// `HOST:PORT` of the team server's proxy listener (`--proxy-listen`),
    /// where a remote `authsome run` sends its child's traffic (over TLS).
    pub remote_proxy: Option<String>,
}

/// A boxed future (the trait is object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts and ends proxy listeners. Implemented in `app` over the proxy
/// engine, so `daemon` never imports `proxy`.
pub trait ProxyRuns: Send + Sync + std::fmt::Debug + 'static {
    /// Opens a per-run listener with its own CA and token.
    fn start(&self, req: RunRequest) -> BoxFuture<'_, Result<RunStarted, Error>>;
    /// Closes a run's listener. False when no such run.
    fn end(&self, id: &str) -> BoxFuture<'_, bool>;
    /// A run's refusals numbered after `after`, and the last number (`None`:
    /// no such run).
    fn refusals(&self, id: &str, after: u64) -> Option<(Vec<(u64, String)>, u64)>;
    /// The open runs, for display (no tokens).
    fn list(&self) -> Vec<crate::api::RunSummary>;
    /// The member a run is for: `None` when there is no such run,
    /// `Some(None)` for an admin's run.
    fn member_of(&self, _id: &str) -> Option<Option<String>> {
        None
    }
    /// Ends every run `member` started or is scoped to (removed from the
    /// team, its role or a grant changed); how many.
    fn end_member(&self, _member: &str) -> usize {
        0
    }
    /// The system-wide listener's port and counters while it listens (no
    /// token, no side effect; `None` also while it is being started).
    fn system_listener(&self) -> Option<(u16, crate::api::ProxyStats)> {
        None
    }
    /// Creates (if needed) the persistent CA and, with `listen`, starts the
    /// system-wide listener; describes both.
    fn system(&self, listen: bool) -> BoxFuture<'_, Result<crate::api::ProxySystem, Error>>;
}

impl AppState {
    /// Makes a roster the one the daemon trusts and authorises by (after a
    /// load or a team change): the team, then the PoP verifier.
    pub fn team_changed(&self, roster: crate::team::Roster) {
        let lost = crate::team::Roster::lost(&self.team.roster(), &roster);
        self.team.set(roster);
        let trusted = self.team.trusted();
        self.pop.set_trusted(trusted.iter().map(String::as_str));
        // Runs started under rights their starter no longer has end now.
        for did in lost {
            let n = self.runs.end_member(&did);
            if n > 0 {
                tracing::info!(member = %did, runs_ended = n, "the team changed: runs ended");
            }
        }
    }

    /// Records an event that changes nothing (a resolved credential, a run
    /// started) in the audit log.
    pub async fn audit(
        &self,
        event: &'static str,
        provider: Option<String>,
        connection: Option<String>,
        actor: Option<String>,
        outcome: &'static str,
        detail: serde_json::Value,
    ) {
        let change = crate::auth_flow::logins::Change {
            event,
            provider,
            connection,
            actor,
            detail,
            scope: crate::auth_flow::logins::Scope::Nothing,
        };
        self.logins.record(change, outcome).await;
    }

    /// Reads through the credential service, on the blocking pool (SQLite
    /// calls block). Changes go through [`Logins`] instead.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialService) -> Result<T, Error> + Send + 'static,
    {
        self.logins.blocking(f).await.map_err(ApiError::from)
    }
}
