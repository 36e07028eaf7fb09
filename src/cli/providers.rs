//! `authsome provider list|show|register|remove`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::table;

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

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let v = ctx.client()?.get("/api/providers")?;
    let list = v["providers"].as_array().cloned().unwrap_or_default();
    if ctx.printer.json {
        ctx.printer.json(&list);
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let hosts: Vec<String> = p["api_url"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            let hosts = match hosts.len() {
                0 => String::new(),
                1 => hosts[0].clone(),
                n => format!("{} (+{})", hosts[0], n - 1),
            };
            let conns = p["connections"].as_u64().unwrap_or(0);
            vec![
                s(&p["name"]),
                s(&p["auth_type"]),
                s(&p["flow"]),
                s(&p["source"]),
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
    let d = ctx
        .client()?
        .get(&format!("/api/providers/{}", super::seg(name)))?;
    if ctx.printer.json {
        ctx.printer.json(&d);
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    let join = |v: &Value, sep: &str| {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(sep))
            .unwrap_or_default()
    };
    p.data(&format!("{} ({})", s(&d["display_name"]), s(&d["name"])));
    p.data(&format!(
        "  auth:      {} / {}",
        s(&d["auth_type"]),
        s(&d["flow"])
    ));
    p.data(&format!("  source:    {}", s(&d["source"])));
    p.data(&format!("  hosts:     {}", join(&d["api_url"], ", ")));
    if let Ok(def) = serde_json::from_value::<crate::providers::ProviderDef>(strip_source(&d)) {
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
    }
    if let Some(e) = d["export"].as_object().filter(|e| !e.is_empty()) {
        let vars: Vec<String> = e.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
        p.data(&format!("  exports:   {}", vars.join(", ")));
    }
    if let Some(docs) = d["docs_url"].as_str() {
        p.data(&format!("  docs:      {docs}"));
    }
    Ok(ExitStatus::Success)
}

fn strip_source(d: &Value) -> Value {
    let mut d = d.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("source");
    }
    d
}

fn register(ctx: &Ctx, file: PathBuf, force: bool) -> anyhow::Result<ExitStatus> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    // Check locally first: the error names the file and fails fast without a daemon round trip.
    let def = crate::providers::parse_file(&file.display().to_string(), &text)?;
    let v = ctx.client()?.post(
        "/api/providers",
        &json!({"definition": text, "force": force, "origin": file.display().to_string()}),
    )?;
    let name = def.name;
    if v["outcome"] == "overrode_bundled" {
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
    let suspended: Vec<&str> = v["suspended"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
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
    let v = ctx
        .client()?
        .delete(&format!("/api/providers/{}", super::seg(name)))?;
    if ctx.printer.json {
        ctx.printer.json(&v);
    } else if v["outcome"] == "restored_bundled" {
        ctx.printer.success(&format!(
            "Removed the custom `{name}`; the bundled definition is back"
        ));
    } else {
        ctx.printer.success(&format!("Removed provider `{name}`"));
    }
    Ok(ExitStatus::Success)
}
