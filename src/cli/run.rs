//! `authsome run [--connection P=NAME]… [--deny-unknown] -- CMD [ARGS…]`:
//! runs a program behind a per-run proxy that adds credentials, without
//! giving it any.
//!
//! What the child gets: `HTTPS_PROXY`/`HTTP_PROXY` (both cases) pointing at
//! the run's listener with the run's token, `NO_PROXY` (the user's, minus
//! provider hosts, plus loopback), a CA bundle (system roots + the run's CA)
//! in every variable common runtimes read, `AUTHSOME_RUN=1`, and a
//! fresh random placeholder (`sk-…` where the provider's definition gives
//! a shape, else `authsome-…`) for each connected provider's secret
//! variables so SDKs start; upstream echoes of the secret come back to it
//! as that placeholder. What it never gets: a credential, the master
//! key, the CA's private key.
//!
//! A faithful wrapper: the child's exit code (128+N when it dies of signal
//! N); SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 and SIGWINCH forwarded; SIGINT
//! forwarded unless the terminal already delivered it to the child (same
//! foreground process group); SIGKILL after a grace period when the child
//! ignores a forwarded SIGTERM/SIGHUP; the child gets SIGTERM if `run`
//! itself is killed (parent-death signal). The run's listener is closed and
//! its temporary directory removed whichever way the child ends.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::Ctx;
use super::client::Client;
use super::exit::ExitStatus;
use crate::api::{RunCreate, RunCreated, RunEnded, RunRefusals};
use crate::config::{ENV_MASTER_KEY, ENV_RUN, ENV_RUN_GRACE, ENV_SANDBOX, Env, ProcessEnv};
use crate::sandbox::{Mode, Policy, Pretend, Sandbox};

fn parse_connection(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(p, n)| !p.is_empty() && !n.is_empty())
        .map(|(p, n)| (p.to_string(), n.to_string()))
        .ok_or_else(|| format!("`{s}` is not PROVIDER=NAME (example: --connection github=work)"))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("`{s}` is not auto, require or off"))
}

#[derive(Debug, clap::Args)]
#[command(
    override_usage = "authsome run [OPTIONS] -- <CMD>...",
    after_help = "Examples:
  authsome run -- python3 agent.py                 # confined; keys added on the way out
  authsome run --connection github=work -- claude  # another GitHub account for this run
  authsome run --allow-localhost 5432 -- ./agent   # let it reach a local database"
)]
pub struct Args {
    /// Use this connection for a provider instead of its default (repeatable).
    #[arg(long = "connection", value_name = "PROVIDER=NAME", value_parser = parse_connection)]
    connections: Vec<(String, String)>,
    /// Refuse (403) hosts no connected provider claims, instead of tunnelling them untouched.
    #[arg(long)]
    deny_unknown: bool,
    /// Confine the program: `auto` (default; unconfined with a warning where
    /// the kernel cannot), `require` (refuse to run unconfined), `off`.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    sandbox: Option<Mode>,
    /// Same as `--sandbox off`: the program can read the vault's files,
    /// call the daemon and connect anywhere.
    #[arg(long, conflicts_with = "sandbox")]
    no_sandbox: bool,
    /// Let the confined program reach this port of the host's loopback
    /// (a local database, an MCP server); repeatable.
    #[arg(long = "allow-localhost", value_name = "PORT")]
    allow_localhost: Vec<u16>,
    /// The program and its arguments (after `--`; an option before the
    /// program is `run`'s, and an unknown one is a usage error).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Variables that point at the CA bundle.
const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "AWS_CA_BUNDLE",
    "DENO_CERT",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
];

/// Other bundle variables some tools read; replaced only when the user set them.
const CA_VARS_IF_SET: &[&str] = &[
    "NIX_SSL_CERT_FILE",
    "HTTPLIB2_CA_CERTS",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
];

