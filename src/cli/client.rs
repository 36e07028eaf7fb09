//! The CLI's connection to its daemon: discovery, auto-start, PoP signing.
//!
//! Discovery: `AUTHSOME_BASE_URL` when set; otherwise `$AUTHSOME_HOME/daemon.json`
//! and a `GET /api/health`, then a proof that the server on that port wrote
//! this `daemon.json` (an HMAC of a fresh challenge under the key in the
//! 0600 file, `/api/health/proof`). A server that cannot prove it gets
//! nothing: no PoP token, no API key; the CLI says what it found there.
//! Otherwise a daemon is started in the background (its output goes
//! to the log file) and the CLI waits for it, with a spinner past 300 ms. A
//! daemon of another version is asked to stop and replaced.

use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Ctx;
use super::exit::ExitStatus;
use crate::api;
use crate::app::{self, DaemonFile};
use crate::clock::now_unix;
use crate::home::Home;
use crate::identity::Identity;
use crate::pop;

/// An error answered by the daemon ([`api::ErrorBody`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DaemonError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

impl DaemonError {
    /// The exit status for this error code.
    pub fn exit_status(&self) -> ExitStatus {
        match self.code.as_str() {
            "provider_not_found"
            | "connection_not_found"
            | "session_not_found"
            | "no_route"
            | "not_found" => ExitStatus::NotFound,
            "invalid_input" | "invalid_provider" => ExitStatus::InvalidInput,
            "wrong_master_key" | "vault_integrity" => ExitStatus::Vault,
            "connection_exists" | "connection_suspended" | "conflict" => ExitStatus::Conflict,
            "unsupported" => ExitStatus::Unsupported,
            "expired" => ExitStatus::Expired,
            _ => ExitStatus::Failure,
        }
    }
}

/// The daemon exited while starting; carries its exit code and error lines.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DaemonStartError {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

/// A connection to the daemon for one CLI invocation (one keep-alive HTTP connection).
pub struct Client {
    base: String,
    identity: Identity,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    /// For a team server: how its listeners are reached.
    team: Option<TeamLink>,
}

/// How a team server is reached: the TLS it is trusted with and the
/// `AUTHSOME_RESOLVE` overrides.
#[derive(Clone)]
struct TeamLink {
    tls: std::sync::Arc<rustls::ClientConfig>,
    resolve: Vec<(String, std::net::IpAddr)>,
}

