//! End to end: what the proxy adds to a request, measured against a direct
//! request in the same run.
//!
//! One process, three runtimes on the same 2 cores: a local HTTPS upstream
//! (certs/upstream.pem), authsome's proxy engine (the same `proxy::serve` the
//! daemon runs, with a provider for the upstream and a cached API key) and a
//! keep-alive client. Prints a Markdown table:
//! - latency at low load (one request in flight, keep-alive): p50/p99 direct
//!   vs through the MITM with injection, and the difference;
//! - a new connection per request (TLS handshakes on both legs);
//! - throughput with 32 concurrent keep-alive clients, and the ratio;
//! - `authsome run -- true` against bare `true`, daemon already up;
//! - response redaction (issue #13), a second table: the MITM with
//!   injection through a listener with `redact: true` (the default, as in
//!   every row above) against one with `redact: false` (what
//!   `AUTHSOME_REDACT=off` sets), same workers and upstream, interleaved:
//!   keep-alive latency p50/p99 on a small JSON answer that echoes nothing
//!   (the per-request cost: pattern cache lookup, header scan, body
//!   wrapper), and the throughput of a 256 MiB download streamed in 64 KiB
//!   chunks (median of 5 each way), with the on/off ratio against the
//!   target (redaction loses at most 10%).
//!
//! Run with `cargo bench --bench proxy_overhead` (about a minute). Absolute
//! numbers drift on a shared machine; compare the columns of one run.
//! `BENCH_PROXY_THREADS` (default 1, like `AUTHSOME_PROXY_THREADS`),
//! `BENCH_UPSTREAM_THREADS` (1) and `BENCH_CLIENT_THREADS` (0 = current-thread)
//! set the threads; on a VM, `taskset -c 0` shows the cost without
//! cross-CPU wake-ups.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authsome::ca::{Ca, RUN_VALIDITY};
use authsome::credentials::ResolvedCredential;
use authsome::credentials::cache::CredentialSource;
use authsome::credentials::proxy_tables::ProxyTables;
use authsome::providers::{ProviderDef, parse_file};
use authsome::proxy::tls::LeafAuthority;
use authsome::proxy::upstream::Upstream;
use authsome::proxy::{Shared, Stats, Workers};
use authsome::routing::RouteTable;
use authsome::secret::Secret;
use base64::Engine;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hudsucker::futures::stream;
use hyper::body::{Bytes, Frame};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::{CERTS, HOST};

const TOKEN: &str = "bench-token";
/// The large download of the redaction rows, and how often each way.
const LARGE: usize = 256 << 20;
const LARGE_REPS: usize = 5;

struct Source {
    def: ProviderDef,
}

impl CredentialSource for Source {
    fn resolve(
        &self,
        provider: &str,
        _connection: Option<&str>,
    ) -> authsome::Result<ResolvedCredential> {
        Ok(ResolvedCredential {
            provider: provider.into(),
            connection: "default".into(),
            injection: self.def.injection().unwrap(),
            value: Secret::new(format!("Bearer sk-{}", "x".repeat(48))),
            expires_at: None,
            extra: Vec::new(),
            parts: Vec::new(),
            cookie_names: Vec::new(),
        })
    }
    fn routes(&self) -> authsome::Result<RouteTable> {
        Ok(RouteTable::build([&self.def]))
    }
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}

