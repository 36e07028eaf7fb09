//! Confinement of `authsome run`'s child on Linux, and hardening of the
//! daemon process. The one module allowed `unsafe`: every `unsafe` block is
//! a direct system call (or libc's CMSG helpers), commented with why it is
//! sound.
//!
//! # What the child gets
//! Set up between `fork` and `exec` (see [`Sandbox::install`]):
//! 1. **Its own user, mount and network namespaces.** The user namespace maps
//!    only the caller's own uid and gid, so the child is the same user with no
//!    new privilege outside.
//! 2. **Only loopback, and the run's proxy on it.** Inside the new network
//!    namespace `lo` is brought up and a listening socket is opened on
//!    `127.0.0.1:<port>` (the port `HTTPS_PROXY` names). That socket is handed
//!    to the parent over a socket pair (last, once everything below is in
//!    place), which passes it on to the daemon: the
//!    proxy accepts the child's connections directly, with no copy hop. The
//!    daemon's API, other runs, the system-wide proxy and the internet have
//!    no route; servers the child starts on its own loopback keep working.
//!    Each `--allow-localhost PORT` gets a listener the same way, which `run`
//!    forwards to the host's `127.0.0.1:PORT`.
//! 3. **The home hidden.** Each protected directory (`$AUTHSOME_HOME`) gets
//!    an empty read-only tmpfs (mode 000) mounted over it; each protected
//!    file elsewhere (a master-key file) gets `/dev/null` bound over it.
//!    Reads fail with ENOENT/EACCES, writes with EROFS; the files underneath
//!    are untouched.
//!    The user's session services go the same way ([`user_services`]): the
//!    runtime directory (`$XDG_RUNTIME_DIR`, with `systemd --user`'s and
//!    D-Bus's sockets) is replaced by an empty writable tmpfs of the
//!    child's own, and tmux/screen/X11 socket directories, Docker's socket
//!    and any socket in the temp directories are covered: a network
//!    namespace cuts off abstract sockets, not sockets named by a path, and
//!    any of those services would run a command for the child, outside.
//! 4. **Mounts locked.** A second, nested user + mount namespace is entered
//!    after mounting: mounts inherited by a less privileged namespace are
//!    locked together (`MNT_LOCKED`), so even a child that is root inside its
//!    namespace (CI runs as root) cannot unmount them to look underneath,
//!    and it holds no capability over the network namespace above.
//! 5. **A Landlock domain** (when the kernel has Landlock). It restricts no
//!    file access (the mount namespace does that); it is there for its
//!    process scoping: a process in a Landlock domain cannot ptrace, read
//!    `/proc/<pid>/{mem,environ,root,cwd,fd}` of, or (ABI ≥ 6) signal or
//!    connect to the abstract sockets of, processes outside it. Without it,
//!    `/proc/<pid>/root` of any of the user's other processes would show the
//!    filesystem as it is outside, home included.
//!    `PR_SET_NO_NEW_PRIVS` is set first (Landlock requires it).
//! 6. **No typing into the user's terminal.** A seccomp filter makes
//!    `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` fail with EPERM: characters
//!    pushed into the terminal's input would run in the user's shell,
//!    unconfined, once the child exits. Everything else is allowed.
//!
//! Why namespaces and not Landlock alone: Landlock is allow-list based, so
//! "everything but `$AUTHSOME_HOME`" would need a rule per sibling of every
//! ancestor, and files created later beside them would be unreachable; and
//! before ABI 4 it cannot confine the network at all. Why not a PID
//! namespace: its first process ignores signals it has no handler for, which
//! would break `run`'s signal forwarding for ordinary programs; Landlock's
//! scoping covers what a PID namespace would hide that matters here.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How `authsome run` confines its child (`--sandbox`, `AUTHSOME_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Confine when the kernel can; otherwise run unconfined with a warning.
    #[default]
    Auto,
    /// Confine, or refuse to run.
    Require,
    /// Do not confine (with a warning).
    Off,
}

impl Mode {
    /// `auto`, `require` or `off` (also `on`/`1` = require, `0`/`no` = off).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Mode::Auto),
            "require" | "required" | "on" | "1" | "yes" | "true" => Some(Mode::Require),
            "off" | "0" | "no" | "false" | "none" => Some(Mode::Off),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Require => "require",
            Mode::Off => "off",
        }
    }
}

