//! `authsome list`: stored connections, never their secrets.

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::{format_time, table};

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let conns = match ctx.existing_service()? {
        Some(svc) => svc.list_connections()?,
        None => Vec::new(),
    };
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
            let r = &c.record;
            vec![
                r.provider.clone(),
                r.name.clone(),
                r.auth_type.clone(),
                format!("{:?}", r.status).to_lowercase(),
                if r.is_default {
                    "*".into()
                } else {
                    String::new()
                },
                r.expires_at.map(format_time).unwrap_or_else(|| "-".into()),
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
