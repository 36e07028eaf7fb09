//! `authsome doctor`: run the diagnostics and show each as ✓ / ! / ✗ with a hint.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::diagnostics::{self, Status};

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let checks = diagnostics::run(&ctx.config);
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if ctx.printer.json {
        ctx.printer.json(&json!({"ok": ok, "checks": checks}));
    } else {
        let p = &ctx.printer;
        for c in &checks {
            let mark = match c.status {
                Status::Pass => p.paint("32", "✓"),
                Status::Warn => p.paint("33", "!"),
                Status::Fail => p.paint("31", "✗"),
            };
            p.data(&format!(
                "{mark} {:<11} {}",
                c.name,
                super::printer::sanitize(&c.detail)
            ));
            if let Some(h) = &c.hint {
                p.data(&format!(
                    "  {} {}",
                    p.paint("36", "hint:"),
                    super::printer::sanitize(h)
                ));
            }
        }
    }
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
