//! `authsome whoami`: this home, its identity, key source and connections.

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::Whoami;

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let v: Whoami = ctx.client()?.get("/api/whoami")?;
    if ctx.printer.json {
        ctx.printer.json(&v);
        return Ok(ExitStatus::Success);
    }
    let connected = if v.connected_providers.is_empty() {
        "none".to_string()
    } else {
        v.connected_providers
            .iter()
            .map(|(p, n)| {
                if *n > 1 {
                    format!("{p} ({n})")
                } else {
                    p.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let role = match (&v.role, v.grants.is_empty()) {
        (None, _) => None,
        (Some(r), true) => Some(r.to_string()),
        (Some(r), false) => Some(format!(
            "{r} (granted: {})",
            v.grants
                .iter()
                .map(|g| format!("{}/{}", g.provider, g.connection))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    for (k, val) in [
        ("home", v.home.display().to_string()),
        ("identity", v.did),
        ("role", role.unwrap_or_else(|| "-".into())),
        ("daemon", v.daemon_url),
        ("vault", v.vault.display().to_string()),
        ("master key", v.encryption_backend),
        ("connected", connected),
    ] {
        // A member of a team server is not told the server's paths.
        if val.is_empty() {
            continue;
        }
        ctx.printer.data(&format!("{k:<11} {val}"));
    }
    Ok(ExitStatus::Success)
}
