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
//! - `copy`: a home's vault copied verbatim into an empty PostgreSQL store
//!   (`authsome migrate --to`);
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
mod copy;
pub mod crypto;
mod custom_providers;
pub(crate) mod db;
mod listen;
pub mod master_key;
pub mod oauth;
pub(crate) mod pg;
#[cfg(test)]
#[path = "../../tests/support/postgres.rs"]
mod pg_harness;
#[cfg(test)]
mod pg_tests;
mod refresh;
mod schema;
mod team;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use self::db::{Tx, TxInner, params};

pub use self::audit::AuditEntry;
pub use self::connections::{ConnectionRecord, ConnectionSecrets, ConnectionStatus, NewConnection};
pub use self::copy::{CopyReport, Target};
use self::crypto::{Aad, CryptoError, Key};
pub use self::custom_providers::CheckedProviders;
pub use self::listen::Change;
pub use self::master_key::{KeySource, MasterKey};
pub use self::pg::is_postgres_url;
pub use self::refresh::RefreshStep;
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
    store: Store,
    dek: Key,
    key_version: u32,
}

/// Where the rows live.
enum Store {
    /// One file under the home, behind a lock: calls are short and never
    /// held across an `.await`.
    Sqlite {
        conn: Mutex<Connection>,
        path: PathBuf,
    },
    /// A database shared by a team's daemons.
    Postgres(Box<pg::PgStore>),
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("location", &self.location())
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
        let store = Store::Sqlite {
            conn: Mutex::new(conn),
            path,
        };
        let (dek, key_version) = unlock(&store, master, None)?;
        let vault = Vault {
            store,
            dek,
            key_version,
        };
        if found < schema::PROVIDER_TAGS_VERSION {
            vault.tag_legacy_providers()?;
        }
        Ok(vault)
    }

    /// Opens (or initialises) a PostgreSQL store with `master`. The first
    /// daemon to initialise it records `creator` (its home's identity) as the
    /// store's creator. A wrong master key is reported before anything is
    /// written.
    pub fn open_postgres(
        url: &str,
        pool: usize,
        ca_file: Option<&Path>,
        master: &MasterKey,
        creator: Option<&str>,
    ) -> Result<Vault> {
        let store = Store::Postgres(Box::new(pg::PgStore::new(url, pool, ca_file)?));
        store.write("cannot migrate the store", schema::migrate_postgres)?;
        let (dek, key_version) = unlock(&store, master, creator)?;
        Ok(Vault {
            store,
            dek,
            key_version,
        })
    }

    /// The database file (SQLite); `None` for a PostgreSQL store.
    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::Sqlite { path, .. } => Some(path),
            Store::Postgres(_) => None,
        }
    }

    /// Where the store is, for people: a file path, or a PostgreSQL URL
    /// without its password.
    pub fn location(&self) -> String {
        match &self.store {
            Store::Sqlite { path, .. } => path.display().to_string(),
            Store::Postgres(pg) => pg.location().to_string(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match &self.store {
            Store::Sqlite { .. } => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The identity of the home whose daemon initialised this store
    /// (PostgreSQL stores; `None` for a home's own file).
    pub fn creator(&self) -> Result<Option<String>> {
        let sealed = self.read("cannot read the vault metadata", |tx| {
            Ok(tx
                .query_opt("SELECT value FROM meta WHERE name = 'creator_did'", &[])?
                .and_then(|r| r.0.into_iter().next()))
        })?;
        let Some(db::Value::Blob(sealed)) = sealed else {
            return Ok(None);
        };
        // Sealed, because the first admin is made from it: a database
        // operator who writes their own identity there gets nothing.
        match crypto::open(&self.dek, &creator_aad(self.key_version), &sealed)
            .ok()
            .and_then(|pt| String::from_utf8(pt.to_vec()).ok())
        {
            Some(did) => Ok(Some(did)),
            None => {
                tracing::warn!("the store's creator record failed its integrity check; ignored");
                Ok(None)
            }
        }
    }

    /// The version of the data key in use.
    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    /// Runs `f` in a writing transaction: committed when `f` returns `Ok`,
    /// rolled back otherwise. Writers are serialised (SQLite: `BEGIN
    /// IMMEDIATE`). `what` is the context of every error inside.
    pub(crate) fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.store.write(what, f)
    }

    /// Runs `f` over reads that need no transaction of their own.
    pub(crate) fn read<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        match &self.store {
            Store::Sqlite { conn, .. } => {
                let c = lock(conn)?;
                f(&mut Tx {
                    inner: TxInner::Sqlite(&c),
                    what,
                })
            }
            // One transaction (READ COMMITTED) for the reads, so a pooled
            // connection never carries anything over.
            Store::Postgres(_) => self.store.write(what, f),
        }
    }
}

impl Store {
    fn write<T>(&self, what: &str, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite { conn, .. } => {
                let mut c = lock(conn)?;
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| Error::db(what, e))?;
                let out = f(&mut Tx {
                    inner: TxInner::Sqlite(&tx),
                    what,
                })?;
                tx.commit().map_err(|e| Error::db(what, e))?;
                Ok(out)
            }
            Store::Postgres(pg) => {
                let mut client = pg.get()?;
                let tx = client
                    .client()?
                    .transaction()
                    .map_err(|e| Error::db(what, e))?;
                let mut t = Tx {
                    inner: TxInner::Pg(tx),
                    what,
                };
                let out = f(&mut t)?;
                if let TxInner::Pg(tx) = t.inner {
                    tx.commit().map_err(|e| Error::db(what, e))?;
                }
                Ok(out)
            }
        }
    }
}

