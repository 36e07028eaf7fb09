//! Memory of the proxy, measured on the real daemon (its own process, so
//! its RSS is its own):
//! - at rest, then with 1,000 idle intercepted keep-alive tunnels (each
//!   TLS-terminated with a leaf of the system-wide CA, one request made with
//!   a credential injected, then left open);
//! - its growth while a 1 GiB body streams through the MITM with a
//!   credential injected (sampled every 20 ms). Response redaction is on
//!   (the default), so that body goes through the redactor (issue #13:
//!   matched chunk by chunk, only a bounded hold-back kept);
//! - the same download with the daemon restarted with `AUTHSOME_REDACT=off`
//!   (the body passed on unread), for comparison.
//!
//! Targets (performance.md, issue #13): ≤ 30 MiB RSS at 1,000 idle
//! tunnels and load; ≤ 10 MiB growth over a 1 GiB redacted download. Run
//! with `cargo bench --bench proxy_memory` (~20 s). Loopback only: the
//! provider host `api.acme.test` reaches the local upstream through
//! AUTHSOME_RESOLVE.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hudsucker::futures::stream;
use hyper::body::{Bytes, Frame};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

mod support;

use support::{CERTS, HOST};

const TUNNELS: usize = 1000;
const DOWNLOAD: usize = 1 << 30;

/// An HTTPS (HTTP/1.1) upstream: `/bytes/N` streams N bytes in 64 KiB
/// chunks; anything else answers a small JSON body.
fn upstream(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let acceptor = support::upstream_tls(&[b"http/1.1"]);
    let listener =
        rt.block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let n = req
                            .uri()
                            .path()
                            .strip_prefix("/bytes/")
                            .and_then(|n| n.parse::<usize>().ok());
                        let res = match n {
                            Some(n) => {
                                let chunks = stream::unfold(n, |left| async move {
                                    if left == 0 {
                                        return None;
                                    }
                                    let k = left.min(64 * 1024);
                                    Some((
                                        Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![
                                            b'x';
                                            k
                                        ]))),
                                        left - k,
                                    ))
                                });
                                hyper::Response::builder()
                                    .header("content-length", n.to_string())
                                    .body(StreamBody::new(chunks).boxed())
                                    .unwrap()
                            }
                            None => hyper::Response::new(
                                Full::new(Bytes::from_static(br#"{"ok":true}"#))
                                    .map_err(|never| match never {})
                                    .boxed(),
                            ),
                        };
                        Ok::<_, std::convert::Infallible>(res)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// `authsome ARGS` against the bench's home; panics unless it succeeds.
fn authsome(env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_authsome"));
    c.args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        // Dropped at the end of the statement: the child sees EOF.
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "authsome {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Resident set size of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A keep-alive HTTP/1.1 connection through the proxy's CONNECT to the
/// provider host.
async fn connect(
    proxy: SocketAddr,
    auth: &str,
    port: u16,
    tls: &tokio_rustls::TlsConnector,
) -> SendRequest<Empty<Bytes>> {
    let target = format!("{HOST}:{port}");
    let via = support::Connect {
        proxy,
        target: &target,
        auth,
    };
    support::connect(proxy, Some(via), tls).await
}

/// GET `path`; returns the body's length.
async fn get(send: &mut SendRequest<Empty<Bytes>>, port: u16, path: &str) -> usize {
    send.ready().await.unwrap();
    let req = hyper::Request::get(path)
        .header("host", format!("{HOST}:{port}"))
        .header("authorization", "Bearer authsome-managed")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len();
        }
    }
    n
}

