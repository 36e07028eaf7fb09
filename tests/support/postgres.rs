//! A throwaway PostgreSQL server for tests: Debian's binaries, a data
//! directory in a temp dir, a free loopback port, stopped and removed on
//! drop. Shared (through `#[path]`) by the unit tests in `src` and the
//! integration tests in `tests/it`.
//!
//! `initdb` refuses to run as root, and CI runs as root: there, every
//! PostgreSQL command runs as `nobody` (uid 65534) through `setpriv`.
//! `initdb` runs once per test binary into a template that each server
//! copies.
//!
//! With no PostgreSQL installed the tests say so and pass, unless
//! `AUTHSOME_TEST_REQUIRE_POSTGRES=1` (set by `.ci/run`), where that fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const NOBODY: u32 = 65534;
const USER: &str = "authsome";

/// A running PostgreSQL server.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

fn bin_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AUTHSOME_TEST_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// A command run as `nobody` when we are root (PostgreSQL refuses root).
fn as_owner(exe: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    c.env_remove("PGDATA").env("LC_ALL", "C");
    c
}

/// A command for a PostgreSQL binary.
fn pg_cmd(bin: &Path, name: &str) -> Command {
    as_owner(bin.join(name))
}

fn run(mut c: Command, what: &str) -> Output {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory `nobody` owns (when we are root), under a parent it can enter.
fn owned_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

fn open_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn remove_dead_templates() {
    let Ok(dir) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("authsome-pgtpl-") else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let dead = match pid {
            Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
            None => true, // from before the pid was in the name
        };
        if dead {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The template data directory, made once per test binary.
fn template(bin: &Path) -> &'static Path {
    static TPL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &TPL.get_or_init(|| {
        // A static is never dropped: the template of a test binary that
        // ended is removed by the next one (its pid is in the name).
        remove_dead_templates();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("authsome-pgtpl-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .unwrap();
        open_dir(tmp.path());
        let data = tmp.path().join("data");
        owned_dir(&data);
        let mut c = pg_cmd(bin, "initdb");
        c.arg("-D").arg(&data).args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        run(c, "initdb");
        (tmp, data)
    })
    .1
}

impl Postgres {
    /// Starts a server, or `None` (with a notice) when PostgreSQL is not
    /// installed and not required.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            if std::env::var("AUTHSOME_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is required (AUTHSOME_TEST_REQUIRE_POSTGRES=1) but no /usr/lib/postgresql/*/bin/initdb was found"
                );
            }
            eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let tpl = template(&bin);
        let tmp = tempfile::Builder::new()
            .prefix("authsome-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        open_dir(tmp.path());
        let dir = tmp.path().join("pg");
        owned_dir(&dir);
        // copy the template as its owner, keeping modes
        let mut c = as_owner("cp");
        c.arg("-a").arg(tpl).arg(dir.join("data"));
        run(c, "copy the template cluster");
        let mut c = as_owner("mkdir");
        c.arg(dir.join("sock"));
        run(c, "create the socket directory");
        let mut pg = Postgres {
            bin,
            dir,
            port: 0,
            _tmp: tmp,
        };
        let mut last = String::new();
        for _attempt in 0..3 {
            pg.port = free_port();
            match pg.try_start() {
                Ok(()) => return Some(pg),
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn try_start(&self) -> Result<(), String> {
        let mut c = pg_cmd(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c max_connections=60 -c shared_buffers=16MB",
                self.port,
                self.dir.join("sock").display()
            ))
            .arg("start");
        let out = c.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            ))
        }
    }

    /// Starts it again after [`Postgres::stop`], on the same port.
    pub fn restart(&self) {
        self.try_start().expect("PostgreSQL restarts");
    }

    /// Stops the server (fast shutdown: sessions are cut).
    pub fn stop(&self) {
        let mut c = pg_cmd(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "60", "-m", "fast", "stop"]);
        let _ignored = c.stdin(Stdio::null()).output();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store URL of the `postgres` database (trust authentication on loopback).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL through `psql`; its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let mut c = pg_cmd(&self.bin, "psql");
        c.args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            USER,
            "-d",
            "postgres",
            "-p",
        ])
        .arg(self.port.to_string())
        .arg("-c")
        .arg(sql);
        String::from_utf8(run(c, "psql").stdout).unwrap()
    }

    /// `pg_dump` of the database, as text.
    pub fn dump(&self) -> String {
        let mut c = pg_cmd(&self.bin, "pg_dump");
        c.args(["-h", "127.0.0.1", "-U", USER, "-d", "postgres", "-p"])
            .arg(self.port.to_string());
        String::from_utf8(run(c, "pg_dump").stdout).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut c = pg_cmd(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "30", "-m", "immediate", "stop"]);
        let _ignored = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
