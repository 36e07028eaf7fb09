//! OAuth logins end to end: the real binary and daemon against the strict
//! test authorization server (`common/oauth_server.rs`), a scripted browser
//! (curl following the authorization redirect back to the daemon), then
//! `authsome run` through the proxy to the recording upstream.

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::common::lab::{CA, Lab};
use crate::common::oauth_server::{AuthServer, CLIENT_ID};

/// Access tokens issued with this lifetime are due for refresh after half
/// of it (the refresh window is the lesser of 300 s and half the lifetime).
const SHORT_TTL: i64 = 4;

/// Waits until a token of [`SHORT_TTL`] issued now is inside its refresh window.
fn wait_until_due() {
    std::thread::sleep(std::time::Duration::from_millis(
        (SHORT_TTL as u64) * 1000 / 2 + 200,
    ));
}

pub(crate) struct OAuthLab {
    pub lab: Lab,
    pub auth: AuthServer,
}

pub(crate) fn oauth_lab(flow: &str) -> OAuthLab {
    let lab = Lab::bare();
    let auth = AuthServer::start();
    let b = auth.base();
    lab.provider_json(
        "acmeoauth",
        &format!(
            r#"{{"name":"acmeoauth","auth_type":"oauth2","flow":"{flow}","api_url":["api.acme.test:{}"],"oauth":{{"authorization_url":"{b}/authorize","token_url":"{b}/token","device_authorization_url":"{b}/device","revocation_url":"{b}/revoke","scopes":["read","write"]}}}}"#,
            lab.up.port
        ),
    );
    OAuthLab { lab, auth }
}

impl OAuthLab {
    /// `authsome login acmeoauth … --json`, completing the browser step with
    /// curl. Returns (exit code, stdout, the callback URL the browser hit).
    pub(crate) fn login_pkce(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec![
            "login",
            "acmeoauth",
            "--client-id",
            CLIENT_ID,
            "--no-browser",
            "--json",
        ];
        args.extend(extra);
        let mut child = self.spawn(&args);
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
        let url = v["url"].as_str().unwrap().to_string();
        let callback = self.browser(&url);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        let code = child.wait().unwrap().code().unwrap_or(-1);
        (code, first + &rest + &err, callback)
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.spawn_with_stdin(args, Stdio::null())
    }

    fn spawn_with_stdin(&self, args: &[&str], stdin: Stdio) -> std::process::Child {
        Command::new(crate::common::bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("AUTHSOME_HOME", &self.lab.home.home)
            .env("AUTHSOME_PORT", "0")
            .env("AUTHSOME_KEYRING", "off")
            .env(
                "AUTHSOME_RESOLVE",
                "api.acme.test=127.0.0.1,auth.acme.test=127.0.0.1",
            )
            .env("AUTHSOME_UPSTREAM_CA_FILE", CA)
            .envs(self.lab.home.extra.lock().unwrap().iter().cloned())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The "browser": GET the authorization URL, then follow its redirect
    /// to the daemon's callback. Returns the callback URL.
    fn browser(&self, url: &str) -> String {
        let resolve = format!("auth.acme.test:{}:127.0.0.1", self.auth.port);
        let o = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{redirect_url}",
                "--cacert",
                CA,
                "--resolve",
                &resolve,
                url,
            ])
            .output()
            .unwrap();
        let callback = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(
            callback.contains("/auth/callback/oauth?"),
            "no redirect: {callback}"
        );
        let status = self.get(&callback);
        assert!(status == "200" || status == "400", "{status}");
        callback
    }

