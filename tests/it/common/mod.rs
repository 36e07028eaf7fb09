//! Fixtures: a temporary home and a fluent builder around the real binary.
//!
//! ```ignore
//! let home = TestHome::new();
//! home.cmd(["login", "openai", "--with-api-key"]).stdin("sk-…").run().success();
//! ```

pub mod lab;
pub mod oauth_server;
pub mod upstream;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../../support/postgres.rs"]
pub mod postgres;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authsome")
}

/// A temporary `AUTHSOME_HOME` (inside a temporary directory, so tests can
/// also look at the parent or swap the home out).
pub struct TestHome {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    /// Variables every command of this home gets (e.g. a shared store).
    pub extra: std::sync::Mutex<Vec<(String, String)>>,
}

impl TestHome {
    pub fn new() -> TestHome {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        TestHome {
            dir,
            home,
            extra: Default::default(),
        }
    }

    /// A command running `authsome ARGS` against this home, keyring off, and
    /// its daemon on a free port (`AUTHSOME_PORT=0`) so tests never collide.
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut c = Cmd::new(args)
            .env("AUTHSOME_HOME", self.home.to_str().unwrap())
            .env("AUTHSOME_PORT", "0");
        for (k, v) in self.extra.lock().unwrap().iter() {
            c = c.env(k, v);
        }
        c
    }

    /// `daemon.json` of this home's running daemon.
    pub fn daemon(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(self.home.join("daemon.json")).ok()?).ok()
    }

    /// The running daemon's URL (panics when none runs).
    pub fn daemon_url(&self) -> String {
        self.daemon().expect("no daemon.json")["url"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Stops this home's daemon through the CLI.
    pub fn stop_daemon(&self) {
        self.cmd(["daemon", "stop"]).run().success();
    }

    /// Stores an API key through the CLI.
    pub fn login(&self, provider: &str, key: &str) -> Out {
        self.cmd(["login", provider, "--with-api-key"])
            .stdin(key)
            .run()
            .success()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        // Never leave a daemon behind: SIGTERM by pid (works for daemons run as nobody too).
        if let Some(d) = self.daemon()
            && let Some(pid) = d["pid"].as_u64()
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A minimal HTTP/1.1 client over a raw socket, so tests control every header.
/// Returns (status, headers, body).
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {authority}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A configured invocation of the binary.
pub struct Cmd {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    stdin: Option<Vec<u8>>,
    wrap: Vec<String>,
    binary_last: bool,
}

impl Cmd {
    pub fn new<I, S>(args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut env = BTreeMap::new();
        env.insert("AUTHSOME_KEYRING".into(), "off".into());
        env.insert("NO_COLOR".into(), "1".into());
        Cmd {
            args: args.into_iter().map(|s| s.as_ref().to_string()).collect(),
            env,
            stdin: None,
            wrap: Vec::new(),
            binary_last: false,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn env_remove(mut self, k: &str) -> Cmd {
        self.env.remove(k);
        self
    }

    pub fn stdin(mut self, s: &str) -> Cmd {
        self.stdin = Some(s.as_bytes().to_vec());
        self
    }

    /// Runs through a wrapper, e.g. `["setpriv", "--reuid=65534", …, "--"]`.
    pub fn wrapped<I, S>(mut self, prefix: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.wrap = prefix.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// With `wrapped`, pass the binary path after the arguments (for `sh -c '…"$0"…' BIN`).
    pub fn binary_last(mut self) -> Cmd {
        self.binary_last = true;
        self
    }

    pub fn run(self) -> Out {
        let (prog, args): (String, Vec<String>) = if self.wrap.is_empty() {
            (bin().into(), self.args.clone())
        } else if self.binary_last {
            let mut v = self.wrap.clone();
            v.extend(self.args.clone());
            v.push(bin().into());
            (v.remove(0), v)
        } else {
            let mut v = self.wrap.clone();
            v.push(bin().into());
            v.extend(self.args.clone());
            (v.remove(0), v)
        };
        let mut c = Command::new(&prog);
        c.args(&args).env_clear();
        for k in ["PATH", "HOME", "TMPDIR", "LANG"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.envs(&self.env);
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {prog}: {e}"));
        if let Some(input) = &self.stdin {
            // The command may exit before reading its input (an early error): a broken pipe is fine.
            let _ = child.stdin.take().unwrap().write_all(input);
        }
        let o = child.wait_with_output().unwrap();
        Out {
            args: self.args,
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(self) -> Out {
        assert_eq!(
            self.code,
            0,
            "`authsome {}` failed:\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn code(self, code: i32) -> Out {
        assert_eq!(
            self.code,
            code,
            "`authsome {}`: expected exit {code}\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stderr_has(self, s: &str) -> Out {
        assert!(
            self.stderr.contains(s),
            "stderr of `authsome {}` lacks {s:?}:\n{}",
            self.args.join(" "),
            self.stderr
        );
        self
    }

    pub fn stdout_has(self, s: &str) -> Out {
        assert!(
            self.stdout.contains(s),
            "stdout of `authsome {}` lacks {s:?}:\n{}",
            self.args.join(" "),
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Mode bits of a path.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o777
}

/// A unique, greppable canary value with the given prefix.
pub fn canary(prefix: &str) -> String {
    use std::io::Read;
    let mut b = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}{hex}")
}
