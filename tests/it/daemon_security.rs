//! The daemon's access control, over real HTTP: PoP on the API, the Host
//! allowlist against DNS rebinding, and the CSRF/Origin checks of the form.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authsome::clock::now_unix;
use authsome::home::Home;
use authsome::identity::Identity;
use authsome::pop;

use crate::common::{TestHome, bin, canary, http};

fn started() -> (TestHome, String) {
    let h = TestHome::new();
    h.cmd(["daemon", "start"]).run().success();
    let url = h.daemon_url();
    (h, url)
}

fn identity(h: &TestHome) -> Identity {
    Identity::load(&Home::new(&h.home)).unwrap().unwrap()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn health_is_open_and_the_api_needs_pop() {
    let (h, url) = started();
    let (st, _, body) = http("GET", &format!("{url}/api/health"), &[], b"");
    assert_eq!(st, 200);
    assert_eq!(json(&body)["service"], "authsome");
    assert!(
        !body.contains(h.home.to_str().unwrap()),
        "health must not reveal the home path"
    );
    // Nor what a squatter would need to pass for this home's daemon.
    let v = json(&body);
    assert!(
        v.get("home_id").is_none() && v.get("pid").is_none(),
        "{body}"
    );
    let (st, _, _) = http("GET", &format!("{url}/health"), &[], b"");
    assert_eq!(st, 200, "root alias");
    for path in [
        "/api/connections",
        "/connections",
        "/api/providers",
        "/api/whoami",
        "/api/proxy/routes",
    ] {
        let (st, _, body) = http("GET", &format!("{url}{path}"), &[], b"");
        assert_eq!(st, 401, "{path}");
        assert_eq!(json(&body)["error"]["code"], "unauthorized", "{path}");
    }
}

#[test]
fn pop_negative_matrix() {
    let (h, url) = started();
    let id = identity(&h);
    let now = now_unix();
    let ok = |method: &str, path: &str, body: &[u8], auth: &str| {
        http(
            method,
            &format!("{url}{path}"),
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .0
    };

    let good = pop::authorization(&id, "GET", "/api/connections", b"", now);
    assert_eq!(ok("GET", "/api/connections", b"", &good), 200);
    assert_eq!(
        ok("GET", "/api/connections", b"", &good),
        401,
        "replayed token"
    );
    assert_eq!(
        ok("GET", "/api/connections", b"", "Bearer abc"),
        401,
        "wrong scheme"
    );
    let other_path = pop::authorization(&id, "GET", "/api/providers", b"", now);
    assert_eq!(
        ok("GET", "/api/connections", b"", &other_path),
        401,
        "token for another path"
    );
    let other_method = pop::authorization(&id, "POST", "/api/connections", b"", now);
    assert_eq!(
        ok("GET", "/api/connections", b"", &other_method),
        401,
        "token for another method"
    );
    let body = br#"{"provider":"ahrefs"}"#;
    let other_body = pop::authorization(
        &id,
        "POST",
        "/api/credentials/export",
        br#"{"provider":"apollo"}"#,
        now,
    );
    assert_eq!(
        ok("POST", "/api/credentials/export", body, &other_body),
        401,
        "token for another body"
    );
    let stale = pop::authorization(&id, "GET", "/api/connections", b"", now - 600);
    assert_eq!(ok("GET", "/api/connections", b"", &stale), 401, "expired");
    let future = pop::authorization(&id, "GET", "/api/connections", b"", now + 600);
    assert_eq!(
        ok("GET", "/api/connections", b"", &future),
        401,
        "issued in the future"
    );
    // a valid token from an identity of another home
    let stranger = TestHome::new();
    std::fs::create_dir_all(&stranger.home).unwrap();
    let sid = Identity::load_or_create(&Home::new(&stranger.home)).unwrap();
    let foreign = pop::authorization(&sid, "GET", "/api/connections", b"", now);
    let (st, _, b) = http(
        "GET",
        &format!("{url}/api/connections"),
        &[("Authorization", &foreign)],
        b"",
    );
    assert_eq!(st, 401);
    assert!(b.contains("not trusted"), "{b}");
    // alg:none with the right claims
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = serde_json::json!({"iss": id.did(), "sub": id.did(), "aud": "authsome-daemon", "iat": now, "exp": now + 30,
        "jti": "none1", "htm": "GET", "htu": "/api/connections", "body_sha256": pop::body_hash(b"")});
    let none = format!(
        "PoP {}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    assert_eq!(ok("GET", "/api/connections", b"", &none), 401, "alg none");
}

#[test]
fn foreign_host_headers_are_refused() {
    let (_h, url) = started();
    let port = url.rsplit(':').next().unwrap();
    for host in [
        "evil.test",
        &format!("evil.test:{port}"),
        "127.0.0.1:1",
        "attacker.example:80",
    ] {
        let (st, _, body) = http("GET", &format!("{url}/api/health"), &[("Host", host)], b"");
        assert_eq!(st, 403, "{host}");
        assert_eq!(json(&body)["error"]["code"], "host_not_allowed");
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(
            http("GET", &format!("{url}/api/health"), &[("Host", &host)], b"").0,
            200,
            "{host}"
        );
    }
}

/// Starts `authsome login PROVIDER --no-browser --json` and returns it with the form URL.
fn start_browser_login(h: &TestHome, provider: &str) -> (std::process::Child, String) {
    let mut child = Command::new(bin())
        .args(["login", provider, "--no-browser", "--json"])
        .env("AUTHSOME_HOME", &h.home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let step = json(&line);
    assert_eq!(step["action"], "open_url", "{line}");
    // keep the rest of stdout readable after exit
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        rest
    });
    (child, step["url"].as_str().unwrap().to_string())
}

fn wait_exit(child: &mut std::process::Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "login did not finish");
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn csrf_of(page: &str) -> String {
    let i =
        page.find(r#"name="csrf" value=""#).expect("csrf field") + r#"name="csrf" value=""#.len();
    page[i..i + 32].to_string()
}

#[test]
fn browser_form_login_with_csrf_and_origin_checks() {
    let h = TestHome::new();
    let (mut login, form_url) = start_browser_login(&h, "openai");
    let origin = form_url.split("/api/").next().unwrap().to_string();
    let (st, head, page) = http("GET", &form_url, &[], b"");
    assert_eq!(st, 200);
    assert!(page.contains("OpenAI"), "{page}");
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store")
    );
    assert!(head.to_ascii_lowercase().contains("x-frame-options: deny"));
    let csrf = csrf_of(&page);
    let key = format!("sk-{}", canary("FORMCANARY"));
    let form = |csrf: &str, k: &str| format!("csrf={csrf}&api_key={k}");
    let ct = ("Content-Type", "application/x-www-form-urlencoded");

    // no CSRF token
    let (st, _, _) = http("POST", &form_url, &[ct], form("", &key).as_bytes());
    assert_eq!(st, 403);
    // a wrong token
    let (st, _, _) = http(
        "POST",
        &form_url,
        &[ct],
        form(&"0".repeat(32), &key).as_bytes(),
    );
    assert_eq!(st, 403);
    // the right token from another site
    let (st, _, _) = http(
        "POST",
        &form_url,
        &[ct, ("Origin", "http://evil.test")],
        form(&csrf, &key).as_bytes(),
    );
    assert_eq!(st, 403);
    let (st, _, _) = http(
        "POST",
        &form_url,
        &[ct, ("Sec-Fetch-Site", "cross-site")],
        form(&csrf, &key).as_bytes(),
    );
    assert_eq!(st, 403);
    // a key that fails the pattern: the form comes back with the hint, without the key
    let bad = canary("BADKEY");
    let (st, _, page) = http(
        "POST",
        &form_url,
        &[ct, ("Origin", &origin)],
        form(&csrf, &bad).as_bytes(),
    );
    assert_eq!(st, 400);
    assert!(page.contains("OpenAI keys start with"), "{page}");
    assert!(!page.contains(&bad), "the refused key was echoed");
    assert!(
        login.try_wait().unwrap().is_none(),
        "a refused key keeps the session open"
    );
    // the real submission
    let (st, _, page) = http(
        "POST",
        &form_url,
        &[ct, ("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
        form(&csrf, &key).as_bytes(),
    );
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("Connected"));
    assert!(!page.contains(&key));
    assert_eq!(wait_exit(&mut login), 0);
    assert_eq!(
        h.cmd(["export", "openai"]).run().success().stdout,
        format!("OPENAI_API_KEY={key}\n")
    );
    // the session is single use
    let (st, _, _) = http(
        "POST",
        &form_url,
        &[ct, ("Origin", &origin)],
        form(&csrf, "sk-another-key-aaaaaaaaaaaaaaaa").as_bytes(),
    );
    assert_eq!(st, 409);
    // the daemon log never saw either key
    let log = std::fs::read_to_string(h.path("logs/authsome.log")).unwrap();
    assert!(!log.contains(&key) && !log.contains(&bad));
}

#[test]
fn unknown_session_urls_lead_nowhere() {
    let (_h, url) = started();
    let (st, _, _) = http(
        "GET",
        &format!("{url}/api/auth/sessions/{}/input", "ab".repeat(16)),
        &[],
        b"",
    );
    assert_eq!(st, 404);
    let (st, _, _) = http(
        "POST",
        &format!("{url}/api/auth/sessions/{}/input", "ab".repeat(16)),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"csrf=x&api_key=y",
    );
    assert!(st == 403 || st == 404, "{st}");
}

#[test]
fn error_bodies_have_one_shape_and_no_secrets() {
    let (h, url) = started();
    h.login("ahrefs", "AKCANARY_errbody");
    let id = identity(&h);
    let call = |method: &str, path: &str, body: &[u8]| {
        let auth = pop::authorization(&id, method, path, body, now_unix());
        http(
            method,
            &format!("{url}{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    for (method, path, body, status, code) in [
        (
            "GET",
            "/api/connections/ahrefs/nosuch",
            &b""[..],
            404,
            "connection_not_found",
        ),
        (
            "GET",
            "/api/providers/nosuch",
            b"",
            404,
            "provider_not_found",
        ),
        (
            "POST",
            "/api/credentials/export",
            br#"{"provider": 5}"#,
            422,
            "invalid_body",
        ),
        // A type-confused body carrying a secret: serde would quote the string
        // in its message; the answer must not.
        (
            "POST",
            "/api/credentials/resolve",
            br#"{"host":"api.ahrefs.com","port":"AKCANARY_in_the_wrong_field"}"#,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/auth/sessions/x/resume",
            br#"{"api_key":["AKCANARY_in_a_list"]}"#,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/auth/sessions",
            br#"{"provider":"github"}"#,
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/api/auth/sessions",
            br#"{"provider":"ahrefs"}"#,
            409,
            "connection_exists",
        ),
        ("GET", "/api/nope", b"", 404, "not_found"),
    ] {
        let (st, _, b) = call(method, path, body);
        assert_eq!(st, status, "{method} {path}: {b}");
        if !code.is_empty() {
            assert_eq!(json(&b)["error"]["code"], code, "{b}");
        }
        assert!(!b.contains("AKCANARY"), "{b}");
    }
}

#[test]
fn the_daemon_listens_on_loopback_only() {
    let (h, url) = started();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    // /proc/net/tcp: local_address is hex IP:PORT; state 0A is LISTEN.
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let listening: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[3] == "0A" && f[1].ends_with(&format!(":{port:04X}"))
        })
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(
        listening[0]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .starts_with("0100007F:"),
        "not bound to 127.0.0.1: {listening:?}"
    );
    let v6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    assert!(!v6.lines().any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|a| a.ends_with(&format!(":{port:04X}")))
    }));
    drop(h);
}

