//! The library's error type.
//!
//! Every variant carries what the person fixing it needs: a lowercase message
//! with context (`provider file ./acme.json: unknown field `hosts``) and, where
//! there is a next step, a [`Error::hint`] that names it. Messages never
//! contain secret values: no variant holds a `Secret`, and values read from
//! provider files or the vault are described, not quoted.

use std::io;
use std::path::{Path, PathBuf};

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure this is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A provider or connection that does not exist.
    NotFound,
    /// Input the user can correct: a bad key, a malformed provider file.
    InvalidInput,
    /// The thing exists already.
    Conflict,
    /// The vault or its keys: wrong master key, tampering, loose permissions.
    Vault,
    /// The file system or database refused an operation.
    Io,
    /// A feature this build does not offer (yet).
    Unsupported,
    /// A credential or login that was good and is no longer: an expired or
    /// revoked token, a refresh token the provider refused, a device code or
    /// login session that ran out. Nothing to correct in the input: log in again.
    Expired,
}

/// Errors from the domain modules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The cause is part of the message rather than a `source`, so the CLI's
    // `{:#}` chain does not print it twice.
    #[error("{context}: {}", strip_os_code(cause))]
    Io { context: String, cause: io::Error },
    #[error("{context}: {}", describe_db(cause))]
    Database { context: String, cause: DbError },
    #[error("{} is accessible by other users (mode {mode:03o})", path.display())]
    InsecurePermissions { path: PathBuf, mode: u32, dir: bool },
    #[error("{} is a symbolic link; refusing to follow it", path.display())]
    Symlink { path: PathBuf },
    #[error("{message}")]
    MasterKey { message: String, hint: String },
    #[error("the master key from {source_desc} does not match this vault")]
    WrongMasterKey { source_desc: String },
    #[error("{what} failed its integrity check: the vault file was modified or damaged")]
    Corrupt { what: String },
    #[error("provider file {origin}: {message}")]
    ProviderFile {
        origin: String,
        message: String,
        hint: Option<String>,
    },
    #[error("unknown provider `{name}`")]
    ProviderNotFound {
        name: String,
        /// The closest known name, when one is close ("did you mean").
        suggestion: Option<String>,
    },
    #[error("no connection `{connection}` for provider `{provider}`")]
    ConnectionNotFound {
        provider: String,
        connection: String,
    },
    #[error(
        "the `{provider}` connection `{connection}` is suspended: the provider's definition changed where or how its credential is sent"
    )]
    ConnectionSuspended {
        provider: String,
        connection: String,
    },
    #[error("`{provider}` already has a connection named `{connection}`")]
    ConnectionExists {
        provider: String,
        connection: String,
    },
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
    },
    /// It exists already (a provider of that name): `--force` replaces it.
    #[error("{message}")]
    Exists {
        message: String,
        hint: Option<String>,
    },
    #[error("{message}")]
    Unsupported {
        message: String,
        hint: Option<String>,
    },
    /// A login session id that is unknown (or forgotten after a restart).
    #[error("no such login session (it may have expired, or the daemon restarted)")]
    SessionNotFound,
    /// A login session that no longer takes input (completed, failed, expired).
    #[error("{message}")]
    SessionFinished {
        message: String,
        hint: Option<String>,
    },
    /// A login session that has no device code to show.
    #[error("this session has no device code")]
    NoDeviceCode,
    /// See [`ErrorKind::Expired`]; the hint names the login to run again.
    #[error("{message}")]
    Expired {
        message: String,
        hint: Option<String>,
    },
}

impl Error {
    /// An I/O failure with the path it happened on.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }

