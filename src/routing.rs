//! The host-routing table: which provider, if any, a request belongs to.
//!
//! Pure data, no I/O. Built from provider definitions; looked up on every
//! proxied request, so a lookup is two hash probes per host label at most.
//!
//! Precedence (the most specific rule wins):
//! 1. an exact host beats any wildcard; a longer wildcard suffix beats a shorter one;
//! 2. for the same host pattern, a longer path prefix beats a shorter one (or none).
//!
//! Ports must match exactly; a rule without a port means 443.
//!
//! Two providers may claim the very same rule (the catalogue has `klaviyo`
//! and `klaviyo-oauth` on `a.klaviyo.com`). When both are connected, a
//! request there is never given to one of them silently: the route names
//! its rivals, and [`Route::choose`] picks one only when the user chose:
//! a run's `--connection PROVIDER=NAME` first, else the lasting choice
//! `authsome set-default` records (see [`RouteTable::with_choices`]);
//! otherwise the proxy refuses.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::providers::{HostPattern, HostRule, ProviderDef};

/// A match: the provider and the rule that selected it.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub provider: Arc<str>,
    #[serde(serialize_with = "ser_rule")]
    pub rule: HostRule,
    /// Other providers with exactly this rule, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<Arc<str>>,
    /// On a shared rule, the claimant the user chose for good
    /// (`authsome set-default`), if it is one of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Arc<str>>,
}

impl Route {
    /// The provider this route's credential comes from. A rule shared by
    /// several providers goes to the one the run chose (exactly one of
    /// them `run_chose`), else to the one chosen for good
    /// ([`Route::chosen`]); otherwise every claimant is returned, sorted,
    /// and nothing is guessed.
    pub fn choose(&self, run_chose: impl Fn(&str) -> bool) -> Result<Arc<str>, Vec<Arc<str>>> {
        if self.shared_with.is_empty() {
            return Ok(self.provider.clone());
        }
        let mut all: Vec<Arc<str>> = self.shared_with.clone();
        all.push(self.provider.clone());
        all.sort();
        let picked: Vec<&Arc<str>> = all.iter().filter(|p| run_chose(p)).collect();
        match (&picked[..], &self.chosen) {
            ([one], _) => Ok((*one).clone()),
            (_, Some(c)) => Ok(c.clone()),
            _ => Err(all),
        }
    }
}

/// What to say when connected providers share `rule` and none was chosen:
/// the message and the hint (the ways to choose).
pub fn conflict_message(rule: &str, providers: &[Arc<str>]) -> (String, String) {
    let names: Vec<&str> = providers.iter().map(AsRef::as_ref).collect();
    let first = names.first().copied().unwrap_or_default();
    let last = names.last().copied().unwrap_or_default();
    (
        format!(
            "{} {} connected and claim {rule}; authsome does not guess whose credential to send",
            names.join(" and "),
            if names.len() == 2 {
                "are both"
            } else {
                "are all"
            }
        ),
        format!(
            "choose one for good with `authsome set-default PROVIDER CONNECTION` (e.g. `authsome set-default {first} default`), for one run with `authsome run --connection {first}=default -- …`, or log out of one (`authsome logout {last}`)"
        ),
    )
}

fn ser_rule<S: serde::Serializer>(r: &HostRule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&r.to_string())
}

/// Host → provider lookup.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    /// host → port → routes, longest path prefix first.
    exact: ByHost,
    /// suffix → port → routes, longest path prefix first.
    suffix: ByHost,
    len: usize,
}

/// Name → (port, routes). Keyed by the name alone so that a lookup (several
/// per proxied request) hashes the borrowed name and allocates nothing; a
/// name has one or two ports.
type ByHost = HashMap<String, Vec<(u16, Vec<Route>)>>;

/// Every list of routes in `maps`.
fn lists(maps: [&ByHost; 2]) -> impl Iterator<Item = &Vec<Route>> {
    maps.into_iter()
        .flat_map(|m| m.values())
        .flat_map(|ports| ports.iter().map(|(_, v)| v))
}

/// Every list of routes in `maps`, to change.
fn lists_mut(maps: [&mut ByHost; 2]) -> impl Iterator<Item = &mut Vec<Route>> {
    maps.into_iter()
        .flat_map(|m| m.values_mut())
        .flat_map(|ports| ports.iter_mut().map(|(_, v)| v))
}

/// The routes for `port` under `name` in `map`.
fn routes_at<'a>(map: &'a ByHost, name: &str, port: u16) -> Option<&'a [Route]> {
    map.get(name)?
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, v)| v.as_slice())
}

