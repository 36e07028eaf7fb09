//! `authsome bench`: what the proxy adds to a request on this machine
//! (direct, blind tunnel, MITM + injection; optionally mitmproxy), measured
//! in this process by [`crate::bench`]. Never touches the daemon, the
//! vault or the home.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::bench::{self, PathKind, Progress, Report};
use crate::config::{Env, ProcessEnv};

use super::Ctx;
use super::exit::ExitStatus;
use super::printer::table;

/// A peer to compare with.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Compare {
    /// `mitmdump` (mitmproxy) with a one-line header-injection addon.
    Mitmproxy,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured requests per path (after a warm-up).
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: u64,
    /// Keep-alive connections per path, each with one request in flight.
    #[arg(long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Also run the same load through a peer (`mitmdump` must be on PATH).
    #[arg(long, value_name = "PEER", value_enum)]
    pub compare: Option<Compare>,
    /// Measure against this HTTPS endpoint (yours) instead of a local upstream.
    #[arg(long, value_name = "URL")]
    pub against: Option<String>,
    /// The header the MITM injects (with a throwaway value, never a credential of yours).
    #[arg(long, value_name = "NAME", default_value = bench::DEFAULT_HEADER)]
    pub header: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<ExitStatus> {
    if a.concurrency > a.requests {
        ctx.printer.error(
            "--concurrency is larger than --requests",
            Some("give each connection at least one request: lower --concurrency or raise --requests"),
        );
        return Ok(ExitStatus::Usage);
    }
    let mitmdump = match a.compare {
        None => None,
        Some(Compare::Mitmproxy) => Some(
            ProcessEnv
                .var("PATH")
                .and_then(|p| bench::mitmproxy::find(&p))
                .ok_or_else(|| {
                    crate::Error::invalid(
                        "--compare mitmproxy needs `mitmdump` on PATH, and there is none",
                        Some(bench::mitmproxy::INSTALL_HINT.into()),
                    )
                })?,
        ),
    };
    let cfg = &ctx.config;
    let opts = bench::Options {
        requests: a.requests as usize,
        concurrency: a.concurrency as usize,
        against: a.against,
        header: a.header,
        mitmdump,
        proxy_threads: cfg.proxy_threads,
        redact: cfg.redact,
        resolve: cfg.resolve.clone(),
        upstream_ca_file: cfg.upstream_ca_file.clone(),
    };
    let progress = Arc::new(Progress::default());
    let bar = (std::io::stderr().is_terminal() && !ctx.printer.quiet)
        .then(|| ProgressBar::start(progress.clone()));
    let result = bench::run(&opts, &progress);
    drop(bar);
    let report = result?;
    if ctx.printer.json {
        ctx.printer.json(&report);
    } else {
        for line in render(&report) {
            ctx.printer.data(&line);
        }
    }
    Ok(ExitStatus::Success)
}

/// A progress line on stderr, redrawn every 100 ms until dropped.
struct ProgressBar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressBar {
    fn start(progress: Arc<Progress>) -> ProgressBar {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            const WIDTH: u64 = 24;
            while !s.load(Ordering::Relaxed) {
                let (done, total, phase) = progress.snapshot();
                let filled = (done * WIDTH).checked_div(total).unwrap_or(0).min(WIDTH);
                let pct = (done * 100).checked_div(total).unwrap_or(0);
                eprint!(
                    "\r\x1b[2K[{}{}] {pct:>3}%  {phase}",
                    "█".repeat(filled as usize),
                    "░".repeat((WIDTH - filled) as usize)
                );
                let _ = std::io::stderr().flush();
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        ProgressBar {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dur(us: f64) -> String {
    if us.abs() >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn added(us: f64) -> String {
    if us >= 0.0 {
        format!("+{}", dur(us))
    } else {
        format!("-{}", dur(-us))
    }
}

/// The human table.
pub fn render(r: &Report) -> Vec<String> {
    let target = if r.target == "local" {
        "a local HTTPS upstream (127.0.0.1)".to_string()
    } else {
        r.target.clone()
    };
    let mut out = vec![
        format!(
            "authsome bench: {} requests per path over {} keep-alive connection{} each, against {target}",
            r.requests,
            r.concurrency,
            if r.concurrency == 1 { "" } else { "s" }
        ),
        format!(
            "machine: {} CPUs, proxy threads {}; TCP round trip between two threads (calibration): p50 {}, p99 {}",
            r.cpus,
            r.proxy_threads,
            dur(r.calibration.tcp_round_trip_p50_us),
            dur(r.calibration.tcp_round_trip_p99_us)
        ),
        String::new(),
    ];
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            let direct = row.path == PathKind::Direct;
            vec![
                row.path.label().to_string(),
                dur(row.p50_us),
                dur(row.p99_us),
                if direct {
                    "-".into()
                } else {
                    added(row.added_p50_us)
                },
                if direct {
                    "-".into()
                } else {
                    added(row.added_p99_us)
                },
                format!("{:.0} req/s", row.throughput_rps),
            ]
        })
        .collect();
    out.extend(table(
        &["PATH", "P50", "P99", "ADDED P50", "ADDED P99", "THROUGHPUT"],
        &rows,
    ));
    out.push(String::new());
    let c = &r.mitm_over_blind_tunnel;
    out.push(format!(
        "The MITM's cost over the blind tunnel: {} p50, {} p99; its throughput {:.0}% of the tunnel's.",
        added(c.p50_us),
        added(c.p99_us),
        100.0 * c.throughput_ratio
    ));
    if let Some(v) = &r.versus_mitmproxy {
        out.push(format!(
            "authsome / mitmproxy ({}): p50 {:.3}× ({:.1}× faster), p99 {:.3}×, throughput {:.1}×.",
            v.mitmproxy_version,
            v.p50_ratio,
            1.0 / v.p50_ratio.max(1e-9),
            v.p99_ratio,
            v.throughput_ratio
        ));
    }
    for row in &r.rows {
        if let (Some(n), Some(by)) = (row.injected, row.injection_verified_by) {
            out.push(format!(
                "{}: the injected header was checked by the {by} on every request ({n}, warm-up included).",
                row.path.label()
            ));
        } else if row.path == PathKind::Mitmproxy {
            out.push(format!(
                "{}: injection not checked (a named endpoint cannot count it).",
                row.path.label()
            ));
        }
        if row.non_2xx > 0 {
            out.push(format!(
                "{}: {} answers outside 2xx.",
                row.path.label(),
                row.non_2xx
            ));
        }
    }
    out
}