/// What the child must not reach, and how it reaches the proxy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Directories and files hidden from the child (made absolute and
    /// resolved by [`Sandbox::new`]; paths that do not exist are skipped).
    pub hide: Vec<PathBuf>,
    /// Directories replaced by an empty, private, writable tmpfs (the
    /// user's runtime directory: its service sockets stay outside).
    pub fresh: Vec<PathBuf>,
    /// The port the run's proxy listens on inside the namespace (127.0.0.1).
    pub proxy_port: u16,
    /// Host loopback ports the child may reach (each gets a listener inside).
    pub allow_localhost: Vec<u16>,
    /// Enter a Landlock domain when the kernel has one (false only to
    /// act as on a kernel without it: the test hook).
    pub landlock: bool,
}

impl Policy {
    /// Checks the policy against the current directory: a child started
    /// inside a hidden directory would keep it open as its working directory.
    pub fn check(&self, cwd: &Path) -> Result<(), String> {
        for h in self.hide.iter().chain(&self.fresh) {
            let h = resolve(h);
            if cwd.starts_with(&h) {
                return Err(format!(
                    "the current directory {} is inside {}, which the sandbox hides",
                    cwd.display(),
                    h.display()
                ));
            }
        }
        for p in &self.allow_localhost {
            if *p == 0 {
                return Err("--allow-localhost 0 is not a port".into());
            }
            if *p == self.proxy_port {
                return Err(format!(
                    "--allow-localhost {p}: that port is the run's proxy inside the sandbox"
                ));
            }
        }
        Ok(())
    }
}

/// Where the user's own services listen on Unix sockets named by a path
/// (a network namespace cuts off abstract sockets, not these). A confined
/// child that could connect to one could ask an unconfined process to run
/// a command for it: `systemd-run --user`, `tmux new-window`, `screen -X`,
/// an X server (`xdotool type`), an editor's IPC socket, Docker's socket.
///
/// Returns (hidden, fresh): sockets and socket directories to cover, and
/// runtime directories to replace with an empty private one.
pub fn user_services(
    uid: u32,
    xdg_runtime_dir: Option<&Path>,
    tmux_tmpdir: Option<&Path>,
    tmp: &Path,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut fresh: Vec<PathBuf> = Vec::new();
    fresh.extend(xdg_runtime_dir.map(Path::to_path_buf));
    fresh.push(PathBuf::from(format!("/run/user/{uid}")));
    let mut hide: Vec<PathBuf> = vec![
        tmp.join(format!("tmux-{uid}")),
        PathBuf::from(format!("/tmp/tmux-{uid}")),
        PathBuf::from("/tmp/.X11-unix"),
        PathBuf::from("/tmp/.ICE-unix"),
        PathBuf::from("/tmp/.XIM-unix"),
        PathBuf::from("/run/screen"),
        PathBuf::from("/var/run/screen"),
        PathBuf::from("/tmp/screens"),
        PathBuf::from("/run/docker.sock"),
        PathBuf::from("/var/run/docker.sock"),
        PathBuf::from("/run/podman/podman.sock"),
        PathBuf::from("/run/containerd/containerd.sock"),
    ];
    hide.extend(tmux_tmpdir.map(|d| d.join(format!("tmux-{uid}"))));
    // Any other socket in the temporary directories, two levels deep
    // (`/tmp/vscode-ipc-*.sock`, `/tmp/ssh-*/agent.*`, an editor's server).
    for root in [tmp, Path::new("/tmp")] {
        hide.extend(sockets_under(root, 2));
    }
    hide.sort();
    hide.dedup();
    fresh.sort();
    fresh.dedup();
    (hide, fresh)
}

fn sockets_under(dir: &Path, depth: u8) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_socket() {
            out.push(e.path());
        } else if t.is_dir() && depth > 1 {
            out.extend(sockets_under(&e.path(), depth - 1));
        }
    }
    out
}

/// Variables that point a program at the user's session services; removed
/// from a confined child's environment (the services are hidden anyway).
pub const SESSION_VARS: &[&str] = &[
    "TMUX",
    "TMUX_PANE",
    "STY",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    "DOCKER_HOST",
    "VSCODE_IPC_HOOK_CLI",
    "VSCODE_GIT_IPC_HANDLE",
];

/// Absolute, symlinks resolved where the path exists.
fn resolve(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    })
}

/// What this kernel offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// User + mount + network namespaces work for this user (`Err` says why not).
    pub namespaces: Result<(), String>,
    /// Landlock ABI version (0 = none), and why when 0.
    pub landlock_abi: u32,
    /// Why Landlock is missing, when it is.
    pub landlock_missing: Option<String>,
}

impl Support {
    /// Everything `run` applies is available.
    pub fn full(&self) -> bool {
        self.namespaces.is_ok() && self.landlock_abi > 0
    }

