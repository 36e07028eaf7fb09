//! `authsome bench`: what the proxy adds to a request, measured on the
//! user's machine against a direct request in the same run.
//!
//! One process: a local HTTPS upstream ([`upstream`], its own throwaway
//! CA) or an endpoint the user names, authsome's proxy engine
//! ([`engine`]: the daemon's [`Workers`] with a
//! throwaway provider and credential in memory; no vault, no home) and
//! keep-alive clients ([`client`]) on one thread. Each path gets the same
//! load, interleaved in rounds so that drift hits them alike:
//! - **direct** to the upstream;
//! - a **blind tunnel** through the same proxy (a CONNECT to the upstream's
//!   address, which no provider claims: no TLS termination, no HTTP
//!   parsing; the floor of any in-path proxy on this machine);
//! - the **MITM with injection**: TLS terminated, the header injected;
//! - optionally **mitmproxy** ([`mitmproxy`]) with a one-line addon that
//!   sets the same header.
//!
//! Against the local upstream, every request is checked there: the
//! injected header must carry the value on each MITM request and be absent
//! on the others; one mismatch fails the run. Against a named endpoint,
//! the proxy's own counter is checked instead. A TCP round trip between two
//! threads calibrates the machine. `cargo bench --bench proxy_overhead`
//! uses the same parts.

pub mod client;
pub mod engine;
pub mod mitmproxy;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::client::{Conn, Hop};
use self::engine::{BenchProxy, ProxyOptions};
use self::upstream::{Checks, LocalUpstream, Seen};
use crate::error::{Error, Result};
use crate::proxy::Workers;
use crate::proxy::upstream::Upstream;
use crate::secret::Secret;

/// The header injected unless the user names another: harmless anywhere.
pub const DEFAULT_HEADER: &str = "X-Authsome-Bench";

/// How long one request may take before the run fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured requests per path (after a warm-up).
    pub requests: usize,
    /// Keep-alive connections per path, each with one request in flight.
    pub concurrency: usize,
    /// `https://…` to measure against instead of the local upstream.
    pub against: Option<String>,
    /// The header the MITM (and mitmproxy) inject.
    pub header: String,
    /// Compare with this `mitmdump`.
    pub mitmdump: Option<PathBuf>,
    /// The proxy's worker threads (`AUTHSOME_PROXY_THREADS`).
    pub proxy_threads: usize,
    /// Response redaction (`AUTHSOME_REDACT`).
    pub redact: bool,
    /// Resolver overrides (`AUTHSOME_RESOLVE`), for `against`.
    pub resolve: Vec<(String, IpAddr)>,
    /// Extra upstream roots (`AUTHSOME_UPSTREAM_CA_FILE`), for `against`.
    pub upstream_ca_file: Option<PathBuf>,
}

/// How far a run is, for a progress bar (read from another thread).
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<String>,
}

impl Progress {
    /// (measured requests done, to do, what is happening).
    pub fn snapshot(&self) -> (u64, u64, String) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        )
    }

    fn phase(&self, what: &str) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = what.to_string();
    }
}

/// One path through which requests went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    Direct,
    BlindTunnel,
    Mitm,
    Mitmproxy,
}

impl PathKind {
    /// The row's name in the table.
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::BlindTunnel => "blind tunnel (authsome)",
            PathKind::Mitm => "MITM + injection (authsome)",
            PathKind::Mitmproxy => "MITM + injection (mitmproxy)",
        }
    }
}

/// One row of the result.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub path: PathKind,
    /// Measured requests (warm-up excluded).
    pub requests: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    /// Requests per second over the measured batches.
    pub throughput_rps: f64,
    /// p50 and p99 over the direct row's.
    pub added_p50_us: f64,
    pub added_p99_us: f64,
    /// Requests (warm-up included) whose injection was verified; `None`
    /// for paths that inject nothing, or where nothing could check it.
    pub injected: Option<u64>,
    /// Where the injection was checked: `upstream` or `proxy`.
    pub injection_verified_by: Option<&'static str>,
    /// Answers outside 2xx (only possible with `--against`).
    pub non_2xx: u64,
}