fn main() {
    // 1,000 tunnels need ~2,000 descriptors here and in the daemon
    // (which inherits the limit).
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: nofile.maximum,
            maximum: nofile.maximum,
        },
    )
    .ok();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let up = upstream(&rt);
    let home = std::env::temp_dir().join(format!("authsome-bench-mem-{}", std::process::id()));
    let env: Vec<(&str, String)> = vec![
        ("AUTHSOME_HOME", home.display().to_string()),
        ("AUTHSOME_PORT", "0".into()),
        ("AUTHSOME_PROXY_PORT", "0".into()),
        ("AUTHSOME_KEYRING", "off".into()),
        ("AUTHSOME_RESOLVE", format!("{HOST}=127.0.0.1")),
        ("AUTHSOME_UPSTREAM_CA_FILE", format!("{CERTS}test-ca.pem")),
    ];
    authsome(&env, &["daemon", "start"], None);
    let provider = home.join("acme.json");
    std::fs::write(
        &provider,
        format!(
            r#"{{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["{HOST}:{}"],"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}}}}"#,
            up.port()
        ),
    )
    .unwrap();
    authsome(
        &env,
        &["provider", "register", provider.to_str().unwrap()],
        None,
    );
    authsome(
        &env,
        &["login", "acme", "--with-api-key"],
        Some("sk-bench-key"),
    );
    let (url, pid, tls) = daemon_proxy(&env, &home);
    let port = up.port();

    println!("# authsome proxy memory (the daemon's RSS, real binary, loopback)\n");
    println!("| measure | daemon RSS | target |");
    println!("|---|---|---|");
    // At rest, after one proxied request (leaf minted, pools warm).
    let mut first = rt.block_on(connect(url.addr, &url.auth, port, &tls));
    rt.block_on(get(&mut first, port, "/warm"));
    std::thread::sleep(Duration::from_millis(300));
    let rest = rss_kib(pid);
    println!(
        "| at rest, after one proxied request | {:.1} MiB | |",
        mib(rest)
    );

    // 1,000 idle intercepted tunnels, 50 opened at a time.
    let conns = rt.block_on(async {
        let mut all = Vec::new();
        for _ in 0..TUNNELS / 50 {
            let mut batch = Vec::new();
            for _ in 0..50 {
                let (tls, auth) = (tls.clone(), url.auth.clone());
                let addr = url.addr;
                batch.push(tokio::spawn(async move {
                    let mut c = connect(addr, &auth, port, &tls).await;
                    get(&mut c, port, "/idle").await;
                    c
                }));
            }
            for t in batch {
                all.push(t.await.unwrap());
            }
        }
        all
    });
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(pid);
    println!(
        "| {TUNNELS} idle intercepted tunnels | {:.1} MiB ({:+.1} MiB, {:.1} KiB each) | ≤ 30 MiB |",
        mib(idle),
        mib(idle - rest),
        (idle - rest) as f64 / TUNNELS as f64
    );

    // 1 GiB through the MITM, redacted, on one more connection.
    let (speed, grew, before) = download_gib(&rt, &url, &tls, port, pid);
    println!(
        "| 1 GiB download through the MITM, **redacted** (redaction on, the default; {speed:.0} MiB/s) | peak {:+.1} MiB over the {:.1} MiB before | ≤ +10 MiB ({}) |",
        mib(grew),
        mib(before),
        if grew <= 10 * 1024 { "PASS" } else { "MISS" }
    );
    drop(conns);
    drop(first);
    authsome(&env, &["daemon", "stop"], None);

    // The same download with the daemon restarted with AUTHSOME_REDACT=off
    // (same home: the provider and its key stay; a fresh daemon, so its
    // RSS has no idle tunnels in it).
    let mut env_off = env.clone();
    env_off.push(("AUTHSOME_REDACT", "off".into()));
    authsome(&env_off, &["daemon", "start"], None);
    let (url, pid, tls) = daemon_proxy(&env_off, &home);
    let mut first = rt.block_on(connect(url.addr, &url.auth, port, &tls));
    rt.block_on(get(&mut first, port, "/warm"));
    std::thread::sleep(Duration::from_millis(300));
    let (speed, grew, before) = download_gib(&rt, &url, &tls, port, pid);
    println!(
        "| same, daemon started with `AUTHSOME_REDACT=off` (not redacted; {speed:.0} MiB/s) | peak {:+.1} MiB over the {:.1} MiB before | |",
        mib(grew),
        mib(before)
    );
    drop(first);
    authsome(&env_off, &["daemon", "stop"], None);
    std::fs::remove_dir_all(&home).ok();
}

/// The system-wide listener of the running daemon: its URL, the daemon's
/// pid, client TLS trusting its CA.
fn daemon_proxy(
    env: &[(&str, String)],
    home: &std::path::Path,
) -> (ProxyUrl, u32, tokio_rustls::TlsConnector) {
    let vars: serde_json::Value =
        serde_json::from_str(&authsome(env, &["proxy", "env", "--json"], None)).unwrap();
    let url = url_parts(vars["HTTPS_PROXY"].as_str().unwrap());
    let bundle = PathBuf::from(vars["SSL_CERT_FILE"].as_str().unwrap());
    let daemon: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("daemon.json")).unwrap()).unwrap();
    let pid = daemon["pid"].as_u64().unwrap() as u32;
    let tls = support::client_tls(&std::fs::read(&bundle).unwrap());
    (url, pid, tls)
}

/// 1 GiB through the MITM on a new connection, the daemon's RSS sampled
/// every 20 ms meanwhile: (MiB/s, peak growth in KiB, RSS before in KiB).
fn download_gib(
    rt: &tokio::runtime::Runtime,
    url: &ProxyUrl,
    tls: &tokio_rustls::TlsConnector,
    port: u16,
    pid: u32,
) -> (f64, u64, u64) {
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let before = rss_kib(pid);
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    let n = rt.block_on(async {
        let mut c = connect(url.addr, &url.auth, port, tls).await;
        get(&mut c, port, &format!("/bytes/{DOWNLOAD}")).await
    });
    let took = t.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(n, DOWNLOAD);
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    (
        DOWNLOAD as f64 / 1048576.0 / took.as_secs_f64(),
        grew,
        before,
    )
}

struct ProxyUrl {
    addr: SocketAddr,
    /// base64 of `user:token`, for `Proxy-Authorization: Basic`.
    auth: String,
}

/// `http://authsome:TOKEN@127.0.0.1:PORT`.
fn url_parts(url: &str) -> ProxyUrl {
    let rest = url.strip_prefix("http://").unwrap();
    let (userinfo, hostport) = rest.rsplit_once('@').unwrap();
    ProxyUrl {
        addr: hostport.trim_end_matches('/').parse().unwrap(),
        auth: base64::engine::general_purpose::STANDARD.encode(userinfo),
    }
}
