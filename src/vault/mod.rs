//! The encrypted credential store: one SQLite file under `$AUTHSOME_HOME`.
//!
//! What it owns: the database handle, the data key, and the mapping between
//! connection records and rows. What it does not do: decide which connection
//! serves a request (that is `credentials`), or know provider definitions
//! beyond their names.
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

pub mod crypto;
pub mod master_key;
pub mod oauth;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use self::crypto::{Aad, CryptoError, Key};
pub use self::master_key::{KeySource, MasterKey};
pub use self::schema::SCHEMA_VERSION;
use crate::error::{Error, Result};
use crate::home::{self, Home};
use crate::secret::Secret;

const KCV_PLAINTEXT: &[u8] = b"authsome key check v1";
const TABLE: &str = "connections";
const SECRET_FIELDS: [&str; 3] = ["api_key", "access_token", "refresh_token"];

/// Lifecycle state of a stored connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Usable.
    Connected,
    /// The token expired and could not be refreshed.
    Expired,
    /// Revoked at the provider.
    Revoked,
    /// Stored data is unusable.
    Invalid,
    /// Its provider's definition changed where the credential goes (hosts,
    /// paths, header, injection form, token endpoints): not used until the
    /// user logs in again (`authsome login PROVIDER --force`).
    Suspended,
}

impl ConnectionStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Expired => "expired",
            ConnectionStatus::Revoked => "revoked",
            ConnectionStatus::Invalid => "invalid",
            ConnectionStatus::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> ConnectionStatus {
        match s {
            "connected" => ConnectionStatus::Connected,
            "expired" => ConnectionStatus::Expired,
            "revoked" => ConnectionStatus::Revoked,
            "suspended" => ConnectionStatus::Suspended,
            _ => ConnectionStatus::Invalid,
        }
    }
}

/// A stored connection without its secrets: safe to list, log and return.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionRecord {
    #[serde(skip)]
    pub id: String,
    pub provider: String,
    pub name: String,
    pub auth_type: String,
    pub status: ConnectionStatus,
    pub is_default: bool,
    pub account_label: Option<String>,
    pub token_type: Option<String>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub has_api_key: bool,
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    /// The login flow that made an OAuth connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
}

/// A connection to store.
#[derive(Debug)]
pub struct NewConnection {
    pub provider: String,
    pub name: String,
    pub auth_type: String,
    pub status: ConnectionStatus,
    pub account_label: Option<String>,
    pub token_type: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub api_key: Option<Secret<String>>,
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
    /// The login flow (OAuth connections).
    pub flow: Option<String>,
}

/// The decrypted secret fields of one connection.
#[derive(Debug, Default)]
pub struct ConnectionSecrets {
    pub api_key: Option<Secret<String>>,
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
}

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

// === impl Vault: connections ===

const CONNECTION_COLUMNS: &str = "id, provider, name, auth_type, status, is_default, account_label, token_type, \
     scopes, expires_at, created_at, updated_at, api_key IS NOT NULL, access_token IS NOT NULL, \
     refresh_token IS NOT NULL, flow";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectionRecord> {
    let scopes: String = r.get(8)?;
    Ok(ConnectionRecord {
        id: r.get(0)?,
        provider: r.get(1)?,
        name: r.get(2)?,
        auth_type: r.get(3)?,
        status: ConnectionStatus::parse(&r.get::<_, String>(4)?),
        is_default: r.get(5)?,
        account_label: r.get(6)?,
        token_type: r.get(7)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        expires_at: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        has_api_key: r.get(12)?,
        has_access_token: r.get(13)?,
        has_refresh_token: r.get(14)?,
        flow: r.get(15)?,
    })
}

