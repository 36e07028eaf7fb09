//! Finding the vault's master key, and reporting where it came from.
//!
//! Order (the first that answers wins):
//! 1. `AUTHSOME_MASTER_KEY`: base64 of 32 bytes, or a passphrase;
//! 2. `AUTHSOME_MASTER_KEY_FILE`: a 0600 file with the same content;
//! 3. the OS keyring (Secret Service, Keychain, Credential Manager), best effort;
//! 4. `$AUTHSOME_HOME/master.key` (0600).
//!
//! When none answers and the vault does not exist yet, a key is generated
//! and stored in the keyring if one works, else in `master.key`. When the
//! vault already exists, no key is generated: a new key could never open it,
//! so the user is told where the old one was expected instead.
//!
//! Why the keyring is optional: on a headless box there is no Secret Service
//! and the lookup fails within milliseconds; a kernel keyring (keyutils) is
//! RAM-only and would lose the key on reboot, so it is never used. The
//! effective source is always reported (`authsome whoami`, `doctor`).

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use super::crypto::Key;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::home::{self, Home};
use crate::secret::Secret;

/// Passphrases shorter than this are refused.
const MIN_PASSPHRASE: usize = 12;

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `AUTHSOME_MASTER_KEY`.
    Env,
    /// `AUTHSOME_MASTER_KEY_FILE`.
    EnvFile(PathBuf),
    /// The OS keyring.
    Keyring,
    /// `$AUTHSOME_HOME/master.key`.
    HomeFile(PathBuf),
}

impl KeySource {
    /// Short machine-readable name (`env`, `key_file`, `keyring`, `local_key`).
    pub fn id(&self) -> &'static str {
        match self {
            KeySource::Env => "env",
            KeySource::EnvFile(_) => "key_file",
            KeySource::Keyring => "keyring",
            KeySource::HomeFile(_) => "local_key",
        }
    }

    /// Human description, e.g. `the file /home/ada/.authsome/master.key`.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env => "AUTHSOME_MASTER_KEY".into(),
            KeySource::EnvFile(p) => format!("AUTHSOME_MASTER_KEY_FILE ({})", p.display()),
            KeySource::Keyring => "the OS keyring".into(),
            KeySource::HomeFile(p) => format!("the key file {}", p.display()),
        }
    }
}

enum Material {
    Raw(Zeroizing<[u8; 32]>),
    Passphrase(Secret<String>),
}

/// The resolved master key. Never printed; derives the key-encryption key.
pub struct MasterKey {
    material: Material,
    source: KeySource,
    generated: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("source", &self.source)
            .field("passphrase", &self.is_passphrase())
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Where it came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// True when this run generated the key.
    pub fn was_generated(&self) -> bool {
        self.generated
    }

    /// True when the key is a passphrase stretched with Argon2id.
    pub fn is_passphrase(&self) -> bool {
        matches!(self.material, Material::Passphrase(_))
    }

    /// A raw key, for tests and embedding.
    pub fn from_bytes(bytes: [u8; 32], source: KeySource) -> MasterKey {
        MasterKey {
            material: Material::Raw(Zeroizing::new(bytes)),
            source,
            generated: false,
        }
    }

    /// Parses key text (base64 of 32 bytes, or a passphrase).
    pub fn from_text(text: &str, source: KeySource) -> Result<MasterKey> {
        Ok(MasterKey {
            material: parse_material(text, &source)?,
            source,
            generated: false,
        })
    }

    /// The key-encryption key for a vault with this KDF salt.
    ///
    /// Why Argon2id only for passphrases: a random 32-byte key has full
    /// entropy already; stretching it would only slow every start.
    pub(crate) fn kek(&self, salt: &[u8]) -> Result<Key> {
        match &self.material {
            Material::Raw(bytes) => Ok(Key::from_bytes(bytes.clone())),
            Material::Passphrase(p) => {
                let params = argon2::Params::new(64 * 1024, 3, 1, Some(32))
                    .map_err(|e| Error::invalid(format!("argon2 parameters: {e}"), None))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = Zeroizing::new([0u8; 32]);
                argon
                    .hash_password_into(p.expose().as_bytes(), salt, &mut out[..])
                    .map_err(|e| {
                        Error::invalid(
                            format!("cannot derive the key from the passphrase: {e}"),
                            None,
                        )
                    })?;
                Ok(Key::from_bytes(out))
            }
        }
    }
}

