//! Proxy listeners of the daemon: one per `authsome run`, and the standing
//! system-wide one. Implements the daemon's [`ProxyRuns`] over the proxy
//! engine (the only place the two front ends meet).
//!
//! A run gets a fresh P-256 CA held in memory only, name-constrained to the
//! hosts of the providers connected when it starts; leaves for those hosts
//! are minted before the listener opens; a 256-bit proxy token; and a
//! loopback listener on an ephemeral port. It ends when `authsome run` says
//! so (`DELETE /api/proxy/runs/{id}`) or when that process is gone (checked
//! every second), so a `kill -9` of the CLI does not leave a listener open.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api;
use crate::ca::{Ca, RUN_VALIDITY};
use crate::clock::now_unix;
use crate::credentials::CredentialService;
use crate::credentials::proxy_tables::ProxyTables;
use crate::daemon::state::{BoxFuture, ProxyRuns, RunRequest, RunStarted};
use crate::error::{Error, Result};
use crate::home;
use crate::proxy::tls::LeafAuthority;
use crate::proxy::upstream::Upstream;
use crate::proxy::{self, Shared, Stats};
use crate::routing::RouteTable;
use crate::secret::Secret;

/// The system-wide CA's validity.
pub const SYSTEM_CA_VALIDITY: time::Duration = time::Duration::days(365);
/// Common name of the system-wide CA.
pub const SYSTEM_CA_NAME: &str = "authsome local CA";
/// A name no real host has (RFC 6761), for a run's CA when no provider is connected.
const NOTHING: &str = "no-provider.invalid";

