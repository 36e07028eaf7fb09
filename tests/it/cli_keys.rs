//! Where the master key comes from, and what happens when it is wrong.

use base64::Engine;

use crate::common::{TestHome, mode};

fn b64(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

#[test]
fn env_master_key_is_used_and_no_key_file_is_written() {
    let h = TestHome::new();
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env("AUTHSOME_MASTER_KEY", &b64(1))
        .stdin("k")
        .run()
        .success();
    assert!(!h.path("master.key").exists());
    let v = h
        .cmd(["whoami", "--json"])
        .env("AUTHSOME_MASTER_KEY", &b64(1))
        .run()
        .success()
        .json();
    assert_eq!(v["effective_encryption_source"], "env");
}

#[test]
fn wrong_master_key_is_named_and_writes_nothing() {
    let h = TestHome::new();
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env("AUTHSOME_MASTER_KEY", &b64(1))
        .stdin("k")
        .run()
        .success();
    // The running daemon holds the key it started with; a new key matters at its next start.
    h.stop_daemon();
    let before = std::fs::read(h.path("vault.db")).unwrap();
    h.cmd(["list"])
        .env("AUTHSOME_MASTER_KEY", &b64(2))
        .run()
        .code(5)
        .stderr_has("the master key from AUTHSOME_MASTER_KEY does not match this vault")
        .stderr_has("hint:");
    h.cmd(["login", "openai", "--with-api-key"])
        .env("AUTHSOME_MASTER_KEY", &b64(2))
        .stdin("sk-aaaaaaaaaaaaaaaaaaaaaaaa")
        .run()
        .code(5);
    assert_eq!(
        std::fs::read(h.path("vault.db")).unwrap(),
        before,
        "vault file changed"
    );
    h.cmd(["doctor"])
        .env("AUTHSOME_MASTER_KEY", &b64(2))
        .run()
        .code(1)
        .stdout_has("✗ vault");
    // the right key still opens everything
    h.cmd(["export", "ahrefs"])
        .env("AUTHSOME_MASTER_KEY", &b64(1))
        .run()
        .success();
}

#[test]
fn passphrase_master_key_works_and_a_different_one_is_refused() {
    let h = TestHome::new();
    let pass = "correct horse battery staple";
    let with =
        |args: &[&str], key: &str| h.cmd(args.iter().copied()).env("AUTHSOME_MASTER_KEY", key);
    with(&["login", "ahrefs", "--with-api-key"], pass)
        .stdin("k")
        .run()
        .success();
    with(&["export", "ahrefs"], pass)
        .run()
        .success()
        .stdout_has("AHREFS_API_KEY=k");
    h.stop_daemon();
    with(&["export", "ahrefs"], "incorrect horse battery staple")
        .run()
        .code(5)
        .stderr_has("does not match this vault");
    with(&["list"], "short")
        .run()
        .code(5)
        .stderr_has("passphrase of at least");
    with(&["export", "ahrefs"], pass).run().success();
}

#[test]
fn master_key_file_env_must_be_private() {
    let h = TestHome::new();
    let key = h.dir.path().join("mk");
    std::fs::write(&key, b64(9)).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env("AUTHSOME_MASTER_KEY_FILE", key.to_str().unwrap())
        .stdin("k")
        .run()
        .code(5)
        .stderr_has(&format!(
            "{} is accessible by other users (mode 644)",
            key.display()
        ))
        .stderr_has(&format!("chmod 600 {}", key.display()));
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env("AUTHSOME_MASTER_KEY_FILE", key.to_str().unwrap())
        .stdin("k")
        .run()
        .success();
    let v = h
        .cmd(["whoami", "--json"])
        .env("AUTHSOME_MASTER_KEY_FILE", key.to_str().unwrap())
        .run()
        .success()
        .json();
    assert_eq!(v["effective_encryption_source"], "key_file");
}

#[test]
fn loose_generated_key_file_is_refused_with_the_fix() {
    let h = TestHome::new();
    h.login("ahrefs", "k");
    h.stop_daemon();
    let key = h.path("master.key");
    assert_eq!(mode(&key), 0o600);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    h.cmd(["export", "ahrefs"])
        .run()
        .code(5)
        .stderr_has("chmod 600")
        .stderr_has("master.key");
    h.cmd(["doctor"]).run().code(1).stdout_has("✗ master key");
}

#[test]
fn missing_key_for_an_existing_vault_is_not_replaced() {
    let h = TestHome::new();
    h.login("ahrefs", "k");
    h.stop_daemon();
    std::fs::rename(h.path("master.key"), h.dir.path().join("saved.key")).unwrap();
    h.cmd(["list"])
        .run()
        .code(5)
        .stderr_has("no master key found for the existing vault");
    assert!(
        !h.path("master.key").exists(),
        "a new key was generated for an old vault"
    );
    std::fs::rename(h.dir.path().join("saved.key"), h.path("master.key")).unwrap();
    h.cmd(["export", "ahrefs"]).run().success();
}

#[test]
fn headless_keyring_falls_back_to_the_key_file() {
    // Keyring on, but no D-Bus session: the Secret Service lookup fails fast
    // and the key goes to master.key, reported as such.
    let h = TestHome::new();
    let start = std::time::Instant::now();
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env_remove("AUTHSOME_KEYRING")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdin("k")
        .run()
        .success();
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    assert!(h.path("master.key").exists());
    let d = h
        .cmd(["doctor", "--json"])
        .env_remove("AUTHSOME_KEYRING")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .run()
        .success()
        .json();
    let keyring = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keyring")
        .unwrap();
    assert!(
        keyring["detail"]
            .as_str()
            .unwrap()
            .contains("no desktop keyring (no D-Bus session)"),
        "{keyring}"
    );
    let mk = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "master key")
        .unwrap();
    assert!(
        mk["detail"].as_str().unwrap().contains("master.key"),
        "{mk}"
    );
}

#[test]
fn an_auto_started_daemon_gets_the_master_key_through_a_pipe_not_its_environment() {
    let h = TestHome::new();
    let key = b64(7);
    h.cmd(["login", "ahrefs", "--with-api-key"])
        .env("AUTHSOME_MASTER_KEY", &key)
        .stdin("k")
        .run()
        .success();
    let pid = h.daemon().unwrap()["pid"].as_u64().unwrap();
    // Read as the same user (root in CI): the key is in neither its
    // environment nor its arguments.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(&environ, b"AUTHSOME_HOME="),
        "environ is readable and non-empty"
    );
    assert!(
        !has(&environ, key.as_bytes()),
        "the key is in the daemon's environment"
    );
    assert!(!has(&environ, b"AUTHSOME_MASTER_KEY="));
    assert!(
        !has(&cmdline, key.as_bytes()),
        "the key is in the daemon's arguments"
    );
    // And the daemon uses it: the vault opens with the key from the environment.
    let v = h
        .cmd(["whoami", "--json"])
        .env("AUTHSOME_MASTER_KEY", &key)
        .run()
        .success()
        .json();
    assert_eq!(v["effective_encryption_source"], "env");
    assert!(!h.path("master.key").exists());
    h.stop_daemon();
    h.cmd(["export", "ahrefs"])
        .env("AUTHSOME_MASTER_KEY", &key)
        .run()
        .success()
        .stdout_has("AHREFS_API_KEY=k");
}
