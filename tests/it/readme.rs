//! The README's recipes, run as written (issue #12: a new user follows them
//! to the letter).

use std::process::Command;

use crate::common::{TestHome, bin};

/// The first ```sh block after `heading`.
fn block_after(heading: &str) -> String {
    let readme = include_str!("../../README.md");
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("\n```\n").expect("its end");
    rest[start..start + end].to_string()
}

#[test]
fn the_local_https_server_recipe_works_as_written() {
    let h = TestHome::new();
    let work = h.dir.path().join("recipe");
    std::fs::create_dir_all(&work).unwrap();
    let recipe = block_after("### Try it against your own local HTTPS server");
    // Whatever happens, the background server does not outlive the test.
    let script = format!("trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nset -e\n{recipe}\n");
    let bin_dir = std::path::Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("AUTHSOME_HOME", &h.home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", "0")
        .env("AUTHSOME_PROXY_PORT", "0")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(r#"{"ok": true}"#),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("server got: Bearer my-secret-key"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn the_definition_example_is_a_valid_definition() {
    let readme = include_str!("../../README.md");
    let at = readme
        .find("A definition (our schema")
        .expect("the definition example");
    let rest = &readme[at..];
    let start = rest.find("```jsonc\n").expect("a jsonc block") + "```jsonc\n".len();
    let end = rest[start..].find("\n```\n").expect("its end");
    let def = authsome::providers::ProviderDef::parse(&rest[start..start + end])
        .unwrap_or_else(|e| panic!("{}: {:?}", e.message, e.hint));
    assert_eq!(def.name, "acme");
    assert!(def.mcp.is_some());
    assert_eq!(def.rules.len(), 2);
}