impl Client {
    /// Finds this home's daemon, starting it when needed.
    pub fn connect(ctx: &Ctx) -> anyhow::Result<Client> {
        let home = Home::new(&ctx.config.home);
        let target = match &ctx.config.base_url {
            Some(url) => Some(Target::parse(url)?),
            None => None,
        };
        if let Some(t) = target.as_ref().filter(|t| t.https) {
            let rt = runtime()?;
            let tls = std::sync::Arc::new(team_tls(team_ca_file().as_deref())?);
            let http = team_http(Duration::from_secs(30), t, &ctx.config.resolve, &tls)?;
            check_team_server(&rt, &http, &t.url)?;
            return Ok(Client {
                base: t.url.clone(),
                identity: Identity::load_or_create(&home)?,
                http,
                rt,
                team: Some(TeamLink {
                    tls,
                    resolve: ctx.config.resolve.clone(),
                }),
            });
        }
        let (rt, http) = rt_http(Duration::from_secs(30))?;
        let base = match &ctx.config.base_url {
            Some(url) => {
                let ok = rt.block_on(health(&http, url)).is_some();
                if !ok {
                    if is_loopback(url) {
                        // A local URL: start this home's daemon on that port.
                        let port = url
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.trim_end_matches('/').parse().ok());
                        start_and_wait_on(ctx, &home, &rt, &http, port)?
                    } else {
                        return Err(crate::Error::invalid(
                            format!("AUTHSOME_BASE_URL is set but unreachable: {url}"),
                            Some("check the URL and that the daemon there is running, or unset AUTHSOME_BASE_URL to use a local daemon".into()),
                        )
                        .into());
                    }
                } else {
                    url.clone()
                }
            }
            None => find_or_start(ctx, &home, &rt, &http)?,
        };
        let identity = Identity::load_or_create(&home)?;
        let client = Client {
            base,
            identity,
            http,
            rt,
            team: None,
        };
        if ctx.config.base_url.is_none()
            && let Some(differ) = client.settings_differ()
        {
            ctx.printer.warn(&format!(
                "{} set here, but the running daemon started with {}; daemon-side settings are read when it starts: `authsome daemon restart` applies them",
                differ.join(", "),
                if differ.len() == 1 { "another value" } else { "other values" }
            ));
        }
        Ok(client)
    }

    /// The daemon-side settings this shell sets that the running daemon
    /// did not start with (none: `None`). Asks only when the shell sets one.
    pub fn settings_differ(&self) -> Option<Vec<String>> {
        let mine = crate::config::daemon_side_settings(&crate::config::ProcessEnv);
        if mine.is_empty() {
            return None;
        }
        let theirs: api::Whoami = self.get("/api/whoami").ok()?;
        let differ: Vec<String> = mine
            .iter()
            .filter(|(k, v)| theirs.settings.get(k.as_str()) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        (!differ.is_empty()).then_some(differ)
    }

    /// Runs `f` on this client's runtime (a current-thread runtime).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The daemon's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// True when this client talks to a team server (an `https://` base URL).
    pub fn is_team_server(&self) -> bool {
        self.team.is_some()
    }

    /// Opens a relay on `127.0.0.1:0` that carries each connection, over
    /// TLS, to the team server's proxy listener at `remote` (`HOST:PORT`):
    /// the child of a remote `authsome run` talks plain HTTP to the relay
    /// as to a local run's proxy. It runs on its own thread until dropped.
    pub fn relay(&self, remote: &str) -> anyhow::Result<Relay> {
        let Some(team) = self.team.clone() else {
            anyhow::bail!("a relay is only for a team server");
        };
        let bad = || {
            crate::Error::invalid(
                format!(
                    "the team server advertised a proxy address `{remote}` that is not HOST:PORT"
                ),
                Some("check its AUTHSOME_SERVER_BASE_URL and --proxy-listen".into()),
            )
        };
        let (host, port) = remote.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_e| bad())?;
        let host = host.to_ascii_lowercase();
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls_pki_types::ServerName::try_from(bare.clone())
            .map_err(|_e| bad())?
            .to_owned();
        let pinned = team
            .resolve
            .iter()
            .find(|(h, _)| *h == host)
            .map(|(_, ip)| std::net::SocketAddr::new(*ip, port));
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .context("cannot open the relay's loopback port")?;
        listener
            .set_nonblocking(true)
            .context("cannot configure the relay's port")?;
        let local = listener
            .local_addr()
            .context("cannot read the relay's port")?
            .port();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("authsome-relay".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let connector = tokio_rustls::TlsConnector::from(team.tls);
                    loop {
                        let (mut inner, _) = tokio::select! {
                            _ = &mut stopped => return,
                            a = listener.accept() => match a {
                                Ok(a) => a,
                                Err(_e) => continue,
                            },
                        };
                        let (connector, name, bare) =
                            (connector.clone(), name.clone(), bare.clone());
                        tokio::spawn(async move {
                            let tcp = match pinned {
                                Some(a) => tokio::net::TcpStream::connect(a).await,
                                None => tokio::net::TcpStream::connect((bare.as_str(), port)).await,
                            };
                            let Ok(tcp) = tcp else {
                                tracing::warn!("cannot reach the team server's proxy listener");
                                return;
                            };
                            tcp.set_nodelay(true).ok();
                            inner.set_nodelay(true).ok();
                            match connector.connect(name, tcp).await {
                                Ok(mut outer) => {
                                    tokio::io::copy_bidirectional(&mut inner, &mut outer)
                                        .await
                                        .ok();
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "TLS to the team server's proxy listener failed");
                                }
                            }
                        });
                    }
                });
            })
            .context("cannot start the relay")?;
        Ok(Relay {
            port: local,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `GET path`, its answer read as `T` (one of the [`api`] bodies).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send("GET", path, None)
    }

    /// `POST path` with a JSON body, its answer read as `T`.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let bytes = serde_json::to_vec(body).context("cannot encode the request")?;
        self.send("POST", path, Some(bytes))
    }

    /// `DELETE path`, its answer read as `T`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send("DELETE", path, None)
    }

    /// `GET path`, from inside this client's runtime (`block_on`).
    pub async fn get_async<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let auth = pop::authorization(&self.identity, "GET", path, &[], now_unix());
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", auth)
            .send()
            .await
            .with_context(|| format!("cannot reach the authsome daemon at {}", self.base))?;
        if !resp.status().is_success() {
            anyhow::bail!("the daemon answered HTTP {}", resp.status());
        }
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("cannot read the daemon's answer to GET {path}"))?;
        answer("GET", path, &bytes)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let has_body = body.is_some();
        let bytes = body.unwrap_or_default();
        let auth = pop::authorization(&self.identity, method, path, &bytes, now_unix());
        let url = format!("{}{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).context("bad method")?;
        let mut req = self.http.request(m, &url).header("authorization", auth);
        if has_body {
            req = req.header("content-type", "application/json").body(bytes);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .with_context(|| format!("cannot reach the authsome daemon at {}", self.base))?;
            let status = resp.status().as_u16();
            let v = resp.bytes().await.unwrap_or_default();
            if (200..300).contains(&status) {
                return answer(method, path, &v);
            }
            Err(match serde_json::from_slice::<api::ErrorBody>(&v) {
                Ok(api::ErrorBody { error: e }) => DaemonError {
                    status,
                    code: e.code,
                    message: e.message,
                    hint: e.hint,
                },
                Err(_) => DaemonError {
                    status,
                    code: "http_error".into(),
                    message: format!("the daemon answered HTTP {status}"),
                    hint: None,
                },
            }
            .into())
        })
    }
}

