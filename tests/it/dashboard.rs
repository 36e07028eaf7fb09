//! The dashboard (issue #14): `authsome dashboard` and its one-time link,
//! then a person's session in a real browser (headless Chromium driven by
//! Playwright for Python, `tests/clients/dashboard.py`), and the refusals
//! over plain HTTP.
//!
//! The browser is installed by `.ci/run` (Debian's `chromium`, pip's
//! `playwright`; no `playwright install`). Where it is missing the browser
//! test says so and passes, unless `AUTHSOME_TEST_REQUIRE_CLIENTS=1` (set by
//! `.ci/run`) makes that a failure.

use std::process::Command;

use crate::common::lab::Lab;
use crate::common::{bin, canary, http};

/// The Chromium the browser test drives.
fn chromium() -> String {
    std::env::var("AUTHSOME_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Runs `tests/clients/dashboard.py` on the one-time `url` with the lab's
/// home and environment (the script runs `authsome` itself) and `extra`.
pub fn script(lab: &Lab, url: &str, extra: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("python3");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/dashboard.py"
    ))
    .env_clear();
    for k in ["PATH", "HOME", "TMPDIR", "LANG"] {
        if let Ok(v) = std::env::var(k) {
            c.env(k, v);
        }
    }
    c.env("AUTHSOME_HOME", &lab.home.home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", "0")
        .env("NO_COLOR", "1")
        .envs(Lab::env())
        .env("DASH_URL", url)
        .env("BIN", bin())
        .env("UP", lab.up.port.to_string())
        .env("CHROMIUM", chromium())
        .envs(extra.iter().copied());
    c.output().expect("python3")
}

pub fn browser_available() -> bool {
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    let browser = std::path::Path::new(&chromium()).exists();
    if !(playwright && browser) {
        let required = std::env::var("AUTHSOME_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "browser missing (playwright for Python: {playwright}, {}: {browser}); run .ci/run",
            chromium()
        );
        eprintln!("skipped: playwright for Python or Chromium is not installed here");
    }
    playwright && browser
}

/// `authsome dashboard --no-browser --json`: the one-time URL.
pub fn link(lab: &Lab) -> String {
    let out = lab
        .cmd(["dashboard", "--no-browser", "--json"])
        .run()
        .success();
    let v = out.json();
    assert_eq!(v["action"], "open_url", "{}", out.stdout);
    let url = v["url"].as_str().unwrap().to_string();
    let base = lab.home.daemon_url();
    let token = url
        .strip_prefix(&format!("{base}/?t="))
        .unwrap_or_else(|| panic!("{url} is not a link to {base}"));
    assert_eq!(token.len(), 64, "256 bits in hex");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    url
}

#[test]
fn the_cli_prints_a_link_that_works_once() {
    let lab = Lab::new();
    // Without --json the URL goes to stderr, nothing to stdout.
    let out = lab.cmd(["dashboard", "--no-browser"]).run().success();
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let base = lab.home.daemon_url();
    assert!(
        out.stderr.contains(&format!("{base}/?t=")),
        "{}",
        out.stderr
    );

    let url = link(&lab);
    let (st, head, body) = http("GET", &url, &[], b"");
    assert_eq!(st, 303, "{head}\n{body}");
    let head_l = head.to_ascii_lowercase();
    assert!(head_l.contains("\r\nlocation: /\r\n"), "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie_line.contains(attr), "{cookie_line}");
    }
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for h in [
        "content-security-policy: default-src 'self';",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
    ] {
        assert!(head_l.contains(h), "{h}: {head}");
    }

    // The session sees the connection stored by the test; the key never shows.
    let (st, _, body) = http("GET", &format!("{base}/"), &[("Cookie", &cookie)], b"");
    assert_eq!(st, 200);
    assert!(body.contains(r#"data-provider="acme""#), "{body}");
    assert!(!body.contains(&lab.key));
    let csrf = body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();

    // The Runs page says whether the system-wide listener runs.
    let runs = |cookie: &str| {
        http(
            "GET",
            &format!("{base}/ui/runs"),
            &[("Cookie", cookie)],
            b"",
        )
        .2
    };
    assert!(runs(&cookie).contains("Not listening"));
    lab.cmd(["proxy", "env"]).run().success();
    assert!(runs(&cookie).contains("Listening on <code>127.0.0.1:"));

    // Health: `doctor`'s own checks, run by the daemon, with their hints;
    // a vault file others can read fails its check and says how to fix it.
    let health = |cookie: &str| {
        http(
            "GET",
            &format!("{base}/ui/health"),
            &[("Cookie", cookie)],
            b"",
        )
        .2
    };
    let page = health(&cookie);
    for row in [
        r#"data-check="home""#,
        r#"data-check="master key""#,
        r#"data-check="vault""#,
        r#"data-check="upstream""#,
        r#"data-check="identity""#,
        r#"data-check="daemon""#,
        r#"data-check="sandbox""#,
    ] {
        assert!(page.contains(row), "{row}: {page}");
    }
    assert!(page.contains("Every check passes") || page.contains("warning(s) below"));
    let vault = lab.home.path("vault.db");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The result is kept for a few seconds; "Check again" runs the checks anew.
    let (st, head, _) = http(
        "POST",
        &format!("{base}/ui/health"),
        &[
            ("Cookie", &cookie),
            ("Sec-Fetch-Site", "same-origin"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(st, 303, "{head}");
    let page = health(&cookie);
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(page.contains("1 check(s) fail"), "{page}");
    let row = page
        .split(r#"data-check="vault file""#)
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no vault file row: {page}"));
    assert!(row.contains("fails"), "{row}");
    assert!(
        row.contains(&format!("run `chmod 600 {}`", vault.display())),
        "{row}"
    );
    // The lab's master key: generated into the home (the keyring is off and
    // no AUTHSOME_MASTER_KEY is set), shown nowhere.
    assert!(page.contains("Secrets encrypted with"), "{page}");
    let master = std::fs::read_to_string(lab.home.path("master.key")).expect("master.key");
    let master = master.trim();
    assert!(master.len() >= 40, "base64 of 32 bytes: {}", master.len());
    assert!(!page.contains(master));
    assert!(!page.contains(&lab.key));

    // The same page loaded by another site's page (a server on another
    // port of 127.0.0.1 is the same site, and gets the cookie): refused
    // before any check runs.
    for site in ["cross-site", "same-site"] {
        let (st, _, body) = http(
            "GET",
            &format!("{base}/ui/health"),
            &[("Cookie", &cookie), ("Sec-Fetch-Site", site)],
            b"",
        );
        assert_eq!(st, 403, "{site}: {body}");
        assert!(!body.contains("data-check"), "{site}: {body}");
    }

    // Reused token, no token, foreign Host: nothing.
    for (what, url, headers) in [
        ("reused token", url.clone(), vec![]),
        ("no token", format!("{base}/"), vec![]),
        ("no session", format!("{base}/ui/requests"), vec![]),
        (
            "foreign Host",
            format!("{base}/"),
            vec![("Host", "evil.test"), ("Cookie", cookie.as_str())],
        ),
    ] {
        let (st, _, body) = http("GET", &url, &headers, b"");
        assert!(st == 401 || st == 403, "{what}: {st}");
        assert!(!body.contains("data-provider"), "{what}: {body}");
        assert!(!body.contains(&lab.key), "{what}");
    }

    // Forged CSRF and cross-origin posts change nothing.
    let logout = format!("{base}/ui/connections/acme/default/logout");
    let origin = base.clone();
    for (what, origin, form) in [
        ("forged CSRF", origin.as_str(), "csrf=forged".to_string()),
        ("cross-origin", "http://evil.test", format!("csrf={csrf}")),
    ] {
        let (st, _, _) = http(
            "POST",
            &logout,
            &[
                ("Cookie", &cookie),
                ("Origin", origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        );
        assert_eq!(st, 403, "{what}");
    }
    lab.cmd(["list", "--json"])
        .run()
        .success()
        .stdout_has("acme");

    // Every link is audited (who asked), never with its token.
    let audit = lab.cmd(["log", "--json"]).run().success();
    assert!(audit.stdout.contains("dashboard_link"), "{}", audit.stdout);
    let token = url.rsplit('=').next().unwrap();
    assert!(!audit.stdout.contains(token));
    // Nor in the daemon's log, nor the session cookie.
    let log = std::fs::read_to_string(lab.home.path("logs/authsome.log")).unwrap();
    assert!(log.contains("dashboard session opened"), "{log}");
    assert!(!log.contains(token));
    assert!(!log.contains(cookie.split_once('=').unwrap().1));
}

#[test]
fn a_person_uses_the_dashboard_in_a_browser() {
    if !browser_available() {
        return;
    }
    let lab = Lab::new();
    lab.provider(
        "beta",
        &format!("x.acme.test:{}", lab.up.port),
        r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"}"#,
    );
    let beta_key = canary("BETACANARY_");
    let url = link(&lab);
    let shots = std::env::var("AUTHSOME_TEST_SCREENSHOTS")
        .unwrap_or_else(|_| format!("{}/dashboard-screenshots", env!("CARGO_TARGET_TMPDIR")));
    let out = script(
        &lab,
        &url,
        &[
            ("ACME_KEY", lab.key.as_str()),
            ("BETA_KEY", beta_key.as_str()),
            ("SHOTS", shots.as_str()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dashboard.py failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains(r#""ok": true"#), "{stdout}");

    // What the upstream saw: the key typed into the form, injected by the
    // runs; nothing after the logout.
    let recs = lab.up.records();
    let auth_of = |path: &str| {
        recs.iter()
            .find(|r| r.path == path)
            .map(|r| r.all("authorization"))
    };
    let bearer = format!("Bearer {beta_key}");
    assert_eq!(auth_of("/after-connect"), Some(vec![bearer.clone()]));
    assert_eq!(auth_of("/before-logout"), Some(vec![bearer]));
    assert_eq!(
        auth_of("/live-probe"),
        Some(vec![format!("Bearer {}", lab.key)])
    );
    assert_eq!(auth_of("/after-logout"), None, "failed closed: {recs:?}");
    for name in [
        "connections",
        "connect",
        "requests",
        "runs",
        "providers",
        "health",
        "connections-dark",
    ] {
        let p = format!("{shots}/dashboard-{name}.png");
        assert!(std::path::Path::new(&p).exists(), "{p}");
    }
    // The key never reached the daemon's log.
    let log = std::fs::read_to_string(lab.home.path("logs/authsome.log")).unwrap_or_default();
    assert!(!log.contains(&beta_key));
}
