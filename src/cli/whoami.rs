//! `authsome whoami`: this home, its identity, key source and connections.

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::home::Home;
use crate::identity::Identity;

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let home = Home::new(&ctx.config.home);
    let identity = Identity::load_or_create(&home)?;
    let svc = ctx.existing_service()?;
    let mut connected: BTreeMap<String, usize> = BTreeMap::new();
    let (key_source, key_source_id, vault) = match &svc {
        Some(s) => {
            for c in s.list_connections()? {
                *connected.entry(c.record.provider).or_default() += 1;
            }
            (
                Some(s.key_source().describe()),
                Some(s.key_source().id()),
                Some(s.vault().path().display().to_string()),
            )
        }
        None => (None, None, None),
    };
    if ctx.printer.json {
        ctx.printer.json(&json!({
            "version": env!("CARGO_PKG_VERSION"),
            "home": home.root(),
            "did": identity.did(),
            "vault": vault,
            "encryption": "aes-256-gcm",
            "effective_encryption_source": key_source_id,
            "encryption_backend": key_source,
            "connected_providers": connected,
        }));
        return Ok(ExitStatus::Success);
    }
    let rows = [
        ("home", home.root().display().to_string()),
        ("identity", identity.did().to_string()),
        (
            "vault",
            vault.unwrap_or_else(|| "not created yet (first `authsome login` creates it)".into()),
        ),
        ("master key", key_source.unwrap_or_else(|| "-".into())),
        (
            "connected",
            if connected.is_empty() {
                "none".into()
            } else {
                connected
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
            },
        ),
    ];
    for (k, v) in rows {
        ctx.printer.data(&format!("{k:<11} {v}"));
    }
    Ok(ExitStatus::Success)
}