/// A remote run's local relay ([`Client::relay`]); closed when dropped.
pub struct Relay {
    /// Its loopback port.
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            s.send(()).ok();
        }
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

/// A successful answer read as its [`api`] type.
fn answer<T: DeserializeOwned>(method: &str, path: &str, body: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(body).with_context(|| {
        format!("the daemon's answer to {method} {path} is not what this CLI expects")
    })
}

fn is_loopback(url: &str) -> bool {
    Target::parse(url).is_ok_and(|t| t.loopback)
}

/// `AUTHSOME_BASE_URL`, checked: `http://` only to this machine (PoP
/// tokens and exported credentials never travel in plaintext), `https://`
/// to a team server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    url: String,
    https: bool,
    /// The host as the URL has it, lowercased (`[::1]` for IPv6).
    host: String,
    loopback: bool,
}

impl Target {
    fn parse(url: &str) -> crate::Result<Target> {
        let bad = |why: &str| {
            crate::Error::invalid(
                format!("AUTHSOME_BASE_URL={url} {why}"),
                Some("give http://127.0.0.1:PORT for a daemon on this machine, or https://HOST[:PORT] for a team server".into()),
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("is not a URL"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("is neither http:// nor https://")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad("has a user name in it"));
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or("")),
            None => authority.split(':').next().unwrap_or("").to_string(),
        }
        .to_ascii_lowercase();
        if host.is_empty() || host == "[]" {
            return Err(bad("has no host"));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = bare.parse::<std::net::IpAddr>().ok();
        let loopback = host == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
        // 0.0.0.0 and :: reach this machine too: plaintext never leaves it.
        let local = loopback || ip.is_some_and(|ip| ip.is_unspecified());
        if !https && !local {
            return Err(crate::Error::invalid(
                format!("AUTHSOME_BASE_URL={url} is plain http:// to another machine"),
                Some("PoP tokens and exported credentials never travel in plaintext: use the team server's https:// URL (it serves with `daemon serve --listen … --tls-cert … --tls-key …`)".into()),
            ));
        }
        Ok(Target {
            url: url.to_string(),
            https,
            host,
            loopback,
        })
    }
}

pub use crate::app::health;

/// A current-thread runtime for one CLI invocation.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A current-thread runtime and an HTTP client for this machine's daemon
/// that never uses a proxy (an `HTTPS_PROXY` pointing at authsome itself
/// must not loop) and reads no certificate store.
pub fn rt_http(timeout: Duration) -> anyhow::Result<(tokio::runtime::Runtime, reqwest::Client)> {
    let rt = runtime()?;
    let http = app::loopback_http()?
        .timeout(timeout)
        .pool_max_idle_per_host(1)
        .build()
        .context("cannot build the HTTP client")?;
    Ok((rt, http))
}

/// The TLS a CLI trusts a team server with: the system's roots and the
/// certificates in `AUTHSOME_TEAM_CA_FILE`, on aws-lc, ALPN `http/1.1`.
fn team_tls(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| {
            crate::Error::invalid(
                format!(
                    "cannot read {} {}: {e}",
                    crate::config::ENV_TEAM_CA_FILE,
                    path.display()
                ),
                Some("it takes a PEM file with the CA certificate(s) that signed the team server's certificate".into()),
            )
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"no CERTIFICATE block in it").into());
        }
        for c in certs {
            roots.add(c).map_err(|e| bad(&e))?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("cannot configure TLS")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `AUTHSOME_TEAM_CA_FILE`, when set.
fn team_ca_file() -> Option<std::path::PathBuf> {
    use crate::config::{Env, ProcessEnv};
    ProcessEnv
        .var(crate::config::ENV_TEAM_CA_FILE)
        .filter(|v| !v.trim().is_empty())
        .map(std::path::PathBuf::from)
}

/// An HTTP client for a team server at `t` (https): no proxy, the team's
/// roots, and `AUTHSOME_RESOLVE`'s address for its host when it names one.
fn team_http(
    timeout: Duration,
    t: &Target,
    resolve: &[(String, std::net::IpAddr)],
    tls: &rustls::ClientConfig,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1)
        .tls_backend_preconfigured(tls.clone());
    if let Some((_, ip)) = resolve.iter().find(|(h, _)| *h == t.host) {
        // Port 0: the URL's own port is used.
        b = b.resolve(&t.host, std::net::SocketAddr::new(*ip, 0));
    }
    b.build().context("cannot build the HTTP client")
}