/// The machine's floor.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// A 1-byte TCP round trip between two threads, p50 and p99.
    pub tcp_round_trip_p50_us: f64,
    pub tcp_round_trip_p99_us: f64,
}

/// The MITM against the blind tunnel.
#[derive(Debug, Clone, Serialize)]
pub struct MitmCost {
    pub p50_us: f64,
    pub p99_us: f64,
    /// MITM throughput / blind-tunnel throughput.
    pub throughput_ratio: f64,
}

/// authsome's MITM against mitmproxy's.
#[derive(Debug, Clone, Serialize)]
pub struct Versus {
    /// `mitmdump --version`'s first line.
    pub mitmproxy_version: String,
    /// authsome / mitmproxy (below 1: authsome is faster).
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// authsome / mitmproxy (above 1: authsome serves more).
    pub throughput_ratio: f64,
}

/// What `authsome bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `local` or the URL measured against.
    pub target: String,
    pub requests: u64,
    pub concurrency: u64,
    pub header: String,
    pub proxy_threads: u64,
    /// CPUs this process may use.
    pub cpus: u64,
    pub calibration: Calibration,
    pub rows: Vec<Row>,
    pub mitm_over_blind_tunnel: MitmCost,
    pub versus_mitmproxy: Option<Versus>,
}

/// Where the requests go.
#[derive(Debug, Clone)]
struct Target {
    /// Host name (SNI, certificate, the provider's host).
    host: String,
    port: u16,
    /// Where the host name resolved.
    addr: SocketAddr,
    /// `Host:` header.
    authority: String,
    /// Path and query.
    path: String,
}

/// `url` as printed (report, table, errors): scheme, host, port and path
/// as given, user information left out, and each query value replaced by
/// `…` (a query may carry a token: `?api_key=…`). Not a URL: nothing of it.
pub fn shown_url(url: &str) -> String {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return "(not a URL)".into();
    };
    let mut out = String::new();
    if let Some(s) = uri.scheme_str() {
        out.push_str(s);
        out.push_str("://");
    }
    if let Some(a) = uri.authority() {
        let a = a.as_str();
        out.push_str(
            a.rsplit_once('@')
                .map_or(a, |(_userinfo, hostport)| hostport),
        );
    }
    out.push_str(uri.path());
    if let Some(q) = uri.query() {
        out.push('?');
        let masked: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _value)) => format!("{k}=…"),
                None if kv.is_empty() => String::new(),
                // A bare `?token` is a value too.
                None => "…".into(),
            })
            .collect();
        out.push_str(&masked.join("&"));
    }
    out
}

/// Parses `--against`: an `https://` URL with a host name.
fn parse_against(url: &str) -> Result<(String, u16, String, String)> {
    let shown = shown_url(url);
    let bad = |why: &str| {
        Error::invalid(
            format!("--against `{shown}`: {why}"),
            Some("name an HTTPS endpoint, e.g. --against https://api.example.com/health".into()),
        )
    };
    let uri: http::Uri = url.parse().map_err(|_e| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("only https:// URLs can be measured"));
    }
    let auth = uri.authority().ok_or_else(|| bad("no host"))?;
    if auth.as_str().contains('@') {
        return Err(bad("user information in the URL is not supported"));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.parse::<IpAddr>().is_ok() {
        return Err(Error::invalid(
            format!("--against `{shown}`: the MITM needs a host name, not an IP address"),
            Some(
                "use the name the server's certificate is for; AUTHSOME_RESOLVE=NAME=IP reaches it at an address"
                    .into(),
            ),
        ));
    }
    let port = auth.port_u16().unwrap_or(443);
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Ok((
        host.to_ascii_lowercase(),
        port,
        auth.as_str().to_string(),
        path,
    ))
}

fn resolve(host: &str, port: u16, overrides: &[(String, IpAddr)]) -> Result<SocketAddr> {
    if let Some((_, ip)) = overrides.iter().find(|(h, _)| h.eq_ignore_ascii_case(host)) {
        return Ok(SocketAddr::new(*ip, port));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("cannot resolve {host}"), e))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| Error::invalid(format!("{host} resolves to no address"), None))
}

fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    crate::secret::fill_random(&mut b)?;
    Ok(b.iter().map(|b| format!("{b:02x}")).collect())
}

