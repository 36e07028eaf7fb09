//! File modes under hostile umasks, and a read-only home. Root ignores file
//! modes, so the read-only test drops to an unprivileged uid first.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::{Cmd, TestHome, mode};

/// Runs `sh -c "umask U; exec authsome ARGS"` against the home.
fn with_umask(h: &TestHome, umask: &str, args: &str, stdin: Option<&str>) {
    // `sh -c 'umask U; exec "$0" ARGS' /path/to/authsome`
    let script = format!("umask {umask}; exec \"$0\" {args}");
    let mut c = Cmd::new(["-c", &script])
        .wrapped(["sh"])
        .env("AUTHSOME_HOME", h.home.to_str().unwrap());
    c = c.binary_last();
    if let Some(s) = stdin {
        c = c.stdin(s);
    }
    c.run().success();
}

#[test]
fn everything_is_private_even_under_umask_000() {
    for umask in ["000", "022"] {
        let h = TestHome::new();
        with_umask(&h, umask, "login ahrefs --with-api-key", Some("k"));
        with_umask(&h, umask, "whoami", None);
        assert_eq!(mode(&h.home), 0o700, "home under umask {umask}");
        let mut seen = 0;
        let mut stack = vec![h.home.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    assert_eq!(mode(&p), 0o700, "{} under umask {umask}", p.display());
                    stack.push(p);
                } else {
                    assert_eq!(mode(&p), 0o600, "{} under umask {umask}", p.display());
                }
                seen += 1;
            }
        }
        assert!(
            seen >= 7,
            "vault.db(+wal,shm), keys, daemon.json, logs/authsome.log"
        );
    }
}

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

#[test]
fn read_only_home_gives_a_clear_error_and_loses_nothing() {
    let h = TestHome::new();
    let nobody: &[&str] = if is_root() {
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        &[]
    };
    if is_root() {
        // The temp dir is root's and 0700; open it up and hand the home to nobody.
        std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(&h.home).unwrap();
        std::os::unix::fs::chown(&h.home, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&h.home, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Check we really are unprivileged before asserting anything about modes.
        let who = Command::new(nobody[0])
            .args(&nobody[1..])
            .arg("id")
            .arg("-u")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "65534");
    }
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut c = h
            .cmd(args.iter().copied())
            .wrapped(nobody.iter().copied())
            .env("HOME", "/nonexistent");
        if let Some(s) = stdin {
            c = c.stdin(s);
        }
        c.run()
    };
    run(&["login", "ahrefs", "--with-api-key"], Some("first-key")).success();
    run(&["daemon", "stop"], None).success();
    let before = std::fs::read(h.path("vault.db")).unwrap();
    std::fs::set_permissions(&h.home, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = run(&["login", "apollo", "--with-api-key"], Some("second-key"));
    assert_ne!(
        out.code, 0,
        "login into a read-only home must fail:\n{}",
        out.stderr
    );
    assert!(out.stderr.starts_with("authsome: error:"), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    std::fs::set_permissions(&h.home, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        std::fs::read(h.path("vault.db")).unwrap(),
        before,
        "vault changed"
    );
    let out = run(&["export", "ahrefs"], None).success();
    assert_eq!(out.stdout, "AHREFS_API_KEY=first-key\n");
}
