//! The team server's remote listener (`daemon serve --listen … --tls-cert
//! … --tls-key …`) through the real binary and real TLS on loopback: a
//! member's CLI in another home reaches it at `https://team.test:PORT`
//! (resolved by `AUTHSOME_RESOLVE`, trusted through
//! `AUTHSOME_TEAM_CA_FILE`); the listener answers only its base URL's
//! host, serves no dashboard, needs PoP, and a client that never completes
//! its handshake holds up nobody.
//!
//! Until members exist (issue #16, WP3), the member home holds the server
//! home's own identity: PoP trusts only that one today.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authsome::clock::now_unix;
use authsome::home::Home;
use authsome::identity::Identity;
use authsome::pop;

use crate::common::{Cmd, TestHome, bin};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway CA and a `team.test` server certificate it signed.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "authsome team TEST CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["team.test".into(), "proxy-b.test".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

/// `authsome daemon serve --listen 127.0.0.1:PORT --tls-cert --tls-key` in
/// its own home, `AUTHSOME_SERVER_BASE_URL=https://team.test:PORT`.
struct TeamServer {
    home: TestHome,
    certs: Certs,
    child: Child,
    port: u16,
}

impl TeamServer {
    fn start() -> TeamServer {
        TeamServer::start_with(TestHome::new(), &[], &[])
    }

