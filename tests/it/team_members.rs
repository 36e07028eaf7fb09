//! A shared daemon's team (issue #16): the server home (an admin) runs its
//! daemon on loopback in front of a local upstream; a member's CLI in a
//! second home talks to it with `AUTHSOME_BASE_URL`. The member sees and
//! uses only what it was granted, gets 403 (and nothing upstream) for the
//! rest, exports only with `--export`, is on the record under its own
//! identity, and is refused from the request after its removal. Rows
//! written into the database outside authsome are ignored.

use authsome::clock::now_unix;
use authsome::home::Home;
use authsome::identity::Identity;
use authsome::pop;

use crate::common::lab::Lab;
use crate::common::{Cmd, TestHome, canary, http};

const CURL: &str = "curl -sS -w '\\n%{http_code}'";

/// A second home: its identity, as its `authsome whoami` prints it.
fn member_home() -> (TestHome, String) {
    let m = TestHome::new();
    let who = m.cmd(["whoami", "--json"]).run().success().json();
    let did = who["did"].as_str().unwrap().to_string();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    m.stop_daemon();
    (m, did)
}

/// `authsome ARGS` in the member's home, against the server's daemon. (Its
/// run is unconfined: the sandbox hands its listener to a daemon of the
/// same home, which a member of a remote server does not have.)
fn as_member<I, S>(m: &TestHome, server: &str, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    m.cmd(args)
        .env("AUTHSOME_BASE_URL", server)
        .env("AUTHSOME_SANDBOX", "off")
}

/// The member runs `sh -c script` (which sees `$URL` and `$UP`) under `authsome run`.
fn member_run(
    lab: &Lab,
    m: &TestHome,
    server: &str,
    flags: &[&str],
    script: &str,
) -> crate::common::Out {
    let mut args = vec!["run".to_string()];
    args.extend(flags.iter().map(|s| s.to_string()));
    args.extend(["--", "sh", "-c", script].map(String::from));
    as_member(m, server, args)
        .env("URL", &lab.url(""))
        .env("UP", &lab.up.port.to_string())
        .run()
}