    /// One line per confinement, for `doctor`.
    pub fn confinements(&self) -> Vec<(&'static str, Result<String, String>)> {
        let ns = self.namespaces.clone().map(|()| "available".to_string());
        let ll = if self.landlock_abi > 0 {
            Ok(format!(
                "ABI {}{}",
                self.landlock_abi,
                if self.landlock_abi >= 6 {
                    " (ptrace, signal and abstract-socket scoping)"
                } else {
                    " (ptrace scoping)"
                }
            ))
        } else {
            Err(self
                .landlock_missing
                .clone()
                .unwrap_or_else(|| "not available".into()))
        };
        vec![
            ("files: $AUTHSOME_HOME hidden (mount namespace)", ns.clone()),
            ("network: only the run's proxy (network namespace)", ns),
            ("processes: no ptrace or /proc of others (Landlock)", ll),
        ]
    }
}

/// Why the sandbox could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The step that failed.
    pub step: &'static str,
    /// The OS error.
    pub errno: i32,
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.step,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

/// Test hook (documented): `AUTHSOME_SANDBOX_UNAVAILABLE=1` makes `run` and
/// `doctor` behave as on a kernel without user namespaces, `=landlock` as
/// on one without Landlock.
pub const ENV_PRETEND_UNAVAILABLE: &str = "AUTHSOME_SANDBOX_UNAVAILABLE";

/// What [`ENV_PRETEND_UNAVAILABLE`] asks to pretend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pretend {
    /// Nothing: the kernel as it is.
    Nothing,
    /// No user namespaces.
    NoNamespaces,
    /// No Landlock.
    NoLandlock,
}

impl Pretend {
    /// From the variable's value (unset, empty or `0`: nothing).
    pub fn from_value(v: Option<&str>) -> Pretend {
        match v.map(str::trim) {
            None | Some("") | Some("0") => Pretend::Nothing,
            Some(v) if v.eq_ignore_ascii_case("landlock") => Pretend::NoLandlock,
            Some(_) => Pretend::NoNamespaces,
        }
    }
}

const STEPS: &[&str] = &[
    "ok",
    "creating user, mount and network namespaces",
    "mapping the user into the namespace",
    "bringing up loopback",
    "opening the proxy's socket inside the namespace",
    "handing the sockets to authsome",
    "hiding AUTHSOME_HOME",
    "returning to the working directory",
    "locking the mounts",
    "entering the Landlock domain",
    "filtering terminal ioctls (seccomp)",
];
const STEP_UNSHARE: u8 = 1;
const STEP_MAPS: u8 = 2;
const STEP_LO: u8 = 3;
const STEP_LISTEN: u8 = 4;
const STEP_SEND: u8 = 5;
const STEP_MOUNT: u8 = 6;
const STEP_CWD: u8 = 7;
const STEP_LOCK: u8 = 8;
const STEP_LANDLOCK: u8 = 9;
const STEP_SECCOMP: u8 = 10;

/// The listeners the child's setup opened inside its network namespace.
#[derive(Debug)]
pub struct Handoff {
    /// The run's proxy socket (listening, blocking mode).
    pub proxy: std::net::TcpListener,
    /// `(host port, listener inside)` for each `--allow-localhost`.
    pub forwards: Vec<(u16, std::net::TcpListener)>,
}

/// A prepared sandbox: everything the child's setup needs, allocated before
/// `fork` (the setup itself allocates nothing).
#[derive(Debug)]
pub struct Sandbox {
    parent: OwnedFd,
    forwards: Vec<u16>,
    landlock_abi: u32,
    setup: Option<ChildSetup>,
}

/// How a protected path is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// An empty read-only tmpfs, mode 000.
    SecretDir,
    /// An empty writable tmpfs, mode 0700 (the child may use it).
    FreshDir,
    /// `/dev/null` bound over it (a file or a socket).
    File,
}

#[derive(Debug)]
struct ChildSetup {
    sock: OwnedFd,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// (path, is_dir)
    hide: Vec<(CString, Cover)>,
    cwd: Option<CString>,
    ports: Vec<u16>,
    landlock_abi: u32,
    /// Scratch for the listeners' descriptors.
    fds: Vec<RawFd>,
    /// Scratch for the SCM_RIGHTS control message.
    cmsg: Vec<u64>,
}