/// Hosts that never go through the proxy.
const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Ends the run at the daemon and removes the temp dir, however `run` exits.
struct RunGuard<'a> {
    client: &'a Client,
    id: String,
    dir: Option<PathBuf>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .client
            .delete::<RunEnded>(&format!("/api/proxy/runs/{}", super::seg(&self.id)))
        {
            tracing::debug!(error = %e, "could not end the run at the daemon (it ends by itself)");
        }
        if let Some(d) = self.dir.take() {
            std::fs::remove_dir_all(&d).ok();
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let env = ProcessEnv;
    if env.var(ENV_RUN).is_some_and(|v| !v.is_empty()) {
        return Err(crate::Error::invalid(
            "already inside `authsome run`",
            Some(
                "run the program directly: this shell's HTTPS_PROXY already adds credentials"
                    .into(),
            ),
        )
        .into());
    }
    let connections: BTreeMap<String, String> = args.connections.iter().cloned().collect();
    let mode = if args.no_sandbox {
        Mode::Off
    } else if let Some(m) = args.sandbox {
        m
    } else {
        match env.var(ENV_SANDBOX) {
            Some(v) => Mode::parse(&v).ok_or_else(|| {
                crate::Error::invalid(
                    format!("{ENV_SANDBOX}=`{v}` is not auto, require or off"),
                    None,
                )
            })?,
            None => Mode::Auto,
        }
    };
    let redact = crate::config::redact_setting(&env)?;
    if !redact {
        ctx.printer.warn(&format!(
            "response redaction is off ({}=off): a provider that echoes the credential (an error page, a debug endpoint) shows it to the program",
            crate::config::ENV_REDACT
        ));
    }
    let client = ctx.client()?;
    let remote = client.is_team_server();
    if remote && !args.allow_localhost.is_empty() {
        return Err(crate::Error::invalid(
            "--allow-localhost does not apply to a run on a team server",
            Some(
                "the run's proxy is on the server: it reaches no service on the server's loopback"
                    .into(),
            ),
        )
        .into());
    }
    let mut started: RunCreated = client.post(
        "/api/proxy/runs",
        &RunCreate {
            connections,
            deny_unknown: args.deny_unknown,
            // On a team server no process of this machine can be watched:
            // the run lives while `supervise` polls it (a lease).
            pid: (!remote).then(std::process::id),
            // A confined child reaches no local service through the proxy
            // either, except these ports; a remote run never reaches the
            // server's own.
            sandbox: remote || mode != Mode::Off,
            allow_localhost: args.allow_localhost.clone(),
            redact,
            // For display (the daemon masks what looks secret and keeps
            // only that, capped shorter); capped here too.
            command: args
                .command
                .iter()
                .take(64)
                .map(|a| a.to_string_lossy().chars().take(512).collect())
                .collect(),
        },
    )?;
    let id = started.id.clone();
    let mut guard = RunGuard {
        client: &client,
        id: id.clone(),
        dir: None,
    };
    // A run on a team server: the child talks to a local relay, which
    // carries its connections over TLS to the server's proxy listener.
    let _relay = if remote {
        let Some(at) = started.remote_proxy.clone() else {
            return Err(crate::Error::Unsupported {
                message: format!(
                    "the team server at {} has no proxy listener for remote runs",
                    client.base_url()
                ),
                hint: Some(
                    "its admin starts it with `daemon serve --listen … --proxy-listen ADDR:PORT`"
                        .into(),
                ),
            }
            .into());
        };
        let relay = client.relay(&at)?;
        started.proxy_url = crate::secret::Secret::new(format!(
            "http://authsome:{}@127.0.0.1:{}",
            started.token.expose(),
            relay.port
        ));
        Some(relay)
    } else {
        None
    };
    let dir = private_temp_dir(&id)?;
    guard.dir = Some(dir.clone());
    let bundle = dir.join("ca-bundle.pem");
    write_bundle(
        &bundle,
        &started.ca_pem,
        ctx.config.upstream_ca_file.as_deref(),
    )?;
    let child_env = child_env(&started, &bundle, ctx);
    let confine = Confinement::plan(ctx, &client, &started, &id, mode, &args.allow_localhost)?;
    let mut child_env = child_env;
    if confine.sandbox.is_some() {
        // The session's services are hidden from a confined child; so are
        // the variables that name them.
        for k in crate::sandbox::SESSION_VARS {
            child_env.push(((*k).to_string(), None));
        }
    }
    let refusals = Refusals {
        client: &client,
        path: format!("/api/proxy/runs/{}/refusals", super::seg(&id)),
        seen: 0,
    };
    let status = client.block_on(supervise(&args.command, child_env, confine, ctx, refusals))?;
    drop(guard);
    Ok(status)
}

/// What `authsome run` tells the user the child can reach when unconfined.
const UNCONFINED: &str = "it can read AUTHSOME_HOME (the vault and its keys), call the daemon (`authsome export`), and connect anywhere without the proxy";

/// How the child will be started.
struct Confinement {
    mode: Mode,
    /// `None`: unconfined (already warned about).
    sandbox: Option<(Policy, Handover)>,
}

