//! `authsome doctor --clients`: the real clients of this machine (curl,
//! Python, Node, git; installed by `.ci/run`) go through a real
//! `authsome run` against doctor's own local endpoint, in a private home
//! that leaves no trace in the user's; broken clients (a `curl` wrapper that
//! skips the proxy, one that trusts no CA) are named with their hint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{Out, TestHome};
use crate::proxy_clients::available;

const NODE_MODULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/node/node_modules"
);

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // A directory made there counts as a change too.
                out.insert(p.clone(), b"<dir>".to_vec());
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// A user home with a connection (and its daemon stopped, as `doctor`
/// finds it), and a private TMPDIR to prove the check cleans up.
struct Setup {
    home: TestHome,
    tmp: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let home = TestHome::new();
        home.login("openai", &format!("sk-{}", "a".repeat(40)));
        let pid = home.daemon().unwrap()["pid"].as_u64().unwrap();
        home.stop_daemon();
        // `daemon stop` returns once the daemon stops answering; its last
        // writes (log, vault) end when the process does.
        // (A zombie has exited too: no init may have reaped it yet.)
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        };
        for _ in 0..1000 {
            if gone() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(gone(), "the daemon (pid {pid}) did not exit");
        let tmp = home.dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        Setup { home, tmp }
    }

    /// The `$HOME` the doctor runs with (the clients' own caches, such as
    /// Go's or pip's, must not land there either).
    fn user_home(&self) -> PathBuf {
        let h = self.home.dir.path().join("user-home");
        std::fs::create_dir_all(h.join(".config")).unwrap();
        std::fs::write(h.join(".config/keep"), "x").unwrap();
        h
    }

    /// `doctor --clients --json` with `path_first` ahead of PATH.
    fn doctor(&self, path_first: Option<&Path>) -> Out {
        let path = std::env::var("PATH").unwrap_or_default();
        let path = match path_first {
            Some(d) => format!("{}:{path}", d.display()),
            None => path,
        };
        self.home
            .cmd(["doctor", "--clients", "--json"])
            .env("PATH", &path)
            .env("TMPDIR", self.tmp.to_str().unwrap())
            .env("HOME", self.user_home().to_str().unwrap())
            .env("NODE_PATH", NODE_MODULES)
            .run()
    }

    /// A `curl` that runs the real one after `prefix` (shell words).
    fn curl_wrapper(&self, prefix: &str, args: &str) -> PathBuf {
        let real = String::from_utf8(
            std::process::Command::new("sh")
                .args(["-c", "command -v curl"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let bin = self.home.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let f = bin.join("curl");
        std::fs::write(
            &f,
            format!("#!/bin/sh\n{prefix} exec {} {args} \"$@\"\n", real.trim()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }
}

fn client<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["clients"]
        .as_array()
        .expect("clients array")
        .iter()
        .find(|c| c["client"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v:#}"))
}

fn assert_ok(v: &serde_json::Value, name: &str) {
    let c = client(v, name);
    assert_eq!(c["status"], "ok", "{name}: {c:#}");
    assert_eq!(c["proxy"], true, "{name}: {c:#}");
    assert_eq!(c["ca"], true, "{name}: {c:#}");
    assert_eq!(c["credential"], true, "{name}: {c:#}");
}

#[test]
fn installed_clients_get_the_credential_and_the_home_is_untouched() {
    let s = Setup::new();
    let before = snapshot(&s.home.home);
    let user_before = snapshot(&s.user_home());
    let out = s.doctor(None);
    let v = out.json();
    assert_ok(&v, "curl");
    assert_ok(&v, "git");
    assert_ok(&v, "python urllib");
    if available(&["python3", "-c", "import requests"]) {
        assert_ok(&v, "python requests");
    }
    if available(&["python3", "-c", "import httpx"]) {
        assert_ok(&v, "python httpx");
    }
    if available(&["node", "-e", "require.resolve('undici')"]) {
        assert_ok(&v, "node undici");
    }
    if available(&["go", "version"]) {
        assert_ok(&v, "go net/http");
    }
    // Node's built-in fetch uses the proxy from Node 24 on (with the
    // NODE_USE_ENV_PROXY that `run` sets); before, it goes direct, which
    // doctor reports as a known limitation with the way around it.
    if available(&["node", "--version"]) {
        let fetch = client(&v, "node fetch");
        let major: u32 = fetch["version"]
            .as_str()
            .and_then(|s| s.strip_prefix("node "))
            .and_then(|s| s.split('.').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{fetch:#}"));
        if major >= 24 {
            assert_ok(&v, "node fetch");
        } else {
            assert_eq!(fetch["status"], "warn", "{fetch:#}");
            assert_eq!(fetch["problem"], "bypassed_proxy", "{fetch:#}");
            assert_eq!(fetch["proxy"], false, "{fetch:#}");
            assert!(
                fetch["hint"]
                    .as_str()
                    .unwrap()
                    .contains("EnvHttpProxyAgent"),
                "{fetch:#}"
            );
        }
    }
    let failed: Vec<_> = v["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Progress went to stderr, one line per client.
    assert!(out.stderr.contains("curl: ok"), "{}", out.stderr);
    // The user's home: not one byte changed, no daemon started; the
    // private home and the runs' temp dirs are gone.
    let after = snapshot(&s.home.home);
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "doctor --clients changed {changed:?}");
    assert_eq!(
        user_before,
        snapshot(&s.user_home()),
        "doctor --clients wrote to $HOME"
    );
    assert!(s.home.daemon().is_none());
    let left: Vec<_> = std::fs::read_dir(&s.tmp).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let shown = s.home.cmd(["provider", "show", "doctor-check"]).run();
    assert_ne!(
        shown.code, 0,
        "the check's provider leaked: {}",
        shown.stdout
    );
}

#[test]
fn a_curl_that_skips_the_proxy_is_reported_with_its_hint() {
    let s = Setup::new();
    let bin = s.curl_wrapper("", "--noproxy '*'");
    let out = s.doctor(Some(&bin));
    let v = out.json();
    let c = client(&v, "curl");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert_eq!(c["problem"], "bypassed_proxy", "{c:#}");
    assert_eq!(c["proxy"], false, "{c:#}");
    assert_eq!(c["credential"], false, "{c:#}");
    assert!(c["hint"].as_str().unwrap().contains("noproxy"), "{c:#}");
    // A found client that fails is a failure of doctor (exit 1).
    assert_eq!(v["ok"], false);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("curl: FAILED"), "{}", out.stderr);
    assert!(std::fs::read_dir(&s.tmp).unwrap().next().is_none());
}

#[test]
fn a_curl_without_the_runs_ca_is_reported_with_its_hint() {
    let s = Setup::new();
    // A bundle that holds another CA only (as a `cacert` in ~/.curlrc would).
    let other = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/test-ca.pem");
    let bin = s.curl_wrapper(&format!("CURL_CA_BUNDLE={other}"), "");
    let out = s.doctor(Some(&bin));
    let v = out.json();
    let c = client(&v, "curl");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert_eq!(c["problem"], "ca_not_trusted", "{c:#}");
    assert_eq!(c["proxy"], true, "{c:#}");
    assert_eq!(c["ca"], false, "{c:#}");
    assert_eq!(c["credential"], false, "{c:#}");
    assert!(
        c["hint"].as_str().unwrap().contains("CURL_CA_BUNDLE"),
        "{c:#}"
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
}
