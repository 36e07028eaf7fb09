//! The command line: argument parsing, dispatch, and error rendering.
//!
//! One file per subcommand; each turns its arguments into a call on
//! [`CredentialService`] (or [`diagnostics`](crate::diagnostics)) and renders
//! the result through [`Printer`]. No policy lives here.

pub mod exit;
pub mod printer;

mod default;
mod doctor;
mod export;
mod list;
mod login;
mod logout;
mod providers;
mod whoami;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::exit::ExitStatus;
use self::printer::Printer;
use crate::config::{Config, ENV_NO_COLOR, Env, ProcessEnv};
use crate::credentials::CredentialService;
use crate::home::Home;
use crate::vault::Vault;

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
    /// Remove a stored connection.
    Logout(logout::Args),
    /// List stored connections (never their secrets).
    List,
    /// Print a connection's secrets as environment variables (the one explicit way a secret leaves).
    Export(export::Args),
    /// Make a connection the provider's default.
    SetDefault(default::Args),
    /// Show this home, its identity, key source and connections.
    Whoami,
    /// Check the home, keys, vault, catalogue and identity.
    Doctor,
    /// Inspect and manage provider definitions.
    #[command(subcommand)]
    Provider(providers::Command),
}

/// What every subcommand gets.
pub struct Ctx {
    pub config: Config,
    pub printer: Printer,
}

impl Ctx {
    /// Opens the credential service, creating the home, key and vault if needed.
    pub fn service(&self) -> anyhow::Result<CredentialService> {
        let svc = CredentialService::open(&self.config)?;
        if svc.key_generated() {
            self.printer.status(&format!(
                "Created a new vault master key in {}; keep it safe, the vault cannot be opened without it",
                svc.key_source().describe()
            ));
        }
        Ok(svc)
    }

    /// Opens the credential service only if a vault already exists.
    pub fn existing_service(&self) -> anyhow::Result<Option<CredentialService>> {
        if Vault::exists(&Home::new(&self.config.home)) {
            Ok(Some(self.service()?))
        } else {
            Ok(None)
        }
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
    init_tracing(cli.verbose, no_color);
    let printer = Printer::new(cli.quiet, cli.json, no_color);
    match run(cli, printer, &env) {
        Ok(status) => status.into(),
        Err(err) => report(&printer, &err).into(),
    }
}

fn run(cli: Cli, printer: Printer, env: &dyn Env) -> anyhow::Result<ExitStatus> {
    let config = Config::resolve(env, cli.home)?;
    let ctx = Ctx { config, printer };
    match cli.command {
        Command::Login(a) => login::run(&ctx, a),
        Command::Logout(a) => logout::run(&ctx, a),
        Command::List => list::run(&ctx),
        Command::Export(a) => export::run(&ctx, a),
        Command::SetDefault(a) => default::run(&ctx, a),
        Command::Whoami => whoami::run(&ctx),
        Command::Doctor => doctor::run(&ctx),
        Command::Provider(c) => providers::run(&ctx, c),
    }
}

/// Prints an error once (`authsome: error: …` + hint) and picks the exit code.
fn report(printer: &Printer, err: &anyhow::Error) -> ExitStatus {
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

fn init_tracing(verbose: bool, no_color: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if verbose {
        EnvFilter::new("authsome=debug,warn")
    } else {
        EnvFilter::try_from_env("AUTHSOME_LOG").unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
