//! The composition root: builds the daemon from configuration and runs it.
//!
//! The only module that wires layers together: it opens the
//! `CredentialService`, loads the identity the PoP verifier trusts, binds
//! the listener by the port rules, writes `daemon.json`, and serves until
//! SIGTERM or SIGINT.
//!
//! Port rules (the CLI relies on them):
//! - `AUTHSOME_PORT=N` binds exactly N (`0`: any free port); if N is taken, that is an error.
//! - Otherwise the daemon tries 7998. When 7998 is held by an authsome daemon
//!   of another home, it takes a free port instead; when it is held by this
//!   home's daemon, there is nothing to do; when it is held by any other
//!   program, it fails with the port and the `lsof` hint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub mod client_check;
pub mod handoff;
pub mod health;
pub mod oauth_http;
pub mod proxy_mux;
pub mod runs;
pub mod sync;

use crate::auth_flow::logins::Logins;
use crate::auth_flow::{SESSION_TTL, Sessions};
use crate::config::Config;
use crate::credentials::CredentialService;
use crate::daemon::{self, AppState, DaemonInfo};
use crate::error::Error;
use crate::home::{self, Home};
use crate::identity::Identity;
use crate::pop::Verifier;
use crate::request_log::{Entry, RequestLog};
use crate::secret::Secret;
use zeroize::Zeroize;

/// What a running daemon writes to `$AUTHSOME_HOME/daemon.json` (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonFile {
    pub pid: u32,
    pub port: u16,
    pub url: String,
    pub version: String,
    pub home: PathBuf,
    pub home_id: String,
    pub started_at: i64,
    /// The daemon's proof key: only this home's user can read it, and the
    /// daemon proves it holds it (see [`identify`]) before the CLI sends
    /// anything secret to the port this file names.
    #[serde(default)]
    pub proof_key: ProofKey,
}

/// The secret in `daemon.json` a daemon proves it holds. `Debug` never shows it.
#[derive(Debug)]
pub struct ProofKey(pub Secret<String>);

impl Default for ProofKey {
    fn default() -> Self {
        ProofKey(Secret::new(String::new()))
    }
}

impl Clone for ProofKey {
    fn clone(&self) -> Self {
        ProofKey(self.0.duplicate())
    }
}

impl Serialize for ProofKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // Written only to the 0600 daemon.json.
        s.serialize_str(self.0.expose())
    }
}

