//! `authsome doctor --clients`: proves that the HTTP clients installed on
//! this machine work through `authsome run`.
//!
//! Everything the check needs is private to it and goes away with it: a
//! temporary directory (mode 0700) holding a throwaway `AUTHSOME_HOME`
//! whose own daemon (a child of this process, ended with it) knows one
//! provider, `doctor-check`, on [`CHECK_HOST`], logged in with a random
//! test credential; a throwaway CA that only that daemon trusts; and an
//! HTTPS endpoint on `127.0.0.1` (in this process) that records what each
//! client's request carried. The user's home, vault, keyring and daemon are
//! never touched.
//!
//! Each client makes one request to `https://CHECK_HOST:PORT/doctor/<client>`
//! under a real `authsome run` (same environment, same sandbox as an agent
//! gets). [`CHECK_HOST`] resolves only through the proxy's resolver
//! override: a client that bypasses the proxy cannot resolve it (it is
//! under `.invalid`, which no DNS answers), so nothing leaves loopback.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::secret::Secret;

/// The check's host name: under `.invalid` (RFC 6761), so only the proxy's
/// resolver override (`127.0.0.1`) makes it reachable.
pub const CHECK_HOST: &str = "doctor-check.authsome.invalid";

/// The check's provider in the private home.
const PROVIDER: &str = "doctor-check";

/// How long one client may take (Go compiles first: longer).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const GO_TIMEOUT: Duration = Duration::from_secs(180);

/// The outcome of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    /// Through the proxy, trusting the run's CA, credential added.
    Ok,
    /// Does not work, for a documented reason of its version (Node's
    /// built-in `fetch` before Node 24).
    Warn,
    /// Does not work here.
    Fail,
    /// Not installed (not a failure).
    NotFound,
}

/// Why a client did not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// It went direct: it could not resolve the check host, which only the
    /// proxy can.
    BypassedProxy,
    /// Its TLS handshake with the proxy failed: it does not trust the run's CA.
    CaNotTrusted,
    /// The endpoint saw its request, without the test credential.
    NoCredential,
    /// It did not finish in time.
    Timeout,
    /// Anything else (the detail says what it printed).
    Error,
}

/// One client's result.
#[derive(Debug, Clone, Serialize)]
pub struct ClientResult {
    /// `curl`, `python requests`, `node fetch`…
    pub client: &'static str,
    pub status: ClientStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// It used the proxy (`None`: unknown, or not run).
    pub proxy: Option<bool>,
    /// It trusted the run's CA (`None`: unknown, or not run).
    pub ca: Option<bool>,
    /// The endpoint saw the test credential (`None`: not run).
    pub credential: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A client to try: how to find it and how to make one request with it.
struct Probe {
    name: &'static str,
    /// Path segment after `/doctor/`.
    key: &'static str,
    /// The program looked up on PATH.
    program: &'static str,
    /// Arguments for a version line (`None`: the probe prints `version X`).
    version_args: Option<&'static [&'static str]>,
}

const PROBES: &[Probe] = &[
    Probe {
        name: "curl",
        key: "curl",
        program: "curl",
        version_args: Some(&["--version"]),
    },
    Probe {
        name: "python requests",
        key: "python-requests",
        program: "python3",
        version_args: None,
    },
    Probe {
        name: "python httpx",
        key: "python-httpx",
        program: "python3",
        version_args: None,
    },
    Probe {
        name: "python urllib",
        key: "python-urllib",
        program: "python3",
        version_args: None,
    },
    Probe {
        name: "node fetch",
        key: "node-fetch",
        program: "node",
        version_args: None,
    },
    Probe {
        name: "node undici",
        key: "node-undici",
        program: "node",
        version_args: None,
    },
    Probe {
        name: "git",
        key: "git",
        program: "git",
        version_args: Some(&["--version"]),
    },
    Probe {
        name: "go net/http",
        key: "go",
        program: "go",
        version_args: Some(&["version"]),
    },
];

/// One request with Python's `requests`, `httpx` or `urllib`, trust and
/// proxy from the environment only. Prints `missing` (exit 3) when the
/// library is not importable, else `version X` then `status N`.
const PYTHON: &str = r#"
import sys
lib, url = sys.argv[1], sys.argv[2]
try:
    if lib == "requests":
        import requests as m
    elif lib == "httpx":
        import httpx as m
    else:
        import urllib.request as m
        import urllib.error
