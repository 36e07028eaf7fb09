//! `authsome set-default PROVIDER CONNECTION`.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name.
    provider: String,
    /// The connection that should serve this provider's requests.
    connection: String,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let svc = ctx.service()?;
    svc.set_default(&args.provider, &args.connection)?;
    if ctx.printer.json {
        ctx.printer.json(&json!({"status": "ok", "provider": args.provider, "default_connection": args.connection}));
    } else {
        ctx.printer.success(&format!(
            "{}/{} is now the default",
            args.provider, args.connection
        ));
    }
    Ok(ExitStatus::Success)
}
