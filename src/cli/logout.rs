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
    let client = ctx.client()?;
    let connection = match args.connection {
        Some(c) => c,
        None => super::default_connection(&client, &args.provider)?.ok_or_else(|| {
            Error::ConnectionNotFound {
                provider: args.provider.clone(),
                connection: "default".into(),
            }
        })?,
    };
    let v = client.post(
        &format!(
            "/api/connections/{}/{}/logout",
            super::seg(&args.provider),
            super::seg(&connection)
        ),
        &json!({}),
    )?;
    if ctx.printer.json {
        ctx.printer.json(&v);
    } else {
        ctx.printer.success(&format!(
            "Removed the credentials of {}/{}",
            args.provider, connection
        ));
    }
    Ok(ExitStatus::Success)
}