#[test]
fn server_base_url_is_advertised_and_its_host_accepted() {
    let h = TestHome::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("http://auth.example.test:{port}");
    let mut login = Command::new(bin())
        .args(["login", "openai", "--no-browser", "--json"])
        .env("AUTHSOME_HOME", &h.home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", port.to_string())
        .env("AUTHSOME_SERVER_BASE_URL", &public)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(login.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = json(&line)["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{public}/api/auth/sessions/")),
        "{url}"
    );
    let local = format!("http://127.0.0.1:{port}/api/health");
    let host = format!("auth.example.test:{port}");
    assert_eq!(
        http("GET", &local, &[("Host", &host)], b"").0,
        200,
        "the advertised host is allowed"
    );
    let _ = login.kill();
    let _ = login.wait();
}

#[test]
fn a_pop_token_cannot_be_replayed_after_a_daemon_restart() {
    let (h, url) = started();
    let key = canary("AKCANARY_");
    h.login("ahrefs", &key);
    let id = identity(&h);
    let body = br#"{"provider":"ahrefs"}"#;
    let auth = pop::authorization(&id, "POST", "/api/credentials/export", body, now_unix());
    let send = |url: &str| {
        http(
            "POST",
            &format!("{url}/api/credentials/export"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let (st, _, first) = send(&url);
    assert_eq!(st, 200, "{first}");
    assert!(first.contains(&key), "the export answers the key");
    h.cmd(["daemon", "restart"]).run().success();
    let url = h.daemon_url();
    // Captured a moment ago, well within its 60 s: the new daemon refuses it.
    let (st, _, again) = send(&url);
    assert_eq!(st, 401, "{again}");
    assert!(!again.contains(&key), "{again}");
    assert!(again.contains("before this daemon started"), "{again}");
    // Fresh tokens work.
    h.cmd(["whoami"]).run().success();
}

/// A server on `port` that answers `/api/health` exactly like an authsome
/// daemon of `home_id` (and anything else with 200 `{}`), recording every byte
/// it receives, for `secs` seconds.
fn squatter(port: u16, home_id: String, secs: u64) -> std::thread::JoinHandle<Vec<u8>> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    let mut buf = [0u8; 8192];
                    // Read what the client sends (headers and body) until it pauses.
                    let mut req = Vec::new();
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        req.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&req);
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                break;
                            }
                        }
                    }
                    seen.extend_from_slice(&req);
                    let body = if req.starts_with(b"GET /api/health ") {
                        format!(
                            r#"{{"status":"ok","service":"authsome","version":"{}","home_id":"{home_id}","pid":4242}}"#,
                            env!("CARGO_PKG_VERSION")
                        )
                    } else if req.starts_with(b"GET /api/health/proof") {
                        r#"{"proof":"00"}"#.to_string()
                    } else {
                        r#"{"id":"s1","status":"completed","provider":"ahrefs","connection":"default","next_action":{"url":"http://x"}}"#.to_string()
                    };
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        seen
    })
}

