//! `authsome run`'s sandbox, tried as a hostile agent would from inside it
//! (issue #9): every way to a secret must fail, the canary must appear in
//! nothing the child could capture, and the same run still gets exactly one
//! credential through the proxy. The matrix runs as the test's user (root in
//! CI) and as an unprivileged user with its own home (`setpriv`).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::lab::Lab;
use crate::common::{Cmd, Out, bin, canary};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// The lab, with every command run as `user` (None: as the test itself).
struct Agent {
    lab: Lab,
    user: Option<u32>,
    /// The passphrase the daemon was started with (AUTHSOME_MASTER_KEY).
    master: String,
}

impl Agent {
    fn new(user: Option<u32>) -> Agent {
        let lab = Lab::bare();
        if let Some(uid) = user {
            // The unprivileged user's own home: the temp dir is theirs.
            chown_r(lab.home.dir.path(), uid);
        }
        let a = Agent {
            lab,
            user,
            master: canary("MKCANARY_"),
        };
        // The daemon holds the master key in its environment from the start.
        a.cmd(&["daemon", "start"]).run().success();
        let f = a.lab.home.dir.path().join("acme.json");
        std::fs::write(
            &f,
            format!(
                r#"{{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test:{}"],"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}},"export":{{"ACME_API_KEY":"api_key"}}}}"#,
                a.lab.up.port
            ),
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        a.cmd(&["provider", "register", f.to_str().unwrap()])
            .run()
            .success();
        a.cmd(&["login", "acme", "--with-api-key"])
            .stdin(&a.lab.key)
            .run()
            .success();
        a
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        let c = self
            .lab
            .cmd(args)
            .env("AUTHSOME_MASTER_KEY", &self.master)
            .env("AUTHSOME_RUN_GRACE", "2");
        match self.user {
            Some(uid) => c.wrapped([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".to_string(),
            ]),
            None => c,
        }
    }

    fn run_sh(&self, flags: &[&str], script: &str) -> Out {
        let mut args = vec!["run"];
        args.extend(flags);
        args.extend(["--", "sh", "-c", script]);
        let d = self.lab.home.daemon().expect("daemon.json");
        self.cmd(&args)
            .env("URL", &self.lab.url(""))
            .env("UP", &self.lab.up.port.to_string())
            .env("BIN", bin())
            .env("DPID", &d["pid"].to_string())
            .env("DPORT", &d["port"].to_string())
            .env(
                "EVIL",
                self.lab.home.dir.path().join("evil.json").to_str().unwrap(),
            )
            .run()
    }
}

fn chown_r(p: &std::path::Path, uid: u32) {
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}"), p.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Each attack prints a marker line and what it got.
const ATTACKS: &str = r#"
echo "uid=$(id -u)"
for f in master.key identity.key vault.db vault.db-wal daemon.json run.sock proxy.token logs/authsome.log; do
  echo "== read $f"; cat "$AUTHSOME_HOME/$f" 2>&1 | head -c 300; echo
done
echo "== ls home"; ls -la "$AUTHSOME_HOME" 2>&1
echo "== write home"; echo x > "$AUTHSOME_HOME/planted" 2>&1 && echo WROTE
echo "== parent root"; cat "/proc/$PPID/root$AUTHSOME_HOME/master.key" 2>&1 | head -c 300; echo
echo "== parent root identity"; cat "/proc/$PPID/root$AUTHSOME_HOME/identity.key" 2>&1 | head -c 300; echo
echo "== daemon environ"; cat "/proc/$DPID/environ" 2>&1 | tr '\0' '\n' | head -c 2000; echo
echo "== daemon mem"; python3 - "$DPID" <<'PY' 2>&1
import ctypes, os, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
print("ptrace attach:", r, os.strerror(ctypes.get_errno()))
if r == 0:
    libc.ptrace(17, pid, None, 0)  # PTRACE_DETACH: leave the daemon running
try:
    with open(f"/proc/{pid}/mem", "rb") as m:
        print("mem open: OK")
except OSError as e:
    print("mem open:", e)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = iovec(0x400000, 64)
n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("process_vm_readv:", n, os.strerror(ctypes.get_errno()))
PY
echo "== export"; "$BIN" export acme --format env 2>&1
echo "== daemon api"; curl -sS -m 5 --noproxy '*' "http://127.0.0.1:$DPORT/api/health" 2>&1; echo
echo "== bypass"; curl -sS -m 5 --noproxy '*' --resolve "api.acme.test:$UP:127.0.0.1" "https://api.acme.test:$UP/bypass" 2>&1; echo
printf '{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["evil.test"],"api_key":{"header_name":"Authorization"}}' > /tmp/evil-$$.json
echo "== register"; "$BIN" provider register /tmp/evil-$$.json --force 2>&1; rm -f /tmp/evil-$$.json
echo "== proxied"; curl -sS -m 10 -o /dev/null -w '%{http_code}\n' "$URL/through-curl" 2>&1
echo "== python"; python3 -c "import urllib.request,os; print(urllib.request.urlopen(os.environ['URL'] + '/through-python', timeout=10).status)" 2>&1
echo "== end"
"#;

/// The section of `out` after `== name`.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no section {name} in:\n{out}"));
    let rest = &out[start + name.len() + 4..];
    &rest[..rest.find("\n== ").unwrap_or(rest.len())]
}

