//! Invariants of the bundled catalogue, checked on the files themselves.

use std::collections::{BTreeMap, BTreeSet};

use authsome::providers::{self, AuthType, HostPattern, HostRule, ProviderDef, Registry};

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
fn all_238_files_parse_and_are_embedded() {
    let d = defs();
    assert_eq!(d.len(), 238);
    let embedded: Vec<&str> = providers::bundled_files().iter().map(|(f, _)| *f).collect();
    let on_disk: Vec<String> = files().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        embedded, on_disk,
        "build.rs embeds every file in providers/"
    );
    assert_eq!(Registry::bundled().unwrap().len(), 238);
}

#[test]
fn names_are_unique_and_match_file_names() {
    let mut seen = BTreeSet::new();
    for (f, d) in defs() {
        assert_eq!(f, format!("{}.json", d.name));
        assert!(seen.insert(d.name.clone()), "duplicate {}", d.name);
    }
}

/// One line of `tests/fixtures/provider-facts.jsonl`: the reference's
/// catalogue (238 providers), reduced to what the bundled files must agree with.
#[derive(serde::Deserialize)]
struct Fact {
    name: String,
    auth_type: String,
    flow: String,
    api_url: Vec<String>,
    header_name: Option<String>,
}

fn facts() -> BTreeMap<String, Fact> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/provider-facts.jsonl"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Fact>(l).unwrap())
        .map(|f| (f.name.clone(), f))
        .collect()
}

/// Hosts a rule of ours stands for, to test against a reference regex:
/// the host itself, or two names under a wildcard.
fn samples(r: &HostRule) -> Vec<String> {
    match &r.host {
        HostPattern::Exact(h) => vec![h.clone()],
        HostPattern::Suffix(s) => vec![format!("a.{s}"), format!("a.b.{s}")],
    }
}

/// Hosts of the reference's regex rules that we leave out on purpose.
const LEFT_OUT: &[(&str, &str)] = &[("x-browser", "api.twitter.com")];

#[test]
fn the_catalogue_matches_the_reference_facts() {
    let facts = facts();
    let defs: BTreeMap<String, ProviderDef> = defs()
        .into_iter()
        .map(|(_, d)| (d.name.clone(), d))
        .collect();
    assert_eq!(
        facts.keys().collect::<Vec<_>>(),
        defs.keys().collect::<Vec<_>>(),
        "one bundled file per provider of the facts"
    );
    for (name, d) in &defs {
        let f = &facts[name];
        assert_eq!(d.auth_type.as_str(), f.auth_type, "{name}");
        assert_eq!(
            serde_json::to_value(d.flow).unwrap(),
            serde_json::Value::String(f.flow.clone()),
            "{name}"
        );
        // `bedrock` sends Bedrock API keys as a bearer token (README).
        if let (Some(k), Some(h)) = (&d.api_key, &f.header_name)
            && name != "bedrock"
        {
            assert!(k.header_name.eq_ignore_ascii_case(h), "{name}: header");
        }
        let (regexes, plain): (Vec<&String>, Vec<&String>) =
            f.api_url.iter().partition(|u| u.starts_with("regex:"));
        let plain: Vec<HostRule> = plain.iter().map(|u| HostRule::parse(u).unwrap()).collect();
        let regexes: Vec<regex_lite::Regex> = regexes
            .iter()
            .map(|u| regex_lite::Regex::new(&u["regex:".len()..]).unwrap())
            .collect();
        // A plain rule of the facts narrowed to the provider's MCP endpoint
        // (same host and port, the endpoint's path).
        let narrowed = |fact: &HostRule| {
            let ep = d.mcp.as_ref()?.endpoint_rule().ok()?;
            (fact.path_prefix.is_none() && ep.host == fact.host && ep.port == fact.port)
                .then_some(ep)
        };
        // Nothing less: every plain rule of the facts is ours, verbatim, or
        // narrowed to the MCP endpoint.
        for r in &plain {
            assert!(
                d.rules.contains(r) || narrowed(r).is_some_and(|ep| d.rules.contains(&ep)),
                "{name}: the facts' `{r}` is missing"
            );
        }
        // Nothing more: each rule of ours is a plain rule of the facts (or
        // one narrowed to the MCP endpoint), or stands only for hosts one of
        // the facts' regexes matched.
        for r in &d.rules {
            let from_regex = r.path_prefix.is_none()
                && r.port.is_none()
                && samples(r)
                    .iter()
                    .all(|h| regexes.iter().any(|re| re.is_match(h)));
            let from_plain = plain
                .iter()
                .any(|f| f == r || narrowed(f).as_ref() == Some(r));
            assert!(
                from_plain || from_regex,
                "{name}: `{r}` is broader than the facts"
            );
        }
        // Every regex of the facts is covered, except the hosts left out on purpose.
        for re in &regexes {
            assert!(
                d.rules
                    .iter()
                    .any(|r| samples(r).iter().all(|h| re.is_match(h))),
                "{name}: nothing of ours stands for `{re}`"
            );
        }
        for (p, host) in LEFT_OUT {
            if p == name {
                assert!(regexes.iter().any(|re| re.is_match(host)));
                assert!(
                    !d.rules.iter().any(|r| r.matches(host, 443, "/")),
                    "{name}: {host}"
                );
            }
        }
    }
}

