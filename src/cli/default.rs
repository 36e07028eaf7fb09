//! `authsome set-default PROVIDER CONNECTION`.

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::{DefaultSet, Empty};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Provider name.
    provider: String,
    /// The connection that should serve this provider's requests.
    connection: String,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let v: DefaultSet = client.post(
        &format!(
            "/api/connections/{}/{}/default",
            super::seg(&args.provider),
            super::seg(&args.connection)
        ),
        &Empty {},
    )?;
    if ctx.printer.json {
        ctx.printer.json(&v);
    } else {
        ctx.printer.success(&format!(
            "{}/{} is now the default",
            args.provider, args.connection
        ));
        for rule in &v.chosen_on {
            ctx.printer.success(&format!(
                "{} is now the chosen provider on {rule}, which other connected providers also claim (a run's `--connection` still overrides it)",
                args.provider
            ));
        }
    }
    Ok(ExitStatus::Success)
}
