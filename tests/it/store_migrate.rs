//! `authsome migrate --to postgres://…` (issue #16): a laptop's vault moved
//! into a real PostgreSQL server, then served from there by a daemon of
//! another home given the laptop's master key, the way a team server is
//! set up from an admin's laptop.

use crate::common::TestHome;
use crate::common::lab::Lab;
use crate::common::postgres::Postgres;

/// A daemon's home on the store, with the laptop's master key file, reaching
/// the laptop's upstream.
fn server(laptop: &Lab, pg: &Postgres) -> Lab {
    let s = Lab {
        home: TestHome::new(),
        up: laptop.up.clone(),
        key: laptop.key.clone(),
    };
    {
        let mut e = s.home.extra.lock().unwrap();
        e.push(("AUTHSOME_DATABASE_URL".into(), pg.url()));
        e.push((
            "AUTHSOME_MASTER_KEY_FILE".into(),
            laptop.home.path("master.key").to_str().unwrap().into(),
        ));
    }
    s
}

/// `pg_dump` without its per-run `\restrict` key lines.
fn dump(pg: &Postgres) -> String {
    pg.dump()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_laptops_vault_moves_into_postgres_and_a_daemon_serves_it_from_there() {
    let Some(pg) = Postgres::start() else { return };
    // The laptop: a custom provider, an API-key login, its daemon running.
    let laptop = Lab::new();
    assert!(laptop.home.daemon().is_some(), "the laptop's daemon runs");
    let out = laptop
        .cmd(["migrate", "--to", &pg.url(), "--json"])
        .run()
        .success();
    assert!(!out.stdout.contains(&laptop.key) && !out.stderr.contains(&laptop.key));
    let v = out.json();
    assert_eq!(v["status"], "copied");
    assert_eq!(v["tables"]["connections"], 1);
    assert_eq!(v["tables"]["custom_providers"], 1);
    assert_eq!(v["tables"]["meta"], 4);
    assert_eq!(v["verified_connections"], 1);
    assert_eq!(v["to"], pg.url());
    let did = laptop.cmd(["whoami", "--json"]).run().success().json()["did"].clone();
    assert_eq!(v["creator"], did);

    // The team server: another home, the laptop's master key, the store.
    let team = server(&laptop, &pg);
    let listed = team.cmd(["list", "--json"]).run().success();
    assert!(listed.stdout.contains("acme"), "{}", listed.stdout);
    let before = laptop.up.records().len();
    let status = team.run_sh("curl -sS -o /dev/null -w '%{http_code}' \"$URL/from-the-store\"");
    assert_eq!(status.stdout.trim(), "200", "{}", status.stderr);
    let recs = laptop.up.records();
    assert_eq!(recs.len(), before + 1);
    assert_eq!(
        recs.last().unwrap().all("authorization"),
        vec![format!("Bearer {}", laptop.key)],
        "exactly the laptop's credential, once"
    );
    // The migration is on the store's record, by the laptop's identity.
    let log = team.cmd(["log", "--json"]).run().success();
    assert!(log.stdout.contains("store.migrate"), "{}", log.stdout);
    // Ciphertext only in the database.
    assert!(!pg.dump().contains(&laptop.key), "the key is in pg_dump");

    // The laptop's daemon still serves from its own file.
    let local = laptop.run_sh("curl -sS -o /dev/null -w '%{http_code}' \"$URL/local\"");
    assert_eq!(local.stdout.trim(), "200", "{}", local.stderr);

    // Again, into the store that now holds it: refused, nothing changes.
    let snapshot = dump(&pg);
    laptop
        .cmd(["migrate", "--to", &pg.url()])
        .run()
        .code(4)
        .stderr_has("is not empty");
    assert!(dump(&pg) == snapshot, "a refused migrate changed the store");
}

#[test]
fn migrate_refuses_a_password_on_argv_a_missing_store_and_a_home_without_a_vault() {
    let Some(pg) = Postgres::start() else { return };
    let laptop = Lab::new();
    let with_password = format!(
        "postgres://authsome:hunter2-CANARY@127.0.0.1:{}/postgres",
        pg.port()
    );
    let out = laptop
        .cmd(["migrate", "--to", &with_password])
        .run()
        .code(4)
        .stderr_has("--to must not carry the database password")
        .stderr_has("AUTHSOME_DATABASE_URL");
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert_eq!(
        pg.psql("SELECT to_regclass('meta') IS NULL").trim(),
        "t",
        "nothing was written"
    );
    // No store named anywhere.
    laptop
        .cmd(["migrate"])
        .env_remove("AUTHSOME_DATABASE_URL")
        .run()
        .code(4)
        .stderr_has("no PostgreSQL store");
    // A home with nothing to copy: no key is made for it either.
    let empty = TestHome::new();
    empty
        .cmd(["migrate", "--to", &pg.url()])
        .run()
        .code(4)
        .stderr_has("no vault to copy");
    assert!(!empty.path("master.key").exists());
    // The URL from the environment, for people: what was copied, and what
    // the running daemon keeps doing.
    let out = laptop
        .cmd(["migrate"])
        .env("AUTHSOME_DATABASE_URL", &pg.url())
        .run()
        .success()
        .stdout_has("connections")
        .stderr_has("1 connection verified")
        .stderr_has("keeps using the local vault file until it is restarted");
    assert!(!out.stdout.contains(&laptop.key) && !out.stderr.contains(&laptop.key));
    assert_eq!(pg.psql("SELECT count(*) FROM connections").trim(), "1");
}