/// Asks the team server at `url` for `/api/health`; when it cannot be
/// reached, says why, and what to set when its certificate is not trusted.
fn check_team_server(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<()> {
    let sent = rt.block_on(async {
        let resp = http.get(format!("{url}/api/health")).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    });
    let (status, body) = match sent {
        Ok(r) => r,
        Err(e) => return Err(unreachable_team_server(url, &e).into()),
    };
    let health: Option<api::Health> = serde_json::from_slice(&body).ok();
    match health {
        Some(h) if status.is_success() && h.service == api::SERVICE => Ok(()),
        _ if status == reqwest::StatusCode::FORBIDDEN => Err(crate::Error::invalid(
            format!("the team server at {url} refused this host name (HTTP 403)"),
            Some("use the URL its admin gave (the server's AUTHSOME_SERVER_BASE_URL) as AUTHSOME_BASE_URL".into()),
        )
        .into()),
        _ => Err(crate::Error::invalid(
            format!("{url} does not answer like an authsome team server (HTTP {status})"),
            Some("check AUTHSOME_BASE_URL".into()),
        )
        .into()),
    }
}

/// Why a team server could not be reached, with the setting that fixes it.
fn unreachable_team_server(url: &str, e: &reqwest::Error) -> crate::Error {
    use crate::config::ENV_TEAM_CA_FILE;
    let text = chain(e);
    // The rustls error when it can be reached through the chain; its text
    // otherwise (connectors box it in ways `source` does not always expose).
    let (cert, name) = match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(c)) => (
            true,
            matches!(
                c,
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ),
        ),
        _ => (
            text.contains("invalid peer certificate"),
            text.contains("NotValidForName"),
        ),
    };
    let detail = text
        .rsplit(": ")
        .next()
        .unwrap_or(text.as_str())
        .to_string();
    if cert {
        return crate::Error::invalid(
            format!(
                "the team server at {url} presented a certificate this machine does not trust ({detail})"
            ),
            Some(if name {
                "the certificate is for another name: put the host name it names in AUTHSOME_BASE_URL".into()
            } else {
                format!(
                    "set {ENV_TEAM_CA_FILE} to a PEM file of the CA that signed the team server's certificate (its admin has it)"
                )
            }),
        );
    }
    crate::Error::invalid(
        format!("the team server at {url} is unreachable: {text}"),
        Some("check the URL and that the server runs `authsome daemon serve --listen`; or unset AUTHSOME_BASE_URL to use a local daemon".into()),
    )
}

/// The rustls error under a request error, if there is one.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        // io::Error's `source` skips the error it wraps: look inside.
        if let Some(t) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

/// This home's running daemon, if `daemon.json` names one that answers.
///
/// An error when something answers on that port like an authsome daemon but
/// cannot prove it is this home's (a stale `daemon.json` whose port another
/// program, maybe another user's, now holds): nothing is sent to it.
pub fn running(
    home: &Home,
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
) -> anyhow::Result<Option<(DaemonFile, api::Health)>> {
    let Some(file) = app::read_daemon_file(home.root()) else {
        return Ok(None);
    };
    if file.home_id != app::home_id(home.root()) {
        return Ok(None);
    }
    match rt.block_on(app::identify(http, &file)) {
        app::Found::Nothing => Ok(None),
        app::Found::Ours(h) => Ok(Some((file, h))),
        app::Found::Other(what) => {
            let path = app::daemon_file_path(home.root());
            Err(crate::Error::invalid(
                format!(
                    "{} says this home's daemon listens on port {}, but {what} answers there and cannot prove it is this home's daemon; nothing was sent to it",
                    path.display(),
                    file.port
                ),
                Some(format!(
                    "the daemon that wrote daemon.json is gone (killed, or the machine rebooted) and another program holds its port: find it with `lsof -i :{}`; remove {} to start a new daemon on another port",
                    file.port,
                    path.display()
                )),
            )
            .into())
        }
    }
}

