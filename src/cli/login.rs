//! `authsome login PROVIDER`: start a login session on the daemon and see it through.
//!
//! API-key providers: with `--with-api-key` the key is read from stdin and
//! sent to the session; otherwise the browser opens the daemon's form (or,
//! with `--no-browser`, its URL is printed) and the CLI waits until the
//! session completes, fails or expires. With `--json`, each step is one JSON
//! line on stdout (`{"action":"open_url","url":…}`, then the result).
//!
//! Browser-session providers (`linkedin-browser`): the CLI runs Chromium
//! or Chrome itself at the provider's sign-in page (see [`super::browser`]),
//! waits until the session cookies exist, and hands them to the daemon's
//! session like `--with-api-key` hands a key.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::Ctx;
use super::client::{Client, DaemonError};
use super::exit::ExitStatus;
use crate::api::{
    NextAction, ProviderDef, ProviderDetail, ProviderList, SessionCreate, SessionResume,
    SessionStatus, SessionView,
};
use crate::credentials::DEFAULT_CONNECTION;
use crate::error::Error;
use crate::providers::AuthType;
use crate::secret::Secret;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  printf %s \"$OPENAI_API_KEY\" | authsome login openai --with-api-key
  authsome login github                             # OAuth in the browser (or a device code)
  authsome login openai --connection work --force   # a second account, replacing its key
  authsome login linkedin-browser                   # sign in in a browser authsome opens")]
pub struct Args {
    /// Provider name (see `authsome provider list`).
    provider: String,
    /// Name of this connection, for several accounts of one provider.
    #[arg(long, short = 'c', default_value = DEFAULT_CONNECTION)]
    connection: String,
    /// Read the API key from standard input instead of opening the browser.
    #[arg(long)]
    with_api_key: bool,
    /// Print the form's URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// Replace an existing connection of the same name.
    #[arg(long)]
    force: bool,
    /// OAuth flow: `pkce` (browser), `device` (a code to enter elsewhere) or `client-credentials`.
    #[arg(long, value_name = "FLOW")]
    flow: Option<String>,
    /// OAuth client id of an app you registered with the provider (stored for next time).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// Read the OAuth client secret from standard input (for the client id
    /// given with --client-id, else the one the provider file names).
    #[arg(long)]
    client_secret_stdin: bool,
    /// OAuth scopes, comma-separated (default: the provider's).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Instance URL of a self-hosted provider (GitLab, Jira…).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Browser-session providers: how long to wait for you to sign in (at most 1800).
    #[arg(long, value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=crate::auth_flow::BROWSER_LOGIN_MAX_WAIT as u64))]
    timeout: u64,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let ProviderDetail { def, .. } =
        client.get(&format!("/api/providers/{}", super::seg(&args.provider)))?;
    let display = def.display_name.clone();
    if def.auth_type == AuthType::Oauth2 {
        if args.with_api_key {
            return Err(Error::invalid(
                format!("{display} signs in with OAuth, not with an API key"),
                Some(format!(
                    "run `authsome login {}` (add `--flow device` on a machine without a browser)",
                    args.provider
                )),
            )
            .into());
        }
        return oauth(ctx, client, &args, &def, &display);
    }
    if def.auth_type == AuthType::Browser {
        return browser_session(ctx, client, &args, &def, &display);
    }
    let session = start_session(&client, &args)?;
    let id = session.id;
    let url = match session.next_action {
        NextAction::OpenUrl { url } => url,
        _ => String::new(),
    };

    let done = if args.with_api_key {
        let mut key = String::new();
        let read = std::io::stdin().read_to_string(&mut key);
        // The key is zeroized when the request body is dropped.
        let key = Secret::new(key);
        read.context("cannot read the API key from standard input")?;
        resume(&client, &id, key)?
    } else {
        if ctx.printer.json {
            ctx.printer
                .json_line(&json!({"action": "open_url", "url": url, "session_id": id}));
        }
        let opened = !args.no_browser && open_browser(&url);
        if !opened && std::io::stdin().is_terminal() && !ctx.printer.json {
            // No browser here (an SSH session, a container): ask in the terminal instead.
            ctx.printer
                .status(&format!("Open {url} in a browser, or paste the key here."));
            let prompt = format!("{} (input is hidden): ", api_key_noun(&display));
            let key = rpassword::prompt_password(prompt)
                .context("cannot read the API key from the terminal")?;
            resume(&client, &id, Secret::new(key))?
        } else {
            if !ctx.printer.json {
                let verb = if opened { "Opened" } else { "Open" };
                ctx.printer.status(&format!(
                    "{verb} this page to paste your {}:\n  {url}",
                    api_key_noun(&display)
                ));
            }
            wait(ctx, client, &id)?
        }
    };
    finish(ctx, &display, &done)
}