fn agent_reaches_no_secret(user: Option<u32>) {
    let a = Agent::new(user);
    let home = a.lab.home.home.clone();
    let secrets: Vec<String> = vec![
        a.lab.key.clone(),
        a.master.clone(),
        std::fs::read_to_string(home.join("identity.key"))
            .unwrap_or_default()
            .trim()
            .to_string(),
    ]
    .into_iter()
    .filter(|s| s.len() >= 16)
    .collect();
    assert!(secrets.len() >= 2, "the canaries are set up");
    let out = a.run_sh(&[], ATTACKS);
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "{all}");
    assert!(all.contains("== end"), "{all}");
    if user.is_some() {
        let uid = all
            .lines()
            .find_map(|l| l.strip_prefix("uid="))
            .unwrap_or("");
        assert!(!uid.is_empty() && uid != "0", "must not be root: {all}");
    }
    // No secret, in any form the child could have captured.
    for s in &secrets {
        for form in [
            s.clone(),
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s),
            s.chars().rev().collect::<String>(),
        ] {
            assert!(!all.contains(&form), "a secret reached the child:\n{all}");
        }
    }
    // Each attempt failed with an ordinary error, not an empty success.
    for f in [
        "master.key",
        "identity.key",
        "vault.db",
        "daemon.json",
        "run.sock",
    ] {
        let s = section(&all, &format!("read {f}"));
        assert!(
            s.contains("No such file") || s.contains("Permission denied"),
            "read {f}: {s}"
        );
    }
    assert!(!section(&all, "write home").contains("WROTE"), "{all}");
    assert!(!home.join("planted").exists());
    for s in ["parent root", "parent root identity"] {
        let got = section(&all, s);
        assert!(
            got.contains("Permission denied") || got.contains("No such file"),
            "{s}: {got}"
        );
    }
    assert!(
        section(&all, "daemon environ").contains("Permission denied"),
        "{all}"
    );
    let mem = section(&all, "daemon mem");
    assert!(!mem.contains("attach: 0"), "{mem}");
    assert!(!mem.contains("mem open: OK"), "{mem}");
    assert!(!mem.contains("process_vm_readv: 64"), "{mem}");
    let export = section(&all, "export");
    assert!(export.contains("error"), "export must fail: {export}");
    let api = section(&all, "daemon api");
    assert!(
        api.contains("curl: ("),
        "the daemon's API must be unreachable: {api}"
    );
    assert!(section(&all, "bypass").contains("curl: ("), "{all}");
    assert!(section(&all, "register").contains("error"), "{all}");
    // The same run still gets exactly one credential through the proxy.
    assert_eq!(section(&all, "proxied").trim(), "200", "{all}");
    assert_eq!(section(&all, "python").trim(), "200", "{all}");
    let recs = a.lab.up.records();
    let paths: Vec<&str> = recs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/through-curl", "/through-python"], "{all}");
    for r in &recs {
        assert_eq!(
            r.all("authorization"),
            vec![format!("Bearer {}", a.lab.key)]
        );
    }
    // The provider was not re-bound: a later run still injects for acme only.
    let st = a
        .cmd(&["provider", "show", "acme", "--json"])
        .run()
        .success();
    assert!(st.stdout.contains("api.acme.test"), "{}", st.stdout);
    assert!(!st.stdout.contains("evil.test"), "{}", st.stdout);
}