impl Vault {
    /// Every connection, ordered by provider then name.
    pub fn list_connections(&self) -> Result<Vec<ConnectionRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY provider, name"
            ))
            .map_err(|e| Error::db("cannot list connections", e))?;
        let rows = stmt
            .query_map([], row_to_record)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| Error::db("cannot list connections", e))?;
        Ok(rows)
    }

    /// One connection's record, if it exists.
    pub fn find_connection(&self, provider: &str, name: &str) -> Result<Option<ConnectionRecord>> {
        let conn = self.conn()?;
        conn.query_row(
            &format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = ?1 AND name = ?2"
            ),
            [provider, name],
            row_to_record,
        )
        .optional()
        .map_err(|e| Error::db("cannot read a connection", e))
    }

    /// The provider's default connection, if any.
    pub fn default_connection(&self, provider: &str) -> Result<Option<ConnectionRecord>> {
        let conn = self.conn()?;
        conn.query_row(
            &format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE provider = ?1 AND is_default = 1"),
            [provider],
            row_to_record,
        )
        .optional()
        .map_err(|e| Error::db("cannot read a connection", e))
    }

    /// Decrypts a connection's secret fields.
    pub fn read_secrets(&self, record: &ConnectionRecord) -> Result<ConnectionSecrets> {
        let conn = self.conn()?;
        let (key_version, blobs) = conn
            .query_row(
                "SELECT key_version, api_key, access_token, refresh_token FROM connections WHERE id = ?1",
                [&record.id],
                |r| Ok((r.get::<_, u32>(0)?, [r.get::<_, Option<Vec<u8>>>(1)?, r.get(2)?, r.get(3)?])),
            )
            .optional()
            .map_err(|e| Error::db("cannot read a connection", e))?
            .ok_or_else(|| Error::ConnectionNotFound {
                provider: record.provider.clone(),
                connection: record.name.clone(),
            })?;
        drop(conn);
        let mut out: [Option<Secret<String>>; 3] = [None, None, None];
        for (i, blob) in blobs.iter().enumerate() {
            if let Some(blob) = blob {
                out[i] = Some(self.open_field(record, SECRET_FIELDS[i], key_version, blob)?);
            }
        }
        let [api_key, access_token, refresh_token] = out;
        Ok(ConnectionSecrets {
            api_key,
            access_token,
            refresh_token,
        })
    }

    fn open_field(
        &self,
        record: &ConnectionRecord,
        field: &str,
        key_version: u32,
        blob: &[u8],
    ) -> Result<Secret<String>> {
        let aad = Aad {
            table: TABLE,
            record_id: &record.id,
            field,
            key_version,
        };
        let corrupt = || Error::Corrupt {
            what: format!("connection {}/{} ({field})", record.provider, record.name),
        };
        let pt = crypto::open(&self.dek, &aad, blob).map_err(|_err| corrupt())?;
        let s = std::str::from_utf8(&pt).map_err(|_err| corrupt())?;
        Ok(Secret::new(s.to_string()))
    }

    /// Stores a connection. With `replace`, an existing connection of the same
    /// provider and name is replaced (keeping its default flag); without it,
    /// that is a [`Error::ConnectionExists`]. The first connection of a
    /// provider becomes its default.
    pub fn put_connection(&self, new: NewConnection, replace: bool) -> Result<ConnectionRecord> {
        let id = random_id()?;
        let now = now_unix();
        let mut sealed: [Option<Vec<u8>>; 3] = [None, None, None];
        for (i, value) in [&new.api_key, &new.access_token, &new.refresh_token]
            .into_iter()
            .enumerate()
        {
            if let Some(v) = value {
                let aad = Aad {
                    table: TABLE,
                    record_id: &id,
                    field: SECRET_FIELDS[i],
                    key_version: self.key_version,
                };
                sealed[i] = Some(
                    crypto::seal(&self.dek, &aad, v.expose().as_bytes()).map_err(crypto_to_io)?,
                );
            }
        }
        let scopes = serde_json::to_string(&new.scopes).unwrap_or_else(|_| "[]".into());
        let mut conn = self.conn()?;
        let ctx = |e| {
            Error::db(
                format!("cannot store connection {}/{}", new.provider, new.name),
                e,
            )
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx)?;
        let existing: Option<(bool, i64)> = tx
            .query_row(
                "SELECT is_default, created_at FROM connections WHERE provider = ?1 AND name = ?2",
                [&new.provider, &new.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(ctx)?;
        if existing.is_some() && !replace {
            return Err(Error::ConnectionExists {
                provider: new.provider,
                connection: new.name,
            });
        }
        let has_default: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM connections WHERE provider = ?1 AND is_default = 1 AND name != ?2)", [&new.provider, &new.name], |r| r.get(0))
            .map_err(ctx)?;
        let is_default = existing.map(|(d, _)| d).unwrap_or(false) || !has_default;
        let created_at = existing.map(|(_, c)| c).unwrap_or(now);
        tx.execute(
            "DELETE FROM connections WHERE provider = ?1 AND name = ?2",
            [&new.provider, &new.name],
        )
        .map_err(ctx)?;
        tx.execute(
            "INSERT INTO connections (id, provider, name, auth_type, status, is_default, account_label, token_type, \
             scopes, expires_at, key_version, api_key, access_token, refresh_token, created_at, updated_at, flow) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                id,
                new.provider,
                new.name,
                new.auth_type,
                new.status.as_str(),
                is_default,
                new.account_label,
                new.token_type,
                scopes,
                new.expires_at,
                self.key_version,
                sealed[0],
                sealed[1],
                sealed[2],
                created_at,
                now,
                new.flow
            ],
        )
        .map_err(ctx)?;
        tx.commit().map_err(ctx)?;
        drop(conn);
        self.find_connection(&new.provider, &new.name)?
            .ok_or_else(|| Error::ConnectionNotFound {
                provider: new.provider.clone(),
                connection: new.name.clone(),
            })
    }

    /// Deletes a connection; returns whether it existed. When it was the
    /// default, the oldest remaining connection of the provider takes over.
    pub fn delete_connection(&self, provider: &str, name: &str) -> Result<bool> {
        let mut conn = self.conn()?;
        let ctx = |e| Error::db(format!("cannot remove connection {provider}/{name}"), e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx)?;
        let was_default: Option<bool> = tx
            .query_row(
                "SELECT is_default FROM connections WHERE provider = ?1 AND name = ?2",
                [provider, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(ctx)?;
        let Some(was_default) = was_default else {
            return Ok(false);
        };
        tx.execute(
            "DELETE FROM connections WHERE provider = ?1 AND name = ?2",
            [provider, name],
        )
        .map_err(ctx)?;
        if was_default {
            tx.execute(
                "UPDATE connections SET is_default = 1 WHERE id = \
                 (SELECT id FROM connections WHERE provider = ?1 ORDER BY created_at, name LIMIT 1)",
                [provider],
            )
            .map_err(ctx)?;
        }
        tx.commit().map_err(ctx)?;
        Ok(true)
    }

    /// Makes `name` the provider's default connection.
    pub fn set_default(&self, provider: &str, name: &str) -> Result<()> {
        let mut conn = self.conn()?;
        let ctx = |e| {
            Error::db(
                format!("cannot change the default connection of {provider}"),
                e,
            )
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx)?;
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM connections WHERE provider = ?1 AND name = ?2)",
                [provider, name],
                |r| r.get(0),
            )
            .map_err(ctx)?;
        if !exists {
            return Err(Error::ConnectionNotFound {
                provider: provider.into(),
                connection: name.into(),
            });
        }
        tx.execute(
            "UPDATE connections SET is_default = 0 WHERE provider = ?1",
            [provider],
        )
        .map_err(ctx)?;
        tx.execute("UPDATE connections SET is_default = 1, updated_at = ?3 WHERE provider = ?1 AND name = ?2", params![provider, name, now_unix()])
            .map_err(ctx)?;
        tx.commit().map_err(ctx)
    }

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

