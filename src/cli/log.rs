//! `authsome log`: the daemon's audit log (names, hosts and outcomes; never secrets).

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::{format_time, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many records, newest first (1-500).
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let v = ctx
        .client()?
        .get(&format!("/api/audit?limit={}", args.lines.clamp(1, 500)))?;
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    if ctx.printer.json {
        ctx.printer.json(&entries);
        return Ok(ExitStatus::Success);
    }
    if entries.is_empty() {
        ctx.printer.status("The audit log is empty.");
        return Ok(ExitStatus::Success);
    }
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let target = match (e["provider"].as_str(), e["connection"].as_str()) {
                (Some(p), Some(c)) => format!("{p}/{c}"),
                (Some(p), None) => p.to_string(),
                _ => "-".into(),
            };
            let actor = s(&e["actor"]);
            let actor = if actor.len() > 20 {
                format!("{}…", &actor[..20])
            } else {
                actor
            };
            let detail = match e["detail"].as_object() {
                Some(d) if !d.is_empty() => serde_json::Value::Object(d.clone()).to_string(),
                _ => String::new(),
            };
            vec![
                format_time(e["ts"].as_i64().unwrap_or(0)),
                s(&e["event"]),
                target,
                s(&e["outcome"]),
                actor,
                detail,
            ]
        })
        .collect();
    for line in table(
        &["TIME", "EVENT", "TARGET", "OUTCOME", "BY", "DETAIL"],
        &rows,
    ) {
        ctx.printer.data(&line);
    }
    Ok(ExitStatus::Success)
}
