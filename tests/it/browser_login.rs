//! Browser-session logins (issue #15): `authsome login PROVIDER` runs a
//! real Chromium (Debian's, installed by `.ci/run`) at a local HTTPS sign-in
//! site whose page submits its form by itself and sets the session cookies;
//! the CLI reads them over the DevTools pipe and stores them; `authsome run
//! -- curl` then reaches the API with the `Cookie` and CSRF headers, and
//! never sees the values; an expired session fails closed.
//!
//! The browser is `AUTHSOME_BROWSER`, a wrapper script written by the test:
//! it adds `--headless=new` (no display here), maps `*.acme.test` to
//! 127.0.0.1 (the resolver override, for the browser) and trusts exactly
//! the test upstream's key (`--ignore-certificate-errors-spki-list`, not
//! every certificate). Nothing else differs from a user's login.

use std::path::Path;

use crate::common::lab::Lab;
use crate::common::{Out, canary};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium_available() -> bool {
    let here =
        Path::new(&std::env::var("AUTHSOME_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into()))
            .exists();
    if !here {
        let required = std::env::var("AUTHSOME_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(!required, "Chromium missing; run .ci/run");
        eprintln!("skipped: Chromium is not installed here");
    }
    here
}

/// Writes the wrapper; returns (its path, the file it records its arguments in).
fn wrapper(lab: &Lab) -> (String, std::path::PathBuf) {
    let dir = lab.home.dir.path();
    let args = dir.join("browser-args.txt");
    let script = dir.join("chromium-test.sh");
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/upstream.pem");
    let chromium = std::env::var("AUTHSOME_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > '{args}'\n\
             spki=$(openssl x509 -in '{cert}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)\n\
             exec '{chromium}' --headless=new --disable-gpu --host-resolver-rules='MAP *.acme.test 127.0.0.1' --ignore-certificate-errors-spki-list=\"$spki\" \"$@\"\n",
            args = args.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.to_str().unwrap().to_string(), args)
}

fn register(lab: &Lab) {
    let port = lab.up.port;
    lab.provider_json(
        "acmesession",
        &format!(
            r#"{{"name":"acmesession","display_name":"Acme Session","type":"browser","auth_type":"browser","flow":"browser",
                "api_url":["api.acme.test:{port}"],
                "browser":{{"entry_url":"https://login.acme.test:{port}/login","domains":["acme.test"],
                  "cookies":["sid","XSRF"],"extract":[{{"cookie":"XSRF","header":"x-csrf-token"}}],
                  "ttl_hours":1,"ttl_from_cookie":"sid"}},
                "export":{{"ACME_SID":"cookie:sid"}}}}"#
        ),
    );
}

fn assert_clean(label: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{label} contains a cookie value:\n{text}"
        );
    }
}

/// The login succeeded, printed no cookie value, and ended with a
/// `connected` line (returned).
fn connected(login: &Out, secrets: &[&str]) -> serde_json::Value {
    assert_eq!(login.code, 0, "{login:?}");
    assert_clean(
        "login output",
        &(login.stdout.clone() + &login.stderr),
        secrets,
    );
    let done: serde_json::Value = login
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(done["status"], "connected", "{login:?}");
    done
}

/// Every file under `dir`, read whole.
fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

#[test]
fn a_browser_session_is_captured_injected_redacted_and_expires() {
    if !chromium_available() {
        return;
    }
    let lab = Lab::bare();
    register(&lab);
    let sid = canary("SIDCANARY");
    let xsrf = canary("XSRFCANARY");
    let decoy = canary("DECOY");
    *lab.up.login_cookies.lock().unwrap() = vec![
        format!("sid={sid}; Domain=acme.test; Path=/; Secure; HttpOnly; Max-Age=7200"),
        format!("XSRF=\"{xsrf}\"; Domain=acme.test; Path=/; Secure; Max-Age=600"),
        format!("other={decoy}; Domain=acme.test; Path=/; Secure"),
    ];
    let secrets = [sid.as_str(), xsrf.as_str(), decoy.as_str()];
    let (browser, args_file) = wrapper(&lab);

    let login = lab
        .cmd(["login", "acmesession", "--json", "--timeout", "60"])
        .env("AUTHSOME_BROWSER", &browser)
        .env("AUTHSOME_LOG", "debug")
        .run();
    let done = connected(&login, &secrets);
    // The connection ends when the shortest-lived cookie does (XSRF, 600 s).
    let expires = done["expires_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now + 500..=now + 600).contains(&expires),
        "{expires} vs {now}"
    );

    // The browser ran with a fresh private profile, which is gone now.
    let args = std::fs::read_to_string(&args_file).unwrap();
    let profile = args
        .lines()
        .find_map(|l| l.strip_prefix("--user-data-dir="))
        .expect("a --user-data-dir");
    assert!(profile.contains("authsome-browser-"), "{profile}");
    assert!(!Path::new(profile).exists(), "{profile} was not removed");
    assert!(args.contains("--remote-debugging-pipe"));
    let as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert_eq!(args.contains("--no-sandbox"), as_root, "{args}");

    // The agent's request gets the session; its own cookie and CSRF header are replaced.
    let out: Out = lab.run_sh(
        "curl -sS -H 'Cookie: sid=agent-guess; mine=1' -H 'x-csrf-token: agent' \"$URL/v1/me\"; echo; \
         echo \"sid placeholder: $ACME_SID\"",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_clean(
        "the agent's output",
        &(out.stdout.clone() + &out.stderr),
        &secrets,
    );
    assert!(out.stdout.contains("/v1/me"), "{out:?}");
    assert!(
        !out.stdout.contains("sid placeholder: \n"),
        "a placeholder is exported"
    );
    let rec = lab
        .up
        .records()
        .into_iter()
        .rfind(|r| r.path == "/v1/me")
        .unwrap();
    assert_eq!(rec.all("cookie"), [format!("sid={sid}; XSRF=\"{xsrf}\"")]);
    assert_eq!(rec.all("x-csrf-token"), std::slice::from_ref(&xsrf));

    // No cookie value anywhere in the home: logs, audit, vault (sealed).
    let mut files = Vec::new();
    all_files(&lab.home.home, &mut files);
    assert!(
        files.iter().any(|(p, _)| p.ends_with(".log")),
        "no log file"
    );
    for (path, bytes) in &files {
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{path} holds a cookie value"
            );
        }
    }

    // Expired: the proxy refuses, saying how to sign in again.
    let db = rusqlite::Connection::open(lab.home.path("vault.db")).unwrap();
    db.execute(
        "UPDATE connections SET expires_at = ?1 WHERE provider = 'acmesession'",
        [now - 10],
    )
    .unwrap();
    drop(db);
    lab.cmd(["daemon", "restart"]).run().success();
    let before = lab.up.records().len();
    let out = lab.run_sh("curl -sS -w '\\n%{http_code}\\n' \"$URL/v1/me\"");
    assert!(out.stdout.contains("\n401\n"), "{out:?}");
    assert!(out.stdout.contains("expired"), "{out:?}");
    assert!(out.stdout.contains("authsome login acmesession"), "{out:?}");
    assert_eq!(
        lab.up.records().len(),
        before,
        "nothing reached the upstream"
    );
}

