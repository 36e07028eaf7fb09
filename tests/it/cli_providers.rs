//! Custom provider files: register, show, override, remove, and the errors
//! for files that are malformed or unsafe.

use crate::common::TestHome;

const ACME: &str = r#"// Acme test provider (JSONC comments are fine)
{
  "name": "acme",
  "display_name": "Acme",
  "type": "app",
  "auth_type": "api_key",
  "flow": "api_key",
  "api_url": ["https://api.acme.test/v2", "*.acme-cdn.test"], /* two rules */
  "api_key": {"header_name": "X-Acme-Key", "header_prefix": null, "key_pattern": "^acme_[a-z0-9]+$", "key_pattern_hint": "Acme keys start with acme_"},
  "export": {"ACME_KEY": "api_key", "ACME_URL": "api_url"}
}
"#;

fn write(h: &TestHome, name: &str, text: &str) -> String {
    let p = h.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn register_show_login_export_remove() {
    let h = TestHome::new();
    let f = write(&h, "acme.json", ACME);
    h.cmd(["provider", "register", &f])
        .run()
        .success()
        .stderr_has("Registered provider `acme` for api.acme.test/v2, *.acme-cdn.test");
    let show = h
        .cmd(["provider", "show", "acme", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(show["source"], "custom");
    assert_eq!(show["api_url"][0], "api.acme.test/v2");
    assert_eq!(show["api_key"]["header_name"], "X-Acme-Key");
    h.cmd(["provider", "show", "acme"])
        .run()
        .success()
        .stdout_has("injects:   X-Acme-Key: <api_key>");
    let list = h.cmd(["provider", "list", "--json"]).run().success().json();
    assert_eq!(list.as_array().unwrap().len(), 239);

    h.cmd(["login", "acme", "--with-api-key"])
        .stdin("nope")
        .run()
        .code(4)
        .stderr_has("Acme keys start with acme_");
    h.login("acme", "acme_k3y");
    let out = h.cmd(["export", "acme"]).run().success();
    assert_eq!(
        out.stdout,
        "ACME_KEY=acme_k3y\nACME_URL=https://api.acme.test/v2\n"
    );

    h.cmd(["provider", "remove", "acme"])
        .run()
        .code(4)
        .stderr_has("authsome logout acme");
    h.cmd(["logout", "acme"]).run().success();
    h.cmd(["provider", "remove", "acme"])
        .run()
        .success()
        .stderr_has("Removed provider `acme`");
    h.cmd(["provider", "show", "acme"]).run().code(3);
}

#[test]
fn regex_host_is_rejected_naming_the_file_and_the_wildcard() {
    let h = TestHome::new();
    let f = write(
        &h,
        "bad.json",
        &ACME.replace(r#""*.acme-cdn.test""#, r#""regex:.*\\.acme-cdn\\.test""#),
    );
    h.cmd(["provider", "register", &f])
        .run()
        .code(4)
        .stderr_has(&format!(
            "provider file {f}: api_url: regular expressions are not accepted"
        ))
        .stderr_has("*.acme-cdn.test");
}

#[test]
fn over_broad_and_ip_hosts_are_rejected() {
    let h = TestHome::new();
    for (rule, says) in [
        ("*.com", "too broad"),
        ("*", "not a leading"),
        ("10.0.0.0/8", "IP address"),
        ("*.github.io", "too broad"),
    ] {
        let f = write(
            &h,
            "wide.json",
            &ACME.replace(r#""*.acme-cdn.test""#, &format!("{rule:?}")),
        );
        h.cmd(["provider", "register", &f])
            .run()
            .code(4)
            .stderr_has(says);
    }
}

#[test]
fn malformed_files_name_the_file_and_the_problem() {
    let h = TestHome::new();
    let cases = [
        ("{ not json", "not valid JSON"),
        (
            &ACME.replace("\"api_url\"", "\"api_ulr\"") as &str,
            "api_ulr",
        ),
        (
            &ACME.replace(
                r#""header_name": "X-Acme-Key""#,
                r#""header_name": "X-Acme\r\nX-Evil: 1""#,
            ) as &str,
            "header_name",
        ),
        (
            &ACME.replace(r#""flow": "api_key""#, r#""flow": "pkce""#) as &str,
            "does not fit",
        ),
        (
            &ACME.replace("https://api.acme.test/v2", "http://api.acme.test/v2") as &str,
            "only sent over https",
        ),
    ];
    for (text, says) in cases {
        let f = write(&h, "m.json", text);
        h.cmd(["provider", "register", &f])
            .run()
            .code(4)
            .stderr_has(&format!("provider file {f}"))
            .stderr_has(says);
    }
    h.cmd(["provider", "register", "/nonexistent/x.json"])
        .run()
        .code(1)
        .stderr_has("cannot read /nonexistent/x.json");
}

#[test]
fn overriding_a_bundled_provider_needs_force_and_remove_restores_it() {
    let h = TestHome::new();
    let f = write(
        &h,
        "openai.json",
        r#"{"name":"openai","display_name":"OpenAI (proxy)","auth_type":"api_key","flow":"api_key",
            "api_url":["api.openai.com"],"api_key":{"header_name":"X-Proxy-Key","header_prefix":null}}"#,
    );
    h.cmd(["provider", "register", &f])
        .run()
        .code(6)
        .stderr_has("bundled provider")
        .stderr_has("--force");
    h.cmd(["provider", "register", &f, "--force"])
        .run()
        .success()
        .stderr_has("warning: `openai` now overrides the bundled definition");
    let v = h
        .cmd(["provider", "show", "openai", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(
        (v["source"].as_str(), v["api_key"]["header_name"].as_str()),
        (Some("override"), Some("X-Proxy-Key"))
    );
    h.cmd(["provider", "remove", "openai"])
        .run()
        .success()
        .stderr_has("bundled definition is back");
    let v = h
        .cmd(["provider", "show", "openai", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(
        (v["source"].as_str(), v["api_key"]["header_name"].as_str()),
        (Some("bundled"), Some("Authorization"))
    );
    h.cmd(["provider", "remove", "openai"]).run().code(4);
}

#[test]
fn a_host_another_provider_claims_can_be_registered() {
    // Trying a second provider for the same API is allowed; connecting both
    // is the conflict (proxy_run::two_connected_providers_on_one_host_…).
    let h = TestHome::new();
    let f = write(
        &h,
        "other.json",
        &ACME
            .replace(r#""name": "acme""#, r#""name": "other-openai""#)
            .replace("https://api.acme.test/v2", "api.openai.com"),
    );
    h.cmd(["provider", "register", &f])
        .run()
        .success()
        .stderr_has("Registered provider `other-openai` for api.openai.com");
}

#[test]
fn reference_format_files_are_read() {
    // A file written for the Python reference: top-level export keys,
    // informational fields, nulls, a bare-string api_url.
    let h = TestHome::new();
    let f = write(
        &h,
        "ref.jsonc",
        r#"// written for the Python tool
        {"schema_version": 1, "name": "refco", "display_name": "RefCo", "type": "app", "logo": "img/refco",
         "auth_type": "api_key", "flow": "api_key", "api_url": "https://api.refco.test",
         "api_key": {"header_name": "Authorization", "header_prefix": "Token", "env_var": null, "key_pattern": null},
         "docs_url": null, "REFCO_TOKEN": "API_TOKEN"}"#,
    );
    h.cmd(["provider", "register", &f]).run().success();
    h.login("refco", "r3f");
    assert_eq!(
        h.cmd(["export", "refco"]).run().success().stdout,
        "REFCO_TOKEN=r3f\n"
    );
    h.cmd(["provider", "show", "refco"])
        .run()
        .success()
        .stdout_has("Authorization: Token <api_key>");
}

#[test]
fn provider_list_and_show_on_a_fresh_home() {
    let h = TestHome::new();
    let list = h.cmd(["provider", "list"]).run().success();
    assert!(
        list.stdout.lines().count() == 239,
        "header + 238 providers:\n{}",
        list.stdout
    );
    // Every line fits an 80-column terminal; a cut cell ends in `…`.
    for l in list.stdout.lines() {
        assert!(l.chars().count() <= 80, "{l}");
    }
    assert!(list.stdout.contains('…'), "{}", list.stdout);
    h.cmd(["provider", "show", "anthropic"])
        .run()
        .success()
        .stdout_has("x-api-key");
}

#[test]
fn provider_list_filters_by_type_and_search() {
    let h = TestHome::new();
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["provider", "list", "--json"];
        a.extend_from_slice(args);
        h.cmd(a)
            .run()
            .success()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let mcp = names(&["--type", "mcp"]);
    assert_eq!(mcp.len(), 157, "{mcp:?}");
    assert!(mcp.contains(&"notion-mcp".to_string()) && !mcp.contains(&"openai".to_string()));
    assert_eq!(names(&["--type", "llm"]).len(), 11);
    // Name, display name or host, any case.
    assert_eq!(names(&["--search", "STRIPE"]), ["stripe", "stripe-mcp"]);
    assert_eq!(
        names(&["--search", "Column Tax"]),
        ["aiwyn-tax-formerly-column-tax"]
    );
    assert_eq!(
        names(&["--search", "generativelanguage", "--type", "llm"]),
        ["gemini"]
    );
    assert!(names(&["--search", "stripe", "--type", "llm"]).is_empty());
    let out = h
        .cmd(["provider", "list", "--type", "mcp", "--search", "stripe"])
        .run()
        .success()
        .stderr_has("2 of 238 providers");
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    h.cmd(["provider", "list", "--search", "no-such-thing"])
        .run()
        .success()
        .stderr_has("No provider matches");
    h.cmd(["provider", "list", "--type", "nope"]).run().code(2);
}

#[test]
fn provider_show_says_how_to_log_in() {
    let h = TestHome::new();
    h.cmd(["provider", "show", "stripe"])
        .run()
        .success()
        .stdout_has("type:      mcp")
        .stdout_has("printf %s \"$KEY\" | authsome login stripe --with-api-key")
        .stdout_has("where to get a key: https://docs.stripe.com/mcp");
    h.cmd(["provider", "show", "notion-mcp"])
        .run()
        .success()
        .stdout_has("no client id is needed")
        .stdout_has("run `authsome login notion-mcp`");
    h.cmd(["provider", "show", "klaviyo-oauth"])
        .run()
        .success()
        .stdout_has("needs the client id")
        .stdout_has("/auth/callback/oauth")
        .stdout_has("where to register the app: https://developers.klaviyo.com/")
        .stdout_has("authsome login klaviyo-oauth --client-id ID");
    h.cmd(["provider", "show", "github"])
        .run()
        .success()
        .stdout_has("--base-url URL");
    // An MCP server's endpoint, and on a general-purpose host only its path
    // gets the credential.
    h.cmd(["provider", "show", "hugging-face"])
        .run()
        .success()
        .stdout_has("hosts:     huggingface.co/mcp\n")
        .stdout_has("mcp:       https://huggingface.co/mcp (streamable HTTP)")
        .stdout_has("claude mcp add --transport http hugging-face 'https://huggingface.co/mcp'`")
        .stdout_has("authsome run -- claude");
    h.cmd(["provider", "show", "square"])
        .run()
        .success()
        .stdout_has("hosts:     mcp.squareup.com\n")
        .stdout_has("mcp:       https://mcp.squareup.com/sse (server-sent events)")
        .stdout_has("--transport sse square");
    let json = h
        .cmd(["provider", "show", "wordpress-com", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(
        json["mcp"]["url"],
        "https://public-api.wordpress.com/wpcom/v2/mcp/v1"
    );
    assert_eq!(
        json["api_url"][0],
        "public-api.wordpress.com/wpcom/v2/mcp/v1"
    );
}

#[test]
fn the_example_provider_file_registers() {
    let h = TestHome::new();
    let f = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/custom_provider.json");
    h.cmd(["provider", "register", f]).run().success();
    h.login("acme", "acme_0123456789abcdef");
    let out = h.cmd(["export", "acme"]).run().success();
    assert_eq!(
        out.stdout,
        "ACME_API_KEY=acme_0123456789abcdef\nACME_API_URL=https://api.acme.example/v2\n"
    );
}

#[test]
fn rebinding_a_provider_with_connections_suspends_them_until_login_force() {
    use crate::common::lab::Lab;
    let lab = Lab::new();
    let port = lab.up.port;
    let acme = |rule: &str| {
        format!(
            r#"{{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["{rule}"],"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}},"export":{{"ACME_API_KEY":"api_key"}}}}"#
        )
    };
    let f = lab.home.dir.path().join("acme2.json");
    // The same definition again: nothing changes where the key goes.
    std::fs::write(&f, acme(&format!("api.acme.test:{port}"))).unwrap();
    let same = lab
        .cmd(["provider", "register", f.to_str().unwrap(), "--force"])
        .run()
        .success();
    assert!(!same.stderr.contains("suspended"), "{}", same.stderr);
    // Another host: the stored key must not follow it.
    std::fs::write(&f, acme(&format!("x.acme.test:{port}"))).unwrap();
    lab.cmd(["provider", "register", f.to_str().unwrap(), "--force"])
        .run()
        .success()
        .stderr_has("suspended its connection (default)")
        .stderr_has("authsome login acme --force");
    lab.cmd(["list"]).run().success().stdout_has("suspended");
    let url = format!("https://x.acme.test:{port}/new");
    let out = lab.run_sh(&format!("curl -sS -w '\\n%{{http_code}}' {url}"));
    assert!(
        out.stdout.contains("authsome_connection_suspended"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("authsome login acme --force"),
        "{}",
        out.stdout
    );
    assert!(
        lab.auths().iter().flatten().all(|a| !a.contains(&lab.key)),
        "the key reached the new host: {:?}",
        lab.auths()
    );
    // The user confirms by logging in again: the new host gets the key.
    lab.cmd(["login", "acme", "--with-api-key", "--force"])
        .stdin(&lab.key)
        .run()
        .success();
    lab.cmd(["list"]).run().success().stdout_has("connected");
    lab.run_sh(&format!("curl -sS -o /dev/null {url}"))
        .success();
    assert_eq!(
        lab.auths().last().unwrap(),
        &vec![format!("Bearer {}", lab.key)]
    );
}