/// `METHOD path` signed by `home`'s identity, straight to the daemon at `url`.
fn signed(home: &TestHome, url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let id = Identity::load(&Home::new(&home.home)).unwrap().unwrap();
    let auth = pop::authorization(&id, method, path, body.as_bytes(), now_unix());
    let (status, _, body) = http(
        method,
        &format!("{url}{path}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    (status, body)
}

/// A second provider, `beta`, on `x.acme.test` (the same upstream), logged in.
fn with_beta(lab: &Lab) -> String {
    lab.provider(
        "beta",
        &format!("x.acme.test:{}", lab.up.port),
        r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"}"#,
    );
    let key = canary("BETACANARY_");
    lab.cmd(["login", "beta", "--with-api-key"])
        .stdin(&key)
        .run()
        .success();
    key
}

fn audit(cmd: Cmd) -> Vec<serde_json::Value> {
    cmd.run().success().json().as_array().unwrap().clone()
}

#[test]
fn a_member_sees_and_uses_only_what_it_was_granted() {
    let lab = Lab::new();
    let beta_key = with_beta(&lab);
    let server = lab.home.daemon_url();
    let (m, did) = member_home();

    // Not a member yet: the server does not trust its signature.
    as_member(&m, &server, ["list"])
        .run()
        .code(1)
        .stderr_has("not trusted");
    // An admin adds it; what is not a did:key is refused before it is sent.
    lab.cmd(["team", "add", "did:key:nope", "--role", "member"])
        .run()
        .code(4)
        .stderr_has("authsome whoami");
    lab.cmd(["team", "add", &did, "--role", "member"])
        .run()
        .success();
    // A member calls no admin endpoint.
    as_member(&m, &server, ["team", "list"])
        .run()
        .code(1)
        .stderr_has("admin");
    // Nothing granted: nothing seen.
    let v = as_member(&m, &server, ["list", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(v, serde_json::json!([]));

    lab.cmd(["team", "grant", &did, "acme"]).run().success();
    let team = lab.cmd(["team", "list", "--json"]).run().success().json();
    let me = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["did"] == did.as_str())
        .unwrap()
        .clone();
    assert_eq!(me["role"], "member");
    assert_eq!(
        me["grants"],
        serde_json::json!([{"provider": "acme", "connection": "*", "export": false}])
    );
    let v = as_member(&m, &server, ["list", "--json"])
        .run()
        .success()
        .json();
    let providers: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, vec!["acme"], "{v}");

    // The granted provider: exactly one credential upstream.
    let out = member_run(
        &lab,
        &m,
        &server,
        &[],
        &format!("{CURL} -H 'Authorization: Bearer mine' \"$URL/granted\""),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.trim_end().ends_with("200"), "{out:?}");
    let recs = lab.up.records();
    let rec = recs
        .iter()
        .find(|r| r.path == "/granted")
        .expect("the request reached the upstream");
    assert_eq!(
        rec.all("authorization"),
        vec![format!("Bearer {}", lab.key)]
    );
    let seen = lab.up.records().len();

    // A connection not granted: 403 when the run is created, nothing runs.
    let out = member_run(
        &lab,
        &m,
        &server,
        &["--connection", "beta=default"],
        "echo ran",
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("ran"), "{out:?}");
    assert!(out.stderr.contains("not granted"), "{out:?}");
    // A provider not granted: refused at CONNECT, before anything is
    // dialled (curl -v shows the proxy's answer to its CONNECT); and an
    // absolute-form request to its host likewise.
    let out = member_run(
        &lab,
        &m,
        &server,
        &[],
        &format!(
            "curl -sS -v \"https://x.acme.test:$UP/beta\" 2>&1 | grep -i -e '^< HTTP' -e '^< x-authsome-error'; \
             echo; {CURL} -x \"$HTTPS_PROXY\" \"http://x.acme.test:$UP/plain\"; echo"
        ),
    );
    let lower = out.stdout.to_ascii_lowercase();
    assert!(lower.contains("< http/1.1 403"), "{out:?}");
    assert!(
        lower.contains("< x-authsome-error: authsome_not_granted"),
        "the CONNECT itself is refused as not granted: {out:?}"
    );
    assert!(
        out.stdout.contains("\"error\":\"authsome_not_granted\"") && out.stdout.contains("\n403"),
        "{out:?}"
    );
    assert_eq!(lab.up.records().len(), seen, "nothing went upstream");
    assert!(
        lab.up
            .records()
            .iter()
            .all(|r| !r.all("authorization").iter().any(|a| a.contains(&beta_key))),
        "beta's key never left"
    );

    // A grant of one named connection (not the provider's default): the
    // run uses that one, and may ask for no other; revoked, the host is
    // refused again.
    let work_key = canary("BETAWORK_");
    lab.cmd(["login", "beta", "-c", "work", "--with-api-key"])
        .stdin(&work_key)
        .run()
        .success();
    lab.cmd(["team", "grant", &did, "beta/work"])
        .run()
        .success();
    let out = member_run(
        &lab,
        &m,
        &server,
        &["--connection", "beta=other"],
        "echo ran",
    );
    assert!(
        out.code != 0 && out.stderr.contains("not granted"),
        "{out:?}"
    );
    let out = member_run(
        &lab,
        &m,
        &server,
        &[],
        &format!("{CURL} \"https://x.acme.test:$UP/beta-granted\""),
    );
    assert!(out.stdout.trim_end().ends_with("200"), "{out:?}");
    let recs = lab.up.records();
    let rec = recs.iter().find(|r| r.path == "/beta-granted").unwrap();
    assert_eq!(rec.all("authorization"), vec![format!("Bearer {work_key}")]);
    lab.cmd(["team", "revoke", &did, "beta/work"])
        .run()
        .success();
    let seen = lab.up.records().len();
    let out = member_run(
        &lab,
        &m,
        &server,
        &[],
        &format!("{CURL} \"https://x.acme.test:$UP/beta-revoked\"; echo \" curl=$?\""),
    );
    assert!(out.stdout.contains("curl=56"), "{out:?}");
    assert_eq!(lab.up.records().len(), seen, "nothing went upstream");

    // The route that returns a header value is an admin's, granted or not.
    let (status, body) = signed(
        &m,
        &server,
        "POST",
        "/api/credentials/resolve",
        &format!(r#"{{"host":"api.acme.test","port":{}}}"#, lab.up.port),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("admin_only") && !body.contains(&lab.key),
        "{body}"
    );

    // Export: refused (and on the record) until the grant allows it.
    as_member(&m, &server, ["export", "acme"])
        .run()
        .code(1)
        .stderr_has("--export");
    lab.cmd(["team", "grant", &did, "acme", "--export"])
        .run()
        .success();
    as_member(&m, &server, ["export", "acme"])
        .run()
        .success()
        .stdout_has(&lab.key);

    // The audit log: the member's uses under its identity; the member sees its own only.
    let all = audit(lab.cmd(["log", "--json"]));
    let by_member: Vec<(String, String)> = all
        .iter()
        .filter(|e| e["actor"] == did.as_str())
        .map(|e| {
            (
                e["event"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("export", "refused"),
        ("export", "ok"),
        ("proxy.run.start", "ok"),
        ("proxy.run.start", "refused"),
    ] {
        assert!(
            by_member.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {by_member:?}"
        );
    }
    assert!(
        all.iter()
            .any(|e| e["event"] == "team.grant" && e["actor"] != did.as_str()),
        "team changes are on the record under the admin"
    );
    // Its proxied use too (written by the request log's writer: bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let all = audit(lab.cmd(["log", "--json"]));
        if all.iter().any(|e| {
            e["event"] == "credential.use" && e["actor"] == did.as_str() && e["provider"] == "acme"
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no credential.use by the member: {all:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let own = audit(as_member(&m, &server, ["log", "--json"]));
    assert!(!own.is_empty());
    assert!(own.iter().all(|e| e["actor"] == did.as_str()), "{own:?}");

    // The last admin of the roster stays.
    let (_other, other) = member_home();
    lab.cmd(["team", "add", &other, "--role", "admin"])
        .run()
        .success();
    lab.cmd(["team", "remove", &other]).run().code(6);
    lab.cmd([
        "team",
        "remove",
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
    ])
    .run()
    .code(3);

    // Removed: its open runs end with it, and its next call is refused.
    let mut bg = std::process::Command::new(crate::common::bin())
        .args(["run", "--", "sleep", "60"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("AUTHSOME_HOME", &m.home)
        .env("AUTHSOME_PORT", "0")
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_BASE_URL", &server)
        .env("AUTHSOME_SANDBOX", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runs = || {
        lab.cmd(["proxy", "status", "--json"])
            .run()
            .success()
            .json()["runs"]
            .as_array()
            .unwrap()
            .len()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while runs() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the member's run did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = lab
        .cmd(["team", "remove", &did, "--json"])
        .run()
        .success()
        .json();
    assert_eq!(out["runs_ended"], 1, "{out}");
    assert_eq!(runs(), 0);
    bg.kill().ok();
    bg.wait().ok();
    as_member(&m, &server, ["list"])
        .run()
        .code(1)
        .stderr_has("not trusted");
    let team = lab.cmd(["team", "list", "--json"]).run().success().json();
    assert!(!team.to_string().contains(&did));
}

#[test]
fn rows_written_into_the_database_outside_authsome_are_ignored() {
    let lab = Lab::new();
    let (m, did) = member_home();
    let (n, granted) = member_home();
    lab.cmd(["team", "add", &granted]).run().success();
    lab.cmd(["team", "grant", &granted, "acme"]).run().success();
    lab.home.stop_daemon();
    // What a database operator could do: insert an admin row, and copy a
    // valid grant's tag onto a grant for themselves.
    let db = lab.home.path("vault.db");
    let sql = format!(
        "INSERT INTO team_members (did, role, added_at, tag) VALUES ('{did}', 'admin', 0, x'00'); \
         INSERT INTO team_grants (did, provider, connection, allow_export, granted_at, tag) \
         SELECT '{did}', provider, connection, 1, granted_at, tag FROM team_grants;"
    );
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(&sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The daemon starts again (with the admin's next command) and ignores both rows.
    let team = lab.cmd(["team", "list", "--json"]).run().success().json();
    let server = lab.home.daemon_url();
    assert!(!team["members"].to_string().contains(&did), "{team}");
    let ignored = team["ignored"].to_string();
    assert!(ignored.contains(&did), "{team}");
    // The operator's identity is not trusted: not even a member.
    as_member(&m, &server, ["list"])
        .run()
        .code(1)
        .stderr_has("not trusted");
    // Readiness says so too.
    let (status, body) = signed(&lab.home, &server, "GET", "/api/ready", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("team: 2 row(s) ignored"), "{body}");
    // A member is told the outcome, not the details (nor the key source).
    let (status, body) = signed(&n, &server, "GET", "/api/ready", "");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("ignored") && !body.contains(&did), "{body}");
    assert!(body.contains("\"encryption_backend\":\"\""), "{body}");
    // The human output says what was ignored and why.
    lab.cmd(["team", "list"])
        .run()
        .success()
        .stderr_has("written outside authsome");
}

#[test]
fn team_commands_refuse_bad_input_before_asking_the_daemon() {
    let h = TestHome::new();
    let other = tempfile::tempdir().unwrap();
    let did = Identity::load_or_create(&Home::new(other.path()))
        .unwrap()
        .did()
        .to_string();
    h.cmd(["team", "add", &did, "--role", "root"]).run().code(2);
    h.cmd(["team", "add", "did:web:example.com"])
        .run()
        .code(4)
        .stderr_has("not a did:key");
    for target in ["acme/", "/work", ""] {
        h.cmd(["team", "grant", &did, target])
            .run()
            .code(4)
            .stderr_has("PROVIDER/CONNECTION");
    }
    assert!(h.daemon().is_none(), "no daemon was started for bad input");
}

/// A member's run is confined on the server whatever its client asks (no
/// service on the server's loopback, no process of the server's to watch),
/// and it ends when the member's grant is taken back.
#[test]
fn a_members_run_is_confined_by_the_server_and_ends_with_its_grant() {
    let lab = Lab::new();
    let server = lab.home.daemon_url();
    let (m, did) = member_home();
    lab.cmd(["team", "add", &did, "--role", "member"])
        .run()
        .success();
    lab.cmd(["team", "grant", &did, "acme"]).run().success();
    // A member crafting its own request: unconfined, a loopback port of
    // the server's let through, and pid 1 (which would never die).
    let local = lab.up.http_port;
    let body = format!(r#"{{"sandbox":false,"allow_localhost":[{local}],"pid":1}}"#);
    let (status, created) = signed(&m, &server, "POST", "/api/proxy/runs", &body);
    assert_eq!(status, 200, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let proxy = created["proxy_url"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    // A service on the server's loopback, through the run's proxy: refused,
    // nothing reaches it.
    let before = lab.up.records().len();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "-x",
            &proxy,
        ])
        .arg(format!("http://127.0.0.1:{local}/internal"))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert_ne!(
        code, "200",
        "the member's run reached the server's loopback"
    );
    assert_eq!(
        lab.up.records().len(),
        before,
        "nothing reached the local service"
    );
    // No pid of the server's is watched: the run is on a lease.
    let (_, runs) = signed(&lab.home, &server, "GET", "/api/proxy/runs", "");
    assert!(runs.contains(&id), "{runs}");
    assert!(
        !runs.contains("\"client_pid\":1") && !runs.contains("\"pid\":1"),
        "{runs}"
    );
    // The grant taken back: the run ends.
    lab.cmd(["team", "revoke", &did, "acme"]).run().success();
    let (_, runs) = signed(&lab.home, &server, "GET", "/api/proxy/runs", "");
    assert!(!runs.contains(&id), "the run outlived its grant: {runs}");
}
