//! `authsome revoke PROVIDER`: revoke every connection of a provider at the
//! provider (RFC 7009, where it has a revocation endpoint) and remove them.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name.
    provider: String,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let v = client.post(
        &format!("/api/connections/{}/revoke", super::seg(&args.provider)),
        &json!({}),
    )?;
    if ctx.printer.json {
        ctx.printer.json(&v);
        return Ok(ExitStatus::Success);
    }
    let removed = v["removed"].as_u64().unwrap_or(0);
    let notices: Vec<&str> = v["provider_notified"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    let told = if notices.contains(&"failed") {
        "; the provider could not be told for some (revoke them there if needed)"
    } else if notices.contains(&"revoked") {
        "; revoked at the provider"
    } else {
        "; the provider was not contacted (no revocation endpoint)"
    };
    ctx.printer.success(&format!(
        "Removed {} of {}{told}",
        crate::error::count(removed as usize, "connection"),
        args.provider
    ));
    Ok(ExitStatus::Success)
}
