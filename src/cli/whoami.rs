//! `authsome whoami`: this home, its identity, key source and connections.

use super::Ctx;
use super::exit::ExitStatus;

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let v = ctx.client()?.get("/api/whoami")?;
    if ctx.printer.json {
        ctx.printer.json(&v);
        return Ok(ExitStatus::Success);
    }
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    let connected = v["connected_providers"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let connected = if connected.is_empty() {
        "none".to_string()
    } else {
        connected
            .iter()
            .map(|(p, n)| {
                if n.as_u64().unwrap_or(1) > 1 {
                    format!("{p} ({n})")
                } else {
                    p.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (k, val) in [
        ("home", s("home")),
        ("identity", s("did")),
        ("daemon", s("daemon_url")),
        ("vault", s("vault")),
        ("master key", s("encryption_backend")),
        ("connected", connected),
    ] {
        ctx.printer.data(&format!("{k:<11} {val}"));
    }
    Ok(ExitStatus::Success)
}
