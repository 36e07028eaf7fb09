//! The daemon's lifecycle through the real binary: auto-start and reuse,
//! the port rules, `AUTHSOME_BASE_URL`, restart, stop, logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestHome, bin};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn commands_start_the_daemon_once_and_reuse_it() {
    let h = TestHome::new();
    assert!(h.daemon().is_none());
    h.login("ahrefs", "k");
    let first = h.daemon().expect("login starts the daemon");
    h.cmd(["list"]).run().success();
    h.cmd(["whoami"]).run().success();
    assert_eq!(
        h.daemon().unwrap()["pid"],
        first["pid"],
        "the same daemon answers"
    );
    let st = h.cmd(["daemon", "status", "--json"]).run().success().json();
    assert_eq!(st["running"], true);
    assert_eq!(st["pid"], first["pid"]);
    let logs = h.cmd(["daemon", "logs", "-n", "50"]).run().success();
    assert!(logs.stdout.contains("daemon listening"), "{}", logs.stdout);
    h.cmd(["daemon", "stop"])
        .run()
        .success()
        .stderr_has("Stopped the daemon");
    assert!(h.daemon().is_none(), "daemon.json is removed on exit");
    h.cmd(["daemon", "status"])
        .run()
        .code(1)
        .stdout_has("not running");
    // stored data survives the restart
    h.cmd(["export", "ahrefs"])
        .run()
        .success()
        .stdout_has("AHREFS_API_KEY=k");
}

#[test]
fn daemon_start_is_idempotent_and_restart_changes_the_pid() {
    let h = TestHome::new();
    let a = h.cmd(["daemon", "start", "--json"]).run().success().json();
    assert_eq!(a["status"], "started");
    let b = h.cmd(["daemon", "start", "--json"]).run().success().json();
    assert_eq!(b["status"], "already_running");
    assert_eq!(a["pid"], b["pid"]);
    let c = h
        .cmd(["daemon", "restart", "--json"])
        .run()
        .success()
        .json();
    assert_ne!(c["pid"], a["pid"]);
}

#[test]
fn a_port_held_by_another_program_is_a_clear_error() {
    let h = TestHome::new();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    // as the preferred port (the 7998 rule) and as a forced port
    for (var, other) in [
        ("AUTHSOME_PREFERRED_PORT", "AUTHSOME_PORT"),
        ("AUTHSOME_PORT", "AUTHSOME_PREFERRED_PORT"),
    ] {
        h.cmd(["list"])
            .env_remove(other)
            .env(var, &port)
            .run()
            .code(4)
            .stderr_has(&format!("port {port} is already in use by another program"))
            .stderr_has(&format!("lsof -i :{port}"));
    }
    drop(squatter);
}

#[test]
fn a_second_home_gets_its_own_port_and_the_first_keeps_the_preferred_one() {
    let a = TestHome::new();
    let b = TestHome::new();
    let port = free_port();
    let pref = port.to_string();
    a.cmd(["login", "ahrefs", "--with-api-key"])
        .env_remove("AUTHSOME_PORT")
        .env("AUTHSOME_PREFERRED_PORT", &pref)
        .stdin("a-key")
        .run()
        .success();
    b.cmd(["login", "ahrefs", "--with-api-key"])
        .env_remove("AUTHSOME_PORT")
        .env("AUTHSOME_PREFERRED_PORT", &pref)
        .stdin("b-key")
        .run()
        .success();
    assert_eq!(a.daemon().unwrap()["port"], port);
    assert_ne!(
        b.daemon().unwrap()["port"],
        port,
        "the second home took a free port"
    );
    assert_eq!(
        a.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=a-key\n"
    );
    assert_eq!(
        b.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=b-key\n"
    );
    // this home's daemon already holds the preferred port: a second one is refused
    a.cmd(["daemon", "serve"])
        .env_remove("AUTHSOME_PORT")
        .env("AUTHSOME_PREFERRED_PORT", &pref)
        .run()
        .code(4)
        .stderr_has("already running");
}

#[test]
fn base_url_unreachable_is_named_and_never_auto_started() {
    let h = TestHome::new();
    h.cmd(["list"])
        .env("AUTHSOME_BASE_URL", "http://0.0.0.0:9")
        .run()
        .code(4)
        .stderr_has("AUTHSOME_BASE_URL is set but unreachable: http://0.0.0.0:9")
        .stderr_has("hint:");
    assert!(h.daemon().is_none());
    // the older name works too
    h.cmd(["list"])
        .env("AUTHSOME_DAEMON_URL", "http://0.0.0.0:9")
        .run()
        .code(4)
        .stderr_has("unreachable");
}

#[test]
fn a_loopback_base_url_starts_the_daemon_on_that_port() {
    let h = TestHome::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env("AUTHSOME_BASE_URL", &url)
        .stdin("k")
        .run()
        .success();
    assert_eq!(h.daemon().unwrap()["port"], port);
    h.cmd(["list"])
        .env("AUTHSOME_BASE_URL", &url)
        .run()
        .success()
        .stdout_has("ahrefs");
}