/// Every MCP provider names its endpoint (`provider show` prints it), and
/// on a host that also serves other things (no `mcp` in its name) the
/// credential goes to the endpoint's path only.
#[test]
fn mcp_providers_name_their_endpoint_and_are_narrowed_on_shared_hosts() {
    let mut narrowed = Vec::new();
    let mut endpoints = 0;
    for (_, d) in defs() {
        let Some(m) = &d.mcp else {
            assert!(
                d.kind != providers::schema::ProviderKind::Mcp,
                "{}: an MCP provider without its endpoint",
                d.name
            );
            continue;
        };
        endpoints += 1;
        let ep = m.endpoint_rule().unwrap();
        let HostPattern::Exact(host) = &ep.host else {
            panic!("{}: wildcard endpoint", d.name)
        };
        let path = ep.path_prefix.clone().unwrap_or_default();
        assert!(
            d.rules
                .iter()
                .any(|r| r.matches(host, 443, &format!("{path}/"))),
            "{}: the endpoint is not covered",
            d.name
        );
        if !host.split('.').any(|label| label.contains("mcp")) {
            assert!(!path.is_empty(), "{}: no path on a shared host", d.name);
            for r in &d.rules {
                assert_eq!(r.path_prefix.as_deref(), Some(path.as_str()), "{}", d.name);
                // Elsewhere on the host: no credential.
                assert!(!r.matches(host, 443, "/"), "{}", d.name);
                assert!(!r.matches(host, 443, &format!("{path}x")), "{}", d.name);
            }
            narrowed.push(d.name.clone());
        }
    }
    // 149 MCP servers of the newer catalogue and the 8 of the released one.
    assert_eq!(endpoints, 157);
    // Those on hosts that are not dedicated to MCP (api.brex.com,
    // huggingface.co, learn.microsoft.com, public-api.wordpress.com, …).
    assert_eq!(narrowed.len(), 43, "{narrowed:?}");
    for n in [
        "hugging-face",
        "microsoft-learn",
        "wordpress-com",
        "github-mcp",
    ] {
        assert!(narrowed.iter().any(|x| x == n), "{n}");
    }
}

#[test]
fn the_reference_regex_wildcards_are_not_over_broad() {
    let defs: BTreeMap<String, ProviderDef> = defs()
        .into_iter()
        .map(|(_, d)| (d.name.clone(), d))
        .collect();
    let google = &defs["google"].rules[0];
    for host in [
        "googleapis.evil.example",
        "googleapis.com",
        "evilgoogleapis.com",
    ] {
        assert!(!google.matches(host, 443, "/"), "{host}");
    }
    assert!(google.matches("storage.googleapis.com", 443, "/"));
}

#[test]
fn two_providers_share_a_rule_only_where_the_facts_do() {
    let facts = facts();
    let mut owners: BTreeMap<HostRule, Vec<String>> = BTreeMap::new();
    for (_, d) in defs() {
        for r in &d.rules {
            owners.entry(r.clone()).or_default().push(d.name.clone());
        }
    }
    let mut shared = Vec::new();
    for (rule, names) in owners.iter_mut().filter(|(_, n)| n.len() > 1) {
        names.sort();
        for n in names.iter() {
            let theirs: Vec<HostRule> = facts[n]
                .api_url
                .iter()
                .filter_map(|u| HostRule::parse(u).ok())
                .collect();
            assert!(
                theirs.contains(rule),
                "`{rule}` is claimed by {names:?}, {n} not by the facts"
            );
        }
        shared.push(format!("{rule}: {}", names.join(" ")));
    }
    // The two pairs of the facts: API key and OAuth on one API, and an MCP
    // server listed twice.
    assert_eq!(
        shared,
        [
            "a.klaviyo.com: klaviyo klaviyo-oauth",
            "mcp.stripe.com: stripe stripe-mcp"
        ]
    );
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
            // Cookie-session providers inject their session cookies.
            AuthType::Browser => {
                assert_eq!(d.injection().map(|i| i.name), Some("Cookie".into()));
                let b = d.browser.as_ref().expect("a browser block");
                assert!(
                    !b.cookies.is_empty(),
                    "{} names no cookie to inject",
                    d.name
                );
                assert!(
                    b.entry_url
                        .as_deref()
                        .is_some_and(|u| u.starts_with("https://")),
                    "{} has no entry_url",
                    d.name
                );
                assert!(!b.domains.is_empty(), "{}", d.name);
            }
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
        (197, 39, 2)
    );
}

#[test]
fn bundled_files_are_in_canonical_form() {
    // What `provider show --json` prints for a bundled provider parses back to the same definition.
    for (_, d) in defs() {
        assert_eq!(ProviderDef::parse(&d.to_json()).unwrap(), d, "{}", d.name);
    }
}

#[test]
fn the_browser_session_providers_carry_the_reference_facts() {
    // From the reference's newer catalogue (`provider-facts-head.jsonl`):
    // entry_url, auth cookie, domains, extract, ttl.
    let d: BTreeMap<String, ProviderDef> = defs()
        .into_iter()
        .map(|(_, d)| (d.name.clone(), d))
        .collect();
    for (name, entry, auth, extract, header, domains) in [
        (
            "linkedin-browser",
            "https://www.linkedin.com/login",
            "li_at",
            "JSESSIONID",
            "csrf-token",
            &["linkedin.com"][..],
        ),
        (
            "x-browser",
            "https://x.com/login",
            "auth_token",
            "ct0",
            "x-csrf-token",
            &["x.com", "twitter.com"][..],
        ),
    ] {
        let b = d[name].browser.as_ref().unwrap();
        assert_eq!(b.entry_url.as_deref(), Some(entry));
        assert!(b.cookies.iter().any(|c| c == auth) && b.cookies.iter().any(|c| c == extract));
        assert_eq!(b.ttl_from_cookie.as_deref(), Some(auth));
        assert_eq!(b.ttl_hours, 24);
        assert_eq!(
            (b.extract[0].cookie.as_str(), b.extract[0].header.as_str()),
            (extract, header)
        );
        assert_eq!(b.domains, domains);
        for host in &d[name].api_url {
            assert!(b.covers_domain(host), "{name}: {host}");
        }
    }
}