/// Where the sandbox's listener goes: run `id` at the daemon of `home`.
struct Handover {
    home: PathBuf,
    id: String,
    token: crate::secret::Secret<String>,
}

impl Confinement {
    fn plan(
        ctx: &Ctx,
        client: &Client,
        started: &RunCreated,
        id: &str,
        mode: Mode,
        allow_localhost: &[u16],
    ) -> anyhow::Result<Confinement> {
        if mode == Mode::Off {
            if !allow_localhost.is_empty() {
                return Err(crate::Error::invalid(
                    "--allow-localhost needs the sandbox",
                    Some("unconfined, the program reaches every local port already".into()),
                )
                .into());
            }
            ctx.printer
                .warn(&format!("the sandbox is off: {UNCONFINED}"));
            return Ok(Confinement {
                mode,
                sandbox: None,
            });
        }
        let daemon_port = client
            .base_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
        for p in allow_localhost {
            if Some(*p) == daemon_port {
                return Err(crate::Error::invalid(
                    format!("--allow-localhost {p}: that is the authsome daemon's port"),
                    Some(
                        "the daemon holds every credential; a confined program may never call it"
                            .into(),
                    ),
                )
                .into());
            }
            if *p == ctx.config.proxy_port {
                return Err(crate::Error::invalid(
                    format!("--allow-localhost {p}: that is authsome's system-wide proxy"),
                    Some("the program already reaches the proxy of its own run".into()),
                )
                .into());
            }
        }
        let mut hide: Vec<PathBuf> = started.protect.clone();
        hide.push(ctx.config.home.clone());
        hide.extend(ctx.config.master_key_file.clone());
        let token = started.token.duplicate();
        let pretend = Pretend::from_value(
            ProcessEnv
                .var(crate::sandbox::ENV_PRETEND_UNAVAILABLE)
                .as_deref(),
        );
        let landlock = pretend != Pretend::NoLandlock && crate::sandbox::landlock_version() > 0;
        let (services, fresh) = crate::sandbox::user_services(
            rustix::process::geteuid().as_raw(),
            ProcessEnv
                .var(crate::config::ENV_XDG_RUNTIME_DIR)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .as_deref(),
            ProcessEnv
                .var(crate::config::ENV_TMUX_TMPDIR)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .as_deref(),
            &std::env::temp_dir(),
        );
        hide.extend(services);
        let policy = Policy {
            hide,
            fresh,
            proxy_port: started.port,
            allow_localhost: allow_localhost.to_vec(),
            landlock,
        };
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        if let Err(why) = policy.check(&cwd) {
            return Err(
                crate::Error::invalid(why, Some("run it from another directory".into())).into(),
            );
        }
        let unavailable = if cfg!(not(target_os = "linux")) {
            Some("confinement is implemented on Linux only".to_string())
        } else if pretend == Pretend::NoNamespaces {
            Some(format!(
                "user namespaces are unavailable ({} is set)",
                crate::sandbox::ENV_PRETEND_UNAVAILABLE
            ))
        } else if !crate::app::handoff::socket_path(&ctx.config.home).exists() {
            // A daemon elsewhere (AUTHSOME_BASE_URL) cannot take a socket
            // from this machine's namespaces.
            Some(format!(
                "the daemon has no {} to take the sandbox's socket (a daemon on another machine?)",
                crate::app::handoff::socket_path(&ctx.config.home).display()
            ))
        } else {
            None
        };
        let mut c = Confinement {
            mode,
            sandbox: Some((
                policy,
                Handover {
                    home: ctx.config.home.clone(),
                    id: id.to_string(),
                    token,
                },
            )),
        };
        if let Some(why) = unavailable {
            c.unavailable(ctx, &why)?;
        } else if !landlock {
            // Namespaces alone leave /proc/<pid>/root of the user's other
            // processes, which shows the home as it is outside.
            let why = "this kernel has no Landlock, and without it the program could read AUTHSOME_HOME through /proc/<pid>/root of your other processes";
            if mode == Mode::Require {
                return Err(SandboxRequired(why.to_string()).into());
            }
            ctx.printer.warn(&format!(
                "the program runs only partly confined: {why}; `authsome doctor` says more"
            ));
        }
        Ok(c)
    }

    /// The sandbox cannot be had: refuse (`require`) or warn and go on.
    fn unavailable(&mut self, ctx: &Ctx, why: &str) -> anyhow::Result<()> {
        self.sandbox = None;
        if self.mode == Mode::Require {
            return Err(SandboxRequired(why.to_string()).into());
        }
        ctx.printer.warn(&format!(
            "cannot confine the program ({why}): it runs unconfined, and {}",
            UNCONFINED.trim_start_matches("it ")
        ));
        Ok(())
    }
}

