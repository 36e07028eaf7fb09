//! Configuration, resolved once: defaults < environment < flags.
//!
//! The environment is read through the [`Env`] trait so tests can hand in a
//! map instead of mutating the process environment. Every variable authsome
//! reads is declared here as an `ENV_*` constant; nothing else calls
//! `std::env::var` for an `AUTHSOME_*` name.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Root directory for the vault, keys and logs (default `~/.authsome`).
pub const ENV_HOME: &str = "AUTHSOME_HOME";
/// The master key itself: base64 of 32 bytes, or a passphrase (stretched with Argon2id).
pub const ENV_MASTER_KEY: &str = "AUTHSOME_MASTER_KEY";
/// A file holding the master key (mode 0600).
pub const ENV_MASTER_KEY_FILE: &str = "AUTHSOME_MASTER_KEY_FILE";
/// The team store: `postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=require]`.
/// Unset (or `sqlite:`): the vault file in the home.
pub const ENV_DATABASE_URL: &str = "AUTHSOME_DATABASE_URL";
/// Extra PEM roots for the store's TLS certificate.
pub const ENV_DATABASE_CA_FILE: &str = "AUTHSOME_DATABASE_CA_FILE";
/// The most connections a daemon opens to the store (default 8).
pub const ENV_DATABASE_POOL: &str = "AUTHSOME_DATABASE_POOL";
/// `off` (or `0`, `false`, `no`) skips the OS keyring entirely.
pub const ENV_KEYRING: &str = "AUTHSOME_KEYRING";
/// Forces the daemon's port (`0` = any free port).
pub const ENV_PORT: &str = "AUTHSOME_PORT";
/// The port a daemon tries first when `AUTHSOME_PORT` is unset (default 7998).
/// For tests that exercise the port rules without touching 7998.
pub const ENV_PREFERRED_PORT: &str = "AUTHSOME_PREFERRED_PORT";
/// Points the CLI at a daemon elsewhere (alias: `AUTHSOME_DAEMON_URL`).
pub const ENV_BASE_URL: &str = "AUTHSOME_BASE_URL";
/// Older name of [`ENV_BASE_URL`].
pub const ENV_DAEMON_URL: &str = "AUTHSOME_DAEMON_URL";
/// The URL the daemon advertises for browser pages and OAuth callbacks.
pub const ENV_SERVER_BASE_URL: &str = "AUTHSOME_SERVER_BASE_URL";
/// Log filter for stderr and the daemon's log file.
pub const ENV_LOG: &str = "AUTHSOME_LOG";
/// The daemon's default port.
pub const DEFAULT_PORT: u16 = 7998;

/// Resolver override for upstream connections: `host=ip,host=ip`. For
/// tests, split-horizon setups and self-hosted instances; shown by `doctor`.
pub const ENV_RESOLVE: &str = "AUTHSOME_RESOLVE";
/// Extra PEM roots the proxy trusts upstream, added to the system roots
/// (a corporate TLS-inspecting gateway, a self-hosted GitLab, test upstreams).
pub const ENV_UPSTREAM_CA_FILE: &str = "AUTHSOME_UPSTREAM_CA_FILE";
/// The system-wide proxy listener's port (default [`DEFAULT_PROXY_PORT`]).
pub const ENV_PROXY_PORT: &str = "AUTHSOME_PROXY_PORT";
/// The system-wide proxy listener's default port.
pub const DEFAULT_PROXY_PORT: u16 = 7999;
/// How many threads the proxy serves its listeners on (default 1, at most
/// 64). One is the default because agents make tens of requests per second
/// and one thread serves tens of thousands, with the lowest latency (no
/// thread waits for another); raise it for heavy system-wide use.
pub const ENV_PROXY_THREADS: &str = "AUTHSOME_PROXY_THREADS";
/// Seconds between the daemon's checks for OAuth tokens to renew before
/// they expire (default 30, 1-3600).
pub const ENV_REFRESH_INTERVAL: &str = "AUTHSOME_REFRESH_INTERVAL";
/// Bytes the request log (`logs/requests.jsonl` and its one rotated file)
/// may take together (default 32 MiB, at least 64 KiB).
pub const ENV_REQUEST_LOG_MAX: &str = "AUTHSOME_REQUEST_LOG_MAX";
/// The smallest [`ENV_REQUEST_LOG_MAX`] (64 KiB: a few hundred entries).
pub const MIN_REQUEST_LOG_MAX: u64 = 64 * 1024;
/// Set to `1` in the environment of a child of `authsome run`.
pub const ENV_RUN: &str = "AUTHSOME_RUN";
/// Seconds `authsome run` waits after forwarding SIGTERM/SIGHUP before it
/// kills the child (default 10).
pub const ENV_RUN_GRACE: &str = "AUTHSOME_RUN_GRACE";
/// The D-Bus session bus (`unix:path=…`): hidden from a sandboxed child when
/// the master key is in the Secret Service keyring.
pub const ENV_DBUS_SESSION_BUS: &str = "DBUS_SESSION_BUS_ADDRESS";
/// Where the session bus lives when [`ENV_DBUS_SESSION_BUS`] is unset (`$XDG_RUNTIME_DIR/bus`).
pub const ENV_XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// Settings the daemon reads once, when it starts: setting one for a CLI
/// command while a daemon runs changes nothing until `daemon restart` (the
/// CLI warns when its value differs from the running daemon's).
pub const DAEMON_SIDE: &[&str] = &[
    ENV_RESOLVE,
    ENV_UPSTREAM_CA_FILE,
    ENV_PROXY_PORT,
    ENV_DENY_UNKNOWN,
    ENV_REFRESH_INTERVAL,
    ENV_PROXY_THREADS,
    ENV_SERVER_BASE_URL,
    ENV_KEYRING,
    ENV_REQUEST_LOG_MAX,
];

