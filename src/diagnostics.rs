//! `doctor` checks as data: each [`Check`] says what was looked at, what was
//! found and, when something is wrong, the command that fixes it. Nothing
//! here prints, and nothing here creates keys or files: a check on a fresh
//! home reports what will be created, it does not create it.

use serde::Serialize;

use crate::config::Config;
use crate::error::Error;
use crate::home::{self, Home};
use crate::identity::Identity;
use crate::providers::Registry;
use crate::vault::master_key::{self, KeyStore, KeyringLookup, OsKeyring};
use crate::vault::{MasterKey, Vault};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One diagnostic.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            hint: None,
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>, hint: Option<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            hint,
        }
    }
    fn fail(name: &'static str, err: &Error) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: err.to_string(),
            hint: err.hint(),
        }
    }
}

/// Runs every check against the home `config` names.
pub fn run(config: &Config) -> Vec<Check> {
    let home = Home::new(&config.home);
    let mut checks = vec![check_home(&home)];
    let keyring = config.keyring.then(|| OsKeyring::for_home(&home));
    checks.push(match &keyring {
        None => Check::pass("keyring", "switched off (AUTHSOME_KEYRING=off)"),
        Some(k) => match k.get() {
            KeyringLookup::Found(_) => {
                Check::pass("keyring", "available; holds this home's master key")
            }
            KeyringLookup::Empty => Check::pass("keyring", "available; holds no key for this home"),
            KeyringLookup::Unavailable(why) => {
                tracing::debug!(error = %why, "the OS keyring is unavailable");
                Check::pass(
                    "keyring",
                    format!("{}: the key file is used instead", keyring_words(&why)),
                )
            }
        },
    });
    let vault_exists = Vault::exists(&home) || config.database_url.is_some();
    if !vault_exists
        && config.master_key.is_none()
        && config.master_key_file.is_none()
        && !home.master_key().exists()
    {
        checks.push(Check::warn(
            "master key",
            "none yet; one is created on the first `authsome login`",
            None,
        ));
        checks.push(Check::warn(
            "vault",
            format!("{} does not exist yet", home.vault_db().display()),
            None,
        ));
    } else {
        let master = master_key::resolve(
            config,
            &home,
            keyring.as_ref().map(|k| k as &dyn KeyStore),
            true,
        );
        match master {
            Err(e) => checks.push(Check::fail("master key", &e)),
            Ok(m) => {
                checks.push(Check::pass(
                    "master key",
                    format!("from {} ({})", m.source().describe(), kind(&m)),
                ));
                if let Some(url) = &config.database_url {
                    let store = Vault::open_postgres(
                        url.expose(),
                        2,
                        config.database_ca_file.as_deref(),
                        &m,
                        None,
                    );
                    match store {
                        Ok(v) => check_store(&home, &v, &v.location(), &mut checks),
                        Err(e) => checks.push(Check::fail("store", &e)),
                    }
                } else if vault_exists {
                    check_vault(&home, &m, &mut checks);
                } else {
                    checks.push(Check::warn(
                        "vault",
                        format!("{} does not exist yet", home.vault_db().display()),
                        None,
                    ));
                }
            }
        }
    }
    checks.push(check_upstream(config));
    checks.push(match Identity::load(&home) {
        Ok(Some(id)) => Check::pass("identity", id.did().to_string()),
        Ok(None) => Check::warn(
            "identity",
            "none yet; created on first use (`authsome whoami`)",
            None,
        ),
        Err(e) => Check::fail("identity", &e),
    });
    checks
}

/// The sandbox mode `env` asks for and what this kernel supports (probed:
/// it starts a confined test process), as `authsome run` would find them.
pub fn sandbox(env: &dyn crate::config::Env) -> (crate::sandbox::Support, crate::sandbox::Mode) {
    let mode = env
        .var(crate::config::ENV_SANDBOX)
        .and_then(|v| crate::sandbox::Mode::parse(&v))
        .unwrap_or_default();
    let pretend = crate::sandbox::Pretend::from_value(
        env.var(crate::sandbox::ENV_PRETEND_UNAVAILABLE).as_deref(),
    );
    (crate::sandbox::probe(pretend), mode)
}

