//! The encrypted credential store: one SQLite file under `$AUTHSOME_HOME`.
//!
//! This file holds the [`Vault`] type and what it takes to get one: opening
//! (or creating) the file, the connection pragmas, running the schema
//! migrations, checking the master key and unwrapping the data key. It also
//! holds [`Vault::check_integrity`]. The rest of the `impl Vault` lives by
//! concern in the submodules:
//!
//! - `connections`: stored connections and their sealed secret fields
//!   (list, find, default, read, put, delete, set default);
//! - `custom_providers`: user-registered provider definitions, each kept
//!   with an authentication tag so an edit made outside authsome is refused,
//!   and suspending a provider's connections when its definition changes;
//! - `audit`: the append-only audit log;
//! - [`oauth`]: registered OAuth clients and token updates after a refresh;
//! - [`crypto`]: sealing and opening fields; [`master_key`]: finding the
//!   master key; `schema`: the numbered migrations.
//!
//! What the vault does not do: decide which connection serves a request
//! (that is `credentials`), or interpret provider definitions (it stores
//! them as text). The time it stamps on rows comes from `crate::clock`.
//!
//! # Keys
//!
//! ```text
//! master key (env / key file / keyring / master.key)
//!    └─ KEK  (= the key itself, or Argon2id(passphrase, salt) for passphrases)
//!         ├─ key-check value: seal(KEK, "authsome key check")   → tells "wrong key" from "corrupt"
//!         └─ wrapped data key: seal(KEK, DEK)
//!              └─ every secret field: seal(DEK, value, aad = table/id/field/key version)
//! ```
//!
//! Why a wrapped data key: changing the master key re-wraps 32 bytes instead
//! of re-encrypting every record, and the key-check value lets a wrong master
//! key be reported as such before any record is touched.
//!
//! # Durability
//!
//! WAL mode with `synchronous=FULL` (a committed credential survives power
//! loss), `busy_timeout` so the CLI and a daemon can share the file, and every
//! multi-row change in one transaction. SQLite runs under a `std::sync::Mutex`:
//! calls are short and never held across an `.await`.

mod audit;
mod connections;
pub mod crypto;
mod custom_providers;
pub mod master_key;
pub mod oauth;
mod schema;
mod team;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

pub use self::audit::AuditEntry;
pub use self::connections::{ConnectionRecord, ConnectionSecrets, ConnectionStatus, NewConnection};
use self::crypto::{Aad, CryptoError, Key};
pub use self::custom_providers::CheckedProviders;
pub use self::master_key::{KeySource, MasterKey};
pub use self::schema::SCHEMA_VERSION;
use crate::error::{Error, Result};
use crate::home::{self, Home};

const KCV_PLAINTEXT: &[u8] = b"authsome key check v1";

/// Result of [`Vault::check_integrity`].
#[derive(Debug, Clone, Serialize)]
pub struct IntegrityReport {
    /// `PRAGMA quick_check` said `ok`.
    pub sqlite_ok: bool,
    /// What SQLite said when it was not ok.
    pub sqlite_detail: Option<String>,
    /// Records checked.
    pub records: usize,
    /// `provider/connection (field)` of every record that failed to open.
    pub damaged: Vec<String>,
}

/// The open vault.
pub struct Vault {
    conn: Mutex<Connection>,
    dek: Key,
    key_version: u32,
    path: PathBuf,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("key_version", &self.key_version)
            .finish()
    }
}

// === impl Vault: opening ===

impl Vault {
    /// True when `home` already has a vault file.
    pub fn exists(home: &Home) -> bool {
        home.vault_db().exists()
    }

