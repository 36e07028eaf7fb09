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
        None => match super::default_connection(&client, &args.provider)? {
            Some(c) => c,
            None => {
                // An unknown provider (a typo) is named as such, with the
                // closest known name.
                client.get(&format!("/api/providers/{}", super::seg(&args.provider)))?;
                return Err(Error::ConnectionNotFound {
                    provider: args.provider.clone(),
                    connection: "default".into(),
                }
                .into());
            }
        },
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
            "Removed the credentials of {}/{}{}",
            args.provider,
            connection,
            notice_text(&v["provider_notified"])
        ));
    }
    Ok(ExitStatus::Success)
}

/// How `provider_notified` reads in a sentence.
pub fn notice_text(v: &serde_json::Value) -> &'static str {
    match v.as_str() {
        Some("revoked") => " (revoked at the provider)",
        Some("failed") => " (the provider could not be told; revoke it there if needed)",
        _ => " (the provider was not contacted: it has no revocation endpoint)",
    }
}