/// The daemon-side settings as this process's environment has them
/// (trimmed; unset or empty ones left out).
pub fn daemon_side_settings(env: &dyn Env) -> std::collections::BTreeMap<String, String> {
    DAEMON_SIDE
        .iter()
        .filter_map(|k| {
            let v = env.var(k)?;
            let v = v.trim();
            (!v.is_empty()).then(|| ((*k).to_string(), v.to_string()))
        })
        .collect()
}

/// tmux's socket directory when not `/tmp` (hidden from a confined child).
pub const ENV_TMUX_TMPDIR: &str = "TMUX_TMPDIR";
/// `auto` (default), `require` or `off`: how `authsome run` confines its child.
pub const ENV_SANDBOX: &str = "AUTHSOME_SANDBOX";
/// `1`/`true`: refuse hosts no provider claims (same as `--deny-unknown`).
pub const ENV_DENY_UNKNOWN: &str = "AUTHSOME_DENY_UNKNOWN";

/// `off` turns response redaction off (default `on`): for `authsome run`,
/// read from its own environment; for the system-wide listener, from the
/// daemon's.
pub const ENV_REDACT: &str = "AUTHSOME_REDACT";

/// Reads [`ENV_REDACT`]: `on`/`1`/`true`/unset → on, `off`/`0`/`false` → off.
pub fn redact_setting(env: &dyn Env) -> Result<bool> {
    match non_empty(env, ENV_REDACT) {
        None => Ok(true),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(true),
            "off" | "0" | "false" | "no" => Ok(false),
            _ => Err(Error::invalid(
                format!("{ENV_REDACT}=`{v}` is not on or off"),
                Some(format!(
                    "unset {ENV_REDACT} (redaction on), or set it to off"
                )),
            )),
        },
    }
}

/// Any value turns colour off (<https://no-color.org>).
pub const ENV_NO_COLOR: &str = "NO_COLOR";

