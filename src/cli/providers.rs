//! `authsome provider list|show|register|remove`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::table;
use crate::credentials::{ProviderSummary, RegisterOutcome, RemoveOutcome};
use crate::providers::{self, Registry};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List every known provider.
    List,
    /// Show one provider's definition.
    Show {
        /// Provider name.
        name: String,
    },
    /// Add a provider from a definition file (JSON, comments allowed).
    Register {
        /// The definition file.
        file: PathBuf,
        /// Replace a custom provider of the same name, or override a bundled one.
        #[arg(long)]
        force: bool,
    },
    /// Remove a custom provider (a bundled one of the same name comes back).
    Remove {
        /// Provider name.
        name: String,
    },
}

pub fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitStatus> {
    match cmd {
        Command::List => list(ctx),
        Command::Show { name } => show(ctx, &name),
        Command::Register { file, force } => register(ctx, file, force),
        Command::Remove { name } => remove(ctx, &name),
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let summaries: Vec<ProviderSummary> = match ctx.existing_service()? {
        Some(svc) => svc.list_providers()?,
        None => Registry::bundled()?
            .iter()
            .map(|e| ProviderSummary {
                name: e.def.name.clone(),
                display_name: e.def.display_name.clone(),
                kind: e.def.kind,
                auth_type: e.def.auth_type,
                flow: e.def.flow,
                source: e.source,
                api_url: e.def.api_url.clone(),
                connections: 0,
            })
            .collect(),
    };
    if ctx.printer.json {
        ctx.printer.json(&summaries);
        return Ok(ExitStatus::Success);
    }
    let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            let hosts = match s.api_url.len() {
                0 => String::new(),
                1 => s.api_url[0].clone(),
                n => format!("{} (+{})", s.api_url[0], n - 1),
            };
            vec![
                s.name.clone(),
                name(json!(s.auth_type)),
                name(json!(s.flow)),
                name(json!(s.source)),
                if s.connections > 0 {
                    s.connections.to_string()
                } else {
                    String::new()
                },
                hosts,
            ]
        })
        .collect();
    for line in table(&["NAME", "AUTH", "FLOW", "SOURCE", "CONN", "HOSTS"], &rows) {
        ctx.printer.data(&line);
    }
    Ok(ExitStatus::Success)
}

fn show(ctx: &Ctx, name: &str) -> anyhow::Result<ExitStatus> {
    let (def, source) = match ctx.existing_service()? {
        Some(svc) => svc.get_provider(name)?,
        None => {
            let reg = Registry::bundled()?;
            let e = reg.require(name)?;
            (e.def.clone(), e.source)
        }
    };
    if ctx.printer.json {
        let mut v = serde_json::to_value(def.as_ref())?;
        if let Some(o) = v.as_object_mut() {
            o.insert("source".into(), json!(source));
        }
        ctx.printer.json(&v);
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    let s = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    p.data(&format!("{} ({})", def.display_name, def.name));
    p.data(&format!(
        "  auth:      {} / {}",
        s(json!(def.auth_type)),
        s(json!(def.flow))
    ));
    p.data(&format!("  source:    {}", s(json!(source))));
    p.data(&format!("  hosts:     {}", def.api_url.join(", ")));
    if let Some(inj) = def.injection() {
        p.data(&format!(
            "  injects:   {}: {}<{}>",
            inj.name,
            inj.prefix,
            inj.source.as_string()
        ));
    }
    if !def.export.is_empty() {
        let vars: Vec<String> = def
            .export
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_string()))
            .collect();
        p.data(&format!("  exports:   {}", vars.join(", ")));
    }
    if let Some(o) = &def.oauth {
        p.data(&format!(
            "  token url: {}",
            def.endpoint(&o.token_url, None)
        ));
        if !o.scopes.is_empty() {
            p.data(&format!("  scopes:    {}", o.scopes.join(" ")));
        }
    }
    if let Some(d) = &def.docs_url {
        p.data(&format!("  docs:      {d}"));
    }
    Ok(ExitStatus::Success)
}

fn register(ctx: &Ctx, file: PathBuf, force: bool) -> anyhow::Result<ExitStatus> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let def = providers::parse_file(&file.display().to_string(), &text)?;
    let svc = ctx.service()?;
    let name = def.name.clone();
    let hosts = def.api_url.join(", ");
    let outcome = svc.register_provider(def, force)?;
    if outcome == RegisterOutcome::OverrodeBundled {
        ctx.printer.warn(&format!(
            "`{name}` now overrides the bundled definition; `authsome provider remove {name}` restores it"
        ));
    }
    if ctx.printer.json {
        ctx.printer
            .json(&json!({"status": "registered", "provider": name, "outcome": outcome}));
    } else {
        ctx.printer
            .success(&format!("Registered provider `{name}` for {hosts}"));
    }
    Ok(ExitStatus::Success)
}

fn remove(ctx: &Ctx, name: &str) -> anyhow::Result<ExitStatus> {
    let svc = match ctx.existing_service()? {
        Some(s) => s,
        None => ctx.service()?,
    };
    let outcome = svc.remove_provider(name)?;
    if ctx.printer.json {
        ctx.printer
            .json(&json!({"status": "removed", "provider": name, "outcome": outcome}));
    } else if outcome == RemoveOutcome::RestoredBundled {
        ctx.printer.success(&format!(
            "Removed the custom `{name}`; the bundled definition is back"
        ));
    } else {
        ctx.printer.success(&format!("Removed provider `{name}`"));
    }
    Ok(ExitStatus::Success)
}
