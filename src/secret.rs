//! `Secret<T>`: the one type every credential travels in.
//!
//! What it guarantees:
//! - `Debug` prints a fixed placeholder, so `{:?}` on any struct that holds a
//!   secret (errors, connection records, traces) never shows the value;
//! - there is no `Display`, no `Serialize` and no `PartialEq`, so a secret
//!   cannot reach a log line, a JSON body or a timing-sensitive comparison by
//!   accident;
//! - the value is zeroized when it is dropped.
//!
//! The value is read with [`Secret::expose`], and only where it must be
//! bytes: the vault (to seal and open), the places a credential is written
//! into a request (`proxy::inject` for the agent's requests, `auth_flow::oauth`
//! for token, refresh and revocation requests to the provider), the
//! constant-time comparisons of tokens (`ct_eq`: proxy token, CSRF, daemon
//! proof), and the explicit ways out (`export`, a run's proxy URL handed to
//! its own CLI). `grep -rn '\.expose()' src` lists them; a new one needs a
//! reason as good as these. The API bodies that carry a secret on purpose
//! (`crate::api`) write it out field by field (`with = "wire::…"`), never
//! through a blanket `Serialize`.

use std::fmt;

use zeroize::Zeroize;

/// A value that must never be printed, logged or serialized by accident.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Reads the secret. Every call site is a place a secret is used on purpose.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl Secret<String> {
    /// Copies the secret into a new `Secret`. Explicit, so copies are visible in review.
    pub fn duplicate(&self) -> Self {
        Secret::new(self.0.clone())
    }
}

/// Constant-time equality of two byte strings: the time taken does not
/// depend on where they differ (only on their lengths, which are not secret:
/// tokens have fixed sizes). The one comparison for tokens, CSRF values and
/// proofs.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills `buf` from the OS random number generator.
pub fn fill_random(buf: &mut [u8]) -> crate::error::Result<()> {
    getrandom::fill(buf).map_err(|e| {
        crate::error::Error::io(
            "cannot read random bytes from the OS",
            std::io::Error::other(e.to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("AKCANARY_debug".to_string());
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("AKCANARY"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn nested_debug_never_shows_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            name: &'static str,
            key: Secret<String>,
        }
        let h = Holder {
            name: "openai",
            key: Secret::new("sk-CANARY".into()),
        };
        assert!(!format!("{h:?}").contains("CANARY"));
    }

    #[test]
    fn ct_eq_compares_whole_strings() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn expose_returns_the_value() {
        let s = Secret::new(vec![1u8, 2, 3]);
        assert_eq!(s.expose(), &vec![1, 2, 3]);
    }
}
