//! `authsome completions SHELL` and `authsome man`: generated from the same
//! clap definitions the parser uses, so they never drift from the commands.

use clap::CommandFactory;

use super::exit::ExitStatus;
use super::{Cli, Ctx};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  authsome completions bash > ~/.local/share/bash-completion/completions/authsome
  authsome completions zsh > \"${fpath[1]}/_authsome\"
  authsome completions fish > ~/.config/fish/completions/authsome.fish")]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "authsome", &mut out);
    ctx.printer.data(String::from_utf8_lossy(&out).trim_end());
    Ok(ExitStatus::Success)
}

pub fn man(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    ctx.printer.data(String::from_utf8_lossy(&out).trim_end());
    Ok(ExitStatus::Success)
}
