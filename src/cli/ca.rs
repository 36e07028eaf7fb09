//! `authsome ca path | show | install | uninstall`: the persistent CA of
//! system-wide mode (`$AUTHSOME_HOME/ca/ca.pem`; its key `ca.key`, 0600).
//!
//! The CA is name-constrained to the hosts of the registered providers and
//! excludes every IP address, so even trusted system-wide it cannot vouch
//! for any other site. `install` touches the system trust store only when
//! asked, says exactly what it did, and `uninstall` undoes it.
//! `AUTHSOME_TRUST_STORE=DIR` installs into DIR instead (containers, tests).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::{ProxySystem, SystemRequest};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the CA certificate's path (creates the CA on first use).
    Path,
    /// Print the CA certificate (PEM) and, on stderr, what it covers.
    Show,
    /// Add the CA to the system trust store.
    Install {
        /// Print what would be done, do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove the CA from the system trust store.
    Uninstall {
        /// Print what would be done, do nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where a platform keeps extra anchors, and the command that rebuilds its bundle.
struct Store {
    dir: PathBuf,
    update: Option<&'static [&'static str]>,
}

fn store() -> anyhow::Result<Store> {
    if let Some(dir) = std::env::var_os("AUTHSOME_TRUST_STORE") {
        return Ok(Store {
            dir: PathBuf::from(dir),
            update: None,
        });
    }
    if Path::new("/usr/local/share/ca-certificates").is_dir() {
        return Ok(Store {
            dir: "/usr/local/share/ca-certificates".into(),
            update: Some(&["update-ca-certificates"]),
        });
    }
    if Path::new("/etc/pki/ca-trust/source/anchors").is_dir() {
        return Ok(Store {
            dir: "/etc/pki/ca-trust/source/anchors".into(),
            update: Some(&["update-ca-trust", "extract"]),
        });
    }
    Err(crate::Error::Unsupported {
        message: "no system trust store this command knows how to edit".into(),
        hint: Some(
            "trust the file from `authsome ca path` by hand (macOS: `security add-trusted-cert`)"
                .into(),
        ),
    }
    .into())
}

pub fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let info: ProxySystem = client.post(
        "/api/proxy/system",
        &SystemRequest {
            listen: Some(false),
        },
    )?;
    let ca = info.ca_path;
    let home_id = crate::app::home_id(&ctx.config.home);
    let file_name = format!("authsome-{home_id}.crt");
    match cmd {
        Command::Path => {
            ctx.printer.data(&ca.display().to_string());
        }
        Command::Show => {
            let pem = std::fs::read_to_string(&ca)
                .with_context(|| format!("cannot read {}", ca.display()))?;
            let hosts = &info.hosts;
            if ctx.printer.json {
                ctx.printer
                    .json(&json!({"path": ca, "pem": pem, "permitted_hosts": hosts}));
            } else {
                for l in pem.lines() {
                    ctx.printer.data(l);
                }
                ctx.printer.status(&format!(
                    "{}: name-constrained to {} provider host names; no IP address",
                    ca.display(),
                    hosts.len()
                ));
            }
        }
        Command::Install { dry_run } => {
            let s = store()?;
            let target = s.dir.join(&file_name);
            let mut did = vec![format!("copy {} to {}", ca.display(), target.display())];
            if let Some(u) = s.update {
                did.push(format!("run `{}`", u.join(" ")));
            }
            if !dry_run {
                std::fs::copy(&ca, &target).with_context(|| {
                    format!(
                        "cannot write {} (the system store needs root: `sudo cp {} {}`)",
                        target.display(),
                        ca.display(),
                        target.display()
                    )
                })?;
                update(&s)?;
            }
            report(ctx, dry_run, "install", &did, &target);
        }
        Command::Uninstall { dry_run } => {
            let s = store()?;
            let target = s.dir.join(&file_name);
            if !target.exists() {
                ctx.printer.status(&format!(
                    "not installed ({} does not exist)",
                    target.display()
                ));
                return Ok(ExitStatus::Success);
            }
            let mut did = vec![format!("remove {}", target.display())];
            if let Some(u) = s.update {
                did.push(format!("run `{}`", u.join(" ")));
            }
            if !dry_run {
                std::fs::remove_file(&target)
                    .with_context(|| format!("cannot remove {}", target.display()))?;
                update(&s)?;
            }
            report(ctx, dry_run, "uninstall", &did, &target);
        }
    }
    Ok(ExitStatus::Success)
}

fn update(s: &Store) -> anyhow::Result<()> {
    if let Some(cmd) = s.update {
        let st = std::process::Command::new(cmd[0])
            .args(&cmd[1..])
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", cmd[0]))?;
        anyhow::ensure!(st.success(), "`{}` failed ({st})", cmd.join(" "));
    }
    Ok(())
}

fn report(ctx: &Ctx, dry_run: bool, what: &str, did: &[String], target: &Path) {
    if ctx.printer.json {
        ctx.printer
            .json(&json!({"action": what, "dry_run": dry_run, "steps": did, "path": target}));
        return;
    }
    for d in did {
        if dry_run {
            ctx.printer.data(&format!("would {d}"));
        } else {
            ctx.printer.status(&format!("did: {d}"));
        }
    }
    if !dry_run {
        ctx.printer
            .success(&format!("CA {what}ed: {}", target.display()));
    }
}