/// Read access to environment variables.
pub trait Env {
    /// The value of `key`, if set and valid UTF-8.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed environment, for tests and embedding.
#[derive(Debug, Default, Clone)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// Builds a map environment from pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        MapEnv(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Everything the library needs to know about where and how to run.
#[derive(Debug)]
pub struct Config {
    /// `$AUTHSOME_HOME`.
    pub home: PathBuf,
    /// `AUTHSOME_MASTER_KEY`, if set.
    pub master_key: Option<Secret<String>>,
    /// `AUTHSOME_MASTER_KEY_FILE`, if set.
    pub master_key_file: Option<PathBuf>,
    /// Whether the OS keyring may be tried.
    pub keyring: bool,
    /// `AUTHSOME_DATABASE_URL` (or `daemon serve --store`): a PostgreSQL
    /// store instead of the home's SQLite file. May hold a password.
    pub database_url: Option<Secret<String>>,
    /// `AUTHSOME_DATABASE_CA_FILE`.
    pub database_ca_file: Option<PathBuf>,
    /// `AUTHSOME_DATABASE_POOL`.
    pub database_pool: usize,
    /// `AUTHSOME_PORT`: a forced daemon port (`Some(0)` = ephemeral).
    pub port: Option<u16>,
    /// The port tried first when none is forced.
    pub preferred_port: u16,
    /// `AUTHSOME_BASE_URL` / `AUTHSOME_DAEMON_URL`: a daemon elsewhere.
    pub base_url: Option<String>,
    /// `AUTHSOME_SERVER_BASE_URL`: the URL the daemon advertises.
    pub server_base_url: Option<String>,
    /// `AUTHSOME_SERVER_PROXY_ADDR`: where members reach this replica's
    /// proxy listener.
    pub server_proxy_addr: Option<String>,
    /// `AUTHSOME_RESOLVE`: host → address overrides for upstream connections.
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// `AUTHSOME_UPSTREAM_CA_FILE`: extra PEM roots for upstream TLS.
    pub upstream_ca_file: Option<PathBuf>,
    /// `AUTHSOME_PROXY_PORT`: the system-wide proxy listener's port.
    pub proxy_port: u16,
    /// `AUTHSOME_DENY_UNKNOWN`: refuse hosts no provider claims.
    pub deny_unknown: bool,
    /// `AUTHSOME_REDACT`: replace injected secrets in responses (default on).
    pub redact: bool,
    /// `AUTHSOME_PROXY_THREADS`: the proxy's worker threads.
    pub proxy_threads: usize,
    /// `AUTHSOME_REFRESH_INTERVAL`: seconds between proactive refresh checks.
    pub refresh_interval_secs: u64,
    /// `AUTHSOME_REQUEST_LOG_MAX`: bytes the request log keeps.
    pub request_log_max: u64,
}

impl Config {
    /// Resolves the configuration from the environment, with an optional
    /// `--home` flag taking precedence over `AUTHSOME_HOME`.
    pub fn resolve(env: &dyn Env, home_flag: Option<PathBuf>) -> Result<Config> {
        let home = match home_flag.or_else(|| non_empty(env, ENV_HOME).map(PathBuf::from)) {
            Some(h) => h,
            None => match non_empty(env, "HOME") {
                Some(h) => PathBuf::from(h).join(".authsome"),
                None => {
                    return Err(Error::invalid(
                        "cannot find a home directory: neither AUTHSOME_HOME nor HOME is set",
                        Some("set AUTHSOME_HOME to the directory authsome should use".into()),
                    ));
                }
            },
        };
        let home = absolute(home)?;
        let store_home = home.clone();
        let keyring = !matches!(
            non_empty(env, ENV_KEYRING)
                .map(|v| v.to_ascii_lowercase())
                .as_deref(),
            Some("off" | "0" | "false" | "no")
        );
        let database_pool = match non_empty(env, ENV_DATABASE_POOL) {
            None => 8,
            Some(p) => match p.trim().parse::<usize>() {
                Ok(n) if (2..=256).contains(&n) => n,
                _ => {
                    return Err(Error::invalid(
                        format!("{ENV_DATABASE_POOL}=`{p}` is not a pool size"),
                        Some("use a number from 2 to 256".into()),
                    ));
                }
            },
        };
        let port = match non_empty(env, ENV_PORT) {
            None => None,
            Some(p) => Some(p.trim().parse::<u16>().map_err(|_e| {
                Error::invalid(
                    format!("AUTHSOME_PORT=`{p}` is not a port number"),
                    Some("use 1-65535, or 0 for any free port".into()),
                )
            })?),
        };
        let preferred_port = non_empty(env, ENV_PREFERRED_PORT)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(DEFAULT_PORT);
        Ok(Config {
            home,
            master_key: non_empty(env, ENV_MASTER_KEY).map(Secret::new),
            master_key_file: non_empty(env, ENV_MASTER_KEY_FILE).map(PathBuf::from),
            keyring,
            database_url: match non_empty(env, ENV_DATABASE_URL) {
                Some(u) => Some(u),
                None => store_file(&store_home)?,
            }
            .filter(|u| !u.trim().starts_with("sqlite:"))
            .map(Secret::new),
            database_ca_file: non_empty(env, ENV_DATABASE_CA_FILE).map(PathBuf::from),
            database_pool,
            port,
            preferred_port,
            base_url: non_empty(env, ENV_BASE_URL)
                .or_else(|| non_empty(env, ENV_DAEMON_URL))
                .map(|u| u.trim_end_matches('/').to_string()),
            server_base_url: non_empty(env, ENV_SERVER_BASE_URL)
                .map(|u| u.trim_end_matches('/').to_string()),
            server_proxy_addr: non_empty(env, ENV_SERVER_PROXY_ADDR).map(|a| a.trim().to_string()),
            resolve: match non_empty(env, ENV_RESOLVE) {
                Some(v) => parse_resolve(&v)?,
                None => Vec::new(),
            },
            upstream_ca_file: non_empty(env, ENV_UPSTREAM_CA_FILE).map(PathBuf::from),
            proxy_port: match non_empty(env, ENV_PROXY_PORT) {
                None => DEFAULT_PROXY_PORT,
                Some(p) => p.trim().parse::<u16>().map_err(|_e| {
                    Error::invalid(
                        format!("AUTHSOME_PROXY_PORT=`{p}` is not a port number"),
                        Some("use 1-65535, or 0 for any free port".into()),
                    )
                })?,
            },
            deny_unknown: is_true(non_empty(env, ENV_DENY_UNKNOWN).as_deref()),
            redact: redact_setting(env)?,
            proxy_threads: number_in(env, ENV_PROXY_THREADS, 1, 64, 1, "a thread count")? as usize,
            refresh_interval_secs: number_in(
                env,
                ENV_REFRESH_INTERVAL,
                1,
                3600,
                30,
                "a number of seconds",
            )?,
            request_log_max: number_in(
                env,
                ENV_REQUEST_LOG_MAX,
                MIN_REQUEST_LOG_MAX,
                1 << 40,
                crate::request_log::DEFAULT_MAX_BYTES,
                "a size in bytes",
            )?,
        })
    }
}

/// The whole number in `name`, `default` when unset; anything outside
/// `min..=max` is an error naming the variable and the range.
fn number_in(
    env: &dyn Env,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
    what: &str,
) -> Result<u64> {
    let Some(v) = non_empty(env, name) else {
        return Ok(default);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            format!("{name}=`{v}` is not {what}"),
            Some(format!("use {min} to {max} (default {default})")),
        )),
    }
}

