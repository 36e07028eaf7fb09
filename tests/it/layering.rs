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
            "bench",
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
            "request_log",
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
    // the request log: the proxy records, the daemon reads, `app` wires it;
    // it knows files (through `home`), never what a request was for
    (
        "request_log",
        &[
            "vault",
            "providers",
            "credentials",
            "routing",
            "identity",
            "diagnostics",
            "auth_flow",
            "api",
            "cli",
            "proxy",
            "daemon",
            "app",
        ],
    ),
    // the two front ends never import each other, nor the CLI or the composition root
    ("daemon", &["cli", "app", "proxy", "diagnostics", "bench"]),
    ("app", &["cli"]),
    // the HTTP bodies sit below both front ends: the CLI and the daemon use them
    ("api", &["cli", "daemon", "proxy", "app"]),
    (
        "proxy",
        &["vault", "daemon", "cli", "app", "diagnostics", "bench"],
    ),
    // `authsome bench` wires the proxy engine to a throwaway credential in
    // memory: never the vault, the home, the daemon or the login flows
    (
        "bench",
        &[
            "vault",
            "home",
            "identity",
            "daemon",
            "auth_flow",
            "app",
            "cli",
            "diagnostics",
        ],
    ),
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

/// The first path segment after each `prefix` in `text`, expanding use
/// groups: `super::{a, b::c, d as e}` names `a`, `b` and `d`.
fn names_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the top level of the group: `{a, b::{c, d}}` names a, b.
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || ch != '{' {
                    item.push(ch);
                }
            }
            out.push(first_segment(&item));
        } else {
            out.push(first_segment(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

fn first_segment(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The siblings a module's files name (`super::x`, `crate::path::x`, in
/// groups too). A module is a file, or a directory and everything in it.
fn sibling_uses(
    files: &[std::path::PathBuf],
    me: &str,
    siblings: &[String],
    module_path: &str,
) -> Vec<String> {
    let mut named = Vec::new();
    for f in files {
        // Code only: a doc link to another module is not a dependency.
        let text: String = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        // `super::` names a sibling from the file module itself, or from a
        // directory module's `mod.rs`; deeper inside a directory it names
        // the directory's own children.
        let file_module = f.file_stem().is_some_and(|s| s == me);
        let dir_root = f.ends_with("mod.rs")
            && f.parent()
                .and_then(|p| p.file_name())
                .is_some_and(|d| d == me);
        if file_module || dir_root {
            named.extend(names_after(&text, "super::"));
        }
        named.extend(names_after(&text, &format!("{module_path}::")));
    }
    let mut out: Vec<String> = siblings
        .iter()
        .filter(|s| s.as_str() != me && named.iter().any(|n| n == *s))
        .cloned()
        .collect();
    out.sort();
    out
}

fn check_dir(dir: &Path, module_path: &str, cycles: &mut Vec<String>) {
    // module name -> its files (a file module, or a directory module's tree)
    let mut modules: Vec<(String, Vec<std::path::PathBuf>)> = Vec::new();
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            modules.push((name, sources(&p)));
            dirs.push(p);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            modules.push((name, vec![p]));
        }
    }
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    let edges: Vec<(String, Vec<String>)> = modules
        .iter()
        .map(|(n, files)| (n.clone(), sibling_uses(files, n, &names, module_path)))
        .collect();
    for (a, uses) in &edges {
        for b in uses {
            if a < b
                && edges
                    .iter()
                    .any(|(n, u)| n == b && u.iter().any(|x| x == a))
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

/// Sibling modules never import each other both ways (the login routes
/// once did: `daemon::routes::auth_sessions` <-> `daemon::routes::oauth`,
/// issue #11); what both need goes into a third file. Methods of a type
/// defined in a sibling are invisible to this check: keep such types in a
/// file of their own (as `proxy::shared`), so the check means something.
#[test]
fn sibling_modules_do_not_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut cycles = Vec::new();
    // The crate's top-level modules are siblings too.
    check_dir(&src, "crate", &mut cycles);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The check above finds the cycles it is meant to forbid, in every form a
/// `use` can take.
#[test]
fn sibling_cycle_check_sees_each_form_of_import() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path();
    std::fs::write(m.join("a.rs"), "use super::b::page;\nfn f() {}\n").unwrap();
    std::fs::write(m.join("b.rs"), "use crate::m::a::start;\n").unwrap();
    // a group, an alias, and a nested group
    std::fs::write(m.join("c.rs"), "use super::{x, d::{e, f} as g};\n").unwrap();
    std::fs::write(m.join("d.rs"), "use crate::m::{c as cc, other};\n").unwrap();
    // a directory module naming a sibling file from inside; `super::` deep
    // inside it names its own children, not the siblings; comments do not
    // count
    std::fs::create_dir(m.join("dir")).unwrap();
    std::fs::write(
        m.join("dir").join("mod.rs"),
        "mod inner;\n// see crate::m::x::y\n",
    )
    .unwrap();
    std::fs::write(m.join("dir").join("deep.rs"), "use super::x::local;\n").unwrap();
    std::fs::write(m.join("dir").join("inner.rs"), "use crate::m::e::thing;\n").unwrap();
    std::fs::write(m.join("e.rs"), "use super::dir::inner::Type;\n").unwrap();
    // one way only: no cycle
    // (x names dir; dir names x only in a comment and through a deeper
    // `super::`, which are no imports of x)
    std::fs::write(m.join("x.rs"), "use super::{a::f, dir::Thing};\n").unwrap();
    let mut cycles = Vec::new();
    check_dir(m, "crate::m", &mut cycles);
    cycles.sort();
    assert_eq!(
        cycles,
        vec![
            "crate::m::a <-> crate::m::b".to_string(),
            "crate::m::c <-> crate::m::d".to_string(),
            "crate::m::dir <-> crate::m::e".to_string(),
        ]
    );
}

/// The daemon's routes change nothing themselves: every write goes through
/// `auth_flow::logins::Logins`, which makes the proxy see it and records it
/// (issue #11). A route that called a write of the credential service, or
/// reached the vault to write, would skip both.
#[test]
fn daemon_routes_never_write_past_logins() {
    const WRITES: &[&str] = &[
        "login_api_key(",
        "store_oauth(",
        "logout(",
        "logout_and_revoke(",
        "set_default(",
        "export(",
        "register_provider(",
        "register_provider_suspending(",
        "remove_provider(",
        "put_oauth_client(",
        "append_audit(",
        "revoke_at_provider(",
        "put_connection(",
        "delete_connection(",
        "put_custom_provider(",
        "delete_custom_provider(",
        "suspend_connections(",
        ".changed(",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for f in sources(&src.join("daemon")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for w in WRITES {
            // `svc.x(` / `.vault().x(`: a call on the service or the vault,
            // not `state.logins.x(`.
            for (i, _) in code.match_indices(w) {
                let before = &code[..i];
                let receiver = before
                    .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '{' || c == ';')
                    .next()
                    .unwrap_or("");
                if !receiver.contains("logins.")
                    && (receiver.contains("svc")
                        || receiver.contains("vault()")
                        || *w == ".changed(")
                {
                    found.push(format!(
                        "{}: {receiver}{w}",
                        f.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "writes past Logins:\n{}",
        found.join("\n")
    );
}