#[test]
fn restart_mid_session_loses_the_session_and_nothing_stored() {
    let h = TestHome::new();
    h.login("ahrefs", "kept");
    let mut login = Command::new(bin())
        .args(["login", "openai", "--no-browser", "--json"])
        .env("AUTHSOME_HOME", &h.home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", "0")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(login.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let step: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(step["action"], "open_url");
    h.cmd(["daemon", "restart"]).run().success();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = login.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "login kept waiting after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut login.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("no such login session"), "{err}");
    h.cmd(["export", "ahrefs"])
        .run()
        .success()
        .stdout_has("AHREFS_API_KEY=kept");
}

#[test]
fn a_daemon_of_another_version_is_replaced() {
    let h = TestHome::new();
    h.login("ahrefs", "k");
    h.stop_daemon();
    let home_id = authsome::app::home_id(&h.home);
    // A fake "old" daemon: answers health with another version, stops on request.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let fake = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 4096];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    // It holds the key in daemon.json, so it can prove it is this home's.
                    let body = match req
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.strip_prefix("/api/health/proof?challenge="))
                    {
                        Some(c) => {
                            format!(
                                r#"{{"proof":"{}"}}"#,
                                authsome::pop::daemon_proof("OLDKEY", c)
                            )
                        }
                        None => format!(
                            r#"{{"service":"authsome","status":"ok","version":"0.0.1","home_id":"{home_id}"}}"#
                        ),
                    };
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    if req.starts_with("POST /api/daemon/shutdown") {
                        return true;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        false
    });
    let file = serde_json::json!({"pid": 999_999, "port": port, "url": format!("http://127.0.0.1:{port}"), "version": "0.0.1",
        "home": h.home, "home_id": authsome::app::home_id(&h.home), "started_at": 0, "proof_key": "OLDKEY"});
    std::fs::write(h.home.join("daemon.json"), file.to_string()).unwrap();
    let out = h.cmd(["list"]).run().success();
    assert!(
        out.stderr
            .contains("Restarting the daemon (it runs version 0.0.1"),
        "{}",
        out.stderr
    );
    assert!(fake.join().unwrap(), "the old daemon was asked to stop");
    assert_ne!(h.daemon().unwrap()["pid"], 999_999);
    h.cmd(["export", "ahrefs"]).run().success();
}

/// Processes running `daemon serve` for this home (read from /proc; root or same user).
fn daemons_of(h: &TestHome) -> Vec<u32> {
    let want = format!("AUTHSOME_HOME={}", h.home.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        if has(&cmdline, b"daemon\0serve")
            && environ.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

#[test]
fn concurrent_commands_on_a_fresh_home_start_one_daemon() {
    let h = TestHome::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(bin())
                .arg("list")
                .env("AUTHSOME_HOME", &h.home)
                .env("AUTHSOME_KEYRING", "off")
                .env("AUTHSOME_PORT", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let pids = daemons_of(&h);
    assert_eq!(pids.len(), 1, "daemons running for this home: {pids:?}");
    assert_eq!(h.daemon().unwrap()["pid"], pids[0]);
}

#[test]
fn a_second_daemon_for_the_same_home_refuses_to_start() {
    let h = TestHome::new();
    h.cmd(["daemon", "start"]).run().success();
    let url = h.daemon_url();
    h.cmd(["daemon", "serve"])
        .run()
        .code(4)
        .stderr_has(&format!("already running at {url}"));
    assert_eq!(
        h.daemon_url(),
        url,
        "the running daemon keeps its daemon.json"
    );
}

#[test]
fn daemon_side_settings_that_differ_from_the_running_daemon_are_named() {
    // AUTHSOME_RESOLVE is read when the daemon starts; setting another
    // value for a later command changes nothing, and says so (issue #12).
    let h = TestHome::new();
    h.cmd(["daemon", "start"])
        .env("AUTHSOME_RESOLVE", "a.test=127.0.0.1")
        .run()
        .success();
    let out = h
        .cmd(["list"])
        .env("AUTHSOME_RESOLVE", "b.test=127.0.0.1")
        .run()
        .success();
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("AUTHSOME_RESOLVE set here"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("authsome daemon restart"),
        "{}",
        out.stderr
    );
    let same = h
        .cmd(["list"])
        .env("AUTHSOME_RESOLVE", "a.test=127.0.0.1")
        .run()
        .success();
    assert!(!same.stderr.contains("warning"), "{}", same.stderr);
    // doctor reports what the daemon runs with, not this shell's value.
    let d: serde_json::Value = serde_json::from_str(
        &h.cmd(["doctor", "--json"])
            .env("AUTHSOME_RESOLVE", "b.test=127.0.0.1")
            .run()
            .stdout,
    )
    .unwrap();
    let check = |name: &str| {
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check: {d}"))
    };
    let up = check("upstream");
    assert!(
        up["detail"].as_str().unwrap().contains("a.test=127.0.0.1"),
        "{up}"
    );
    assert!(!up["detail"].as_str().unwrap().contains("b.test"), "{up}");
    let env = check("daemon env");
    assert_eq!(env["status"], "warn", "{env}");
    assert!(
        env["detail"]
            .as_str()
            .unwrap()
            .contains("AUTHSOME_RESOLVE=b.test"),
        "{env}"
    );
}