fn find_or_start(
    ctx: &Ctx,
    home: &Home,
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
) -> anyhow::Result<String> {
    if let Some((file, h)) = running(home, rt, http)? {
        if same_version(&h) {
            return Ok(file.url);
        }
        ctx.printer.status(&format!(
            "Restarting the daemon (it runs version {}, this is {})",
            h.version.as_deref().unwrap_or("?"),
            env!("CARGO_PKG_VERSION")
        ));
        stop(home, rt, http, &file)?;
    }
    start_and_wait(ctx, home, rt, http)
}

/// True when the daemon runs this CLI's version.
fn same_version(h: &api::Health) -> bool {
    h.version.as_deref() == Some(env!("CARGO_PKG_VERSION"))
}

/// Asks a daemon to stop and waits until it has.
pub fn stop(
    home: &Home,
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    file: &DaemonFile,
) -> anyhow::Result<()> {
    let identity = Identity::load_or_create(home)?;
    let path = "/api/daemon/shutdown";
    let auth = pop::authorization(&identity, "POST", path, b"", now_unix());
    let url = format!("{}{path}", file.url);
    let asked = rt
        .block_on(async { http.post(url).header("authorization", auth).send().await })
        .is_ok_and(|r| r.status().is_success());
    if !asked {
        // An older daemon without the route: SIGTERM by pid.
        Command::new("kill")
            .arg("-TERM")
            .arg(file.pid.to_string())
            .status()
            .ok();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if rt.block_on(health(http, &file.url)).is_none() {
            // It no longer answers; give it a moment to remove its daemon.json,
            // and remove a stale one ourselves (a crashed daemon cannot).
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until
                && app::read_daemon_file(home.root()).is_some_and(|f| f.pid == file.pid)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            if app::read_daemon_file(home.root()).is_some_and(|f| f.pid == file.pid) {
                std::fs::remove_file(app::daemon_file_path(home.root())).ok();
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("the daemon (pid {}) did not stop within 10 s", file.pid)
}

/// Starts `authsome daemon serve` in the background and waits for it to answer.
pub fn start_and_wait(
    ctx: &Ctx,
    home: &Home,
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
) -> anyhow::Result<String> {
    start_and_wait_on(ctx, home, rt, http, None)
}

/// Like [`start_and_wait`], on a given port.
pub fn start_and_wait_on(
    ctx: &Ctx,
    home: &Home,
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    port: Option<u16>,
) -> anyhow::Result<String> {
    home.ensure()?;
    // One starter at a time: CLIs racing on a fresh home must not start two
    // daemons. The lock is released when `_lock` is dropped (or the process dies).
    let lock_path = home.root().join("daemon.lock");
    let _lock = match crate::home::create_private(&lock_path) {
        Ok(f) => f,
        Err(_) => std::fs::OpenOptions::new()
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?,
    };
    _lock
        .lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if let Some((file, h)) = running(home, rt, http)?
        && same_version(&h)
    {
        return Ok(file.url);
    }
    let log = app::log_file_path(home.root());
    crate::home::ensure_private_dir(log.parent().unwrap_or(home.root()))?;
    let log_file = crate::cli::logfile::open_append(&log)?;
    let exe = std::env::current_exe().context("cannot find the authsome executable")?;
    let old_pid = app::read_daemon_file(home.root()).map(|f| f.pid);
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&exe);
        cmd.arg("daemon").arg("serve");
        if let Some(p) = port {
            cmd.arg("--port").arg(p.to_string());
        }
        // The master key goes through a pipe on the daemon's stdin, never its
        // environment or arguments (both readable in /proc for its lifetime).
        let key = ctx.config.master_key.as_ref();
        cmd.env_remove(crate::config::ENV_MASTER_KEY);
        if key.is_some() {
            cmd.arg("--master-key-stdin");
        }
        let mut child = cmd
            .env("AUTHSOME_HOME", home.root())
            .stdin(if key.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} daemon serve", exe.display()))?;
        if let (Some(k), Some(mut pipe)) = (key, child.stdin.take()) {
            // A short write into an empty pipe: never blocks. Dropping the
            // pipe closes it, so the daemon reads to the end.
            pipe.write_all(k.expose().as_bytes())
                .and_then(|()| pipe.write_all(b"\n"))
                .context("cannot hand the master key to the daemon")?;
        }
        child
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(15);
    let tty = std::io::stderr().is_terminal() && !ctx.printer.quiet;
    let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let mut shown = false;
    let mut i = 0;
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(start_failure(&log, status.code()).into());
        }
        if let Some(file) = app::read_daemon_file(home.root())
            .filter(|f| Some(f.pid) != old_pid || f.pid == child.id())
            && file.pid == child.id()
            && rt.block_on(health(http, &file.url)).is_some()
        {
            break Ok(file.url);
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the daemon did not answer within 15 s; see `authsome daemon logs`"
            ));
        }
        if tty && start.elapsed() > Duration::from_millis(300) {
            eprint!(
                "\r{} Starting the authsome daemon…",
                frames[i % frames.len()]
            );
            let _ = std::io::stderr().flush();
            shown = true;
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(15));
    };
    if shown {
        eprint!("\r\x1b[2K");
    }
    result
}

