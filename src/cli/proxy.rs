//! `authsome proxy env [--shell sh|fish|powershell]`: the lines that point a
//! shell (and everything started from it) at the daemon's system-wide proxy
//! listener (default `127.0.0.1:7999`, `AUTHSOME_PROXY_PORT`), which uses
//! the persistent CA under `$AUTHSOME_HOME/ca/`. `authsome proxy status`
//! shows the listeners and their counters.
//!
//! `eval "$(authsome proxy env)"` in a shell; the values contain the
//! system-wide proxy token (not a provider secret; it only lets a process
//! use the proxy, like the per-run token of `authsome run`).

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::{ProxySystem, RunList, SystemRequest};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print export lines for the system-wide proxy (starts it when needed).
    Env {
        /// Shell syntax of the lines.
        #[arg(long, value_enum, default_value_t = Shell::Sh)]
        shell: Shell,
    },
    /// Show the system-wide listener and the open runs.
    Status,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Sh,
    Fish,
    Powershell,
}

pub fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    match cmd {
        Command::Env { shell } => {
            let s: ProxySystem =
                client.post("/api/proxy/system", &SystemRequest { listen: Some(true) })?;
            let url = s.proxy_url.as_ref().map(|u| u.expose().as_str());
            let bundle = s.bundle_path.to_string_lossy();
            let ca = s.ca_path.to_string_lossy();
            let vars = env_vars(url.unwrap_or_default(), &bundle, &ca);
            if ctx.printer.json {
                ctx.printer
                    .json(&vars.iter().copied().collect::<BTreeMap<_, _>>());
            } else {
                for (k, v) in &vars {
                    ctx.printer.data(&line(shell, k, v));
                }
                ctx.printer.status(&format!(
                    "system-wide proxy on 127.0.0.1:{}; trust {ca} to use it (`authsome ca install` adds it to the system store)",
                    or_null(s.port)
                ));
            }
            Ok(ExitStatus::Success)
        }
        Command::Status => {
            let runs: RunList = client.get("/api/proxy/runs")?;
            let sys: ProxySystem = client.post(
                "/api/proxy/system",
                &SystemRequest {
                    listen: Some(false),
                },
            )?;
            if ctx.printer.json {
                ctx.printer.json(&json!({"system": sys, "runs": runs.runs}));
            } else {
                if sys.listening {
                    let stats = sys.stats.unwrap_or_default();
                    ctx.printer.data(&format!(
                        "system-wide: 127.0.0.1:{} injected={} tunnels={} refused={}",
                        or_null(sys.port),
                        stats.injected,
                        stats.tunnels,
                        stats.refused
                    ));
                } else {
                    ctx.printer
                        .data("system-wide: not listening (`authsome proxy env` starts it)");
                }
                let list = runs.runs;
                for r in &list {
                    ctx.printer.data(&format!(
                        "run {}: 127.0.0.1:{} pid={} injected={} tunnels={} refused={}{}",
                        r.id,
                        r.port,
                        or_null(r.pid),
                        r.stats.injected,
                        r.stats.tunnels,
                        r.stats.refused,
                        if r.command.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " command: {}",
                                super::printer::sanitize(&r.command.join(" "))
                            )
                        }
                    ));
                }
                if list.is_empty() {
                    ctx.printer.data("runs: none");
                }
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// A number, or `null` when absent (as the JSON had it).
fn or_null<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

/// The variables, in print order.
fn env_vars<'a>(url: &'a str, bundle: &'a str, ca: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("HTTPS_PROXY", url),
        ("https_proxy", url),
        ("HTTP_PROXY", url),
        ("http_proxy", url),
        ("NO_PROXY", "localhost,127.0.0.1,::1"),
        ("no_proxy", "localhost,127.0.0.1,::1"),
        ("SSL_CERT_FILE", bundle),
        ("REQUESTS_CA_BUNDLE", bundle),
        ("CURL_CA_BUNDLE", bundle),
        ("GIT_SSL_CAINFO", bundle),
        ("AWS_CA_BUNDLE", bundle),
        ("DENO_CERT", bundle),
        ("NODE_EXTRA_CA_CERTS", ca),
        ("NODE_USE_ENV_PROXY", "1"),
    ]
}

/// One assignment in `shell`'s syntax, single-quoted.
fn line(shell: Shell, k: &str, v: &str) -> String {
    match shell {
        Shell::Sh => format!("export {k}='{}'", v.replace('\'', "'\\''")),
        Shell::Fish => format!(
            "set -gx {k} '{}';",
            v.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        Shell::Powershell => format!("$env:{k} = '{}'", v.replace('\'', "''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_per_shell() {
        assert_eq!(line(Shell::Sh, "A", "x'y"), "export A='x'\\''y'");
        assert_eq!(line(Shell::Fish, "A", "x'y"), "set -gx A 'x\\'y';");
        assert_eq!(line(Shell::Powershell, "A", "x'y"), "$env:A = 'x''y'");
    }
}