// === impl Vault: custom providers ===

/// `(name, definition)` of the stored definitions that pass their check, and
/// the names of those that do not.
pub type CheckedProviders = (Vec<(String, String)>, Vec<String>);

impl Vault {
    /// `(name, definition JSON)` of every registered custom provider whose
    /// stored definition passes its integrity check.
    pub fn list_custom_providers(&self) -> Result<Vec<(String, String)>> {
        Ok(self.custom_providers_checked()?.0)
    }

    /// The custom providers that pass their integrity check, and the names of
    /// those that do not (edited in the file, outside authsome).
    pub fn custom_providers_checked(&self) -> Result<CheckedProviders> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT name, definition, tag FROM custom_providers ORDER BY name")
            .map_err(|e| Error::db("cannot list custom providers", e))?;
        let rows: Vec<(String, String, Option<Vec<u8>>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| Error::db("cannot list custom providers", e))?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for (name, definition, tag) in rows {
            if tag.is_some_and(|t| self.provider_tag_ok(&name, &definition, &t)) {
                good.push((name, definition));
            } else {
                tracing::warn!(provider = %name, "a stored provider definition failed its integrity check; not used");
                bad.push(name);
            }
        }
        Ok((good, bad))
    }

    fn provider_aad<'a>(&self, name: &'a str) -> Aad<'a> {
        Aad {
            table: "custom_providers",
            record_id: name,
            field: "definition",
            key_version: self.key_version,
        }
    }

    /// The tag of a definition: its SHA-256, sealed under the data key and bound to the name.
    fn provider_tag(&self, name: &str, definition: &str) -> Result<Vec<u8>> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(definition.as_bytes());
        crypto::seal(&self.dek, &self.provider_aad(name), &digest).map_err(crypto_to_io)
    }

    fn provider_tag_ok(&self, name: &str, definition: &str, tag: &[u8]) -> bool {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(definition.as_bytes());
        crypto::open(&self.dek, &self.provider_aad(name), tag)
            .is_ok_and(|d| crate::secret::ct_eq(&d, &digest))
    }

    /// Tags the definitions stored before tags existed, in the open that
    /// adds the tag column (migration 0007) and never again: a row whose
    /// tag was removed later is refused, not tagged anew. (Setting the
    /// schema version back to run the migration again fails: the column
    /// exists.)
    fn tag_legacy_providers(&self) -> Result<()> {
        let mut conn = self.conn()?;
        let ctx = |e| Error::db("cannot tag the stored provider definitions", e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx)?;
        let rows: Vec<(String, String)> = tx
            .prepare("SELECT name, definition FROM custom_providers WHERE tag IS NULL")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            })
            .map_err(ctx)?;
        for (name, definition) in rows {
            let tag = self.provider_tag(&name, &definition)?;
            tx.execute(
                "UPDATE custom_providers SET tag = ?2 WHERE name = ?1",
                params![name, tag],
            )
            .map_err(ctx)?;
        }
        tx.commit().map_err(ctx)
    }

    /// Stores (or replaces) a custom provider definition, with its tag.
    pub fn put_custom_provider(&self, name: &str, definition: &str) -> Result<()> {
        let now = now_unix();
        let tag = self.provider_tag(name, definition)?;
        self.conn()?
            .execute(
                "INSERT INTO custom_providers (name, definition, created_at, updated_at, tag) VALUES (?1, ?2, ?3, ?3, ?4) \
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at, tag = excluded.tag",
                params![name, definition, now, tag],
            )
            .map_err(|e| Error::db(format!("cannot store provider {name}"), e))?;
        Ok(())
    }

    /// Suspends every usable connection of `provider` (its definition changed
    /// where the credential goes); returns the names of those suspended.
    pub fn suspend_connections(&self, provider: &str) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let ctx = |e| Error::db(format!("cannot suspend the connections of {provider}"), e);
        let mut stmt = conn
            .prepare_cached(
                "UPDATE connections SET status = 'suspended', updated_at = ?2 \
                 WHERE provider = ?1 AND status != 'suspended' RETURNING name",
            )
            .map_err(ctx)?;
        let mut names = stmt
            .query_map(params![provider, now_unix()], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(ctx)?;
        names.sort();
        Ok(names)
    }

    /// Deletes a custom provider; returns whether it existed.
    pub fn delete_custom_provider(&self, name: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute("DELETE FROM custom_providers WHERE name = ?1", [name])
            .map_err(|e| Error::db(format!("cannot remove provider {name}"), e))?;
        Ok(n > 0)
    }
}