fn parse_material(text: &str, source: &KeySource) -> Result<Material> {
    let t = text.trim();
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(t) {
            let bytes = Zeroizing::new(bytes);
            if let Ok(arr) = <[u8; 32]>::try_from(&bytes[..]) {
                return Ok(Material::Raw(Zeroizing::new(arr)));
            }
        }
    }
    if t.chars().count() < MIN_PASSPHRASE {
        return Err(Error::MasterKey {
            message: format!(
                "the master key from {} is neither base64 of 32 bytes nor a passphrase of at least {MIN_PASSPHRASE} characters",
                source.describe()
            ),
            hint:
                "generate one with `head -c 32 /dev/urandom | base64`, or use a longer passphrase"
                    .into(),
        });
    }
    Ok(Material::Passphrase(Secret::new(t.to_string())))
}

/// What a keyring lookup found.
pub enum KeyringLookup {
    /// An entry exists.
    Found(Secret<String>),
    /// The keyring works but has no entry for this home.
    Empty,
    /// No usable keyring (headless box, locked, unsupported platform).
    Unavailable(String),
}

/// A place to keep the master key outside the home directory.
pub trait KeyStore {
    /// Looks the key up.
    fn get(&self) -> KeyringLookup;
    /// Stores a new key; `Err` carries a reason for the debug log.
    fn set(&self, value: &str) -> std::result::Result<(), String>;
}

/// The OS keyring, one entry per home directory.
pub struct OsKeyring {
    user: String,
}

impl OsKeyring {
    /// The entry for `home`.
    pub fn for_home(home: &Home) -> OsKeyring {
        OsKeyring {
            user: format!("master-key:{}", home.root().display()),
        }
    }

    fn entry(&self) -> std::result::Result<keyring::Entry, String> {
        if let Err(e) = keyring::Entry::store_status() {
            return Err(e.to_string());
        }
        keyring::Entry::new("authsome", &self.user).map_err(|e| e.to_string())
    }
}

impl KeyStore for OsKeyring {
    fn get(&self) -> KeyringLookup {
        let entry = match self.entry() {
            Ok(e) => e,
            Err(e) => return KeyringLookup::Unavailable(e),
        };
        match entry.get_password() {
            Ok(v) => KeyringLookup::Found(Secret::new(v)),
            Err(keyring::Error::NoEntry) => KeyringLookup::Empty,
            Err(e) => KeyringLookup::Unavailable(e.to_string()),
        }
    }

