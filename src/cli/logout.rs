//! `authsome logout PROVIDER`: remove one stored connection.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name.
    provider: String,
    /// Connection to remove (default: the provider's default connection).
    #[arg(long, short = 'c')]
    connection: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let Some(svc) = ctx.existing_service()? else {
        return Err(Error::ConnectionNotFound {
            provider: args.provider,
            connection: args.connection.unwrap_or_else(|| "default".into()),
        }
        .into());
    };
    let rec = svc.logout(&args.provider, args.connection.as_deref())?;
    if ctx.printer.json {
        ctx.printer.json(
            &json!({"status": "logged_out", "provider": rec.provider, "connection": rec.name}),
        );
    } else {
        ctx.printer.success(&format!(
            "Removed the credentials of {}/{}",
            rec.provider, rec.name
        ));
    }
    Ok(ExitStatus::Success)
}