fn lock(conn: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>> {
    conn.lock()
        .map_err(|_err| Error::invalid("the vault lock was poisoned by a panic", None))
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
fn unlock(store: &Store, master: &MasterKey, creator: Option<&str>) -> Result<(Key, u32)> {
    const WHAT: &str = "cannot initialise the vault";
    // New vault: initialise inside one writing transaction, under a lock,
    // so two processes starting at once cannot both write a data key; the
    // loser reads the winner's.
    let found = store.write(WHAT, |tx| {
        tx.lock_key("vault-init")?;
        if let Some(found) = read_meta(tx)? {
            return Ok(Err(found));
        }
        let mut salt = [0u8; 16];
        crate::secret::fill_random(&mut salt)?;
        let kek = master.kek(&salt)?;
        let key_version = 1u32;
        let dek = Key::generate().map_err(crypto_to_io)?;
        let kcv = crypto::seal(&kek, &meta_aad("kcv", key_version), KCV_PLAINTEXT)
            .map_err(crypto_to_io)?;
        let wrapped =
            crypto::seal(&kek, &meta_aad("dek", key_version), dek.bytes()).map_err(crypto_to_io)?;
        let sql = "INSERT INTO meta (name, value) VALUES (?1, ?2)";
        tx.execute(sql, params!["salt", salt.to_vec()])?;
        tx.execute(sql, params!["key_version", meta_int(tx, key_version)])?;
        tx.execute(sql, params!["kcv", kcv])?;
        tx.execute(sql, params!["dek", wrapped])?;
        if let Some(did) = creator {
            tx.execute(
                sql,
                params!["creator_did", seal_creator(&dek, key_version, did)?],
            )?;
        }
        Ok(Ok((dek, key_version)))
    })?;
    match found {
        Ok(new) => Ok(new),
        Err(meta) => open_meta(meta, master),
    }
}

/// The key version as `meta` stores it: an integer in SQLite's untyped
/// column, decimal text in PostgreSQL's bytes.
fn meta_int(tx: &Tx<'_>, v: u32) -> db::Value {
    match tx.inner {
        TxInner::Sqlite(_) => v.into(),
        TxInner::Pg(_) => v.to_string().into_bytes().into(),
    }
}

struct Meta {
    salt: Vec<u8>,
    key_version: u32,
    kcv: Vec<u8>,
    dek: Vec<u8>,
}

fn read_meta(tx: &mut Tx<'_>) -> Result<Option<Meta>> {
    let mut get = |name: &str| -> Result<Option<db::Value>> {
        Ok(tx
            .query_opt("SELECT value FROM meta WHERE name = ?1", params![name])?
            .and_then(|r| r.0.into_iter().next()))
    };
    let corrupt = |what: &str| Error::Corrupt {
        what: format!("the vault's {what} record"),
    };
    let blob = |v: Option<db::Value>, what: &str| match v {
        Some(db::Value::Blob(b)) => Ok(b),
        _ => Err(corrupt(what)),
    };
    let Some(kcv) = get("kcv")? else {
        return Ok(None);
    };
    let key_version = match get("key_version")? {
        Some(db::Value::Int(v)) => u32::try_from(v).ok(),
        Some(db::Value::Blob(b)) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
    .ok_or_else(|| corrupt("key version"))?;
    Ok(Some(Meta {
        salt: blob(get("salt")?, "salt")?,
        key_version,
        kcv: blob(Some(kcv), "key-check")?,
        dek: blob(get("dek")?, "data key")?,
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

fn creator_aad(key_version: u32) -> Aad<'static> {
    Aad {
        table: "meta",
        record_id: "creator_did",
        field: "value",
        key_version,
    }
}

/// The store creator's identity, sealed under the data key.
pub(crate) fn seal_creator(dek: &Key, key_version: u32, did: &str) -> Result<Vec<u8>> {
    crypto::seal(dek, &creator_aad(key_version), did.as_bytes()).map_err(crypto_to_io)
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
    /// Asks the store to check itself (SQLite: `PRAGMA quick_check`) and
    /// opens every secret field.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let quick = self.read("cannot check the vault", |tx| match tx.inner {
            TxInner::Sqlite(_) => tx.query_one("PRAGMA quick_check", &[])?.str(0),
            // PostgreSQL checks its own pages; what is left is "does it answer".
            TxInner::Pg(_) => tx.query_one("SELECT 'ok'", &[])?.str(0),
        })?;
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
        let (mode, sync, busy) = v
            .read("test", |tx| {
                Ok((
                    tx.query_one("PRAGMA journal_mode", &[])?.str(0)?,
                    tx.query_one("PRAGMA synchronous", &[])?.i64(0)?,
                    tx.query_one("PRAGMA busy_timeout", &[])?.i64(0)?,
                ))
            })
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
        v.write("test", |tx| {
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'kcv'",
                params![vec![0u8]],
            )
        })
        .unwrap();
        drop(v);
        assert!(matches!(
            Vault::open(&home, &key(1)),
            Err(Error::Corrupt { .. })
        ));
    }
}