fn failed(what: String) -> Error {
    Error::io("authsome bench", std::io::Error::other(what))
}

/// How a path's injection is checked after each batch.
enum Check {
    /// The upstream must not see the header.
    Absent(Arc<Checks>),
    /// The upstream must see the value on every request.
    Injected(Arc<Checks>),
    /// The proxy must have injected on every request.
    ProxyCounter(Arc<crate::proxy::Shared>),
    /// Nothing can check it (mitmproxy against a named endpoint).
    Unchecked,
}

#[derive(Clone, Copy)]
enum Mark {
    Seen(Seen),
    Count(u64),
    None,
}

impl Check {
    fn mark(&self) -> Mark {
        match self {
            Check::Absent(c) | Check::Injected(c) => Mark::Seen(c.seen()),
            Check::ProxyCounter(s) => Mark::Count(s.stats.injected.load(Ordering::Relaxed)),
            Check::Unchecked => Mark::None,
        }
    }

    /// Checks the `n` requests sent since `before`; returns how many were
    /// verified as injected.
    fn verify(&self, before: Mark, n: u64, label: &str) -> Result<u64> {
        match (self, before) {
            (Check::Absent(c), Mark::Seen(b)) => {
                let d = c.seen().since(b);
                if d.absent != n || d.injected + d.wrong != 0 {
                    return Err(failed(format!(
                        "{} of {n} requests through the {label} path reached the upstream with the injected header, which only the MITM may add",
                        d.injected + d.wrong
                    )));
                }
                Ok(0)
            }
            (Check::Injected(c), Mark::Seen(b)) => {
                let d = c.seen().since(b);
                if d.injected != n {
                    return Err(failed(format!(
                        "injection failed on {} of {n} requests through {label}: the upstream saw {} with a wrong value and {} without the header",
                        n.saturating_sub(d.injected),
                        d.wrong,
                        d.absent
                    )));
                }
                Ok(n)
            }
            (Check::ProxyCounter(s), Mark::Count(b)) => {
                let d = s.stats.injected.load(Ordering::Relaxed) - b;
                if d != n {
                    return Err(failed(format!(
                        "injection failed on {} of {n} requests through {label}: the proxy injected {d}",
                        n.saturating_sub(d)
                    )));
                }
                Ok(n)
            }
            _ => Ok(0),
        }
    }

    fn verified_by(&self) -> Option<&'static str> {
        match self {
            Check::Injected(_) => Some("upstream"),
            Check::ProxyCounter(_) => Some("proxy"),
            Check::Absent(_) | Check::Unchecked => None,
        }
    }
}

/// One path's connections and measurements.
struct Lane {
    kind: PathKind,
    hop: Option<Hop>,
    tls: tokio_rustls::TlsConnector,
    check: Check,
    conns: Vec<Conn>,
    samples: Vec<Duration>,
    busy: Duration,
    non_2xx: u64,
    injected: u64,
}

/// Runs `n` requests over `conns`, one in flight on each.
async fn batch(
    conns: Vec<Conn>,
    n: usize,
    target: &Arc<Target>,
    progress: Option<&Arc<Progress>>,
) -> Result<(Vec<Conn>, Vec<Duration>, u64, Duration)> {
    let tickets = Arc::new(AtomicUsize::new(n));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut c in conns {
        let (tickets, target) = (tickets.clone(), target.clone());
        let progress = progress.cloned();
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::new();
            let mut bad = 0u64;
            while tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
                .is_ok()
            {
                let t = Instant::now();
                let status = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    client::get(&mut c, &target.authority, &target.path),
                )
                .await
                .map_err(|_e| failed("a request got no answer within 30 s".into()))??;
                v.push(t.elapsed());
                if !(200..300).contains(&status) {
                    bad += 1;
                }
                if let Some(p) = &progress {
                    p.done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, Error>((c, v, bad))
        }));
    }
    let mut conns = Vec::new();
    let mut samples = Vec::with_capacity(n);
    let mut bad = 0;
    for t in tasks {
        let (c, v, b) = t
            .await
            .map_err(|e| failed(format!("a client task failed: {e}")))??;
        conns.push(c);
        samples.extend(v);
        bad += b;
    }
    Ok((conns, samples, bad, start.elapsed()))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// A TCP echo server on `rt`: one byte back for each byte.