/// `--sandbox require` and the kernel said no (exit code 8).
#[derive(Debug)]
struct SandboxRequired(String);

impl std::fmt::Display for SandboxRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot confine the program: {}", self.0)
    }
}

impl std::error::Error for SandboxRequired {}

/// Exit code and hint for [`SandboxRequired`] (used by the CLI's error path).
pub fn sandbox_required(e: &anyhow::Error) -> Option<(ExitStatus, &'static str)> {
    e.downcast_ref::<SandboxRequired>().map(|_| {
        (
            ExitStatus::Sandbox,
            "`authsome doctor` says what this kernel lacks; `--sandbox auto` runs unconfined with a warning",
        )
    })
}

/// `$TMPDIR/authsome-run-<id>`, mode 0700, created fresh.
fn private_temp_dir(id: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("authsome-run-{id}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// System roots + the run's CA (+ AUTHSOME_UPSTREAM_CA_FILE), read-only.
fn write_bundle(path: &Path, ca_pem: &str, extra: Option<&Path>) -> anyhow::Result<()> {
    let mut out = crate::ca::system_roots_pem();
    if !out.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    out.push_str("# authsome run CA (this run only)\n");
    out.push_str(ca_pem);
    if let Some(extra) = extra
        && let Ok(text) = std::fs::read_to_string(extra)
    {
        out.push_str(&format!(
            "# AUTHSOME_UPSTREAM_CA_FILE ({})\n",
            extra.display()
        ));
        out.push_str(&text);
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(out.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).ok();
    Ok(())
}

/// The child's environment changes: (name, Some(value)) sets, None removes.
fn child_env(started: &RunCreated, bundle: &Path, ctx: &Ctx) -> Vec<(String, Option<String>)> {
    let env = ProcessEnv;
    let url = started.proxy_url.expose().clone();
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        out.push((k.into(), Some(url.clone())));
    }
    let hosts = &started.hosts;
    let user = env
        .var("NO_PROXY")
        .or_else(|| env.var("no_proxy"))
        .unwrap_or_default();
    let no_proxy = no_proxy(&user, hosts, |h| {
        ctx.printer.warn(&format!(
            "NO_PROXY listed `{h}`, a provider host; removed for this run so it gets credentials"
        ));
    });
    out.push(("NO_PROXY".into(), Some(no_proxy.clone())));
    out.push(("no_proxy".into(), Some(no_proxy)));
    let b = bundle.display().to_string();
    for k in CA_VARS {
        out.push(((*k).into(), Some(b.clone())));
    }
    for k in CA_VARS_IF_SET {
        if env.var(k).is_some() {
            out.push(((*k).into(), Some(b.clone())));
        }
    }
    out.push(("NODE_USE_ENV_PROXY".into(), Some("1".into())));
    out.push((ENV_RUN.into(), Some("1".into())));
    // Never hand the child the vault's key (or say where it is).
    out.push((ENV_MASTER_KEY.into(), None));
    out.push((crate::config::ENV_MASTER_KEY_FILE.into(), None));
    // ... nor the store's URL, which may carry the database's password.
    out.push((crate::config::ENV_DATABASE_URL.into(), None));
    for (k, v) in &started.placeholders {
        out.push((k.clone(), Some(v.clone())));
    }
    out
}

/// The user's NO_PROXY minus provider hosts, plus loopback.
fn no_proxy(user: &str, provider_hosts: &[String], mut removed: impl FnMut(&str)) -> String {
    let covers = |entry: &str| {
        let e = entry
            .trim()
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        !e.is_empty()
            && (e == "*"
                || provider_hosts.iter().any(|h| {
                    *h == e || h.ends_with(&format!(".{e}")) || e.ends_with(&format!(".{h}"))
                }))
    };
    let mut out: Vec<String> = Vec::new();
    for entry in user.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if covers(entry) {
            removed(entry);
        } else if !out.iter().any(|e| e == entry) {
            out.push(entry.to_string());
        }
    }
    for l in LOOPBACK {
        if !out.iter().any(|e| e == l) {
            out.push((*l).to_string());
        }
    }
    out.join(",")
}

/// Starts the child, forwards signals, returns its exit status.
async fn supervise(
    command: &[OsString],
    env: Vec<(String, Option<String>)>,
    mut confine: Confinement,
    ctx: &Ctx,
    mut refusals: Refusals<'_>,
) -> anyhow::Result<ExitStatus> {
    let (prog, rest) = command.split_first().ok_or_else(|| {
        crate::Error::invalid("no command given", Some("authsome run -- CMD".into()))
    })?;
    let build = || {
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(rest);
        for (k, v) in &env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        set_parent_death_signal(&mut cmd);
        cmd
    };
    // Handlers first: a signal that arrives while the child starts is
    // forwarded, not fatal to `run` (which would leave the run open).
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut winch = signal(SignalKind::window_change())?;
    let spawned = match confine.sandbox.take() {
        Some((policy, handover)) => match spawn_confined(build(), &policy, &handover).await? {
            Confined::Started(r) => r,
            Confined::Unavailable(why) => {
                confine.unavailable(ctx, &why)?;
                build().spawn()
            }
        },
        None => build().spawn(),
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let name = prog.to_string_lossy();
            let (code, msg) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, format!("command not found: {name}")),
                std::io::ErrorKind::PermissionDenied => (126, format!("permission denied: {name}")),
                _ => (126, format!("cannot start {name}: {e}")),
            };
            eprintln!("authsome: error: {msg}");
            return Ok(ExitStatus::Code(code));
        }
    };
    let pid = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32));
    let grace = ProcessEnv
        .var(ENV_RUN_GRACE)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(10));
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    use rustix::process::Signal;
    let send = |sig: Signal| {
        if let Some(pid) = pid
            && let Err(e) = rustix::process::kill_process(pid, sig)
        {
            tracing::debug!(error = %e, "cannot signal the child");
        }
    };
    let status = loop {
        let deadline = async {
            match kill_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = child.wait() => break s.context("cannot wait for the child")?,
            _ = term.recv() => {
                send(Signal::TERM);
                kill_at.get_or_insert(tokio::time::Instant::now() + grace);
            }
            _ = hup.recv() => {
                send(Signal::HUP);
                kill_at.get_or_insert(tokio::time::Instant::now() + grace);
            }
            _ = int.recv() => {
                if !terminal_delivers_to_child() {
                    send(Signal::INT);
                }
            }
            _ = quit.recv() => send(Signal::QUIT),
            _ = usr1.recv() => send(Signal::USR1),
            _ = usr2.recv() => send(Signal::USR2),
            _ = winch.recv() => send(Signal::WINCH),
            () = deadline => {
                tracing::warn!("the program ignored the forwarded signal; killing it");
                send(Signal::KILL);
                kill_at = None;
            }
            _ = poll.tick() => refusals.show(ctx).await,
        }
    };
    refusals.show(ctx).await;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => ExitStatus::Code(c.clamp(0, 255) as u8),
        (None, Some(sig)) => ExitStatus::Code((128 + sig).clamp(0, 255) as u8),
        (None, None) => ExitStatus::Failure,
    })
}