/// Turns the daemon's last words (its `authsome: error:` / `hint:` lines in
/// the log) into the CLI's own error, with the daemon's exit code.
fn start_failure(log: &std::path::Path, code: Option<i32>) -> DaemonStartError {
    let tail = tail_lines(log, 20);
    let start = tail.iter().rposition(|l| l.starts_with("authsome: error:"));
    let (message, hint) = match start {
        Some(i) => {
            let msg = tail[i]
                .trim_start_matches("authsome: error:")
                .trim()
                .to_string();
            let hint = tail[i + 1..]
                .iter()
                .find_map(|l| l.strip_prefix("hint:"))
                .map(|h| h.trim().to_string());
            (format!("the daemon could not start: {msg}"), hint)
        }
        None => (
            format!(
                "the daemon exited while starting (code {})",
                code.unwrap_or(-1)
            ),
            Some(format!("see {}", log.display())),
        ),
    };
    DaemonStartError {
        code: code
            .and_then(|c| u8::try_from(c).ok())
            .filter(|c| *c != 0)
            .unwrap_or(1),
        message,
        hint,
    }
}

/// The last `n` lines of a file.
pub fn tail_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_plain_http_only_to_this_machine() {
        let ok = |u: &str| Target::parse(u).unwrap();
        let t = ok("https://Team.Test:8443");
        assert!(t.https && !t.loopback);
        assert_eq!(t.host, "team.test");
        assert!(ok("http://127.0.0.1:7998").loopback);
        assert!(ok("http://localhost:7998/").loopback);
        assert!(ok("http://[::1]:7998").loopback);
        assert!(ok("http://127.8.9.10:7998").loopback);
        // reaches this machine, but is no URL to start a daemon on
        assert!(!ok("http://0.0.0.0:9").loopback);
        assert_eq!(ok("https://[fd00::1]:1").host, "[fd00::1]");
        for (url, says) in [
            ("http://10.1.2.3:7998", "plain http:// to another machine"),
            ("http://team.test:7998", "plain http:// to another machine"),
            (
                "http://[2001:db8::1]:7998",
                "plain http:// to another machine",
            ),
            (
                "http://127.0.0.1.evil.test:7998",
                "plain http:// to another machine",
            ),
            ("ftp://team.test", "neither http:// nor https://"),
            ("team.test:8443", "is not a URL"),
            ("https://u:p@team.test", "user name"),
            ("https://:8443", "no host"),
        ] {
            let e = Target::parse(url).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput, "{url}");
            assert!(e.to_string().contains(says), "{url}: {e}");
            assert!(e.hint().is_some(), "{url}");
        }
        assert!(!is_loopback("http://[2001:db8::1]:7998"));
    }

    #[test]
    fn the_team_ca_file_is_read_or_named() {
        let d = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["team.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = d.path().join("ca.pem");
        std::fs::write(&good, cert.pem()).unwrap();
        let cfg = team_tls(Some(&good)).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        for p in [empty, d.path().join("missing.pem")] {
            let e = team_tls(Some(&p)).unwrap_err().to_string();
            assert!(
                e.contains("AUTHSOME_TEAM_CA_FILE") && e.contains(&*p.to_string_lossy()),
                "{e}"
            );
        }
    }
}
