//! The request log: one JSON line per request, tunnel or refusal the proxy
//! handled, in `$AUTHSOME_HOME/logs/requests.jsonl` (0600, `logs/` 0700).
//!
//! What it owns: the [`Entry`] record (also the wire type of
//! `GET /api/requests`, re-exported by [`crate::api`]), the writer thread,
//! size-based rotation, and [`RequestLog::query`]. What it does not do:
//! decide what a request was (the proxy fills the entries) or audit anything
//! (the composition root passes an `on_entry` callback that does).
//!
//! An entry holds names, a host, a path without its query, a status, byte
//! counts and timings; **never** a header value, a query value, a body or
//! a secret. [`RequestLog::record`] strips a `?query` or `#fragment` from the
//! path itself, so a producer that forgets cannot store one.
//!
//! # Why a thread and a bounded channel
//!
//! `record` is called on the proxy's hot path: it must never block nor wait
//! for a disk. It hands the entry to one writer thread over a bounded
//! channel ([`CAPACITY`]) with `try_send`; when the channel is full the entry
//! is counted and dropped, and the writer later stores one [`EntryKind::Dropped`]
//! entry saying how many went missing. The writer numbers entries (`seq`,
//! continuing after a restart from the last stored entry), appends them
//! buffered, and flushes whenever the channel is momentarily empty, so a
//! reader sees an entry within milliseconds of the request.
//!
//! # Files and rotation
//!
//! `requests.jsonl` is created with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode
//! 0600 (threat model T20); an existing one must be a private regular file
//! of ours, and a symlink at the path is refused. When the next line would
//! take it past `max_bytes / 2`, it is renamed to `requests.jsonl.1`
//! (replacing the older one) and a new file is started: the two together
//! stay within `max_bytes` ([`DEFAULT_MAX_BYTES`], `AUTHSOME_REQUEST_LOG_MAX`).
//! A line cut short by a crash (`kill -9` mid-write) is skipped when reading
//! and closed with a newline before the next append, never fatal.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home;

/// The current file, in the log directory.
pub const FILE: &str = "requests.jsonl";
/// The previous file, replaced at each rotation.
pub const ROTATED: &str = "requests.jsonl.1";
/// Both files together stay within this many bytes unless configured (32 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Entries waiting for the writer before `record` starts dropping them.
pub const CAPACITY: usize = 4096;
/// Entries a query returns when it does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// The most entries one query returns.
pub const MAX_LIMIT: usize = 1000;
/// A longer path is cut to this many bytes (at a character boundary).
pub const MAX_PATH_BYTES: usize = 2048;

// === Entry ===

/// What an entry describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An HTTP request the proxy saw (intercepted, or refused before it was sent).
    #[default]
    Request,
    /// A CONNECT tunnel passed through without decryption (a host no provider claims).
    Tunnel,
    /// Not a request: `dropped` entries were lost because the writer fell behind.
    Dropped,
}

/// A placeholder (the value a child sees in place of a secret) found where
/// it should not be: sent to a host of another provider, or in a query or body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tripwire {
    /// The provider whose placeholder it is.
    pub provider: String,
    /// `header`, `query` or `body`.
    pub location: String,
}

