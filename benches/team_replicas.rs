//! The team server's replicas (issue #16): two real daemons on one real
//! PostgreSQL behind HAProxy, against one replica, in the same run.
//!
//! What it starts, all on loopback and all stopped again (Drop guards, so
//! a panic stops them too): a PostgreSQL server (`tests/support/postgres.rs`,
//! Debian's binaries, `initdb` as nobody when root); two daemons,
//! `authsome daemon serve --store URL`, each in its own `AUTHSOME_HOME`,
//! given the same master key file; a local HTTPS upstream for the provider
//! host `api.acme.test` (reached through `AUTHSOME_RESOLVE`, its
//! certificate from the test CA, `AUTHSOME_UPSTREAM_CA_FILE`); and
//! `haproxy -db` in `mode tcp`, `balance roundrobin`. The daemons are the
//! release binary cargo builds for the bench (`CARGO_BIN_EXE_authsome`).
//!
//! A provider `acme` is registered and logged in with an API key through
//! replica A only; B learns of both through the store. The load goes to
//! the replicas' system-wide proxy listeners (`authsome proxy env`,
//! `AUTHSOME_PROXY_PORT`): CONNECT tunnels, TLS terminated with a leaf of
//! the system-wide CA, the key injected. Both replicas hold the same
//! system CA and proxy token (`ca/` and `proxy.token` of A copied into B's
//! home before B's listener starts, as an operator deploys them to every
//! replica), so a client behind the load balancer trusts one CA and
//! presents one token whichever replica it lands on.
//!
//! Paths, interleaved in rounds (each round in another order):
//! - one replica (A), its listener directly;
//! - one replica (A) behind HAProxy (the load balancer's hop alone);
//! - two replicas behind HAProxy (round robin over A and B).
//!
//! Each path: N keep-alive HTTPS clients (default 32), connections opened
//! before the clock starts. Every response is checked: the upstream saw
//! exactly one `Authorization` header, and it was the key logged in (the
//! upstream says so in a header; the client's own placeholder was
//! replaced). Prints throughput (median of the rounds), p50/p99 latency,
//! how busy the machine's CPUs were, the replicas' CPU per request, and
//! the ratios.
//!
//! Then the change propagation (LISTEN/NOTIFY): `logout` through A, timed
//! until B's proxy stops injecting; `login --force` with a new key through
//! A, timed until B's proxy injects the new key. Both measured from the
//! command's start (the command's own time is shown), p50/p99 against the
//! 1 s target.
//!
//! Needs `haproxy` (`apt-get install haproxy`) and PostgreSQL
//! (`apt-get install postgresql`); without either it fails and says so.
//! Run with `cargo bench --bench team_replicas` (~1 minute after the
//! build). `BENCH_CLIENTS` (32), `BENCH_ROUNDS` (3), `BENCH_SECS` (3 s per
//! path and round), `BENCH_NOTIFY_ROUNDS` (10), `BENCH_PROXY_THREADS`
//! (the replicas' `AUTHSOME_PROXY_THREADS`, default 1 as the daemon's),
//! `BENCH_CLIENT_THREADS` (0 = one current-thread runtime).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use authsome::bench::client::{Conn, Hop};
use base64::Engine;
use http_body_util::{Empty, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[path = "../tests/support/postgres.rs"]
mod postgres;
mod support;

use support::{CERTS, HOST};

/// Linux reports CPU time in /proc in USER_HZ ticks, 100 per second.
const USER_HZ: f64 = 100.0;

fn env_num(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

// === the upstream ===

/// The keys the upstream knows; each answer says which one it received.
type Keys = Arc<RwLock<Vec<String>>>;

/// An HTTPS (HTTP/1.1) upstream for `api.acme.test` (`certs/upstream.pem`).
/// Every answer carries `x-seen: COUNT INDEX`: how many `Authorization`
/// headers the request had, and which known key the only one was (`?` for
/// none of them, `-` when there was not exactly one).
fn upstream(rt: &tokio::runtime::Runtime, keys: Keys) -> SocketAddr {
    let acceptor = support::upstream_tls(&[b"http/1.1"]);
    let listener =
        rt.block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tcp.set_nodelay(true).ok();
            let (acceptor, keys) = (acceptor.clone(), keys.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let auths: Vec<&[u8]> = req
                            .headers()
                            .get_all(http::header::AUTHORIZATION)
                            .iter()
                            .map(|v| v.as_bytes())
                            .collect();
                        let which = match auths.as_slice() {
                            [one] => keys
                                .read()
                                .unwrap()
                                .iter()
                                .position(|k| k.as_bytes() == *one)
                                .map_or_else(|| "?".to_string(), |i| i.to_string()),
                            _ => "-".to_string(),
                        };
                        let res = hyper::Response::builder()
                            .header("x-seen", format!("{} {which}", auths.len()))
                            .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
                            .unwrap();
                        async move { Ok::<_, std::convert::Infallible>(res) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// What came back for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Answer {
    status: u16,
    /// `Authorization` headers the upstream saw (0 when it saw nothing).
    auths: usize,
    /// Which known key, when exactly one known key arrived.
    key: Option<usize>,
}

impl Answer {
    fn injected(self, key: usize) -> bool {
        self.status == 200 && self.auths == 1 && self.key == Some(key)
    }
}

/// GET on a keep-alive connection, with a placeholder `Authorization` the
/// proxy must replace.
async fn get(c: &mut Conn, authority: &str) -> Result<Answer, String> {
    c.ready().await.map_err(|e| e.to_string())?;
    let req = hyper::Request::get("/v1/models")
        .header(http::header::HOST, authority)
        .header(http::header::AUTHORIZATION, "Bearer placeholder")
        .body(Empty::new())
        .unwrap();
    let res = c.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let seen = res
        .headers()
        .get("x-seen")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0 -")
        .to_string();
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .map_err(|e| e.to_string())?;
    let (n, which) = seen.split_once(' ').unwrap();
    Ok(Answer {
        status,
        auths: n.parse().unwrap(),
        key: which.parse().ok(),
    })
}

// === processes ===

/// `authsome ARGS` with `env` (and none of this process's `AUTHSOME_*`).
fn authsome(env: &[(String, String)], args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_authsome"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AUTHSOME_")) {
        c.env_remove(k);
    }
    c.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Starts `authsome ARGS`, `stdin` written and closed.
fn spawn_with(env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Child {
    let mut c = authsome(env, args);
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child
}

/// Waits for `child`; its stdout, or a panic with its stderr.
fn success(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "authsome {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The system-wide proxy listener of a replica.
#[derive(Clone)]
struct Listener {
    addr: SocketAddr,
    /// `Basic base64(authsome:TOKEN)`.
    auth: String,
}

/// A daemon replica: `authsome daemon serve --store URL` in its own home,
/// stopped (then killed, if need be) on drop.
struct Replica {
    name: &'static str,
    home: PathBuf,
    env: Vec<(String, String)>,
    child: Child,
}

impl Replica {
    fn start(name: &'static str, root: &Path, store: &str, key_file: &Path) -> Replica {
        let home = root.join(name);
        let env: Vec<(String, String)> = [
            ("AUTHSOME_HOME", home.display().to_string()),
            ("AUTHSOME_PORT", "0".into()),
            ("AUTHSOME_PROXY_PORT", "0".into()),
            (
                "AUTHSOME_PROXY_THREADS",
                env_num("BENCH_PROXY_THREADS", 1).to_string(),
            ),
            ("AUTHSOME_KEYRING", "off".into()),
            ("AUTHSOME_DATABASE_URL", store.into()),
            ("AUTHSOME_MASTER_KEY_FILE", key_file.display().to_string()),
            ("AUTHSOME_RESOLVE", format!("{HOST}=127.0.0.1")),
            ("AUTHSOME_UPSTREAM_CA_FILE", format!("{CERTS}test-ca.pem")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut c = authsome(&env, &["daemon", "serve", "--store", store]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut r = Replica {
            name,
            home,
            env,
            child: c.spawn().unwrap(),
        };
        // Up when `daemon status` finds it (bounded: 30 s).
        for _ in 0..300 {
            if let Some(s) = r.child.try_wait().unwrap() {
                panic!(
                    "replica {name} exited ({s}); its log: {}",
                    std::fs::read_to_string(r.home.join("logs/authsome.log")).unwrap_or_default()
                );
            }
            if authsome(&r.env, &["daemon", "status"])
                .status()
                .unwrap()
                .success()
            {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("replica {name} did not come up within 30 s");
    }

    /// `authsome ARGS` against this replica; its stdout.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        success(spawn_with(&self.env, args, stdin), &args.join(" "))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts its system-wide proxy listener (`authsome proxy env`).
    fn listener(&self) -> Listener {
        let vars: serde_json::Value =
            serde_json::from_str(&self.run(&["proxy", "env", "--json"], None)).unwrap();
        let url = vars["HTTPS_PROXY"].as_str().unwrap();
        let (userinfo, hostport) = url
            .strip_prefix("http://")
            .and_then(|r| r.rsplit_once('@'))
            .unwrap();
        Listener {
            addr: hostport.trim_end_matches('/').parse().unwrap(),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(userinfo)
            ),
        }
    }

    /// Requests its system-wide listener injected a credential into.
    fn injected(&self) -> u64 {
        let s: serde_json::Value =
            serde_json::from_str(&self.run(&["proxy", "status", "--json"], None)).unwrap();
        s["system"]["stats"]["injected"].as_u64().unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = authsome(&self.env, &["daemon", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("replica {} did not stop within 5 s: killed", self.name);
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `haproxy -db` (foreground), killed on drop.
struct HaProxy {
    child: Child,
    version: String,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn haproxy_bin() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "HAProxy is not installed: `apt-get install haproxy` (this bench puts the replicas behind it)"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy with two frontends: `one` over replica A alone, `two` round
/// robin over A and B. Returns it and the two frontends' addresses.
fn haproxy(dir: &Path, a: SocketAddr, b: SocketAddr) -> (HaProxy, SocketAddr, SocketAddr) {
    let bin = haproxy_bin();
    let out = Command::new(&bin).arg("-v").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .split(" - ")
        .next()
        .unwrap_or_default()
        .to_string();
    let (one, two): (SocketAddr, SocketAddr) = (
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
    );
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend one\n  bind {one}\n  default_backend one\n\
             frontend two\n  bind {two}\n  default_backend two\n\
             backend one\n  balance roundrobin\n  server a {a}\n\
             backend two\n  balance roundrobin\n  server a {a}\n  server b {b}\n"
        ),
    )
    .unwrap();
    let check = Command::new(&bin)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut h = HaProxy {
        child: Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        version,
    };
    for _ in 0..200 {
        if let Some(s) = h.child.try_wait().unwrap() {
            panic!("haproxy exited ({s})");
        }
        if std::net::TcpStream::connect(one).is_ok() && std::net::TcpStream::connect(two).is_ok() {
            return (h, one, two);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("haproxy did not listen within 10 s");
}

// === measuring ===

/// Busy and total jiffies of the whole machine (/proc/stat).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    (total - idle, total)
}

/// CPU seconds process `pid` has used (user + system, all threads).
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 14 and 15 of stat (utime, stime); `rest` starts at field 3
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / USER_HZ
}

/// One path's measurements over its rounds.
#[derive(Default)]
struct PathStats {
    rps: Vec<f64>,
    lat: Vec<Duration>,
    requests: u64,
    busy: Vec<f64>,
    replica_cpu: f64,
    on_b: u64,
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn open(via: &Listener, up: u16, tls: &tokio_rustls::TlsConnector) -> Result<Conn, String> {
    let hop = Hop {
        proxy: via.addr,
        target: format!("{HOST}:{up}"),
        auth: Some(via.auth.clone()),
    };
    authsome::bench::client::connect(via.addr, Some(&hop), HOST, tls)
        .await
        .map_err(|e| e.to_string())
}

/// `clients` keep-alive connections through `via`, opened first, then
/// requests for `secs`, each answer checked (key `key`, exactly once).
/// Returns (requests, seconds, latencies).
fn load(
    rt: &tokio::runtime::Runtime,
    via: &Listener,
    up: u16,
    tls: &tokio_rustls::TlsConnector,
    clients: usize,
    secs: f64,
    key: usize,
) -> (u64, f64, Vec<Duration>) {
    rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(open(via, up, tls).await.unwrap());
        }
        let authority: Arc<str> = format!("{HOST}:{up}").into();
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                let authority = authority.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let a = get(&mut c, &authority).await.unwrap();
                        lat.push(t.elapsed());
                        assert!(
                            a.injected(key),
                            "the upstream did not get exactly one credential, key {key}: {a:?}"
                        );
                    }
                    lat
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        (lat.len() as u64, start.elapsed().as_secs_f64(), lat)
    })
}

/// How B's proxy answers now: `Some(key)` when the upstream got exactly
/// that key once, `None` when it got no credential or the proxy refused;
/// `Err` when the connection failed (it is opened again next time).
async fn probe(
    conn: &mut Option<Conn>,
    via: &Listener,
    up: u16,
    tls: &tokio_rustls::TlsConnector,
) -> Result<Option<usize>, String> {
    if conn.is_none() {
        *conn = Some(open(via, up, tls).await?);
    }
    let c = conn.as_mut().unwrap();
    match get(c, &format!("{HOST}:{up}")).await {
        Ok(a) if a.status == 200 && a.auths == 1 && a.key.is_some() => Ok(a.key),
        Ok(a) => {
            assert!(
                a.auths == 0,
                "a credential that is not the only one or not known: {a:?}"
            );
            Ok(None)
        }
        Err(e) => {
            *conn = None;
            Err(e)
        }
    }
}

/// Runs `authsome ARGS` on A and probes B until `done` holds of B's
/// answer (bounded: 5 s). Returns (until B served the change, until the
/// command exited), both from the command's start.
#[allow(clippy::too_many_arguments)]
fn propagation(
    rt: &tokio::runtime::Runtime,
    a: &Replica,
    args: &[&str],
    stdin: Option<&str>,
    b: &Listener,
    up: u16,
    tls: &tokio_rustls::TlsConnector,
    done: impl Fn(Option<usize>) -> bool,
) -> (Duration, Duration) {
    let mut conn = rt.block_on(async { open(b, up, tls).await.ok() });
    let t0 = Instant::now();
    let mut child = spawn_with(&a.env, args, stdin);
    let (mut seen, mut exited) = (None, None);
    rt.block_on(async {
        let deadline = t0 + Duration::from_secs(5);
        while Instant::now() < deadline && (seen.is_none() || exited.is_none()) {
            if exited.is_none() && child.try_wait().unwrap().is_some() {
                exited = Some(t0.elapsed());
            }
            if seen.is_none()
                && let Ok(now) = probe(&mut conn, b, up, tls).await
                && done(now)
            {
                seen = Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "authsome {args:?} on A: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen =
        seen.unwrap_or_else(|| panic!("B's proxy did not follow `{args:?}` on A within 5 s"));
    (seen, exited.unwrap_or_else(|| t0.elapsed()))
}

fn main() {
    let clients = env_num("BENCH_CLIENTS", 32);
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let secs = env_num("BENCH_SECS", 3).max(1) as f64;
    let notify_rounds = env_num("BENCH_NOTIFY_ROUNDS", 10).max(1);
    // HAProxy first: a missing one fails before anything starts.
    let _ = haproxy_bin();

    let tmp = tempfile::Builder::new()
        .prefix("authsome-bench-team-")
        .tempdir()
        .unwrap();
    let pg = postgres::Postgres::start().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: `apt-get install postgresql` (the replicas' store)")
    });
    let pg_version = pg.psql("SHOW server_version").trim().to_string();

    let up_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_num("BENCH_UPSTREAM_THREADS", 1))
        .enable_all()
        .build()
        .unwrap();
    let client_rt = match env_num("BENCH_CLIENT_THREADS", 0) {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()
            .unwrap(),
    };
    let new_key = || {
        let mut b = [0u8; 24];
        getrandom::fill(&mut b).unwrap();
        format!(
            "sk-bench-{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )
    };
    let keys: Keys = Arc::new(RwLock::new(Vec::new()));
    let up = upstream(&up_rt, keys.clone()).port();

    // One master key file for both replicas (base64 of 32 random bytes).
    let key_file = tmp.path().join("team.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).unwrap();
        std::fs::write(
            &key_file,
            base64::engine::general_purpose::STANDARD.encode(k) + "\n",
        )
        .unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let a = Replica::start("a", tmp.path(), &pg.url(), &key_file);
    // The provider and its key, through A only.
    let def = tmp.path().join("acme.json");
    std::fs::write(
        &def,
        format!(
            r#"{{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["{HOST}:{up}"],"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}}}}"#
        ),
    )
    .unwrap();
    a.run(&["provider", "register", def.to_str().unwrap()], None);
    let key0 = new_key();
    keys.write().unwrap().push(format!("Bearer {key0}"));
    a.run(&["login", "acme", "--with-api-key"], Some(&key0));
    let via_a = a.listener();

    // B: its own home; the system CA and proxy token of A.
    let b = Replica::start("b", tmp.path(), &pg.url(), &key_file);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(b.home.join("ca"))
            .unwrap();
        for f in ["ca/ca.key", "ca/ca.pem", "ca/ca.json", "proxy.token"] {
            std::fs::copy(a.home.join(f), b.home.join(f)).unwrap();
        }
    }
    let via_b = b.listener();
    assert_eq!(via_a.auth, via_b.auth, "both replicas use one proxy token");
    let tls = support::client_tls(&std::fs::read(a.home.join("ca/ca.pem")).unwrap());

    let (lb, lb_one, lb_two) = haproxy(tmp.path(), via_a.addr, via_b.addr);
    let lb_one = Listener {
        addr: lb_one,
        auth: via_a.auth.clone(),
    };
    let lb_two = Listener {
        addr: lb_two,
        auth: via_a.auth.clone(),
    };

    // B serves the key logged in through A (it learnt of provider and
    // login from the store), and every path works: warm-up.
    let mut ok = false;
    for _ in 0..50 {
        let now = client_rt.block_on(async {
            let mut c = None;
            probe(&mut c, &via_b, up, &tls).await
        });
        if now == Ok(Some(0)) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "B never injected the key logged in through A");
    let paths: [(&str, &Listener); 3] = [
        ("1 replica (A), its listener directly", &via_a),
        ("1 replica (A) behind HAProxy", &lb_one),
        ("**2 replicas behind HAProxy**", &lb_two),
    ];
    for (_, via) in paths {
        load(&client_rt, via, up, &tls, clients, 0.5, 0);
    }

    let mut stats: [PathStats; 3] = Default::default();
    for round in 0..rounds {
        for i in 0..3 {
            let p = (round + i) % 3;
            let (b_before, cpu_before) =
                (b.injected(), process_cpu(a.pid()) + process_cpu(b.pid()));
            let m0 = machine_cpu();
            let (n, took, lat) = load(&client_rt, paths[p].1, up, &tls, clients, secs, 0);
            let m1 = machine_cpu();
            let cpu = process_cpu(a.pid()) + process_cpu(b.pid()) - cpu_before;
            let s = &mut stats[p];
            s.rps.push(n as f64 / took);
            s.requests += n;
            s.lat.extend(lat);
            s.busy
                .push((m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64);
            s.replica_cpu += cpu;
            s.on_b += b.injected() - b_before;
        }
    }
    assert_eq!(stats[0].on_b + stats[1].on_b, 0, "only A served those");
    assert!(
        stats[2].on_b > 0 && stats[2].on_b < stats[2].requests,
        "HAProxy did not spread the load over both replicas"
    );

    // Change propagation: logout and a new key through A, seen by B.
    let (mut gone, mut gone_cmd, mut fresh, mut fresh_cmd) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..notify_rounds {
        let (seen, cmd) = propagation(
            &client_rt,
            &a,
            &["logout", "acme"],
            None,
            &via_b,
            up,
            &tls,
            |now| now.is_none(),
        );
        gone.push(seen);
        gone_cmd.push(cmd);
        let key = new_key();
        let index = {
            let mut k = keys.write().unwrap();
            k.push(format!("Bearer {key}"));
            k.len() - 1
        };
        let (seen, cmd) = propagation(
            &client_rt,
            &a,
            &["login", "acme", "--with-api-key", "--force"],
            Some(&key),
            &via_b,
            up,
            &tls,
            |now| now == Some(index),
        );
        fresh.push(seen);
        fresh_cmd.push(cmd);
    }

    // The report.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# authsome team server: replicas on one PostgreSQL behind HAProxy (loopback, release build)\n"
    );
    println!(
        "machine: {cpus} CPUs shared by PostgreSQL {pg_version}, both replicas (AUTHSOME_PROXY_THREADS={}), {} (mode tcp, balance roundrobin), the upstream and the clients",
        env_num("BENCH_PROXY_THREADS", 1),
        lb.version
    );
    println!(
        "load: {clients} keep-alive HTTPS clients through the system-wide proxy (CONNECT, MITM, API key injected); {rounds} rounds × {secs:.0} s per path, interleaved\n"
    );
    println!(
        "| path | throughput (median of rounds) | p50 | p99 | machine CPU busy | replicas' CPU per request | served by B |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rps = [0.0; 3];
    for (i, s) in stats.iter_mut().enumerate() {
        rps[i] = median(&s.rps);
        let (p50, p99) = (pct(&mut s.lat, 0.5), pct(&mut s.lat, 0.99));
        println!(
            "| {} | {:.0} req/s ({:.0}–{:.0}) | {:.2} ms | {:.2} ms | {:.0}% | {:.0} µs | {:.0}% |",
            paths[i].0,
            rps[i],
            s.rps.iter().copied().fold(f64::INFINITY, f64::min),
            s.rps.iter().copied().fold(0.0, f64::max),
            ms(p50),
            ms(p99),
            100.0 * median(&s.busy),
            1e6 * s.replica_cpu / s.requests as f64,
            100.0 * s.on_b as f64 / s.requests as f64
        );
    }
    let total: u64 = stats.iter().map(|s| s.requests).sum();
    println!(
        "\n**2 replicas / 1 replica: {:.2}×** the throughput (against 1 replica behind the same HAProxy: {:.2}×).",
        rps[2] / rps[0],
        rps[2] / rps[1]
    );
    println!(
        "Every one of the {total} measured requests reached the upstream with exactly one `Authorization` header, the key logged in through A (the client's placeholder replaced)."
    );
    println!(
        "On a {cpus}-vCPU machine where both replicas, PostgreSQL, HAProxy, the clients and the upstream share the same cores, a ratio near 1 is expected: the machine is the bottleneck (see how busy its CPUs were; that column counts every process on the machine, anything else running included), not the design. A second replica adds throughput when it brings cores of its own.\n"
    );

    println!(
        "## change propagation (LISTEN/NOTIFY): a change through A, until B's proxy serves it\n"
    );
    println!(
        "{notify_rounds} rounds; times from the start of the command on A (whose own time, process start to exit, is shown); B's listener probed every ~2 ms\n"
    );
    println!(
        "| change through A | B follows, p50 | B follows, p99 | the command on A, p50 | target |"
    );
    println!("|---|---|---|---|---|");
    for (name, seen, cmd) in [
        (
            "`logout acme` → B stops injecting",
            &mut gone,
            &mut gone_cmd,
        ),
        (
            "`login acme --with-api-key --force` (new key) → B injects the new key",
            &mut fresh,
            &mut fresh_cmd,
        ),
    ] {
        let p99 = pct(seen, 0.99);
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | ≤ 1 s ({}) |",
            ms(pct(seen, 0.5)),
            ms(p99),
            ms(pct(cmd, 0.5)),
            if p99 <= Duration::from_secs(1) {
                "PASS"
            } else {
                "MISS"
            }
        );
    }
    drop(lb);
    drop(b);
    drop(a);
    drop(pg);
}