impl RouteTable {
    /// Builds the table from the given providers' rules.
    pub fn build<'a>(providers: impl IntoIterator<Item = &'a ProviderDef>) -> RouteTable {
        let mut t = RouteTable::default();
        for def in providers {
            let name: Arc<str> = Arc::from(def.name.as_str());
            for rule in &def.rules {
                let route = Route {
                    provider: name.clone(),
                    rule: rule.clone(),
                    shared_with: Vec::new(),
                    chosen: None,
                };
                let (map, name) = match &rule.host {
                    HostPattern::Exact(h) => (&mut t.exact, h),
                    HostPattern::Suffix(s) => (&mut t.suffix, s),
                };
                let port = rule.effective_port();
                let ports = map.entry(name.clone()).or_default();
                match ports.iter_mut().find(|(p, _)| *p == port) {
                    Some((_, v)) => v.push(route),
                    None => ports.push((port, vec![route])),
                }
                t.len += 1;
            }
        }
        for v in lists_mut([&mut t.exact, &mut t.suffix]) {
            v.sort_by_key(|r| {
                std::cmp::Reverse(r.rule.path_prefix.as_ref().map_or(0, String::len))
            });
            let rivals: Vec<Vec<Arc<str>>> = v
                .iter()
                .map(|r| {
                    let mut o: Vec<Arc<str>> = v
                        .iter()
                        .filter(|x| x.rule == r.rule && x.provider != r.provider)
                        .map(|x| x.provider.clone())
                        .collect();
                    o.sort();
                    o.dedup();
                    o
                })
                .collect();
            for (r, o) in v.iter_mut().zip(rivals) {
                r.shared_with = o;
            }
        }
        t
    }

    /// Applies the lasting choices, `(rule, provider)` as `authsome
    /// set-default` records them: on a shared rule whose chosen provider is
    /// one of its claimants (so still connected), that provider is
    /// [`Route::chosen`]. A choice for a provider no longer here is ignored.
    pub fn with_choices(mut self, choices: &[(String, String)]) -> RouteTable {
        if choices.is_empty() {
            return self;
        }
        for v in lists_mut([&mut self.exact, &mut self.suffix]) {
            let claimants: Vec<(String, Arc<str>)> = v
                .iter()
                .map(|r| (r.rule.to_string(), r.provider.clone()))
                .collect();
            for r in v.iter_mut().filter(|r| !r.shared_with.is_empty()) {
                let rule = r.rule.to_string();
                r.chosen = choices
                    .iter()
                    .find(|(c, _)| *c == rule)
                    .and_then(|(_, p)| {
                        claimants
                            .iter()
                            .find(|(cr, cp)| *cr == rule && cp.as_ref() == p)
                    })
                    .map(|(_, p)| p.clone());
            }
        }
        self
    }

    /// The rules `provider` shares with other providers in this table (as
    /// written, e.g. `a.klaviyo.com`). Sorted, unique.
    pub fn shared_rules(&self, provider: &str) -> Vec<String> {
        let mut v: Vec<String> = lists([&self.exact, &self.suffix])
            .flatten()
            .filter(|r| r.provider.as_ref() == provider && !r.shared_with.is_empty())
            .map(|r| r.rule.to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The route for `host:port` and `path`, if any. `host` may be in any
    /// case and may carry a trailing dot.
    pub fn resolve(&self, host: &str, port: u16, path: &str) -> Option<&Route> {
        self.find(host, port, |routes| first_match(routes, path))
    }

    /// True when some provider claims `host:port`, whatever the path (what
    /// a CONNECT, which carries no path, is decided on).
    pub fn claims(&self, host: &str, port: u16) -> bool {
        self.find(host, port, |routes| routes.first()).is_some()
    }

    /// Every provider with a rule for `host:port`, whatever the path.
    /// Sorted, unique.
    pub fn claimants(&self, host: &str, port: u16) -> Vec<Arc<str>> {
        let seen = std::cell::RefCell::new(Vec::new());
        self.find(host, port, |routes| {
            seen.borrow_mut()
                .extend(routes.iter().map(|r| r.provider.clone()));
            None
        });
        let mut v = seen.into_inner();
        v.sort();
        v.dedup();
        v
    }

    /// True when some rule for `host:port` has a path prefix (which
    /// provider, and so which key, depends on the path there).
    pub fn path_scoped(&self, host: &str, port: u16) -> bool {
        self.find(host, port, |routes| {
            routes.iter().find(|r| r.rule.path_prefix.is_some())
        })
        .is_some()
    }

    /// The DNS names a CA must cover to intercept every route: exact hosts,
    /// and the suffix of each wildcard (a name constraint on `acme.com`
    /// covers `*.acme.com`). Sorted, unique.
    pub fn ca_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .exact
            .keys()
            .chain(self.suffix.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The providers with at least one route. Sorted, unique.
    pub fn providers(&self) -> Vec<Arc<str>> {
        let mut p: Vec<Arc<str>> = self
            .routes()
            .into_iter()
            .map(|r| r.provider.clone())
            .collect();
        p.sort();
        p.dedup();
        p
    }

    fn find<'a>(
        &'a self,
        host: &str,
        port: u16,
        pick: impl Fn(&'a [Route]) -> Option<&'a Route>,
    ) -> Option<&'a Route> {
        let lowered;
        let mut host = host.strip_suffix('.').unwrap_or(host);
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            host = &lowered;
        }
        if let Some(routes) = routes_at(&self.exact, host, port)
            && let Some(r) = pick(routes)
        {
            return Some(r);
        }
        // Walk the suffixes from longest to shortest: a.b.c.com → b.c.com → c.com → com.
        let mut rest = host;
        while let Some(i) = rest.find('.') {
            rest = &rest[i + 1..];
            if let Some(routes) = routes_at(&self.suffix, rest, port)
                && let Some(r) = pick(routes)
            {
                return Some(r);
            }
        }
        None
    }

    /// Every route, for display (`/api/proxy/routes`).
    pub fn routes(&self) -> Vec<&Route> {
        let mut all: Vec<&Route> = lists([&self.exact, &self.suffix]).flatten().collect();
        all.sort_by(|a, b| {
            (a.provider.as_ref(), a.rule.to_string())
                .cmp(&(b.provider.as_ref(), b.rule.to_string()))
        });
        all
    }
}