#[test]
fn without_a_local_browser_the_login_says_where_and_why() {
    let lab = Lab::bare();
    register(&lab);
    let out = lab
        .cmd(["login", "acmesession", "--no-browser", "--json"])
        .run()
        .code(7);
    let first: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["action"], "open_url");
    assert_eq!(
        first["url"],
        format!("https://login.acme.test:{}/login", lab.up.port)
    );
    assert_eq!(first["needs"], "local_browser");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("needs a browser on this machine"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("needs a browser on this machine"),
        "{out:?}"
    );
    // No browser at the path given: an invalid setting, said as such.
    lab.cmd(["login", "acmesession"])
        .env("AUTHSOME_BROWSER", "/nonexistent/chromium")
        .run()
        .code(4)
        .stderr_has("AUTHSOME_BROWSER");
    // An API key is not how it signs in.
    lab.cmd(["login", "acmesession", "--with-api-key"])
        .stdin("k")
        .run()
        .code(4)
        .stderr_has("browser session");
}

/// An X server for one test (Debian's `xvfb`, installed by `.ci/run`),
/// stopped when dropped.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Option<Xvfb> {
        let found = std::process::Command::new("sh")
            .args(["-c", "command -v Xvfb"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let required = std::env::var("AUTHSOME_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
            assert!(!required, "Xvfb missing; run .ci/run");
            eprintln!("skipped: Xvfb is not installed here");
            return None;
        }
        // `-displayfd 1`: the server picks a free display and prints its number.
        let mut child = std::process::Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "1280x800x24",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n = line.trim();
        assert!(
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
            "Xvfb said {line:?}"
        );
        Some(Xvfb {
            display: format!(":{n}"),
            child,
        })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM first: Xvfb then removes its lock file and socket.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The desktop case: no `AUTHSOME_BROWSER`, a display, and the browser
/// found on `PATH` opens a real window (on an Xvfb display here) where the
/// sign-in happens; the session is captured the same way.
#[test]
fn on_a_desktop_the_browser_on_path_opens_a_window() {
    if !chromium_available() {
        return;
    }
    let Some(x) = Xvfb::start() else {
        return;
    };
    let lab = Lab::bare();
    register(&lab);
    let sid = canary("SIDCANARY");
    let xsrf = canary("XSRFCANARY");
    *lab.up.login_cookies.lock().unwrap() = vec![
        format!("sid={sid}; Domain=acme.test; Path=/; Secure; HttpOnly; Max-Age=7200"),
        format!("XSRF={xsrf}; Domain=acme.test; Path=/; Secure; Max-Age=7200"),
    ];
    // `chromium` on PATH: the same wrapper minus `--headless` (it only
    // maps the test names to 127.0.0.1 and trusts the test upstream's key).
    let (script, args_file) = wrapper(&lab);
    let text = std::fs::read_to_string(&script).unwrap();
    let bin = lab.home.dir.path().join("desktop-bin");
    std::fs::create_dir(&bin).unwrap();
    let headful = bin.join("chromium");
    std::fs::write(&headful, text.replace(" --headless=new", "")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&headful, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let login = lab
        .cmd(["login", "acmesession", "--json", "--timeout", "60"])
        .env_remove("AUTHSOME_BROWSER")
        .env_remove("WAYLAND_DISPLAY")
        .env("DISPLAY", &x.display)
        .env("PATH", &path)
        .run();
    connected(&login, &[&sid, &xsrf]);
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(!args.contains("headless"), "{args}");
    assert!(args.contains("--remote-debugging-pipe"), "{args}");

    let out = lab.run_sh("curl -sS \"$URL/v1/desk\"");
    assert_eq!(out.code, 0, "{out:?}");
    let rec = lab
        .up
        .records()
        .into_iter()
        .rfind(|r| r.path == "/v1/desk")
        .unwrap();
    assert_eq!(rec.all("cookie"), [format!("sid={sid}; XSRF={xsrf}")]);
}
