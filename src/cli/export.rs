//! `authsome export PROVIDER`: print a connection's secrets as environment
//! variables. The one explicit way a secret leaves authsome; everything else
//! shows redacted metadata.

use std::io::IsTerminal;

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;

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
    let v = ctx.client()?.post(
        "/api/credentials/export",
        &json!({"provider": args.provider, "connection": args.connection}),
    )?;
    let vars = v["variables"].as_object().cloned().unwrap_or_default();
    let format = if ctx.printer.json {
        Format::Json
    } else {
        args.format
    };
    if std::io::stdout().is_terminal() {
        ctx.printer.warn("printing secrets to the terminal; pipe or redirect the output to keep them off the screen");
    }
    match format {
        Format::Json => ctx.printer.json(&vars),
        Format::Env => {
            for (k, val) in &vars {
                ctx.printer
                    .data(&format!("{k}={}", val.as_str().unwrap_or_default()));
            }
        }
        Format::Shell => {
            for (k, val) in &vars {
                ctx.printer.data(&format!(
                    "export {k}='{}'",
                    val.as_str().unwrap_or_default().replace('\'', r"'\''")
                ));
            }
        }
    }
    ctx.printer.status(&format!(
        "Exported {} variable{} for {}/{}",
        vars.len(),
        if vars.len() == 1 { "" } else { "s" },
        v["provider"].as_str().unwrap_or(""),
        v["connection"].as_str().unwrap_or("")
    ));
    Ok(ExitStatus::Success)
}
