//! System-wide mode: `authsome proxy env`, the persistent CA and `authsome ca`.

use crate::common::lab::Lab;
use crate::common::mode;

#[test]
fn proxy_env_lines_work_in_a_shell() {
    let lab = Lab::new();
    let out = lab.cmd(["proxy", "env"]).run().success();
    assert!(
        out.stdout.contains("export HTTPS_PROXY='http://authsome:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("export NODE_EXTRA_CA_CERTS='"));
    assert!(
        !out.stdout.contains(&lab.key),
        "no provider secret in the lines"
    );
    let env_file = lab.home.dir.path().join("env.sh");
    std::fs::write(&env_file, &out.stdout).unwrap();
    let script = format!(
        ". {}; curl -sS -w '\\n%{{http_code}}' -H 'Authorization: Bearer placeholder' {}",
        env_file.display(),
        lab.url("/system")
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.trim_end().ends_with("200"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The upstream echoes the headers it got: the system-wide proxy
    // redacts them too (into a placeholder of its own).
    assert!(!stdout.contains(&lab.key), "{stdout}");
    assert!(stdout.contains("Bearer authsome-"), "{stdout}");
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].all("authorization"),
        vec![format!("Bearer {}", lab.key)]
    );
    // The same lines on the next call (the token persists across calls).
    let again = lab.cmd(["proxy", "env"]).run().success();
    assert_eq!(again.stdout, out.stdout);
    let status = lab
        .cmd(["proxy", "status", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(status["system"]["listening"], true);
    assert_eq!(status["system"]["stats"]["injected"], 1);
}

#[test]
fn proxy_env_speaks_fish_and_powershell() {
    let lab = Lab::new();
    lab.cmd(["proxy", "env", "--shell", "fish"])
        .run()
        .success()
        .stdout_has("set -gx HTTPS_PROXY 'http://authsome:");
    lab.cmd(["proxy", "env", "--shell", "powershell"])
        .run()
        .success()
        .stdout_has("$env:HTTPS_PROXY = 'http://authsome:");
    let j = lab.cmd(["proxy", "env", "--json"]).run().success().json();
    assert!(
        j["HTTPS_PROXY"]
            .as_str()
            .unwrap()
            .starts_with("http://authsome:")
    );
}

#[test]
fn the_persistent_ca_is_private_and_name_constrained() {
    let lab = Lab::new();
    let path = lab
        .cmd(["ca", "path"])
        .run()
        .success()
        .stdout
        .trim()
        .to_string();
    let dir = std::path::Path::new(&path).parent().unwrap();
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o600);
    let pem = lab.cmd(["ca", "show"]).run().success();
    assert!(pem.stdout.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pem.stderr.contains("name-constrained"), "{}", pem.stderr);
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Name Constraints: critical") || text.contains("X509v3 Name Constraints"),
        "{text}"
    );
    assert!(text.contains("DNS:api.acme.test"), "{text}");
    assert!(text.contains("DNS:api.openai.com"), "{text}");
    assert!(text.contains("IP:0.0.0.0/0.0.0.0"), "{text}");
    // The same CA on the next call, and after a daemon restart.
    lab.home.stop_daemon();
    let again = lab.cmd(["ca", "show"]).run().success();
    assert_eq!(again.stdout, pem.stdout);
}

#[test]
fn ca_install_and_uninstall_say_what_they_do() {
    let lab = Lab::new();
    let store = lab.home.dir.path().join("trust");
    std::fs::create_dir(&store).unwrap();
    let s = store.to_str().unwrap();
    let dry = lab
        .cmd(["ca", "install", "--dry-run"])
        .env("AUTHSOME_TRUST_STORE", s)
        .run()
        .success();
    assert!(dry.stdout.contains("would copy"), "{}", dry.stdout);
    assert_eq!(
        std::fs::read_dir(&store).unwrap().count(),
        0,
        "dry run changed nothing"
    );
    lab.cmd(["ca", "install"])
        .env("AUTHSOME_TRUST_STORE", s)
        .run()
        .success()
        .stderr_has("CA installed");
    let files: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert_eq!(files.len(), 1);
    lab.cmd(["ca", "uninstall"])
        .env("AUTHSOME_TRUST_STORE", s)
        .run()
        .success()
        .stderr_has("CA uninstalled");
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 0);
}

#[test]
fn doctor_shows_the_upstream_settings_and_the_ca() {
    let lab = Lab::new();
    lab.cmd(["ca", "path"]).run().success();
    let out = lab.cmd(["doctor"]).run().success();
    assert!(
        out.stdout
            .contains("AUTHSOME_RESOLVE api.acme.test=127.0.0.1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("AUTHSOME_UPSTREAM_CA_FILE"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("system CA"), "{}", out.stdout);
    // A provider registered after the CA was made is reported.
    lab.provider("late", "api.late.test", r#""api_key":{}"#);
    lab.cmd(["doctor"])
        .run()
        .success()
        .stdout_has("api.late.test");
    let bad = lab
        .cmd(["doctor"])
        .env("AUTHSOME_UPSTREAM_CA_FILE", "/nonexistent.pem")
        .run()
        .code(1);
    assert!(
        bad.stdout.contains("holds no readable PEM"),
        "{}",
        bad.stdout
    );
}
