//! The command line: argument parsing, dispatch, and error rendering.
//!
//! One file per subcommand; each turns its arguments into a request to the
//! daemon ([`client::Client`], which finds or starts it and signs every
//! request), reads the typed answer ([`crate::api`]), and renders it through
//! [`Printer`]. `doctor` also runs [`diagnostics`](crate::diagnostics) in
//! process, and `run` confines its child ([`crate::sandbox`]). No policy
//! lives here.

pub mod client;
pub mod exit;
pub mod logfile;
pub mod printer;

mod bench;
mod browser;
mod ca;
mod completions;
mod daemon;
mod dashboard;
mod default;
mod doctor;
mod export;
mod list;
mod log;
mod login;
mod logout;
mod migrate;
mod providers;
mod proxy;
mod revoke;
mod run;
mod team;
mod whoami;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::exit::ExitStatus;
use self::printer::Printer;
use crate::config::{Config, ENV_NO_COLOR, Env, ProcessEnv};

/// Use your API keys and OAuth tokens from AI agents without handing them the secrets.
#[derive(Debug, Parser)]
#[command(
    name = "authsome",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Use DIR as the authsome home instead of $AUTHSOME_HOME (default ~/.authsome).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Show debug logs on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print only data and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a credential for a provider.
    Login(login::Args),
    /// Remove a stored connection (revoking its tokens at the provider when it can).
    Logout(logout::Args),
    /// Revoke every connection of a provider at the provider, and remove them.
    Revoke(revoke::Args),
    /// List stored connections (never their secrets).
    List,
    /// Print a connection's secrets as environment variables (the one explicit way a secret leaves).
    Export(export::Args),
    /// Make a connection the provider's default.
    SetDefault(default::Args),
    /// Run a program behind a proxy that adds your credentials to its requests.
    Run(run::Args),
    /// Show this home, its identity, key source and connections.
    Whoami,
    /// Show the audit log (logins, logouts, exports, provider changes, credential resolutions), or with --requests what the proxy handled.
    Log(log::Args),
    /// Check the home, keys, vault, catalogue and identity (and with --clients, this machine's HTTP clients).
    Doctor(doctor::Args),
    /// Measure what the proxy adds to a request on this machine (direct, blind tunnel, MITM + injection).
    Bench(bench::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::Args),
    /// Print the manual page (roff): `authsome man | man -l -`.
    Man,
    /// Inspect and manage provider definitions.
    #[command(subcommand)]
    Provider(providers::Command),
    /// Manage the members of a shared daemon and what each may use (admins only).
    #[command(subcommand)]
    Team(team::Command),
    /// The system-wide proxy: `proxy env` prints export lines for a shell.
    #[command(subcommand)]
    Proxy(proxy::Command),
    /// The persistent CA of system-wide mode: path, show, install, uninstall.
    #[command(subcommand)]
    Ca(ca::Command),
    /// Open the dashboard (connections, providers, runs, requests) in the browser.
    Dashboard(dashboard::Args),
    /// Run and manage the background daemon (started on demand by other commands).
    #[command(subcommand)]
    Daemon(daemon::Command),
    /// Copy this home's vault into an empty PostgreSQL store (a team server's).
    Migrate(migrate::Args),
}

/// What every subcommand gets.
pub struct Ctx {
    pub config: Config,
    pub printer: Printer,
}

impl Ctx {
    /// Connects to this home's daemon, starting it if needed.
    pub fn client(&self) -> anyhow::Result<client::Client> {
        client::Client::connect(self)
    }
}

/// Percent-encodes one URL path segment.
pub fn seg(s: &str) -> String {
    crate::percent::encode(s)
}

/// The name of a provider's default connection, asked of the daemon.
pub fn default_connection(
    client: &client::Client,
    provider: &str,
) -> anyhow::Result<Option<String>> {
    let v: crate::api::ConnectionList = client.get("/api/connections")?;
    Ok(v.connections
        .into_iter()
        .find(|c| c.record.provider == provider && c.record.is_default)
        .map(|c| c.record.name))
}

