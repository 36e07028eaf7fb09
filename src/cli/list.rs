//! `authsome list`: stored connections, never their secrets.

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::{format_time, table};
use super::wire_name;
use crate::api::ConnectionList;

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let v: ConnectionList = ctx.client()?.get("/api/connections")?;
    let conns = v.connections;
    if ctx.printer.json {
        ctx.printer.json(&conns);
        return Ok(ExitStatus::Success);
    }
    if conns.is_empty() {
        ctx.printer.status("No connections yet.");
        ctx.printer.status(
            "hint: run `authsome login PROVIDER`; `authsome provider list` shows the providers",
        );
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = conns
        .iter()
        .map(|c| {
            let c = &c.record;
            vec![
                c.provider.clone(),
                c.name.clone(),
                c.auth_type.clone(),
                wire_name(&c.status),
                if c.is_default {
                    "*".into()
                } else {
                    String::new()
                },
                c.expires_at.map(format_time).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    for line in table(
        &[
            "PROVIDER",
            "CONNECTION",
            "TYPE",
            "STATUS",
            "DEFAULT",
            "EXPIRES",
        ],
        &rows,
    ) {
        ctx.printer.data(&line);
    }
    Ok(ExitStatus::Success)
}