impl<'de> Deserialize<'de> for ProofKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(ProofKey(Secret::new(String::deserialize(d)?)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What answers at the port `daemon.json` names.
#[derive(Debug)]
pub enum Found {
    /// Nothing, or nothing that calls itself authsome.
    Nothing,
    /// This home's daemon (it proved it holds the key in `daemon.json`); its health.
    Ours(crate::api::Health),
    /// Something that answers like authsome but cannot prove it: described.
    Other(String),
}

/// Asks the server `file` names to prove it wrote `file`: a fresh random
/// challenge, answered with an HMAC under the file's proof key. Sends nothing
/// secret; a squatter on a stale port learns only a random challenge.
pub async fn identify(http: &reqwest::Client, file: &DaemonFile) -> Found {
    let Some(h) = health(http, &file.url).await else {
        return Found::Nothing;
    };
    if proves(http, file).await {
        return Found::Ours(h);
    }
    let version: String = h
        .version
        .as_deref()
        .unwrap_or("?")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    Found::Other(format!(
        "a server that answers /api/health as authsome {version}"
    ))
}

async fn proves(http: &reqwest::Client, file: &DaemonFile) -> bool {
    let key = file.proof_key.0.expose();
    if key.is_empty() {
        return false;
    }
    let mut c = [0u8; 32];
    if crate::secret::fill_random(&mut c).is_err() {
        return false;
    }
    let challenge = hex(&c);
    let Ok(resp) = http
        .get(format!(
            "{}/api/health/proof?challenge={challenge}",
            file.url
        ))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
    else {
        return false;
    };
    let Ok(v) = resp.json::<crate::api::HealthProof>().await else {
        return false;
    };
    crate::secret::ct_eq(
        v.proof.as_bytes(),
        crate::pop::daemon_proof(key, &challenge).as_bytes(),
    )
}

/// Path of `daemon.json`.
pub fn daemon_file_path(home: &Path) -> PathBuf {
    home.join("daemon.json")
}

/// Path of the daemon's log file.
pub fn log_file_path(home: &Path) -> PathBuf {
    home.join("logs").join("authsome.log")
}

/// Where the request log lives (`requests.jsonl`, beside the daemon's log).
pub fn request_log_dir(home: &Path) -> PathBuf {
    home.join("logs")
}

/// Opens the request log with the daemon's audit hook: an entry that
/// redacted a secret from a response, or that tripped over a placeholder,
/// is also recorded in the audit log ([`request_audit`]). The hook holds
/// the credential service weakly, so it never keeps the vault open at
/// shutdown.
fn open_request_log(
    config: &Config,
    home: &Path,
    svc: &Arc<CredentialService>,
    runs: Arc<std::sync::OnceLock<std::sync::Weak<runs::Runs>>>,
) -> anyhow::Result<RequestLog> {
    let dir = request_log_dir(home);
    let svc = Arc::downgrade(svc);
    let limiter = std::sync::Mutex::new(AuditLimiter::default());
    let log = RequestLog::open(
        &dir,
        config.request_log_max,
        Box::new(move |e| {
            // A team member's run: its uses are on the record under the member.
            let member = e.run.as_deref().and_then(|id| {
                use crate::daemon::state::ProxyRuns;
                runs.get()?.upgrade()?.member_of(id).flatten()
            });
            let mut records = request_audit(e);
            if e.injected && member.is_some() {
                records.push((
                    "credential.use",
                    "ok",
                    serde_json::json!({"host": e.host, "run": e.run}),
                ));
            }
            if records.is_empty() {
                return;
            }
            let Some(svc) = svc.upgrade() else {
                return;
            };
            for (event, outcome, mut detail) in records {
                // A child repeating itself (a flood of tripwires) gets one
                // audit entry per kind, run, provider and host every
                // AUDIT_EVERY; the request log has every one.
                let key = format!(
                    "{event}|{}|{}|{}|{}",
                    e.run.as_deref().unwrap_or(""),
                    e.provider.as_deref().unwrap_or(""),
                    e.host,
                    detail
                        .get("location")
                        .or(detail.get("where"))
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                let suppressed = match limiter.lock().unwrap_or_else(|p| p.into_inner()).admit(key)
                {
                    None => continue,
                    Some(n) => n,
                };
                if suppressed > 0 {
                    detail["suppressed_before"] = serde_json::json!(suppressed);
                }
                if let Err(err) = svc.append_audit(
                    event,
                    e.provider.as_deref(),
                    e.connection.as_deref(),
                    member.as_deref(),
                    outcome,
                    &detail,
                ) {
                    tracing::warn!(error = %err, event, "cannot audit a proxied request");
                }
            }
        }),
    )
    .with_context(|| format!("cannot open the request log in {}", dir.display()))?;
    Ok(log)
}

/// How often one kind of proxied event is audited per run, provider and host.
const AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// At most one audit entry per key every [`AUDIT_EVERY`]; the next one
/// admitted says how many were folded since.
#[derive(Default)]
struct AuditLimiter {
    seen: std::collections::HashMap<String, (std::time::Instant, u64)>,
}

impl AuditLimiter {
    /// `Some(suppressed since the last admitted)` when `key` may be
    /// audited now, `None` when it is folded.
    fn admit(&mut self, key: String) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.seen.len() > 4096 {
            self.seen
                .retain(|_, (t, _)| now.duration_since(*t) < AUDIT_EVERY);
        }
        match self.seen.get_mut(&key) {
            Some((last, folded)) if now.duration_since(*last) < AUDIT_EVERY => {
                *folded += 1;
                None
            }
            Some((last, folded)) => {
                *last = now;
                Some(std::mem::take(folded))
            }
            None => {
                self.seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// The audit records a request log entry calls for: `proxy.redacted` when
/// a secret was cut from the response, `proxy.placeholder_misuse` when a
/// placeholder showed up where it must not. Names and places only.
fn request_audit(e: &Entry) -> Vec<(&'static str, &'static str, serde_json::Value)> {
    let mut out = Vec::new();
    if e.redactions > 0 {
        out.push((
            "proxy.redacted",
            "ok",
            serde_json::json!({
                "host": e.host,
                "where": e.redacted_in,
                "count": e.redactions,
                "run": e.run,
            }),
        ));
    }
    if e.dropped_flagged > 0 {
        out.push((
            "proxy.records_dropped",
            "lost",
            serde_json::json!({
                "dropped": e.dropped,
                "with_redaction_or_tripwire": e.dropped_flagged,
            }),
        ));
    }
    if let Some(t) = &e.tripwire {
        out.push((
            "proxy.placeholder_misuse",
            if e.refused.is_some() { "refused" } else { "ok" },
            serde_json::json!({
                "host": e.host,
                "placeholder_of": t.provider,
                "location": t.location,
                "refused": e.refused.is_some(),
                "run": e.run,
            }),
        ));
    }
    out
}

/// Reads `daemon.json`, if present and well-formed.
pub fn read_daemon_file(home: &Path) -> Option<DaemonFile> {
    let text = std::fs::read_to_string(daemon_file_path(home)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A short stable id for a home directory (so `/api/health` need not reveal the path).
pub fn home_id(home: &Path) -> String {
    let canonical = std::fs::canonicalize(home).unwrap_or_else(|_e| home.to_path_buf());
    Sha256::digest(canonical.to_string_lossy().as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Options of `authsome daemon serve`.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Bind address; default 127.0.0.1. Anything else is a deliberate hosted setup.
    pub host: Option<IpAddr>,
    /// `--listen`: the team server's remote listener, beside the loopback one.
    pub listen: Option<RemoteListen>,
}

/// `--listen ADDR:PORT [--tls-cert PEM --tls-key PEM]`.
#[derive(Debug, Clone)]
pub struct RemoteListen {
    pub addr: SocketAddr,
    /// The certificate chain and key; `None` only on a loopback address
    /// (behind a TLS-terminating proxy on the same machine: the CLI checks).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--proxy-listen ADDR:PORT`: the proxy listener remote runs use
    /// (same TLS), advertised as the base URL's host with this port.
    pub proxy: Option<SocketAddr>,
}

/// The `Host` values the remote listener accepts: the authority of
/// `AUTHSOME_SERVER_BASE_URL`, which must be an `https://` URL without a
/// path (PoP tokens sign the path only, and members' CLIs talk to the root).
/// With port 443 (said or implied), both `host` and `host:443`.
pub fn remote_hosts(server_base_url: Option<&str>) -> crate::Result<Vec<String>> {
    let example = "e.g. AUTHSOME_SERVER_BASE_URL=https://team.example.com:8443, the URL members set as AUTHSOME_BASE_URL";
    let Some(url) = server_base_url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(Error::invalid(
            "--listen needs AUTHSOME_SERVER_BASE_URL: its host name is the only Host the remote listener answers",
            Some(format!("set it ({example})")),
        ));
    };
    let Some(rest) = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return Err(Error::invalid(
            format!("AUTHSOME_SERVER_BASE_URL={url} is not an https:// URL"),
            Some(format!(
                "members' PoP tokens and exported credentials never travel in plaintext: use https:// ({example})"
            )),
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains(['/', '?', '#']) {
        return Err(Error::invalid(
            format!("AUTHSOME_SERVER_BASE_URL={url} has a path"),
            Some("the API is served at the root: give only https://HOST[:PORT]".into()),
        ));
    }
    if rest.contains('@') || rest.is_empty() {
        return Err(Error::invalid(
            format!("AUTHSOME_SERVER_BASE_URL={url} is not https://HOST[:PORT]"),
            Some(example.into()),
        ));
    }
    let authority = rest.to_ascii_lowercase();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':').unwrap_or(p)),
            None => (authority.clone(), "?"),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.clone(), ""),
        },
    };
    let port: u16 = match port {
        "" => 443,
        p => p.parse().map_err(|_e| {
            Error::invalid(
                format!("AUTHSOME_SERVER_BASE_URL={url} has no valid port"),
                Some(example.into()),
            )
        })?,
    };
    if host.is_empty() || host == "[]" || host.contains(['[', ']']) && !host.starts_with('[') {
        return Err(Error::invalid(
            format!("AUTHSOME_SERVER_BASE_URL={url} has no host"),
            Some(example.into()),
        ));
    }
    Ok(if port == 443 {
        vec![host.clone(), format!("{host}:443")]
    } else {
        vec![format!("{host}:{port}")]
    })
}

/// The remote listener's settings, checked.
struct RemotePlan {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    hosts: Vec<String>,
    base_url: String,
    proxy: Option<SocketAddr>,
    /// `AUTHSOME_SERVER_PROXY_ADDR`, checked.
    proxy_addr: Option<String>,
}

impl RemotePlan {
    /// `HOST:PORT` remote runs reach the proxy listener at:
    /// `AUTHSOME_SERVER_PROXY_ADDR`, else the base URL's host with the
    /// `--proxy-listen` port.
    fn remote_proxy(&self) -> Option<String> {
        let port = self.proxy?.port();
        if let Some(a) = &self.proxy_addr {
            return Some(a.clone());
        }
        let first = self.hosts.first()?;
        let host = if self.hosts.len() == 2 {
            first.as_str()
        } else {
            first.rsplit_once(':').map_or(first.as_str(), |(h, _)| h)
        };
        Some(format!("{host}:{port}"))
    }
}

/// The remote listener, bound and ready to serve.
struct Remote {
    listener: TcpListener,
    proxy: Option<TcpListener>,
    plan: RemotePlan,
}

/// `HOST:PORT` (a name or an address; `[v6]:PORT`), nothing else.
fn proxy_addr(a: &str) -> crate::Result<String> {
    let bad = || {
        Error::invalid(
            format!("AUTHSOME_SERVER_PROXY_ADDR={a} is not HOST:PORT"),
            Some("e.g. AUTHSOME_SERVER_PROXY_ADDR=replica-1.team.example.com:8444 (a name the TLS certificate covers)".into()),
        )
    };
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':');
    if host.is_empty() || !host.chars().all(plain) || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(a.to_string())
}

/// Checks `--listen`'s settings (before anything is opened or written).
fn check_remote(config: &Config, listen: &RemoteListen) -> anyhow::Result<RemotePlan> {
    let hosts = remote_hosts(config.server_base_url.as_deref())?;
    let tls = match &listen.tls {
        Some((cert, key)) => Some(daemon::tls::server_config(cert, key)?),
        None if listen.addr.ip().is_loopback() => None,
        None => {
            return Err(Error::invalid(
                format!("--listen {} without TLS", listen.addr),
                Some("add --tls-cert PEM --tls-key PEM".into()),
            )
            .into());
        }
    };
    if let Some(p) = listen.proxy
        && !p.ip().is_loopback()
        && tls.is_none()
    {
        return Err(Error::invalid(
            format!("--proxy-listen {p} without TLS"),
            Some("add --tls-cert PEM --tls-key PEM".into()),
        )
        .into());
    }
    let proxy_addr = match config.server_proxy_addr.as_deref() {
        None => None,
        Some(_) if listen.proxy.is_none() => {
            return Err(Error::invalid(
                "AUTHSOME_SERVER_PROXY_ADDR is set but there is no --proxy-listen",
                Some("add --proxy-listen ADDR:PORT, or unset AUTHSOME_SERVER_PROXY_ADDR".into()),
            )
            .into());
        }
        Some(a) => Some(proxy_addr(a)?),
    };
    Ok(RemotePlan {
        addr: listen.addr,
        tls,
        hosts,
        base_url: config.server_base_url.clone().unwrap_or_default(),
        proxy: listen.proxy,
        proxy_addr,
    })
}

async fn bind_one(flag: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::invalid(
                format!("{flag} {addr}: the address is already in use"),
                Some(format!(
                    "find the program with `lsof -i :{}`, or choose another port",
                    addr.port()
                )),
            )
            .into()
        } else {
            Error::io(format!("cannot listen on {addr}"), e).into()
        }
    })
}

async fn bind_remote(plan: RemotePlan) -> anyhow::Result<Remote> {
    let listener = bind_one("--listen", plan.addr).await?;
    let proxy = match plan.proxy {
        Some(p) => Some(bind_one("--proxy-listen", p).await?),
        None => None,
    };
    Ok(Remote {
        listener,
        proxy,
        plan,
    })
}

/// Runs the daemon in the foreground until SIGTERM/SIGINT.
pub fn run_daemon(config: &Config, opts: DaemonOptions) -> anyhow::Result<()> {
    // Before any thread exists: the daemon's memory and environment are
    // closed to other processes of this user (no ptrace, no
    // /proc/<pid>/environ or mem, no core file), and the master key, now in
    // `config`, leaves the environment so nothing the daemon starts inherits it.
    for problem in crate::sandbox::harden_process() {
        tracing::warn!(%problem, "cannot fully harden the daemon process");
    }
    // SAFETY: no other thread exists yet (the runtime is built below).
    #[allow(unsafe_code)]
    unsafe {
        crate::sandbox::forget_env(crate::config::ENV_MASTER_KEY);
        crate::sandbox::forget_env(crate::config::ENV_DATABASE_URL);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve_daemon(config, opts))
}

async fn serve_daemon(config: &Config, opts: DaemonOptions) -> anyhow::Result<()> {
    // PoP tokens issued before this instant are refused (the replay set of
    // an earlier daemon is gone).
    let not_before = i64::try_from(crate::pop::now_millis()).unwrap_or(i64::MAX);
    let remote = match &opts.listen {
        Some(l) => Some(check_remote(config, l)?),
        None => None,
    };
    let home = Home::new(&config.home);
    home.ensure()?;
    let svc = {
        let cfg = config.clone_for_daemon();
        Arc::new(
            tokio::task::spawn_blocking(move || CredentialService::open(&cfg))
                .await
                .context("vault task failed")??,
        )
    };
    let identity = Identity::load_or_create(&home)?;
    let id = home_id(home.root());
    if let Some(other) = read_daemon_file(home.root())
        && other.pid != std::process::id()
        && is_ours(&other).await
    {
        return Err(Error::invalid(
            format!(
                "a daemon for this home is already running at {} (pid {})",
                other.url, other.pid
            ),
            Some("`authsome daemon status` shows it; `authsome daemon stop` stops it".into()),
        )
        .into());
    }
    let listener = bind(
        config,
        opts.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        home.root(),
    )
    .await?;
    let remote = match remote {
        Some(plan) => Some(bind_remote(plan).await?),
        None => None,
    };
    let proof_key = {
        let mut b = [0u8; 32];
        crate::secret::fill_random(&mut b)?;
        let k = Secret::new(hex(&b));
        b.zeroize();
        k
    };
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let port = addr.port();
    let base_url = config
        .server_base_url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let mut allowed_hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    if let Some(authority) = base_url
        .split("://")
        .nth(1)
        .map(|r| r.split('/').next().unwrap_or("").to_ascii_lowercase())
        && !authority.is_empty()
        && !allowed_hosts.contains(&authority)
    {
        allowed_hosts.push(authority);
    }
    if let Some(h) = opts.host.filter(|h| !h.is_loopback()) {
        allowed_hosts.push(SocketAddr::new(h, port).to_string());
    }
    let upstream =
        crate::proxy::upstream::Upstream::new(config.upstream_ca_file.as_deref(), &config.resolve)?;
    // The team server's listeners are authsome's own too: no run's proxy
    // connects to them (the loop guard; also by this host's own addresses).
    for l in remote
        .iter()
        .flat_map(|r| std::iter::once(&r.listener).chain(r.proxy.as_ref()))
    {
        if let Ok(a) = l.local_addr() {
            upstream.own.add(a);
        }
    }
    let tables = {
        let svc = svc.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || {
                crate::credentials::proxy_tables::ProxyTables::new(svc)
            })
            .await
            .context("routing table task failed")??,
        )
    };
    let oauth_http: Arc<dyn crate::auth_flow::oauth::OAuthHttp> =
        Arc::new(oauth_http::HyperOAuthHttp::new(&upstream));
    svc.set_token_endpoint(Arc::new(crate::auth_flow::oauth::BlockingEndpoint {
        http: oauth_http.clone(),
        rt: tokio::runtime::Handle::current(),
    }));
    {
        // Proactive refresh: tokens are renewed before the proxy meets them
        // inside the refresh window.
        // Weak handles: this task never keeps the vault open at shutdown.
        let (svc, tables) = (Arc::downgrade(&svc), Arc::downgrade(&tables));
        let every = std::time::Duration::from_secs(config.refresh_interval_secs);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let (Some(s), Some(l)) = (svc.upgrade(), tables.upgrade()) else {
                    return;
                };
                let r = tokio::task::spawn_blocking(move || {
                    for p in s.refresh_due() {
                        if let Err(e) = l.changed(Some(&p)) {
                            tracing::warn!(error = %e, "cannot rebuild the routing table");
                        }
                    }
                })
                .await;
                if r.is_err() {
                    return;
                }
            }
        });
    }
    let runs_cell = Arc::new(std::sync::OnceLock::new());
    let requests = open_request_log(config, home.root(), &svc, runs_cell.clone())?;
    let runs = Arc::new(runs::Runs::new(runs::RunsOptions {
        tables: tables.clone(),
        svc: svc.clone(),
        upstream,
        daemon_addr: addr,
        home: home.root().to_path_buf(),
        proxy_port: config.proxy_port,
        deny_unknown: config.deny_unknown,
        redact: config.redact,
        workers: crate::proxy::Workers::start(config.proxy_threads)?,
        protect: protected_paths(config, home.root(), svc.key_source().id()),
        request_log: requests.clone(),
        remote_proxy: remote.as_ref().and_then(|r| r.plan.remote_proxy()),
    }));
    runs_cell.set(Arc::downgrade(&runs)).ok();
    let handoff = handoff::bind(home.root()).with_context(|| {
        format!(
            "cannot open {}",
            handoff::socket_path(home.root()).display()
        )
    })?;
    let (handoff_stop, handoff_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(handoff::serve(handoff, runs.clone(), async move {
        handoff_stopped.await.ok();
    }));
    let info = DaemonInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        home: home.root().to_path_buf(),
        home_id: id.clone(),
        // With a remote listener, the advertised URL is that listener's; the
        // loopback one (the dashboard's links) keeps its own address.
        base_url: if remote.is_some() {
            format!("http://127.0.0.1:{port}")
        } else {
            base_url.clone()
        },
        allowed_hosts,
        key_source_id: svc.key_source().id(),
        key_source: svc.key_source().describe(),
        proof_key: Arc::new(proof_key.duplicate()),
        settings: crate::config::daemon_side_settings(&crate::config::ProcessEnv),
    };
    let logins = Logins::new(
        svc.clone(),
        Arc::new(Sessions::new(SESSION_TTL)),
        oauth_http,
        tables.clone(),
        base_url.clone(),
    );
    // The team: this home's identity is an admin; members come from the
    // store (rows whose tag does not open are ignored there).
    let team = Arc::new(crate::team::Team::new(identity.did()));
    {
        let (svc, team) = (svc.clone(), team.clone());
        tokio::task::spawn_blocking(move || bootstrap_team(&svc, &team))
            .await
            .context("team task failed")??;
    }
    let pop =
        Arc::new(Verifier::new(team.trusted().iter().map(String::as_str)).not_before(not_before));
    // Other daemons on a shared store: their changes reach this one.
    let stop_listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listening = {
        let followers = sync::Followers {
            svc: Arc::downgrade(&svc),
            tables: Arc::downgrade(&tables),
            team: Arc::downgrade(&team),
            pop: Arc::downgrade(&pop),
            runs: Arc::downgrade(&runs),
        };
        svc.vault()
            .listen_for_changes(
                Box::new(move |change| followers.apply(change)),
                stop_listening.clone(),
            )
            .context("cannot start the store's change listener")?
    };
    let state = AppState {
        svc: svc.clone(),
        logins: Arc::new(logins),
        pop,
        team,
        info: Arc::new(info),
        shutdown: Arc::new(tokio::sync::Notify::new()),
        runs: runs.clone(),
        requests: requests.clone(),
        dashboard: Arc::new(crate::daemon::dashboard_auth::DashboardAuth::new()),
        health: Arc::new(health::Cached::new(
            health::DoctorChecks::new(
                config.clone_for_daemon(),
                &format!("http://127.0.0.1:{port}"),
            ),
            health::KEEP,
        )),
    };
    let file = DaemonFile {
        pid: std::process::id(),
        port,
        url: format!("http://127.0.0.1:{port}"),
        version: env!("CARGO_PKG_VERSION").into(),
        home: home.root().to_path_buf(),
        home_id: id,
        started_at: crate::clock::now_unix(),
        proof_key: ProofKey(proof_key.duplicate()),
    };
    write_daemon_file(home.root(), &file)?;
    tracing::info!(%addr, url = %base_url, pid = file.pid, "daemon listening");
    let (remote_stop, remote_stopped) = tokio::sync::oneshot::channel::<()>();
    let remote_task = remote.map(|r| {
        let Remote {
            listener: tcp,
            proxy,
            plan,
        } = r;
        let info = DaemonInfo {
            base_url: plan.base_url.clone(),
            allowed_hosts: plan.hosts.clone(),
            ..(*state.info).clone()
        };
        let remote_state = AppState {
            info: Arc::new(info),
            ..state.clone()
        };
        let stop = async move {
            remote_stopped.await.ok();
        };
        tracing::info!(
            listen = %plan.addr,
            url = %plan.base_url,
            hosts = ?plan.hosts,
            tls = plan.tls.is_some(),
            "team server listening"
        );
        let (proxy_stop, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(p) = proxy {
            tracing::info!(listen = ?p.local_addr().ok(), advertised = ?plan.remote_proxy(), "team proxy listening");
            let (runs, tls) = (runs.clone(), plan.tls.clone());
            let stop = async move {
                proxy_stopped.await.ok();
            };
            tokio::spawn(async move {
                match tls {
                    Some(cfg) => {
                        let l = daemon::tls::TlsListener::new(p, cfg);
                        proxy_mux::serve(l, runs, stop).await;
                    }
                    None => proxy_mux::serve(p, runs, stop).await,
                }
            });
        }
        tokio::spawn(async move {
            let r = match plan.tls {
                Some(cfg) => {
                    let l = daemon::tls::TlsListener::new(tcp, cfg);
                    daemon::tls::serve_remote(l, remote_state, stop).await
                }
                None => daemon::tls::serve_remote(tcp, remote_state, stop).await,
            };
            proxy_stop.send(()).ok();
            r
        })
    });
    let result = daemon::serve(listener, state, shutdown_signal()).await;
    remote_stop.send(()).ok();
    if let Some(mut task) = remote_task
        && tokio::time::timeout(std::time::Duration::from_secs(5), &mut task)
            .await
            .is_err()
    {
        task.abort();
    }
    handoff_stop.send(()).ok();
    std::fs::remove_file(handoff::socket_path(home.root())).ok();
    runs.end_all();
    drop(runs);
    // The routing tables hold the credential service too: the vault closes
    // (and SQLite checkpoints its WAL) only when the last holder is gone.
    drop(tables);
    stop_listening.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(h) = listening {
        tokio::task::spawn_blocking(move || h.join()).await.ok();
    }
    // What the proxy recorded last reaches the file (and the audit log).
    tokio::task::spawn_blocking(move || requests.sync())
        .await
        .ok();
    // Close the vault (SQLite checkpoints its WAL on close) before daemon.json
    // goes away: whoever waits for the daemon to stop may then touch the files.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Arc::strong_count(&svc) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(svc);
    if read_daemon_file(home.root()).is_some_and(|f| f.pid == file.pid) {
        std::fs::remove_file(daemon_file_path(home.root())).ok();
    }
    tracing::info!("daemon stopped");
    result.context("the daemon's server failed")
}

