//! `authsome migrate --to postgres://…`: copy this home's vault into an
//! empty PostgreSQL store, so its connections become a team server's.
//!
//! Works on the vault file itself, not through the daemon: a running daemon
//! keeps serving from the file (SQLite lets a reader in beside it) until it
//! is restarted with the store.

use serde_json::json;

use super::Ctx;
use super::exit::ExitStatus;
use crate::error::Error;
use crate::home::Home;
use crate::identity::Identity;
use crate::vault::master_key::{self, KeyStore, OsKeyring};
use crate::vault::{Target, Vault};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  export AUTHSOME_DATABASE_URL=postgres://authsome:PASSWORD@db.internal/authsome_team
  authsome migrate                                    # copies into AUTHSOME_DATABASE_URL
  authsome migrate --to postgres://authsome@db.internal/authsome_team --json")]
pub struct Args {
    /// The empty PostgreSQL store to copy into (`postgres://USER@HOST:PORT/DB`);
    /// default: AUTHSOME_DATABASE_URL. A URL with a password belongs in
    /// AUTHSOME_DATABASE_URL, not on the command line.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitStatus> {
    let flag = match &args.to {
        Some(to) => super::daemon::store_flag("--to", to)?,
        None => None,
    };
    let url = match &args.to {
        Some(_) => flag.as_ref(),
        None => ctx.config.database_url.as_ref(),
    };
    let Some(url) = url else {
        return Err(Error::invalid(
            "no PostgreSQL store to copy into",
            Some(
                "give --to postgres://USER@HOST:PORT/DATABASE, or set AUTHSOME_DATABASE_URL".into(),
            ),
        )
        .into());
    };
    let home = Home::new(&ctx.config.home);
    if !Vault::exists(&home) {
        return Err(Error::invalid(
            format!(
                "this home has no vault to copy ({} does not exist)",
                home.vault_db().display()
            ),
            Some(
                "point --home (or AUTHSOME_HOME) at the home whose connections you want to move"
                    .into(),
            ),
        )
        .into());
    }
    // As `doctor` does: the vault exists, so a missing key is an error,
    // never a new key.
    let keyring = ctx.config.keyring.then(|| OsKeyring::for_home(&home));
    let master = master_key::resolve(
        &ctx.config,
        &home,
        keyring.as_ref().map(|k| k as &dyn KeyStore),
        true,
    )?;
    let vault = Vault::open(&home, &master)?;
    let creator = Identity::load_or_create(&home)?;
    let report = vault.copy_to_postgres(
        Target {
            url: url.expose(),
            pool: ctx.config.database_pool,
            ca_file: ctx.config.database_ca_file.as_deref(),
        },
        &master,
        creator.did(),
    )?;
    let key_source = master.source().describe();
    if ctx.printer.json {
        ctx.printer.json(&json!({
            "status": "copied",
            "from": vault.location(),
            "to": report.store,
            "tables": report.tables,
            "verified_connections": report.verified_connections,
            "creator": report.creator,
            "master_key": key_source,
        }));
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    p.success(&format!(
        "Copied {} into {} ({} verified)",
        vault.location(),
        report.store,
        crate::error::count(report.verified_connections, "connection")
    ));
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|(table, n)| vec![table.clone(), n.to_string()])
        .collect();
    for line in super::printer::table(&["TABLE", "ROWS"], &rows) {
        p.data(&line);
    }
    p.status(&format!(
        "The store opens with this home's master key (from {key_source}): give every daemon on it the same key, e.g. AUTHSOME_MASTER_KEY_FILE."
    ));
    p.status(&format!(
        "This home ({}) is recorded as the store's creator (the team's first admin when it has none).",
        report.creator
    ));
    p.status("A daemon already running for this home keeps using the local vault file until it is restarted with the store (AUTHSOME_DATABASE_URL or `daemon serve --store`).");
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::super::daemon::store_flag;

    #[test]
    fn a_store_url_on_argv_never_carries_a_password() {
        for flag in ["--to", "--store"] {
            for url in [
                "postgres://authsome:hunter2@db.internal/team",
                "postgresql://u:p@127.0.0.1:5432/x",
                "postgres://authsome@db.internal/team?password=hunter2",
            ] {
                let err = store_flag(flag, url).unwrap_err().to_string();
                assert!(err.starts_with(&format!("{flag} must not carry")), "{err}");
                assert!(!err.contains("hunter2"), "{err}");
            }
            let ok = store_flag(flag, "postgres://authsome@db.internal:5432/team").unwrap();
            assert_eq!(
                ok.unwrap().expose(),
                "postgres://authsome@db.internal:5432/team"
            );
            assert!(store_flag(flag, "sqlite:").unwrap().is_none());
            assert!(store_flag(flag, "mysql://db/x").is_err());
        }
    }
}