fn echo(rt: &tokio::runtime::Handle) -> Result<SocketAddr> {
    let l = crate::proxy::bind_loopback(0).map_err(|e| Error::io("cannot listen", e))?;
    let addr = l.local_addr().map_err(|e| Error::io("cannot listen", e))?;
    rt.spawn(async move {
        let Ok(l) = tokio::net::TcpListener::from_std(l) else {
            return;
        };
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        s.set_nodelay(true).ok();
        let mut b = [0u8; 1];
        while s.read_exact(&mut b).await.is_ok() {
            if s.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    Ok(addr)
}

/// A 1-byte TCP round trip between two threads: p50 and p99 in µs.
async fn calibrate(addr: SocketAddr) -> Result<(f64, f64)> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Error::io("cannot connect to the echo server", e))?;
    s.set_nodelay(true).ok();
    let mut v = Vec::new();
    let mut b = [0u8; 1];
    for i in 0..2200 {
        let t = Instant::now();
        s.write_all(b"x")
            .await
            .map_err(|e| Error::io("echo failed", e))?;
        s.read_exact(&mut b)
            .await
            .map_err(|e| Error::io("echo failed", e))?;
        if i >= 200 {
            v.push(t.elapsed());
        }
    }
    v.sort();
    Ok((pct(&v, 0.5), pct(&v, 0.99)))
}

/// Runs the benchmark. `progress` is updated as it goes.
pub fn run(opts: &Options, progress: &Arc<Progress>) -> Result<Report> {
    let header = http::HeaderName::from_bytes(opts.header.as_bytes()).map_err(|_e| {
        Error::invalid(
            format!("--header `{}` is not a header name", opts.header),
            Some(format!("e.g. --header {DEFAULT_HEADER}")),
        )
    })?;
    let against = opts.against.as_deref().map(parse_against).transpose()?;
    let (n, c) = (opts.requests.max(1), opts.concurrency.max(1));
    // A throwaway value: never a user's secret.
    let value = format!("authsome-bench-{}", random_hex(16)?);

    progress.phase("starting");
    let up_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("authsome-bench")
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start a runtime", e))?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start a runtime", e))?;
    let workers = Arc::new(Workers::start(opts.proxy_threads)?);

    // The upstream: local, or the named endpoint.
    let (target, local, upstream, direct_tls, mitmproxy_upstream_ca) = match against {
        None => {
            let up = LocalUpstream::start(
                up_rt.handle(),
                &[b"h2", b"http/1.1"],
                header.clone(),
                value.clone(),
            )?;
            let target = Target {
                host: upstream::HOST.into(),
                port: up.addr.port(),
                addr: up.addr,
                authority: format!("{}:{}", upstream::HOST, up.addr.port()),
                path: "/v1/bench".into(),
            };
            let upstream = Upstream::with_roots(
                Some(("the bench upstream's CA".into(), vec![up.ca_der.clone()])),
                &[(upstream::HOST.into(), up.addr.ip())],
            )?;
            let tls = client::tls(std::slice::from_ref(&up.ca_der))?;
            let ca = up.ca_pem.clone();
            (target, Some(up), upstream, tls, Some(ca))
        }
        Some((host, port, authority, path)) => {
            let addr = resolve(&host, port, &opts.resolve)?;
            let upstream = Upstream::new(opts.upstream_ca_file.as_deref(), &opts.resolve)?;
            let tls = tokio_rustls::TlsConnector::from(upstream.tls.clone());
            let ca = match &opts.upstream_ca_file {
                Some(p) => Some(
                    std::fs::read_to_string(p).map_err(|e| Error::io_at("cannot read", p, e))?,
                ),
                None => None,
            };
            let target = Target {
                host,
                port,
                addr,
                authority,
                path,
            };
            (target, None, upstream, tls, ca)
        }
    };
    let target = Arc::new(target);
    let proxy = BenchProxy::start(
        up_rt.handle(),
        workers.clone(),
        ProxyOptions {
            host: &target.host,
            port: target.port,
            header: header.as_str(),
            value: Secret::new(value.clone()),
            upstream,
            redact: opts.redact,
        },
    )?;
    let mitmdump = match &opts.mitmdump {
        Some(bin) => {
            progress.phase("starting mitmdump");
            Some(mitmproxy::MitmDump::start(
                bin,
                &header,
                &value,
                mitmproxy_upstream_ca.as_deref(),
            )?)
        }
        None => None,
    };

    let mut lanes = vec![
        Lane::new(
            PathKind::Direct,
            None,
            direct_tls.clone(),
            match &local {
                Some(up) => Check::Absent(up.checks.clone()),
                None => Check::Unchecked,
            },
        ),
        Lane::new(
            PathKind::BlindTunnel,
            Some(Hop {
                proxy: proxy.addr,
                target: target.addr.to_string(),
                auth: Some(proxy.auth.clone()),
            }),
            direct_tls,
            match &local {
                Some(up) => Check::Absent(up.checks.clone()),
                None => Check::Unchecked,
            },
        ),
        Lane::new(
            PathKind::Mitm,
            Some(Hop {
                proxy: proxy.addr,
                target: format!("{}:{}", target.host, target.port),
                auth: Some(proxy.auth.clone()),
            }),
            client::tls_pem(proxy.ca_pem.as_bytes())?,
            match &local {
                Some(up) => Check::Injected(up.checks.clone()),
                None => Check::ProxyCounter(proxy.shared.clone()),
            },
        ),
    ];
    if let Some(m) = &mitmdump {
        lanes.push(Lane::new(
            PathKind::Mitmproxy,
            Some(Hop {
                proxy: m.addr,
                target: target.addr.to_string(),
                auth: None,
            }),
            client::tls_pem(m.ca_pem.as_bytes())?,
            match &local {
                Some(up) => Check::Injected(up.checks.clone()),
                None => Check::Unchecked,
            },
        ));
    }

    progress.phase("calibrating");
    let echo_addr = echo(up_rt.handle())?;
    let (rtt50, rtt99) = client_rt.block_on(calibrate(echo_addr))?;

    progress
        .total
        .store((n * lanes.len()) as u64, Ordering::Relaxed);
    client_rt.block_on(measure(&mut lanes, &target, n, c, progress))?;

    let rows: Vec<Row> = {
        let mut rows = Vec::new();
        let mut direct = (0.0, 0.0);
        for l in &mut lanes {
            l.samples.sort();
            let (p50, p99) = (pct(&l.samples, 0.5), pct(&l.samples, 0.99));
            if l.kind == PathKind::Direct {
                direct = (p50, p99);
            }
            let count = l.samples.len() as u64;
            let mean = l.samples.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6
                / count.max(1) as f64;
            rows.push(Row {
                path: l.kind,
                requests: count,
                p50_us: p50,
                p99_us: p99,
                mean_us: mean,
                throughput_rps: count as f64 / l.busy.as_secs_f64().max(1e-9),
                added_p50_us: p50 - direct.0,
                added_p99_us: p99 - direct.1,
                injected: l.check.verified_by().map(|_| l.injected),
                injection_verified_by: l.check.verified_by(),
                non_2xx: l.non_2xx,
            });
        }
        rows
    };
    let row = |k: PathKind| rows.iter().find(|r| r.path == k);
    let (Some(tunnel), Some(mitm)) = (row(PathKind::BlindTunnel), row(PathKind::Mitm)) else {
        return Err(failed("a path is missing".into()));
    };
    let cost = MitmCost {
        p50_us: mitm.p50_us - tunnel.p50_us,
        p99_us: mitm.p99_us - tunnel.p99_us,
        throughput_ratio: mitm.throughput_rps / tunnel.throughput_rps.max(1e-9),
    };
    let versus = match (row(PathKind::Mitmproxy), &mitmdump) {
        (Some(m), Some(d)) => Some(Versus {
            mitmproxy_version: d.version.clone(),
            p50_ratio: mitm.p50_us / m.p50_us.max(1e-9),
            p99_ratio: mitm.p99_us / m.p99_us.max(1e-9),
            throughput_ratio: mitm.throughput_rps / m.throughput_rps.max(1e-9),
        }),
        _ => None,
    };
    let report = Report {
        target: opts
            .against
            .as_deref()
            .map_or_else(|| "local".into(), shown_url),
        requests: n as u64,
        concurrency: c as u64,
        header: header.as_str().to_string(),
        proxy_threads: workers.threads() as u64,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        calibration: Calibration {
            tcp_round_trip_p50_us: rtt50,
            tcp_round_trip_p99_us: rtt99,
        },
        mitm_over_blind_tunnel: cost,
        versus_mitmproxy: versus,
        rows,
    };
    drop(lanes);
    drop(mitmdump);
    drop(proxy);
    up_rt.shutdown_background();
    Ok(report)
}