/// Connections the upstream accepted (pooling shows here).
static ACCEPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One chunk of a `/bytes/N` answer.
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// The upstream: HTTPS h1/h2, answers `ok` plus a ~100 B JSON body (which
/// echoes nothing), or N bytes of `x` streamed in 64 KiB chunks for
/// `/bytes/N`.
fn upstream(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let acceptor = support::upstream_tls(if std::env::var("BENCH_UPSTREAM_H1").is_ok() {
        &[b"http/1.1"]
    } else {
        &[b"h2", b"http/1.1"]
    });
    let listener = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_nodelay(true).unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s.listen(1024).unwrap()
    });
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            ACCEPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let n = req
                        .uri()
                        .path()
                        .strip_prefix("/bytes/")
                        .and_then(|n| n.parse::<usize>().ok());
                    let res = match n {
                        // N bytes of `x` in 64 KiB chunks (one static
                        // buffer: the upstream's cost stays out of the way).
                        Some(n) => {
                            let chunks = stream::unfold(n, |left| async move {
                                if left == 0 {
                                    return None;
                                }
                                let k = left.min(CHUNK.len());
                                Some((
                                    Ok::<_, std::convert::Infallible>(Frame::data(
                                        Bytes::from_static(&CHUNK[..k]),
                                    )),
                                    left - k,
                                ))
                            });
                            hyper::Response::builder()
                                .header("content-length", n.to_string())
                                .body(StreamBody::new(chunks).boxed())
                                .unwrap()
                        }
                        None => hyper::Response::new(
                            Full::new(Bytes::from_static(
                                br#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"message":{"content":"ok"}}]}"#,
                            ))
                            .boxed(),
                        ),
                    };
                    Ok::<_, std::convert::Infallible>(res)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

struct Proxy {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    workers: Arc<Workers>,
}

