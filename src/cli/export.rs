//! `authsome export PROVIDER`: print a connection's secrets as environment
//! variables. The one explicit way a secret leaves authsome; everything else
//! shows redacted metadata.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::{ExportRequest, Exported};

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
#[command(after_help = "Examples:
  eval \"$(authsome export openai --format shell)\"   # the key in this shell (audited)
  authsome export github --format json")]
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
    let v: Exported = ctx.client()?.post(
        "/api/credentials/export",
        &ExportRequest {
            provider: args.provider,
            connection: args.connection,
        },
    )?;
    let vars = &v.variables;
    let format = if ctx.printer.json {
        Format::Json
    } else {
        args.format
    };
    if std::io::stdout().is_terminal() {
        ctx.printer.warn("printing secrets to the terminal; pipe or redirect the output to keep them off the screen");
    }
    match format {
        // Here the secrets leave, on purpose.
        Format::Json => ctx.printer.json(
            &vars
                .iter()
                .map(|(k, val)| (k, val.expose()))
                .collect::<BTreeMap<_, _>>(),
        ),
        Format::Env => {
            for (k, val) in vars {
                ctx.printer.data(&format!("{k}={}", val.expose()));
            }
        }
        Format::Shell => {
            for (k, val) in vars {
                ctx.printer.data(&format!(
                    "export {k}='{}'",
                    val.expose().replace('\'', r"'\''")
                ));
            }
        }
    }
    ctx.printer.status(&format!(
        "Exported {} variable{} for {}/{}",
        vars.len(),
        if vars.len() == 1 { "" } else { "s" },
        v.provider,
        v.connection
    ));
    Ok(ExitStatus::Success)
}