impl Lane {
    fn new(
        kind: PathKind,
        hop: Option<Hop>,
        tls: tokio_rustls::TlsConnector,
        check: Check,
    ) -> Lane {
        Lane {
            kind,
            hop,
            tls,
            check,
            conns: Vec::new(),
            samples: Vec::new(),
            busy: Duration::ZERO,
            non_2xx: 0,
            injected: 0,
        }
    }
}

/// Opens the connections, warms them up, then measures `n` requests per
/// lane in interleaved rounds, checking the injection after each batch.
async fn measure(
    lanes: &mut [Lane],
    target: &Arc<Target>,
    n: usize,
    c: usize,
    progress: &Arc<Progress>,
) -> Result<()> {
    progress.phase("connecting");
    for l in lanes.iter_mut() {
        for _ in 0..c {
            let conn = client::connect(target.addr, l.hop.as_ref(), &target.host, &l.tls)
                .await
                .map_err(|e| failed(format!("{}: {e}", l.kind.label())))?;
            l.conns.push(conn);
        }
    }
    progress.phase("warming up");
    let warm = (n / 10).clamp(c, 2000);
    for l in lanes.iter_mut() {
        let before = l.check.mark();
        let (conns, _, bad, _) = batch(std::mem::take(&mut l.conns), warm, target, None).await?;
        l.conns = conns;
        l.non_2xx += bad;
        l.injected += l.check.verify(before, warm as u64, l.kind.label())?;
    }
    let rounds = (n / (c * 20)).clamp(1, 5);
    for r in 0..rounds {
        let per = n / rounds + usize::from(r < n % rounds);
        for l in lanes.iter_mut() {
            progress.phase(l.kind.label());
            let before = l.check.mark();
            let (conns, samples, bad, took) =
                batch(std::mem::take(&mut l.conns), per, target, Some(progress)).await?;
            l.conns = conns;
            l.samples.extend(samples);
            l.busy += took;
            l.non_2xx += bad;
            l.injected += l.check.verify(before, per as u64, l.kind.label())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn against_urls() {
        assert_eq!(
            parse_against("https://api.example.com/health?x=1").unwrap(),
            (
                "api.example.com".into(),
                443,
                "api.example.com".into(),
                "/health?x=1".into()
            )
        );
        assert_eq!(
            parse_against("https://Api.Mine.test:8443").unwrap(),
            (
                "api.mine.test".into(),
                8443,
                "Api.Mine.test:8443".into(),
                "/".into()
            )
        );
        for bad in [
            "http://api.example.com/",
            "https://127.0.0.1:8443/",
            "https://[::1]/",
            "https://user:pw@api.example.com/",
            "api.example.com",
        ] {
            assert!(parse_against(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn against_urls_are_shown_without_query_values_or_user_information() {
        assert_eq!(
            shown_url("https://api.example.com:8443/v1/models?key=sk-123&x=1&flag"),
            "https://api.example.com:8443/v1/models?key=…&x=…&…"
        );
        assert_eq!(
            shown_url("https://user:pw@api.example.com/"),
            "https://api.example.com/"
        );
        assert_eq!(
            shown_url("https://api.example.com"),
            "https://api.example.com/"
        );
        assert_eq!(shown_url("not a url at all"), "(not a URL)");
        let e = parse_against("http://api.example.com/?token=sk-9").unwrap_err();
        assert!(!e.to_string().contains("sk-9"), "{e}");
        let e = parse_against("https://user:pw@api.example.com/").unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(pct(&v, 0.5), 51.0);
        assert_eq!(pct(&v, 0.99), 99.0);
        assert_eq!(pct(&[], 0.5), 0.0);
    }
}