    /// Opens (or creates) the vault in `home` with `master`.
    ///
    /// A wrong master key is reported before anything is written.
    pub fn open(home: &Home, master: &MasterKey) -> Result<Vault> {
        home.ensure()?;
        let path = home.vault_db();
        if !path.exists() {
            // Created here with 0600 so SQLite never creates it with its own
            // 0644 default; the -wal and -shm files copy this mode.
            match home::create_private(&path) {
                Ok(_) => {}
                Err(_) if path.exists() => {}
                Err(e) => return Err(e),
            }
        }
        let mut conn = Connection::open(&path)
            .map_err(|e| Error::db(format!("cannot open the vault {}", path.display()), e))?;
        configure(&conn, &path)?;
        let found = schema::migrate(&mut conn)?;
        let (dek, key_version) = unlock(&mut conn, master)?;
        let vault = Vault {
            conn: Mutex::new(conn),
            dek,
            key_version,
            path,
        };
        if found < schema::PROVIDER_TAGS_VERSION {
            vault.tag_legacy_providers()?;
        }
        Ok(vault)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version of the data key in use.
    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_err| Error::invalid("the vault lock was poisoned by a panic", None))
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    let ctx = || format!("cannot configure the vault {}", path.display());
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| Error::db(ctx(), e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| Error::db(ctx(), e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "the vault could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| Error::db(ctx(), e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| Error::db(ctx(), e))?;
    Ok(())
}

/// Checks the master key and unwraps the data key; on a new vault, creates both.
fn unlock(conn: &mut Connection, master: &MasterKey) -> Result<(Key, u32)> {
    if let Some(found) = read_meta(conn)? {
        return open_meta(found, master);
    }
    // New vault: initialise under an IMMEDIATE transaction so two processes
    // starting at once cannot both write a data key.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| Error::db("cannot initialise the vault", e))?;
    if let Some(found) = read_meta(&tx)? {
        drop(tx);
        return open_meta(found, master);
    }
    let mut salt = [0u8; 16];
    crate::secret::fill_random(&mut salt)?;
    let kek = master.kek(&salt)?;
    let key_version = 1u32;
    let dek = Key::generate().map_err(crypto_to_io)?;
    let kcv =
        crypto::seal(&kek, &meta_aad("kcv", key_version), KCV_PLAINTEXT).map_err(crypto_to_io)?;
    let wrapped =
        crypto::seal(&kek, &meta_aad("dek", key_version), dek.bytes()).map_err(crypto_to_io)?;
    let insert = |name: &str, value: &dyn rusqlite::ToSql| {
        tx.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2)",
            params![name, value],
        )
        .map_err(|e| Error::db("cannot initialise the vault", e))
    };
    insert("salt", &salt.to_vec())?;
    insert("key_version", &key_version)?;
    insert("kcv", &kcv)?;
    insert("dek", &wrapped)?;
    tx.commit()
        .map_err(|e| Error::db("cannot initialise the vault", e))?;
    Ok((dek, key_version))
}

struct Meta {
    salt: Vec<u8>,
    key_version: u32,
    kcv: Vec<u8>,
    dek: Vec<u8>,
}

fn read_meta(conn: &Connection) -> Result<Option<Meta>> {
    let get_blob = |name: &str| -> Result<Option<Vec<u8>>> {
        conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()
        .map_err(|e| Error::db("cannot read the vault metadata", e))
    };
    let Some(kcv) = get_blob("kcv")? else {
        return Ok(None);
    };
    let corrupt = |what: &str| Error::Corrupt {
        what: format!("the vault's {what} record"),
    };
    let key_version: u32 = conn
        .query_row(
            "SELECT value FROM meta WHERE name = 'key_version'",
            [],
            |r| r.get(0),
        )
        .map_err(|_err| corrupt("key version"))?;
    Ok(Some(Meta {
        salt: get_blob("salt")?.ok_or_else(|| corrupt("salt"))?,
        key_version,
        kcv,
        dek: get_blob("dek")?.ok_or_else(|| corrupt("data key"))?,
    }))
}

fn open_meta(meta: Meta, master: &MasterKey) -> Result<(Key, u32)> {
    let kek = master.kek(&meta.salt)?;
    match crypto::open(&kek, &meta_aad("kcv", meta.key_version), &meta.kcv) {
        Ok(pt) if &pt[..] == KCV_PLAINTEXT => {}
        Ok(_) | Err(CryptoError::Malformed) => {
            return Err(Error::Corrupt {
                what: "the vault's key-check record".into(),
            });
        }
        Err(_) => {
            return Err(Error::WrongMasterKey {
                source_desc: master.source().describe(),
            });
        }
    }
    let dek =
        crypto::open(&kek, &meta_aad("dek", meta.key_version), &meta.dek).map_err(|_err| {
            Error::Corrupt {
                what: "the vault's data key record".into(),
            }
        })?;
    let bytes: [u8; 32] = dek[..].try_into().map_err(|_err| Error::Corrupt {
        what: "the vault's data key record".into(),
    })?;
    Ok((
        Key::from_bytes(zeroize::Zeroizing::new(bytes)),
        meta.key_version,
    ))
}

