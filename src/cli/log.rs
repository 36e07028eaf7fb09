//! `authsome log`: the daemon's audit log (names, hosts and outcomes; never secrets).

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::{format_time, table};
use crate::api::AuditList;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many records, newest first (1-500).
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let v: AuditList = ctx
        .client()?
        .get(&format!("/api/audit?limit={}", args.lines.clamp(1, 500)))?;
    let entries = v.entries;
    if ctx.printer.json {
        ctx.printer.json(&entries);
        return Ok(ExitStatus::Success);
    }
    if entries.is_empty() {
        ctx.printer.status("The audit log is empty.");
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let target = match (&e.provider, &e.connection) {
                (Some(p), Some(c)) => format!("{p}/{c}"),
                (Some(p), None) => p.clone(),
                _ => "-".into(),
            };
            let actor = e.actor.clone().unwrap_or_default();
            let actor = if actor.len() > 20 {
                format!("{}…", &actor[..20])
            } else {
                actor
            };
            let detail = match e.detail.as_object() {
                Some(d) if !d.is_empty() => e.detail.to_string(),
                _ => String::new(),
            };
            vec![
                format_time(e.ts),
                e.event.clone(),
                target,
                e.outcome.clone(),
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
