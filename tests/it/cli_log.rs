//! `authsome log`: the audit trail of every kind of change, without secrets.

use crate::common::TestHome;

#[test]
fn audit_log_records_each_kind_of_event_and_no_secret() {
    let h = TestHome::new();
    let secret = crate::common::canary("AKCANARY_");
    h.login("ahrefs", &secret);
    h.cmd(["login", "openai", "--with-api-key"])
        .stdin("not-an-openai-key")
        .run()
        .code(4);
    h.cmd(["export", "ahrefs"]).run().success();
    h.cmd(["login", "ahrefs", "-c", "two", "--with-api-key"])
        .stdin("k2")
        .run()
        .success();
    h.cmd(["set-default", "ahrefs", "two"]).run().success();
    h.cmd(["logout", "ahrefs", "-c", "two"]).run().success();
    let f = h.dir.path().join("p.json");
    std::fs::write(&f, r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test"],"api_key":{}}"#).unwrap();
    h.cmd(["provider", "register", f.to_str().unwrap()])
        .run()
        .success();
    h.cmd(["provider", "remove", "acme"]).run().success();
    // refused changes are on the record too (issue #11)
    h.cmd(["logout", "ahrefs", "-c", "nope"]).run().code(3);
    h.cmd(["set-default", "ahrefs", "nope"]).run().code(3);
    h.cmd(["provider", "remove", "ahrefs"]).run().code(4);

    let entries = h.cmd(["log", "--json"]).run().success().json();
    let events: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("login", "ok"),
        ("login", "refused"),
        ("export", "ok"),
        ("set_default", "ok"),
        ("logout", "ok"),
        ("provider.register", "ok"),
        ("provider.remove", "ok"),
        ("logout", "refused"),
        ("set_default", "refused"),
        ("provider.remove", "refused"),
    ] {
        assert!(
            events.contains(&(want.0.into(), want.1.into())),
            "missing {want:?} in {events:?}"
        );
    }
    let refusal = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "logout" && e["outcome"] == "refused")
        .unwrap();
    assert_eq!(refusal["detail"]["code"], "connection_not_found");
    // newest first, and the actor is this home's identity
    assert_eq!(events[0], ("provider.remove".into(), "refused".into()));
    let did = h.cmd(["whoami", "--json"]).run().success().json()["did"].clone();
    assert_eq!(entries[0]["actor"], did);
    assert!(!entries.to_string().contains(&secret));
    let human = h.cmd(["log", "-n", "3"]).run().success();
    assert_eq!(
        human.stdout.lines().count(),
        4,
        "header + 3 rows:\n{}",
        human.stdout
    );
    assert!(human.stdout.contains("provider.remove"));
    assert!(human.stdout.contains("refused"));
}

/// `authsome log --requests` (issue #13): an empty log is an empty JSON
/// array, the route needs PoP, and the file is private.
#[test]
fn request_log_starts_empty_private_and_behind_pop() {
    let h = TestHome::new();
    let out = h.cmd(["log", "--requests", "--json"]).run().success();
    assert_eq!(out.json(), serde_json::json!([]), "{}", out.stdout);
    let human = h.cmd(["log", "--requests"]).run().success();
    assert_eq!(human.stdout, "");
    assert!(
        human.stderr.contains("The request log is empty"),
        "{}",
        human.stderr
    );
    let url = h.daemon_url();
    for path in ["/api/requests", "/requests", "/api/requests?after=0"] {
        let (st, _, body) = crate::common::http("GET", &format!("{url}{path}"), &[], b"");
        assert_eq!(st, 401, "{path}: {body}");
        assert!(body.contains("\"unauthorized\""), "{path}: {body}");
    }
    let logs = h.path("logs");
    assert_eq!(crate::common::mode(&logs), 0o700);
    assert_eq!(crate::common::mode(&logs.join("requests.jsonl")), 0o600);
    // filters are checked by the daemon; `--follow` needs `--requests`
    h.cmd(["log", "--requests", "--status", "teapot"])
        .run()
        .code(4)
        .stderr_has("not a status filter");
    h.cmd(["log", "--follow"]).run().code(2);
}

/// `--follow` stops by itself, with a clear error, when the daemon goes away.
#[test]
fn following_the_request_log_ends_when_the_daemon_stops() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let h = TestHome::new();
    h.cmd(["daemon", "start"]).run().success();
    let mut child = Command::new(crate::common::bin())
        .args(["log", "--requests", "--follow"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("AUTHSOME_HOME", &h.home)
        .env("AUTHSOME_PORT", "0")
        .env("AUTHSOME_KEYRING", "off")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(child.try_wait().unwrap().is_none(), "follow ended early");
    h.stop_daemon();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("`log --requests --follow` still runs after the daemon stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.starts_with("TIME (UTC)"), "{stdout}");
    assert!(stderr.contains("went away; stopped following"), "{stderr}");
}

/// A symlink planted where the request log goes is refused (T20): the
/// daemon does not start, and says why.
#[test]
fn a_symlink_at_the_request_log_path_is_refused() {
    let h = TestHome::new();
    let logs = h.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let target = h.dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, logs.join("requests.jsonl")).unwrap();
    let out = h.cmd(["daemon", "start"]).run();
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(!target.exists());
}