    /// An I/O failure while doing `what` on `path`.
    pub fn io_at(what: &str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            context: format!("cannot {what} {}", path.display()),
            cause: source,
        }
    }

    /// A database failure with what was being done.
    pub fn db(context: impl Into<String>, source: impl Into<DbError>) -> Self {
        Error::Database {
            context: context.into(),
            cause: source.into(),
        }
    }

    /// Input the user can fix.
    pub fn invalid(message: impl Into<String>, hint: Option<String>) -> Self {
        Error::Invalid {
            message: message.into(),
            hint,
        }
    }

    /// A credential or login that expired or was revoked.
    pub fn expired(message: impl Into<String>, hint: Option<String>) -> Self {
        Error::Expired {
            message: message.into(),
            hint,
        }
    }

    /// The category, for exit codes and HTTP statuses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::Database { .. } => ErrorKind::Io,
            Error::InsecurePermissions { .. }
            | Error::Symlink { .. }
            | Error::MasterKey { .. }
            | Error::WrongMasterKey { .. }
            | Error::Corrupt { .. } => ErrorKind::Vault,
            Error::ProviderFile { .. } | Error::Invalid { .. } => ErrorKind::InvalidInput,
            Error::ProviderNotFound { .. } | Error::ConnectionNotFound { .. } => {
                ErrorKind::NotFound
            }
            Error::ConnectionExists { .. }
            | Error::Exists { .. }
            | Error::ConnectionSuspended { .. } => ErrorKind::Conflict,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Expired { .. } => ErrorKind::Expired,
            Error::SessionNotFound => ErrorKind::NotFound,
            Error::SessionFinished { .. } | Error::NoDeviceCode => ErrorKind::Conflict,
        }
    }

    /// The stable, machine-readable code of this error (the daemon's JSON
    /// `error.code`, the audit log's `code`). Internal failures (I/O,
    /// database, permissions) are all `internal`: their detail is logged,
    /// never sent.
    pub fn code(&self) -> &'static str {
        match (self, self.kind()) {
            (Error::ProviderNotFound { .. }, _) => "provider_not_found",
            (Error::ConnectionNotFound { .. }, _) => "connection_not_found",
            (Error::ConnectionExists { .. }, _) => "connection_exists",
            (Error::ConnectionSuspended { .. }, _) => "connection_suspended",
            (Error::ProviderFile { .. }, _) => "invalid_provider",
            (Error::WrongMasterKey { .. }, _) => "wrong_master_key",
            (Error::Corrupt { .. }, _) => "vault_integrity",
            (Error::SessionNotFound, _) => "session_not_found",
            (Error::SessionFinished { .. }, _) => "session_finished",
            (Error::NoDeviceCode, _) => "no_device_code",
            (Error::Database { cause, .. }, _) if cause.is_unavailable() => "store_unavailable",
            (_, ErrorKind::InvalidInput) => "invalid_input",
            (_, ErrorKind::Unsupported) => "unsupported",
            (_, ErrorKind::Conflict) => "conflict",
            (_, ErrorKind::NotFound) => "not_found",
            (_, ErrorKind::Expired) => "expired",
            _ => "internal",
        }
    }

    /// The next step for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Io { .. } | Error::Database { .. } if is_readonly(self) => Some(
                "authsome writes to its home directory: check its permissions and owner, \
                 or point AUTHSOME_HOME at a writable directory"
                    .into(),
            ),
            Error::Database { cause, .. } if cause.is_unavailable() => Some(
                "the daemon's PostgreSQL store is unreachable; nothing is served from memory meanwhile: \
                 check that it runs and that AUTHSOME_DATABASE_URL points at it (`authsome doctor`)"
                    .into(),
            ),
            Error::Io { .. } | Error::Database { .. } => None,
            Error::InsecurePermissions { path, dir, .. } => Some(format!(
                "run `chmod {} {}` so only you can read it",
                if *dir { "700" } else { "600" },
                path.display()
            )),
            Error::Symlink { path } => Some(format!("replace {} with a regular file", path.display())),
            Error::MasterKey { hint, .. } => Some(hint.clone()),
            Error::WrongMasterKey { .. } => Some(
                "use the key this vault was created with (AUTHSOME_MASTER_KEY, AUTHSOME_MASTER_KEY_FILE, \
                 the OS keyring or $AUTHSOME_HOME/master.key); `authsome doctor` shows which source is in use"
                    .into(),
            ),
            Error::Corrupt { .. } => Some(
                "run `authsome doctor` to list the damaged records; `authsome logout` removes one and \
                 `authsome login` stores it again"
                    .into(),
            ),
            Error::ProviderFile { hint, .. } => hint.clone(),
            Error::ProviderNotFound {
                suggestion: Some(s),
                ..
            } => Some(format!(
                "did you mean `{s}`? (`authsome provider list` shows every provider)"
            )),
            Error::ProviderNotFound { .. } => {
                Some("run `authsome provider list` to see the known providers".into())
            }
            Error::ConnectionNotFound { provider, connection } => Some(if connection == "default" {
                format!("run `authsome login {provider}`")
            } else {
                format!("run `authsome login {provider} --connection {connection}`")
            }),
            Error::ConnectionExists { .. } => Some("add --force to replace it".into()),
            Error::ConnectionSuspended { provider, connection } => Some(if connection == "default" {
                format!("check `authsome provider show {provider}`, then confirm with `authsome login {provider} --force`")
            } else {
                format!("check `authsome provider show {provider}`, then confirm with `authsome login {provider} --connection {connection} --force`")
            }),
            Error::Invalid { hint, .. }
            | Error::Exists { hint, .. }
            | Error::Unsupported { hint, .. }
            | Error::SessionFinished { hint, .. }
            | Error::Expired { hint, .. } => hint.clone(),
            Error::SessionNotFound => Some("start again with `authsome login PROVIDER`".into()),
            Error::NoDeviceCode => None,
        }
    }
}

