//! `authsome export PROVIDER`: print a connection's secrets as environment
//! variables. The one explicit way a secret leaves authsome; everything else
//! shows redacted metadata.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use super::Ctx;
use super::exit::ExitStatus;
use crate::error::Error;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// NAME=value lines (for `.env` files and `env -S`).
    Env,
    /// `export NAME='value'` lines, for `eval "$(authsome export …)"`.
    Shell,
    /// One JSON object.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name.
    provider: String,
    /// Connection to export (default: the provider's default connection).
    #[arg(long, short = 'c')]
    connection: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "env")]
    format: Format,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let Some(svc) = ctx.existing_service()? else {
        return Err(Error::ConnectionNotFound {
            provider: args.provider,
            connection: args.connection.unwrap_or_else(|| "default".into()),
        }
        .into());
    };
    let (rec, vars) = svc.export(&args.provider, args.connection.as_deref())?;
    let format = if ctx.printer.json {
        Format::Json
    } else {
        args.format
    };
    if std::io::stdout().is_terminal() {
        ctx.printer.warn("printing secrets to the terminal; pipe or redirect the output to keep them off the screen");
    }
    match format {
        Format::Json => {
            let map: BTreeMap<&str, &str> = vars
                .iter()
                .map(|v| (v.name.as_str(), v.value.expose().as_str()))
                .collect();
            ctx.printer.json(&map);
        }
        Format::Env => {
            for v in &vars {
                ctx.printer
                    .data(&format!("{}={}", v.name, v.value.expose()));
            }
        }
        Format::Shell => {
            for v in &vars {
                ctx.printer.data(&format!(
                    "export {}='{}'",
                    v.name,
                    v.value.expose().replace('\'', r"'\''")
                ));
            }
        }
    }
    ctx.printer.status(&format!(
        "Exported {} variable(s) for {}/{}",
        vars.len(),
        rec.provider,
        rec.name
    ));
    Ok(ExitStatus::Success)
}
