//! mitmproxy as a peer in the same run: `mitmdump` in regular (forward
//! proxy) mode on a free loopback port, with a one-line addon that sets
//! the same header, its CA and configuration in a private temporary
//! directory (never `~/.mitmproxy`), trusting the upstream's CA on its
//! upstream leg. Stopped (killed and reaped) when dropped, and ended with
//! a killed `authsome` (parent-death signal).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long mitmdump may take to start (Python imports, CA generation).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The hint when `mitmdump` is missing.
pub const INSTALL_HINT: &str = "install mitmproxy (`pipx install mitmproxy` or `pip install mitmproxy`) so that `mitmdump` is on PATH";

/// `mitmdump` in one of `path`'s directories (a `PATH` value), if any.
pub fn find(path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|d| d.join("mitmdump"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A private temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new directory (mode 700) under the system's temporary directory.
    pub fn new(prefix: &str) -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let mut r = [0u8; 8];
        crate::secret::fill_random(&mut r)?;
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io_at("cannot create", &dir, e))?;
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A running mitmdump.
#[derive(Debug)]
pub struct MitmDump {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its CA, PEM (what its clients trust).
    pub ca_pem: String,
    /// `mitmdump --version`'s first line, e.g. `Mitmproxy: 11.0.2`.
    pub version: String,
    _dir: TempDir,
}

impl Drop for MitmDump {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("cannot find a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("cannot find a free port", e))
}

/// The version `bin` reports.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "mitmproxy".into())
}

impl MitmDump {
    /// Starts `bin` with an addon that sets `header: value` on every
    /// request, trusting `upstream_ca_pem` (when given) for its upstream
    /// leg; waits until it listens.
    pub fn start(
        bin: &Path,
        header: &http::HeaderName,
        value: &str,
        upstream_ca_pem: Option<&str>,
    ) -> Result<MitmDump> {
        // The header is a token and the value hex: nothing to escape.
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::invalid("the bench value must be plain", None));
        }
        let dir = TempDir::new("authsome-bench-mitmproxy")?;
        let addon = dir.path().join("inject.py");
        std::fs::write(
            &addon,
            format!(
                "def request(flow): flow.request.headers[\"{}\"] = \"{value}\"\n",
                header.as_str()
            ),
        )
        .map_err(|e| Error::io_at("cannot write", &addon, e))?;
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--listen-host", "127.0.0.1", "--listen-port"])
            .arg(port.to_string())
            .arg("--set")
            .arg(format!("confdir={}", dir.path().display()))
            .arg("-s")
            .arg(&addon)
            .arg("-q");
        if let Some(pem) = upstream_ca_pem {
            let ca = dir.path().join("upstream-ca.pem");
            std::fs::File::create(&ca)
                .and_then(|mut f| f.write_all(pem.as_bytes()))
                .map_err(|e| Error::io_at("cannot write", &ca, e))?;
            cmd.arg("--set")
                .arg(format!("ssl_verify_upstream_trusted_ca={}", ca.display()));
        }
        let log = dir.path().join("mitmdump.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| Error::io_at("cannot write", &log, e))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| Error::io_at("cannot write", &log, e))?;
        // A killed `authsome bench` takes mitmdump with it (SIGTERM when
        // the thread that started it ends); `Drop` covers every other exit.
        crate::sandbox::end_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {}", bin.display()), e))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut m = MitmDump {
            child,
            addr,
            ca_pem: String::new(),
            version: version(bin),
            _dir: dir,
        };
        let ca_file = m._dir.path().join("mitmproxy-ca-cert.pem");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(Error::io(
                    format!("mitmdump exited ({status}) before it listened"),
                    std::io::Error::other(out.trim().to_string()),
                ));
            }
            if let Ok(pem) = std::fs::read_to_string(&ca_file)
                && pem.contains("END CERTIFICATE")
                && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                m.ca_pem = pem;
                return Ok(m);
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(Error::io(
                    "mitmdump did not listen within 60 s",
                    std::io::Error::other(std::fs::read_to_string(&log).unwrap_or_default()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