/// "1 connection", "2 connections": a count and its noun, for messages.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `Permission denied (os error 13)` → `permission denied`.
fn strip_os_code(e: &io::Error) -> String {
    strip_os_code_str(&e.to_string())
}

fn strip_os_code_str(s: &str) -> String {
    let s = s.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// The database's own message, without the driver's repetition of it.
fn describe_db(e: &DbError) -> String {
    e.describe()
}

/// True when the failure means "you may not write here".
fn is_readonly(e: &Error) -> bool {
    match e {
        Error::Io { cause, .. } => matches!(
            cause.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
        ),
        Error::Database { cause, .. } => cause.is_readonly(),
        _ => false,
    }
}

/// A failure of the database itself (not of the data in it).
#[derive(Debug)]
pub enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
    /// Every pooled connection to the store stayed in use (a stuck token
    /// endpoint, too small a pool): treated as the store being unreachable.
    Busy(usize),
}

impl DbError {
    /// The driver's own message, without its repetitions.
    pub fn describe(&self) -> String {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(code, Some(msg))) if msg.is_empty() => {
                code.to_string()
            }
            DbError::Sqlite(rusqlite::Error::SqliteFailure(_, Some(msg))) => msg.clone(),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(code, None)) => code.to_string(),
            DbError::Sqlite(other) => other.to_string(),
            DbError::Busy(n) => format!(
                "all {n} store connections stayed busy (raise AUTHSOME_DATABASE_POOL, or look for a stuck token endpoint)"
            ),
            DbError::Postgres(e) => match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => {
                    // "error connecting to server: Connection refused (os error 111)"
                    let s = e.to_string();
                    strip_os_code_str(&s)
                }
            },
        }
    }

    /// True when the store cannot be reached (a lost or refused connection,
    /// the server shutting down), as opposed to a statement it refused.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Sqlite(_) => false,
            DbError::Busy(_) => true,
            DbError::Postgres(e) => match e.as_db_error() {
                None => true,
                Some(db) => {
                    let code = db.code().code();
                    code.starts_with("08") || code.starts_with("57P")
                }
            },
        }
    }

    /// True when the failure means "you may not write here".
    pub fn is_readonly(&self) -> bool {
        match self {
            DbError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ReadOnly)
                    | Some(rusqlite::ErrorCode::CannotOpen)
                    | Some(rusqlite::ErrorCode::PermissionDenied)
            ),
            DbError::Postgres(_) | DbError::Busy(_) => false,
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        DbError::Postgres(e)
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError::Sqlite(e)
    }
}