impl Sandbox {
    /// Prepares the sandbox for `policy`. Fails only on local errors (a
    /// socket pair cannot be made, a path holds a NUL byte).
    pub fn new(policy: &Policy) -> std::io::Result<Sandbox> {
        let (parent, child) = socketpair()?;
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let mut hide: Vec<(CString, Cover)> = Vec::new();
        let wanted = policy
            .hide
            .iter()
            .map(|p| (p, false))
            .chain(policy.fresh.iter().map(|p| (p, true)));
        for (h, fresh) in wanted {
            let p = resolve(h);
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if hide
                .iter()
                .any(|(c, _)| c.as_bytes() == p.as_os_str().as_bytes())
            {
                continue;
            }
            let cover = match (meta.is_dir(), fresh) {
                (true, true) => Cover::FreshDir,
                (true, false) => Cover::SecretDir,
                (false, _) => Cover::File,
            };
            hide.push((cstring(&p)?, cover));
        }
        // Outer mounts first, so a file inside a hidden directory is skipped
        // (its directory is gone already) rather than failing.
        hide.sort_by_key(|(c, _)| c.as_bytes().len());
        let cwd = std::env::current_dir()
            .ok()
            .map(|d| cstring(&d))
            .transpose()?;
        let mut ports = vec![policy.proxy_port];
        ports.extend(&policy.allow_localhost);
        let n = ports.len();
        Ok(Sandbox {
            parent,
            forwards: policy.allow_localhost.clone(),
            landlock_abi: if policy.landlock {
                landlock_version()
            } else {
                0
            },
            setup: Some(ChildSetup {
                sock: child,
                uid_map: format!("{uid} {uid} 1\n").into_bytes(),
                gid_map: format!("{gid} {gid} 1\n").into_bytes(),
                hide,
                cwd,
                ports,
                landlock_abi: if policy.landlock {
                    landlock_version()
                } else {
                    0
                },
                fds: vec![-1; n],
                cmsg: vec![0u64; cmsg_space(n).div_ceil(8)],
            }),
        })
    }

    /// The Landlock ABI the child will get (0 = none).
    pub fn landlock_abi(&self) -> u32 {
        self.landlock_abi
    }

    /// Makes `cmd`'s child set itself up between fork and exec. Call once.
    pub fn install(&mut self, cmd: &mut tokio::process::Command) {
        let Some(mut setup) = self.setup.take() else {
            return;
        };
        // SAFETY: the closure runs in the forked child before exec. It makes
        // only system calls (unshare, open/write/close, socket/bind/listen,
        // ioctl, sendmsg, mount, chdir, prctl, landlock) on buffers that
        // were allocated before the fork, and allocates nothing itself, so
        // it is safe to run in the child of a multi-threaded process.
        unsafe {
            cmd.pre_exec(move || match setup.run() {
                Ok(()) => Ok(()),
                Err((step, errno)) => {
                    report_error(setup.sock.as_raw_fd(), step, errno);
                    Err(std::io::Error::from_raw_os_error(errno))
                }
            });
        }
    }