/// Sends the key of a waiting API-key session.
/// Starts a login session for `args`' provider and connection.
fn start_session(client: &Client, args: &Args) -> anyhow::Result<SessionView> {
    client.post(
        "/api/auth/sessions",
        &SessionCreate {
            provider: args.provider.clone(),
            connection: Some(args.connection.clone()),
            force: args.force,
            ..SessionCreate::default()
        },
    )
}

fn resume(client: &Client, id: &str, key: Secret<String>) -> anyhow::Result<SessionView> {
    client.post(
        &format!("/api/auth/sessions/{id}/resume"),
        &SessionResume {
            api_key: Some(key),
            ..SessionResume::default()
        },
    )
}

/// Polls the session until it is final, with a countdown on a terminal.
/// When the daemon goes away mid-wait (a restart), reconnects and asks again:
/// the new daemon then says the session is gone.
fn wait(ctx: &Ctx, client: Client, id: &str) -> anyhow::Result<SessionView> {
    let tty = std::io::stderr().is_terminal() && !ctx.printer.quiet && !ctx.printer.json;
    let start = Instant::now();
    let mut client = client;
    let mut reconnects = 0;
    loop {
        let s: SessionView = match client.get(&format!("/api/auth/sessions/{id}")) {
            Ok(s) => s,
            Err(e) if e.downcast_ref::<DaemonError>().is_none() && reconnects < 5 => {
                reconnects += 1;
                std::thread::sleep(Duration::from_millis(300));
                client = ctx.client()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if s.status.is_final() {
            if tty {
                eprint!("\r\x1b[2K");
            }
            return Ok(s);
        }
        if tty && start.elapsed() > Duration::from_millis(300) {
            let left = s.expires_at - crate::clock::now_unix();
            eprint!(
                "\r\x1b[2KWaiting for the browser… ({}:{:02} left, Ctrl-C to cancel)",
                left.max(0) / 60,
                left.max(0) % 60
            );
            let _ = std::io::stderr().flush();
        }
        std::thread::sleep(Duration::from_millis(400));
    }
}

fn finish(ctx: &Ctx, display: &str, s: &SessionView) -> anyhow::Result<ExitStatus> {
    match s.status {
        SessionStatus::Completed => {
            let rivals = rivals(ctx, &s.provider);
            if ctx.printer.json {
                ctx.printer.json_line(&json!({"status": "connected", "provider": s.provider, "connection": s.connection, "conflicts": conflicts_json(&rivals)}));
            } else {
                ctx.printer.success(&format!(
                    "Stored the {} as {}/{}",
                    api_key_noun(display),
                    s.provider,
                    s.connection
                ));
                warn_rivals(ctx, &s.provider, &rivals);
            }
            Ok(ExitStatus::Success)
        }
        SessionStatus::Expired => Err(Error::expired(
            "the login expired before it was completed",
            Some("run the command again and finish signing in before the countdown ends".into()),
        )
        .into()),
        _ => Err(match &s.error {
            Some(e) => DaemonError {
                status: 0,
                code: e.code.clone(),
                message: e.message.clone(),
                hint: e.hint.clone(),
            },
            None => DaemonError {
                status: 0,
                code: "login_failed".into(),
                message: "the login failed".into(),
                hint: None,
            },
        }
        .into()),
    }
}

/// An OAuth login: start the session, then open the browser (authorization
/// code), show the device code, or nothing (client credentials), and wait.
fn oauth(
    ctx: &Ctx,
    client: Client,
    args: &Args,
    def: &ProviderDef,
    display: &str,
) -> anyhow::Result<ExitStatus> {
    // A client secret belongs to a client id: the flag's, else the provider file's.
    let client_id = args.client_id.clone().or_else(|| {
        args.client_secret_stdin
            .then(|| def.oauth.as_ref().and_then(|o| o.client_id.clone()))
            .flatten()
    });
    if args.client_secret_stdin && client_id.is_none() {
        return Err(Error::invalid(
            format!(
                "--client-secret-stdin needs a client id, and the `{}` provider file names none",
                args.provider
            ),
            Some(format!(
                "add `--client-id ID` (the id of the app you registered with {display})"
            )),
        )
        .into());
    }
    let mut secret = String::new();
    if args.client_secret_stdin {
        std::io::stdin()
            .read_to_string(&mut secret)
            .context("cannot read the client secret from standard input")?;
        if secret.trim().is_empty() {
            return Err(Error::invalid(
                "the client secret is empty",
                Some(
                    "pipe it in: `printf %s \"$SECRET\" | authsome login … --client-secret-stdin`"
                        .into(),
                ),
            )
            .into());
        }
    }
    let body = SessionCreate {
        provider: args.provider.clone(),
        connection: Some(args.connection.clone()),
        force: args.force,
        flow: args.flow.as_ref().map(|f| f.replace('-', "_")),
        client_id,
        client_secret: args
            .client_secret_stdin
            .then(|| Secret::new(secret.trim().to_string())),
        scopes: args.scopes.clone(),
        base_url: args
            .base_url
            .as_ref()
            .map(|b| b.trim_end_matches('/').to_string()),
        // Without a client id, a browser login asks for one in the daemon's form.
        client_form: !args.no_browser,
    };
    let r = client.post("/api/auth/sessions", &body);
    zeroize::Zeroize::zeroize(&mut secret);
    drop(body);
    let session: SessionView = r?;
    let id = session.id.clone();
    match &session.next_action {
        NextAction::OpenUrl { url } => {
            if ctx.printer.json {
                ctx.printer
                    .json_line(&json!({"action": "open_url", "url": url, "session_id": id}));
            }
            let opened = !args.no_browser && open_browser(url);
            if !ctx.printer.json {
                let verb = if opened { "Opened" } else { "Open" };
                let what = if session.status == SessionStatus::WaitingForInput {
                    format!("enter the OAuth app you registered with {display}, then sign in")
                } else {
                    format!("sign in to {display}")
                };
                ctx.printer
                    .status(&format!("{verb} this page to {what}:\n  {url}"));
            }
        }
        NextAction::DeviceCode {
            user_code: code,
            verification_uri: uri,
            verification_uri_complete: complete,
        } => {
            if ctx.printer.json {
                ctx.printer.json_line(&json!({
                    "action": "device_code",
                    "user_code": code,
                    "verification_uri": uri,
                    "verification_uri_complete": complete,
                    "session_id": id,
                }));
            } else {
                ctx.printer.status(&format!(
                    "To sign in to {display}, open {} and enter the code:\n\n    {}\n",
                    super::printer::sanitize(uri),
                    super::printer::sanitize(code)
                ));
            }
            // Only an https:// page is opened (never file:, smb: or a custom scheme).
            if let Some(c) = complete
                && !args.no_browser
                && c.starts_with("https://")
            {
                open_browser(c);
            }
        }
        NextAction::None => {}
    }
    let done = if matches!(
        session.status,
        SessionStatus::Completed | SessionStatus::Failed
    ) {
        session
    } else {
        wait(ctx, client, &id)?
    };
    if done.status == SessionStatus::Completed {
        let already = done.message.as_deref() == Some("already connected");
        let rivals = rivals(ctx, &done.provider);
        if ctx.printer.json {
            ctx.printer.json_line(&json!({
                "status": if already { "already_connected" } else { "connected" },
                "provider": done.provider,
                "connection": done.connection,
                "conflicts": conflicts_json(&rivals),
            }));
        } else if already {
            ctx.printer.success(&format!(
                "Already connected to {display} as {}/{} (use --force to sign in again)",
                done.provider, done.connection
            ));
        } else {
            ctx.printer.success(&format!(
                "Connected to {display} as {}/{}",
                done.provider, done.connection
            ));
        }
        if !ctx.printer.json {
            warn_rivals(ctx, &done.provider, &rivals);
        }
        return Ok(ExitStatus::Success);
    }
    finish(ctx, display, &done)
}

/// A browser-session login: the browser runs here, the cookies go to the
/// daemon's session.
fn browser_session(
    ctx: &Ctx,
    client: Client,
    args: &Args,
    def: &ProviderDef,
    display: &str,
) -> anyhow::Result<ExitStatus> {
    let Some(spec) = def.browser.clone() else {
        return Err(
            Error::invalid(format!("`{}` has no browser block", args.provider), None).into(),
        );
    };
    let url = spec.entry_url.clone().unwrap_or_default();
    if args.with_api_key {
        return Err(Error::invalid(
            format!("{display} signs in with a browser session, not with an API key"),
            Some(format!(
                "run `authsome login {}`: it opens a browser where you sign in",
                args.provider
            )),
        )
        .into());
    }
    let needs_browser = |why: &str| Error::Unsupported {
        message: format!(
            "{display} signs in with a browser session, which needs a browser on this machine{why}: authsome starts it, you sign in, and it reads the session cookies from it"
        ),
        hint: Some(format!(
            "run `authsome login {}` on a desktop with Chromium or Chrome (or set AUTHSOME_BROWSER to one)",
            args.provider
        )),
    };
    if args.no_browser {
        let e = needs_browser("");
        if ctx.printer.json {
            ctx.printer.json_line(&json!({
                "action": "open_url",
                "url": url,
                "needs": "local_browser",
                "message": e.to_string(),
                "hint": e.hint(),
            }));
        } else {
            ctx.printer.status(&format!("{display} signs in at {url}"));
        }
        return Err(e.into());
    }
    let browser = super::browser::find()?;
    if !super::browser::has_display() {
        return Err(
            needs_browser(" with a display (DISPLAY or WAYLAND_DISPLAY is not set)").into(),
        );
    }
    let session = start_session(&client, args)?;
    if ctx.printer.json {
        ctx.printer
            .json_line(&json!({"action": "browser", "url": url, "session_id": session.id}));
    } else if super::browser::as_root() {
        ctx.printer.warn(
            "running as root: Chromium starts without its sandbox (--no-sandbox); sign in only to the page it opens",
        );
    }
    let tty = std::io::stderr().is_terminal() && !ctx.printer.quiet && !ctx.printer.json;
    if !ctx.printer.json {
        ctx.printer.status(&format!(
            "Opened {} at {url}: sign in to {display} there; authsome closes it when you are signed in.",
            browser.file_name().and_then(|n| n.to_str()).unwrap_or("the browser")
        ));
    }
    let timeout = Duration::from_secs(args.timeout);
    let captured = client.block_on(super::browser::capture(&browser, &spec, timeout, |left| {
        if tty {
            eprint!(
                "\r\x1b[2KWaiting for you to sign in… ({}:{:02} left, Ctrl-C to cancel)",
                left.as_secs() / 60,
                left.as_secs() % 60
            );
            let _ = std::io::stderr().flush();
        }
    }));
    if tty {
        eprint!("\r\x1b[2K");
    }
    let captured = match captured {
        Ok(c) => c,
        Err(super::browser::Ended::Interrupted) => {
            ctx.printer
                .warn("login cancelled; the browser was closed and its profile removed");
            return Ok(ExitStatus::Interrupted);
        }
        Err(super::browser::Ended::Failed(e)) => return Err(e.into()),
    };
    let done: SessionView = client.post(
        &format!("/api/auth/sessions/{}/resume", session.id),
        &SessionResume {
            cookies: Some(captured.cookies),
            cookie_expires: captured.expires,
            ..SessionResume::default()
        },
    )?;
    if done.status != SessionStatus::Completed {
        return finish(ctx, display, &done);
    }
    let rivals = rivals(ctx, &done.provider);
    let expires = client
        .get::<crate::api::ConnectionView>(&format!(
            "/api/connections/{}/{}",
            super::seg(&done.provider),
            super::seg(&done.connection)
        ))
        .ok()
        .and_then(|v| v.record.expires_at);
    if ctx.printer.json {
        ctx.printer.json_line(&json!({
            "status": "connected",
            "provider": done.provider,
            "connection": done.connection,
            "expires_at": expires,
            "conflicts": conflicts_json(&rivals),
        }));
    } else {
        let until = expires
            .map(|e| format!(" until {}", super::printer::format_time(e)))
            .unwrap_or_default();
        ctx.printer.success(&format!(
            "Connected to {display} as {}/{} (browser session{until})",
            done.provider, done.connection
        ));
        warn_rivals(ctx, &done.provider, &rivals);
    }
    Ok(ExitStatus::Success)
}

/// Another connected provider that claims one of our host rules verbatim.
struct Rival {
    provider: String,
    rule: String,
    /// The provider chosen there for good (`set-default`), if any.
    chosen: Option<String>,
}

/// Other connected providers that claim one of `provider`'s host rules
/// verbatim: connecting both is a conflict the proxy will not resolve by
/// guessing (unless one was chosen with `set-default`). Best effort: the
/// login itself succeeded.
fn rivals(ctx: &Ctx, provider: &str) -> Vec<Rival> {
    let Ok(list) = ctx
        .client()
        .and_then(|c| c.get::<ProviderList>("/api/providers"))
    else {
        return Vec::new();
    };
    let Some(me) = list.providers.iter().find(|p| p.name == provider) else {
        return Vec::new();
    };
    let connected = || list.providers.iter().filter(|p| p.connections > 0);
    connected()
        .filter(|p| p.name != provider)
        .flat_map(|p| {
            p.api_url
                .iter()
                .filter(|u| me.api_url.contains(u))
                .map(|u| Rival {
                    provider: p.name.clone(),
                    rule: u.clone(),
                    chosen: connected()
                        .find(|c| c.chosen_on.contains(u))
                        .map(|c| c.name.clone()),
                })
        })
        .collect()
}

fn conflicts_json(rivals: &[Rival]) -> serde_json::Value {
    rivals
        .iter()
        .map(|r| json!({"provider": r.provider, "rule": r.rule, "chosen": r.chosen}))
        .collect()
}

/// Names both providers and the ways to choose (or the one chosen).
fn warn_rivals(ctx: &Ctx, provider: &str, rivals: &[Rival]) {
    for Rival {
        provider: other,
        rule,
        chosen,
    } in rivals
    {
        let both = format!("`{provider}` and `{other}` are both connected and both claim {rule}");
        ctx.printer.warn(&match chosen {
            Some(c) => {
                let not = if c == provider { other } else { provider };
                format!(
                    "{both}: requests there go with `{c}`'s credential, chosen with `authsome set-default`; to send `{not}`'s instead, `authsome set-default {not} CONNECTION` (for good) or `authsome run --connection {not}=NAME -- …` (one run)"
                )
            }
            None => format!(
                "{both}: requests there are refused (authsome_provider_conflict) until you choose one, for good with `authsome set-default {provider} CONNECTION` (or `{other}`), per run with `authsome run --connection {provider}=NAME -- …` (or `{other}=NAME`), or by logging out of one (`authsome logout {other}`)"
            ),
        });
    }
}

/// Tries the platform's URL opener; false when there is none or no display.
pub(super) fn open_browser(url: &str) -> bool {
    let candidates: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else {
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            return false;
        }
        &["xdg-open"]
    };
    candidates.iter().any(|c| {
        std::process::Command::new(c)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// "OpenAI API key", "Example API key" (not "Example API API key"), "Foo key".
fn api_key_noun(display: &str) -> String {
    let lower = display.to_ascii_lowercase();
    if lower.ends_with(" key") || lower == "key" {
        display.to_string()
    } else if lower.ends_with("api") {
        format!("{display} key")
    } else {
        format!("{display} API key")
    }
}

#[cfg(test)]
mod noun_tests {
    #[test]
    fn a_display_name_is_not_doubled() {
        assert_eq!(super::api_key_noun("OpenAI"), "OpenAI API key");
        assert_eq!(
            super::api_key_noun("Example Test API"),
            "Example Test API key"
        );
        assert_eq!(super::api_key_noun("Acme access key"), "Acme access key");
    }
}