fn first_match<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    routes.iter().find(|r| {
        r.rule
            .path_prefix
            .as_deref()
            .is_none_or(|p| crate::providers::hosts::path_has_prefix(path, p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Registry;

    fn table() -> RouteTable {
        let reg = Registry::bundled().unwrap();
        RouteTable::build(reg.iter().map(|e| e.def.as_ref()))
    }

    fn who(t: &RouteTable, host: &str, path: &str) -> Option<String> {
        t.resolve(host, 443, path).map(|r| r.provider.to_string())
    }

    #[test]
    fn exact_hosts_resolve() {
        let t = table();
        assert_eq!(
            who(&t, "api.openai.com", "/v1/models").as_deref(),
            Some("openai")
        );
        assert_eq!(who(&t, "API.OpenAI.com.", "/").as_deref(), Some("openai"));
        assert_eq!(who(&t, "example.com", "/"), None);
        assert!(t.resolve("api.openai.com", 8443, "/").is_none());
    }

    #[test]
    fn most_specific_rule_wins() {
        let t = table();
        // exact + path prefix beats the wildcard
        assert_eq!(
            who(&t, "gmail.googleapis.com", "/gmail/v1/users").as_deref(),
            Some("google-gmail")
        );
        // outside the prefix the wildcard applies
        assert_eq!(
            who(&t, "gmail.googleapis.com", "/other").as_deref(),
            Some("google")
        );
        assert_eq!(
            who(&t, "www.googleapis.com", "/drive/v3/files").as_deref(),
            Some("google-drive")
        );
        assert_eq!(
            who(&t, "www.googleapis.com", "/youtube/v3/x").as_deref(),
            Some("google-youtube")
        );
        // longer path prefix beats shorter / none on the same host
        assert_eq!(
            who(&t, "graph.microsoft.com", "/v1.0/me/drive/root").as_deref(),
            Some("microsoft-word")
        );
        assert_eq!(
            who(&t, "graph.microsoft.com", "/v1.0/users").as_deref(),
            Some("microsoft")
        );
        // exact beats wildcard
        assert_eq!(
            who(&t, "mcp.linear.app", "/").as_deref(),
            Some("linear-mcp")
        );
        assert_eq!(
            who(&t, "api.linear.app", "/graphql").as_deref(),
            Some("linear")
        );
    }

    #[test]
    fn path_scoped_hosts_are_known() {
        let t = table();
        assert!(t.path_scoped("graph.microsoft.com", 443));
        assert!(t.path_scoped("www.googleapis.com", 443));
        assert!(!t.path_scoped("api.openai.com", 443));
        assert!(!t.path_scoped("example.com", 443));
    }

    #[test]
    fn a_rule_is_shared_however_its_port_and_scheme_are_written() {
        let def = |name: &str, url: &str| {
            ProviderDef::parse(&format!(
                r#"{{"name":"{name}","auth_type":"api_key","flow":"api_key","api_url":["{url}"],"api_key":{{"header_name":"X-Key","header_prefix":null}}}}"#
            ))
            .unwrap()
        };
        let a = def("acme-a", "api.acme.test:443");
        let b = def("acme-b", "https://API.acme.test/");
        let t = RouteTable::build([&a, &b]);
        let r = t.resolve("api.acme.test", 443, "/v1").unwrap();
        assert_eq!(r.shared_with.len(), 1, "{r:?}");
        assert!(r.choose(|_| false).is_err());
        assert_eq!(t.shared_rules("acme-a"), ["api.acme.test"]);
        // Another port is another rule.
        let c = def("acme-c", "api.acme.test:8443");
        let t = RouteTable::build([&a, &c]);
        assert!(
            t.resolve("api.acme.test", 443, "/")
                .unwrap()
                .shared_with
                .is_empty()
        );
        // One name, two ports, two providers: each port finds its own,
        // exact and wildcard alike, and no third port finds either.
        let at = |t: &RouteTable, host: &str, port: u16| {
            t.resolve(host, port, "/").map(|r| r.provider.to_string())
        };
        assert_eq!(at(&t, "API.acme.test.", 8443).as_deref(), Some("acme-c"));
        assert_eq!(at(&t, "api.acme.test", 443).as_deref(), Some("acme-a"));
        assert_eq!(at(&t, "api.acme.test", 9443), None);
        let w = def("acme-w", "*.acme.test:8443");
        let x = def("acme-x", "*.acme.test");
        let t = RouteTable::build([&w, &x]);
        assert_eq!(at(&t, "eu.acme.test", 8443).as_deref(), Some("acme-w"));
        assert_eq!(at(&t, "eu.acme.test", 443).as_deref(), Some("acme-x"));
        assert_eq!(at(&t, "eu.acme.test", 9443), None);
        assert_eq!(t.ca_names(), ["acme.test"]);
        assert_eq!(t.routes().len(), 2);
    }

    #[test]
    fn a_shared_rule_is_never_resolved_by_guessing() {
        let reg = Registry::bundled().unwrap();
        let both = ["klaviyo", "klaviyo-oauth"].map(|n| reg.get(n).unwrap().def.as_ref());
        let t = RouteTable::build(both);
        let r = t.resolve("a.klaviyo.com", 443, "/api/lists").unwrap();
        let all: Vec<Arc<str>> = vec!["klaviyo".into(), "klaviyo-oauth".into()];
        assert_eq!(r.choose(|_| false), Err(all.clone()));
        assert_eq!(r.choose(|_| true), Err(all));
        assert_eq!(
            r.choose(|p| p == "klaviyo-oauth").as_deref(),
            Ok("klaviyo-oauth")
        );
        // One of them connected: no rival, no choice needed.
        let t = RouteTable::build([both[0]]);
        let r = t.resolve("a.klaviyo.com", 443, "/").unwrap();
        assert_eq!(r.choose(|_| false).as_deref(), Ok("klaviyo"));
        // A lasting choice decides when the run did not choose; the run's
        // choice still wins; a choice of a provider not here is ignored.
        let t2 =
            RouteTable::build(both).with_choices(&[("a.klaviyo.com".into(), "klaviyo".into())]);
        let r = t2.resolve("a.klaviyo.com", 443, "/").unwrap();
        assert_eq!(r.chosen.as_deref(), Some("klaviyo"));
        assert_eq!(r.choose(|_| false).as_deref(), Ok("klaviyo"));
        assert_eq!(
            r.choose(|p| p == "klaviyo-oauth").as_deref(),
            Ok("klaviyo-oauth")
        );
        assert_eq!(r.choose(|_| true).as_deref(), Ok("klaviyo"));
        assert_eq!(t2.shared_rules("klaviyo"), ["a.klaviyo.com"]);
        let t3 =
            RouteTable::build(both).with_choices(&[("a.klaviyo.com".into(), "klaviyo-mcp".into())]);
        let r = t3.resolve("a.klaviyo.com", 443, "/").unwrap();
        assert!(r.chosen.is_none());
        assert!(r.choose(|_| false).is_err());
        let (msg, hint) = conflict_message("a.klaviyo.com", &r.choose(|_| false).unwrap_err());
        assert!(msg.contains("klaviyo and klaviyo-oauth"), "{msg}");
        assert!(
            hint.contains("authsome set-default PROVIDER CONNECTION")
                && hint.contains("--connection klaviyo=default"),
            "{hint}"
        );
        // Rivals are exact rules only: a more specific rule still wins alone.
        let t = table();
        let r = t
            .resolve("gmail.googleapis.com", 443, "/gmail/v1/x")
            .unwrap();
        assert!(r.shared_with.is_empty());
    }

    #[test]
    fn lookalike_hosts_get_nothing() {
        let t = table();
        for h in [
            "evilgithubusercontent.com",
            "googleapis.evil.example",
            "api.openai.com.evil.test",
            "xapi.openai.com",
            "googleapis.com",
        ] {
            assert_eq!(who(&t, h, "/"), None, "{h}");
        }
    }
}