    /// After the spawn: the child's listeners, or why its setup failed.
    /// Call whether or not the spawn succeeded: a failed setup makes the
    /// spawn fail with only an errno, and this says which step it was.
    pub fn handoff(self) -> Result<Handoff, SetupError> {
        drop(self.setup);
        let mut fds = [-1 as RawFd; 16];
        let (tag, payload, n) =
            recv_fds(self.parent.as_raw_fd(), &mut fds).map_err(|e| SetupError {
                step: "receiving the sockets from the sandbox",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        // SAFETY: recv_fds returned n descriptors that the kernel just
        // installed in this process; nothing else owns them.
        let owned: Vec<OwnedFd> = fds[..n]
            .iter()
            .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
            .collect();
        if tag == b'E' {
            let step = payload.first().copied().unwrap_or(0) as usize;
            let errno = payload
                .get(1..5)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(i32::from_le_bytes)
                .unwrap_or(libc::EIO);
            return Err(SetupError {
                step: STEPS.get(step).copied().unwrap_or("setting up the sandbox"),
                errno,
            });
        }
        if tag != b'K' || owned.len() != 1 + self.forwards.len() {
            return Err(SetupError {
                step: "receiving the sockets from the sandbox",
                errno: libc::EPROTO,
            });
        }
        let mut it = owned.into_iter();
        let proxy = it
            .next()
            .map(std::net::TcpListener::from)
            .ok_or(SetupError {
                step: "receiving the sockets from the sandbox",
                errno: libc::EPROTO,
            })?;
        let forwards = self
            .forwards
            .iter()
            .copied()
            .zip(it.map(std::net::TcpListener::from))
            .collect();
        Ok(Handoff { proxy, forwards })
    }
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {e}", p.display()),
        )
    })
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn cmsg_space(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic.
    unsafe { libc::CMSG_SPACE((nfds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// A connected AF_UNIX stream pair, close-on-exec.
fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints for the kernel to fill.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// === impl ChildSetup (runs between fork and exec) ===

impl ChildSetup {
    fn run(&mut self) -> Result<(), (u8, i32)> {
        // SAFETY (whole function): plain system calls on descriptors this
        // process owns and on NUL-terminated buffers allocated before fork.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET) != 0 {
                return Err((STEP_UNSHARE, errno()));
            }
            self.write_maps().map_err(|e| (STEP_MAPS, e))?;
            lo_up().map_err(|e| (STEP_LO, e))?;
            for i in 0..self.ports.len() {
                match listen_inside(self.ports[i]) {
                    Ok(fd) => self.fds[i] = fd,
                    Err(e) => {
                        self.close_fds();
                        return Err((STEP_LISTEN, e));
                    }
                }
            }
            // The rest of the confinement, then the hand-over: the parent
            // hears "ok" only from a child that is fully confined.
            if let Err(e) = self.confine() {
                self.close_fds();
                return Err(e);
            }
            let sent = send_fds(self.sock.as_raw_fd(), b'K', &[], &self.fds, &mut self.cmsg);
            // Close-on-exec closes them anyway; closing now keeps the
            // child from ever holding them, even until exec.
            self.close_fds();
            sent.map_err(|e| (STEP_SEND, e))?;
        }
        Ok(())
    }

    /// Mounts, working directory, locked mounts, no-new-privs, seccomp and
    /// Landlock (everything after the sockets are open).
    fn confine(&self) -> Result<(), (u8, i32)> {
        // SAFETY: plain system calls on NUL-terminated buffers allocated
        // before fork.
        unsafe {
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err((STEP_MOUNT, errno()));
            }
            for (path, cover) in &self.hide {
                let r = if *cover == Cover::SecretDir {
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        c"size=4k,nr_inodes=1,mode=000".as_ptr().cast(),
                    )
                } else if *cover == Cover::FreshDir {
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        c"size=64m,mode=700".as_ptr().cast(),
                    )
                } else {
                    libc::mount(
                        c"/dev/null".as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                };
                // A path under a directory hidden just before is gone: fine.
                if r != 0 && errno() != libc::ENOENT {
                    return Err((STEP_MOUNT, errno()));
                }
            }
            if let Some(cwd) = &self.cwd
                && libc::chdir(cwd.as_ptr()) != 0
            {
                return Err((STEP_CWD, errno()));
            }
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err((STEP_LOCK, errno()));
            }
            self.write_maps().map_err(|e| (STEP_LOCK, e))?;
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err((STEP_LANDLOCK, errno()));
            }
            deny_terminal_injection().map_err(|e| (STEP_SECCOMP, e))?;
            if self.landlock_abi > 0 {
                enter_landlock(self.landlock_abi).map_err(|e| (STEP_LANDLOCK, e))?;
            }
        }
        Ok(())
    }

    fn close_fds(&mut self) {
        for fd in &mut self.fds {
            if *fd >= 0 {
                // SAFETY: a descriptor this process opened.
                unsafe { libc::close(*fd) };
                *fd = -1;
            }
        }
    }

    fn write_maps(&self) -> Result<(), i32> {
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", &self.uid_map)?;
        write_file(c"/proc/self/gid_map", &self.gid_map)
    }
}

fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    // SAFETY: path is NUL-terminated; data is a valid slice.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(if n < 0 { e } else { libc::EIO });
        }
    }
    Ok(())
}

