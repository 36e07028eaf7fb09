//! The daemon's log file: `$AUTHSOME_HOME/logs/authsome.log`, 0600, rotated
//! at start when it passes 10 MiB (three old files kept).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

const MAX_BYTES: u64 = 10 * 1024 * 1024;
const KEEP: usize = 3;

/// Opens the log for appending (created 0600, never through a symlink).
pub fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io_at("open the log file", path, e))
}

/// Rotates `path` → `path.1` → … → `path.3` when it is larger than 10 MiB.
pub fn rotate(path: &Path) {
    let big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_BYTES);
    if !big {
        return;
    }
    for i in (1..KEEP).rev() {
        std::fs::rename(
            path.with_extension(format!("log.{i}")),
            path.with_extension(format!("log.{}", i + 1)),
        )
        .ok();
    }
    std::fs::rename(path, path.with_extension("log.1")).ok();
}