/// Loads the team. On a shared store whose roster has no admin yet, the
/// identity of the home whose daemon created the store becomes its first
/// admin (a tagged row, so every daemon on the store agrees).
fn bootstrap_team(svc: &CredentialService, team: &crate::team::Team) -> anyhow::Result<()> {
    let vault = svc.vault();
    let mut roster = vault.team_roster()?;
    if roster.admins() == 0
        && let Some(creator) = vault.creator()?
    {
        tracing::info!(admin = %creator, "the store's creator is the team's first admin");
        roster = vault.team_put_member(&creator, crate::team::Role::Admin, None)?;
    }
    team.set(roster);
    Ok(())
}

impl Config {
    /// A full copy, master key included, for the daemon process's own use.
    pub fn clone_for_daemon(&self) -> Config {
        Config {
            master_key: self.master_key.as_ref().map(|k| k.duplicate()),
            database_url: self.database_url.as_ref().map(|k| k.duplicate()),
            ..self.clone_without_secrets()
        }
    }

    /// A copy without the master key or the store URL (which may hold a
    /// password): those are copied explicitly where needed.
    fn clone_without_secrets(&self) -> Config {
        Config {
            home: self.home.clone(),
            master_key: None,
            master_key_file: self.master_key_file.clone(),
            keyring: self.keyring,
            database_url: None,
            database_ca_file: self.database_ca_file.clone(),
            database_pool: self.database_pool,
            port: self.port,
            preferred_port: self.preferred_port,
            base_url: self.base_url.clone(),
            server_base_url: self.server_base_url.clone(),
            server_proxy_addr: self.server_proxy_addr.clone(),
            resolve: self.resolve.clone(),
            upstream_ca_file: self.upstream_ca_file.clone(),
            proxy_port: self.proxy_port,
            deny_unknown: self.deny_unknown,
            redact: self.redact,
            proxy_threads: self.proxy_threads,
            refresh_interval_secs: self.refresh_interval_secs,
            request_log_max: self.request_log_max,
        }
    }
}