/// Shows the proxy's refusals of this run on `run`'s stderr as they happen
/// (clients rarely show a proxy's error body: curl says only "CONNECT
/// tunnel failed, response 403"). At most [`Refusals::BURST`] lines per
/// look (every half second), then a count; `--quiet` silences them.
struct Refusals<'a> {
    client: &'a Client,
    path: String,
    seen: u64,
}

impl Refusals<'_> {
    const BURST: usize = 3;

    async fn show(&mut self, ctx: &Ctx) {
        let path = format!("{}?after={}", self.path, self.seen);
        let Ok(Ok(v)) = tokio::time::timeout(
            Duration::from_secs(1),
            self.client.get_async::<RunRefusals>(&path),
        )
        .await
        else {
            return;
        };
        let last = v.last;
        let lines: Vec<&str> = v.refusals.iter().map(|r| r.line.as_str()).collect();
        let new = last.saturating_sub(self.seen) as usize;
        for l in lines.iter().take(Self::BURST) {
            ctx.printer
                .status(&format!("authsome: {}", super::printer::sanitize(l)));
        }
        if new > Self::BURST {
            ctx.printer.status(&format!(
                "authsome: … and {} more refusals",
                new - Self::BURST
            ));
        }
        self.seen = self.seen.max(last);
    }
}

/// The outcome of a confined start.
enum Confined {
    /// The program was started confined (or could not be started at all).
    Started(std::io::Result<tokio::process::Child>),
    /// The kernel refused a namespace: nothing was started.
    Unavailable(String),
}