struct RunEntry {
    port: u16,
    providers: Vec<String>,
    started_at: i64,
    client_pid: Option<u32>,
    /// The hosts the run's CA signs for (shown by the dashboard).
    hosts: Vec<String>,
    /// The child is confined.
    sandbox: bool,
    /// The child's command, masked by the daemon.
    command: Vec<String>,
    /// The team member the run is for (`None`: an admin's).
    member: Option<String>,
    /// Who started it.
    starter: Option<String>,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Listeners handed over later (a sandboxed child's, see [`Runs::attach`]).
    /// (They live in the child's network namespace: no host address of
    /// them can be dialled, so the loop guard needs no entry for them.)
    more: Vec<tokio::sync::oneshot::Sender<()>>,
    /// One per listener, answered once it is closed.
    closed: Vec<tokio::sync::oneshot::Receiver<()>>,
    /// In the loop guard's set while the run exists.
    _own: proxy::upstream::OwnRegistration,
    /// Last time `authsome run` asked about it (the lease of a run without
    /// a local client process, see [`LEASE`]).
    seen: std::time::Instant,
}

/// How long a run without a local client process (a remote `authsome
/// run`, which polls its refusals every 500 ms) lives unasked.
pub const LEASE: Duration = Duration::from_secs(30);

impl RunEntry {
    /// Marks the run ended and closes every listener it has.
    fn close(&mut self) {
        self.shared.ended.store(true, Ordering::Release);
        for stop in self.stop.take().into_iter().chain(self.more.drain(..)) {
            stop.send(()).ok();
        }
    }
}

struct SystemEntry {
    port: u16,
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _own: proxy::upstream::OwnRegistration,
}

/// The daemon's proxy listeners.
pub struct Runs {
    tables: Arc<ProxyTables>,
    svc: Arc<CredentialService>,
    upstream: Upstream,
    home: PathBuf,
    proxy_port: u16,
    deny_unknown: bool,
    redact: bool,
    request_log: crate::request_log::RequestLog,
    runs: Arc<Mutex<HashMap<String, RunEntry>>>,
    system: tokio::sync::Mutex<Option<SystemEntry>>,
    workers: Arc<proxy::Workers>,
    protect: Vec<PathBuf>,
    remote_proxy: Option<String>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("runs", &lock(&self.runs).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Options fixed when the daemon starts.
#[derive(Debug)]
pub struct RunsOptions {
    pub tables: Arc<ProxyTables>,
    pub svc: Arc<CredentialService>,
    pub upstream: Upstream,
    pub daemon_addr: SocketAddr,
    pub home: PathBuf,
    pub proxy_port: u16,
    pub deny_unknown: bool,
    /// Response redaction for the system-wide listener (runs say their own).
    pub redact: bool,
    /// The proxy's threads, which serve every listener.
    pub workers: proxy::Workers,
    /// Paths a sandboxed child must not reach (the home, a master-key file).
    pub protect: Vec<PathBuf>,
    /// Where every listener records what it handled (`RequestLog::record`
    /// never blocks).
    pub request_log: crate::request_log::RequestLog,
    /// `HOST:PORT` of the team server's proxy listener, told to every run.
    pub remote_proxy: Option<String>,
}

impl Runs {
    /// No listeners yet.
    pub fn new(o: RunsOptions) -> Runs {
        // Every listener refuses to proxy to any of them (the set is shared
        // through `upstream`; listeners add themselves while they are open).
        o.upstream.own.add(o.daemon_addr);
        Runs {
            tables: o.tables,
            svc: o.svc,
            upstream: o.upstream,
            home: o.home,
            proxy_port: o.proxy_port,
            deny_unknown: o.deny_unknown,
            redact: o.redact,
            request_log: o.request_log,
            runs: Arc::new(Mutex::new(HashMap::new())),
            system: tokio::sync::Mutex::new(None),
            workers: Arc::new(o.workers),
            protect: o.protect,
            remote_proxy: o.remote_proxy,
        }
    }

    /// The loopback port of the run whose proxy token is `token` (compared
    /// in constant time), for the team server's proxy listener.
    pub fn port_for_token(&self, token: &str) -> Option<u16> {
        lock(&self.runs)
            .values()
            .find(|e| {
                !e.shared.ended.load(Ordering::Acquire)
                    && e.shared.token.as_ref().is_some_and(|t| {
                        crate::secret::ct_eq(t.expose().as_bytes(), token.as_bytes())
                    })
            })
            .map(|e| e.port)
    }

    /// Ends run `id` (its listeners are told to close); what to wait on for
    /// them to be closed, or `None` when there is no such run.
    fn end_now(&self, id: &str) -> Option<Vec<tokio::sync::oneshot::Receiver<()>>> {
        let mut e = lock(&self.runs).remove(id)?;
        e.close();
        tracing::info!(run = %id, "run ended");
        Some(std::mem::take(&mut e.closed))
    }

    /// Closes every listener (daemon shutdown).
    pub fn end_all(&self) {
        let ids: Vec<String> = lock(&self.runs).keys().cloned().collect();
        for id in ids {
            self.end_now(&id);
        }
        if let Ok(mut s) = self.system.try_lock()
            && let Some(mut e) = s.take()
        {
            e.shared.ended.store(true, Ordering::Release);
            if let Some(stop) = e.stop.take() {
                stop.send(()).ok();
            }
        }
    }

    fn token() -> Result<Secret<String>> {
        let mut b = [0u8; 32];
        crate::secret::fill_random(&mut b)?;
        Ok(Secret::new(b.iter().map(|x| format!("{x:02x}")).collect()))
    }

    async fn start_run(&self, req: RunRequest) -> Result<RunStarted> {
        let routes = self.tables.routes();
        let (mut names, providers): (Vec<String>, Vec<String>) = match &req.only {
            None => (
                routes.ca_names(),
                routes.providers().iter().map(|p| p.to_string()).collect(),
            ),
            // A member's run: its CA covers the granted providers' hosts
            // only, and only they get a placeholder.
            Some(only) => {
                let registry = self.svc.registry();
                let defs: Vec<_> = only
                    .iter()
                    .filter_map(|p| registry.get(p).map(|e| e.def.clone()))
                    .collect();
                let granted = RouteTable::build(defs.iter().map(|d| d.as_ref()));
                (
                    granted.ca_names(),
                    routes
                        .providers()
                        .iter()
                        .filter(|p| only.contains(p.as_ref()))
                        .map(|p| p.to_string())
                        .collect(),
                )
            }
        };
        if names.is_empty() {
            names.push(NOTHING.into());
        }
        let (authority, ca_pem) = {
            let names = names.clone();
            tokio::task::spawn_blocking(move || -> Result<(Arc<LeafAuthority>, String)> {
                let ca = Arc::new(Ca::generate("authsome run CA", &names, RUN_VALIDITY)?);
                let pem = ca.cert_pem().to_string();
                let authority = Arc::new(LeafAuthority::new(ca)?);
                authority.premint(names.iter().map(String::as_str));
                Ok((authority, pem))
            })
            .await
            .map_err(|e| Error::io("CA task failed", std::io::Error::other(e.to_string())))??
        };
        let listener = proxy::bind_loopback(0)
            .map_err(|e| Error::io("cannot open a loopback port for the run's proxy", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the proxy's address", e))?;
        let token = Self::token()?;
        let mut id_bytes = [0u8; 8];
        crate::secret::fill_random(&mut id_bytes)?;
        let id: String = id_bytes.iter().map(|x| format!("{x:02x}")).collect();
        let placeholders = self.placeholders(&providers)?;
        let shared = Arc::new(Shared {
            tables: self.tables.clone(),
            authority,
            upstream: self.upstream.clone(),
            token: Some(token.duplicate()),
            pinned: routes.clone(),
            connections: req.connections.into_iter().collect(),
            only: req.only,
            deny_unknown: req.deny_unknown || self.deny_unknown,
            local_ports: req.sandbox.then(|| req.allow_localhost.clone()),
            run_id: id.clone(),
            placeholders: proxy::placeholders::Placeholders::new(placeholders.clone()),
            redact: req.redact,
            log: self.request_log.clone(),
            redactors: Default::default(),
            stats: Stats::default(),
            ended: std::sync::atomic::AtomicBool::new(false),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            stop_rx.await.ok();
        };
        let serve_shared = shared.clone();
        let run_id = id.clone();
        let workers = self.workers.clone();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(e) = workers.serve(listener, serve_shared, shutdown).await {
                tracing::error!(run = %run_id, error = %e, "run proxy failed");
            }
            closed_tx.send(()).ok();
        });
        lock(&self.runs).insert(
            id.clone(),
            RunEntry {
                port: addr.port(),
                providers: providers.clone(),
                started_at: now_unix(),
                client_pid: req.client_pid,
                hosts: names.iter().filter(|n| *n != NOTHING).cloned().collect(),
                sandbox: req.sandbox,
                command: req.command.clone(),
                member: req.member.clone(),
                starter: req.starter.clone(),
                shared,
                stop: Some(stop_tx),
                more: Vec::new(),
                closed: vec![closed_rx],
                _own: self.upstream.own.register(addr),
                seen: std::time::Instant::now(),
            },
        );
        if req.client_pid.is_none() {
            // No process here to watch: the run lives while it is polled.
            let runs = self.runs.clone();
            let id = id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let expired = match lock(&runs).get(&id) {
                        None => return,
                        Some(e) => e.seen.elapsed() > LEASE,
                    };
                    if expired {
                        tracing::info!(run = %id, "the run was not polled for {} s; closing its proxy", LEASE.as_secs());
                        if let Some(mut e) = lock(&runs).remove(&id) {
                            e.close();
                        }
                        return;
                    }
                }
            });
        }
        if let Some(pid) = req.client_pid {
            let runs = self.runs.clone();
            let id = id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if !lock(&runs).contains_key(&id) {
                        return;
                    }
                    if !pid_alive(pid) {
                        tracing::info!(run = %id, pid, "the run's process is gone; closing its proxy");
                        if let Some(mut e) = lock(&runs).remove(&id) {
                            e.close();
                        }
                        return;
                    }
                }
            });
        }
        Ok(RunStarted {
            id,
            port: addr.port(),
            token,
            ca_pem,
            hosts: names,
            providers,
            protect: self.protect.clone(),
            placeholders,
            remote_proxy: self.remote_proxy.clone(),
        })
    }

    /// A fresh placeholder per provider, of the shape its definition gives.
    fn placeholders(&self, providers: &[String]) -> Result<BTreeMap<String, String>> {
        let registry = self.svc.registry();
        providers
            .iter()
            .map(|p| {
                let value = match registry.get(p) {
                    Some(e) => crate::credentials::new_placeholder(&e.def)?,
                    None => crate::credentials::placeholder_of_shape(
                        &crate::providers::schema::PlaceholderShape::default_shape(),
                    )?,
                };
                Ok((p.clone(), value))
            })
            .collect()
    }

    /// Serves run `id` on one more listener: the one a sandboxed child
    /// opened inside its network namespace, handed over by `authsome run`
    /// (which proves it started the run with the run's proxy token).
    pub fn attach(&self, id: &str, token: &str, listener: std::net::TcpListener) -> Result<()> {
        let mut runs = lock(&self.runs);
        let entry =
            runs.get_mut(id)
                .filter(|e| {
                    e.shared.token.as_ref().is_some_and(|t| {
                        crate::secret::ct_eq(t.expose().as_bytes(), token.as_bytes())
                    })
                })
                .ok_or_else(|| Error::invalid("no such run (or a wrong token)", None))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("cannot use the sandbox's listener", e))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        entry.more.push(stop_tx);
        entry.closed.push(closed_rx);
        let shared = entry.shared.clone();
        let workers = self.workers.clone();
        let run_id = id.to_string();
        tokio::spawn(async move {
            let stopped = async move {
                stop_rx.await.ok();
            };
            if let Err(e) = workers.serve(listener, shared, stopped).await {
                tracing::error!(run = %run_id, error = %e, "sandboxed run's proxy failed");
            }
            closed_tx.send(()).ok();
        });
        tracing::info!(run = %id, "run serves its sandbox's listener");
        Ok(())
    }

    async fn start_system(&self, listen: bool) -> Result<api::ProxySystem> {
        let mut guard = self.system.lock().await;
        let home = self.home.clone();
        let svc = self.svc.clone();
        let (ca, token) =
            tokio::task::spawn_blocking(move || -> Result<(Arc<Ca>, Secret<String>)> {
                let ca = system_ca(&home, &svc)?;
                write_bundle(&home, &ca)?;
                let token = system_token(&home)?;
                Ok((ca, token))
            })
            .await
            .map_err(|e| Error::io("CA task failed", std::io::Error::other(e.to_string())))??;
        if guard.is_none() && !listen {
            return Ok(api::ProxySystem {
                listening: false,
                port: None,
                proxy_url: None,
                ca_path: system_ca_path(&self.home),
                bundle_path: system_bundle_path(&self.home),
                hosts: ca.permitted().to_vec(),
                stats: None,
            });
        }
        if guard.is_none() {
            let listener = proxy::bind_loopback(self.proxy_port).map_err(|e| {
                Error::invalid(
                    format!("cannot listen on 127.0.0.1:{}: {e}", self.proxy_port),
                    Some("set AUTHSOME_PROXY_PORT to a free port (and restart the daemon)".into()),
                )
            })?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the proxy's address", e))?;
            let authority = Arc::new(LeafAuthority::new(ca)?);
            let shared = Arc::new(Shared {
                tables: self.tables.clone(),
                authority,
                upstream: self.upstream.clone(),
                token: Some(token.duplicate()),
                // Like a run: hosts of providers connected now stay provider
                // hosts (fail closed after a logout).
                pinned: self.tables.routes(),
                connections: HashMap::new(),
                only: None,
                deny_unknown: self.deny_unknown,
                local_ports: None,
                run_id: "system".into(),
                // Nobody holds these (the programs have their own
                // configuration); they are what echoed secrets become.
                placeholders: proxy::placeholders::Placeholders::new(
                    self.placeholders(
                        &self
                            .tables
                            .routes()
                            .providers()
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>(),
                    )?,
                ),
                redact: self.redact,
                log: self.request_log.clone(),
                redactors: Default::default(),
                stats: Stats::default(),
                ended: std::sync::atomic::AtomicBool::new(false),
            });
            let serve_shared = shared.clone();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let workers = self.workers.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    stop_rx.await.ok();
                };
                if let Err(e) = workers.serve(listener, serve_shared, stopped).await {
                    tracing::error!(error = %e, "system-wide proxy failed");
                }
            });
            tracing::info!(%addr, "system-wide proxy listening");
            if !self.redact {
                tracing::warn!(
                    "response redaction is off (AUTHSOME_REDACT=off): a provider that echoes a credential shows it to the program"
                );
            }
            *guard = Some(SystemEntry {
                port: addr.port(),
                url: format!(
                    "http://authsome:{}@127.0.0.1:{}",
                    token.expose(),
                    addr.port()
                ),
                shared,
                stop: Some(stop_tx),
                _own: self.upstream.own.register(addr),
            });
        }
        let Some(s) = guard.as_ref() else {
            return Err(Error::invalid("the system-wide proxy did not start", None));
        };
        Ok(api::ProxySystem {
            listening: true,
            port: Some(s.port),
            proxy_url: Some(Secret::new(s.url.clone())),
            ca_path: system_ca_path(&self.home),
            bundle_path: system_bundle_path(&self.home),
            hosts: s.shared.authority.ca().permitted().to_vec(),
            stats: Some(stats(&s.shared.stats)),
        })
    }
}