fn meta_aad(record: &str, key_version: u32) -> Aad<'_> {
    Aad {
        table: "meta",
        record_id: record,
        field: "value",
        key_version,
    }
}

fn crypto_to_io(e: CryptoError) -> Error {
    Error::io("vault encryption failed", std::io::Error::other(e))
}

// === impl Vault: integrity ===

impl Vault {
    /// Runs `PRAGMA quick_check` and opens every secret field.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let quick: String = self
            .conn()?
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| Error::db("cannot check the vault", e))?;
        let records = self.list_connections()?;
        let mut damaged = Vec::new();
        for rec in &records {
            if let Err(Error::Corrupt { what }) = self.read_secrets(rec) {
                damaged.push(what);
            }
        }
        let sqlite_ok = quick == "ok";
        Ok(IntegrityReport {
            sqlite_ok,
            sqlite_detail: (!sqlite_ok).then_some(quick),
            records: records.len(),
            damaged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    pub(super) fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32], KeySource::Env)
    }

    pub(super) fn api_key_conn(provider: &str, name: &str, key: &str) -> NewConnection {
        NewConnection {
            provider: provider.into(),
            name: name.into(),
            auth_type: "api_key".into(),
            status: ConnectionStatus::Connected,
            account_label: None,
            token_type: None,
            scopes: vec![],
            expires_at: None,
            api_key: Some(Secret::new(key.into())),
            access_token: None,
            refresh_token: None,
            cookies: None,
            flow: None,
        }
    }

    pub(super) fn fresh() -> (tempfile::TempDir, Home, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("home"));
        let v = Vault::open(&home, &key(1)).unwrap();
        (dir, home, v)
    }

    #[test]
    fn vault_files_are_private() {
        let (_d, home, v) = fresh();
        v.put_connection(api_key_conn("openai", "default", "sk-one"), false)
            .unwrap();
        assert_eq!(home::mode_of(&home.vault_db()), Some(0o600));
        let wal = home.root().join("vault.db-wal");
        if wal.exists() {
            assert_eq!(home::mode_of(&wal), Some(0o600));
        }
        assert_eq!(home::mode_of(home.root()), Some(0o700));
    }

    #[test]
    fn pragmas_are_durable_and_shared() {
        let (_d, _h, v) = fresh();
        let c = v.conn().unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let busy: i64 = c
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert!(busy >= 5000);
    }

    #[test]
    fn wrong_key_detected_before_any_write() {
        let (_d, home, v) = fresh();
        v.put_connection(api_key_conn("openai", "default", "sk-one"), false)
            .unwrap();
        drop(v);
        let before = std::fs::read(home.vault_db()).unwrap();
        let err = Vault::open(&home, &key(2)).unwrap_err();
        assert!(matches!(err, Error::WrongMasterKey { .. }), "{err:?}");
        assert_eq!(std::fs::read(home.vault_db()).unwrap(), before);
        // the right key still works
        let v = Vault::open(&home, &key(1)).unwrap();
        assert_eq!(v.list_connections().unwrap().len(), 1);
    }

    #[test]
    fn passphrase_vault_reopens_with_the_same_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let p = MasterKey::from_text("correct horse battery staple", KeySource::Env).unwrap();
        Vault::open(&home, &p)
            .unwrap()
            .put_connection(api_key_conn("openai", "default", "sk-x"), false)
            .unwrap();
        assert!(Vault::open(&home, &p).is_ok());
        let q = MasterKey::from_text("correct horse battery stapler", KeySource::Env).unwrap();
        assert!(matches!(
            Vault::open(&home, &q),
            Err(Error::WrongMasterKey { .. })
        ));
    }

    #[test]
    fn damaged_key_check_is_corruption_not_wrong_key() {
        let (_d, home, v) = fresh();
        v.conn()
            .unwrap()
            .execute("UPDATE meta SET value = x'00' WHERE name = 'kcv'", [])
            .unwrap();
        drop(v);
        assert!(matches!(
            Vault::open(&home, &key(1)),
            Err(Error::Corrupt { .. })
        ));
    }
}