/// What `authsome run` can confine on this kernel (see [`crate::sandbox`]).
pub fn check_sandbox(support: &crate::sandbox::Support, mode: crate::sandbox::Mode) -> Check {
    use crate::sandbox::Mode;
    let parts: Vec<String> = support
        .confinements()
        .into_iter()
        .map(|(what, r)| match r {
            Ok(v) => format!("{what}: {v}"),
            Err(why) => format!("{what}: MISSING ({why})"),
        })
        .collect();
    let detail = format!("mode {}; {}", mode.as_str(), parts.join("; "));
    if mode == Mode::Off {
        return Check::warn(
            "sandbox",
            detail,
            Some("AUTHSOME_SANDBOX=off: `authsome run` children can read the vault's files and call the daemon".into()),
        );
    }
    match &support.namespaces {
        Err(why) => Check {
            name: "sandbox",
            status: if mode == Mode::Require { Status::Fail } else { Status::Warn },
            detail,
            hint: Some(format!(
                "`authsome run` cannot confine its child here ({why}); it runs unconfined with a warning, or refuses with --sandbox require"
            )),
        },
        Ok(()) if support.landlock_abi == 0 => Check {
            name: "sandbox",
            status: if mode == Mode::Require { Status::Fail } else { Status::Warn },
            detail,
            hint: Some("without Landlock a confined child could still read the home through /proc/<pid>/root of your other processes, so `run` warns (and `--sandbox require` refuses); enable Landlock (Linux ≥ 5.13, `lsm=…,landlock`)".into()),
        },
        Ok(()) => Check::pass("sandbox", detail),
    }
}

/// The keyring's failure in words (the raw error is logged at `-v`).
fn keyring_words(raw: &str) -> &'static str {
    let r = raw.to_ascii_lowercase();
    if r.contains("dbus") || r.contains("d-bus") || r.contains("failed to connect to address") {
        "no desktop keyring (no D-Bus session)"
    } else if r.contains("locked") {
        "the desktop keyring is locked"
    } else if r.contains("no such interface")
        || r.contains("secret service")
        || r.contains("org.freedesktop.secrets")
    {
        "no Secret Service on the session bus"
    } else {
        "the OS keyring is unavailable (`authsome doctor -v` shows why)"
    }
}

fn kind(m: &MasterKey) -> &'static str {
    if m.is_passphrase() {
        "passphrase, Argon2id"
    } else {
        "256-bit key"
    }
}

fn check_home(home: &Home) -> Check {
    match home::mode_of(home.root()) {
        None => Check::warn(
            "home",
            format!("{} does not exist yet", home.root().display()),
            None,
        ),
        Some(mode) if mode & 0o077 != 0 => Check::fail(
            "home",
            &Error::InsecurePermissions {
                path: home.root().to_path_buf(),
                mode,
                dir: true,
            },
        ),
        Some(mode) => Check::pass(
            "home",
            format!("{} (mode {mode:03o})", home.root().display()),
        ),
    }
}

fn check_vault(home: &Home, master: &MasterKey, checks: &mut Vec<Check>) {
    let path = home.vault_db();
    if let Some(mode) = home::mode_of(&path)
        && mode & 0o077 != 0
    {
        checks.push(Check::fail(
            "vault file",
            &Error::InsecurePermissions {
                path: path.clone(),
                mode,
                dir: false,
            },
        ));
    }
    let vault = match Vault::open(home, master) {
        Ok(v) => v,
        Err(e) => {
            checks.push(Check::fail("vault", &e));
            return;
        }
    };
    check_store(home, &vault, &path.display().to_string(), checks);
}

