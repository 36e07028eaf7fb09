//! Configuration, resolved once: defaults < environment < flags.
//!
//! The environment is read through the [`Env`] trait so tests can hand in a
//! map instead of mutating the process environment. Every variable authsome
//! reads is declared here as an `ENV_*` constant; nothing else calls
//! `std::env::var` for an `AUTHSOME_*` name.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Root directory for the vault, keys and logs (default `~/.authsome`).
pub const ENV_HOME: &str = "AUTHSOME_HOME";
/// The master key itself: base64 of 32 bytes, or a passphrase (stretched with Argon2id).
pub const ENV_MASTER_KEY: &str = "AUTHSOME_MASTER_KEY";
/// A file holding the master key (mode 0600).
pub const ENV_MASTER_KEY_FILE: &str = "AUTHSOME_MASTER_KEY_FILE";
/// `off` (or `0`, `false`, `no`) skips the OS keyring entirely.
pub const ENV_KEYRING: &str = "AUTHSOME_KEYRING";
/// Any value turns colour off (<https://no-color.org>).
pub const ENV_NO_COLOR: &str = "NO_COLOR";

/// Read access to environment variables.
pub trait Env {
    /// The value of `key`, if set and valid UTF-8.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed environment, for tests and embedding.
#[derive(Debug, Default, Clone)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// Builds a map environment from pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        MapEnv(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Everything the library needs to know about where and how to run.
#[derive(Debug)]
pub struct Config {
    /// `$AUTHSOME_HOME`.
    pub home: PathBuf,
    /// `AUTHSOME_MASTER_KEY`, if set.
    pub master_key: Option<Secret<String>>,
    /// `AUTHSOME_MASTER_KEY_FILE`, if set.
    pub master_key_file: Option<PathBuf>,
    /// Whether the OS keyring may be tried.
    pub keyring: bool,
}

impl Config {
    /// Resolves the configuration from the environment, with an optional
    /// `--home` flag taking precedence over `AUTHSOME_HOME`.
    pub fn resolve(env: &dyn Env, home_flag: Option<PathBuf>) -> Result<Config> {
        let home = match home_flag.or_else(|| non_empty(env, ENV_HOME).map(PathBuf::from)) {
            Some(h) => h,
            None => match non_empty(env, "HOME") {
                Some(h) => PathBuf::from(h).join(".authsome"),
                None => {
                    return Err(Error::invalid(
                        "cannot find a home directory: neither AUTHSOME_HOME nor HOME is set",
                        Some("set AUTHSOME_HOME to the directory authsome should use".into()),
                    ));
                }
            },
        };
        let home = absolute(home)?;
        let keyring = !matches!(
            non_empty(env, ENV_KEYRING)
                .map(|v| v.to_ascii_lowercase())
                .as_deref(),
            Some("off" | "0" | "false" | "no")
        );
        Ok(Config {
            home,
            master_key: non_empty(env, ENV_MASTER_KEY).map(Secret::new),
            master_key_file: non_empty(env, ENV_MASTER_KEY_FILE).map(PathBuf::from),
            keyring,
        })
    }
}

fn non_empty(env: &dyn Env, key: &str) -> Option<String> {
    env.var(key).filter(|v| !v.trim().is_empty())
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p);
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("cannot read the current directory", e))?;
    Ok(cwd.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_defaults_under_home() {
        let env = MapEnv::from_pairs([("HOME", "/home/ada")]);
        let c = Config::resolve(&env, None).unwrap();
        assert_eq!(c.home, PathBuf::from("/home/ada/.authsome"));
        assert!(c.keyring);
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_HOME, "/env")]);
        assert_eq!(
            Config::resolve(&env, None).unwrap().home,
            PathBuf::from("/env")
        );
        assert_eq!(
            Config::resolve(&env, Some("/flag".into())).unwrap().home,
            PathBuf::from("/flag")
        );
    }

    #[test]
    fn keyring_can_be_switched_off() {
        for v in ["off", "0", "false", "NO"] {
            let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_KEYRING, v)]);
            assert!(!Config::resolve(&env, None).unwrap().keyring, "{v}");
        }
    }

    #[test]
    fn no_home_is_a_clear_error() {
        let err = Config::resolve(&MapEnv::default(), None).unwrap_err();
        assert!(err.to_string().contains("AUTHSOME_HOME"));
        assert!(err.hint().is_some());
    }
}