/// What a sandboxed child must not reach: the home, a master-key file kept
/// elsewhere, and, when the master key is in the Secret Service keyring, the
/// D-Bus session bus it is read through (`secret-tool lookup` would print it).
fn protected_paths(config: &Config, home: &Path, key_source: &str) -> Vec<PathBuf> {
    use crate::config::{ENV_DBUS_SESSION_BUS, ENV_XDG_RUNTIME_DIR, Env, ProcessEnv};
    let mut out = vec![home.to_path_buf()];
    out.extend(config.master_key_file.clone());
    if key_source == "keyring" {
        let env = ProcessEnv;
        out.extend(
            env.var(ENV_DBUS_SESSION_BUS)
                .as_deref()
                .and_then(session_bus_path),
        );
        out.extend(
            env.var(ENV_XDG_RUNTIME_DIR)
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join("bus")),
        );
    }
    out
}

/// The socket path of a D-Bus address (`unix:path=/run/user/1000/bus,guid=…`).
fn session_bus_path(address: &str) -> Option<PathBuf> {
    address.split(';').find_map(|a| {
        let rest = a.strip_prefix("unix:")?;
        rest.split(',')
            .find_map(|kv| kv.strip_prefix("path="))
            .map(PathBuf::from)
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_e) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

/// Binds by the port rules in the module docs.
async fn bind(config: &Config, ip: IpAddr, home: &Path) -> anyhow::Result<TcpListener> {
    if let Some(port) = config.port {
        return TcpListener::bind(SocketAddr::new(ip, port))
            .await
            .map_err(|e| port_error(port, e, true).into());
    }
    let preferred = config.preferred_port;
    match TcpListener::bind(SocketAddr::new(ip, preferred)).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match probe(preferred, home).await {
            Some(true) => Err(Error::invalid(
                format!("a daemon for this home is already running on port {preferred}"),
                Some("`authsome daemon status` shows it; `authsome daemon stop` stops it".into()),
            )
            .into()),
            Some(false) => {
                tracing::info!(
                    port = preferred,
                    "port held by another authsome daemon (not this home's); taking a free port"
                );
                TcpListener::bind(SocketAddr::new(ip, 0))
                    .await
                    .context("cannot bind a free port")
            }
            None => Err(port_error(preferred, e, false).into()),
        },
        Err(e) => Err(port_error(preferred, e, false).into()),
    }
}

fn port_error(port: u16, e: std::io::Error, forced: bool) -> Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        Error::invalid(
            format!("port {port} is already in use by another program"),
            Some(format!(
                "find it with `lsof -i :{port}`; or {}",
                if forced {
                    "choose another AUTHSOME_PORT (0 picks a free one)"
                } else {
                    "set AUTHSOME_PORT to another port (0 picks a free one)"
                }
            )),
        )
    } else {
        Error::io(format!("cannot listen on port {port}"), e)
    }
}