/// The records decrypt, the store says it is sound, the providers load.
fn check_store(home: &Home, vault: &Vault, location: &str, checks: &mut Vec<Check>) {
    match vault.check_integrity() {
        Err(e) => checks.push(Check::fail("integrity", &e)),
        Ok(r) if !r.sqlite_ok => checks.push(Check {
            name: "integrity",
            status: Status::Fail,
            detail: format!("SQLite reports damage: {}", r.sqlite_detail.unwrap_or_default()),
            hint: Some("restore vault.db from a backup".into()),
        }),
        Ok(r) if !r.damaged.is_empty() => checks.push(Check {
            name: "integrity",
            status: Status::Fail,
            detail: format!("{} of {} records fail to decrypt: {}", r.damaged.len(), r.records, r.damaged.join(", ")),
            hint: Some("`authsome logout PROVIDER --connection NAME` removes a damaged record; log in again to replace it".into()),
        }),
        Ok(r) => checks.push(Check::pass("vault", format!("{location} ({}, all decrypt)", crate::error::count(r.records, "connection")))),
    }
    match vault.list_custom_providers().and_then(|c| Registry::with_custom(&c)) {
        Err(e) => checks.push(Check::fail("providers", &e)),
        Ok(reg) if !reg.problems.is_empty() => checks.push(Check {
            name: "providers",
            status: Status::Fail,
            detail: reg.problems.iter().map(|(n, e)| format!("{n}: {e}")).collect::<Vec<_>>().join("; "),
            hint: Some("fix the file and run `authsome provider register FILE --force`, or `authsome provider remove NAME`".into()),
        }),
        Ok(reg) => {
            let custom = reg.iter().filter(|e| e.source != crate::providers::ProviderSource::Bundled).count();
            checks.push(Check::pass("providers", format!("{} loaded ({custom} custom)", reg.len())));
            checks.extend(check_system_ca(home, &reg));
        }
    }
}

/// The persistent CA of system-wide mode, when there is one: does it cover
/// every registered provider's hosts?
fn check_system_ca(home: &Home, reg: &Registry) -> Option<Check> {
    let info = home.root().join("ca").join("ca.json");
    let text = std::fs::read(&info).ok()?;
    let names: Vec<String> = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()?
        .get("names")?
        .as_array()?
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    let wanted = crate::routing::RouteTable::build(reg.iter().map(|e| e.def.as_ref())).ca_names();
    let covered = |h: &str| {
        names
            .iter()
            .any(|n| h == n || h.ends_with(&format!(".{n}")))
    };
    let missing: Vec<&String> = wanted.iter().filter(|h| !covered(h)).collect();
    Some(if missing.is_empty() {
        Check::pass(
            "system CA",
            format!(
                "{} covers all {} provider host names",
                home.root().join("ca").join("ca.pem").display(),
                wanted.len()
            ),
        )
    } else {
        Check::warn(
            "system CA",
            format!(
                "{} outside the system-wide CA's name constraints: {}",
                crate::error::count(missing.len(), "provider host name"),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(format!(
                "to renew it: `authsome ca uninstall`, `authsome daemon stop`, delete {}, then `authsome ca install` (`authsome run` is not affected)",
                home.root().join("ca").display()
            )),
        )
    })
}

/// The proxy's upstream settings: resolver override and extra roots.
pub fn check_upstream(config: &Config) -> Check {
    let resolve = if config.resolve.is_empty() {
        "system DNS".to_string()
    } else {
        format!(
            "AUTHSOME_RESOLVE {}",
            config
                .resolve
                .iter()
                .map(|(h, ip)| format!("{h}={ip}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let Some(file) = &config.upstream_ca_file else {
        return Check::pass("upstream", format!("{resolve}; system roots"));
    };
    use rustls_pki_types::pem::PemObject;
    let certs = std::fs::read(file).ok().map(|b| {
        rustls_pki_types::CertificateDer::pem_slice_iter(&b)
            .filter(|c| c.is_ok())
            .count()
    });
    match certs {
        Some(n) if n > 0 => Check::pass(
            "upstream",
            format!(
                "{resolve}; system roots + {n} from AUTHSOME_UPSTREAM_CA_FILE {}",
                file.display()
            ),
        ),
        _ => Check {
            name: "upstream",
            status: Status::Fail,
            detail: format!(
                "AUTHSOME_UPSTREAM_CA_FILE {} holds no readable PEM certificate",
                file.display()
            ),
            hint: Some("point it at a PEM file of CA certificates, or unset it".into()),
        },
    }
}
