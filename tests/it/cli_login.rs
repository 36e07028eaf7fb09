//! Storing, listing, exporting and removing API keys through the real binary.

use crate::common::TestHome;

const OPENAI_KEY: &str = "sk-test0123456789abcdefghij";

#[test]
fn login_list_export_logout_lifecycle() {
    let h = TestHome::new();
    h.cmd(["list"])
        .run()
        .success()
        .stderr_has("No connections yet");
    h.login("openai", OPENAI_KEY)
        .stderr_has("Stored the OpenAI API key as openai/default");

    let list = h.cmd(["list"]).run().success();
    assert!(
        list.stdout.contains("openai") && list.stdout.contains("connected"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains(OPENAI_KEY));

    let json = h.cmd(["list", "--json"]).run().success().json();
    assert_eq!(json[0]["provider"], "openai");
    assert_eq!(json[0]["name"], "default");
    assert_eq!(json[0]["is_default"], true);
    assert_eq!(json[0]["secrets"]["api_key"], "***");

    let env = h.cmd(["export", "openai"]).run().success();
    assert_eq!(env.stdout, format!("OPENAI_API_KEY={OPENAI_KEY}\n"));
    let sh = h
        .cmd(["export", "openai", "--format", "shell"])
        .run()
        .success();
    assert_eq!(sh.stdout, format!("export OPENAI_API_KEY='{OPENAI_KEY}'\n"));
    let js = h
        .cmd(["export", "openai", "--format", "json"])
        .run()
        .success()
        .json();
    assert_eq!(js["OPENAI_API_KEY"], OPENAI_KEY);

    h.cmd(["logout", "openai"])
        .run()
        .success()
        .stderr_has("Removed");
    assert_eq!(
        h.cmd(["list", "--json"]).run().success().json(),
        serde_json::json!([])
    );
    h.cmd(["logout", "openai"])
        .run()
        .code(3)
        .stderr_has("hint: run `authsome login openai`");
}

#[test]
fn shell_export_quotes_single_quotes() {
    let h = TestHome::new();
    h.login("ahrefs", "it's-a-key");
    let sh = h
        .cmd(["export", "ahrefs", "--format", "shell"])
        .run()
        .success();
    assert_eq!(sh.stdout, "export AHREFS_API_KEY='it'\\''s-a-key'\n");
    // and a shell reads back the exact value
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{}\nprintf %s \"$AHREFS_API_KEY\"", sh.stdout))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it's-a-key");
}

#[test]
fn json_login_output_is_machine_readable() {
    let h = TestHome::new();
    let out = h
        .cmd(["login", "openai", "--with-api-key", "--json"])
        .stdin(OPENAI_KEY)
        .run()
        .success();
    let v = out.json();
    assert_eq!(v["status"], "connected");
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["connection"], "default");
}

#[test]
fn key_failing_its_pattern_is_refused_with_the_provider_hint() {
    let h = TestHome::new();
    h.cmd(["login", "openai", "--with-api-key"])
        .stdin("pk-wrongshape")
        .run()
        .code(4)
        .stderr_has("authsome: error: that does not look like an API key for OpenAI")
        .stderr_has("hint: OpenAI keys start with `sk-`");
    assert_eq!(
        h.cmd(["list", "--json"]).run().success().json(),
        serde_json::json!([])
    );
}

#[test]
fn key_with_a_line_break_inside_is_refused() {
    let h = TestHome::new();
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .stdin("abc\r\nX-Injected: yes")
        .run()
        .code(4)
        .stderr_has("line breaks");
}

#[test]
fn existing_connection_needs_force_and_keeps_the_old_key() {
    let h = TestHome::new();
    h.login("ahrefs", "first-key");
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .stdin("second-key")
        .run()
        .code(6)
        .stderr_has("--force");
    assert_eq!(
        h.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=first-key\n"
    );
    h.cmd(["login", "ahrefs", "--with-api-key", "--force"])
        .stdin("second-key")
        .run()
        .success();
    assert_eq!(
        h.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=second-key\n"
    );
}