    fn start_with(home: TestHome, args: &[&str], env: &[(&str, &str)]) -> TeamServer {
        let certs = Certs::new();
        let port = free_port();
        let child = Command::new(bin())
            .args(["daemon", "serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--tls-cert", &certs.s("cert.pem")])
            .args(["--tls-key", &certs.s("key.pem")])
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTHSOME_HOME", &home.home)
            .env("AUTHSOME_PORT", "0")
            .env("AUTHSOME_KEYRING", "off")
            .env("NO_COLOR", "1")
            .env(
                "AUTHSOME_SERVER_BASE_URL",
                format!("https://team.test:{port}"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = TeamServer {
            home,
            certs,
            child,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("the team server exited ({st}):\n{}", s.log());
            }
            if s.home.daemon().is_some() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the team server did not listen within 20 s:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path("logs/authsome.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("https://team.test:{}", self.port)
    }

    /// A home holding the server's identity (see the module docs).
    fn member(&self) -> TestHome {
        let m = TestHome::new();
        std::fs::create_dir(&m.home).unwrap();
        std::fs::set_permissions(&m.home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        std::fs::copy(self.home.path("identity.key"), m.path("identity.key")).unwrap();
        m
    }

    /// `authsome ARGS` in `member`'s home against this server.
    fn member_cmd<const N: usize>(&self, member: &TestHome, args: [&str; N]) -> Cmd {
        member
            .cmd(args)
            .env("AUTHSOME_BASE_URL", &self.url())
            .env("AUTHSOME_RESOLVE", "team.test=127.0.0.1")
            .env("AUTHSOME_TEAM_CA_FILE", &self.certs.s("ca.pem"))
    }

    /// One request over TLS (SNI `team.test`, trusting the team CA) with
    /// the given `Host`; (status, body).
    fn request(&self, method: &str, path: &str, host: &str, auth: Option<&str>) -> (u16, String) {
        tls_request(
            self.port,
            &self.certs.path("ca.pem"),
            method,
            path,
            host,
            auth,
        )
    }

    /// The runs open on the server (as its own admin, over loopback).
    fn runs(&self) -> serde_json::Value {
        let path = "/api/proxy/runs";
        let auth = pop::authorization(&self.identity(), "GET", path, b"", now_unix());
        let (st, _, body) = crate::common::http(
            "GET",
            &format!("{}{path}", self.home.daemon_url()),
            &[("authorization", &auth)],
            b"",
        );
        assert_eq!(st, 200, "{body}");
        json(&body)["runs"].clone()
    }

    fn identity(&self) -> Identity {
        Identity::load(&Home::new(&self.home.home))
            .unwrap()
            .unwrap()
    }
}

impl Drop for TeamServer {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_request(
    port: u16,
    ca: &Path,
    method: &str,
    path: &str,
    host: &str,
    auth: Option<&str>,
) -> (u16, String) {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls_pki_types::ServerName::try_from("team.test").unwrap(),
    )
    .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    // A peer that closes without close_notify is an error here: what was read counts.
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn a_member_cli_uses_the_team_server_over_tls() {
    let server = TeamServer::start();
    // The server's own CLI, on its loopback listener, stores a key.
    server.home.login("ahrefs", "k-team-1");
    let member = server.member();
    let who = server
        .member_cmd(&member, ["whoami", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(who["did"], server.identity().did());
    assert_eq!(who["daemon_url"], server.url(), "the remote listener's URL");
    let list = server
        .member_cmd(&member, ["list", "--json"])
        .run()
        .success();
    assert!(list.stdout.contains("ahrefs"), "{}", list.stdout);
    assert!(
        member.daemon().is_none(),
        "the member's CLI never starts a daemon of its own"
    );
    // The server's own CLI still reaches it on loopback.
    server
        .home
        .cmd(["list"])
        .run()
        .success()
        .stdout_has("ahrefs");
    // This server has no --proxy-listen: a remote run is refused before
    // anything starts.
    server
        .member_cmd(&member, ["run", "--", "true"])
        .run()
        .code(7)
        .stderr_has("team server");
    assert_eq!(server.runs(), serde_json::json!([]), "no run was opened");
}

#[test]
fn an_untrusted_certificate_is_refused_with_the_setting_that_fixes_it() {
    let server = TeamServer::start();
    let member = server.member();
    let out = server
        .member_cmd(&member, ["list"])
        .env_remove("AUTHSOME_TEAM_CA_FILE")
        .run()
        .code(4)
        .stderr_has("does not trust")
        .stderr_has("AUTHSOME_TEAM_CA_FILE");
    assert!(out.stdout.is_empty());
    // A CA file that is not the team's: still refused.
    let other = Certs::new();
    server
        .member_cmd(&member, ["list"])
        .env("AUTHSOME_TEAM_CA_FILE", &other.s("ca.pem"))
        .run()
        .code(4)
        .stderr_has("AUTHSOME_TEAM_CA_FILE");
    // A CA file that is no PEM: named.
    server
        .member_cmd(&member, ["list"])
        .env("AUTHSOME_TEAM_CA_FILE", &other.s("missing.pem"))
        .run()
        .code(4)
        .stderr_has("missing.pem");
    assert!(member.daemon().is_none());
}

#[test]
fn the_remote_listener_answers_only_its_host_needs_pop_and_serves_no_dashboard() {
    let server = TeamServer::start();
    let host = format!("team.test:{}", server.port);
    let (st, body) = server.request("GET", "/api/health", &host, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(json(&body)["service"], "authsome");
    // Names the loopback listener accepts are foreign here.
    for foreign in [
        format!("evil.test:{}", server.port),
        format!("127.0.0.1:{}", server.port),
        format!("localhost:{}", server.port),
        "team.test".to_string(),
    ] {
        let (st, body) = server.request("GET", "/api/health", &foreign, None);
        assert_eq!(st, 403, "Host {foreign}: {body}");
        assert_eq!(json(&body)["error"]["code"], "host_not_allowed");
    }
    for path in ["/api/connections", "/api/whoami", "/connections"] {
        let (st, body) = server.request("GET", path, &host, None);
        assert_eq!(st, 401, "{path}: {body}");
    }
    // A PoP token of the trusted identity is accepted.
    let id = server.identity();
    let auth = pop::authorization(&id, "GET", "/api/connections", b"", now_unix());
    let (st, body) = server.request("GET", "/api/connections", &host, Some(&auth));
    assert_eq!(st, 200, "{body}");
    // The dashboard and its links stay on loopback.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/ui/providers"),
        ("GET", "/ui/requests/events"),
        ("POST", "/api/dashboard/links"),
    ] {
        let auth = pop::authorization(&id, method, path, b"", now_unix());
        let (st, body) = server.request(method, path, &host, Some(&auth));
        assert_eq!(st, 404, "{method} {path}: {body}");
        assert!(body.contains("loopback"), "{body}");
    }
    let loopback = server.home.daemon_url();
    let (st, _, _) = crate::common::http("GET", &format!("{loopback}/"), &[], b"");
    assert_ne!(st, 404, "the loopback listener still serves the dashboard");
    // Plain HTTP to the TLS port gets no answer.
    let mut plain = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("authsome"),
        "plaintext must not be served"
    );
}

#[test]
fn a_client_that_never_handshakes_blocks_nobody_and_shutdown_stops_both_listeners() {
    let mut server = TeamServer::start();
    let member = server.member();
    // Clients that connect and say nothing (held open for the whole test).
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    server
        .member_cmd(&member, ["whoami", "--json"])
        .run()
        .success();
    drop(silent);
    // A shutdown asked through the remote listener stops the whole daemon.
    let id = server.identity();
    let auth = pop::authorization(&id, "POST", "/api/daemon/shutdown", b"", now_unix());
    let host = format!("team.test:{}", server.port);
    let (st, body) = server.request("POST", "/api/daemon/shutdown", &host, Some(&auth));
    assert_eq!(st, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.home.daemon().is_none(), "daemon.json is removed");
}

#[test]
fn a_listener_beyond_loopback_needs_tls_and_an_https_base_url() {
    let h = TestHome::new();
    let certs = Certs::new();
    let port = free_port().to_string();
    h.cmd(["daemon", "serve", "--listen", &format!("0.0.0.0:{port}")])
        .env("AUTHSOME_SERVER_BASE_URL", "https://team.test")
        .run()
        .code(2)
        .stderr_has("--tls-cert");
    h.cmd(["daemon", "serve", "--host", "0.0.0.0"])
        .run()
        .code(2)
        .stderr_has("--listen");
    let listen = format!("0.0.0.0:{port}");
    let with_tls = [
        "daemon",
        "serve",
        "--listen",
        &listen,
        "--tls-cert",
        &certs.s("cert.pem"),
        "--tls-key",
        &certs.s("key.pem"),
    ]
    .map(str::to_string);
    for (base, says) in [
        (None, "needs AUTHSOME_SERVER_BASE_URL"),
        (Some("http://team.test:8443"), "not an https:// URL"),
        (Some("https://team.test:8443/authsome"), "has a path"),
    ] {
        let mut c = h.cmd(with_tls.clone());
        if let Some(b) = base {
            c = c.env("AUTHSOME_SERVER_BASE_URL", b);
        }
        c.run().code(4).stderr_has(says);
    }
    // A certificate and key that do not belong together.
    let other = Certs::new();
    h.cmd([
        "daemon",
        "serve",
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--tls-cert",
        &certs.s("cert.pem"),
        "--tls-key",
        &other.s("key.pem"),
    ])
    .env("AUTHSOME_SERVER_BASE_URL", "https://team.test")
    .run()
    .code(4)
    .stderr_has("does not fit");
    assert!(h.daemon().is_none(), "nothing started");
}

#[test]
fn a_cli_never_sends_pop_over_plain_http_to_another_machine() {
    let h = TestHome::new();
    for url in ["http://10.0.0.7:7998", "http://team.test:7998"] {
        h.cmd(["list"])
            .env("AUTHSOME_BASE_URL", url)
            .run()
            .code(4)
            .stderr_has("plain http://")
            .stderr_has("https://");
    }
    assert!(h.daemon().is_none());
}

/// A member's `authsome run` on the team server: the child reaches the
/// provider through the local relay and the server's proxy listener; the
/// upstream gets the credential once, the child never sees it, and the run
/// is gone from the server when `run` returns.
#[test]
fn a_member_runs_a_program_through_the_team_servers_proxy() {
    use crate::common::lab::Lab;
    // The server's home and upstream, set up as the lab does, through its
    // own loopback daemon first (then replaced by the team server).
    let lab = Lab::new();
    lab.home.stop_daemon();
    let proxy_port = free_port();
    let proxy_listen = format!("127.0.0.1:{proxy_port}");
    let env = Lab::env();
    let server = TeamServer::start_with(
        TestHome {
            dir: tempfile::tempdir().unwrap(),
            home: lab.home.home.clone(),
            extra: Default::default(),
        },
        &["--proxy-listen", &proxy_listen],
        &env,
    );
    let member = server.member();
    let url = lab.url("/team");
    let out = server
        .member_cmd(
            &member,
            ["run", "--", "curl", "-sS", "--max-time", "20", &url],
        )
        .env("AUTHSOME_SANDBOX", "auto")
        .run()
        .success();
    assert!(!out.stdout.contains(&lab.key) && !out.stderr.contains(&lab.key));
    let auths = lab.auths();
    assert_eq!(
        auths.last().unwrap(),
        &vec![format!("Bearer {}", lab.key)],
        "the upstream got the credential, once: {auths:?}"
    );
    // The run ended at the server with `run`.
    assert_eq!(server.runs(), serde_json::json!([]));
    // Without a run's token, the proxy listener refuses and dials nothing.
    let before = lab.up.records().len();
    let (st, _) = tls_request(
        proxy_port,
        &server.certs.path("ca.pem"),
        "CONNECT",
        &format!("api.acme.test:{}", lab.up.port),
        &format!("api.acme.test:{}", lab.up.port),
        Some("Basic YXV0aHNvbWU6bm90LWEtdG9rZW4="),
    );
    assert_eq!(st, 407);
    assert_eq!(lab.up.records().len(), before);
    // No run's proxy connects to the team server's own listeners (a loop).
    let curl = "curl -sS --max-time 10 --noproxy '' -x \"$HTTPS_PROXY\"";
    let out = lab
        .run_sh_with(
            &["--no-sandbox"],
            &format!(
                "{curl} http://127.0.0.1:{}/api/health; echo; {curl} http://127.0.0.1:{proxy_port}/; echo",
                server.port
            ),
        )
        .success();
    assert_eq!(
        out.stdout.matches("authsome_loop_refused").count(),
        2,
        "{}",
        out.stdout
    );
}

/// A run without a client process on the server (a remote `authsome run`)
/// ends by itself once nobody polls it: a killed remote CLI leaves no
/// listener open.
#[test]
fn a_run_nobody_polls_ends_after_its_lease() {
    let server = TeamServer::start();
    let id = server.identity();
    let base = server.home.daemon_url();
    let call = |method: &str, path: &str, body: &[u8]| {
        let auth = pop::authorization(&id, method, path, body, now_unix());
        let (st, _, text) = crate::common::http(
            method,
            &format!("{base}{path}"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        );
        (st, text)
    };
    let (st, body) = call("POST", "/api/proxy/runs", b"{}");
    assert_eq!(st, 200, "{body}");
    let run = json(&body)["id"].as_str().unwrap().to_string();
    let listed = |text: &str| text.contains(&run);
    let (_, text) = call("GET", "/api/proxy/runs", b"");
    assert!(listed(&text), "{text}");
    // The lease is 30 s; listing does not renew it (only the refusals poll does).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (st, text) = call("GET", "/api/proxy/runs", b"");
        assert_eq!(st, 200);
        if !listed(&text) {
            break;
        }
        assert!(Instant::now() < deadline, "the run outlived its lease");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The issue's scenario (#16): two replicas on one PostgreSQL store, each
/// with its TLS API listener and proxy listener. The admin (the home whose
/// daemon created the store) connects providers through replica A; a
/// member in a third home, granted one provider, works through replica B
/// over TLS. B learns the member and the grant from the store; the
/// upstream gets exactly one credential; the provider not granted is
/// refused at CONNECT with nothing upstream; export is refused; a logout
/// on A stops B from sending the key; the database holds no secret.
#[test]
fn two_replicas_on_postgres_serve_a_member_over_tls() {
    use crate::common::lab::Lab;
    use crate::common::postgres::Postgres;
    let Some(pg) = Postgres::start() else { return };
    let lab = Lab::bare();
    let key = lab.home.dir.path().join("team.key");
    std::fs::write(&key, "dGVhbS1zZXJ2ZXItbWFzdGVyLWtleS0zMi1ieXRlcyE=\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (url, key) = (pg.url(), key.to_str().unwrap().to_string());
    let mut env: Vec<(&str, &str)> = Lab::env().to_vec();
    env.push(("AUTHSOME_DATABASE_URL", &url));
    env.push(("AUTHSOME_MASTER_KEY_FILE", &key));
    {
        let mut e = lab.home.extra.lock().unwrap();
        e.push(("AUTHSOME_DATABASE_URL".into(), url.clone()));
        e.push(("AUTHSOME_MASTER_KEY_FILE".into(), key.clone()));
    }
    // B's proxy listener is on another loopback address, which members
    // reach by the name B advertises (AUTHSOME_SERVER_PROXY_ADDR), not by
    // the base URL's: a load balancer in front of the API port need not
    // know which replica holds a run.
    let pb_port = free_port();
    let (pa, pb) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.2:{pb_port}"),
    );
    let proxy_b = format!("proxy-b.test:{pb_port}");
    // A first: its home creates the store and is the first admin.
    let a = TeamServer::start_with(
        TestHome {
            dir: tempfile::tempdir().unwrap(),
            home: lab.home.home.clone(),
            extra: Default::default(),
        },
        &["--proxy-listen", &pa],
        &env,
    );
    let mut env_b = env.clone();
    env_b.push(("AUTHSOME_SERVER_PROXY_ADDR", &proxy_b));
    let b = TeamServer::start_with(TestHome::new(), &["--proxy-listen", &pb], &env_b);
    // The admin connects two providers through A (its loopback CLI).
    for (name, host) in [("acme", "api.acme.test"), ("beta", "x.acme.test")] {
        lab.provider(
            name,
            &format!("{host}:{}", lab.up.port),
            r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"}"#,
        );
    }
    lab.cmd(["login", "acme", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    let beta_key = crate::common::canary("BETACANARY_");
    lab.cmd(["login", "beta", "--with-api-key"])
        .stdin(&beta_key)
        .run()
        .success();
    // A member in a third home, added and granted `acme` through A.
    let m = TestHome::new();
    let did = m.cmd(["whoami", "--json"]).run().success().json()["did"]
        .as_str()
        .unwrap()
        .to_string();
    m.stop_daemon();
    lab.cmd(["team", "add", &did, "--role", "member"])
        .run()
        .success();
    lab.cmd(["team", "grant", &did, "acme"]).run().success();
    // Through B, over TLS: B knows the member from the store (its
    // notification arrives at commit; the bounded retry absorbs a loaded
    // machine).
    let mut listed = None;
    for _ in 0..25 {
        let out = b.member_cmd(&m, ["list", "--json"]).run();
        if out.code == 0 {
            listed = Some(out.stdout);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = listed.expect("B never trusted the member added on A");
    assert!(
        listed.contains("acme") && !listed.contains("beta"),
        "{listed}"
    );
    let member_curl = |path: &str| {
        b.member_cmd(
            &m,
            [
                "run",
                "--",
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                path,
            ],
        )
        .env("AUTHSOME_SANDBOX", "auto")
        .env(
            "AUTHSOME_RESOLVE",
            "team.test=127.0.0.1,proxy-b.test=127.0.0.2",
        )
        .run()
    };
    let out = member_curl(&lab.url("/member")).success();
    assert_eq!(out.stdout.trim(), "200", "{out:?}");
    assert!(!out.stdout.contains(&lab.key) && !out.stderr.contains(&lab.key));
    assert_eq!(
        lab.up.records().last().unwrap().all("authorization"),
        vec![format!("Bearer {}", lab.key)],
        "exactly one credential"
    );
    // Not granted: refused at CONNECT, nothing upstream.
    let seen = lab.up.records().len();
    let out = member_curl(&format!("https://x.acme.test:{}/beta", lab.up.port));
    assert_ne!(out.stdout.trim(), "200", "{out:?}");
    assert_eq!(
        lab.up.records().len(),
        seen,
        "nothing upstream for an ungranted provider"
    );
    // Export of a shared connection: refused (not allowed by the grant).
    b.member_cmd(&m, ["export", "acme"])
        .run()
        .code(1)
        .stderr_has("--export");
    // Logout on A: B stops sending the key.
    lab.cmd(["logout", "acme"]).run().success();
    let mut clean = false;
    for _ in 0..25 {
        let before = lab.up.records().len();
        member_curl(&lab.url("/after-logout"));
        let recs = lab.up.records();
        if recs.len() == before
            || recs.len() > before && recs.last().unwrap().all("authorization").is_empty()
        {
            clean = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(clean, "B still sends the key after the logout on A");
    assert!(
        lab.up
            .records()
            .iter()
            .all(|r| !r.all("authorization").iter().any(|v| v.contains(&beta_key))),
        "beta's key never left"
    );
    let dump = pg.dump();
    assert!(dump.contains("team_members"));
    assert!(!dump.contains(&lab.key) && !dump.contains(&beta_key));
    drop((a, b));
}
