//! The allowed dependency edges between modules (see `src/lib.rs`), checked
//! by reading the source: a module may not name a module above it.

use std::path::Path;

/// (module directory or file stem, modules it must not use)
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "vault",
        &[
            "providers",
            "credentials",
            "routing",
            "identity",
            "diagnostics",
            "cli",
            "proxy",
            "daemon",
        ],
    ),
    (
        "providers",
        &[
            "vault",
            "credentials",
            "routing",
            "identity",
            "diagnostics",
            "cli",
            "proxy",
            "daemon",
        ],
    ),
    (
        "routing",
        &[
            "vault",
            "credentials",
            "identity",
            "diagnostics",
            "cli",
            "home",
            "proxy",
            "daemon",
        ],
    ),
    (
        "secret",
        &[
            "vault",
            "providers",
            "credentials",
            "routing",
            "cli",
            "home",
            "config",
        ],
    ),
    (
        "error",
        &[
            "vault",
            "providers",
            "credentials",
            "routing",
            "cli",
            "home",
            "config",
        ],
    ),
    (
        "config",
        &["vault", "providers", "credentials", "routing", "cli"],
    ),
    (
        "home",
        &[
            "vault",
            "providers",
            "credentials",
            "routing",
            "cli",
            "identity",
        ],
    ),
    (
        "identity",
        &["vault", "providers", "credentials", "routing", "cli"],
    ),
    ("credentials", &["cli", "diagnostics", "proxy", "daemon"]),
    ("diagnostics", &["cli", "credentials", "daemon"]),
    (
        "pop",
        &["vault", "providers", "credentials", "cli", "daemon", "app"],
    ),
    ("auth_flow", &["vault", "cli", "daemon", "app", "proxy"]),
    // the two front ends never import each other, nor the CLI or the composition root
    ("daemon", &["cli", "app", "proxy", "diagnostics"]),
    ("app", &["cli"]),
    // the HTTP bodies sit below both front ends: the CLI and the daemon use them
    ("api", &["cli", "daemon", "proxy", "app"]),
    ("proxy", &["vault", "daemon", "cli", "app", "diagnostics"]),
    (
        "ca",
        &[
            "vault",
            "providers",
            "credentials",
            "routing",
            "cli",
            "daemon",
            "app",
            "identity",
        ],
    ),
];

fn sources(under: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if under.is_file() {
        out.push(under.to_path_buf());
    } else if under.is_dir() {
        for e in std::fs::read_dir(under).unwrap() {
            out.extend(sources(&e.unwrap().path()));
        }
    }
    out.retain(|p| p.extension().is_some_and(|x| x == "rs"));
    out
}

#[test]
fn modules_only_use_what_is_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, banned) in FORBIDDEN {
        let mut files = sources(&src.join(module));
        files.extend(sources(&src.join(format!("{module}.rs"))));
        assert!(!files.is_empty(), "no sources for {module}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for b in *banned {
                if text.contains(&format!("crate::{b}::"))
                    || text.contains(&format!("crate::{b};"))
                    || text.contains(&format!("crate::{b}}}"))
                {
                    violations.push(format!(
                        "{} uses crate::{b}",
                        f.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}