#[test]
fn a_server_squatting_a_stale_daemon_port_gets_nothing() {
    let h = TestHome::new();
    h.cmd(["daemon", "start"]).run().success();
    let d = h.daemon().unwrap();
    let port = d["port"].as_u64().unwrap() as u16;
    // The daemon dies without removing daemon.json (kill -9, a reboot).
    Command::new("kill")
        .args(["-9", &d["pid"].as_u64().unwrap().to_string()])
        .status()
        .unwrap();
    let mut tries = 0;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && tries < 100 {
        std::thread::sleep(Duration::from_millis(20));
        tries += 1;
    }
    assert!(h.path("daemon.json").exists(), "daemon.json is stale");
    let fake = squatter(port, authsome::app::home_id(&h.home), 6);
    let key = canary("AKCANARY_");
    let out = h
        .cmd(["login", "ahrefs", "--with-api-key"])
        .stdin(&key)
        .run();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!("port {port}"))
            && out.stderr.contains("answers /api/health as authsome")
            && out.stderr.contains("cannot prove"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("lsof -i"), "{}", out.stderr);
    let seen = String::from_utf8_lossy(&fake.join().unwrap()).into_owned();
    assert!(seen.contains("GET /api/health"), "it was asked: {seen}");
    assert!(!seen.contains(&key), "the key reached the squatter: {seen}");
    assert!(
        !seen.contains("PoP "),
        "a PoP token reached the squatter: {seen}"
    );
    assert!(!seen.contains("POST"), "{seen}");
}

