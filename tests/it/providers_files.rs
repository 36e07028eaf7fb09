//! Invariants of the bundled catalogue, checked on the files themselves.

use std::collections::{BTreeMap, BTreeSet};

use authsome::providers::{self, AuthType, HostRule, ProviderDef, Registry};

fn files() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn defs() -> Vec<(String, ProviderDef)> {
    files()
        .into_iter()
        .map(|(f, t)| {
            let d = providers::parse_file(&f, &t).unwrap_or_else(|e| panic!("{e}: {:?}", e.hint()));
            (f, d)
        })
        .collect()
}

#[test]
fn all_88_files_parse_and_are_embedded() {
    let d = defs();
    assert_eq!(d.len(), 88);
    let embedded: Vec<&str> = providers::bundled_files().iter().map(|(f, _)| *f).collect();
    let on_disk: Vec<String> = files().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        embedded, on_disk,
        "build.rs embeds every file in providers/"
    );
    assert_eq!(Registry::bundled().unwrap().len(), 88);
}

#[test]
fn names_are_unique_and_match_file_names() {
    let mut seen = BTreeSet::new();
    for (f, d) in defs() {
        assert_eq!(f, format!("{}.json", d.name));
        assert!(seen.insert(d.name.clone()), "duplicate {}", d.name);
    }
}

#[test]
fn no_host_rule_is_claimed_by_two_providers() {
    let mut owner: BTreeMap<HostRule, String> = BTreeMap::new();
    for (_, d) in defs() {
        for r in &d.rules {
            if let Some(prev) = owner.insert(r.clone(), d.name.clone()) {
                panic!("`{r}` is claimed by both {prev} and {}", d.name);
            }
        }
    }
}

#[test]
fn every_header_template_is_resolvable() {
    for (_, d) in defs() {
        match d.auth_type {
            AuthType::ApiKey | AuthType::Oauth2 => {
                let inj = d
                    .injection()
                    .unwrap_or_else(|| panic!("{} has no injection", d.name));
                assert!(!inj.name.is_empty());
                assert!(
                    http_header_name(&inj.name),
                    "{}: header {}",
                    d.name,
                    inj.name
                );
                assert!(inj.prefix.is_empty() || inj.prefix.ends_with(' '));
                assert!(!inj.prefix.contains(['\r', '\n']));
            }
            AuthType::Browser => assert!(d.injection().is_none()),
        }
        assert!(!d.export.is_empty(), "{} exports nothing", d.name);
    }
}

fn http_header_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[test]
fn the_reference_regexes_became_safe_wildcards() {
    let d: BTreeMap<String, ProviderDef> = defs()
        .into_iter()
        .map(|(_, d)| (d.name.clone(), d))
        .collect();
    assert!(
        d["github"]
            .api_url
            .contains(&"*.githubusercontent.com".to_string())
    );
    assert_eq!(d["google"].api_url, vec!["*.googleapis.com".to_string()]);
    for def in d.values() {
        assert!(
            def.api_url.iter().all(|u| !u.contains("regex")),
            "{}",
            def.name
        );
    }
}

#[test]
fn catalogue_counts_match_the_reference() {
    let d = defs();
    let count = |t: AuthType| d.iter().filter(|(_, x)| x.auth_type == t).count();
    assert_eq!(
        (
            count(AuthType::ApiKey),
            count(AuthType::Oauth2),
            count(AuthType::Browser)
        ),
        (47, 39, 2)
    );
}

#[test]
fn bundled_files_are_in_canonical_form() {
    // What `provider show --json` prints for a bundled provider parses back to the same definition.
    for (_, d) in defs() {
        assert_eq!(ProviderDef::parse(&d.to_json()).unwrap(), d, "{}", d.name);
    }
}
