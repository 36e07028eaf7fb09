//! The provider catalogue: bundled definitions plus the user's own.
//!
//! Bundled definitions are the `providers/*.json` files of this repository,
//! embedded at build time. Custom definitions live in the vault database
//! (registered with `authsome provider register`); a custom definition with
//! a bundled name overrides the bundled one until it is removed.

pub mod hosts;
pub mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::hosts::{HostPattern, HostRule};
pub use self::schema::{AuthType, ExportRole, Flow, Injection, KeyFormat, ProviderDef};
use crate::error::{Error, Result};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_providers.rs"));
}

/// Where a definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderSource {
    /// Shipped with authsome.
    Bundled,
    /// Registered by the user.
    Custom,
    /// Registered by the user under a bundled name.
    Override,
}

/// One provider in the catalogue.
#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub def: Arc<ProviderDef>,
    pub source: ProviderSource,
}

/// The merged catalogue.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, ProviderEntry>,
    /// Custom definitions that failed to load (name, reason); reported by `doctor`.
    pub problems: Vec<(String, String)>,
}

/// Parses one provider file, naming `origin` in every error.
pub fn parse_file(origin: &str, text: &str) -> Result<ProviderDef> {
    ProviderDef::parse(text).map_err(|e| Error::ProviderFile {
        origin: origin.into(),
        message: e.message,
        hint: e.hint,
    })
}

/// The bundled files as `(file name, text)`.
pub fn bundled_files() -> &'static [(&'static str, &'static str)] {
    bundled::BUNDLED
}

/// The problem recorded for a stored definition that failed its integrity check.
pub const TAMPERED: &str = "the stored definition was changed outside authsome (it failed its integrity check under the vault key) and is not used; register the provider file again with `authsome provider register FILE --force`";

impl Registry {
    /// The bundled catalogue alone.
    pub fn bundled() -> Result<Registry> {
        let mut entries = BTreeMap::new();
        for (file, text) in bundled::BUNDLED {
            let def = parse_file(&format!("providers/{file}"), text)?;
            entries.insert(
                def.name.clone(),
                ProviderEntry {
                    def: Arc::new(def),
                    source: ProviderSource::Bundled,
                },
            );
        }
        Ok(Registry {
            entries,
            problems: Vec::new(),
        })
    }

    /// The bundled catalogue with custom definitions (`(name, json)`) laid over it.
    pub fn with_custom(custom: &[(String, String)]) -> Result<Registry> {
        let mut reg = Registry::bundled()?;
        for (name, json) in custom {
            match parse_file(&format!("custom provider `{name}`"), json) {
                Ok(def) => {
                    let source = if reg
                        .entries
                        .get(&def.name)
                        .is_some_and(|e| e.source == ProviderSource::Bundled)
                    {
                        ProviderSource::Override
                    } else {
                        ProviderSource::Custom
                    };
                    reg.entries.insert(
                        def.name.clone(),
                        ProviderEntry {
                            def: Arc::new(def),
                            source,
                        },
                    );
                }
                Err(e) => reg.problems.push((name.clone(), e.to_string())),
            }
        }
        Ok(reg)
    }

    /// Looks a provider up by name.
    pub fn get(&self, name: &str) -> Option<&ProviderEntry> {
        self.entries.get(name)
    }

    /// Like [`Registry::with_custom`]; `tampered` names stored definitions
    /// that failed their integrity check: each is a problem, never used.
    pub fn with_custom_checked(
        custom: &[(String, String)],
        tampered: &[String],
    ) -> Result<Registry> {
        let mut reg = Registry::with_custom(custom)?;
        for name in tampered {
            reg.problems.push((name.clone(), TAMPERED.to_string()));
        }
        Ok(reg)
    }

    /// Looks a provider up, or fails with a hint.
    pub fn require(&self, name: &str) -> Result<&ProviderEntry> {
        if let Some((_, why)) = self.problems.iter().find(|(n, _)| n == name)
            && why == TAMPERED
        {
            return Err(Error::Corrupt {
                what: format!("the stored definition of provider `{name}`"),
            });
        }
        self.get(name).ok_or_else(|| self.not_found(name))
    }

    /// "No such provider", with the closest name when one is close.
    pub fn not_found(&self, name: &str) -> Error {
        Error::ProviderNotFound {
            name: name.into(),
            suggestion: self.suggest(name),
        }
    }

    /// The known name closest to `name` (edit distance at most 1 for short
    /// names, 2 from six characters), as clap does for subcommands.
    pub fn suggest(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let limit = if name.chars().count() >= 6 { 2 } else { 1 };
        self.entries
            .keys()
            .map(|k| (edit_distance(&name, k), k))
            .filter(|(d, _)| *d <= limit)
            .min()
            .map(|(_, k)| k.clone())
    }

    /// Every provider, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ProviderEntry> {
        self.entries.values()
    }

    /// Number of providers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_catalogue_loads() {
        let r = Registry::bundled().unwrap();
        assert_eq!(r.len(), 238);
        assert!(r.get("openai").is_some());
    }

    #[test]
    fn custom_overrides_bundled_and_broken_custom_is_a_problem_not_a_failure() {
        let openai = r#"{"name":"openai","auth_type":"api_key","flow":"api_key","api_url":["api.openai.com"],"api_key":{}}"#;
        let r = Registry::with_custom(&[
            ("openai".into(), openai.into()),
            ("broken".into(), "{".into()),
        ])
        .unwrap();
        assert_eq!(r.get("openai").unwrap().source, ProviderSource::Override);
        assert_eq!(r.problems.len(), 1);
    }
}

/// Levenshtein distance, with adjacent transpositions counted as one edit
/// (`openia` → `openai`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod suggest_tests {
    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        assert_eq!(super::edit_distance("openia", "openai"), 1);
        assert_eq!(super::edit_distance("github", "github"), 0);
        assert_eq!(super::edit_distance("gitlab", "github"), 2);
        assert_eq!(super::edit_distance("slack", "stripe"), 5);
    }
}
