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
use crate::credentials::ProviderSummary;
use crate::providers::schema::ProviderKind;
use crate::providers::{Flow, ProviderDef, ProviderSource};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the known providers (238 bundled plus your own).
    #[command(after_help = "Examples:
  authsome provider list --type mcp
  authsome provider list --search stripe      # name, display name or host")]
    List {
        /// Only providers of this type.
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        kind: Option<KindArg>,
        /// Only providers whose name, display name or a host contains TEXT (any case).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
    },
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

/// The provider types `--type` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    App,
    Llm,
    Mcp,
    Browser,
}

impl KindArg {
    fn kind(self) -> ProviderKind {
        match self {
            KindArg::App => ProviderKind::App,
            KindArg::Llm => ProviderKind::Llm,
            KindArg::Mcp => ProviderKind::Mcp,
            KindArg::Browser => ProviderKind::Browser,
        }
    }
}

pub fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitStatus> {
    match cmd {
        Command::List { kind, search } => list(ctx, kind, search.as_deref()),
        Command::Show { name } => show(ctx, &name),
        Command::Register { file, force } => register(ctx, file, force),
        Command::Remove { name } => remove(ctx, &name),
    }
}

/// Width the table is fitted to: `COLUMNS` when set, else 80.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(80)
}

/// `s` cut to `max` characters, the last one an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn matches(p: &ProviderSummary, kind: Option<KindArg>, search: Option<&str>) -> bool {
    if kind.is_some_and(|k| k.kind() != p.kind) {
        return false;
    }
    let Some(needle) = search.map(str::to_lowercase) else {
        return true;
    };
    p.name.to_lowercase().contains(&needle)
        || p.display_name.to_lowercase().contains(&needle)
        || p.api_url.iter().any(|h| h.to_lowercase().contains(&needle))
}

fn list(ctx: &Ctx, kind: Option<KindArg>, search: Option<&str>) -> anyhow::Result<ExitStatus> {
    let v: ProviderList = ctx.client()?.get("/api/providers")?;
    let total = v.providers.len();
    let list: Vec<ProviderSummary> = v
        .providers
        .into_iter()
        .filter(|p| matches(p, kind, search))
        .collect();
    if ctx.printer.json {
        ctx.printer.json(&list);
        return Ok(ExitStatus::Success);
    }
    if list.is_empty() {
        ctx.printer.status(&format!(
            "No provider matches (of {total}); `authsome provider list` shows them all"
        ));
        return Ok(ExitStatus::Success);
    }
    // SOURCE only when some listed provider is not bundled.
    let with_source = list.iter().any(|p| p.source != ProviderSource::Bundled);
    let mut rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let mut row = vec![
                truncate(&p.name, 28),
                wire_name(&p.kind),
                wire_name(&p.flow),
            ];
            if with_source {
                row.push(wire_name(&p.source));
            }
            row.push(if p.connections > 0 {
                p.connections.to_string()
            } else {
                String::new()
            });
            row.push(match p.api_url.len() {
                0 => String::new(),
                1 => p.api_url[0].clone(),
                n => format!("{} (+{})", p.api_url[0], n - 1),
            });
            row
        })
        .collect();
    let mut header = vec!["NAME", "TYPE", "LOGIN"];
    if with_source {
        header.push("SOURCE");
    }
    header.extend(["CONN", "HOSTS"]);
    // Fit the last column (hosts) into what the others leave of the width.
    let last = header.len() - 1;
    let used: usize = (0..last)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .sum();
    let room = terminal_width().saturating_sub(used).max(12);
    for r in &mut rows {
        r[last] = truncate(&r[last], room);
    }
    for line in table(&header, &rows) {
        ctx.printer.data(&line);
    }
    if list.len() < total {
        ctx.printer
            .status(&format!("{} of {total} providers", list.len()));
    }
    Ok(ExitStatus::Success)
}