/// Starts `cmd` in the sandbox and hands the proxy socket opened inside it
/// to the daemon. Forwarders for `--allow-localhost` run on this runtime.
async fn spawn_confined(
    mut cmd: tokio::process::Command,
    policy: &Policy,
    to: &Handover,
) -> anyhow::Result<Confined> {
    let mut sandbox = Sandbox::new(policy).context("cannot prepare the sandbox")?;
    sandbox.install(&mut cmd);
    let spawned = cmd.spawn();
    drop(cmd);
    let handoff = match sandbox.handoff() {
        Ok(h) => h,
        Err(e) => {
            if let Ok(mut child) = spawned {
                // Cannot happen (a failed setup fails the spawn); never
                // leave a half-confined program running.
                child.start_kill().ok();
                child.wait().await.ok();
            }
            // Namespaces the kernel refuses: the sandbox is unavailable.
            // Anything later (a mount, the hand-over) is an error to report.
            let unavailable = matches!(
                e.errno,
                libc::EPERM
                    | libc::EACCES
                    | libc::ENOSPC
                    | libc::EINVAL
                    | libc::ENOSYS
                    | libc::EUSERS
            ) && (e.step.starts_with("creating")
                || e.step.starts_with("mapping")
                || e.step.starts_with("bringing"));
            if unavailable {
                return Ok(Confined::Unavailable(e.to_string()));
            }
            return Err(anyhow::anyhow!("cannot set up the sandbox: {e}"));
        }
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Ok(Confined::Started(Err(e))),
    };
    if let Err(e) =
        crate::app::handoff::hand_over(&to.home, &to.id, to.token.expose(), &handoff.proxy)
    {
        child.start_kill().ok();
        child.wait().await.ok();
        return Err(e);
    }
    drop(handoff.proxy);
    for (port, inside) in handoff.forwards {
        tokio::spawn(forward_localhost(inside, port));
    }
    Ok(Confined::Started(Ok(child)))
}

/// `--allow-localhost PORT`: connections to 127.0.0.1:PORT inside the
/// sandbox are relayed to the host's 127.0.0.1:PORT.
async fn forward_localhost(inside: std::net::TcpListener, port: u16) {
    let listener = match inside
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(inside))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot serve --allow-localhost");
            return;
        }
    };
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(mut host) => {
                    tokio::io::copy_bidirectional(&mut conn, &mut host)
                        .await
                        .ok();
                }
                Err(e) => tracing::debug!(port, error = %e, "--allow-localhost: host port refused"),
            }
        });
    }
}

/// True when a Ctrl-C on the terminal reached the child already: we are in
/// the terminal's foreground process group, and the child is in ours.
fn terminal_delivers_to_child() -> bool {
    let stdin = std::io::stdin();
    match rustix::termios::tcgetpgrp(&stdin) {
        Ok(fg) => fg == rustix::process::getpgrp(),
        Err(_) => false,
    }
}

/// The child gets SIGTERM if `authsome run` dies without forwarding (kill -9).
#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec; it only
        // makes two async-signal-safe system calls (prctl, getppid) and
        // allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))?;
                // The parent may have died between fork and prctl.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other("authsome run exited"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_variable_run_sets() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Running an agent").unwrap_or(0)..];
        for v in CA_VARS
            .iter()
            .chain(CA_VARS_IF_SET)
            .chain(crate::sandbox::SESSION_VARS)
            .chain(&[
                "NODE_USE_ENV_PROXY",
                "AUTHSOME_RUN",
                "NO_PROXY",
                "HTTPS_PROXY",
            ])
        {
            assert!(
                section.contains(&format!("`{v}`")) || section.contains(&format!("`{v}=")),
                "README lacks {v}"
            );
        }
    }

    #[test]
    fn no_proxy_drops_provider_hosts_and_adds_loopback() {
        let hosts = vec!["api.github.test".to_string(), "acme.test".to_string()];
        let mut removed = Vec::new();
        let v = no_proxy(
            "corp.internal, api.github.test,.acme.test,localhost",
            &hosts,
            |h| removed.push(h.to_string()),
        );
        assert_eq!(v, "corp.internal,localhost,127.0.0.1,::1");
        assert_eq!(removed, vec!["api.github.test", ".acme.test"]);
        assert_eq!(no_proxy("", &hosts, |_| {}), "localhost,127.0.0.1,::1");
        let mut r = Vec::new();
        no_proxy("*", &hosts, |h| r.push(h.to_string()));
        assert_eq!(r, vec!["*"]);
    }
}