/// An HTTP client builder for the daemon's own loopback URL: no proxy, and
/// TLS preconfigured with no roots, so building a client reads no
/// certificate store (and no `https://` URL can succeed through it). The
/// CLI's client for a team server brings its own roots (`cli::client`).
pub fn loopback_http() -> crate::Result<reqwest::ClientBuilder> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::invalid(format!("cannot configure TLS: {e}"), None))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(tls))
}

/// Asks whatever listens on `port` whether it is an authsome daemon
/// (`None`: it is not) and whether it is this home's (it proves it holds
/// the key in this home's `daemon.json`).
async fn probe(port: u16, home: &Path) -> Option<bool> {
    let client = loopback_http().ok()?.build().ok()?;
    health(&client, &format!("http://127.0.0.1:{port}")).await?;
    Some(match read_daemon_file(home).filter(|f| f.port == port) {
        Some(f) => matches!(identify(&client, &f).await, Found::Ours(_)),
        None => false,
    })
}

/// True when the daemon `file` names answers and proves it wrote `file`.
async fn is_ours(file: &DaemonFile) -> bool {
    let Some(client) = loopback_http().ok().and_then(|b| b.build().ok()) else {
        return false;
    };
    matches!(identify(&client, file).await, Found::Ours(_))
}

/// `GET {base}/api/health` with a 2 s timeout; the answer when something that
/// calls itself an authsome daemon answers (anyone can say so: [`identify`]
/// checks it is this home's).
pub async fn health(http: &reqwest::Client, base: &str) -> Option<crate::api::Health> {
    let v: crate::api::Health = http
        .get(format!("{base}/api/health"))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    (v.service == crate::api::SERVICE).then_some(v)
}

