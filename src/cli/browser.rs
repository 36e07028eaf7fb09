//! The browser of a browser-session login (`authsome login linkedin-browser`).
//!
//! The CLI, not the daemon, runs it: the browser belongs on the user's
//! desktop, and the daemon may have no display. It is Chromium or Chrome
//! (`AUTHSOME_BROWSER`, else the first of [`CANDIDATES`] on `PATH`) with a
//! fresh profile in a private temporary directory (0700), opened at the
//! provider's `entry_url`. The user signs in; every second the CLI asks the
//! browser, over the DevTools protocol, for its cookies, until every cookie
//! the provider names exists for one of its domains. Then the browser is
//! closed and the profile removed (also on timeout, Ctrl-C, SIGTERM and when
//! the user closes the window), and the cookies go to the daemon like an
//! API key does (`resume`). No other cookie is read; values are
//! [`Secret`]s from the moment they are parsed and are never printed.
//!
//! The DevTools protocol runs over `--remote-debugging-pipe`: JSON messages
//! ending in a NUL byte, commands on the browser's fd 3, answers on its fd 4
//! (no port, so no other local program can drive this browser).
//!
//! As root, Chromium refuses to start with its sandbox; the browser then
//! runs with `--no-sandbox`, and the CLI says so.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::error::Error;
use crate::providers::schema::BrowserSpec;
use crate::secret::Secret;

/// Browsers looked for on `PATH`, in order.
pub const CANDIDATES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// How often the cookies are read.
const POLL: Duration = Duration::from_secs(1);
/// How long a closed browser may take to exit before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The longest DevTools message accepted (a page full of cookies is far less).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The session cookies read from the browser.
#[derive(Debug, Default)]
pub struct Captured {
    pub cookies: BTreeMap<String, Secret<String>>,
    /// Expiry (unix seconds) of the cookies that have one.
    pub expires: BTreeMap<String, i64>,
}

/// How a capture ended without cookies.
#[derive(Debug)]
pub enum Ended {
    /// Ctrl-C or a termination signal.
    Interrupted,
    /// Anything else, said for the user.
    Failed(Error),
}

impl From<Error> for Ended {
    fn from(e: Error) -> Self {
        Ended::Failed(e)
    }
}

/// The browser to run: `AUTHSOME_BROWSER`, else the first candidate on
/// `PATH`. Checked before anything else so a machine without one fails
/// before a login session starts.
pub fn find() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("AUTHSOME_BROWSER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(Error::invalid(
                format!("AUTHSOME_BROWSER is `{}`, which is not a file", p.display()),
                Some("point it at a Chromium or Chrome executable, or unset it".into()),
            ));
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in CANDIDATES {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Unsupported {
        message: "this login needs Chromium or Chrome on this machine, and none was found".into(),
        hint: Some(format!(
            "install Chromium (or Chrome), or set AUTHSOME_BROWSER to its path (looked for {} on PATH)",
            CANDIDATES.join(", ")
        )),
    })
}

/// True when the browser can show a window here: always on macOS; on
/// other systems when a display is set. An explicit `AUTHSOME_BROWSER` is
/// trusted to know (a wrapper may run it headless).
pub fn has_display() -> bool {
    cfg!(target_os = "macos")
        || std::env::var_os("AUTHSOME_BROWSER").is_some_and(|p| !p.is_empty())
        || std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
}