except ImportError:
    print("missing")
    sys.exit(3)
print("version", "python " + sys.version.split()[0] if lib == "urllib" else m.__version__)
sys.stdout.flush()
try:
    if lib == "requests":
        status = m.get(url, timeout=20).status_code
    elif lib == "httpx":
        with m.Client(timeout=20) as c:
            status = c.get(url).status_code
    else:
        try:
            with m.urlopen(url, timeout=20) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print("status", status)
"#;

/// One request with Node's built-in `fetch`, or undici's `fetch` through
/// `EnvHttpProxyAgent` (the way to honour HTTPS_PROXY before Node 24).
const NODE: &str = r#"
const [kind, url] = process.argv.slice(1);
(async () => {
  let f = globalThis.fetch, opts = {};
  if (kind === "undici") {
    let u;
    try { u = require("undici"); } catch { console.log("missing"); process.exit(3); }
    let v = "?";
    try { v = require("undici/package.json").version; } catch {}
    console.log("version " + v + " on node " + process.versions.node);
    f = u.fetch;
    opts = { dispatcher: new u.EnvHttpProxyAgent() };
  } else {
    if (typeof f !== "function") { console.log("missing"); process.exit(3); }
    console.log("version node " + process.versions.node);
  }
  try {
    const r = await f(url, opts);
    await r.text();
    console.log("status " + r.status);
  } catch (e) {
    const c = e.cause || e;
    console.error(((c.code ? c.code + ": " : "") + (c.message || e.message)).replace(/\s+/g, " "));
    process.exit(1);
  }
})();
"#;

/// One request with Go's `net/http` default client (proxy from the
/// environment, roots from SSL_CERT_FILE).
const GO: &str = r#"package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	c := &http.Client{Timeout: 20 * time.Second}
	r, err := c.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	fmt.Println("status", r.StatusCode)
}
"#;