fn write_daemon_file(home: &Path, file: &DaemonFile) -> anyhow::Result<()> {
    home::write_private_file(
        &daemon_file_path(home),
        serde_json::to_string_pretty(file)?.as_bytes(),
        home::Place::Replace,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactions_and_tripwires_are_audited_by_name_only() {
        use crate::request_log::{EntryKind, Tripwire};
        let plain = Entry::new(EntryKind::Request, "api.github.com", 443);
        assert!(request_audit(&plain).is_empty());
        let e = Entry {
            run: Some("abcd".into()),
            redactions: 2,
            redacted_in: vec!["header".into(), "body".into()],
            tripwire: Some(Tripwire {
                provider: "openai".into(),
                location: "query".into(),
            }),
            refused: Some("authsome_placeholder_misuse".into()),
            ..Entry::new(EntryKind::Request, "api.github.com", 443)
        };
        let got = request_audit(&e);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "proxy.redacted");
        assert_eq!(
            got[0].2,
            serde_json::json!({"host": "api.github.com", "where": ["header", "body"], "count": 2, "run": "abcd"})
        );
        assert_eq!(
            (got[1].0, got[1].1),
            ("proxy.placeholder_misuse", "refused")
        );
        assert_eq!(
            got[1].2,
            serde_json::json!({"host": "api.github.com", "placeholder_of": "openai", "location": "query", "refused": true, "run": "abcd"})
        );
    }

    #[test]
    fn the_remote_hosts_are_the_server_base_urls_authority() {
        let ok = |u: &str| remote_hosts(Some(u)).unwrap();
        assert_eq!(ok("https://Team.Test:8443"), vec!["team.test:8443"]);
        assert_eq!(ok("https://team.test"), vec!["team.test", "team.test:443"]);
        assert_eq!(
            ok("https://team.test:443/"),
            vec!["team.test", "team.test:443"]
        );
        assert_eq!(ok("HTTPS://[::1]:9443"), vec!["[::1]:9443"]);
        assert_eq!(ok("https://[fd00::1]"), vec!["[fd00::1]", "[fd00::1]:443"]);
        let bad = |u: Option<&str>, says: &str| {
            let e = remote_hosts(u).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(says), "{u:?}: {e}");
            assert!(e.hint().is_some());
        };
        bad(None, "needs AUTHSOME_SERVER_BASE_URL");
        bad(Some(" "), "needs AUTHSOME_SERVER_BASE_URL");
        bad(Some("http://team.test:8443"), "not an https:// URL");
        bad(Some("team.test:8443"), "not an https:// URL");
        bad(Some("https://team.test:8443/authsome"), "has a path");
        bad(Some("https://team.test:8443?x=1"), "has a path");
        bad(Some("https://u:p@team.test"), "not https://HOST[:PORT]");
        bad(Some("https://team.test:port"), "no valid port");
        bad(Some("https://:8443"), "no host");
    }

    #[test]
    fn remote_runs_are_told_the_base_urls_host_with_the_proxy_port() {
        let plan = |base: &str, proxy: Option<&str>| RemotePlan {
            addr: "0.0.0.0:8443".parse().unwrap(),
            tls: None,
            hosts: remote_hosts(Some(base)).unwrap(),
            base_url: base.into(),
            proxy: proxy.map(|p| p.parse().unwrap()),
            proxy_addr: None,
        };
        let at = |base: &str, proxy: &str| plan(base, Some(proxy)).remote_proxy().unwrap();
        assert_eq!(
            at("https://team.test:8443", "0.0.0.0:8444"),
            "team.test:8444"
        );
        assert_eq!(at("https://team.test", "[::]:9000"), "team.test:9000");
        assert_eq!(at("https://[fd00::1]:1", "0.0.0.0:2"), "[fd00::1]:2");
        assert_eq!(plan("https://team.test", None).remote_proxy(), None);
        let mut own = plan("https://team.test:8443", Some("0.0.0.0:8444"));
        own.proxy_addr = Some("replica-2.team.test:9444".into());
        assert_eq!(own.remote_proxy().unwrap(), "replica-2.team.test:9444");
        assert!(proxy_addr("replica-2.team.test:9444").is_ok());
        assert!(proxy_addr("[fd00::2]:1").is_ok());
        for bad in [
            "replica",
            "host:0",
            "host:x",
            ":80",
            "a/b:80",
            "https://h:80",
        ] {
            assert!(proxy_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_proof_key_never_shows_in_debug() {
        let k = ProofKey(Secret::new("PKCANARY".into()));
        assert!(!format!("{k:?}").contains("PKCANARY"));
    }

    #[test]
    fn the_session_bus_path_is_read_from_its_address() {
        assert_eq!(
            session_bus_path("unix:path=/run/user/1000/bus,guid=abc"),
            Some(PathBuf::from("/run/user/1000/bus"))
        );
        assert_eq!(
            session_bus_path("unix:abstract=/tmp/dbus-x;unix:path=/b"),
            Some(PathBuf::from("/b"))
        );
        assert_eq!(session_bus_path("tcp:host=localhost,port=1"), None);
    }
}