/// `ip link set lo up` in the current network namespace.
fn lo_up() -> Result<(), i32> {
    // SAFETY: ifreq is plain data (all-zero is valid); the ioctl reads it.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        let e = errno();
        libc::close(s);
        if r != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// A TCP listener on 127.0.0.1:port (TCP_NODELAY inherited by accepted sockets).
fn listen_inside(port: u16) -> Result<RawFd, i32> {
    // SAFETY: sockaddr_in is plain data; the pointers passed are valid for
    // the sizes given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(errno());
        }
        let one: libc::c_int = 1;
        let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            sz,
        );
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            sz,
        );
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        if libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
            || libc::listen(fd, 1024) != 0
        {
            let e = errno();
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

fn report_error(sock: RawFd, step: u8, errno: i32) {
    let mut msg = [0u8; 5];
    msg[0] = step;
    msg[1..5].copy_from_slice(&errno.to_le_bytes());
    let mut cmsg = [0u64; 0];
    send_fds(sock, b'E', &msg, &[], &mut cmsg).ok();
}

// === descriptor passing (SCM_RIGHTS) ===

/// Sends one message: a tag byte, a payload, and `fds` as SCM_RIGHTS.
/// `cmsg` must hold at least `cmsg_space(fds.len())` bytes. Allocates
/// nothing (it also runs between fork and exec).
fn send_fds(
    sock: RawFd,
    tag: u8,
    payload: &[u8],
    fds: &[RawFd],
    cmsg: &mut [u64],
) -> Result<(), i32> {
    let mut buf = [0u8; 256];
    let len = 1 + payload.len().min(255);
    buf[0] = tag;
    buf[1..len].copy_from_slice(&payload[..len - 1]);
    // SAFETY: msghdr and iovec point at live buffers of the stated sizes;
    // the CMSG macros stay within `cmsg`, which the caller sized with
    // cmsg_space(fds.len()).
    unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let space = cmsg_space(fds.len());
            if cmsg.len() * 8 < space {
                return Err(libc::EINVAL);
            }
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(c).cast::<RawFd>(),
                fds.len(),
            );
        }
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Receives one message sent by [`send_fds`]: (tag, payload, number of fds
/// written to `fds`). The descriptors are close-on-exec.
fn recv_fds(sock: RawFd, fds: &mut [RawFd; 16]) -> std::io::Result<(u8, Vec<u8>, usize)> {
    let mut buf = [0u8; 4096];
    let mut cmsg = [0u64; 64];
    // SAFETY: msghdr and iovec point at live buffers of the stated sizes;
    // the control messages are walked with the CMSG macros within
    // msg_controllen as the kernel set it.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut count = 0;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    if count < fds.len() {
                        fds[count] = fd;
                        count += 1;
                    } else {
                        libc::close(fd);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if n == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::ECONNRESET));
        }
        let n = n as usize;
        Ok((buf[0], buf[1..n].to_vec(), count))
    }
}

/// Sends `fd` with a text message over a connected Unix socket (the CLI
/// handing a run's sandboxed listener to the daemon).
pub fn send_listener(sock: &impl AsRawFd, text: &[u8], fd: &impl AsRawFd) -> std::io::Result<()> {
    let mut cmsg = vec![0u64; cmsg_space(1).div_ceil(8)];
    if text.len() > 255 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "message too long",
        ));
    }
    send_fds(sock.as_raw_fd(), b'L', text, &[fd.as_raw_fd()], &mut cmsg)
        .map_err(std::io::Error::from_raw_os_error)
}

/// Receives what [`send_listener`] sent: the text and the descriptor.
pub fn recv_listener(sock: &impl AsRawFd) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut fds = [-1 as RawFd; 16];
    let (tag, text, n) = recv_fds(sock.as_raw_fd(), &mut fds)?;
    // SAFETY: the kernel installed these n descriptors in this process just now.
    let mut owned: Vec<OwnedFd> = fds[..n]
        .iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
        .collect();
    if tag != b'L' || owned.len() != 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "expected one listener",
        ));
    }
    Ok((text, owned.pop()))
}

// === seccomp: no typing into the user's terminal ===

/// Denies `ioctl(TIOCSTI)` (push characters into the terminal's input, which
/// the user's shell would run after the child exits, unconfined) and
/// `ioctl(TIOCLINUX)` (the console's paste buffer) with EPERM; every other
/// system call is allowed. The command is compared on its low 32 bits, as
/// the kernel reads it. On x86-64, i386 and x32 processes are matched by
/// their own `ioctl` numbers.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn deny_terminal_injection() -> Result<(), i32> {
    #[cfg(target_arch = "x86_64")]
    const NATIVE: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "x86_64")]
    const OTHER: u32 = 0x4000_0003; // AUDIT_ARCH_I386
    #[cfg(target_arch = "aarch64")]
    const NATIVE: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    #[cfg(target_arch = "aarch64")]
    const OTHER: u32 = u32::MAX; // (no compat ABI filtered)
    const X32_IOCTL: u32 = 0x4000_0000 | 514;
    const I386_IOCTL: u32 = 54;
    // seccomp_data: nr @0, arch @4, instruction pointer @8, args[6] @16.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    #[cfg(target_endian = "little")]
    const ARG1_LO: u32 = 24;
    #[cfg(target_endian = "big")]
    const ARG1_LO: u32 = 28;
    let ld = |off: u32| libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: off,
    };
    // Jumps are relative: the next instruction is `here + 1 + offset`.
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ret = |k: u32| libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let prog = [
        /* 0 */ ld(ARCH),
        /* 1 */ jeq(NATIVE, 2, 0), // → 4
        /* 2 */ jeq(OTHER, 4, 0), // → 7
        /* 3 */ ret(libc::SECCOMP_RET_ALLOW),
        /* 4 */ ld(NR),
        /* 5 */ jeq(libc::SYS_ioctl as u32, 3, 0), // → 9
        /* 6 */ jeq(X32_IOCTL, 2, 5), // → 9 | → 12
        /* 7 */ ld(NR),
        /* 8 */ jeq(I386_IOCTL, 0, 3), // → 9 | → 12
        /* 9 */ ld(ARG1_LO),
        /* 10 */ jeq(libc::TIOCSTI as u32, 2, 0), // → 13
        /* 11 */ jeq(libc::TIOCLINUX as u32, 1, 0), // → 13
        /* 12 */ ret(libc::SECCOMP_RET_ALLOW),
        /* 13 */ ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
            0,
            0,
        )
    };
    if r != 0 { Err(errno()) } else { Ok(()) }
}

