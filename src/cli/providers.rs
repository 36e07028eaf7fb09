//! `authsome provider list|show|register|remove`.

use std::path::PathBuf;

use anyhow::Context;

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::table;
use super::wire_name;
use crate::api::{
    ProviderDetail, ProviderList, ProviderRegistered, ProviderRemoved, RegisterOutcome,
    RegisterProvider, RemoveOutcome,
};

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
    let v: ProviderList = ctx.client()?.get("/api/providers")?;
    let list = v.providers;
    if ctx.printer.json {
        ctx.printer.json(&list);
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let hosts = &p.api_url;
            let hosts = match hosts.len() {
                0 => String::new(),
                1 => hosts[0].clone(),
                n => format!("{} (+{})", hosts[0], n - 1),
            };
            let conns = p.connections;
            vec![
                p.name.clone(),
                wire_name(&p.auth_type),
                wire_name(&p.flow),
                wire_name(&p.source),
                if conns > 0 {
                    conns.to_string()
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
    let d: ProviderDetail = ctx
        .client()?
        .get(&format!("/api/providers/{}", super::seg(name)))?;
    if ctx.printer.json {
        ctx.printer.json(&d);
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    let def = &d.def;
    p.data(&format!("{} ({})", def.display_name, def.name));
    p.data(&format!(
        "  auth:      {} / {}",
        wire_name(&def.auth_type),
        wire_name(&def.flow)
    ));
    p.data(&format!("  source:    {}", wire_name(&d.source)));
    p.data(&format!("  hosts:     {}", def.api_url.join(", ")));
    if let Some(inj) = def.injection() {
        p.data(&format!(
            "  injects:   {}: {}<{}>",
            inj.name,
            inj.prefix,
            inj.source.as_string()
        ));
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
    if !def.export.is_empty() {
        let vars: Vec<String> = def
            .export
            .iter()
            .map(|(k, v)| format!("{k}={}", wire_name(v)))
            .collect();
        p.data(&format!("  exports:   {}", vars.join(", ")));
    }
    if let Some(docs) = &def.docs_url {
        p.data(&format!("  docs:      {docs}"));
    }
    Ok(ExitStatus::Success)
}

fn register(ctx: &Ctx, file: PathBuf, force: bool) -> anyhow::Result<ExitStatus> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    // Check locally first: the error names the file and fails fast without a daemon round trip.
    let def = crate::providers::parse_file(&file.display().to_string(), &text)?;
    let v: ProviderRegistered = ctx.client()?.post(
        "/api/providers",
        &RegisterProvider {
            definition: serde_json::Value::String(text),
            force,
            origin: Some(file.display().to_string()),
        },
    )?;
    let name = def.name;
    if v.outcome == RegisterOutcome::OverrodeBundled {
        ctx.printer.warn(&format!(
            "`{name}` now overrides the bundled definition; `authsome provider remove {name}` restores it"
        ));
    }
    if ctx.printer.json {
        ctx.printer.json(&v);
    } else {
        ctx.printer.success(&format!(
            "Registered provider `{name}` for {}",
            def.api_url.join(", ")
        ));
    }
    let suspended = &v.suspended;
    if !suspended.is_empty() {
        // The stored credentials were given for the old hosts/header: they are
        // not sent anywhere until the user confirms by logging in again.
        ctx.printer.warn(&format!(
            "the new definition changes where or how `{name}` credentials are sent: suspended {} ({}); confirm with `authsome login {name} --force`{}",
            if suspended.len() == 1 { "its connection" } else { "its connections" },
            suspended.join(", "),
            if suspended.iter().any(|c| *c != "default") {
                " (add `--connection NAME` for the others)"
            } else {
                ""
            }
        ));
    }
    Ok(ExitStatus::Success)
}

fn remove(ctx: &Ctx, name: &str) -> anyhow::Result<ExitStatus> {
    let v: ProviderRemoved = ctx
        .client()?
        .delete(&format!("/api/providers/{}", super::seg(name)))?;
    if ctx.printer.json {
        ctx.printer.json(&v);
    } else if v.outcome == RemoveOutcome::RestoredBundled {
        ctx.printer.success(&format!(
            "Removed the custom `{name}`; the bundled definition is back"
        ));
    } else {
        ctx.printer.success(&format!("Removed provider `{name}`"));
    }
    Ok(ExitStatus::Success)
}
