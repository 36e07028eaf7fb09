//! `authsome daemon serve|start|stop|restart|status|logs`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::client;
use super::exit::ExitStatus;
use crate::app::{self, DaemonOptions, RemoteListen};
use crate::home::Home;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what `start` runs in the background).
    Serve {
        /// Address to bind. The default, 127.0.0.1, is the only safe choice on a shared machine;
        /// anything else is for a deliberate hosted setup.
        #[arg(long)]
        host: Option<IpAddr>,
        /// Port (default: 7998, or AUTHSOME_PORT; 0 picks a free port).
        #[arg(long)]
        port: Option<u16>,
        /// Also serve the API to other machines (a team server) on ADDR:PORT,
        /// e.g. 0.0.0.0:8443. Beyond loopback only with --tls-cert and
        /// --tls-key; needs AUTHSOME_SERVER_BASE_URL (https://HOST or https://HOST:PORT),
        /// whose host is the only Host it answers. The dashboard stays on
        /// the loopback listener.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// The --listen certificate chain (PEM, leaf first).
        #[arg(long, value_name = "PEM", requires = "listen", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// With --listen: the proxy listener remote `authsome run`s send
        /// their child's traffic to (same TLS), e.g. 0.0.0.0:8444.
        #[arg(long, value_name = "ADDR:PORT", requires = "listen")]
        proxy_listen: Option<SocketAddr>,
        /// Read the master key from standard input (one line), as the CLI
        /// hands it to a daemon it starts: never through the environment.
        #[arg(long, hide = true)]
        master_key_stdin: bool,
        /// Keep the vault in PostgreSQL (`postgres://USER@HOST:PORT/DB`), shared
        /// by several daemons; default: the home's SQLite file. A URL with a
        /// password belongs in AUTHSOME_DATABASE_URL, not on the command line.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Start the daemon in the background if it is not running.
    Start,
    /// Stop this home's daemon.
    Stop,
    /// Stop and start again (login sessions in flight are lost; nothing stored is).
    Restart,
    /// Is the daemon running, where, and which version.
    Status,
    /// Show the end of the daemon's log.
    Logs {
        /// Number of lines.
        #[arg(short = 'n', long, default_value_t = 80)]
        lines: usize,
    },
}

/// `--store URL` (and `migrate --to URL`, named by `flag`): a PostgreSQL URL
/// without a password (argv is readable in `/proc/PID/cmdline` for the
/// process's lifetime), or `sqlite:` for the home's file.
pub(super) fn store_flag(
    flag: &str,
    url: &str,
) -> anyhow::Result<Option<crate::secret::Secret<String>>> {
    if url.trim().starts_with("sqlite:") {
        return Ok(None);
    }
    if !crate::vault::is_postgres_url(url) {
        return Err(crate::error::Error::invalid(
            format!("{flag} `{url}` is not a store URL"),
            Some("use postgres://USER@HOST:PORT/DATABASE, or sqlite: for this home's file".into()),
        )
        .into());
    }
    let authority = url.split("://").nth(1).unwrap_or_default();
    let userinfo = authority.split(['/', '?']).next().unwrap_or_default();
    if userinfo
        .rsplit_once('@')
        .is_some_and(|(u, _)| u.contains(':'))
        || url.contains("password=")
    {
        return Err(crate::error::Error::invalid(
            format!("{flag} must not carry the database password: command lines are readable by every process"),
            Some("put the URL in AUTHSOME_DATABASE_URL instead (or use a .pgpass-style passwordless role)".into()),
        )
        .into());
    }
    Ok(Some(crate::secret::Secret::new(url.to_string())))
}

/// The master key a starting CLI writes to the daemon's stdin (then closes it).
fn read_master_key_stdin() -> anyhow::Result<crate::secret::Secret<String>> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| crate::Error::io("cannot read the master key from standard input", e))?;
    let key = crate::secret::Secret::new(text.trim().to_string());
    zeroize::Zeroize::zeroize(&mut text);
    if key.expose().is_empty() {
        return Err(crate::Error::invalid(
            "--master-key-stdin was given but standard input held no key",
            Some(
                "the CLI passes it when it starts the daemon; run `authsome daemon start` instead"
                    .into(),
            ),
        )
        .into());
    }
    Ok(key)
}