/// An enum of an API body as it reads on the wire (`connected`, `oauth2`,
/// `bundled`…): the word tables show.
pub fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitStatus::Usage.into()
            } else {
                ExitStatus::Success.into()
            };
        }
    };
    let env = ProcessEnv;
    let no_color = env.var(ENV_NO_COLOR).is_some_and(|v| !v.is_empty());
    let printer = Printer::new(cli.quiet, cli.json, no_color);
    let config = match Config::resolve(&env, cli.home.clone()) {
        Ok(c) => c,
        Err(e) => {
            init_tracing(cli.verbose, no_color, None);
            return report(&printer, &e.into()).into();
        }
    };
    let serving = matches!(cli.command, Command::Daemon(daemon::Command::Serve { .. }));
    let log_file = if serving {
        open_daemon_log(&config)
    } else {
        None
    };
    init_tracing(cli.verbose, no_color, log_file);
    match run(cli, printer, config) {
        Ok(status) => status.into(),
        Err(err) => report(&printer, &err).into(),
    }
}

fn open_daemon_log(config: &Config) -> Option<std::fs::File> {
    let path = crate::app::log_file_path(&config.home);
    crate::home::ensure_private_dir(path.parent()?).ok()?;
    logfile::rotate(&path);
    logfile::open_append(&path).ok()
}

fn run(cli: Cli, printer: Printer, config: Config) -> anyhow::Result<ExitStatus> {
    let ctx = Ctx { config, printer };
    match cli.command {
        Command::Login(a) => login::run(&ctx, a),
        Command::Logout(a) => logout::run(&ctx, a),
        Command::Revoke(a) => revoke::run(&ctx, a),
        Command::List => list::run(&ctx),
        Command::Export(a) => export::run(&ctx, a),
        Command::SetDefault(a) => default::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Whoami => whoami::run(&ctx),
        Command::Log(a) => log::run(&ctx, a),
        Command::Doctor(a) => doctor::run(&ctx, a),
        Command::Bench(a) => bench::run(&ctx, a),
        Command::Completions(a) => completions::run(&ctx, a),
        Command::Man => completions::man(&ctx),
        Command::Provider(c) => providers::run(&ctx, c),
        Command::Team(c) => team::run(&ctx, c),
        Command::Proxy(c) => proxy::run(&ctx, c),
        Command::Ca(c) => ca::run(&ctx, c),
        Command::Dashboard(a) => dashboard::run(&ctx, a),
        Command::Daemon(c) => daemon::run(&ctx, c),
        Command::Migrate(a) => migrate::run(&ctx, a),
    }
}

/// Prints an error once (`authsome: error: …` + hint) and picks the exit code.
fn report(printer: &Printer, err: &anyhow::Error) -> ExitStatus {
    if let Some(e) = err.downcast_ref::<client::DaemonStartError>() {
        printer.error(&e.message, e.hint.as_deref());
        return ExitStatus::Code(e.code);
    }
    if let Some(e) = err.downcast_ref::<client::DaemonError>() {
        printer.error(&e.message, e.hint.as_deref());
        return e.exit_status();
    }
    if let Some((status, hint)) = run::sandbox_required(err) {
        printer.error(&format!("{err:#}"), Some(hint));
        return status;
    }
    if let Some(e) = err.downcast_ref::<crate::Error>() {
        printer.error(&format!("{err:#}"), e.hint().as_deref());
        return ExitStatus::from_kind(e.kind());
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitStatus::Success;
    }
    printer.error(&format!("{err:#}"), None);
    ExitStatus::Failure
}

/// Logs go to stderr (warnings by default, debug with `--verbose`); the
/// daemon logs to its file at info level, and to stderr too with `--verbose`.
fn init_tracing(verbose: bool, no_color: bool, file: Option<std::fs::File>) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let default = match (verbose, file.is_some()) {
        (true, _) => "authsome=debug,warn",
        (false, true) => "authsome=info,warn",
        (false, false) => "warn",
    };
    let filter = EnvFilter::try_from_env(crate::config::ENV_LOG)
        .unwrap_or_else(|_e| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match file {
        Some(f) if verbose => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f).and(std::io::stderr))
            .try_init(),
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        None => builder
            .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
}