// === impl Vault: audit ===

/// One audit record. Carries names, hosts and outcomes; never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub ts: i64,
    /// `login`, `logout`, `revoke`, `export`, `set_default`, `provider.register`,
    /// `provider.remove`, `credential.resolve`.
    pub event: String,
    pub provider: Option<String>,
    pub connection: Option<String>,
    /// The caller's `did:key`, or `browser` for the input form.
    pub actor: Option<String>,
    /// `ok`, `failed` or `refused`.
    pub outcome: String,
    pub detail: serde_json::Value,
}

impl Vault {
    /// Appends an audit record.
    pub fn append_audit(
        &self,
        event: &str,
        provider: Option<&str>,
        connection: Option<&str>,
        actor: Option<&str>,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO audit (ts, event, provider, connection, actor, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![now_unix(), event, provider, connection, actor, outcome, detail.to_string()],
            )
            .map_err(|e| Error::db("cannot write the audit log", e))?;
        Ok(())
    }

    /// The newest `limit` audit records, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, ts, event, provider, connection, actor, outcome, detail FROM audit ORDER BY ts DESC, id DESC LIMIT ?1",
            )
            .map_err(|e| Error::db("cannot read the audit log", e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                let detail: String = r.get(7)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    event: r.get(2)?,
                    provider: r.get(3)?,
                    connection: r.get(4)?,
                    actor: r.get(5)?,
                    outcome: r.get(6)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| Error::db("cannot read the audit log", e))?;
        Ok(rows)
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_id() -> Result<String> {
    let mut b = [0u8; 16];
    crate::secret::fill_random(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32], KeySource::Env)
    }

    fn api_key_conn(provider: &str, name: &str, key: &str) -> NewConnection {
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
            flow: None,
        }
    }

    fn fresh() -> (tempfile::TempDir, Home, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("home"));
        let v = Vault::open(&home, &key(1)).unwrap();
        (dir, home, v)
    }

    #[test]
    fn put_then_read_secrets() {
        let (_d, _h, v) = fresh();
        let rec = v
            .put_connection(api_key_conn("openai", "default", "sk-one"), false)
            .unwrap();
        assert!(rec.is_default && rec.has_api_key && !rec.has_access_token);
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-one"
        );
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
    fn open_fails_when_row_swapped() {
        let (_d, _h, v) = fresh();
        let a = v
            .put_connection(api_key_conn("openai", "default", "sk-AAAA"), false)
            .unwrap();
        let b = v
            .put_connection(api_key_conn("anthropic", "default", "sk-ant-BBBB"), false)
            .unwrap();
        {
            let c = v.conn().unwrap();
            let blob: Vec<u8> = c
                .query_row(
                    "SELECT api_key FROM connections WHERE id = ?1",
                    [&a.id],
                    |r| r.get(0),
                )
                .unwrap();
            c.execute(
                "UPDATE connections SET api_key = ?1 WHERE id = ?2",
                params![blob, b.id],
            )
            .unwrap();
        }
        assert!(matches!(v.read_secrets(&b), Err(Error::Corrupt { .. })));
        // the untouched record still opens
        assert_eq!(
            v.read_secrets(&a).unwrap().api_key.unwrap().expose(),
            "sk-AAAA"
        );
        let report = v.check_integrity().unwrap();
        assert_eq!(
            report.damaged,
            vec!["connection anthropic/default (api_key)".to_string()]
        );
    }

    #[test]
    fn open_fails_when_field_swapped() {
        let (_d, _h, v) = fresh();
        let mut n = api_key_conn("github", "default", "unused");
        n.api_key = None;
        n.access_token = Some(Secret::new("at".into()));
        n.refresh_token = Some(Secret::new("rt".into()));
        let rec = v.put_connection(n, false).unwrap();
        {
            let c = v.conn().unwrap();
            c.execute(
                "UPDATE connections SET access_token = refresh_token WHERE id = ?1",
                [&rec.id],
            )
            .unwrap();
        }
        assert!(matches!(v.read_secrets(&rec), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn truncated_row_is_corrupt_not_a_panic() {
        let (_d, _h, v) = fresh();
        let rec = v
            .put_connection(api_key_conn("openai", "default", "sk-one"), false)
            .unwrap();
        v.conn()
            .unwrap()
            .execute(
                "UPDATE connections SET api_key = substr(api_key, 1, 5) WHERE id = ?1",
                [&rec.id],
            )
            .unwrap();
        assert!(matches!(v.read_secrets(&rec), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn duplicate_without_replace_is_refused_and_keeps_the_old_value() {
        let (_d, _h, v) = fresh();
        v.put_connection(api_key_conn("openai", "default", "sk-old"), false)
            .unwrap();
        let err = v
            .put_connection(api_key_conn("openai", "default", "sk-new"), false)
            .unwrap_err();
        assert!(matches!(err, Error::ConnectionExists { .. }));
        let rec = v.find_connection("openai", "default").unwrap().unwrap();
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-old"
        );
        let rec = v
            .put_connection(api_key_conn("openai", "default", "sk-new"), true)
            .unwrap();
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-new"
        );
    }

    #[test]
    fn default_moves_on_delete_and_set_default() {
        let (_d, _h, v) = fresh();
        v.put_connection(api_key_conn("openai", "work", "sk-w"), false)
            .unwrap();
        v.put_connection(api_key_conn("openai", "home", "sk-h"), false)
            .unwrap();
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "work"
        );
        v.set_default("openai", "home").unwrap();
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "home"
        );
        assert!(v.delete_connection("openai", "home").unwrap());
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "work"
        );
        assert!(!v.delete_connection("openai", "home").unwrap());
        assert!(matches!(
            v.set_default("openai", "nope"),
            Err(Error::ConnectionNotFound { .. })
        ));
    }

    #[test]
    fn rewrite_uses_a_fresh_nonce_each_time() {
        let (_d, _h, v) = fresh();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            v.put_connection(api_key_conn("openai", "default", "sk-same"), true)
                .unwrap();
            let blob: Vec<u8> = v
                .conn()
                .unwrap()
                .query_row("SELECT api_key FROM connections", [], |r| r.get(0))
                .unwrap();
            assert!(seen.insert(blob[1..13].to_vec()));
        }
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