/// One line of the request log. Never a secret, a query value or a body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Entry {
    /// Assigned by the writer: increasing, continued after a restart.
    pub seq: u64,
    /// When the request started, Unix milliseconds.
    pub ts_ms: i64,
    pub kind: EntryKind,
    /// The run's id; `system` for the system-wide listener.
    pub run: Option<String>,
    /// The provider whose host it was, if any.
    pub provider: Option<String>,
    /// The connection whose credential was used, if any.
    pub connection: Option<String>,
    /// `GET`, `POST`… (`None` for a tunnel).
    pub method: Option<String>,
    pub host: String,
    pub port: u16,
    /// The path only: no query, no fragment.
    pub path: Option<String>,
    /// The status sent to the client (`None` when none was).
    pub status: Option<u16>,
    /// Bytes sent upstream (body, or tunnel bytes).
    pub bytes_up: u64,
    /// Bytes sent to the client.
    pub bytes_down: u64,
    /// Milliseconds until the response headers arrived.
    pub latency_ms: Option<f64>,
    /// Milliseconds until the exchange ended.
    pub duration_ms: f64,
    /// A credential was injected.
    pub injected: bool,
    /// How many occurrences of a secret were redacted from the response.
    pub redactions: u32,
    /// Where they were: a subset of `header`, `body`, `frame`.
    pub redacted_in: Vec<String>,
    /// The error code when the proxy refused it (`authsome_host_denied`…).
    pub refused: Option<String>,
    /// A placeholder where it should not be.
    pub tripwire: Option<Tripwire>,
    /// For [`EntryKind::Dropped`]: entries lost since the last stored one.
    pub dropped: u64,
    /// For [`EntryKind::Dropped`]: how many of them had a redaction or a
    /// tripwire (what the audit log would have recorded).
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_flagged: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Entry {
    /// An entry of `kind` for `host:port`, timestamped now; every other
    /// field empty.
    pub fn new(kind: EntryKind, host: impl Into<String>, port: u16) -> Entry {
        Entry {
            kind,
            host: host.into(),
            port,
            ts_ms: crate::clock::now_unix_millis(),
            ..Entry::default()
        }
    }

    /// The marker for `n` entries lost, `flagged` of them with a
    /// redaction or a tripwire.
    fn lost(n: u64, flagged: u64) -> Entry {
        Entry {
            dropped: n,
            dropped_flagged: flagged,
            ..Entry::new(EntryKind::Dropped, "", 0)
        }
    }
}

/// `path` without its query or fragment, and at most [`MAX_PATH_BYTES`].
pub fn path_only(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or("");
    if p.len() <= MAX_PATH_BYTES {
        return p.to_string();
    }
    let mut end = MAX_PATH_BYTES;
    while !p.is_char_boundary(end) {
        end -= 1;
    }
    p[..end].to_string()
}

// === Filter ===

/// Which statuses a query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this code (`404`).
    Code(u16),
    /// A class: `4` for `4xx`.
    Class(u16),
    /// Refused by the proxy (any refusal code).
    Refused,
}

impl FromStr for StatusFilter {
    type Err = Error;

    /// `404`, `4xx` (any case) or `refused`.
    fn from_str(s: &str) -> Result<StatusFilter> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::invalid(
                format!("`{}` is not a status filter", s.escape_debug()),
                Some("use a code (404), a class (4xx) or `refused`".into()),
            )
        };
        if s == "refused" {
            return Ok(StatusFilter::Refused);
        }
        if let Some(c) = s.strip_suffix("xx") {
            return match c.as_bytes() {
                [d @ b'1'..=b'5'] => Ok(StatusFilter::Class(u16::from(d - b'0'))),
                _ => Err(bad()),
            };
        }
        match s.parse::<u16>() {
            Ok(c @ 100..=599) => Ok(StatusFilter::Code(c)),
            _ => Err(bad()),
        }
    }
}

impl StatusFilter {
    /// Whether `e` has such a status.
    pub fn matches(&self, e: &Entry) -> bool {
        match self {
            StatusFilter::Code(c) => e.status == Some(*c),
            StatusFilter::Class(k) => e.status.is_some_and(|s| s / 100 == *k),
            StatusFilter::Refused => e.refused.is_some(),
        }
    }
}

/// What [`RequestLog::query`] returns.
///
/// - Without `after`: the newest matching entries, **newest first**, at
///   most `limit`.
/// - With `after` (following): matching entries with `seq > after`,
///   **oldest first**, at most `limit` (the first ones after `after`, so a
///   follower pages forward without gaps).
///
/// `run` matches a run id or its beginning (the short id a table shows);
/// `provider` matches exactly. [`EntryKind::Dropped`] markers match every
/// filter: they say entries may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub after: Option<u64>,
    pub run: Option<String>,
    pub provider: Option<String>,
    pub status: Option<StatusFilter>,
    /// 1 to [`MAX_LIMIT`] (clamped).
    pub limit: usize,
}