/// True for `1`, `true`, `yes`, `on` (any case).
pub fn is_true(v: Option<&str>) -> bool {
    matches!(
        v.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}

/// Parses `AUTHSOME_RESOLVE`: `host=ip` pairs separated by commas or spaces.
/// Host names are lowercased; a trailing dot is dropped.
pub fn parse_resolve(value: &str) -> Result<Vec<(String, std::net::IpAddr)>> {
    let mut out = Vec::new();
    for item in value
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let bad = || {
            Error::invalid(
                format!(
                    "AUTHSOME_RESOLVE entry `{}` is not host=ip",
                    item.escape_debug()
                ),
                Some("example: AUTHSOME_RESOLVE=api.acme.test=127.0.0.1,other.test=::1".into()),
            )
        };
        let (host, ip) = item.split_once('=').ok_or_else(bad)?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = ip.parse().map_err(|_e| bad())?;
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(bad());
        }
        out.push((host, ip));
    }
    Ok(out)
}

/// The home's store file (`store.url`, mode 0600): a team server's
/// PostgreSQL URL kept out of every environment and command line. The
/// variable wins over it.
pub const STORE_FILE: &str = "store.url";

fn store_file(home: &std::path::Path) -> Result<Option<String>> {
    let path = home.join(STORE_FILE);
    let Some(bytes) = crate::home::read_private(&path)? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&bytes).map_err(|_e| {
        Error::invalid(
            format!("{} is not text", path.display()),
            Some("it holds one line: postgres://USER:PASSWORD@HOST:PORT/DB".into()),
        )
    })?;
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}

fn non_empty(env: &dyn Env, key: &str) -> Option<String> {
    env.var(key).filter(|v| !v.trim().is_empty())
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p);
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("cannot read the current directory", e))?;
    Ok(cwd.join(p))
}

/// A PEM file of CA certificates the CLI trusts, besides the system's, for
/// the team server at an `https://` `AUTHSOME_BASE_URL` (client side; the
/// server's certificate is `daemon serve --tls-cert`).
pub const ENV_TEAM_CA_FILE: &str = "AUTHSOME_TEAM_CA_FILE";

