//! `authsome logout PROVIDER`: remove one stored connection.

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::{Empty, LoggedOut, ProviderDetail, ProviderNotice};
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
                client.get::<ProviderDetail>(&format!(
                    "/api/providers/{}",
                    super::seg(&args.provider)
                ))?;
                return Err(Error::ConnectionNotFound {
                    provider: args.provider.clone(),
                    connection: "default".into(),
                }
                .into());
            }
        },
    };
    let v: LoggedOut = client.post(
        &format!(
            "/api/connections/{}/{}/logout",
            super::seg(&args.provider),
            super::seg(&connection)
        ),
        &Empty {},
    )?;
    if ctx.printer.json {
        ctx.printer.json(&v);
    } else {
        ctx.printer.success(&format!(
            "Removed the credentials of {}/{}{}",
            args.provider,
            connection,
            notice_text(v.provider_notified)
        ));
    }
    Ok(ExitStatus::Success)
}

/// How `provider_notified` reads in a sentence.
pub fn notice_text(v: ProviderNotice) -> &'static str {
    match v {
        ProviderNotice::Revoked => " (revoked at the provider)",
        ProviderNotice::Failed => " (the provider could not be told; revoke it there if needed)",
        ProviderNotice::NotSupported => {
            " (the provider was not contacted: it has no revocation endpoint)"
        }
    }
}