fn stats(s: &Stats) -> api::ProxyStats {
    api::ProxyStats {
        injected: s.injected.load(Ordering::Relaxed),
        passed: s.passed.load(Ordering::Relaxed),
        tunnels: s.tunnels.load(Ordering::Relaxed),
        refused: s.refused.load(Ordering::Relaxed),
    }
}

impl ProxyRuns for Runs {
    fn start(&self, req: RunRequest) -> BoxFuture<'_, Result<RunStarted>> {
        Box::pin(self.start_run(req))
    }

    fn end(&self, id: &str) -> BoxFuture<'_, bool> {
        let closed = self.end_now(id);
        Box::pin(async move {
            let Some(closed) = closed else {
                return false;
            };
            // Answer once the listeners are really closed, so whoever ended
            // the run (`authsome run` as its child exits) finds the port
            // free. Bounded: a stuck worker does not hold the answer.
            let all = async {
                for c in closed {
                    c.await.ok();
                }
            };
            tokio::time::timeout(Duration::from_secs(2), all).await.ok();
            true
        })
    }

    fn refusals(&self, id: &str, after: u64) -> Option<(Vec<(u64, String)>, u64)> {
        lock(&self.runs).get_mut(id).map(|e| {
            e.seen = std::time::Instant::now();
            e.shared.stats.refusals_after(after)
        })
    }

    fn list(&self) -> Vec<api::RunSummary> {
        let mut v: Vec<api::RunSummary> = lock(&self.runs)
            .iter()
            .map(|(id, e)| api::RunSummary {
                id: id.clone(),
                port: e.port,
                providers: e.providers.clone(),
                started_at: e.started_at,
                pid: e.client_pid,
                hosts: e.hosts.clone(),
                sandbox: e.sandbox,
                command: e.command.clone(),
                stats: stats(&e.shared.stats),
            })
            .collect();
        v.sort_by_key(|r| r.started_at);
        v
    }

    fn member_of(&self, id: &str) -> Option<Option<String>> {
        lock(&self.runs).get(id).map(|e| e.member.clone())
    }

    fn end_member(&self, member: &str) -> usize {
        let ids: Vec<String> = lock(&self.runs)
            .iter()
            .filter(|(_, e)| {
                e.member.as_deref() == Some(member) || e.starter.as_deref() == Some(member)
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter(|id| self.end_now(id).is_some()).count()
    }

    fn system_listener(&self) -> Option<(u16, api::ProxyStats)> {
        let guard = self.system.try_lock().ok()?;
        guard.as_ref().map(|e| (e.port, stats(&e.shared.stats)))
    }

    fn system(&self, listen: bool) -> BoxFuture<'_, Result<api::ProxySystem>> {
        Box::pin(self.start_system(listen))
    }
}

