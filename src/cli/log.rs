//! `authsome log`: the daemon's audit log (names, hosts and outcomes; never
//! secrets). `authsome log --requests`: the request log, what the proxy
//! handled (`--follow` keeps printing new entries).

use std::time::Duration;

use anyhow::Context;

use super::Ctx;
use super::client::Client;
use super::exit::ExitStatus;
use super::printer::{format_time, sanitize, table};
use crate::api::{AuditList, RequestEntry, RequestKind, RequestList};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many records, newest first (1-500; with --requests 1-1000).
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
    /// Show the request log (what the proxy handled) instead of the audit log.
    #[arg(long)]
    requests: bool,
    /// With --requests: print the last N entries, then new ones as they come, until interrupted.
    #[arg(short = 'f', long, requires = "requests")]
    follow: bool,
    /// With --requests: only this run (its id, or the short id the table shows; `system` for the system-wide proxy).
    #[arg(long, value_name = "ID", requires = "requests")]
    run: Option<String>,
    /// With --requests: only this provider.
    #[arg(long, value_name = "PROVIDER", requires = "requests")]
    provider: Option<String>,
    /// With --requests: only this status: a code (404), a class (4xx) or `refused`.
    #[arg(long, value_name = "STATUS", requires = "requests")]
    status: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    if args.requests {
        return requests(ctx, &args);
    }
    let v: AuditList = ctx
        .client()?
        .get(&format!("/api/audit?limit={}", args.lines.clamp(1, 500)))?;
    let entries = v.entries;
    if ctx.printer.json {
        ctx.printer.json(&entries);
        return Ok(ExitStatus::Success);
    }
    if entries.is_empty() {
        ctx.printer.status("The audit log is empty.");
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let target = match (&e.provider, &e.connection) {
                (Some(p), Some(c)) => format!("{p}/{c}"),
                (Some(p), None) => p.clone(),
                _ => "-".into(),
            };
            let actor = e.actor.clone().unwrap_or_default();
            let actor = if actor.len() > 20 {
                format!("{}…", &actor[..20])
            } else {
                actor
            };
            let detail = match e.detail.as_object() {
                Some(d) if !d.is_empty() => e.detail.to_string(),
                _ => String::new(),
            };
            vec![
                format_time(e.ts),
                e.event.clone(),
                target,
                e.outcome.clone(),
                actor,
                detail,
            ]
        })
        .collect();
    for line in table(
        &["TIME", "EVENT", "TARGET", "OUTCOME", "BY", "DETAIL"],
        &rows,
    ) {
        ctx.printer.data(&line);
    }
    Ok(ExitStatus::Success)
}

// === the request log ===

/// The most entries one request asks for (the daemon's limit).
const PAGE: usize = 1000;
/// How often `--follow` asks for new entries.
const POLL: Duration = Duration::from_millis(500);

const HEADER: [&str; 10] = [
    "TIME (UTC)",
    "RUN",
    "PROVIDER",
    "METHOD",
    "HOST",
    "PATH",
    "STATUS",
    "BYTES",
    "MS",
    "FLAGS",
];
/// Column widths of `--follow`, which cannot size columns to rows it has
/// not seen (the last column, FLAGS, is not padded).
const WIDTHS: [usize; 9] = [14, 8, 10, 7, 28, 32, 12, 11, 6];

/// `/api/requests?…` with the filters, `after` and `limit`.
fn query(args: &Args, after: Option<u64>, limit: usize) -> String {
    let mut q = vec![format!("limit={limit}")];
    if let Some(a) = after {
        q.push(format!("after={a}"));
    }
    for (k, v) in [
        ("run", &args.run),
        ("provider", &args.provider),
        ("status", &args.status),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", crate::percent::encode(v)));
        }
    }
    format!("/api/requests?{}", q.join("&"))
}