    fn set(&self, value: &str) -> std::result::Result<(), String> {
        let entry = self.entry()?;
        entry.set_password(value).map_err(|e| e.to_string())?;
        // Read back: a store that "succeeds" but cannot return the key must not be trusted.
        match entry.get_password() {
            Ok(v) if v == value => Ok(()),
            Ok(_) => Err("the keyring returned a different value".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Resolves the master key for `home`.
///
/// `vault_exists` stops a key from being generated for a vault that already
/// has one; `keystore` is `None` when the keyring is switched off.
pub fn resolve(
    config: &Config,
    home: &Home,
    keystore: Option<&dyn KeyStore>,
    vault_exists: bool,
) -> Result<MasterKey> {
    if let Some(k) = &config.master_key {
        return MasterKey::from_text(k.expose(), KeySource::Env);
    }
    if let Some(path) = &config.master_key_file {
        let source = KeySource::EnvFile(path.clone());
        return match home::read_private(path)? {
            Some(bytes) => MasterKey::from_text(&utf8(&bytes, &source)?, source),
            None => Err(Error::MasterKey {
                message: format!(
                    "AUTHSOME_MASTER_KEY_FILE points at {}, which does not exist",
                    path.display()
                ),
                hint: "fix the path, or unset AUTHSOME_MASTER_KEY_FILE".into(),
            }),
        };
    }
    let mut keyring_usable = false;
    if let Some(store) = keystore {
        match store.get() {
            KeyringLookup::Found(v) => return MasterKey::from_text(v.expose(), KeySource::Keyring),
            KeyringLookup::Empty => keyring_usable = true,
            KeyringLookup::Unavailable(why) => {
                tracing::debug!(reason = %why, "OS keyring unavailable; using the key file");
            }
        }
    }
    let file = home.master_key();
    if let Some(bytes) = home::read_private(&file)? {
        let source = KeySource::HomeFile(file.clone());
        return MasterKey::from_text(&utf8(&bytes, &source)?, source);
    }
    if vault_exists {
        return Err(Error::MasterKey {
            message: format!(
                "no master key found for the existing vault {} (looked in AUTHSOME_MASTER_KEY, \
                 AUTHSOME_MASTER_KEY_FILE, the OS keyring and {})",
                home.vault_db().display(),
                file.display()
            ),
            hint: "restore the key you used before (for example set AUTHSOME_MASTER_KEY), \
                   or move the vault away to start over"
                .into(),
        });
    }
    generate(home, if keyring_usable { keystore } else { None })
}

fn generate(home: &Home, keystore: Option<&dyn KeyStore>) -> Result<MasterKey> {
    let mut raw = Zeroizing::new([0u8; 32]);
    crate::secret::fill_random(&mut raw[..])?;
    let text = Zeroizing::new(STANDARD.encode(&raw[..]));
    if let Some(store) = keystore {
        match store.set(&text) {
            Ok(()) => {
                return Ok(MasterKey {
                    material: Material::Raw(raw),
                    source: KeySource::Keyring,
                    generated: true,
                });
            }
            Err(why) => {
                tracing::debug!(reason = %why, "cannot store the master key in the OS keyring")
            }
        }
    }
    home.ensure()?;
    let file = home.master_key();
    if home::write_secret_file_new(&file, text.as_bytes())? {
        return Ok(MasterKey {
            material: Material::Raw(raw),
            source: KeySource::HomeFile(file),
            generated: true,
        });
    }
    // Another process created the key between our lookup and our write: use theirs.
    let source = KeySource::HomeFile(file.clone());
    match home::read_private(&file)? {
        Some(bytes) => MasterKey::from_text(&utf8(&bytes, &source)?, source),
        None => Err(Error::MasterKey {
            message: format!("{} vanished while it was being created", file.display()),
            hint: "run the command again".into(),
        }),
    }
}

fn utf8(bytes: &[u8], source: &KeySource) -> Result<Zeroizing<String>> {
    std::str::from_utf8(bytes)
        .map(|s| Zeroizing::new(s.to_string()))
        .map_err(|_err| Error::MasterKey {
            message: format!("the master key in {} is not text", source.describe()),
            hint: "the file should hold base64 of 32 random bytes".into(),
        })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::{Config, MapEnv};

    struct FailingKeyring;
    impl KeyStore for FailingKeyring {
        fn get(&self) -> KeyringLookup {
            KeyringLookup::Unavailable("no secret service".into())
        }
        fn set(&self, _: &str) -> std::result::Result<(), String> {
            Err("no secret service".into())
        }
    }

    /// A keyring that says it is empty and then refuses to store.
    struct BrokenWriteKeyring;
    impl KeyStore for BrokenWriteKeyring {
        fn get(&self) -> KeyringLookup {
            KeyringLookup::Empty
        }
        fn set(&self, _: &str) -> std::result::Result<(), String> {
            Err("locked".into())
        }
    }

    #[derive(Default)]
    struct MemKeyring(RefCell<Option<String>>);
    impl KeyStore for MemKeyring {
        fn get(&self) -> KeyringLookup {
            match &*self.0.borrow() {
                Some(v) => KeyringLookup::Found(Secret::new(v.clone())),
                None => KeyringLookup::Empty,
            }
        }
        fn set(&self, v: &str) -> std::result::Result<(), String> {
            *self.0.borrow_mut() = Some(v.into());
            Ok(())
        }
    }

    fn cfg(dir: &std::path::Path, pairs: &[(&str, &str)]) -> Config {
        let mut env = MapEnv::from_pairs(pairs.iter().copied());
        env.0
            .insert("AUTHSOME_HOME".into(), dir.display().to_string());
        Config::resolve(&env, None).unwrap()
    }

    #[test]
    fn failing_keyring_falls_back_to_a_0600_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[]);
        let home = Home::new(&c.home);
        let k = resolve(&c, &home, Some(&FailingKeyring), false).unwrap();
        assert_eq!(k.source(), &KeySource::HomeFile(home.master_key()));
        assert!(k.was_generated());
        assert_eq!(home::mode_of(&home.master_key()), Some(0o600));
        // second run reads the same file and does not generate
        let again = resolve(&c, &home, Some(&FailingKeyring), true).unwrap();
        assert!(!again.was_generated());
        assert_eq!(
            k.kek(b"s").unwrap().bytes(),
            again.kek(b"s").unwrap().bytes()
        );
    }

    #[test]
    fn keyring_that_cannot_store_never_leaves_the_key_only_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[]);
        let home = Home::new(&c.home);
        let k = resolve(&c, &home, Some(&BrokenWriteKeyring), false).unwrap();
        assert_eq!(k.source().id(), "local_key");
        assert!(home.master_key().exists());
    }