impl Default for Filter {
    fn default() -> Filter {
        Filter {
            after: None,
            run: None,
            provider: None,
            status: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Filter {
    /// Whether `e` passes the run, provider and status filters (`after` aside).
    pub fn matches(&self, e: &Entry) -> bool {
        if e.kind == EntryKind::Dropped {
            return true;
        }
        if let Some(r) = &self.run
            && !e.run.as_deref().is_some_and(|x| x.starts_with(r.as_str()))
        {
            return false;
        }
        if let Some(p) = &self.provider
            && e.provider.as_deref() != Some(p.as_str())
        {
            return false;
        }
        self.status.is_none_or(|s| s.matches(e))
    }
}

// === RequestLog ===

enum Msg {
    Entry(Box<Entry>),
    /// Answered once everything sent before it is written and flushed.
    Sync(std::sync::mpsc::Sender<()>),
}

struct Inner {
    tx: SyncSender<Msg>,
    /// Dropped since the writer last stored a marker (the writer takes it).
    pending_drops: Arc<AtomicU64>,
    pending_flagged: Arc<AtomicU64>,
    /// Dropped since the log was opened.
    dropped_total: AtomicU64,
    dir: PathBuf,
    /// Held while the files are renamed, and while a query opens them, so a
    /// query never sees the rotation half done.
    rotation: Arc<Mutex<()>>,
}

/// A handle on the request log (cheap to clone; the writer thread stops
/// when the last handle is dropped, after writing what it was given).
#[derive(Clone)]
pub struct RequestLog {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("dir", &self.inner.as_ref().map(|i| &i.dir))
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RequestLog {
    /// Opens (creating `dir` 0700 and the file 0600 when missing) the log in
    /// `dir` and starts its writer thread. `on_entry` is called on that
    /// thread for every stored entry, markers included; it may block (the
    /// channel absorbs bursts meanwhile).
    ///
    /// Fails when the file cannot be opened safely: a symlink at its path,
    /// a file other users can read, or one of another user.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        on_entry: Box<dyn Fn(&Entry) + Send>,
    ) -> Result<RequestLog> {
        home::ensure_private_dir(dir)?;
        let pending_drops = Arc::new(AtomicU64::new(0));
        let pending_flagged = Arc::new(AtomicU64::new(0));
        let rotation = Arc::new(Mutex::new(()));
        let writer = Writer::open(
            dir,
            max_bytes,
            pending_drops.clone(),
            pending_flagged.clone(),
            rotation.clone(),
            on_entry,
        )?;
        let (tx, rx) = std::sync::mpsc::sync_channel(CAPACITY);
        std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("cannot start the request log's writer", e))?;
        Ok(RequestLog {
            inner: Some(Arc::new(Inner {
                tx,
                pending_drops,
                pending_flagged,
                dropped_total: AtomicU64::new(0),
                dir: dir.to_path_buf(),
                rotation,
            })),
        })
    }

    /// A log that records nothing and finds nothing (for tests of the engine).
    pub fn discard() -> RequestLog {
        RequestLog { inner: None }
    }

    /// Hands `e` to the writer; never blocks. Its `seq` is assigned by the
    /// writer; its path loses any query. When the writer is behind by
    /// [`CAPACITY`] entries, `e` is dropped and counted.
    pub fn record(&self, mut e: Entry) {
        let Some(inner) = &self.inner else {
            return;
        };
        e.path = e.path.as_deref().map(path_only);
        let flagged = e.redactions > 0 || e.tripwire.is_some();
        match inner.tx.try_send(Msg::Entry(Box::new(e))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                // Counted before the total, which the writer reads first.
                if flagged {
                    inner.pending_flagged.fetch_add(1, Ordering::Relaxed);
                }
                inner.pending_drops.fetch_add(1, Ordering::Relaxed);
                inner.dropped_total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Entries dropped since the log was opened (the writer was behind).
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped_total.load(Ordering::Relaxed))
    }

    /// Waits (up to 5 s) until every entry recorded before is written and
    /// flushed. Blocks: for shutdown and tests, never the hot path.
    pub fn sync(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let (done, wait) = std::sync::mpsc::channel();
        let mut msg = Msg::Sync(done);
        loop {
            match inner.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok();
    }

    /// The entries `f` asks for (see [`Filter`] for the order), and the
    /// sequence number a follower passes as `after` next time: the last
    /// entry returned when `limit` cut the answer short, otherwise the
    /// newest stored entry's (0 when the log is empty). Reads
    /// `requests.jsonl.1` and `requests.jsonl` (blocking file I/O; from
    /// async code, call it on the blocking pool). Lines that do not parse
    /// (a crash cut them) are skipped; a symlink at either path is refused.
    pub fn query(&self, f: &Filter) -> Result<(Vec<Entry>, u64)> {
        let Some(inner) = &self.inner else {
            return Ok((Vec::new(), 0));
        };
        let files = {
            let _held = lock(&inner.rotation);
            [
                home::open_private(&inner.dir.join(FILE))?,
                home::open_private(&inner.dir.join(ROTATED))?,
            ]
        };
        let limit = f.limit.clamp(1, MAX_LIMIT);
        let mut newest = None;
        let mut out = Vec::new();
        scan_newest_first(files.into_iter().flatten(), &inner.dir, |e| {
            newest.get_or_insert(e.seq);
            match f.after {
                Some(after) if e.seq <= after => return false,
                Some(_) => {
                    if f.matches(&e) {
                        out.push(e);
                    }
                }
                None => {
                    if f.matches(&e) {
                        out.push(e);
                    }
                    if out.len() >= limit {
                        return false;
                    }
                }
            }
            true
        })?;
        let mut last = newest.unwrap_or(0);
        if f.after.is_some() {
            out.reverse();
            if out.len() > limit {
                out.truncate(limit);
                last = out.last().map_or(last, |e| e.seq);
            }
        }
        Ok((out, last))
    }
}

/// Calls `visit` with each entry of `files` (newest file first), newest
/// entry first, until it returns false. Unparsable lines are skipped.
fn scan_newest_first(
    files: impl IntoIterator<Item = File>,
    dir: &Path,
    mut visit: impl FnMut(Entry) -> bool,
) -> Result<()> {
    for file in files {
        let mut lines = RevLines::new(file).map_err(|e| Error::io_at("read", dir, e))?;
        while let Some(line) = lines
            .next_line()
            .map_err(|e| Error::io_at("read", dir, e))?
        {
            let Ok(e) = serde_json::from_slice::<Entry>(&line) else {
                continue;
            };
            if !visit(e) {
                return Ok(());
            }
        }
    }
    Ok(())
}

// === reading backwards ===

/// The complete lines of a file, last first. The part after the last
/// newline (a line being written, or one a crash cut) is not a line.
struct RevLines {
    file: File,
    /// Where `buf` starts in the file.
    pos: u64,
    /// Bytes not returned yet; after the first call, it ends with a newline.
    buf: Vec<u8>,
    started: bool,
}

const CHUNK: u64 = 64 * 1024;

impl RevLines {
    fn new(file: File) -> io::Result<RevLines> {
        let pos = file.metadata()?.len();
        Ok(RevLines {
            file,
            pos,
            buf: Vec::new(),
            started: false,
        })
    }

    fn read_chunk(&mut self) -> io::Result<()> {
        let start = self.pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(self.pos - start).unwrap_or(0)];
        self.file.read_exact_at(&mut chunk, start)?;
        chunk.extend_from_slice(&self.buf);
        self.buf = chunk;
        self.pos = start;
        Ok(())
    }

    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        if !self.started {
            self.started = true;
            loop {
                if let Some(i) = self.buf.iter().rposition(|&b| b == b'\n') {
                    self.buf.truncate(i + 1);
                    break;
                }
                if self.pos == 0 {
                    self.buf.clear();
                    return Ok(None);
                }
                self.read_chunk()?;
            }
        }
        loop {
            if self.buf.is_empty() {
                if self.pos == 0 {
                    return Ok(None);
                }
                self.read_chunk()?;
                continue;
            }
            let body = &self.buf[..self.buf.len() - 1];
            if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
                let line = body[i + 1..].to_vec();
                self.buf.truncate(i + 1);
                return Ok(Some(line));
            }
            if self.pos == 0 {
                let line = body.to_vec();
                self.buf.clear();
                return Ok(Some(line));
            }
            self.read_chunk()?;
        }
    }
}