#[test]
fn a_confined_agent_reaches_no_secret() {
    agent_reaches_no_secret(None);
}

#[test]
fn a_confined_agent_reaches_no_secret_as_an_unprivileged_user() {
    if !is_root() {
        // Not root: the test's own user is already unprivileged (above).
        return;
    }
    agent_reaches_no_secret(Some(NOBODY));
}

#[test]
fn no_sandbox_warns_and_the_child_reaches_the_home() {
    let a = Agent::new(None);
    let out = a.run_sh(
        &["--no-sandbox"],
        "test -r \"$AUTHSOME_HOME/daemon.json\" && echo readable; curl -sS -m 5 --noproxy '*' -o /dev/null -w '%{http_code}\\n' \"http://127.0.0.1:$DPORT/api/health\"",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "readable\n200");
    assert_eq!(
        out.stderr.matches("warning:").count(),
        1,
        "one warning line: {}",
        out.stderr
    );
    assert!(out.stderr.contains("the sandbox is off"), "{}", out.stderr);
    assert!(out.stderr.contains("AUTHSOME_HOME"), "{}", out.stderr);
    // The same through the environment.
    let out = a
        .cmd(&[
            "run",
            "--",
            "sh",
            "-c",
            "test -r \"$AUTHSOME_HOME/daemon.json\" && echo readable",
        ])
        .env("AUTHSOME_SANDBOX", "off")
        .run();
    assert_eq!(out.stdout.trim(), "readable", "{out:?}");
    assert!(out.stderr.contains("the sandbox is off"));
    // A confined run says nothing.
    let out = a.run_sh(&[], "true");
    assert_eq!(out.code, 0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

/// Runs `authsome ARGS` in a user namespace whose limit on nested user
/// namespaces is 0: the kernel refuses the sandbox, for real.
fn without_user_namespaces(a: &Agent, args: &str) -> Out {
    let script = format!("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" {args}");
    a.cmd(&["-c", &script])
        .wrapped(["unshare", "--user", "--map-root-user", "sh"])
        .binary_last()
        .run()
}

#[test]
fn require_fails_clearly_when_the_kernel_cannot_confine() {
    let a = Agent::new(None);
    let out = without_user_namespaces(&a, "run --sandbox require -- sh -c 'echo started'");
    assert_eq!(out.code, 8, "{out:?}");
    assert!(!out.stdout.contains("started"), "{out:?}");
    assert!(
        out.stderr.contains("cannot confine the program"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("authsome doctor"), "{}", out.stderr);
    // auto: runs, unconfined, and says so once.
    let out = without_user_namespaces(
        &a,
        "run --sandbox auto -- sh -c 'test -r \"$AUTHSOME_HOME/daemon.json\" && echo unconfined'",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "unconfined");
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot confine the program"),
        "{}",
        out.stderr
    );
    // The documented test hook does the same without a user namespace.
    let out = a
        .cmd(&["run", "--sandbox", "require", "--", "true"])
        .env("AUTHSOME_SANDBOX_UNAVAILABLE", "1")
        .run();
    assert_eq!(out.code, 8, "{out:?}");
    let out = a
        .cmd(&["doctor", "--json"])
        .env("AUTHSOME_SANDBOX_UNAVAILABLE", "1")
        .run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["sandbox"]["user_namespaces"], false, "{v}");
    assert!(
        v["sandbox"]["applies"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // And on this kernel, as it is.
    let v: serde_json::Value =
        serde_json::from_str(&a.cmd(&["doctor", "--json"]).run().stdout).unwrap();
    assert_eq!(v["sandbox"]["user_namespaces"], true, "{v}");
    assert!(v["sandbox"]["landlock_abi"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["sandbox"]["applies"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn without_landlock_require_refuses_and_auto_warns() {
    // Namespaces alone would leave /proc/<pid>/root of the user's other
    // processes: not the promise, so `require` refuses and `auto` says so.
    let a = Agent::new(None);
    let out = a
        .cmd(&[
            "run",
            "--sandbox",
            "require",
            "--",
            "sh",
            "-c",
            "echo started",
        ])
        .env("AUTHSOME_SANDBOX_UNAVAILABLE", "landlock")
        .run();
    assert_eq!(out.code, 8, "{out:?}");
    assert!(!out.stdout.contains("started"));
    assert!(out.stderr.contains("Landlock"), "{}", out.stderr);
    let out = a
        .cmd(&[
            "run",
            "--sandbox",
            "auto",
            "--",
            "sh",
            "-c",
            "cat \"$AUTHSOME_HOME/identity.key\" 2>&1; echo started",
        ])
        .env("AUTHSOME_SANDBOX_UNAVAILABLE", "landlock")
        .run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("started"));
    assert!(
        out.stdout.contains("No such file"),
        "the namespaces still apply: {}",
        out.stdout
    );
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("partly confined"), "{}", out.stderr);
}

#[test]
fn the_childs_own_loopback_works_and_allow_localhost_opens_one_host_port() {
    let a = Agent::new(None);
    // A host service on loopback, outside the sandbox.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        for c in host.incoming().take(8) {
            let Ok(mut c) = c else { return };
            // Read the request head first: an HTTP client may not expect
            // an answer before it has sent its request.
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok();
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match std::io::Read::read(&mut c, &mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => break,
                }
            }
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nhost",
            );
        }
    });
    let script = format!(
        r#"
python3 -m http.server 18777 --bind 127.0.0.1 >/dev/null 2>&1 &
srv=$!
for i in $(seq 1 50); do curl -s --noproxy '*' -o /dev/null http://127.0.0.1:18777/ && break; sleep 0.1; done
echo "own=$(curl -sS -m 5 --noproxy '*' -o /dev/null -w '%{{http_code}}' http://127.0.0.1:18777/ 2>&1)"
kill $srv
echo "host=$(curl -sS -m 5 --noproxy '*' http://127.0.0.1:{host_port}/ 2>&1)"
echo "other=$(curl -sS -m 5 --noproxy '*' http://127.0.0.1:{other_port}/ 2>&1)"
echo "proxied-other=$(curl -sS -m 5 --noproxy '' http://127.0.0.1:{other_port}/ 2>&1)"
curl -sS -m 5 --noproxy '' -p http://localhost:{other_port}/ >/dev/null 2>&1; echo "tunnel-other=$?"
echo "proxied-allowed=$(curl -sS -m 5 --noproxy '' http://127.0.0.1:{host_port}/ 2>&1)"
"#
    );
    let port = host_port.to_string();
    let out = a.run_sh(&["--allow-localhost", &port], &script);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("own=200"), "{}", out.stdout);
    assert!(out.stdout.contains("host=host"), "{}", out.stdout);
    assert!(out.stdout.contains("\nother=curl: ("), "{}", out.stdout);
    // Nor through the proxy: the run's proxy reaches no local service for a
    // confined child but the allowed port.
    assert!(
        out.stdout
            .contains("proxied-other={\"error\":\"authsome_local_refused\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("tunnel-other=56"), "{}", out.stdout);
    assert!(
        out.stdout.contains("proxied-allowed=host"),
        "{}",
        out.stdout
    );
    drop(other);
    // The daemon's port is refused, with the reason.
    let dport = a.lab.home.daemon().unwrap()["port"].to_string();
    let out = a.run_sh(&["--allow-localhost", &dport], "echo started");
    assert_ne!(out.code, 0);
    assert!(!out.stdout.contains("started"));
    assert!(out.stderr.contains("daemon"), "{}", out.stderr);
}

#[test]
fn exit_codes_and_signals_still_pass_through_a_confined_run() {
    let a = Agent::new(None);
    assert_eq!(a.run_sh(&["--sandbox", "require"], "exit 7").code, 7);
    assert_eq!(
        a.run_sh(&["--sandbox", "require"], "kill -TERM $$").code,
        143
    );
    let out = a
        .cmd(&[
            "run",
            "--sandbox",
            "require",
            "--",
            "no-such-command-authsome",
        ])
        .run();
    assert_eq!(out.code, 127, "{out:?}");
    // Started inside the home, the child would keep it as its directory.
    let out = a
        .cmd(&["run", "--", "true"])
        .wrapped([
            "sh",
            "-c",
            &format!("cd {} && exec \"$@\"", a.lab.home.home.display()),
            "sh",
        ])
        .run();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("inside"), "{}", out.stderr);
}

#[test]
fn git_gets_the_credential_through_a_confined_run() {
    let a = Agent::new(None);
    let out = a.run_sh(
        &["--sandbox", "require"],
        "git ls-remote \"$URL/repo.git\" >/dev/null 2>&1; echo done",
    );
    assert_eq!(out.stdout.trim(), "done", "{out:?}");
    let recs = a.lab.up.records();
    assert!(!recs.is_empty(), "git reached the upstream: {out:?}");
    assert!(
        recs[0].path.starts_with("/repo.git/info/refs"),
        "{:?}",
        recs[0].path
    );
    for r in &recs {
        assert_eq!(
            r.all("authorization"),
            vec![format!("Bearer {}", a.lab.key)]
        );
    }
}

/// In a terminal (script(1) makes one), the child tries to type into it
/// with TIOCSTI: what it pushes would run in the user's shell, unconfined,
/// after it exits.
fn try_tiocsti(a: &Agent, flags: &str) -> String {
    let py = "import fcntl, termios\ntry:\n    fcntl.ioctl(0, termios.TIOCSTI, b\"#\")\n    print(\"INJECTED\")\nexcept OSError as e:\n    print(\"refused\", e.errno)\n";
    let file = a.lab.home.dir.path().join("tiocsti.py");
    std::fs::write(&file, py).unwrap();
    let cmdline = format!(
        "exec env AUTHSOME_HOME={} AUTHSOME_PORT=0 AUTHSOME_KEYRING=off AUTHSOME_MASTER_KEY={} {} run {flags} -- python3 {}",
        a.lab.home.home.display(),
        a.master,
        bin(),
        file.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_confined_child_cannot_type_into_the_users_terminal() {
    let a = Agent::new(None);
    let confined = try_tiocsti(&a, "--sandbox require");
    assert!(
        confined.contains("refused 1"),
        "TIOCSTI must fail with EPERM: {confined}"
    );
    assert!(!confined.contains("INJECTED"), "{confined}");
    // Unconfined it works on kernels that still allow TIOCSTI: what the
    // filter takes away (nothing to compare on kernels that forbid it).
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    if legacy && is_root() {
        let open = try_tiocsti(&a, "--no-sandbox");
        assert!(open.contains("INJECTED"), "{open}");
    }
}

#[test]
fn the_daemon_is_not_dumpable_and_writes_no_core_file_even_unconfined() {
    if !is_root() {
        return; // needs a second user to tell "not dumpable" from "same user"
    }
    let a = Agent::new(Some(NOBODY));
    let pid = a.lab.home.daemon().unwrap()["pid"].to_string();
    // The daemon runs as nobody, yet its /proc files belong to root: the
    // kernel's mark of a process that is not dumpable.
    use std::os::unix::fs::MetadataExt;
    let environ = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains(&format!("Uid:\t{NOBODY}")), "{status}");
    assert_eq!(environ.uid(), 0, "the daemon is dumpable");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() == 2,
        "{core}"
    );
    // An unconfined program of the same user cannot read its environment.
    let out = a.run_sh(&["--no-sandbox"], &format!("cat /proc/{pid}/environ"));
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    assert!(!out.stdout.contains(&a.master), "{out:?}");
}

#[test]
fn a_confined_child_reaches_none_of_the_users_session_services() {
    // Services of the user that listen on a socket named by a path: a
    // confined child that reached one could have it run a command outside
    // (systemd-run --user, tmux new-window, an editor's IPC).
    let a = Agent::new(None);
    let base = a.lab.home.dir.path();
    let runtime = base.join("runtime");
    let tmux = base.join("tmuxdir");
    let uid = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout)
        .trim()
        .to_string();
    std::fs::create_dir_all(runtime.join("systemd")).unwrap();
    std::fs::create_dir_all(tmux.join(format!("tmux-{uid}"))).unwrap();
    std::fs::write(runtime.join("keep.txt"), "runtime file").unwrap();
    let tmp_sock =
        std::env::temp_dir().join(format!("authsome-test-ipc-{}.sock", std::process::id()));
    let socks = [
        runtime.join("systemd/private"),
        tmux.join(format!("tmux-{uid}/default")),
        tmp_sock.clone(),
    ];
    let listeners: Vec<std::os::unix::net::UnixListener> = socks
        .iter()
        .map(|p| std::os::unix::net::UnixListener::bind(p).unwrap())
        .collect();
    let script = format!(
        r#"
for s in {s0} {s1} {s2}; do
  python3 -c "import socket,sys; c=socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); print('CONNECTED', sys.argv[1])" "$s" 2>&1 | tail -1
done
echo "runtime=[$(ls "$XDG_RUNTIME_DIR" 2>&1)]"
echo x > "$XDG_RUNTIME_DIR/mine" && echo "runtime writable"
echo "tmux=[$TMUX] display=[$DISPLAY] bus=[$DBUS_SESSION_BUS_ADDRESS]"
"#,
        s0 = socks[0].display(),
        s1 = socks[1].display(),
        s2 = socks[2].display(),
    );
    let out = a
        .cmd(&["run", "--", "sh", "-c", &script])
        .env("XDG_RUNTIME_DIR", runtime.to_str().unwrap())
        .env("TMUX_TMPDIR", tmux.to_str().unwrap())
        .env("TMUX", &format!("{},1,0", socks[1].display()))
        .env("DISPLAY", ":0")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            &format!("unix:path={}", runtime.join("bus").display()),
        )
        .run();
    std::fs::remove_file(&tmp_sock).ok();
    drop(listeners);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("CONNECTED"), "{}", out.stdout);
    assert!(out.stdout.contains("runtime=[]"), "{}", out.stdout);
    assert!(out.stdout.contains("runtime writable"), "{}", out.stdout);
    assert!(
        out.stdout.contains("tmux=[] display=[] bus=[]"),
        "{}",
        out.stdout
    );
    assert!(
        !runtime.join("mine").exists(),
        "the child's runtime dir is its own"
    );
    // Unconfined, the same script reaches them: what the sandbox takes away.
    let listeners: Vec<std::os::unix::net::UnixListener> = socks
        .iter()
        .map(|p| {
            std::fs::remove_file(p).ok();
            std::os::unix::net::UnixListener::bind(p).unwrap()
        })
        .collect();
    let out = a
        .cmd(&["run", "--no-sandbox", "--", "sh", "-c", &script])
        .run();
    std::fs::remove_file(&tmp_sock).ok();
    drop(listeners);
    assert_eq!(out.stdout.matches("CONNECTED").count(), 3, "{}", out.stdout);
}
