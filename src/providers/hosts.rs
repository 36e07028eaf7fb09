//! Host rules: which requests belong to a provider.
//!
//! A rule is an exact host (`api.openai.com`) or a wildcard over subdomains
//! (`*.googleapis.com`), with an optional port (`api.acme.test:8443`; 443 when
//! absent) and an optional path prefix (`graph.microsoft.com/v1.0/me/drive`).
//! The URL form `https://host:port/prefix` is accepted as input.
//!
//! Why no regular expressions: the Python reference matched hosts with
//! `regex:.*googleapis.*`, which also matches `googleapis.evil.example`, so an
//! agent could send the user's Google token to a host it controls. Exact and
//! suffix rules can be read at a glance and cannot be written that way.
//!
//! Why some wildcards are refused: `*.com`, or a wildcard over a suffix where
//! anyone can register a subdomain (`*.github.io`, `*.herokuapp.com`), would
//! hand the credential to strangers. IP literals are refused because a
//! certificate name constraint cannot cover them and they bypass DNS names
//! the user can read.

use std::fmt;

/// Suffixes under which anyone can get a name. A wildcard over one of these
/// (or a shorter suffix) is refused. Not a full public-suffix list: a guard
/// against the common mistakes.
const SHARED_SUFFIXES: &[&str] = &[
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "com.au",
    "net.au",
    "org.au",
    "co.jp",
    "co.nz",
    "co.za",
    "com.br",
    "com.cn",
    "com.mx",
    "co.in",
    "co.kr",
    "com.tw",
    "com.sg",
    "github.io",
    "githubpreview.dev",
    "gitlab.io",
    "herokuapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "web.app",
    "firebaseapp.com",
    "appspot.com",
    "azurewebsites.net",
    "cloudfront.net",
    "amazonaws.com",
    "s3.amazonaws.com",
    "ngrok.io",
    "ngrok-free.app",
    "fly.dev",
    "onrender.com",
    "repl.co",
    "glitch.me",
    "blogspot.com",
    "wordpress.com",
    "surge.sh",
    "now.sh",
    "deno.dev",
    "trycloudflare.com",
    "r2.dev",
    "duckdns.org",
    "localhost.run",
];

/// The host part of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(String),
    /// Any host that ends in `.{suffix}` (one or more labels), not the suffix itself.
    Suffix(String),
}

/// One host rule of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostRule {
    pub host: HostPattern,
    /// `None` means 443 (a written `:443` is parsed as `None`, so
    /// `host:443` and `host` are one rule).
    pub port: Option<u16>,
    /// Without a trailing slash; `None` means every path.
    pub path_prefix: Option<String>,
}

/// Why a rule was refused, with a suggestion when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub message: String,
    pub hint: Option<String>,
}

impl RuleError {
    fn new(message: impl Into<String>) -> Self {
        RuleError {
            message: message.into(),
            hint: None,
        }
    }
    fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        RuleError {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl HostRule {
    /// Parses and validates one `api_url` entry.
    pub fn parse(input: &str) -> Result<HostRule, RuleError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(RuleError::new("empty host rule"));
        }
        if let Some(re) = s.strip_prefix("regex:") {
            let hint = match regex_to_wildcard(re) {
                Some(w) => format!("write it as a wildcard, for example \"{w}\""),
                None => "write it as an exact host or a wildcard like \"*.example.com\"".into(),
            };
            return Err(RuleError::with_hint(
                format!("regular expressions are not accepted in host rules (`{s}`)"),
                hint,
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RuleError::new(format!(
                "host rule `{}` contains whitespace or control characters",
                s.escape_debug()
            )));
        }
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some((scheme, _)) => {
                return Err(RuleError::with_hint(
                    format!(
                        "host rule `{s}` uses {scheme}://; credentials are only sent over https"
                    ),
                    "use an https:// URL or a bare host",
                ));
            }
            None => s,
        };
        if rest.contains(['?', '#', '@', '\\', '{', '}']) {
            return Err(RuleError::new(format!(
                "host rule `{s}` may not contain a query, fragment, user name or template"
            )));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (host, port) = split_port(authority, s)?;
        let port = port.filter(|p| *p != 443);
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_string();
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            check_wildcard(suffix, s)?;
            validate_name(suffix, s)?;
            HostPattern::Suffix(suffix.to_string())
        } else {
            if host.contains('*') {
                return Err(RuleError::with_hint(
                    format!("host rule `{s}` has a `*` that is not a leading `*.`"),
                    "wildcards cover whole leading labels only, like \"*.example.com\"",
                ));
            }
            validate_name(&host, s)?;
            HostPattern::Exact(host)
        };
        let path_prefix = match path {
            None => None,
            Some(p) => normalize_prefix(p, s)?,
        };
        Ok(HostRule {
            host: pattern,
            port,
            path_prefix,
        })
    }