#[test]
fn several_connections_and_set_default() {
    let h = TestHome::new();
    h.cmd(["login", "ahrefs", "-c", "work", "--with-api-key"])
        .stdin("work-key")
        .run()
        .success();
    h.cmd(["login", "ahrefs", "-c", "home", "--with-api-key"])
        .stdin("home-key")
        .run()
        .success();
    assert_eq!(
        h.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=work-key\n"
    );
    h.cmd(["set-default", "ahrefs", "home"]).run().success();
    assert_eq!(
        h.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=home-key\n"
    );
    assert_eq!(
        h.cmd(["export", "ahrefs", "-c", "work"])
            .run()
            .success()
            .stdout,
        "AHREFS_API_KEY=work-key\n"
    );
    h.cmd(["set-default", "ahrefs", "nope"]).run().code(3);
    h.cmd(["logout", "ahrefs", "-c", "home"]).run().success();
    // the remaining connection takes over as default
    assert_eq!(
        h.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=work-key\n"
    );
}

#[test]
fn unknown_provider_is_a_clear_error() {
    let h = TestHome::new();
    h.cmd(["login", "nosuch", "--with-api-key"])
        .stdin("x")
        .run()
        .code(3)
        .stderr_has("unknown provider `nosuch`")
        .stderr_has("authsome provider list");
}

#[test]
fn oauth_provider_is_not_an_api_key_login() {
    let h = TestHome::new();
    h.cmd(["login", "github", "--with-api-key"])
        .stdin("x")
        .run()
        .code(4)
        .stderr_has("OAuth");
    // Without a client id (GitHub ships none), the error says how to get one.
    h.cmd(["login", "github", "--no-browser"])
        .run()
        .code(4)
        .stderr_has("--client-id");
}

#[test]
fn quiet_keeps_data_and_drops_chatter() {
    let h = TestHome::new();
    let out = h
        .cmd(["login", "ahrefs", "--with-api-key", "-q"])
        .stdin("k")
        .run()
        .success();
    assert_eq!(out.stderr, "");
    let out = h.cmd(["export", "ahrefs", "-q"]).run().success();
    assert_eq!(out.stdout, "AHREFS_API_KEY=k\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn whoami_reports_identity_key_source_and_connections() {
    let h = TestHome::new();
    let fresh = h.cmd(["whoami", "--json"]).run().success().json();
    assert!(fresh["did"].as_str().unwrap().starts_with("did:key:z6Mk"));
    assert_eq!(fresh["connected_providers"], serde_json::json!({}));
    h.login("ahrefs", "k");
    let v = h.cmd(["whoami", "--json"]).run().success().json();
    assert_eq!(v["did"], fresh["did"], "identity is stable");
    assert_eq!(v["effective_encryption_source"], "local_key");
    assert_eq!(v["connected_providers"]["ahrefs"], 1);
    h.cmd(["whoami"])
        .run()
        .success()
        .stdout_has("identity    did:key:z6Mk")
        .stdout_has("connected   ahrefs");
}

#[test]
fn doctor_passes_on_a_healthy_home() {
    let h = TestHome::new();
    h.cmd(["doctor"]).run().success().stdout_has("! vault");
    h.login("ahrefs", "k");
    h.cmd(["whoami"]).run().success();
    let v = h.cmd(["doctor", "--json"]).run().success().json();
    assert_eq!(v["ok"], true);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "home",
        "keyring",
        "master key",
        "vault",
        "providers",
        "identity",
    ] {
        assert!(names.contains(&n), "{names:?} lacks {n}");
    }
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "pass"),
        "{v}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    Cmd::new(["--no-such-flag"]).run().code(2);
    Cmd::new(["--help"]).run().success().stdout_has("login");
    Cmd::new(["--version"])
        .run()
        .success()
        .stdout_has(env!("CARGO_PKG_VERSION"));
}

use crate::common::Cmd;