    #[test]
    fn working_keyring_is_used_and_no_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[]);
        let home = Home::new(&c.home);
        let ring = MemKeyring::default();
        let k = resolve(&c, &home, Some(&ring), false).unwrap();
        assert_eq!(k.source(), &KeySource::Keyring);
        assert!(!home.master_key().exists());
        let again = resolve(&c, &home, Some(&ring), true).unwrap();
        assert_eq!(
            k.kek(b"s").unwrap().bytes(),
            again.kek(b"s").unwrap().bytes()
        );
    }

    #[test]
    fn env_key_wins_and_accepts_base64_or_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = STANDARD.encode([7u8; 32]);
        let c = cfg(dir.path(), &[("AUTHSOME_MASTER_KEY", &b64)]);
        let k = resolve(&c, &Home::new(&c.home), Some(&MemKeyring::default()), false).unwrap();
        assert_eq!(k.source(), &KeySource::Env);
        assert!(!k.is_passphrase());
        assert_eq!(k.kek(b"salt").unwrap().bytes(), &[7u8; 32]);

        let c = cfg(
            dir.path(),
            &[("AUTHSOME_MASTER_KEY", "correct horse battery staple")],
        );
        let k = resolve(&c, &Home::new(&c.home), None, false).unwrap();
        assert!(k.is_passphrase());
        let a = k.kek(b"0123456789abcdef").unwrap();
        let b = k.kek(b"fedcba9876543210").unwrap();
        assert_ne!(a.bytes(), b.bytes(), "salt must change the derived key");
    }

    #[test]
    fn short_passphrase_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[("AUTHSOME_MASTER_KEY", "short")]);
        let err = resolve(&c, &Home::new(&c.home), None, false).unwrap_err();
        assert!(err.to_string().contains("AUTHSOME_MASTER_KEY"));
    }

    #[test]
    fn existing_vault_without_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[]);
        let home = Home::new(&c.home);
        let err = resolve(&c, &home, None, true).unwrap_err();
        assert!(err.to_string().contains("no master key found"));
        assert!(!home.master_key().exists());
    }

    #[test]
    fn missing_key_file_env_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(
            dir.path(),
            &[("AUTHSOME_MASTER_KEY_FILE", "/nonexistent/key")],
        );
        let err = resolve(&c, &Home::new(&c.home), None, false).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key"));
    }
}