fn requests(ctx: &Ctx, args: &Args) -> anyhow::Result<ExitStatus> {
    let client = ctx.client()?;
    let first: RequestList = client.get(&query(args, None, args.lines.clamp(1, PAGE)))?;
    if args.follow {
        return follow(ctx, args, &client, first);
    }
    if ctx.printer.json {
        ctx.printer.json(&first.entries);
        return Ok(ExitStatus::Success);
    }
    if first.entries.is_empty() {
        ctx.printer.status(if filtered(args) {
            "No request matches."
        } else {
            "The request log is empty: requests through `authsome run` or the system-wide proxy show up here."
        });
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = first.entries.iter().map(row).collect();
    for line in table(&HEADER, &rows) {
        ctx.printer.data(&line);
    }
    dropped_note(ctx, first.dropped);
    Ok(ExitStatus::Success)
}

fn filtered(args: &Args) -> bool {
    args.run.is_some() || args.provider.is_some() || args.status.is_some()
}

fn dropped_note(ctx: &Ctx, dropped: u64) {
    if dropped > 0 {
        ctx.printer.warn(&format!(
            "{dropped} entries were not recorded since the daemon started: the log's writer fell behind"
        ));
    }
}

/// Prints the last entries oldest first, then polls for new ones until the
/// reader of stdout or the daemon goes away (or Ctrl-C).
fn follow(
    ctx: &Ctx,
    args: &Args,
    client: &Client,
    first: RequestList,
) -> anyhow::Result<ExitStatus> {
    let json = ctx.printer.json;
    if !json {
        ctx.printer
            .status("Following the request log (Ctrl-C to stop).");
        if ctx
            .printer
            .data_line(&fixed(&HEADER.map(String::from)))
            .is_err()
        {
            return Ok(ExitStatus::Success);
        }
    }
    let mut last = first.last;
    let mut dropped = first.dropped;
    let mut batch = first.entries;
    batch.reverse();
    loop {
        for e in &batch {
            let line = if json {
                serde_json::to_value(e)
                    .and_then(|v| serde_json::to_string(&v))
                    .context("cannot encode an entry")?
            } else {
                fixed(&row(e))
            };
            if ctx.printer.data_line(&line).is_err() {
                // The reader is gone (`| head`): done.
                return Ok(ExitStatus::Success);
            }
        }
        let full = batch.len() >= PAGE;
        if !full {
            std::thread::sleep(POLL);
        }
        let page: RequestList = client
            .get(&query(args, Some(last), PAGE))
            .with_context(|| {
                format!(
                    "the daemon at {} went away; stopped following",
                    client.base_url()
                )
            })?;
        if page.dropped > dropped && !json {
            dropped_note(ctx, page.dropped - dropped);
        }
        dropped = dropped.max(page.dropped);
        last = page.last;
        batch = page.entries;
    }
}

/// One entry as table cells (in [`HEADER`]'s order).
fn row(e: &RequestEntry) -> Vec<String> {
    let time = clock(e.ts_ms);
    if e.kind == RequestKind::Dropped {
        return vec![
            time,
            "-".into(),
            "-".into(),
            "-".into(),
            format!("({} entries not recorded: the log fell behind)", e.dropped),
        ];
    }
    let run = e
        .run
        .as_deref()
        .map_or_else(|| "-".to_string(), |r| r.chars().take(8).collect());
    let method = match (e.kind, &e.method) {
        (_, Some(m)) => m.clone(),
        (RequestKind::Tunnel, None) => "TUNNEL".into(),
        _ => "-".into(),
    };
    let host = if e.port == 443 || e.port == 0 {
        e.host.clone()
    } else {
        format!("{}:{}", e.host, e.port)
    };
    let status = match (&e.refused, e.status) {
        (Some(code), _) => code.strip_prefix("authsome_").unwrap_or(code).to_string(),
        (None, Some(s)) => s.to_string(),
        (None, None) => "-".into(),
    };
    let mut flags = Vec::new();
    if e.injected {
        flags.push("INJ".to_string());
    }
    if e.redactions > 0 {
        flags.push(format!("REDACTED {}", e.redactions));
    }
    if let Some(t) = &e.tripwire {
        flags.push(format!("TRIPWIRE {}", t.location));
    }
    vec![
        time,
        run,
        e.provider.clone().unwrap_or_else(|| "-".into()),
        method,
        cut(&host, 40),
        cut(e.path.as_deref().unwrap_or("-"), 48),
        status,
        format!("{}/{}", bytes(e.bytes_up), bytes(e.bytes_down)),
        format!("{:.0}", e.duration_ms),
        flags.join(" "),
    ]
}

/// Cells padded or cut to [`WIDTHS`], for `--follow`.
fn fixed(cells: &[String]) -> String {
    cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = sanitize(c);
            match WIDTHS.get(i) {
                Some(&w) if i + 1 < cells.len() => format!("{:<w$}", cut(&c, w)),
                _ => c,
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_string()
}

/// `s`, cut to `max` characters with an ellipsis.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000);
    let full = format_time(secs); // YYYY-MM-DD HH:MM UTC
    format!(
        "{}:{:02}",
        full.get(5..16).unwrap_or(&full),
        secs.rem_euclid(60)
    )
}

/// A byte count in a few characters: `512`, `1.2k`, `34k`, `5.6M`.
fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    match n {
        0..1024 => n.to_string(),
        1024..10_240 => format!("{:.1}k", f / K),
        10_240..1_048_576 => format!("{:.0}k", f / K),
        1_048_576..10_485_760 => format!("{:.1}M", f / K / K),
        10_485_760..1_073_741_824 => format!("{:.0}M", f / K / K),
        _ => format!("{:.1}G", f / K / K / K),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Tripwire;

    #[test]
    fn a_row_shows_the_refusal_code_flags_and_sizes() {
        let e = RequestEntry {
            ts_ms: 1_795_000_000_123,
            run: Some("0123456789abcdef".into()),
            provider: Some("github".into()),
            method: Some("POST".into()),
            path: Some("/repos".into()),
            status: Some(403),
            refused: Some("authsome_host_denied".into()),
            bytes_up: 2048,
            bytes_down: 12,
            duration_ms: 12.6,
            injected: true,
            redactions: 2,
            tripwire: Some(Tripwire {
                provider: "openai".into(),
                location: "header".into(),
            }),
            ..RequestEntry::new(RequestKind::Request, "api.github.com", 8443)
        };
        assert_eq!(
            row(&e),
            vec![
                "11-18 11:06:40",
                "01234567",
                "github",
                "POST",
                "api.github.com:8443",
                "/repos",
                "host_denied",
                "2.0k/12",
                "13",
                "INJ REDACTED 2 TRIPWIRE header",
            ]
        );
        let tunnel = RequestEntry::new(RequestKind::Tunnel, "example.com", 443);
        assert_eq!(row(&tunnel)[3], "TUNNEL");
        assert_eq!(row(&tunnel)[6], "-");
    }

    #[test]
    fn sizes_and_cuts() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(1023), "1023");
        assert_eq!(bytes(35 * 1024), "35k");
        assert_eq!(bytes(5 * 1024 * 1024 + 600 * 1024), "5.6M");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        let line = fixed(&["a".into(), "b\x1b[2J".into()]);
        assert_eq!(line, "a               b\u{fffd}[2J");
    }

    #[test]
    fn the_query_carries_filters_encoded() {
        let args = Args {
            lines: 5,
            requests: true,
            follow: false,
            run: Some("ab cd".into()),
            provider: None,
            status: Some("4xx".into()),
        };
        assert_eq!(
            query(&args, Some(7), 10),
            "/api/requests?limit=10&after=7&run=ab%20cd&status=4xx"
        );
    }
}