/// True while process `pid` exists and is not a zombie.
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => false,
        Err(_) => rustix::process::Pid::from_raw(pid as i32)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok()),
    }
}

// === the persistent, system-wide CA ===

/// `$AUTHSOME_HOME/ca/`.
pub fn system_ca_dir(home: &std::path::Path) -> PathBuf {
    home.join("ca")
}

/// The system-wide CA certificate (what `authsome ca install` trusts).
pub fn system_ca_path(home: &std::path::Path) -> PathBuf {
    system_ca_dir(home).join("ca.pem")
}

/// System roots + the system-wide CA, for `SSL_CERT_FILE` and friends.
pub fn system_bundle_path(home: &std::path::Path) -> PathBuf {
    system_ca_dir(home).join("bundle.pem")
}

/// Rewrites the bundle (the system roots may have changed since last time).
fn write_bundle(home: &std::path::Path, ca: &Ca) -> Result<()> {
    let path = system_bundle_path(home);
    let mut text = crate::ca::system_roots_pem();
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text.push_str("# authsome local CA\n");
    text.push_str(ca.cert_pem());
    write_private(&path, text.as_bytes())
}

/// Replaces `path` with `bytes` (0600, through a temporary file and rename).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    home::write_private_file(path, bytes, home::Place::Replace).map(|_| ())
}