#[test]
fn terminal_prompt_hides_the_key() {
    // `script` gives the command a pseudo-terminal; the key is typed into it.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("`script` (util-linux) is needed for this test; .ci/run installs it");
    }
    let h = TestHome::new();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(sleep 0.5; printf '{OPENAI_KEY}\\n') | script -q -e -c '{} login openai' /dev/null",
            crate::common::bin()
        ))
        .env("AUTHSOME_HOME", &h.home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", "0")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("OpenAI API key (input is hidden)"),
        "{shown}"
    );
    assert!(shown.contains("Stored the OpenAI API key"), "{shown}");
    assert!(!shown.contains(OPENAI_KEY), "the key was echoed: {shown}");
    assert_eq!(
        h.cmd(["export", "openai"]).run().success().stdout,
        format!("OPENAI_API_KEY={OPENAI_KEY}\n")
    );
}

#[test]
fn doctor_says_in_words_why_the_keyring_is_not_used() {
    // No D-Bus session here: the line names that, not zbus's error text.
    let h = crate::common::TestHome::new();
    let out = h
        .cmd(["doctor"])
        .env_remove("AUTHSOME_KEYRING")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/authsome-test-bus",
        )
        .run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("keyring"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("no desktop keyring (no D-Bus session)"),
        "{line}"
    );
    assert!(!line.contains("zbus"), "{line}");
}

#[test]
fn a_misspelt_provider_gets_did_you_mean() {
    let h = crate::common::TestHome::new();
    for args in [
        vec!["login", "openia", "--with-api-key"],
        vec!["provider", "show", "openia"],
        vec!["export", "openia"],
        vec!["logout", "openia"],
    ] {
        h.cmd(&args)
            .stdin("sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .run()
            .code(3)
            .stderr_has("unknown provider `openia`")
            .stderr_has("did you mean `openai`?");
    }
    // Nothing close: no guess.
    let out = h.cmd(["provider", "show", "qqqqqqqq"]).run().code(3);
    assert!(!out.stderr.contains("did you mean"), "{}", out.stderr);
}

#[test]
fn completions_man_page_and_help_examples() {
    // Generated from the parser's own definitions; no daemon needed.
    let h = crate::common::TestHome::new();
    let bash = h.cmd(["completions", "bash"]).run().success();
    assert!(bash.stdout.contains("_authsome()"), "{}", bash.stdout);
    for sub in ["login", "run", "export", "doctor", "completions"] {
        assert!(bash.stdout.contains(sub), "bash completion lacks {sub}");
    }
    // The script is valid bash.
    let f = h.dir.path().join("authsome.bash");
    std::fs::write(&f, &bash.stdout).unwrap();
    let st = std::process::Command::new("bash")
        .arg("-n")
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    for shell in ["zsh", "fish", "powershell"] {
        let out = h.cmd(["completions", shell]).run().success();
        assert!(out.stdout.contains("authsome"), "{shell}");
    }
    h.cmd(["completions", "tcsh"]).run().code(2);
    let man = h.cmd(["man"]).run().success();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH authsome 1"),
        "{}",
        man.stdout
    );
    assert!(man.stdout.contains("authsome"), "{}", man.stdout);
    for cmd in ["run", "login", "export"] {
        let help = h.cmd([cmd, "--help"]).run().success();
        assert!(
            help.stdout.contains("Examples:"),
            "{cmd} --help: {}",
            help.stdout
        );
    }
    assert!(
        !h.home.join("daemon.json").exists(),
        "no daemon was started"
    );
}

#[test]
fn counts_read_as_english() {
    // "Exported 1 variable(s)", "1 connections" (issue #12).
    let h = crate::common::TestHome::new();
    h.login("ahrefs", "k");
    h.cmd(["export", "ahrefs"])
        .run()
        .success()
        .stderr_has("Exported 1 variable for ahrefs/default");
    h.cmd(["doctor"])
        .run()
        .success()
        .stdout_has("(1 connection, all decrypt)");
}