/// Other architectures: namespaces and Landlock only.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn deny_terminal_injection() -> Result<(), i32> {
    Ok(())
}

// === Landlock ===

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const LANDLOCK_SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// The kernel's Landlock ABI version, 0 when it has none.
pub fn landlock_version() -> u32 {
    landlock_abi().unwrap_or(0)
}

/// The kernel's Landlock ABI version.
fn landlock_abi() -> Result<u32, i32> {
    // SAFETY: the version query takes no attribute pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 { Err(errno()) } else { Ok(r as u32) }
}

/// Enters a Landlock domain that restricts no file access (only block-device
/// creation, which an unprivileged process cannot do anyway): the domain
/// itself brings ptrace scoping, and from ABI 6 signal and abstract-socket
/// scoping.
fn enter_landlock(abi: u32) -> Result<(), i32> {
    let attr = RulesetAttr {
        handled_access_fs: LANDLOCK_ACCESS_FS_MAKE_BLOCK,
        handled_access_net: 0,
        scoped: if abi >= 6 {
            LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL
        } else {
            0
        },
    };
    // The struct grew with the ABI: pass only the fields this kernel knows.
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    // SAFETY: attr lives across the call and `size` does not exceed it.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        );
        if fd < 0 {
            return Err(errno());
        }
        let r = libc::syscall(libc::SYS_landlock_restrict_self, fd as libc::c_int, 0u32);
        let e = errno();
        libc::close(fd as libc::c_int);
        if r != 0 {
            return Err(e);
        }
    }
    Ok(())
}

// === probing ===

/// What this kernel offers, tried for real: a short-lived child enters the
/// namespaces `run` uses.
pub fn probe(pretend: Pretend) -> Support {
    let pretend_unavailable = pretend == Pretend::NoNamespaces;
    let abi = if pretend == Pretend::NoLandlock {
        Ok(0)
    } else {
        landlock_abi()
    };
    let (landlock_abi, landlock_missing) = match abi {
        Ok(v) if v > 0 => (v, None),
        Ok(_) if pretend == Pretend::NoLandlock => (
            0,
            Some(format!("Landlock is unavailable ({ENV_PRETEND_UNAVAILABLE}=landlock)")),
        ),
        Ok(_) => (0, Some("Landlock reports ABI 0".into())),
        Err(libc::ENOSYS) => (0, Some("the kernel has no Landlock (Linux ≥ 5.13 with CONFIG_SECURITY_LANDLOCK)".into())),
        Err(libc::EOPNOTSUPP) => (0, Some("Landlock is built in but not enabled (add `landlock` to the `lsm=` boot parameter)".into())),
        Err(e) => (0, Some(format!("Landlock: {}", std::io::Error::from_raw_os_error(e)))),
    };
    let namespaces = if pretend_unavailable {
        Err(format!(
            "user namespaces are unavailable ({ENV_PRETEND_UNAVAILABLE} is set)"
        ))
    } else {
        probe_namespaces()
    };
    Support {
        namespaces,
        landlock_abi,
        landlock_missing,
    }
}

fn probe_namespaces() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let uid_map = format!("{uid} {uid} 1\n").into_bytes();
    let gid_map = format!("{gid} {gid} 1\n").into_bytes();
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    use std::os::unix::process::CommandExt;
    // SAFETY: runs between fork and exec: only system calls on buffers
    // allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let maps = write_file(c"/proc/self/setgroups", b"deny")
                .and_then(|()| write_file(c"/proc/self/uid_map", &uid_map))
                .and_then(|()| write_file(c"/proc/self/gid_map", &gid_map))
                .and_then(|()| lo_up());
            maps.map_err(std::io::Error::from_raw_os_error)
        });
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("a confined test process failed ({s})")),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => format!(
                "this user may not create user namespaces ({e}); check kernel.unprivileged_userns_clone, \
                 kernel.apparmor_restrict_unprivileged_userns, or a container's seccomp profile"
            ),
            Some(libc::ENOSPC) => {
                format!("the user-namespace limit is reached ({e}); check user.max_user_namespaces")
            }
            Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                format!("this kernel lacks user or network namespaces ({e})")
            }
            _ => format!("cannot create namespaces: {e}"),
        }),
    }
}