/// The proxy engine on its own worker threads, as the daemon runs it
/// (`BENCH_PROXY_THREADS`, default 1 like `AUTHSOME_PROXY_THREADS`), with
/// response redaction on (the default) or off (`AUTHSOME_REDACT=off`).
fn proxy(
    rt: &tokio::runtime::Runtime,
    up: SocketAddr,
    workers: Arc<Workers>,
    redact: bool,
) -> Proxy {
    let def = parse_file(
        "bench",
        &format!(
            r#"{{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["{HOST}:{}"],"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}}}}"#,
            up.port()
        ),
    )
    .unwrap();
    let tables = Arc::new(ProxyTables::new(Arc::new(Source { def })).unwrap());
    let ca = Arc::new(Ca::generate("bench run CA", &[HOST.into()], RUN_VALIDITY).unwrap());
    let ca_pem = ca.cert_pem().to_string();
    let authority = Arc::new(LeafAuthority::new(ca).unwrap());
    authority.premint([HOST]);
    let upstream = Upstream::new(
        Some(std::path::Path::new(&format!("{CERTS}test-ca.pem"))),
        &[(HOST.into(), "127.0.0.1".parse().unwrap())],
    )
    .unwrap();
    let pinned = tables.routes();
    let shared = Arc::new(Shared {
        tables,
        authority,
        upstream,
        token: Some(Secret::new(TOKEN.into())),
        pinned,
        connections: Default::default(),
        deny_unknown: false,
        local_ports: None,
        run_id: "bench".into(),
        placeholders: Default::default(),
        redact,
        log: authsome::request_log::RequestLog::discard(),
        redactors: Default::default(),
        stats: Stats::default(),
        ended: Default::default(),
    });
    let listener = authsome::proxy::bind_loopback(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let (w, sh) = (workers.clone(), shared.clone());
    rt.spawn(async move { w.serve(listener, sh, std::future::pending()).await });
    Proxy {
        addr,
        ca_pem,
        shared,
        workers,
    }
}

/// The keep-alive MITM leg measured from a child process, confined by
/// `authsome run`'s sandbox (its listener opened inside the child's network
/// namespace and served by the same workers) or not. Returns (p50, p99) µs.
fn child_leg(
    rt: &tokio::runtime::Runtime,
    px: &Proxy,
    up: SocketAddr,
    confined: bool,
) -> (f64, f64) {
    use authsome::sandbox::{Policy, Sandbox};
    let ca = std::env::temp_dir().join(format!("authsome-bench-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &px.ca_pem).unwrap();
    let port = px.addr.port();
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.env(
        "BENCH_CHILD_CLIENT",
        format!("{port} {} {}", up.port(), ca.display()),
    )
    .stdout(std::process::Stdio::piped());
    let out = rt.block_on(async {
        if confined {
            let mut sb = Sandbox::new(&Policy {
                hide: vec![],
                fresh: vec![],
                proxy_port: port,
                allow_localhost: vec![],
                landlock: true,
            })
            .unwrap();
            sb.install(&mut cmd);
            let child = cmd.spawn().unwrap();
            let h = sb.handoff().expect("the sandbox (run `authsome doctor`)");
            h.proxy.set_nonblocking(true).unwrap();
            let (w, sh) = (px.workers.clone(), px.shared.clone());
            tokio::spawn(async move { w.serve(h.proxy, sh, std::future::pending()).await });
            child.wait_with_output().await.unwrap()
        } else {
            cmd.output().await.unwrap()
        }
    });
    std::fs::remove_file(&ca).ok();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// The child of [`child_leg`]: keep-alive requests through the proxy at
/// 127.0.0.1:<port> (inside or outside a sandbox), p50 and p99 in µs on stdout.
fn child_client(spec: &str) {
    let mut it = spec.split_whitespace();
    let port: u16 = it.next().unwrap().parse().unwrap();
    let up_port: u16 = it.next().unwrap().parse().unwrap();
    let ca = std::fs::read_to_string(it.next().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let up: SocketAddr = ([127, 0, 0, 1], up_port).into();
    let px: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut v = rt.block_on(async {
        let mut c = connect(Via::Mitm(px), up, &support::client_tls(ca.as_bytes())).await;
        for _ in 0..2000 {
            get(&mut c, up).await;
        }
        let mut v = Vec::new();
        for _ in 0..10_000 {
            let t = Instant::now();
            get(&mut c, up).await;
            v.push(t.elapsed());
        }
        v
    });
    println!("{:.1} {:.1}", us(pct(&mut v, 0.5)), us(pct(&mut v, 0.99)));
}

/// How the client reaches the upstream.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// Straight to the upstream.
    Direct,
    /// A CONNECT to the upstream's address, which no provider claims: the
    /// proxy tunnels it blind (no TLS termination, no HTTP parsing). The
    /// floor of any in-path proxy on this machine.
    Tunnel(SocketAddr),
    /// A CONNECT to the provider host: TLS terminated, credential injected.
    Mitm(SocketAddr),
}

/// A keep-alive HTTP/1.1 connection.
async fn connect(
    via: Via,
    up: SocketAddr,
    tls: &tokio_rustls::TlsConnector,
) -> SendRequest<Empty<Bytes>> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("authsome:{TOKEN}"));
    let (proxy, target) = match via {
        Via::Direct => return support::connect(up, None, tls).await,
        Via::Tunnel(px) => (px, up.to_string()),
        Via::Mitm(px) => (px, format!("{HOST}:{}", up.port())),
    };
    let via = support::Connect {
        proxy,
        target: &target,
        auth: &auth,
    };
    support::connect(up, Some(via), tls).await
}

/// A TCP echo server: one byte back for each byte, for the round-trip
/// calibration (the cost of one hop between two threads on this machine).
fn echo(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener =
        rt.block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        while s.read_exact(&mut b).await.is_ok() {
            if s.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    addr
}

async fn get(send: &mut SendRequest<Empty<Bytes>>, up: SocketAddr) {
    send.ready().await.unwrap();
    let req = hyper::Request::get("/v1/chat/completions")
        .header("host", format!("{HOST}:{}", up.port()))
        .header("authorization", "Bearer authsome-managed")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
}

/// GET `/bytes/{n}`; returns the body's length.
async fn download(send: &mut SendRequest<Empty<Bytes>>, up: SocketAddr, n: usize) -> usize {
    send.ready().await.unwrap();
    let req = hyper::Request::get(format!("/bytes/{n}"))
        .header("host", format!("{HOST}:{}", up.port()))
        .header("authorization", "Bearer authsome-managed")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut got = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            got += data.len();
        }
    }
    got
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if let Ok(spec) = std::env::var("BENCH_CHILD_CLIENT") {
        return child_client(&spec);
    }
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful. Either way, run the whole measurement (bounded, ~40 s).
    let threads = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let up_rt = runtime(threads("BENCH_UPSTREAM_THREADS", 1));
    let workers = Arc::new(Workers::start(threads("BENCH_PROXY_THREADS", 1)).unwrap());
    // Only awaits the workers' serve future; the proxy runs on their threads.
    let control_rt = runtime(1);
    let client_rt = if threads("BENCH_CLIENT_THREADS", 0) == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        runtime(threads("BENCH_CLIENT_THREADS", 1))
    };
    let up = upstream(&up_rt);
    let px = proxy(&control_rt, up, workers.clone(), true);
    let upstream_ca = std::fs::read_to_string(format!("{CERTS}test-ca.pem")).unwrap();
    let direct_tls = support::client_tls(upstream_ca.as_bytes());
    let proxied_tls = support::client_tls(px.ca_pem.as_bytes());

    println!(
        "# authsome proxy overhead (loopback, 2 cores shared by upstream, proxy and client)\n"
    );
    let (tunnel, mitm) = (Via::Tunnel(px.addr), Via::Mitm(px.addr));
    let tls_for = |via: Via| {
        if via == mitm {
            proxied_tls.clone()
        } else {
            direct_tls.clone()
        }
    };

    // Calibration: a 1-byte TCP round trip between two threads. A request
    // through an in-path proxy makes two of these hops instead of one.
    let echo_addr = echo(&up_rt);
    let mut rtt = client_rt.block_on(async {
        let mut s = TcpStream::connect(echo_addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut v = Vec::new();
        let mut b = [0u8; 1];
        for i in 0..12_000 {
            let t = Instant::now();
            s.write_all(b"x").await.unwrap();
            s.read_exact(&mut b).await.unwrap();
            if i >= 2000 {
                v.push(t.elapsed());
            }
        }
        v
    });

    // Low load: one request in flight on a warm keep-alive connection,
    // the three paths interleaved in rounds so drift hits them alike.
    let [mut d, mut t, mut m] = client_rt.block_on(async {
        let mut conns = Vec::new();
        for via in [Via::Direct, tunnel, mitm] {
            conns.push(connect(via, up, &tls_for(via)).await);
        }
        for _ in 0..2000 {
            for c in conns.iter_mut() {
                get(c, up).await;
            }
        }
        let mut v: [Vec<Duration>; 3] = Default::default();
        for _ in 0..10 {
            for (c, v) in conns.iter_mut().zip(v.iter_mut()) {
                for _ in 0..1000 {
                    let t = Instant::now();
                    get(c, up).await;
                    v.push(t.elapsed());
                }
            }
        }
        v
    });
    // The upstream accepted three connections: the client's, the blind
    // tunnel's, and the proxy's one pooled connection for every request.
    assert_eq!(
        ACCEPTS.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "the proxy must reuse its pooled upstream connection"
    );
    println!("| measure | direct | via authsome | added |");
    println!("|---|---|---|---|");
    println!(
        "| TCP round trip between two threads (calibration), p50 | {:.1} µs | | |",
        us(pct(&mut rtt, 0.5))
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let (dq, tq, mq) = (us(pct(&mut d, q)), us(pct(&mut t, q)), us(pct(&mut m, q)));
        println!(
            "| keep-alive request, {name}, blind tunnel (floor) | {dq:.1} µs | {tq:.1} µs | {:+.1} µs |",
            tq - dq
        );
        println!(
            "| keep-alive request, {name}, **MITM + injection** | {dq:.1} µs | {mq:.1} µs | **{:+.1} µs** |",
            mq - dq
        );
    }

    // A new connection (TCP + TLS on each leg) for every request.
    let (mut d, mut p) = client_rt.block_on(async {
        let (mut d, mut p) = (Vec::new(), Vec::new());
        for i in 0..400 {
            let t = Instant::now();
            let mut c = connect(Via::Direct, up, &direct_tls).await;
            get(&mut c, up).await;
            if i >= 50 {
                d.push(t.elapsed());
            }
            let t = Instant::now();
            let mut c = connect(mitm, up, &proxied_tls).await;
            get(&mut c, up).await;
            if i >= 50 {
                p.push(t.elapsed());
            }
        }
        (d, p)
    });
    let (d50, p50) = (pct(&mut d, 0.5), pct(&mut p, 0.5));
    println!(
        "| new connection per request, p50 | {:.0} µs | {:.0} µs | {:.2}× |",
        us(d50),
        us(p50),
        us(p50) / us(d50)
    );

    // Throughput: 32 concurrent keep-alive clients for 3 s each way.
    let run = |via: Via| {
        let tls = tls_for(via);
        client_rt.block_on(async move {
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut tasks = Vec::new();
            for _ in 0..32 {
                let tls = tls.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = connect(via, up, &tls).await;
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        get(&mut c, up).await;
                        n += 1;
                    }
                    n
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            total as f64 / 3.0
        })
    };
    let direct_rps = run(Via::Direct);
    let tunnel_rps = run(tunnel);
    let mitm_rps = run(mitm);
    println!(
        "| throughput, 32 keep-alive clients, blind tunnel (floor) | {direct_rps:.0} req/s | {tunnel_rps:.0} req/s | {:.0}% of direct |",
        100.0 * tunnel_rps / direct_rps
    );
    println!(
        "| throughput, 32 keep-alive clients, **MITM + injection** | {direct_rps:.0} req/s | {mitm_rps:.0} req/s | **{:.0}% of direct** |",
        100.0 * mitm_rps / direct_rps
    );

    // A confined child against an unconfined one, same client code: what
    // the sandbox's network namespace costs per request (none expected: the
    // proxy accepts on the socket opened inside it, no extra hop).
    let mut rounds: Vec<((f64, f64), (f64, f64))> = (0..3)
        .map(|_| {
            (
                child_leg(&client_rt, &px, up, false),
                child_leg(&client_rt, &px, up, true),
            )
        })
        .collect();
    rounds.sort_by(|a, b| a.0.0.total_cmp(&b.0.0));
    let ((u50, u99), (c50, c99)) = rounds[1];
    for (name, u, c) in [("p50", u50, c50), ("p99", u99, c99)] {
        println!(
            "| keep-alive MITM request from a child process, {name}: unconfined → **sandboxed** | {u:.1} µs | {c:.1} µs | **{:+.1}%** |",
            100.0 * (c - u) / u
        );
    }

    // `authsome run -- true` with the daemon up, against bare `true`.
    let home = std::env::temp_dir().join(format!("authsome-bench-run-{}", std::process::id()));
    let bin = env!("CARGO_BIN_EXE_authsome");
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(args[0]);
        c.args(&args[1..])
            .env("AUTHSOME_HOME", &home)
            .env("AUTHSOME_PORT", "0")
            .env("AUTHSOME_KEYRING", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    assert!(cmd(&[bin, "daemon", "start"]).status().unwrap().success());
    let time = |args: &[&str]| {
        let mut v: Vec<Duration> = (0..40)
            .map(|_| {
                let t = Instant::now();
                assert!(cmd(args).status().unwrap().success());
                t.elapsed()
            })
            .collect();
        pct(&mut v, 0.5)
    };
    let _ = time(&[bin, "run", "--", "true"]);
    let bare = time(&["true"]);
    let unconfined = time(&[bin, "run", "--no-sandbox", "--", "true"]);
    let confined = time(&[bin, "run", "--sandbox", "require", "--", "true"]);
    cmd(&[bin, "daemon", "stop"]).status().ok();
    std::fs::remove_dir_all(&home).ok();

    // Response redaction (issue #13): the same MITM with injection, one
    // listener with redaction on (the default, the listener measured above)
    // and one with it off (`AUTHSOME_REDACT=off`), same workers, same
    // upstream, interleaved.
    let px_off = proxy(&control_rt, up, px.workers.clone(), false);
    let off_tls = support::client_tls(px_off.ca_pem.as_bytes());
    let (on_via, off_via) = (mitm, Via::Mitm(px_off.addr));
    let (mut lat_on, mut lat_off, mut mbs_on, mut mbs_off) = client_rt.block_on(async {
        let mut on = connect(on_via, up, &proxied_tls).await;
        let mut off = connect(off_via, up, &off_tls).await;
        // Small answers (nothing to replace): the per-request cost.
        for _ in 0..1000 {
            get(&mut on, up).await;
            get(&mut off, up).await;
        }
        let (mut lat_on, mut lat_off) = (Vec::new(), Vec::new());
        for round in 0..10 {
            for i in 0..2 {
                let (c, v) = if (round + i) % 2 == 0 {
                    (&mut on, &mut lat_on)
                } else {
                    (&mut off, &mut lat_off)
                };
                for _ in 0..500 {
                    let t = Instant::now();
                    get(c, up).await;
                    v.push(t.elapsed());
                }
            }
        }
        // Large bodies: 256 MiB streamed in 64 KiB chunks, each way in turn.
        assert_eq!(download(&mut on, up, 16 << 20).await, 16 << 20);
        assert_eq!(download(&mut off, up, 16 << 20).await, 16 << 20);
        let (mut mbs_on, mut mbs_off) = (Vec::new(), Vec::new());
        for round in 0..LARGE_REPS {
            for i in 0..2 {
                let (c, v) = if (round + i) % 2 == 0 {
                    (&mut on, &mut mbs_on)
                } else {
                    (&mut off, &mut mbs_off)
                };
                let t = Instant::now();
                assert_eq!(download(c, up, LARGE).await, LARGE);
                v.push(LARGE as f64 / 1e6 / t.elapsed().as_secs_f64());
            }
        }
        (lat_on, lat_off, mbs_on, mbs_off)
    });
    let (on_mbs, off_mbs) = (median(&mut mbs_on), median(&mut mbs_off));
    let ratio = on_mbs / off_mbs;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| `run --no-sandbox -- true`, median wall time | {:.1} ms | {:.1} ms | **{:+.1} ms** |",
        ms(bare),
        ms(unconfined),
        ms(unconfined) - ms(bare)
    );
    println!(
        "| `run -- true` (sandboxed) over `run --no-sandbox -- true`, median | {:.1} ms | {:.1} ms | **{:+.1} ms** |",
        ms(unconfined),
        ms(confined),
        ms(confined) - ms(unconfined)
    );

    println!(
        "\n## response redaction: the MITM + injection, `AUTHSOME_REDACT=off` against on (the default)\n"
    );
    println!("| measure | redaction off | redaction on | on vs off | target |");
    println!("|---|---|---|---|---|");
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let (off, on) = (us(pct(&mut lat_off, q)), us(pct(&mut lat_on, q)));
        println!(
            "| keep-alive request, small JSON answer (nothing to replace), {name} | {off:.1} µs | {on:.1} µs | **{:+.1} µs** | |",
            on - off
        );
    }
    println!(
        "| {} MiB download in 64 KiB chunks, median of {LARGE_REPS} | {off_mbs:.0} MB/s | {on_mbs:.0} MB/s | **{:.1}%** | ≥ 90% ({}) |",
        LARGE >> 20,
        100.0 * ratio,
        if ratio >= 0.9 { "PASS" } else { "MISS" }
    );
}