    /// The port this rule applies to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(443)
    }

    /// Whether a request to `host:port` with `path` falls under this rule.
    /// `host` must already be lowercase without a trailing dot.
    pub fn matches(&self, host: &str, port: u16, path: &str) -> bool {
        if port != self.effective_port() {
            return false;
        }
        let host_ok = match &self.host {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes()[host.len() - s.len() - 1] == b'.'
            }
        };
        host_ok
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path_has_prefix(path, p))
    }
}

/// True when `path` is `prefix` or lies below it (`/v1` covers `/v1/x`, not `/v10`).
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(h) => f.write_str(h)?,
            HostPattern::Suffix(s) => write!(f, "*.{s}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(p) = &self.path_prefix {
            f.write_str(p)?;
        }
        Ok(())
    }
}

fn split_port<'a>(authority: &'a str, whole: &str) -> Result<(&'a str, Option<u16>), RuleError> {
    if authority.starts_with('[') {
        return Err(RuleError::new(format!(
            "host rule `{whole}` names an IP address; use a host name"
        )));
    }
    match authority.rsplit_once(':') {
        None => Ok((authority, None)),
        Some((h, p)) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok((h, Some(n))),
            _ => Err(RuleError::new(format!(
                "host rule `{whole}` has an invalid port `{p}`"
            ))),
        },
    }
}

fn validate_name(host: &str, whole: &str) -> Result<(), RuleError> {
    if !host.is_ascii() {
        return Err(RuleError::with_hint(
            format!("host rule `{whole}` is not ASCII"),
            "write internationalised names in their punycode (xn--) form",
        ));
    }
    if host.is_empty() || host.len() > 253 {
        return Err(RuleError::new(format!(
            "host rule `{whole}` has an invalid host name"
        )));
    }
    let labels: Vec<&str> = host.split('.').collect();
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(RuleError::new(format!(
                "host rule `{whole}` has an invalid label `{l}`"
            )));
        }
    }
    let last = labels.last().copied().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RuleError::with_hint(
            format!("host rule `{whole}` names an IP address or range"),
            "credentials are bound to host names; use the provider's DNS name",
        ));
    }
    // `localhost` (RFC 6761: always this machine) is the one single-label
    // name allowed, for providers served locally.
    if labels.len() < 2 && whole.split(':').next() != Some("localhost") {
        return Err(RuleError::with_hint(
            format!("host rule `{whole}` is a single-label name"),
            "use the fully qualified host name, like \"api.example.com\"",
        ));
    }
    Ok(())
}

fn check_wildcard(suffix: &str, whole: &str) -> Result<(), RuleError> {
    let labels = suffix.split('.').count();
    if labels < 2 || SHARED_SUFFIXES.contains(&suffix) {
        return Err(RuleError::with_hint(
            format!("host rule `{whole}` is too broad: anyone can get a name under `{suffix}`"),
            "list the provider's exact hosts, or a wildcard under a domain the provider owns",
        ));
    }
    Ok(())
}

fn normalize_prefix(p: &str, whole: &str) -> Result<Option<String>, RuleError> {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.contains('*')
        || trimmed.split('/').any(|seg| seg == ".." || seg == ".")
        || trimmed.contains("//")
    {
        return Err(RuleError::new(format!(
            "host rule `{whole}` has an invalid path prefix `{p}`"
        )));
    }
    Ok(Some(trimmed.to_string()))
}

