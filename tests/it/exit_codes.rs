//! The README's exit-code table, walked: every code it lists is produced by a
//! real command exactly as documented, and every code tested is in the table
//! (issue #12: registering an existing provider exited 4 where the README
//! said 6).

use std::collections::BTreeSet;

use crate::common::TestHome;
use crate::common::lab::CA;
use crate::common::oauth_server::{AuthServer, CLIENT_ID};

fn documented_codes() -> BTreeSet<i32> {
    let readme = include_str!("../../README.md");
    let start = readme.find("## Exit codes").expect("an Exit codes section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next()?.trim().parse().ok())
        .collect()
}

#[test]
fn every_documented_exit_code_is_what_the_command_returns() {
    let h = TestHome::new();
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let other = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [8u8; 32]);
    let provider = h.dir.path().join("zzz.json");
    std::fs::write(
        &provider,
        r#"{"name":"zzz","auth_type":"api_key","flow":"api_key","api_url":["api.zzz.test"],"api_key":{"header_name":"Authorization"}}"#,
    )
    .unwrap();
    let p = provider.to_str().unwrap();
    // A device-code login whose code expires at the authorization server.
    let auth = AuthServer::start();
    auth.state.lock().unwrap().device_script = ["expired"].into();
    let b = auth.base();
    let device = h.dir.path().join("acmedevice.json");
    std::fs::write(
        &device,
        format!(
            r#"{{"name":"acmedevice","auth_type":"oauth2","flow":"device_code","api_url":["api.acme.test"],"oauth":{{"authorization_url":"{b}/authorize","token_url":"{b}/token","device_authorization_url":"{b}/device","scopes":["read"]}}}}"#
        ),
    )
    .unwrap();
    let d = device.to_str().unwrap();
    let mut tested = BTreeSet::new();
    let mut expect = |code: i32, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]| {
        // The daemon reads these when it starts: every command sets them
        // so the one that starts it reaches the test authorization server.
        let mut c = h
            .cmd(args)
            .env("AUTHSOME_MASTER_KEY", &key)
            .env("AUTHSOME_RESOLVE", "auth.acme.test=127.0.0.1")
            .env("AUTHSOME_UPSTREAM_CA_FILE", CA);
        for (k, v) in env {
            c = c.env(k, v);
        }
        if let Some(s) = stdin {
            c = c.stdin(s);
        }
        c.run().code(code);
        tested.insert(code);
    };
    expect(0, &["provider", "register", p], None, &[]);
    expect(2, &["run", "--frobnicate", "--", "true"], None, &[]);
    expect(
        3,
        &["login", "no-such-provider", "--with-api-key"],
        Some("k"),
        &[],
    );
    expect(
        4,
        &["login", "openai", "--with-api-key"],
        Some("not-a-key"),
        &[],
    );
    expect(6, &["provider", "register", p], None, &[]);
    expect(7, &["login", "linkedin-browser", "--no-browser"], None, &[]);
    expect(
        8,
        &["run", "--sandbox", "require", "--", "true"],
        None,
        &[("AUTHSOME_SANDBOX_UNAVAILABLE", "1")],
    );
    expect(0, &["provider", "register", d], None, &[]);
    expect(
        9,
        &[
            "login",
            "acmedevice",
            "--client-id",
            CLIENT_ID,
            "--flow",
            "device",
        ],
        None,
        &[],
    );
    // A running daemon keeps the key it started with: stop it, then the
    // wrong key is a vault error (5) and doctor's check fails (1).
    h.stop_daemon();
    expect(5, &["list"], None, &[("AUTHSOME_MASTER_KEY", &other)]);
    expect(1, &["doctor"], None, &[("AUTHSOME_MASTER_KEY", &other)]);
    assert_eq!(
        documented_codes(),
        tested,
        "the README's exit-code table and the commands disagree"
    );
}