/// Runs every probe whose program is on PATH; `progress` is called before
/// (`None`) and after (`Some`) each.
pub fn check_clients(
    mut progress: impl FnMut(&'static str, Option<&ClientResult>),
) -> anyhow::Result<Vec<ClientResult>> {
    if std::env::var_os(crate::config::ENV_RUN).is_some_and(|v| !v.is_empty()) {
        return Err(crate::Error::invalid(
            "`doctor --clients` cannot run inside `authsome run`",
            Some("run it from a shell of your own".into()),
        )
        .into());
    }
    let exe = std::env::current_exe().context("cannot find the authsome executable")?;
    let scratch = Scratch::new()?;
    let ca = crate::ca::Ca::generate(
        "authsome doctor check (throwaway)",
        &[CHECK_HOST.to_string()],
        time::Duration::hours(1),
    )?;
    let leaf = ca.mint(CHECK_HOST)?;
    let ca_file = scratch.0.join("upstream-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem())
        .with_context(|| format!("cannot write {}", ca_file.display()))?;
    let endpoint = Endpoint::start(leaf)?;
    let home = scratch.0.join("home");
    let env = Env::new(&home, &ca_file);
    let daemon = PrivateDaemon::start(&exe, &env, &home, &scratch.0)?;
    let provider = scratch.0.join("doctor-check.json");
    std::fs::write(
        &provider,
        serde_json::json!({
            "name": PROVIDER,
            "display_name": "authsome doctor check",
            "auth_type": "api_key",
            "flow": "api_key",
            "api_url": [format!("{CHECK_HOST}:{}", endpoint.port)],
            "api_key": {"header_name": "Authorization", "header_prefix": "Bearer"},
        })
        .to_string(),
    )
    .with_context(|| format!("cannot write {}", provider.display()))?;
    env.authsome(
        &exe,
        &["provider", "register", &provider.to_string_lossy()],
        None,
    )?;
    let credential = {
        let mut b = [0u8; 16];
        crate::secret::fill_random(&mut b)?;
        Secret::new(format!("authsome-doctor-{}", super::hex(&b)))
    };
    env.authsome(
        &exe,
        &["login", PROVIDER, "--with-api-key"],
        Some(credential.expose()),
    )?;
    *endpoint.expected.lock().unwrap_or_else(|p| p.into_inner()) =
        format!("Bearer {}", credential.expose());
    let go_dir = scratch.0.join("go");
    let mut out = Vec::new();
    for p in PROBES {
        progress(p.name, None);
        let r = run_probe(p, &exe, &env, &endpoint, &go_dir);
        progress(p.name, Some(&r));
        out.push(r);
    }
    drop(daemon);
    drop(endpoint);
    drop(scratch);
    Ok(out)
}

/// The private temporary directory; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let mut b = [0u8; 8];
        crate::secret::fill_random(&mut b)?;
        let dir = std::env::temp_dir().join(format!("authsome-doctor-{}", super::hex(&b)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// The environment of every process the check starts: the user's, minus
/// every `AUTHSOME_*` setting but the sandbox's, plus the private home's.
struct Env {
    set: Vec<(String, String)>,
    remove: Vec<String>,
    /// Where every process starts: the private directory, so no client
    /// imports modules from (or writes into) the user's current directory.
    cwd: std::path::PathBuf,
}

impl Env {
    fn new(home: &Path, ca_file: &Path) -> Env {
        const KEEP: &[&str] = &[
            crate::config::ENV_SANDBOX,
            crate::sandbox::ENV_PRETEND_UNAVAILABLE,
        ];
        let cwd = home.parent().unwrap_or(home).to_path_buf();
        let remove = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("AUTHSOME_") && !KEEP.contains(&k.as_str()))
            .collect();
        let set = [
            (crate::config::ENV_HOME, home.to_string_lossy().into_owned()),
            (crate::config::ENV_PORT, "0".into()),
            (crate::config::ENV_PROXY_PORT, "0".into()),
            (crate::config::ENV_KEYRING, "off".into()),
            (
                crate::config::ENV_RESOLVE,
                format!("{CHECK_HOST}=127.0.0.1"),
            ),
            (
                crate::config::ENV_UPSTREAM_CA_FILE,
                ca_file.to_string_lossy().into_owned(),
            ),
            (crate::config::ENV_NO_COLOR, "1".into()),
            // git never asks for a password on the terminal.
            ("GIT_TERMINAL_PROMPT", "0".into()),
            // Go never fetches a toolchain or a module.
            ("GOTOOLCHAIN", "local".into()),
            ("GOPROXY", "off".into()),
            // `go run FILE` stands alone: no workspace or flags of the
            // user's (a `-mod=vendor` in GOFLAGS would fail it).
            ("GOWORK", "off".into()),
            ("GOFLAGS", String::new()),
            // Go's caches in the private directory, not the user's home.
            (
                "GOCACHE",
                cwd.join("go-cache").to_string_lossy().into_owned(),
            ),
            ("GOPATH", cwd.join("go").to_string_lossy().into_owned()),
            // Go (1.23+) writes telemetry counters, and tools their
            // settings, under the config directory: the private one.
            (
                "XDG_CONFIG_HOME",
                cwd.join("config").to_string_lossy().into_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Env { set, remove, cwd }
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.cwd);
        for k in &self.remove {
            c.env_remove(k);
        }
        c.envs(self.set.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `authsome ARGS` in the private home; an error with its stderr if it fails.
    fn authsome(&self, exe: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
        let mut c = self.command(exe);
        c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        if let (Some(s), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(s.as_bytes()).ok();
        }
        let o = child.wait_with_output()?;
        if !o.status.success() {
            anyhow::bail!(
                "preparing the check (`authsome {}` in its private home) failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The private home's daemon: this process's child, ended on drop (and by
/// the kernel if this process dies first).
struct PrivateDaemon(std::process::Child);

impl PrivateDaemon {
    fn start(exe: &Path, env: &Env, home: &Path, scratch: &Path) -> anyhow::Result<PrivateDaemon> {
        crate::home::Home::new(home).ensure()?;
        let log = scratch.join("daemon.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut c = env.command(exe);
        c.args(["daemon", "serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        crate::sandbox::end_with_parent(&mut c);
        let child = c
            .spawn()
            .with_context(|| format!("cannot start {} daemon serve", exe.display()))?;
        let mut d = PrivateDaemon(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = d.0.try_wait() {
                anyhow::bail!(
                    "the check's private daemon exited ({status}): {}",
                    std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .lines()
                        .last()
                        .unwrap_or("")
                );
            }
            if let Some(f) = super::read_daemon_file(home)
                && f.pid == d.0.id()
                && std::net::TcpStream::connect(("127.0.0.1", f.port)).is_ok()
            {
                return Ok(d);
            }
            if Instant::now() > deadline {
                anyhow::bail!("the check's private daemon did not start within 15 s");
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(10));
    }
}

/// SIGTERM, then SIGKILL after `grace`; always reaps.
fn stop(child: &mut std::process::Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).ok();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().ok();
    child.wait().ok();
}

/// What the endpoint saw for one client.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    requests: u32,
    credential: bool,
}

/// The check's HTTPS endpoint on 127.0.0.1, serving [`CHECK_HOST`] with a
/// leaf of the throwaway CA; stopped on drop.
struct Endpoint {
    port: u16,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    /// The Authorization value the proxy should add.
    expected: Arc<Mutex<String>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Endpoint {
    fn start(leaf: crate::ca::Leaf) -> anyhow::Result<Endpoint> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(
            rustls_pki_types::PrivatePkcs8KeyDer::from(leaf.key_der.to_vec()),
        );
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls_pki_types::CertificateDer::from(
                    leaf.cert_der.clone(),
                )],
                key,
            )
            .context("TLS setup")?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .context("cannot listen on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let expected: Arc<Mutex<String>> = Arc::default();
        let (s, e) = (seen.clone(), expected.clone());
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, s, e) = (acceptor.clone(), s.clone(), e.clone());
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let r = answer(&req, &s, &e);
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    });
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await
                        .ok();
                });
            }
        });
        Ok(Endpoint {
            port,
            seen,
            expected,
            rt: Some(rt),
        })
    }

    fn seen(&self, key: &str) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Records the request under its client's key and answers it (git gets
/// the advertisement of an empty repository, so `ls-remote` succeeds).
fn answer(
    req: &hyper::Request<hyper::body::Incoming>,
    seen: &Mutex<HashMap<String, Seen>>,
    expected: &Mutex<String>,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    let path = req.uri().path();
    let key = path
        .strip_prefix("/doctor/")
        .and_then(|r| r.split('/').next())
        .unwrap_or("")
        .to_string();
    let want = expected.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let got: Vec<&[u8]> = req
        .headers()
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let credential = !want.is_empty() && got == [want.as_bytes()];
    {
        let mut map = seen.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key).or_default();
        e.requests += 1;
        e.credential |= credential;
    }
    let (ctype, body): (&str, Vec<u8>) = if path.ends_with("/info/refs") {
        // An empty repository, as git-http-backend advertises it (v0).
        let pkt = |s: &str| format!("{:04x}{s}", s.len() + 4);
        let refs = format!(
            "{}0000{}0000",
            pkt("# service=git-upload-pack\n"),
            pkt(&format!(
                "{} capabilities^{{}}\0agent=authsome-doctor\n",
                "0".repeat(40)
            ))
        );
        (
            "application/x-git-upload-pack-advertisement",
            refs.into_bytes(),
        )
    } else {
        ("text/plain", b"authsome doctor check\n".to_vec())
    };
    let mut res = hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from(body)));
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        res.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    res
}

/// `program` on PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What a finished (or stopped) process printed.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs `cmd` with a deadline; output capped at 64 KiB a stream.
fn run_bounded(mut cmd: Command, timeout: Duration) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let reader = |s: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(s) = s {
                s.take(64 * 1024).read_to_end(&mut buf).ok();
            }
            tx.send(String::from_utf8_lossy(&buf).into_owned()).ok();
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let code = loop {
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if Instant::now() > deadline {
            timed_out = true;
            stop(&mut child, Duration::from_secs(5));
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A grandchild may hold the pipes open: do not wait for it long.
    let get = |rx: std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
    };
    Ok(Output {
        code,
        stdout: get(out),
        stderr: get(err),
        timed_out,
    })
}

fn run_probe(p: &Probe, exe: &Path, env: &Env, endpoint: &Endpoint, go_dir: &Path) -> ClientResult {
    let mut r = ClientResult {
        client: p.name,
        status: ClientStatus::NotFound,
        version: None,
        proxy: None,
        ca: None,
        credential: None,
        problem: None,
        detail: format!("`{}` is not on PATH", p.program),
        hint: None,
    };
    let Some(program) = which(p.program) else {
        return r;
    };
    if let Some(args) = p.version_args
        && let Ok(o) = run_bounded(
            {
                let mut c = env.command(&program);
                c.args(args);
                c
            },
            Duration::from_secs(10),
        )
    {
        r.version = version_of(p.key, &o.stdout);
    }
    let url = format!("https://{CHECK_HOST}:{}/doctor/{}", endpoint.port, p.key);
    let mut argv: Vec<String> = vec![program.to_string_lossy().into_owned()];
    let mut timeout = CLIENT_TIMEOUT;
    match p.key {
        "curl" => argv.extend(
            [
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "status %{http_code}\\n",
                "--max-time",
                "20",
                &url,
            ]
            .map(String::from),
        ),
        "python-requests" | "python-httpx" | "python-urllib" => argv.extend([
            "-c".into(),
            PYTHON.into(),
            p.key.trim_start_matches("python-").into(),
            url,
        ]),
        "node-fetch" | "node-undici" => argv.extend([
            "-e".into(),
            NODE.into(),
            p.key.trim_start_matches("node-").into(),
            url,
        ]),
        "git" => argv.extend(["ls-remote".into(), format!("{url}/repo.git")]),
        "go" => {
            let main = go_dir.join("main.go");
            if let Err(e) = std::fs::create_dir_all(go_dir).and_then(|()| std::fs::write(&main, GO))
            {
                r.status = ClientStatus::Fail;
                r.problem = Some(Problem::Error);
                r.detail = format!("cannot write {}: {e}", main.display());
                return r;
            }
            argv.extend(["run".into(), main.to_string_lossy().into_owned(), url]);
            timeout = GO_TIMEOUT;
        }
        _ => {}
    }
    let mut cmd = env.command(exe);
    cmd.arg("run").arg("--").args(&argv);
    let out = match run_bounded(cmd, timeout) {
        Ok(o) => o,
        Err(e) => {
            r.status = ClientStatus::Fail;
            r.problem = Some(Problem::Error);
            r.detail = format!("cannot start `authsome run`: {e}");
            return r;
        }
    };
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    if lines.contains(&"missing") && out.code == Some(3) {
        r.detail = match p.key {
            "node-undici" => {
                "`undici` is not installed where node looks (this directory, NODE_PATH)".into()
            }
            "node-fetch" => "this node has no built-in fetch (Node < 18)".into(),
            k => format!(
                "`{}` is not importable by python3",
                k.trim_start_matches("python-")
            ),
        };
        return r;
    }
    if let Some(v) = lines.iter().find_map(|l| l.strip_prefix("version ")) {
        r.version = Some(v.to_string());
    }
    let status = lines
        .iter()
        .find_map(|l| l.strip_prefix("status "))
        .map(str::to_string);
    classify(p, &mut r, &out, endpoint.seen(p.key), status, timeout);
    r
}

/// The version from a `--version` line.
fn version_of(key: &str, stdout: &str) -> Option<String> {
    let first = stdout.lines().next()?;
    let word = match key {
        // curl 7.88.1 (x86_64-pc-linux-gnu) …
        "curl" => first.split_whitespace().nth(1),
        // git version 2.47.3
        "git" => first.split_whitespace().nth(2),
        // go version go1.22.1 linux/amd64
        "go" => first.split_whitespace().nth(2),
        _ => None,
    }?;
    Some(word.chars().take(40).collect())
}

/// Error text that says the client resolved the check host itself.
const DIRECT: &[&str] = &[
    "could not resolve host",
    "couldn't resolve host",
    "name or service not known",
    "temporary failure in name resolution",
    "failed to resolve",
    "nameresolutionerror",
    "getaddrinfo",
    "enotfound",
    "eai_again",
    "no such host",
    "nodename nor servname",
    "no address associated",
    "gaierror",
];

/// Error text that says a certificate was not trusted.
const TLS: &[&str] = &[
    "certificate",
    "self signed",
    "self-signed",
    "unable to get local issuer",
    "unable_to_verify",
    "unable_to_get_issuer",
    "self_signed_cert",
    "x509:",
    "unknown authority",
    "unknown ca",
    "ssl: ",
    "sslerror",
    "ssl connect error",
];

fn classify(
    p: &Probe,
    r: &mut ClientResult,
    out: &Output,
    seen: Seen,
    status: Option<String>,
    timeout: Duration,
) {
    if seen.requests > 0 {
        r.proxy = Some(true);
        r.ca = Some(true);
        r.credential = Some(seen.credential);
        if seen.credential {
            r.status = ClientStatus::Ok;
            r.detail = "through the proxy, trusts the run's CA, credential added".into();
            if out.code != Some(0) {
                r.detail.push_str(&format!(
                    " (then exited {}: {})",
                    out.code.map_or("?".into(), |c| c.to_string()),
                    last_line(&out.stderr)
                ));
            }
        } else {
            r.status = ClientStatus::Fail;
            r.problem = Some(Problem::NoCredential);
            r.detail =
                "reached the check endpoint through the proxy, but without the test credential"
                    .into();
            r.hint = Some("the client did its part; the proxy did not add the credential: please report this as an authsome bug".into());
        }
        return;
    }
    r.status = ClientStatus::Fail;
    r.credential = Some(false);
    let text = out.stderr.to_ascii_lowercase();
    let last = last_line(&out.stderr);
    if out.timed_out {
        r.problem = Some(Problem::Timeout);
        r.detail = format!("did not finish within {} s", timeout.as_secs());
        r.hint = Some(if p.key == "go" {
            "`go run` compiles first; a cold build cache can take long: try again".into()
        } else {
            "it hung before reaching the check endpoint: run it by hand under `authsome run` to see where".into()
        });
        return;
    }
    if DIRECT.iter().any(|m| text.contains(m)) && !text.contains("resolve proxy") {
        r.problem = Some(Problem::BypassedProxy);
        r.proxy = Some(false);
        r.detail = format!(
            "went direct, bypassing the proxy (it could not resolve {CHECK_HOST}, which only the proxy can): {last}"
        );
        r.hint = Some(hint(p, Problem::BypassedProxy, r.version.as_deref()));
        if p.key == "node-fetch" && node_major(r.version.as_deref()).is_some_and(|m| m < 24) {
            r.status = ClientStatus::Warn;
        }
        return;
    }
    if TLS.iter().any(|m| text.contains(m))
        || matches!((p.key, out.code), ("curl", Some(35 | 60 | 77)))
    {
        r.problem = Some(Problem::CaNotTrusted);
        r.proxy = Some(true);
        r.ca = Some(false);
        r.detail = format!("reached the proxy, but did not trust the run's CA: {last}");
        r.hint = Some(hint(p, Problem::CaNotTrusted, r.version.as_deref()));
        return;
    }
    r.problem = Some(Problem::Error);
    r.detail = match (status, last.is_empty()) {
        (Some(s), _) => format!("got status {s}, but the check endpoint saw no request"),
        (None, false) => format!("failed: {last}"),
        (None, true) => format!(
            "exited {} without reaching the check endpoint",
            out.code.map_or("?".into(), |c| c.to_string())
        ),
    };
    r.hint = Some(hint(p, Problem::Error, r.version.as_deref()));
}

/// The last non-empty line, trimmed to 300 characters.
fn last_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// `22` from `node 22.3.0` / `undici 6.21.0 (node 22.3.0)`.
fn node_major(version: Option<&str>) -> Option<u32> {
    let v = version?;
    let after = &v[v.rfind("node ")? + 5..];
    after
        .split('.')
        .next()?
        .trim_start_matches('v')
        .parse()
        .ok()
}

/// One line on how to fix `problem` for `p`.
fn hint(p: &Probe, problem: Problem, version: Option<&str>) -> String {
    use Problem::*;
    match (p.key, problem) {
        ("curl", BypassedProxy) => "curl skipped HTTPS_PROXY: look for `noproxy` or `proxy` in ~/.curlrc, or an alias or wrapper adding `--noproxy`".into(),
        ("curl", CaNotTrusted) => "curl trusts CURL_CA_BUNDLE, which `authsome run` sets: a `cacert`/`capath` in ~/.curlrc, `--cacert`, or a wrapper resetting CURL_CA_BUNDLE overrides it".into(),
        ("python-requests", BypassedProxy) => "requests reads HTTPS_PROXY only with `trust_env = True` (the default): look for `session.trust_env = False` or an explicit `proxies=`".into(),
        ("python-requests", CaNotTrusted) => "requests trusts REQUESTS_CA_BUNDLE only with `trust_env = True` and no `verify=PATH`: drop the explicit `verify=` or point it at $REQUESTS_CA_BUNDLE".into(),
        ("python-httpx", BypassedProxy) => "httpx reads HTTPS_PROXY only with `trust_env=True` (the default) and no explicit `proxy=`/`mounts=`".into(),
        ("python-httpx", CaNotTrusted) => "httpx trusts SSL_CERT_FILE only with `trust_env=True` and no `verify=`: drop the explicit `verify=` or build it from $SSL_CERT_FILE".into(),
        ("python-urllib", BypassedProxy) => "urllib reads HTTPS_PROXY through `getproxies()`: an opener with `ProxyHandler({})` skips it".into(),
        ("python-urllib", CaNotTrusted) => "urllib trusts SSL_CERT_FILE through the default SSLContext: a `context=`/`cafile=` of your own overrides it".into(),
        ("node-fetch", BypassedProxy) => format!(
            "Node's built-in fetch ignores HTTPS_PROXY before Node 24 (this is {}): use undici's `EnvHttpProxyAgent` (`setGlobalDispatcher(new EnvHttpProxyAgent())`), or Node 24+, where `NODE_USE_ENV_PROXY=1` (set by `authsome run`) makes fetch use the proxy",
            version.unwrap_or("an unknown version")
        ),
        ("node-fetch" | "node-undici", CaNotTrusted) => "Node adds NODE_EXTRA_CA_CERTS (set by `authsome run`) to its roots at startup: a `ca:` option or `--use-openssl-ca` elsewhere replaces them".into(),
        ("node-undici", BypassedProxy) => "undici's default dispatcher ignores HTTPS_PROXY: pass `dispatcher: new EnvHttpProxyAgent()` (or `setGlobalDispatcher`) and keep the check host out of NO_PROXY".into(),
        ("node-undici", Error) => "undici ≥ 6.11 has `EnvHttpProxyAgent`; older ones need `ProxyAgent(process.env.HTTPS_PROXY)`".into(),
        ("git", BypassedProxy | Error) => "git prefers its own `http.proxy` to HTTPS_PROXY: `git config --show-origin --get-regexp 'http.*proxy'` finds one; unset it, or set it to $HTTPS_PROXY for the run".into(),
        ("git", CaNotTrusted) => "git trusts GIT_SSL_CAINFO (set by `authsome run`): `git config --show-origin --get-regexp 'http.*ssl'` finds an `http.sslCAPath` or `http.sslBackend` that overrides it".into(),
        ("go", BypassedProxy) => "Go's default transport reads HTTPS_PROXY (`http.ProxyFromEnvironment`): a custom `http.Transport` needs `Proxy: http.ProxyFromEnvironment`".into(),
        ("go", CaNotTrusted) => "Go reads SSL_CERT_FILE at startup: a `tls.Config` with its own `RootCAs` overrides it".into(),
        (_, _) => "run it by hand under `authsome run` to see more (`authsome run -- …`)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_major_reads_both_version_lines() {
        assert_eq!(node_major(Some("node 20.20.2")), Some(20));
        assert_eq!(node_major(Some("6.21.0 on node 24.1.0")), Some(24));
        assert_eq!(node_major(Some("2.31.0")), None);
        assert_eq!(node_major(None), None);
    }

    #[test]
    fn versions_come_from_the_first_line() {
        assert_eq!(
            version_of(
                "curl",
                "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1\nRelease-Date"
            ),
            Some("7.88.1".into())
        );
        assert_eq!(
            version_of("git", "git version 2.47.3\n"),
            Some("2.47.3".into())
        );
        assert_eq!(
            version_of("go", "go version go1.22.1 linux/amd64\n"),
            Some("go1.22.1".into())
        );
    }

    #[test]
    fn every_probe_has_its_own_hints() {
        for p in PROBES {
            for problem in [Problem::BypassedProxy, Problem::CaNotTrusted] {
                let h = hint(p, problem, Some("node 20.1.0"));
                assert!(!h.starts_with("run it by hand"), "{} {problem:?}", p.key);
            }
        }
    }
}