/// What is stored beside the CA: the names it was made for.
#[derive(Debug, Serialize, Deserialize)]
pub struct SystemCaInfo {
    pub names: Vec<String>,
    pub created_at: i64,
}

/// The names the system-wide CA covers: every registered provider's hosts.
pub fn all_provider_names(svc: &CredentialService) -> Vec<String> {
    let reg = svc.registry();
    RouteTable::build(reg.iter().map(|e| e.def.as_ref())).ca_names()
}

/// Loads the system-wide CA, creating it (key 0600) on first use.
pub fn system_ca(home: &std::path::Path, svc: &CredentialService) -> Result<Arc<Ca>> {
    let dir = system_ca_dir(home);
    home::ensure_private_dir(&dir)?;
    let key_path = dir.join("ca.key");
    let info_path = dir.join("ca.json");
    let cert_path = system_ca_path(home);
    if let Some(key) = home::read_private(&key_path)? {
        let cert =
            std::fs::read_to_string(&cert_path).map_err(|e| Error::io_at("read", &cert_path, e))?;
        let info: SystemCaInfo = serde_json::from_slice(
            &std::fs::read(&info_path).map_err(|e| Error::io_at("read", &info_path, e))?,
        )
        .map_err(|e| Error::invalid(format!("{}: {e}", info_path.display()), None))?;
        let key = String::from_utf8_lossy(&key).to_string();
        return Ok(Arc::new(Ca::load(
            SYSTEM_CA_NAME,
            &info.names,
            &cert,
            &key,
            RUN_VALIDITY,
        )?));
    }
    let names = all_provider_names(svc);
    let ca = Ca::generate(SYSTEM_CA_NAME, &names, SYSTEM_CA_VALIDITY)?;
    // The key first, created exclusively: whoever wins that race writes the
    // certificate and names that belong to it; a loser starts over.
    if !home::write_secret_file_new(&key_path, ca.key_pem().as_bytes())? {
        return Err(Error::invalid(
            "another process created the CA at the same time",
            Some("run the command again".into()),
        ));
    }
    let info = serde_json::to_vec_pretty(&SystemCaInfo {
        names: names.clone(),
        created_at: now_unix(),
    })
    .map_err(|e| Error::invalid(format!("cannot encode the CA info: {e}"), None))?;
    write_private(&info_path, &info)?;
    write_private(&cert_path, ca.cert_pem().as_bytes())?;
    tracing::info!(path = %cert_path.display(), hosts = names.len(), "system-wide CA created");
    // Leaves of the persistent CA are short-lived and re-minted in memory.
    Ok(Arc::new(Ca::load(
        SYSTEM_CA_NAME,
        &names,
        ca.cert_pem(),
        &ca.key_pem(),
        RUN_VALIDITY,
    )?))
}

/// The system-wide proxy token, `$AUTHSOME_HOME/proxy.token` (0600), kept
/// across daemon restarts so exported `HTTPS_PROXY` lines stay valid.
fn system_token(home: &std::path::Path) -> Result<Secret<String>> {
    let path = home.join("proxy.token");
    if let Some(t) = home::read_private(&path)? {
        let t = String::from_utf8_lossy(&t).trim().to_string();
        if t.len() >= 32 {
            return Ok(Secret::new(t));
        }
    }
    let t = Runs::token()?;
    std::fs::remove_file(&path).ok();
    home::write_secret_file_new(&path, t.expose().as_bytes())?;
    Ok(t)
}
