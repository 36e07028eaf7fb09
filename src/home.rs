//! `$AUTHSOME_HOME`: its layout and the only code that creates files in it.
//!
//! ```text
//! $AUTHSOME_HOME/            0700
//!   vault.db                 0600  SQLite: connections (secret fields AES-256-GCM sealed), custom providers
//!   vault.db-wal, -shm       0600  SQLite's write-ahead log (ciphertext only)
//!   master.key               0600  vault master key, when no env var, key file or keyring supplies it
//!   identity.key             0600  Ed25519 seed (hex) of this home's identity
//! ```
//!
//! Why every file is created with its mode at `open()` time: a write-then-chmod
//! sequence leaves a window in which another user can open the file, and it
//! is wrong under `umask 000`. Files are opened with `O_CREAT|O_EXCL|O_NOFOLLOW`
//! and mode 0600; directories get 0700 and are chmod-ed after creation so an
//! unusual umask cannot loosen them. Secret files are written to a temporary
//! name, synced, and linked into place, so a crash leaves either no file or a
//! complete one, never a truncated key.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The directory tree authsome owns.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A handle on `root`; nothing is created until [`Home::ensure`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite vault.
    pub fn vault_db(&self) -> PathBuf {
        self.root.join("vault.db")
    }

    /// The generated master-key file.
    pub fn master_key(&self) -> PathBuf {
        self.root.join("master.key")
    }

    /// The identity's private key.
    pub fn identity_key(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// Creates the root (0700) if it is missing.
    pub fn ensure(&self) -> Result<()> {
        ensure_private_dir(&self.root)
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory
/// is left as it is (`doctor` reports loose modes).
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            // A symlinked home is a deliberate user choice; follow it only if it points at a directory.
            if fs::metadata(dir).map(|t| t.is_dir()).unwrap_or(false) {
                return Ok(());
            }
            return Err(Error::Symlink {
                path: dir.to_path_buf(),
            });
        }
        Ok(_) => {
            return Err(Error::invalid(
                format!("{} exists and is not a directory", dir.display()),
                Some("point AUTHSOME_HOME at a directory".into()),
            ));
        }
        Err(_) => {}
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io_at("create directory", dir, e))?;
    fs::set_permissions(dir, Permissions::from_mode(0o700))
        .map_err(|e| Error::io_at("set permissions on", dir, e))
}

/// Creates a new file with mode 0600, failing if it exists or is a symlink.
pub fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io_at("create", path, e))
}

/// Opens a private file for appending (and reading), creating it 0600 with
/// `O_CREAT|O_EXCL` when it does not exist. An existing file must pass
/// [`check_private_meta`] (a regular file of ours, 0600); a symlink at
/// `path` is refused ([`Error::Symlink`]), never followed.
pub fn open_private_append(path: &Path) -> Result<File> {
    let opts = || {
        let mut o = OpenOptions::new();
        o.read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        o
    };
    match opts().create_new(true).mode(0o600).open(path) {
        Ok(f) => return Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io_at("create", path, e)),
    }
    let file = opts().open(path).map_err(|e| open_error("open", path, e))?;
    check_private_meta(
        path,
        &file.metadata().map_err(|e| Error::io_at("stat", path, e))?,
    )?;
    Ok(file)
}

/// Opens a private file for reading: not through a symlink, and only when it
/// passes [`check_private_meta`]. `Ok(None)` when it does not exist.
pub fn open_private(path: &Path) -> Result<Option<File>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(open_error("read", path, e)),
    };
    check_private_meta(
        path,
        &file.metadata().map_err(|e| Error::io_at("stat", path, e))?,
    )?;
    Ok(Some(file))
}

/// `ELOOP` from an `O_NOFOLLOW` open is a symlink at the path.
fn open_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        Error::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        Error::io_at(what, path, e)
    }
}

/// A fresh temporary path beside `path` (random suffix, so concurrent writers never share one).
fn temp_beside(path: &Path) -> Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    crate::secret::fill_random(&mut nonce)?;
    Ok(dir.join(format!(
        ".{}.{:016x}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret"),
        u64::from_le_bytes(nonce)
    )))
}