    fn get(&self, url: &str) -> String {
        let o = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `authsome run -- curl` to the provider API; returns the status.
    pub(crate) fn call_api(&self, path: &str) -> String {
        let out = self
            .lab
            .run_sh(&format!(
                "curl -sS -o /dev/null -w '%{{http_code}}' \"$URL{path}\""
            ))
            .success();
        out.stdout.trim().to_string()
    }

    fn last_auth(&self) -> Vec<String> {
        self.lab
            .up
            .records()
            .last()
            .map(|r| r.all("authorization"))
            .unwrap_or_default()
    }
}

#[test]
fn authorization_code_with_pkce_end_to_end() {
    let t = oauth_lab("pkce");
    let (code, out, callback) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"status\":\"connected\""), "{out}");
    assert_eq!(t.auth.calls("token_code"), 1);
    // The redirect URI was the daemon's, exactly.
    let daemon = t.lab.home.daemon_url();
    assert_eq!(
        t.auth.state.lock().unwrap().redirect_uris,
        vec![format!("{daemon}/auth/callback/oauth")]
    );
    // The proxy injects the access token.
    assert_eq!(t.call_api("/oauth"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_1".to_string()]);
    // The same callback again (state replay): refused, no token request.
    assert_eq!(t.get(&callback), "400");
    assert_eq!(t.auth.calls("token_code"), 1);
    // A second login with the same scopes: already connected, no browser.
    let o = t.lab.cmd(["login", "acmeoauth", "--json"]).run().success();
    assert!(o.stdout.contains("already_connected"), "{}", o.stdout);
    // Nothing secret reached the CLI's output, the daemon's log or the
    // vault file in the clear.
    assert!(!out.contains("ATCANARY") && !out.contains("RTCANARY"));
    let log = std::fs::read_to_string(t.lab.home.path("logs/authsome.log")).unwrap();
    assert!(log.contains("OAuth login completed"), "{log}");
    assert!(
        !log.contains("ATCANARY") && !log.contains("RTCANARY") && !log.contains("CODE_"),
        "{log}"
    );
    let db = std::fs::read(t.lab.home.path("vault.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("CANARY"));
}

#[test]
fn a_callback_from_another_issuer_is_refused() {
    let t = oauth_lab("pkce");
    t.auth.state.lock().unwrap().iss = Some("https://evil.test".into());
    let (code, out, _) = t.login_pkce(&[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("iss mismatch") || out.contains("another authorization server"),
        "{out}"
    );
    assert_eq!(
        t.auth.calls("token_code"),
        0,
        "no code exchange after a wrong iss"
    );
    // The right issuer is accepted.
    let t = oauth_lab("pkce");
    let iss = t.auth.base();
    t.auth.state.lock().unwrap().iss = Some(iss);
    let (code, out, _) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
}

/// Every login ends on the record, refusals too: a callback from another
/// issuer and a denied device code were not audited before issue #11.
#[test]
fn refused_oauth_logins_are_in_the_audit_log() {
    let t = oauth_lab("pkce");
    // a client secret the refused login carried must not reach the record
    let secret = crate::common::canary("CSCANARY_");
    t.auth.state.lock().unwrap().iss = Some("https://evil.test".into());
    let (code, out, _) = t.login_pkce(&[]);
    assert_ne!(code, 0, "{out}");
    t.auth.state.lock().unwrap().device_script = ["denied"].into();
    // each login carries the canary as its client secret
    let login = |connection: &str, flow: &str| {
        t.lab
            .cmd([
                "login",
                "acmeoauth",
                "-c",
                connection,
                "--client-id",
                CLIENT_ID,
                "--client-secret-stdin",
                "--flow",
                flow,
            ])
            .stdin(&secret)
            .env(
                "AUTHSOME_RESOLVE",
                "api.acme.test=127.0.0.1,auth.acme.test=127.0.0.1",
            )
            .run()
    };
    let out = login("dev", "device");
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("denied"), "{}", out.stderr);
    // a client-credentials grant the server refuses (another secret)
    t.auth.state.lock().unwrap().client_secret = Some("the-registered-secret".into());
    let out = login("cc", "client-credentials");
    assert_ne!(out.code, 0, "{}", out.stderr);
    let log = t.lab.cmd(["log", "--json"]).run();
    assert_eq!(log.code, 0, "{}", log.stderr);
    let entries: serde_json::Value = serde_json::from_str(&log.stdout).unwrap();
    let refused: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "login" && e["outcome"] == "refused")
        .map(|e| {
            assert_eq!(e["provider"], "acmeoauth", "{e}");
            assert_eq!(e["detail"]["code"], "invalid_input", "{e}");
            (
                e["connection"].as_str().unwrap().to_string(),
                e["detail"]["flow"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        refused.contains(&("default".into(), "pkce".into())),
        "{refused:?}"
    );
    assert!(
        refused.contains(&("dev".into(), "device_code".into())),
        "{refused:?}"
    );
    assert!(
        refused.contains(&("cc".into(), "client_credentials".into())),
        "{refused:?}"
    );
    assert!(!log.stdout.contains(&secret), "{}", log.stdout);
}

#[test]
fn device_flow_waits_through_pending_and_slow_down() {
    let t = oauth_lab("device_code");
    t.auth.state.lock().unwrap().device_script = ["pending", "slow_down", "token"].into();
    let mut child = t.spawn(&["login", "acmeoauth", "--client-id", CLIENT_ID, "--json"]);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["action"], "device_code");
    assert_eq!(v["user_code"], "WDJB-MJHT");
    assert_eq!(v["verification_uri"], "https://auth.acme.test/device");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest}");
    assert!(rest.contains("connected"), "{rest}");
    let polls = t.auth.state.lock().unwrap().device_polls.clone();
    assert_eq!(polls.len(), 3);
    let gap = |i: usize| polls[i + 1].duration_since(polls[i]).as_secs_f64();
    assert!(gap(0) >= 0.9, "interval honoured: {}", gap(0));
    assert!(gap(1) >= 5.9, "slow_down adds 5 s: {}", gap(1));
    assert_eq!(t.call_api("/device"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_1".to_string()]);
}

#[test]
fn device_flow_stops_on_access_denied() {
    let t = oauth_lab("device_code");
    t.auth.state.lock().unwrap().device_script = ["denied"].into();
    let out = t
        .lab
        .cmd([
            "login",
            "acmeoauth",
            "--client-id",
            CLIENT_ID,
            "--flow",
            "device",
        ])
        .env(
            "AUTHSOME_RESOLVE",
            "api.acme.test=127.0.0.1,auth.acme.test=127.0.0.1",
        )
        .run();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("denied"), "{}", out.stderr);
    assert!(
        out.stderr.contains("WDJB-MJHT"),
        "the code was shown: {}",
        out.stderr
    );
}

#[test]
fn client_credentials_need_no_browser() {
    let t = oauth_lab("client_credentials");
    t.auth.state.lock().unwrap().client_secret = Some("CSCANARY_secret".into());
    t.lab
        .cmd([
            "login",
            "acmeoauth",
            "--client-id",
            CLIENT_ID,
            "--client-secret-stdin",
        ])
        .stdin("CSCANARY_secret\n")
        .run()
        .success()
        .stderr_has("Connected");
    assert_eq!(t.auth.calls("token_client_credentials"), 1);
    assert_eq!(t.call_api("/cc"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_1".to_string()]);
    // The client secret is stored encrypted.
    let db = std::fs::read(t.lab.home.path("vault.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("CSCANARY"));
}

#[test]
fn a_connection_made_with_another_flow_is_renewed_by_that_flow() {
    // The provider's default is the browser flow; this connection was made
    // with client credentials, so near expiry (no refresh token) it is
    // granted again the same way.
    let t = oauth_lab("pkce");
    {
        let mut st = t.auth.state.lock().unwrap();
        st.client_secret = Some("CSCANARY_secret".into());
        st.access_ttl = vec![SHORT_TTL];
    }
    t.lab
        .cmd([
            "login",
            "acmeoauth",
            "--flow",
            "client-credentials",
            "--client-id",
            CLIENT_ID,
            "--client-secret-stdin",
        ])
        .stdin("CSCANARY_secret\n")
        .run()
        .success();
    assert_eq!(t.auth.calls("token_client_credentials"), 1);
    let list = t.lab.cmd(["list", "--json"]).run().success();
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["flow"], "client_credentials", "{list}");
    wait_until_due();
    assert_eq!(t.call_api("/cc"), "200");
    assert_eq!(
        t.auth.calls("token_client_credentials"),
        2,
        "granted again near expiry"
    );
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_2".to_string()]);
}

#[test]
fn an_expiring_token_is_refreshed_once_for_fifty_concurrent_requests() {
    let t = oauth_lab("pkce");
    // Both tokens live shorter than the 5-minute window: the first is due
    // after 5 s; the second (30 s) is not due again when it arrives.
    t.auth.state.lock().unwrap().access_ttl = vec![10, 30];
    let (code, out, _) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(5200));
    let out = t
        .lab
        .run_sh("seq 50 | xargs -P 50 -I{} curl -sS -o /dev/null -w '%{http_code}\\n' \"$URL/p{}\"")
        .success();
    assert_eq!(
        out.stdout.lines().filter(|l| *l == "200").count(),
        50,
        "{}",
        out.stdout
    );
    assert_eq!(t.auth.calls("token_refresh"), 1, "exactly one refresh");
    // Another run (new cache): the fresh token is served, not refreshed again.
    assert_eq!(t.call_api("/again"), "200");
    assert_eq!(t.auth.calls("token_refresh"), 1, "still one refresh");
    let recs = t.lab.up.records();
    assert_eq!(recs.len(), 51);
    for r in recs {
        assert_eq!(
            r.all("authorization"),
            vec!["Bearer ATCANARY_2".to_string()]
        );
    }
    assert_eq!(t.auth.calls("refresh_reuse"), 0);
}

#[test]
fn tokens_are_renewed_in_the_background_before_any_request_needs_them() {
    let t = oauth_lab("pkce");
    // A short-lived first token: due after half its lifetime.
    t.auth.state.lock().unwrap().access_ttl = vec![SHORT_TTL];
    let (code, out, _) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.auth.calls("token_refresh"), 0);
    // A daemon that checks every second (the default is 30 s).
    t.lab.home.stop_daemon();
    t.lab
        .cmd(["daemon", "start"])
        .env("AUTHSOME_REFRESH_INTERVAL", "1")
        .run()
        .success();
    let mut refreshed = false;
    for _ in 0..100 {
        if t.auth.calls("token_refresh") > 0 {
            refreshed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(refreshed, "no background refresh within 10 s");
    assert!(t.lab.up.records().is_empty(), "nothing was proxied yet");
    // The proxy finds the renewed token ready: no refresh on its path.
    assert_eq!(t.call_api("/after"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_2".to_string()]);
    assert_eq!(t.auth.calls("token_refresh"), 1);
    let status = t.lab.cmd(["list", "--json"]).run().success();
    assert!(status.stdout.contains("connected"), "{}", status.stdout);
}

#[test]
fn a_rotated_refresh_token_survives_kill_9() {
    let t = oauth_lab("pkce");
    // Every token is short-lived, so every run after a wait refreshes.
    t.auth.state.lock().unwrap().access_ttl = vec![SHORT_TTL, SHORT_TTL, SHORT_TTL];
    let (code, out, _) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
    wait_until_due();
    assert_eq!(t.call_api("/one"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_2".to_string()]);
    let pid = t.lab.home.daemon().unwrap()["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    wait_until_due();
    // The restarted daemon refreshes with the rotated token RTCANARY_2; had
    // it lost it, RTCANARY_1's reuse would revoke the family.
    assert_eq!(t.call_api("/two"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_3".to_string()]);
    assert_eq!(t.auth.calls("refresh_reuse"), 0);
}

#[test]
fn invalid_grant_fails_closed_with_a_login_hint() {
    let t = oauth_lab("pkce");
    t.auth.state.lock().unwrap().access_ttl = vec![SHORT_TTL];
    let (code, out, _) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
    t.auth.state.lock().unwrap().fail_refresh_with = Some("invalid_grant");
    wait_until_due();
    let out = t
        .lab
        .run_sh("curl -sS -w '\\n%{http_code}' \"$URL/x\"")
        .success();
    assert!(out.stdout.trim_end().ends_with("401"), "{}", out.stdout);
    assert!(
        out.stdout.contains("authsome_credential_unavailable"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--force"), "{}", out.stdout);
    assert!(t.lab.up.records().is_empty(), "nothing went upstream");
    let list = t.lab.cmd(["list", "--json"]).run().success();
    assert!(list.stdout.contains("\"expired\""), "{}", list.stdout);
}

#[test]
fn revoke_tells_the_provider_and_removes_the_connections() {
    let t = oauth_lab("pkce");
    let (code, out, _) = t.login_pkce(&[]);
    assert_eq!(code, 0, "{out}");
    let o = t.lab.cmd(["revoke", "acmeoauth"]).run().success();
    assert!(o.stderr.contains("revoked at the provider"), "{}", o.stderr);
    let revoked = t.auth.state.lock().unwrap().revoked.clone();
    assert_eq!(
        revoked,
        vec![
            ("refresh_token".to_string(), "RTCANARY_1".to_string()),
            ("access_token".to_string(), "ATCANARY_1".to_string())
        ]
    );
    t.lab
        .cmd(["list", "--json"])
        .run()
        .success()
        .stdout_has("[]");
}

/// An MCP-style provider that names only its resource.
fn mcp_lab() -> OAuthLab {
    let lab = Lab::bare();
    let auth = AuthServer::start();
    *lab.up.resource_metadata.lock().unwrap() = Some(
        serde_json::json!({
            "resource": format!("https://api.acme.test:{}", lab.up.port),
            "authorization_servers": [auth.base()],
        })
        .to_string(),
    );
    lab.provider_json(
        "mcpacme",
        &format!(
            r#"{{"name":"mcpacme","type":"mcp","auth_type":"oauth2","flow":"dcr_pkce","api_url":["api.acme.test:{}"]}}"#,
            lab.up.port
        ),
    );
    OAuthLab { lab, auth }
}

impl OAuthLab {
    fn login_dcr(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["login", "mcpacme", "--no-browser", "--json"];
        args.extend(extra);
        let mut child = self.spawn(&args);
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&first)
            && let Some(url) = v["url"].as_str()
        {
            self.browser(url);
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (
            child.wait().unwrap().code().unwrap_or(-1),
            first + &rest + &err,
        )
    }
}

#[test]
fn dynamic_client_registration_discovers_registers_reuses_and_follows_the_callback() {
    let t = mcp_lab();
    // The first token is short-lived: the first proxied request after half
    // its lifetime refreshes it through the discovered token endpoint.
    t.auth.state.lock().unwrap().access_ttl = vec![SHORT_TTL];
    let (code, out) = t.login_dcr(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.auth.calls("register"), 1);
    assert_eq!(t.auth.calls("metadata"), 1);
    let body = t.auth.state.lock().unwrap().registration_bodies[0].clone();
    assert_eq!(
        body["redirect_uris"][0],
        format!("{}/auth/callback/oauth", t.lab.home.daemon_url())
    );
    assert_eq!(
        body["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    // The registered client authenticates at the token endpoint (its secret
    // was stored encrypted) and the proxy injects the token.
    assert_eq!(t.auth.calls("token_code"), 1);
    assert_eq!(t.auth.calls("token_bad_client"), 0);
    wait_until_due();
    assert_eq!(t.call_api("/mcp"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_2".to_string()]);
    assert_eq!(t.auth.calls("token_refresh"), 1);
    let db = std::fs::read(t.lab.home.path("vault.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains("CSCANARY") && !db.contains("RATCANARY"));
    // The next login reuses the client.
    let (code, out) = t.login_dcr(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.auth.calls("register"), 1, "registered once");
    assert_eq!(t.auth.calls("token_code"), 2);
    // A daemon on another port has another callback, which the registered
    // client does not know (the server compares redirect URIs exactly):
    // the login registers again, and the new client is reused after that.
    let old_url = t.lab.home.daemon_url();
    for _ in 0..5 {
        t.lab.home.stop_daemon();
        t.lab.cmd(["daemon", "start"]).run().success();
        if t.lab.home.daemon_url() != old_url {
            break;
        }
    }
    let new_url = t.lab.home.daemon_url();
    assert_ne!(new_url, old_url, "the daemon kept its port");
    let (code, out) = t.login_dcr(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        t.auth.calls("register"),
        2,
        "registered for the new callback"
    );
    let body = t.auth.state.lock().unwrap().registration_bodies[1].clone();
    assert_eq!(
        body["redirect_uris"][0],
        format!("{new_url}/auth/callback/oauth")
    );
    let (code, out) = t.login_dcr(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.auth.calls("register"), 2, "the new client is reused");
    assert_eq!(t.auth.calls("token_code"), 4);
}

#[test]
fn metadata_naming_another_issuer_is_refused() {
    let t = mcp_lab();
    t.auth.state.lock().unwrap().wrong_issuer = true;
    let (code, out) = t.login_dcr(&[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("RFC 8414") && out.contains("evil.test"),
        "{out}"
    );
    assert_eq!(t.auth.calls("register"), 0);
}

#[test]
fn basic_client_authentication_and_requested_scopes() {
    let lab = Lab::bare();
    let auth = AuthServer::start();
    auth.state.lock().unwrap().client_secret = Some("CSCANARY_basic".into());
    let b = auth.base();
    lab.provider_json(
        "acmebasic",
        &format!(
            r#"{{"name":"acmebasic","auth_type":"oauth2","flow":"pkce","api_url":["api.acme.test:{}"],"oauth":{{"authorization_url":"{b}/authorize","token_url":"{b}/token","token_auth":"basic","scopes":["read","write"]}}}}"#,
            lab.up.port
        ),
    );
    let t = OAuthLab { lab, auth };
    // An empty secret on stdin is refused before anything is sent.
    let o = t
        .lab
        .cmd([
            "login",
            "acmebasic",
            "--client-id",
            CLIENT_ID,
            "--client-secret-stdin",
        ])
        .stdin("\n")
        .run()
        .code(4);
    assert!(o.stderr.contains("client secret is empty"), "{}", o.stderr);
    let mut child = t.spawn_with_stdin(
        &[
            "login",
            "acmebasic",
            "--client-id",
            CLIENT_ID,
            "--client-secret-stdin",
            "--scopes",
            "read",
            "--no-browser",
            "--json",
        ],
        Stdio::piped(),
    );
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"CSCANARY_basic\n")
            .unwrap();
    }
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    t.browser(v["url"].as_str().unwrap());
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        t.auth.calls("basic_auth") >= 1,
        "the client authenticated with HTTP Basic"
    );
    assert_eq!(t.auth.calls("token_bad_client"), 0);
    assert_eq!(
        t.auth
            .state
            .lock()
            .unwrap()
            .authorize_scopes
            .last()
            .unwrap(),
        "read"
    );
    assert_eq!(t.call_api("/basic"), "200");
}

#[test]
fn the_browser_form_asks_for_the_oauth_client_then_signs_in() {
    let t = oauth_lab("pkce");
    t.auth.state.lock().unwrap().client_secret = Some("CSCANARY_form".into());
    let mut child = t.spawn(&["login", "acmeoauth", "--json"]);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let form_url = v["url"].as_str().unwrap().to_string();
    assert!(form_url.ends_with("/input"), "{form_url}");
    let html = Command::new("curl")
        .args(["-sS", &form_url])
        .output()
        .unwrap();
    let html = String::from_utf8_lossy(&html.stdout).into_owned();
    assert!(
        html.contains("Client ID") && html.contains(r#"value="read,write""#),
        "{html}"
    );
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    // A bad client id is refused on the form, nothing stored.
    let bad = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            "client_id=has space",
            &form_url,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "400");
    let ok = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            &format!("client_id={CLIENT_ID}"),
            "--data-urlencode",
            "client_secret=CSCANARY_form",
            "--data-urlencode",
            "scopes=read",
            &form_url,
        ])
        .output()
        .unwrap();
    let ok = String::from_utf8_lossy(&ok.stdout).into_owned();
    let (status, next) = ok.split_once(' ').unwrap();
    assert_eq!(status, "303", "{ok}");
    assert!(
        next.starts_with(&format!("{}/authorize?", t.auth.base())),
        "{next}"
    );
    t.browser(next);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest}");
    assert!(rest.contains("\"status\":\"connected\""), "{rest}");
    assert_eq!(
        t.auth.calls("token_bad_client"),
        0,
        "the secret from the form was used"
    );
    assert_eq!(
        t.auth.state.lock().unwrap().authorize_scopes,
        vec!["read".to_string()]
    );
    assert_eq!(t.call_api("/form"), "200");
    let db = std::fs::read(t.lab.home.path("vault.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("CSCANARY"));
}

#[test]
fn client_secret_stdin_takes_the_client_id_from_the_provider_file() {
    let lab = Lab::bare();
    let auth = AuthServer::start();
    let b = auth.base();
    auth.state.lock().unwrap().client_secret = Some("CSCANARY_secret".into());
    lab.provider_json(
        "acmecc",
        &format!(
            r#"{{"name":"acmecc","auth_type":"oauth2","flow":"client_credentials","api_url":["api.acme.test:{}"],"oauth":{{"token_url":"{b}/token","client_id":"{CLIENT_ID}","scopes":["read"]}}}}"#,
            lab.up.port
        ),
    );
    lab.cmd(["login", "acmecc", "--client-secret-stdin"])
        .stdin("CSCANARY_secret\n")
        .run()
        .success()
        .stderr_has("Connected");
    assert_eq!(auth.calls("token_client_credentials"), 1);
    assert_eq!(auth.calls("token_bad_client"), 0);
}

#[test]
fn client_secret_stdin_without_any_client_id_says_what_is_missing() {
    let t = oauth_lab("client_credentials");
    let out = t
        .lab
        .cmd(["login", "acmeoauth", "--client-secret-stdin"])
        .stdin("CSCANARY_secret\n")
        .run();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("names none"), "{}", out.stderr);
    assert!(out.stderr.contains("--client-id ID"), "{}", out.stderr);
    assert_eq!(t.auth.calls("token_client_credentials"), 0);
}

/// The dashboard's Revoke (issue #14), in a real browser: the confirmation
/// page, then the provider is asked to revoke the token and the connection
/// is gone.
#[test]
fn the_dashboard_revokes_an_oauth_connection_at_the_provider() {
    if !crate::dashboard::browser_available() {
        return;
    }
    let t = oauth_lab("client_credentials");
    t.auth.state.lock().unwrap().client_secret = Some("CSCANARY_secret".into());
    t.lab
        .cmd([
            "login",
            "acmeoauth",
            "--client-id",
            CLIENT_ID,
            "--client-secret-stdin",
        ])
        .stdin("CSCANARY_secret\n")
        .run()
        .success();
    let url = crate::dashboard::link(&t.lab);
    let out = crate::dashboard::script(&t.lab, &url, &[("MODE", "revoke")]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = t.auth.state.lock().unwrap().revoked.clone();
    assert!(
        revoked.contains(&("access_token".to_string(), "ATCANARY_1".to_string())),
        "{revoked:?}"
    );
    t.lab
        .cmd(["list", "--json"])
        .run()
        .success()
        .stdout_has("[]");
}

/// The dashboard's Connect for an OAuth provider (issue #14), in a real
/// browser: the same login `authsome login` starts, through the daemon's
/// client form and the authorization server, back to the callback.
#[test]
fn the_dashboard_connects_an_oauth_provider_in_the_browser() {
    if !crate::dashboard::browser_available() {
        return;
    }
    let t = oauth_lab("pkce");
    t.auth.state.lock().unwrap().client_secret = Some("CSCANARY_dash".into());
    let url = crate::dashboard::link(&t.lab);
    let out = crate::dashboard::script(
        &t.lab,
        &url,
        &[
            ("MODE", "oauth"),
            ("CLIENT_ID", CLIENT_ID),
            ("CLIENT_SECRET", "CSCANARY_dash"),
        ],
    );
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.call_api("/after-dashboard"), "200");
    assert_eq!(t.last_auth(), vec!["Bearer ATCANARY_1".to_string()]);
}

/// The dashboard's Connect for a device-code provider (issue #14), in a
/// real browser, with no OAuth client stored: the form asks for one, then
/// the user code and the verification URL are shown on the page; the authorization server approves after two pending polls (the
/// person entering the code elsewhere), and the connection is listed.
#[test]
fn the_dashboard_shows_the_device_code_and_lists_the_connection() {
    if !crate::dashboard::browser_available() {
        return;
    }
    let t = oauth_lab("device_code");
    // No OAuth client is stored: the page asks for one.
    t.auth.state.lock().unwrap().device_script = ["pending", "pending", "token"].into();
    let url = crate::dashboard::link(&t.lab);
    let out = crate::dashboard::script(
        &t.lab,
        &url,
        &[("MODE", "device"), ("CLIENT_ID", CLIENT_ID)],
    );
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // One device authorization (the refused first try reached no server),
    // then pending, pending, token.
    assert_eq!(t.auth.calls("device"), 1);
    assert_eq!(t.auth.state.lock().unwrap().device_polls.len(), 3);
    t.lab
        .cmd(["list", "--json"])
        .run()
        .success()
        .stdout_has(r#""work""#);
}