pub fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitStatus> {
    let home = Home::new(&ctx.config.home);
    match cmd {
        Command::Serve {
            host,
            port,
            listen,
            tls_cert,
            tls_key,
            proxy_listen,
            master_key_stdin,
            store,
        } => {
            if let Some(h) = host.filter(|h| !h.is_loopback()) {
                ctx.printer.error(
                    &format!("--host {h} would serve the API in plaintext beyond this machine"),
                    Some("keep the default 127.0.0.1, and serve other machines with --listen ADDR:PORT --tls-cert PEM --tls-key PEM"),
                );
                return Ok(ExitStatus::Usage);
            }
            let tls = tls_cert.zip(tls_key);
            if let Some(l) = listen.filter(|l| !l.ip().is_loopback())
                && tls.is_none()
            {
                ctx.printer.error(
                    &format!("--listen {l} is not a loopback address and has no TLS"),
                    Some("add --tls-cert PEM --tls-key PEM: PoP tokens and exported credentials never travel in plaintext"),
                );
                return Ok(ExitStatus::Usage);
            }
            if let Some(p) = proxy_listen.filter(|p| !p.ip().is_loopback())
                && tls.is_none()
            {
                ctx.printer.error(
                    &format!("--proxy-listen {p} is not a loopback address and has no TLS"),
                    Some("add --tls-cert PEM --tls-key PEM"),
                );
                return Ok(ExitStatus::Usage);
            }
            let listen = listen.map(|addr| RemoteListen {
                addr,
                tls,
                proxy: proxy_listen,
            });
            let mut config = ctx.config.clone_for_daemon();
            if port.is_some() {
                config.port = port;
            }
            if let Some(url) = store {
                config.database_url = store_flag("--store", &url)?;
            }
            if master_key_stdin {
                config.master_key = Some(read_master_key_stdin()?);
            }
            app::run_daemon(&config, DaemonOptions { host, listen })?;
            Ok(ExitStatus::Success)
        }
        Command::Start => {
            let (rt, http) = client::rt_http(Duration::from_secs(5))?;
            if let Some((file, _)) = client::running(&home, &rt, &http)? {
                report(ctx, "already_running", &file.url, file.pid);
                return Ok(ExitStatus::Success);
            }
            let url = client::start_and_wait(ctx, &home, &rt, &http)?;
            let pid = app::read_daemon_file(home.root())
                .map(|f| f.pid)
                .unwrap_or_default();
            report(ctx, "started", &url, pid);
            Ok(ExitStatus::Success)
        }
        Command::Stop => {
            let (rt, http) = client::rt_http(Duration::from_secs(5))?;
            match client::running(&home, &rt, &http)? {
                Some((file, _)) => {
                    client::stop(&home, &rt, &http, &file)?;
                    report(ctx, "stopped", &file.url, file.pid);
                }
                None => report(ctx, "not_running", "", 0),
            }
            Ok(ExitStatus::Success)
        }
        Command::Restart => {
            let (rt, http) = client::rt_http(Duration::from_secs(5))?;
            if let Some((file, _)) = client::running(&home, &rt, &http)? {
                client::stop(&home, &rt, &http, &file)?;
            }
            let url = client::start_and_wait(ctx, &home, &rt, &http)?;
            let pid = app::read_daemon_file(home.root())
                .map(|f| f.pid)
                .unwrap_or_default();
            report(ctx, "restarted", &url, pid);
            Ok(ExitStatus::Success)
        }
        Command::Status => {
            let (rt, http) = client::rt_http(Duration::from_secs(5))?;
            let log = app::log_file_path(home.root());
            match client::running(&home, &rt, &http)? {
                Some((file, health)) => {
                    if ctx.printer.json {
                        ctx.printer.json(&json!({"running": true, "pid": file.pid, "url": file.url, "port": file.port, "version": health.version, "health": health, "log_file": log}));
                    } else {
                        ctx.printer
                            .data(&format!("running     pid {} at {}", file.pid, file.url));
                        ctx.printer.data(&format!(
                            "version     {}",
                            health.version.as_deref().unwrap_or("?")
                        ));
                        ctx.printer.data(&format!(
                            "master key  {}",
                            health.encryption_backend.as_deref().unwrap_or("?")
                        ));
                        ctx.printer.data(&format!("log         {}", log.display()));
                    }
                    Ok(ExitStatus::Success)
                }
                None => {
                    if ctx.printer.json {
                        ctx.printer
                            .json(&json!({"running": false, "log_file": log}));
                    } else {
                        ctx.printer.data("not running (any command that needs it starts it; or `authsome daemon start`)");
                    }
                    Ok(ExitStatus::Failure)
                }
            }
        }
        Command::Logs { lines } => {
            let log = app::log_file_path(home.root());
            let entries = client::tail_lines(&log, lines);
            if ctx.printer.json {
                ctx.printer
                    .json(&json!({"log_file": log, "entries": entries}));
            } else if entries.is_empty() {
                ctx.printer
                    .status(&format!("{} is empty or missing", log.display()));
            } else {
                for l in entries {
                    ctx.printer.data(&l);
                }
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn report(ctx: &Ctx, status: &str, url: &str, pid: u32) {
    if ctx.printer.json {
        ctx.printer
            .json(&json!({"status": status, "url": url, "pid": pid}));
        return;
    }
    let line = match status {
        "already_running" => format!("The daemon is already running at {url} (pid {pid})"),
        "started" => format!("Started the daemon at {url} (pid {pid})"),
        "restarted" => format!("Restarted the daemon at {url} (pid {pid})"),
        "stopped" => format!("Stopped the daemon (pid {pid})"),
        _ => "The daemon is not running".to_string(),
    };
    ctx.printer.success(&line);
}