// === the writer thread ===

struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    /// `None` after a failed rotation; reopened at the next entry.
    file: Option<BufWriter<File>>,
    /// Bytes in the current file, buffered ones included.
    size: u64,
    seq: u64,
    pending_drops: Arc<AtomicU64>,
    pending_flagged: Arc<AtomicU64>,
    rotation: Arc<Mutex<()>>,
    on_entry: Box<dyn Fn(&Entry) + Send>,
}

impl Writer {
    fn open(
        dir: &Path,
        max_bytes: u64,
        pending_drops: Arc<AtomicU64>,
        pending_flagged: Arc<AtomicU64>,
        rotation: Arc<Mutex<()>>,
        on_entry: Box<dyn Fn(&Entry) + Send>,
    ) -> Result<Writer> {
        let path = dir.join(FILE);
        let mut file = home::open_private_append(&path)?;
        let mut size = file
            .metadata()
            .map_err(|e| Error::io_at("stat", &path, e))?
            .len();
        // A line a crash cut short is closed, so the next one stays whole.
        if size > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, size - 1)
                .map_err(|e| Error::io_at("read", &path, e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .map_err(|e| Error::io_at("write", &path, e))?;
                size += 1;
            }
        }
        let mut seq = 0;
        let current = file
            .try_clone()
            .map_err(|e| Error::io_at("open", &path, e))?;
        let rotated = home::open_private(&dir.join(ROTATED))?;
        scan_newest_first(std::iter::once(current).chain(rotated), dir, |e| {
            seq = e.seq;
            false
        })?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            max_bytes,
            file: Some(BufWriter::new(file)),
            size,
            seq,
            pending_drops,
            pending_flagged,
            rotation,
            on_entry,
        })
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => {
                    self.note_drops();
                    self.flush();
                    match rx.recv() {
                        Ok(m) => m,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            self.note_drops();
            match msg {
                Msg::Entry(e) => self.store(*e),
                Msg::Sync(done) => {
                    self.flush();
                    done.send(()).ok();
                }
            }
        }
        self.note_drops();
        self.flush();
    }

    /// Stores a marker when entries were dropped since the last one.
    fn note_drops(&mut self) {
        let n = self.pending_drops.swap(0, Ordering::Relaxed);
        if n > 0 {
            let flagged = self.pending_flagged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                dropped = n,
                flagged,
                "the request log fell behind; entries were dropped"
            );
            self.store(Entry::lost(n, flagged));
        }
    }

    fn store(&mut self, mut e: Entry) {
        self.seq += 1;
        e.seq = self.seq;
        let mut line = match serde_json::to_vec(&e) {
            Ok(l) => l,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode a request log entry");
                return;
            }
        };
        line.push(b'\n');
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes / 2 {
            self.rotate();
        }
        if self.file.is_none() {
            self.reopen();
        }
        if let Some(f) = self.file.as_mut() {
            match f.write_all(&line) {
                Ok(()) => self.size += len,
                Err(err) => {
                    tracing::error!(error = %err, "cannot write the request log");
                }
            }
        }
        (self.on_entry)(&e);
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut()
            && let Err(err) = f.flush()
        {
            tracing::error!(error = %err, "cannot write the request log");
        }
    }

    /// `requests.jsonl` → `requests.jsonl.1`, and a new `requests.jsonl`.
    fn rotate(&mut self) {
        self.flush();
        self.file = None;
        let rotation = self.rotation.clone();
        let _held = lock(&rotation);
        let (from, to) = (self.dir.join(FILE), self.dir.join(ROTATED));
        if let Err(err) = std::fs::rename(&from, &to) {
            tracing::error!(error = %err, "cannot rotate the request log");
        }
        self.reopen_locked();
    }

    fn reopen(&mut self) {
        let rotation = self.rotation.clone();
        let _held = lock(&rotation);
        self.reopen_locked();
    }

    fn reopen_locked(&mut self) {
        let path = self.dir.join(FILE);
        match home::open_private_append(&path).and_then(|f| {
            let len = f
                .metadata()
                .map_err(|e| Error::io_at("stat", &path, e))?
                .len();
            Ok((f, len))
        }) {
            Ok((f, len)) => {
                self.file = Some(BufWriter::new(f));
                self.size = len;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot open the request log");
                self.file = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(run: &str, provider: Option<&str>, status: Option<u16>) -> Entry {
        Entry {
            run: Some(run.into()),
            provider: provider.map(String::from),
            status,
            method: Some("GET".into()),
            path: Some("/v1/models".into()),
            ..Entry::new(EntryKind::Request, "api.example.test", 443)
        }
    }

    fn open(dir: &Path, max: u64) -> RequestLog {
        RequestLog::open(dir, max, Box::new(|_| {})).unwrap()
    }

    fn all(log: &RequestLog) -> Vec<Entry> {
        log.query(&Filter {
            limit: MAX_LIMIT,
            ..Filter::default()
        })
        .unwrap()
        .0
    }

    #[test]
    fn seq_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_BYTES);
        for _ in 0..3 {
            log.record(entry("r1", None, Some(200)));
        }
        log.sync();
        assert_eq!(log.query(&Filter::default()).unwrap().1, 3);
        drop(log);
        let log = open(dir.path(), DEFAULT_MAX_BYTES);
        log.record(entry("r2", None, Some(200)));
        log.sync();
        let seqs: Vec<u64> = all(&log).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![4, 3, 2, 1], "newest first");
    }

    #[test]
    fn the_path_loses_its_query_and_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_BYTES);
        let mut e = entry("r", None, None);
        e.path = Some("/search?q=SECRETVALUE&key=abc#frag".into());
        log.record(e);
        log.sync();
        assert_eq!(all(&log)[0].path.as_deref(), Some("/search"));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("SECRETVALUE"), "{text}");
        assert_eq!(path_only(&"é".repeat(MAX_PATH_BYTES)).len(), MAX_PATH_BYTES);
    }

    #[test]
    fn rotation_keeps_the_total_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let max = 16 * 1024;
        let log = open(dir.path(), max);
        for i in 0..2000 {
            log.record(entry(&format!("run{i}"), Some("github"), Some(200)));
            if i % 100 == 0 {
                log.sync();
                let total: u64 = [FILE, ROTATED]
                    .iter()
                    .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
                    .map(|m| m.len())
                    .sum();
                assert!(total <= max, "{total} > {max}");
            }
        }
        log.sync();
        let total: u64 = [FILE, ROTATED]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
            .sum();
        assert!(total <= max, "{total} > {max}");
        // The newest entries survive, in order, across both files.
        let (entries, last) = log.query(&Filter::default()).unwrap();
        assert_eq!(last, 2000);
        assert_eq!(entries[0].seq, 2000);
        assert!(entries.windows(2).all(|w| w[0].seq == w[1].seq + 1));
        assert_eq!(
            std::fs::metadata(dir.path().join(ROTATED))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn a_truncated_last_line_is_skipped_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_BYTES);
        log.record(entry("r", None, Some(200)));
        log.record(entry("r", None, Some(201)));
        log.sync();
        drop(log);
        // kill -9 in the middle of the third line
        let path = dir.path().join(FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"seq":3,"ts_ms":1,"kind":"requ"#).unwrap();
        drop(f);
        let log = open(dir.path(), DEFAULT_MAX_BYTES);
        assert_eq!(all(&log).len(), 2);
        log.record(entry("r", None, Some(202)));
        log.sync();
        let entries = all(&log);
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.seq, e.status))
                .collect::<Vec<_>>(),
            vec![(3, Some(202)), (2, Some(201)), (1, Some(200))]
        );
    }

    #[test]
    fn query_filters_and_follows() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_BYTES);
        log.record(entry("aaaa1111", Some("github"), Some(200)));
        log.record(entry("aaaa1111", Some("openai"), Some(404)));
        log.record(entry("bbbb2222", Some("github"), Some(502)));
        let mut refused = entry("system", Some("github"), Some(403));
        refused.refused = Some("authsome_host_denied".into());
        log.record(refused);
        log.sync();
        let q = |f: Filter| {
            let (v, last) = log.query(&f).unwrap();
            (v.iter().map(|e| e.seq).collect::<Vec<_>>(), last)
        };
        assert_eq!(q(Filter::default()), (vec![4, 3, 2, 1], 4));
        let run = |r: &str| Filter {
            run: Some(r.into()),
            ..Filter::default()
        };
        assert_eq!(q(run("aaaa")), (vec![2, 1], 4), "a run's short id");
        assert_eq!(q(run("system")), (vec![4], 4));
        let provider = Filter {
            provider: Some("github".into()),
            ..Filter::default()
        };
        assert_eq!(q(provider), (vec![4, 3, 1], 4));
        let status = |s: &str| Filter {
            status: Some(s.parse().unwrap()),
            ..Filter::default()
        };
        assert_eq!(q(status("404")), (vec![2], 4));
        assert_eq!(q(status("5XX")), (vec![3], 4));
        assert_eq!(q(status("4xx")), (vec![4, 2], 4));
        assert_eq!(q(status("refused")), (vec![4], 4));
        for bad in ["42", "6xx", "0xx", "abc", "", "4x", "1000"] {
            assert!(bad.parse::<StatusFilter>().is_err(), "{bad}");
        }
        // newest first, cut at the limit; `last` is still the newest stored
        let two = Filter {
            limit: 2,
            ..Filter::default()
        };
        assert_eq!(q(two), (vec![4, 3], 4));
        // following: oldest first after `after`; a cut answer's `last` is
        // where the next page starts
        let after = |a: u64, limit: usize| Filter {
            after: Some(a),
            limit,
            ..Filter::default()
        };
        assert_eq!(q(after(1, 100)), (vec![2, 3, 4], 4));
        assert_eq!(q(after(0, 2)), (vec![1, 2], 2));
        assert_eq!(q(after(2, 2)), (vec![3, 4], 4));
        assert_eq!(q(after(4, 100)), (vec![], 4));
        let gh_after = Filter {
            after: Some(1),
            provider: Some("openai".into()),
            ..Filter::default()
        };
        assert_eq!(
            q(gh_after),
            (vec![2], 4),
            "filtered-out entries still advance `last`"
        );
    }

    #[test]
    fn a_full_channel_drops_and_counts_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        // The writer stops inside `on_entry` of the first entry until released.
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let seen = Arc::new(AtomicU64::new(0));
        let seen2 = seen.clone();
        let log = RequestLog::open(
            dir.path(),
            DEFAULT_MAX_BYTES,
            Box::new(move |e| {
                if e.seq == 1 {
                    entered_tx.send(()).ok();
                    released.lock().unwrap().recv().ok();
                }
                seen2.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();
        log.record(entry("r", None, Some(200)));
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        let extra = 50;
        let started = Instant::now();
        for _ in 0..CAPACITY as u64 + extra {
            log.record(entry("r", None, Some(200)));
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "record blocked: {:?}",
            started.elapsed()
        );
        assert_eq!(log.dropped(), extra);
        release.send(()).unwrap();
        log.sync();
        // the marker follows the entry the writer was storing
        let (entries, _) = log
            .query(&Filter {
                after: Some(0),
                limit: 10,
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(entries[1].kind, EntryKind::Dropped);
        let markers: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dropped)
            .collect();
        assert_eq!(markers.len(), 1);
        assert_eq!(markers[0].dropped, extra);
        // every stored entry, the marker included, went through on_entry
        let stored = 1 + CAPACITY as u64 + 1;
        assert_eq!(seen.load(Ordering::Relaxed), stored);
        assert_eq!(log.query(&Filter::default()).unwrap().1, stored);
        // markers pass every filter: they say entries may be missing
        let (v, _) = log
            .query(&Filter {
                provider: Some("none".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn files_are_private_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let log = open(&logs, DEFAULT_MAX_BYTES);
        log.record(entry("r", None, Some(200)));
        log.sync();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&logs.join(FILE)), 0o600);
        drop(log);

        // a symlink planted at the log's path: refused, the target untouched
        let other = tempfile::tempdir().unwrap();
        let target = other.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let planted = other.path().join("logs");
        std::fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(&target, planted.join(FILE)).unwrap();
        let err = RequestLog::open(&planted, DEFAULT_MAX_BYTES, Box::new(|_| {})).unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err}");
        // a dangling one too (O_EXCL does not create through it)
        std::fs::remove_file(&target).unwrap();
        assert!(RequestLog::open(&planted, DEFAULT_MAX_BYTES, Box::new(|_| {})).is_err());
        assert!(!target.exists());

        // a readable-by-others file is refused, not used
        let loose = tempfile::tempdir().unwrap();
        std::fs::write(loose.path().join(FILE), b"").unwrap();
        std::fs::set_permissions(
            loose.path().join(FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = RequestLog::open(loose.path(), DEFAULT_MAX_BYTES, Box::new(|_| {})).unwrap_err();
        assert!(matches!(err, Error::InsecurePermissions { .. }), "{err}");
    }

    #[test]
    fn discard_records_nothing() {
        let log = RequestLog::discard();
        log.record(entry("r", None, Some(200)));
        log.sync();
        assert_eq!(log.query(&Filter::default()).unwrap(), (Vec::new(), 0));
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn reading_backwards_handles_long_lines_and_chunk_edges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let long = "y".repeat(3 * CHUNK as usize + 7);
        std::fs::write(&p, format!("a\n{long}\n\nb\npartial")).unwrap();
        let mut r = RevLines::new(File::open(&p).unwrap()).unwrap();
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(got, vec!["b".to_string(), String::new(), long, "a".into()]);
    }
}
