//! `authsome revoke PROVIDER`: revoke every connection of a provider at the
//! provider (RFC 7009, where it has a revocation endpoint) and remove them.

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::{Empty, ProviderNotice, Revoked};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name.
    provider: String,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let v: Revoked = client.post(
        &format!("/api/connections/{}/revoke", super::seg(&args.provider)),
        &Empty {},
    )?;
    if ctx.printer.json {
        ctx.printer.json(&v);
        return Ok(ExitStatus::Success);
    }
    let notices = &v.provider_notified;
    let told = if notices.contains(&ProviderNotice::Failed) {
        "; the provider could not be told for some (revoke them there if needed)"
    } else if notices.contains(&ProviderNotice::Revoked) {
        "; revoked at the provider"
    } else {
        "; the provider was not contacted (no revocation endpoint)"
    };
    ctx.printer.success(&format!(
        "Removed {} of {}{told}",
        crate::error::count(v.removed, "connection"),
        args.provider
    ));
    Ok(ExitStatus::Success)
}
