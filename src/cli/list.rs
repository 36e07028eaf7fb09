//! `authsome list`: stored connections, never their secrets.

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::{format_time, table};

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let v = ctx.client()?.get("/api/connections")?;
    let conns = v["connections"].as_array().cloned().unwrap_or_default();
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
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = conns
        .iter()
        .map(|c| {
            vec![
                s(&c["provider"]),
                s(&c["name"]),
                s(&c["auth_type"]),
                s(&c["status"]),
                if c["is_default"] == true {
                    "*".into()
                } else {
                    String::new()
                },
                c["expires_at"]
                    .as_i64()
                    .map(format_time)
                    .unwrap_or_else(|| "-".into()),
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