// === the daemon's own process ===

/// `cmd`'s process gets SIGTERM when the thread that starts it exits (so
/// a helper process, such as `doctor --clients`' private daemon, never
/// outlives a killed parent). Linux only; elsewhere nothing is set.
pub fn end_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and makes
        // async-signal-safe system calls (prctl, getppid); it allocates
        // nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died between fork and prctl: the signal will
                // never come, so do not start at all.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Hardens the daemon process: not dumpable (no ptrace, no
/// `/proc/<pid>/{environ,mem}` for other processes of the same user), no
/// core files. Returns what could not be done.
pub fn harden_process() -> Vec<String> {
    let mut problems = Vec::new();
    // SAFETY: prctl and setrlimit with constant arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            problems.push(format!(
                "PR_SET_DUMPABLE: {}",
                std::io::Error::last_os_error()
            ));
        }
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
            problems.push(format!("RLIMIT_CORE: {}", std::io::Error::last_os_error()));
        }
    }
    problems
}

/// Removes `name` from this process's environment, so no child inherits it.
///
/// # Safety
/// Call before any other thread exists (the environment is not
/// thread-safe): at the start of `main`.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place the process environment is changed: the daemon forgets its master key"
)]
pub unsafe fn forget_env(name: &str) {
    // SAFETY: the caller guarantees no other thread reads the environment.
    unsafe { std::env::remove_var(name) };
}

/// Two descriptors a child gets as its fd 3 and fd 4 (Chromium's
/// `--remote-debugging-pipe` reads commands from 3 and writes to 4). Keep
/// the value until the child is spawned, then drop it.
#[derive(Debug)]
pub struct ChildFds {
    _fd3: OwnedFd,
    _fd4: OwnedFd,
}

/// Makes `cmd`'s child receive `fd3` as descriptor 3 and `fd4` as 4.
///
/// The parent's copies are first moved to numbers of 10 and up (close on
/// exec), so neither already is 3 or 4: `dup2` onto itself would leave the
/// close-on-exec flag set and the child would find the descriptor closed.
pub fn pass_fds_3_4(
    cmd: &mut tokio::process::Command,
    fd3: OwnedFd,
    fd4: OwnedFd,
) -> std::io::Result<ChildFds> {
    let a = rustix::io::fcntl_dupfd_cloexec(&fd3, 10)?;
    let b = rustix::io::fcntl_dupfd_cloexec(&fd4, 10)?;
    drop((fd3, fd4));
    let (ra, rb) = (a.as_raw_fd(), b.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and makes
    // only two dup2 calls (async-signal-safe) on descriptors that stay
    // open in the parent until the spawn (`ChildFds`); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(ra, 3) < 0 || libc::dup2(rb, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(ChildFds { _fd3: a, _fd4: b })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("auto"), Some(Mode::Auto));
        assert_eq!(Mode::parse(" Require "), Some(Mode::Require));
        assert_eq!(Mode::parse("off"), Some(Mode::Off));
        assert_eq!(Mode::parse("maybe"), None);
    }

    #[test]
    fn policy_refuses_a_working_directory_inside_the_home() {
        let p = Policy {
            hide: vec![PathBuf::from("/nonexistent-authsome/home")],
            fresh: vec![],
            proxy_port: 5000,
            allow_localhost: vec![],
            landlock: true,
        };
        assert!(
            p.check(Path::new("/nonexistent-authsome/home/sub"))
                .is_err()
        );
        assert!(p.check(Path::new("/nonexistent-authsome/homework")).is_ok());
        let p = Policy {
            allow_localhost: vec![5000],
            ..p
        };
        assert!(p.check(Path::new("/")).is_err());
    }

    #[test]
    fn descriptors_cross_a_socket_pair() {
        let (a, b) = socketpair().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        send_listener(&a, b"hello", &l).unwrap();
        let (text, fd) = recv_listener(&b).unwrap();
        assert_eq!(text, b"hello");
        let got = std::net::TcpListener::from(fd.unwrap());
        assert_eq!(got.local_addr().unwrap().port(), port);
    }

    #[test]
    fn an_error_report_names_its_step() {
        let (a, b) = socketpair().unwrap();
        report_error(a.as_raw_fd(), STEP_MOUNT, libc::EPERM);
        let sb = Sandbox {
            parent: b,
            forwards: vec![],
            landlock_abi: 0,
            setup: None,
        };
        let e = sb.handoff().unwrap_err();
        assert_eq!(e.step, "hiding AUTHSOME_HOME");
        assert_eq!(e.errno, libc::EPERM);
    }
}
