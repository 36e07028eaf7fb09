//! Real SDK-style clients through `authsome run`: Python (`requests`,
//! `httpx`, `urllib`) and Node (`axios`, `fetch` through undici's
//! `EnvHttpProxyAgent`). Each must reach the upstream with exactly one
//! credential, its own placeholder replaced, trusting the run's CA only
//! through the environment `authsome run` sets.
//!
//! The clients are installed by `.ci/run` (pip, `npm ci` in
//! `tests/clients/node`). Where one is missing the test says so and passes,
//! unless `AUTHSOME_TEST_REQUIRE_CLIENTS=1` (set by `.ci/run`) makes a
//! missing client a failure.

use crate::common::lab::Lab;

pub fn available(check: &[&str]) -> bool {
    let ok = std::process::Command::new(check[0])
        .args(&check[1..])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/node"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("AUTHSOME_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "client missing: {check:?} (run .ci/run, or install it)"
        );
        eprintln!("skipped: {check:?} is not installed here");
    }
    ok
}

fn through(lab: &Lab, command: &str) {
    let out = lab
        .run_sh(&format!(
            "{command} \"$URL/sdk\" 'Authorization=Bearer authsome-managed'"
        ))
        .success();
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("200"),
        "{command}: {}\n{}",
        out.stdout,
        out.stderr
    );
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1, "{command}: {recs:?}");
    assert_eq!(
        recs[0].all("authorization"),
        vec![format!("Bearer {}", lab.key)],
        "{command}"
    );
    assert!(recs[0].all("proxy-authorization").is_empty());
    assert!(recs[0].tls);
}

#[test]
fn python_requests() {
    if available(&["python3", "-c", "import requests"]) {
        through(&Lab::new(), "python3 \"$CLIENTS/client.py\" requests");
    }
}

#[test]
fn python_httpx() {
    if available(&["python3", "-c", "import httpx"]) {
        through(&Lab::new(), "python3 \"$CLIENTS/client.py\" httpx");
    }
}

#[test]
fn python_urllib() {
    if available(&["python3", "-c", "import urllib.request"]) {
        through(&Lab::new(), "python3 \"$CLIENTS/client.py\" urllib");
    }
}

#[test]
fn node_axios() {
    if available(&["node", "-e", "require.resolve('axios')"]) {
        through(&Lab::new(), "node \"$CLIENTS/node/client.mjs\" axios");
    }
}

#[test]
fn node_fetch_with_undici_env_proxy_agent() {
    if available(&["node", "-e", "require.resolve('undici')"]) {
        through(
            &Lab::new(),
            "node --no-warnings \"$CLIENTS/node/client.mjs\" undici",
        );
    }
}

#[test]
fn python_sees_the_minted_leaf_as_strictly_valid() {
    // Python >= 3.13 verifies with VERIFY_X509_STRICT by default; check the
    // run's leaf and CA pass it on this Python too.
    if !available(&["python3", "-c", "import ssl; ssl.VERIFY_X509_STRICT"]) {
        return;
    }
    let lab = Lab::new();
    let script = r#"
import os, ssl, socket, base64, sys
proxy = os.environ["HTTPS_PROXY"][len("http://"):]
cred, hostport = proxy.rsplit("@", 1)
host, port = hostport.rsplit(":", 1)
target = "api.acme.test:" + os.environ["UP"]
s = socket.create_connection((host, int(port)))
auth = base64.b64encode(cred.encode()).decode()
s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
assert b" 200" in s.recv(4096).split(b"\r\n")[0]
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
t = ctx.wrap_socket(s, server_hostname="api.acme.test")
cert = t.getpeercert()
sans = [v for k, v in cert["subjectAltName"]]
print("SANS", sans)
t.close()
"#;
    let path = lab.home.dir.path().join("strict.py");
    std::fs::write(&path, script).unwrap();
    let out = lab.run_sh(&format!("python3 {}", path.display())).success();
    assert!(
        out.stdout.contains("SANS ['api.acme.test']"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}