/// True when this process runs as root (Chromium then needs `--no-sandbox`).
pub fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `browser` at the provider's `entry_url` until its cookies exist,
/// `timeout` passes, or the user gives up. `progress` is called about once
/// a second with the time left.
pub async fn capture(
    browser: &Path,
    spec: &BrowserSpec,
    timeout: Duration,
    mut progress: impl FnMut(Duration),
) -> Result<Captured, Ended> {
    let entry = spec.entry_url.clone().unwrap_or_default();
    let profile = Profile::create()?;
    let (to_browser_r, to_browser_w) =
        std::io::pipe().map_err(|e| Error::io("cannot create a pipe", e))?;
    let (from_browser_r, from_browser_w) =
        std::io::pipe().map_err(|e| Error::io("cannot create a pipe", e))?;
    let mut cmd = tokio::process::Command::new(browser);
    cmd.arg(format!("--user-data-dir={}", profile.0.display()))
        .args([
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-sync",
            "--password-store=basic",
            "--new-window",
        ]);
    if as_root() {
        cmd.arg("--no-sandbox");
    }
    cmd.arg(&entry)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let fds = crate::sandbox::pass_fds_3_4(
        &mut cmd,
        OwnedFd::from(to_browser_r),
        OwnedFd::from(from_browser_w),
    )
    .map_err(|e| Error::io("cannot pass the DevTools pipe to the browser", e))?;
    let mut child = cmd.spawn().map_err(|e| {
        Error::invalid(
            format!("cannot start {}: {e}", browser.display()),
            Some("set AUTHSOME_BROWSER to a working Chromium or Chrome".into()),
        )
    })?;
    drop(fds);
    let mut cdp = Cdp {
        tx: pipe::Sender::from_owned_fd(OwnedFd::from(to_browser_w))
            .map_err(|e| Error::io("cannot open the DevTools pipe", e))?,
        rx: pipe::Receiver::from_owned_fd(OwnedFd::from(from_browser_r))
            .map_err(|e| Error::io("cannot open the DevTools pipe", e))?,
        buf: zeroize::Zeroizing::new(Vec::new()),
        next: 0,
    };
    let result = wait_for_cookies(&mut cdp, &mut child, spec, timeout, &mut progress).await;
    // Close the browser: politely, then by force.
    let _ =
        tokio::time::timeout(Duration::from_secs(2), cdp.call("Browser.close", json!({}))).await;
    if tokio::time::timeout(CLOSE_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    drop(cdp);
    drop(profile);
    result
}

/// The browser's fresh profile: a new directory (0700, created, never
/// reused: an existing path is an error) under the temporary directory,
/// removed when dropped, on every way out of [`capture`].
struct Profile(PathBuf);

impl Profile {
    fn create() -> Result<Profile, Error> {
        use std::os::unix::fs::DirBuilderExt;
        let mut b = [0u8; 12];
        crate::secret::fill_random(&mut b)?;
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let path = std::env::temp_dir().join(format!("authsome-browser-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::io("cannot create the browser's profile directory", e))?;
        Ok(Profile(path))
    }
}

impl Drop for Profile {
    /// Its helper processes may still be writing for a moment after the
    /// browser exits, so a failed removal is retried.
    fn drop(&mut self) {
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(path = %self.0.display(), "cannot remove the browser profile");
        eprintln!(
            "warning: could not remove the browser profile {}; delete it by hand",
            self.0.display()
        );
    }
}

async fn wait_for_cookies(
    cdp: &mut Cdp,
    child: &mut tokio::process::Child,
    spec: &BrowserSpec,
    timeout: Duration,
    progress: &mut impl FnMut(Duration),
) -> Result<Captured, Ended> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::io("cannot watch for termination", e))?;
    let mut hup =
        signal(SignalKind::hangup()).map_err(|e| Error::io("cannot watch for hang-ups", e))?;
    let deadline = Instant::now() + timeout;
    let poll = async {
        loop {
            progress(deadline.saturating_duration_since(Instant::now()));
            if let Some(found) = read_session(cdp, spec).await? {
                return Ok(found);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::invalid(
                    format!("the browser closed ({status}) before the sign-in completed"),
                    Some("run the command again and sign in in the window it opens".into()),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        r = tokio::time::timeout(timeout, poll) => match r {
            Ok(r) => r.map_err(Ended::Failed),
            Err(_) => Err(Ended::Failed(Error::expired(
                format!("nobody signed in within {} s", timeout.as_secs()),
                Some("run the command again (add --timeout SECONDS for more time)".into()),
            ))),
        },
        _ = tokio::signal::ctrl_c() => Err(Ended::Interrupted),
        _ = term.recv() => Err(Ended::Interrupted),
        _ = hup.recv() => Err(Ended::Interrupted),
    }
}

/// The provider's cookies, once all of them exist for its domains.
async fn read_session(cdp: &mut Cdp, spec: &BrowserSpec) -> Result<Option<Captured>, Error> {
    let answer = cdp.call("Storage.getCookies", json!({})).await?;
    let mut out = Captured::default();
    let empty = Vec::new();
    let all = answer
        .get("cookies")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for c in all {
        let (Some(name), Some(value), Some(domain)) = (
            c.get("name").and_then(Value::as_str),
            c.get("value").and_then(Value::as_str),
            c.get("domain").and_then(Value::as_str),
        ) else {
            continue;
        };
        if value.is_empty()
            || !spec.cookies.iter().any(|n| n == name)
            || !spec.covers_domain(domain)
            || out.cookies.contains_key(name)
        {
            continue;
        }
        out.cookies
            .insert(name.to_string(), Secret::new(value.to_string()));
        let session = c.get("session").and_then(Value::as_bool).unwrap_or(false);
        if let Some(exp) = c.get("expires").and_then(Value::as_f64)
            && !session
            && exp > 0.0
        {
            out.expires.insert(name.to_string(), exp as i64);
        }
    }
    Ok(spec
        .cookies
        .iter()
        .all(|n| out.cookies.contains_key(n))
        .then_some(out))
}

/// A DevTools protocol connection over the browser's pipe.
struct Cdp {
    tx: pipe::Sender,
    rx: pipe::Receiver,
    /// Bytes read and not yet a whole message (zeroized: cookie values pass through).
    buf: zeroize::Zeroizing<Vec<u8>>,
    next: u64,
}

impl Cdp {
    /// Sends `method` to the browser target and returns its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next += 1;
        let id = self.next;
        let mut msg = serde_json::to_vec(&json!({"id": id, "method": method, "params": params}))
            .map_err(|e| Error::invalid(format!("cannot encode a DevTools command: {e}"), None))?;
        msg.push(0);
        let gone = |e: std::io::Error| Error::io("the browser's DevTools pipe closed", e);
        self.tx.write_all(&msg).await.map_err(gone)?;
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == 0) {
                let frame = zeroize::Zeroizing::new(self.buf.drain(..=end).collect::<Vec<u8>>());
                let Ok(v) = serde_json::from_slice::<Value>(&frame[..frame.len() - 1]) else {
                    continue;
                };
                if v.get("id").and_then(Value::as_u64) != Some(id) {
                    continue; // an event, or an answer nobody waits for
                }
                if let Some(err) = v.get("error") {
                    return Err(Error::invalid(
                        format!(
                            "the browser refused {method}: {}",
                            err.get("message").and_then(Value::as_str).unwrap_or("?")
                        ),
                        None,
                    ));
                }
                return Ok(v.get("result").cloned().unwrap_or(Value::Null));
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(Error::invalid(
                    "the browser sent an oversized message",
                    None,
                ));
            }
            let mut chunk = zeroize::Zeroizing::new([0u8; 64 * 1024]);
            let n = self.rx.read(&mut chunk[..]).await.map_err(gone)?;
            if n == 0 {
                return Err(gone(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