/// `curl` as uid 65534: (status, body).
fn curl_as_nobody(url: &str) -> (u16, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "curl",
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// A3, another local user: the one-time dashboard link and the login form's
/// URL pass through `xdg-open`'s arguments, which every user can read; the
/// daemon refuses every connection of another uid before reading it, so a
/// stolen link stays unspent and works for its owner afterwards.
#[test]
fn connections_of_another_user_are_refused() {
    if !is_root() {
        eprintln!("skipped: switching to another uid needs root (CI runs as root)");
        return;
    }
    let who = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "id",
            "-u",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "65534");

    let (h, url) = started();
    // The open endpoint and the API.
    let (st, body) = curl_as_nobody(&format!("{url}/api/health"));
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("serves another user"), "{body}");
    let (st, _, _) = http("GET", &format!("{url}/api/health"), &[], b"");
    assert_eq!(st, 200, "its own user still gets in");

    // A dashboard link, tried by the other user first.
    let link = h
        .cmd(["dashboard", "--no-browser", "--json"])
        .run()
        .success()
        .json()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = curl_as_nobody(&link);
    assert_eq!(st, 403, "{body}");
    let (st, headers, _) = http("GET", &link, &[], b"");
    assert_eq!(st, 303, "the link was not spent by the refused attempt");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("set-cookie: authsome_dashboard_"),
        "{headers}"
    );

    // A login form's URL.
    let (mut child, form) = start_browser_login(&h, "ahrefs");
    let (st, body) = curl_as_nobody(&form);
    assert_eq!(st, 403, "{body}");
    assert!(!body.contains("csrf"), "no form for another user: {body}");
    let (st, _, page) = http("GET", &form, &[], b"");
    assert_eq!(st, 200, "{page}");
    assert!(page.contains(r#"name="csrf""#));
    child.kill().ok();
    wait_exit(&mut child);
}
