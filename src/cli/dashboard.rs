//! `authsome dashboard`: open the daemon's dashboard in the browser.
//!
//! Asks the daemon for a one-time link (`POST /api/dashboard/links`: a
//! 256-bit token, valid 60 seconds, single use) and opens it; the page
//! trades it for a browser session. With `--no-browser` the URL is printed
//! on stderr instead; with `--json`, `{"action":"open_url","url":…}` goes
//! to stdout, as `login` does.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::api::DashboardLink;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  authsome dashboard                       # opens it in the browser
  authsome dashboard --no-browser          # prints a one-time URL (valid 60 s)")]
pub struct Args {
    /// Print the one-time URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let link: DashboardLink = client.post("/api/dashboard/links", &json!({}))?;
    if ctx.printer.json {
        ctx.printer.json_line(
            &json!({"action": "open_url", "url": link.url, "expires_at": link.expires_at}),
        );
    }
    let opened = !args.no_browser && super::login::open_browser(&link.url);
    if !ctx.printer.json {
        if opened {
            ctx.printer.status("Opened the dashboard in your browser.");
        } else {
            // The point of the command: shown even with `-q`.
            eprintln!(
                "Open this one-time link in a browser on this machine (it works once, within a minute):\n  {}",
                link.url
            );
        }
    }
    Ok(ExitStatus::Success)
}