/// Best-effort translation of a simple host regex into a wildcard suggestion.
fn regex_to_wildcard(re: &str) -> Option<String> {
    let core = re
        .trim_start_matches('^')
        .trim_end_matches('$')
        .trim_start_matches("(?i)");
    let core = core.strip_prefix(".*").unwrap_or(core);
    let core = core.strip_prefix(r"\.").unwrap_or(core);
    let core = core.strip_suffix(".*").unwrap_or(core);
    let plain = core.replace(r"\.", ".");
    if plain.is_empty() || plain.contains(['(', ')', '|', '*', '+', '?', '[', ']', '\\']) {
        return None;
    }
    let suffix = plain.trim_start_matches('.');
    if suffix.contains('.') {
        Some(format!("*.{suffix}"))
    } else {
        Some(format!("*.{suffix}.com"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> HostRule {
        HostRule::parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }

    #[test]
    fn forms_and_canonical_display() {
        assert_eq!(ok("api.openai.com").to_string(), "api.openai.com");
        assert_eq!(
            ok("https://API.Anthropic.com/").to_string(),
            "api.anthropic.com"
        );
        assert_eq!(
            ok("https://graph.microsoft.com/v1.0/me/drive/").to_string(),
            "graph.microsoft.com/v1.0/me/drive"
        );
        assert_eq!(ok("api.acme.test:8443").to_string(), "api.acme.test:8443");
        // One rule however it is written.
        for same in [
            "api.acme.test:443",
            "https://API.acme.test:443/",
            "api.acme.test.",
        ] {
            assert_eq!(ok(same), ok("api.acme.test"), "{same}");
            assert_eq!(ok(same).to_string(), "api.acme.test");
        }
        assert_eq!(ok("https://api.acme.test:443/v1/"), ok("api.acme.test/v1"));
        assert_eq!(ok("*.googleapis.com").to_string(), "*.googleapis.com");
        assert_eq!(ok("api.example.com.").to_string(), "api.example.com");
    }

    #[test]
    fn regex_is_rejected_with_a_wildcard_suggestion() {
        let e = HostRule::parse(r"regex:.*\.linear\.app").unwrap_err();
        assert!(e.message.contains("regular expressions"));
        assert!(e.hint.unwrap().contains("*.linear.app"));
        let e = HostRule::parse(r"regex:.*googleapis.*").unwrap_err();
        assert!(e.hint.unwrap().contains("*.googleapis.com"));
    }

    #[test]
    fn over_broad_patterns_are_rejected() {
        for bad in [
            "*",
            "*.com",
            "*.co.uk",
            "*.github.io",
            "*.amazonaws.com",
            "api.*.com",
            "*api.com",
            "**.x.com",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn ip_literals_and_ranges_are_rejected() {
        for bad in [
            "127.0.0.1",
            "10.0.0.0/8",
            "[::1]",
            "https://192.168.1.1/api",
            "*.0.0.10",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn plain_http_userinfo_and_junk_are_rejected() {
        for bad in [
            "http://api.x.com",
            "https://user@api.x.com",
            "api.x.com?x=1",
            "api x.com",
            "intranet",
            "api.x.com:0",
            "api.x.com:99999",
            "{base_url}/api",
            "bücher.de",
            "api.x.com/a/../b",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn localhost_is_the_one_single_label_host() {
        let r = ok("localhost:8443");
        assert!(r.matches("localhost", 8443, "/"));
        assert!(HostRule::parse("*.localhost").is_err());
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let r = ok("*.githubusercontent.com");
        assert!(r.matches("raw.githubusercontent.com", 443, "/"));
        assert!(r.matches("a.b.githubusercontent.com", 443, "/"));
        assert!(!r.matches("githubusercontent.com", 443, "/"));
        assert!(!r.matches("evilgithubusercontent.com", 443, "/"));
        assert!(!r.matches("raw.githubusercontent.com.evil.test", 443, "/"));
        assert!(!r.matches("raw.githubusercontent.com", 80, "/"));
    }

    #[test]
    fn path_prefix_respects_segments() {
        let r = ok("api.cloudflare.com/client/v4");
        assert!(r.matches("api.cloudflare.com", 443, "/client/v4"));
        assert!(r.matches("api.cloudflare.com", 443, "/client/v4/zones"));
        assert!(!r.matches("api.cloudflare.com", 443, "/client/v40"));
        assert!(!r.matches("api.cloudflare.com", 443, "/client"));
    }

    #[test]
    fn port_defaults_to_443() {
        let r = ok("api.acme.test");
        assert!(r.matches("api.acme.test", 443, "/"));
        assert!(!r.matches("api.acme.test", 8443, "/"));
        assert!(ok("api.acme.test:8443").matches("api.acme.test", 8443, "/"));
    }
}
