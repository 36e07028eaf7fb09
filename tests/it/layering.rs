//! The allowed dependency edges between modules (see `src/lib.rs`), checked
//! by reading the source: a module may not name a module above it.

use std::path::Path;

/// (module directory or file stem, modules it must not use)
const FORBIDDEN: &[(&str, &[&str])] = &[
    // the clock is a leaf: it uses no other module of the crate
    (
        "clock",
        &[
            "app",
            "auth_flow",
            "ca",
            "cli",
            "config",
            "credentials",
            "daemon",
            "diagnostics",
            "error",
            "home",
            "identity",
            "percent",
            "pop",
            "providers",
            "proxy",
            "routing",
            "sandbox",
            "secret",
            "vault",
        ],
    ),
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

/// The sibling files a file names (`super::x`, `crate::a::b::x` where `x`
/// is a sibling of the file, or `self::x` in a `mod.rs` does not count: a
/// parent may use its children).
fn sibling_uses(file: &Path, siblings: &[String], module_path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    siblings
        .iter()
        .filter(|s| file.file_stem().is_some_and(|f| f != s.as_str()))
        .filter(|s| {
            [
                format!("super::{s}::"),
                format!("super::{s};"),
                format!("super::{s}}}"),
                format!("super::{{{s}"),
                format!("{module_path}::{s}::"),
                format!("{module_path}::{s};"),
                format!("{module_path}::{s}}}"),
            ]
            .iter()
            .any(|p| text.contains(p.as_str()))
        })
        .cloned()
        .collect()
}

fn check_dir(dir: &Path, module_path: &str, cycles: &mut Vec<String>) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            dirs.push(p);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs") {
            files.push(p);
        }
    }
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .chain(
            dirs.iter()
                .map(|d| d.file_name().unwrap().to_string_lossy().into_owned()),
        )
        .collect();
    let edges: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|f| {
            (
                f.file_stem().unwrap().to_string_lossy().into_owned(),
                sibling_uses(f, &names, module_path),
            )
        })
        .collect();
    for (a, uses) in &edges {
        for b in uses {
            if edges
                .iter()
                .any(|(n, u)| n == b && u.iter().any(|x| x == a))
                && a < b
            {
                cycles.push(format!("{module_path}::{a} <-> {module_path}::{b}"));
            }
        }
    }
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        check_dir(&d, &format!("{module_path}::{name}"), cycles);
    }
}

/// Sibling files never import each other both ways (the login routes once
/// did: `daemon::routes::auth_sessions` <-> `daemon::routes::oauth`, issue
/// #11); shared helpers go into a third file.
#[test]
fn sibling_files_do_not_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut cycles = Vec::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            check_dir(&p, &format!("crate::{name}"), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The check above finds the cycle it is meant to forbid.
#[test]
fn sibling_cycle_check_sees_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rs"), "use super::b::page;\nfn f() {}\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use crate::m::a::start;\n").unwrap();
    std::fs::write(dir.path().join("c.rs"), "use super::a::f;\n").unwrap();
    let mut cycles = Vec::new();
    check_dir(dir.path(), "crate::m", &mut cycles);
    assert_eq!(cycles, vec!["crate::m::a <-> crate::m::b".to_string()]);
}