/// How [`write_private_file`] puts the finished file in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Replace whatever is at the path (rename).
    Replace,
    /// Only when nothing is there yet (hard link; never clobbers).
    New,
}

/// The one atomic private-file writer: a temporary file (0600, `O_EXCL`,
/// no symlinks), fsync, then rename or hard link to `path`, then fsync the
/// directory. Readers see the old file or the whole new one, never a part.
///
/// Returns `Ok(false)` when `place` is [`Place::New`] and `path` already
/// exists (another process won the race).
pub fn write_private_file(path: &Path, contents: &[u8], place: Place) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_beside(path)?;
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(contents)
            .map_err(|e| Error::io_at("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io_at("sync", &tmp, e))?;
        match place {
            Place::Replace => {
                fs::rename(&tmp, path).map_err(|e| Error::io_at("write", path, e))?;
            }
            Place::New => match fs::hard_link(&tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(Error::io_at("create", path, e)),
            },
        }
        if let Ok(d) = File::open(dir) {
            // Best effort: makes the new directory entry durable.
            d.sync_all().ok();
        }
        Ok(true)
    })();
    // After a rename there is nothing left to remove; after a link or a failure there is.
    fs::remove_file(&tmp).ok();
    result
}

/// Writes a secret file atomically and without clobbering.
///
/// Returns `Ok(false)` when `path` already exists (another process won the race).
pub fn write_secret_file_new(path: &Path, contents: &[u8]) -> Result<bool> {
    write_private_file(path, contents, Place::New)
}

/// Reads a file that must be private: not a symlink, a regular file, owned by
/// us, and not readable or writable by group or others.
///
/// Returns `Ok(None)` when the file does not exist.
pub fn read_private(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let Some(file) = open_private(path)? else {
        return Ok(None);
    };
    let mut buf = Zeroizing::new(Vec::new());
    (&file)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io_at("read", path, e))?;
    Ok(Some(buf))
}

/// Checks the mode and owner of an already opened private file.
pub fn check_private_meta(path: &Path, meta: &fs::Metadata) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::invalid(
            format!("{} is not a regular file", path.display()),
            None,
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
            dir: false,
        });
    }
    if let Some(uid) = effective_uid()
        && meta.uid() != uid
    {
        return Err(Error::invalid(
            format!(
                "{} belongs to another user (uid {})",
                path.display(),
                meta.uid()
            ),
            Some(format!(
                "run `chown $(id -u) {}` if it is yours",
                path.display()
            )),
        ));
    }
    Ok(())
}

/// The mode bits of `path` (without following symlinks), if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::symlink_metadata(path).ok().map(|m| m.mode() & 0o777)
}

/// This process's effective uid, read safely from `/proc/self` (Linux).
pub fn effective_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_0600_and_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        assert!(write_secret_file_new(&p, b"one").unwrap());
        assert_eq!(mode_of(&p), Some(0o600));
        assert!(!write_secret_file_new(&p, b"two").unwrap());
        assert_eq!(&read_private(&p).unwrap().unwrap()[..], b"one");
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replacing_a_private_file_keeps_it_0600_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.json");
        // A world-readable file from elsewhere is replaced by a private one.
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        assert!(write_private_file(&p, b"new", Place::Replace).unwrap());
        assert_eq!(mode_of(&p), Some(0o600));
        assert_eq!(&read_private(&p).unwrap().unwrap()[..], b"new");
        assert!(write_private_file(&p, b"newer", Place::Replace).unwrap());
        assert_eq!(&read_private(&p).unwrap().unwrap()[..], b"newer");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn loose_key_file_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, b"x").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        let err = read_private(&p).unwrap_err();
        assert!(err.to_string().contains("mode 644"), "{err}");
        assert!(err.hint().unwrap().contains("chmod 600"));
    }

    #[test]
    fn symlinked_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        fs::write(&target, b"x").unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("k");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_private(&link), Err(Error::Symlink { .. })));
    }

    #[test]
    fn home_is_created_0700() {
        let dir = tempfile::tempdir().unwrap();
        let h = Home::new(dir.path().join("a/b"));
        h.ensure().unwrap();
        assert_eq!(mode_of(h.root()), Some(0o700));
    }
}
