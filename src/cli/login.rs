//! `authsome login PROVIDER`: store a credential.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::credentials::DEFAULT_CONNECTION;
use crate::error::Error;
use crate::providers::AuthType;
use crate::secret::Secret;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name (see `authsome provider list`).
    provider: String,
    /// Name of this connection, for several accounts of one provider.
    #[arg(long, short = 'c', default_value = DEFAULT_CONNECTION)]
    connection: String,
    /// Read the API key from standard input instead of prompting.
    #[arg(long)]
    with_api_key: bool,
    /// Replace an existing connection of the same name.
    #[arg(long)]
    force: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let svc = ctx.service()?;
    let (def, _) = svc.get_provider(&args.provider)?;
    if def.auth_type == AuthType::ApiKey && !args.force {
        // Refuse before asking for the key, not after.
        if svc
            .vault()
            .find_connection(&args.provider, &args.connection)?
            .is_some()
        {
            return Err(Error::ConnectionExists {
                provider: args.provider,
                connection: args.connection,
            }
            .into());
        }
    }
    let key = if def.auth_type != AuthType::ApiKey {
        // login_api_key explains which flow this provider needs.
        Secret::new(String::new())
    } else if args.with_api_key {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("cannot read the API key from standard input")?;
        Secret::new(buf)
    } else if std::io::stdin().is_terminal() {
        let prompt = format!(
            "Paste your {} API key (input is hidden): ",
            def.display_name
        );
        Secret::new(
            rpassword::prompt_password(prompt)
                .context("cannot read the API key from the terminal")?,
        )
    } else {
        return Err(Error::invalid(
            "standard input is not a terminal, so there is nowhere to prompt for the key",
            Some(format!(
                "pipe the key in: `printf %s \"$KEY\" | authsome login {} --with-api-key`",
                args.provider
            )),
        )
        .into());
    };
    let rec = svc.login_api_key(&args.provider, &args.connection, key, args.force)?;
    if ctx.printer.json {
        ctx.printer.json(&json!({
            "status": "connected",
            "provider": rec.provider,
            "connection": rec.name,
            "auth_type": rec.auth_type,
            "is_default": rec.is_default,
        }));
    } else {
        ctx.printer.success(&format!(
            "Stored the {} API key as {}/{}{}",
            def.display_name,
            rec.provider,
            rec.name,
            if rec.is_default { " (default)" } else { "" }
        ));
    }
    Ok(ExitStatus::Success)
}
