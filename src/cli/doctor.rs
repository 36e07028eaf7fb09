//! `authsome doctor`: run the diagnostics and show each as ✓ / ! / ✗ with a hint.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::app::client_check::{self, ClientResult, ClientStatus};
use crate::diagnostics::{self, Status};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  authsome doctor                   # home, keys, vault, daemon, sandbox
  authsome doctor --clients         # also: do curl, Python, Node, git, Go get credentials?
  authsome doctor --clients --json  # the same for scripts")]
pub struct Args {
    /// Also run each HTTP client found here (curl, Python requests/httpx/urllib,
    /// Node fetch/undici, git, Go) through a short `authsome run` against a
    /// local check endpoint, and report whether it uses the proxy, trusts the
    /// run's CA and gets the test credential. Nothing leaves this machine, and
    /// your home is not touched (the check uses a private temporary one).
    #[arg(long)]
    clients: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let mut checks = diagnostics::run(&ctx.config);
    let daemon = daemon_check(ctx);
    let running = daemon.status == Status::Pass;
    checks.push(daemon);
    if running {
        daemon_settings(ctx, &mut checks);
    }
    let (support, mode) = diagnostics::sandbox(&crate::config::ProcessEnv);
    checks.push(diagnostics::check_sandbox(&support, mode));
    let clients = if args.clients {
        Some(check_clients(ctx)?)
    } else {
        None
    };
    let ok = checks.iter().all(|c| c.status != Status::Fail)
        && clients
            .iter()
            .flatten()
            .all(|c| c.status != ClientStatus::Fail);
    if ctx.printer.json {
        let applies: Vec<&str> = support
            .confinements()
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(what, _)| what)
            .collect();
        let sandbox = json!({
            "mode": mode.as_str(),
            "user_namespaces": support.namespaces.is_ok(),
            "user_namespaces_error": support.namespaces.as_ref().err(),
            "landlock_abi": support.landlock_abi,
            "landlock_error": support.landlock_missing,
            "applies": if mode == crate::sandbox::Mode::Off || support.namespaces.is_err() { Vec::new() } else { applies },
        });
        let mut out = json!({"ok": ok, "checks": checks, "sandbox": sandbox});
        if let Some(c) = &clients {
            out["clients"] = json!(c);
        }
        ctx.printer.json(&out);
    } else {
        let p = &ctx.printer;
        for c in &checks {
            let mark = match c.status {
                Status::Pass => p.paint("32", "✓"),
                Status::Warn => p.paint("33", "!"),
                Status::Fail => p.paint("31", "✗"),
            };
            p.data(&format!(
                "{mark} {:<11} {}",
                c.name,
                super::printer::sanitize(&c.detail)
            ));
            if let Some(h) = &c.hint {
                p.data(&format!(
                    "  {} {}",
                    p.paint("36", "hint:"),
                    super::printer::sanitize(h)
                ));
            }
        }
        if let Some(c) = &clients {
            show_clients(ctx, c);
        }
    }
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// With a daemon running, the upstream settings in force are the ones it
/// started with, not this shell's: report those, and what differs.
fn daemon_settings(ctx: &Ctx, checks: &mut Vec<diagnostics::Check>) {
    let Ok(client) = ctx.client() else {
        return;
    };
    let Ok(who) = client.get::<crate::api::Whoami>("/api/whoami") else {
        return;
    };
    let mut env = crate::config::MapEnv::default();
    for (k, v) in &who.settings {
        env.0.insert(k.clone(), v.clone());
    }
    env.0.insert(
        crate::config::ENV_HOME.into(),
        ctx.config.home.display().to_string(),
    );
    let mut shell_upstream = None;
    if let Ok(cfg) = crate::config::Config::resolve(&env, None)
        && let Some(c) = checks.iter_mut().find(|c| c.name == "upstream")
    {
        let mut daemon = diagnostics::check_upstream(&cfg);
        daemon.detail = format!("(the running daemon's) {}", daemon.detail);
        shell_upstream = Some(std::mem::replace(c, daemon));
    }
    let mine = crate::config::daemon_side_settings(&crate::config::ProcessEnv);
    let differ: Vec<String> = mine
        .iter()
        .filter(|(k, v)| who.settings.get(k.as_str()) != Some(v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // This shell's own values matter at the next restart: a broken one
    // is reported now, before it stops the daemon from starting.
    if let Some(mut c) = shell_upstream.filter(|c| !differ.is_empty() && c.status == Status::Fail) {
        c.name = "upstream (this shell)";
        checks.push(c);
    }
    checks.push(if differ.is_empty() {
        diagnostics::Check {
            name: "daemon env",
            status: Status::Pass,
            detail: "the daemon runs with this shell's daemon-side settings".into(),
            hint: None,
        }
    } else {
        diagnostics::Check {
            name: "daemon env",
            status: Status::Warn,
            detail: format!(
                "this shell sets {}, which the running daemon did not start with",
                differ.join(", ")
            ),
            hint: Some("daemon-side settings are read when the daemon starts: `authsome daemon restart` applies them".into()),
        }
    });
}

/// Whether this home's daemon answers (doctor never starts it).
fn daemon_check(ctx: &Ctx) -> diagnostics::Check {
    let home = crate::home::Home::new(&ctx.config.home);
    let running = match super::client::rt_http(std::time::Duration::from_secs(3)) {
        Ok((rt, http)) => super::client::running(&home, &rt, &http),
        Err(_) => Ok(None),
    };
    let running = match running {
        Ok(r) => r,
        Err(e) => {
            // Something holds the daemon's port and cannot prove it is ours.
            let hint = e.downcast_ref::<crate::Error>().and_then(|e| e.hint());
            return diagnostics::Check {
                name: "daemon",
                status: Status::Fail,
                detail: e.to_string(),
                hint,
            };
        }
    };
    match running {
        Some((file, h)) => diagnostics::Check {
            name: "daemon",
            status: Status::Pass,
            detail: format!("running at {} (pid {}, version {})", file.url, file.pid, h.version.as_deref().unwrap_or("?")),
            hint: None,
        },
        None => diagnostics::Check {
            name: "daemon",
            status: Status::Warn,
            detail: "not running; commands start it when they need it".into(),
            hint: Some("`authsome daemon start` starts it now; `authsome daemon logs` shows why it stopped".into()),
        },
    }
}

/// Runs the client check, with a progress line per client on stderr.
fn check_clients(ctx: &Ctx) -> anyhow::Result<Vec<ClientResult>> {
    let p = &ctx.printer;
    p.status("Checking HTTP clients through `authsome run` (a private home and a local endpoint; nothing leaves this machine)…");
    client_check::check_clients(|name, done| match done {
        None => {}
        Some(r) => p.status(&format!("  {name}: {}", word(r.status))),
    })
}

fn word(s: ClientStatus) -> &'static str {
    match s {
        ClientStatus::Ok => "ok",
        ClientStatus::Warn => "does not work (known limitation)",
        ClientStatus::Fail => "FAILED",
        ClientStatus::NotFound => "not found",
    }
}

fn show_clients(ctx: &Ctx, clients: &[ClientResult]) {
    let p = &ctx.printer;
    p.data("");
    p.data("Clients through `authsome run`:");
    for c in clients {
        let mark = match c.status {
            ClientStatus::Ok => p.paint("32", "✓"),
            ClientStatus::Warn => p.paint("33", "!"),
            ClientStatus::Fail => p.paint("31", "✗"),
            ClientStatus::NotFound => "-".to_string(),
        };
        let name = match &c.version {
            Some(v) => format!("{} ({v})", c.client),
            None => c.client.to_string(),
        };
        let detail = if c.status == ClientStatus::NotFound {
            "not found".to_string()
        } else {
            c.detail.clone()
        };
        p.data(&format!(
            "{mark} {}: {}",
            super::printer::sanitize(&name),
            super::printer::sanitize(&detail)
        ));
        if let Some(h) = &c.hint {
            p.data(&format!(
                "  {} {}",
                p.paint("36", "hint:"),
                super::printer::sanitize(h)
            ));
        }
    }
}