/// `HOST:PORT` at which members reach this replica's `--proxy-listen`
/// (default: the base URL's host with that port). With several replicas
/// behind one name, each advertises its own, so a run's traffic reaches the
/// replica that holds the run whichever one the API call landed on.
pub const ENV_SERVER_PROXY_ADDR: &str = "AUTHSOME_SERVER_PROXY_ADDR";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_defaults_under_home() {
        let env = MapEnv::from_pairs([("HOME", "/home/ada")]);
        let c = Config::resolve(&env, None).unwrap();
        assert_eq!(c.home, PathBuf::from("/home/ada/.authsome"));
        assert!(c.keyring);
    }

    #[test]
    fn the_store_comes_from_the_variable_or_the_homes_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let env = MapEnv::from_pairs([(ENV_HOME, home)]);
        assert!(Config::resolve(&env, None).unwrap().database_url.is_none());
        let f = dir.path().join(STORE_FILE);
        std::fs::write(&f, "postgres://team:pw@db.test/authsome?sslmode=require\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::resolve(&env, None).unwrap_err();
        assert!(matches!(e, Error::InsecurePermissions { .. }), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Config::resolve(&env, None).unwrap();
        assert_eq!(
            c.database_url.unwrap().expose(),
            "postgres://team:pw@db.test/authsome?sslmode=require"
        );
        let env = MapEnv::from_pairs([
            (ENV_HOME, home),
            (ENV_DATABASE_URL, "postgres://other@db2.test/a"),
        ]);
        let c = Config::resolve(&env, None).unwrap();
        assert_eq!(
            c.database_url.unwrap().expose(),
            "postgres://other@db2.test/a"
        );
        let env = MapEnv::from_pairs([(ENV_HOME, home), (ENV_DATABASE_URL, "sqlite:")]);
        assert!(Config::resolve(&env, None).unwrap().database_url.is_none());
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_HOME, "/env")]);
        assert_eq!(
            Config::resolve(&env, None).unwrap().home,
            PathBuf::from("/env")
        );
        assert_eq!(
            Config::resolve(&env, Some("/flag".into())).unwrap().home,
            PathBuf::from("/flag")
        );
    }

    #[test]
    fn proxy_threads_and_refresh_interval_have_defaults_and_reject_nonsense() {
        let env = MapEnv::from_pairs([("HOME", "/h")]);
        assert_eq!(Config::resolve(&env, None).unwrap().proxy_threads, 1);
        let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_PROXY_THREADS, " 4 ")]);
        assert_eq!(Config::resolve(&env, None).unwrap().proxy_threads, 4);
        for bad in ["0", "65", "two", "-1"] {
            let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_PROXY_THREADS, bad)]);
            let e = Config::resolve(&env, None).unwrap_err().to_string();
            assert!(e.contains("AUTHSOME_PROXY_THREADS"), "{bad}: {e}");
        }
        for bad in ["0", "3601", "soon"] {
            let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_REFRESH_INTERVAL, bad)]);
            let e = Config::resolve(&env, None).unwrap_err().to_string();
            assert!(e.contains("AUTHSOME_REFRESH_INTERVAL"), "{bad}: {e}");
        }
        let env = MapEnv::from_pairs([("HOME", "/h")]);
        assert_eq!(
            Config::resolve(&env, None).unwrap().refresh_interval_secs,
            30
        );
    }

    #[test]
    fn request_log_max_has_a_default_and_a_floor() {
        let env = MapEnv::from_pairs([("HOME", "/h")]);
        assert_eq!(
            Config::resolve(&env, None).unwrap().request_log_max,
            32 * 1024 * 1024
        );
        let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_REQUEST_LOG_MAX, "1048576")]);
        assert_eq!(
            Config::resolve(&env, None).unwrap().request_log_max,
            1 << 20
        );
        for bad in ["1000", "32M", "-1"] {
            let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_REQUEST_LOG_MAX, bad)]);
            let e = Config::resolve(&env, None).unwrap_err().to_string();
            assert!(e.contains("AUTHSOME_REQUEST_LOG_MAX"), "{bad}: {e}");
        }
    }

    #[test]
    fn keyring_can_be_switched_off() {
        for v in ["off", "0", "false", "NO"] {
            let env = MapEnv::from_pairs([("HOME", "/h"), (ENV_KEYRING, v)]);
            assert!(!Config::resolve(&env, None).unwrap().keyring, "{v}");
        }
    }

    #[test]
    fn resolve_override_parses_and_rejects() {
        let r = parse_resolve("API.Acme.test.=127.0.0.1, other.test=[::1]").unwrap();
        assert_eq!(
            r[0],
            ("api.acme.test".to_string(), "127.0.0.1".parse().unwrap())
        );
        assert_eq!(r[1], ("other.test".to_string(), "::1".parse().unwrap()));
        for bad in [
            "nohost",
            "a.test=not-an-ip",
            "=127.0.0.1",
            "a b.test/x=127.0.0.1",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_home_is_a_clear_error() {
        let err = Config::resolve(&MapEnv::default(), None).unwrap_err();
        assert!(err.to_string().contains("AUTHSOME_HOME"));
        assert!(err.hint().is_some());
    }
}