/// How to log in to `def`: the lines of `provider show`.
fn login_help(def: &ProviderDef) -> Vec<String> {
    let name = &def.name;
    let mut out = Vec::new();
    let docs = def.docs_url.as_deref();
    match def.flow {
        Flow::ApiKey => {
            out.push("API key, stored encrypted and sent by the proxy".to_string());
            out.push(format!(
                "run `authsome login {name}` (a form opens), or `printf %s \"$KEY\" | authsome login {name} --with-api-key`"
            ));
            if let Some(hint) = def
                .api_key
                .as_ref()
                .and_then(|k| k.key_pattern_hint.as_deref())
            {
                out.push(hint.to_string());
            }
            if let Some(d) = docs {
                out.push(format!("where to get a key: {d}"));
            }
        }
        Flow::DcrPkce => {
            out.push(
                "OAuth in the browser; authsome registers its own client (dynamic client registration), so no client id is needed".to_string(),
            );
            out.push(format!("run `authsome login {name}`"));
        }
        Flow::Pkce | Flow::DeviceCode | Flow::ClientCredentials => {
            out.push(
                match def.flow {
                    Flow::Pkce => "OAuth in the browser (authorization code + PKCE)",
                    Flow::DeviceCode => {
                        "OAuth with a device code (enter a code on the provider's page)"
                    }
                    _ => "OAuth client credentials (no browser)",
                }
                .to_string(),
            );
            let bundled_client = def.oauth.as_ref().and_then(|o| o.client_id.as_deref());
            match (bundled_client, def.flow) {
                (Some(_), Flow::ClientCredentials) | (None, _) => {
                    out.push(format!(
                        "needs the client id (and secret, if it has one) of an OAuth app you register with {}{}",
                        def.display_name,
                        if def.flow == Flow::ClientCredentials {
                            String::new()
                        } else {
                            ", with the redirect URI http://127.0.0.1:7998/auth/callback/oauth (the daemon's address)".to_string()
                        }
                    ));
                    if let Some(d) = docs {
                        out.push(format!("where to register the app: {d}"));
                    }
                    out.push(format!(
                        "run `authsome login {name} --client-id ID --client-secret-stdin < secret.txt` (or just `authsome login {name}`: the form asks for them, and a client is remembered)"
                    ));
                }
                (Some(_), _) => {
                    out.push(
                        "a public client id ships with the definition; no app to register"
                            .to_string(),
                    );
                    out.push(format!("run `authsome login {name}`"));
                }
            }
            if def.oauth.as_ref().is_some_and(|o| o.base_url.is_some()) {
                out.push("another instance (self-hosted): add `--base-url URL`".to_string());
            }
        }
        Flow::Browser => {
            let cookies = def
                .browser
                .as_ref()
                .map(|b| b.cookies.join(", "))
                .unwrap_or_default();
            out.push(format!(
                "browser session: the proxy sends the session cookies ({cookies})"
            ));
            out.push(format!("run `authsome login {name}`"));
        }
    }
    out
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
    if let Some(d) = &def.description {
        p.data(&format!("  {d}"));
    }
    p.data(&format!("  type:      {}", wire_name(&def.kind)));
    p.data(&format!(
        "  auth:      {} / {}",
        wire_name(&def.auth_type),
        wire_name(&def.flow)
    ));
    p.data(&format!("  source:    {}", wire_name(&d.source)));
    p.data(&format!("  hosts:     {}", def.api_url.join(", ")));
    if let Some(m) = &def.mcp {
        p.data(&format!(
            "  mcp:       {}{}",
            m.url,
            m.transport
                .map(|t| format!(" ({})", t.description()))
                .unwrap_or_default()
        ));
    }
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
    p.data("  login:");
    for line in login_help(def) {
        p.data(&format!("    {line}"));
    }
    if let Some(m) = &def.mcp {
        p.data("  use:");
        p.data(&format!(
            "    add the server to your MCP client without a token, e.g. `claude mcp add --transport {} {} '{}'`,",
            m.transport.map_or("http", |t| t.flag()),
            def.name,
            m.url
        ));
        p.data("    then start the client with `authsome run -- claude`: the proxy sends the credential");
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
