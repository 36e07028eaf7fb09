//! The vault's rules on both stores: one scenario, run on SQLite and on a
//! real PostgreSQL server; then what only a shared store has (racing
//! initialisation, the creator, the schema's twin, a dump without secrets).

use super::oauth::{ClientSource, OAuthClient};
use super::pg_harness::Postgres;
use super::tests::{api_key_conn, key};
use super::*;
use crate::secret::Secret;

fn pg_vault(pg: &Postgres, k: u8) -> Result<Vault> {
    Vault::open_postgres(&pg.url(), 4, None, &key(k), Some("did:key:z6MkCreator"))
}

fn s(v: &str) -> Secret<String> {
    Secret::new(v.into())
}

/// Everything the vault promises, through its public methods.
fn scenario(v: &Vault) {
    // put, read, duplicates
    let rec = v
        .put_connection(api_key_conn("openai", "work", "sk-CANARY-work"), false)
        .unwrap();
    assert!(rec.is_default && rec.has_api_key);
    assert!(matches!(
        v.put_connection(api_key_conn("openai", "work", "sk-x"), false),
        Err(Error::ConnectionExists { .. })
    ));
    v.put_connection(api_key_conn("openai", "home", "sk-CANARY-home"), false)
        .unwrap();
    assert_eq!(
        v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
        "sk-CANARY-work"
    );
    // defaults and choices
    v.set_default("openai", "home", &["api.shared.test".into()])
        .unwrap();
    assert_eq!(
        v.default_connection("openai").unwrap().unwrap().name,
        "home"
    );
    assert_eq!(
        v.provider_choices().unwrap(),
        vec![("api.shared.test".to_string(), "openai".to_string())]
    );
    assert!(v.delete_connection("openai", "home").unwrap());
    assert_eq!(
        v.default_connection("openai").unwrap().unwrap().name,
        "work"
    );
    assert!(!v.delete_connection("openai", "home").unwrap());
    assert_eq!(v.list_connections().unwrap().len(), 1);
    // tokens: compare-and-swap on the refresh token
    let mut n = api_key_conn("github", "default", "unused");
    n.api_key = None;
    n.auth_type = "oauth2".into();
    n.access_token = Some(s("AT-CANARY-1"));
    n.refresh_token = Some(s("RT-CANARY-1"));
    n.expires_at = Some(5);
    let gh = v.put_connection(n, false).unwrap();
    assert!(
        v.update_tokens(
            &gh,
            Some(&s("RT-CANARY-1")),
            &s("AT-CANARY-2"),
            Some(&s("RT-CANARY-2")),
            Some(99)
        )
        .unwrap()
    );
    assert!(
        !v.update_tokens(
            &gh,
            Some(&s("RT-CANARY-1")),
            &s("AT-3"),
            Some(&s("RT-3")),
            Some(100)
        )
        .unwrap()
    );
    let gh = v.find_connection("github", "default").unwrap().unwrap();
    assert_eq!(gh.expires_at, Some(99));
    let sec = v.read_secrets(&gh).unwrap();
    assert_eq!(sec.refresh_token.unwrap().expose(), "RT-CANARY-2");
    v.set_status(&gh, ConnectionStatus::Expired).unwrap();
    assert_eq!(
        v.find_connection("github", "default")
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Expired
    );
    // OAuth clients
    v.put_oauth_client(&OAuthClient {
        provider: "github".into(),
        client_id: "cid".into(),
        client_secret: Some(s("CS-CANARY")),
        source: ClientSource::Registration,
        base_url: None,
        registration_client_uri: None,
        registration_access_token: None,
        endpoints: Some("{}".into()),
        redirect_uri: None,
    })
    .unwrap();
    let c = v.get_oauth_client("github").unwrap().unwrap();
    assert_eq!(c.client_secret.unwrap().expose(), "CS-CANARY");
    assert!(v.delete_oauth_client("github").unwrap());
    assert!(v.get_oauth_client("github").unwrap().is_none());
    // custom providers keep their tag; an edit outside authsome is refused
    v.put_custom_provider("acme", r#"{"name":"acme"}"#).unwrap();
    v.put_custom_provider("evil", r#"{"name":"evil"}"#).unwrap();
    v.write("test", |tx| {
        tx.execute(
            "UPDATE custom_providers SET definition = ?1 WHERE name = 'evil'",
            params![r#"{"name":"evil","api_url":"https://attacker.test"}"#],
        )
    })
    .unwrap();
    let (good, bad) = v.custom_providers_checked().unwrap();
    assert_eq!(good.len(), 1);
    assert_eq!(bad, vec!["evil".to_string()]);
    assert_eq!(
        v.suspend_connections("openai").unwrap(),
        vec!["work".to_string()]
    );
    assert!(v.delete_custom_provider("evil").unwrap());
    // audit
    v.append_audit(
        "login",
        Some("openai"),
        Some("work"),
        Some("did:key:z"),
        "ok",
        &serde_json::json!({"n": 1}),
    )
    .unwrap();
    let a = v.list_audit(10).unwrap();
    assert_eq!(a[0].event, "login");
    assert_eq!(a[0].detail["n"], 1);
    // the team: tagged rows, the last admin stays, a forged row is ignored
    use crate::team::Role;
    v.team_put_member("did:key:zA", Role::Admin, None).unwrap();
    v.team_put_member("did:key:zM", Role::Member, Some("did:key:zA"))
        .unwrap();
    let r = v
        .team_grant("did:key:zM", "openai", "*", false, Some("did:key:zA"))
        .unwrap()
        .unwrap();
    assert!(r.may_use("did:key:zM", "openai", "work"));
    assert_eq!(
        v.team_remove_member("did:key:zA").unwrap_err().code(),
        "conflict"
    );
    v.write("test", |tx| {
        tx.execute(
            "UPDATE team_members SET role = 'admin' WHERE did = 'did:key:zM'",
            &[],
        )
    })
    .unwrap();
    let (r, bad) = v.team_roster_checked().unwrap();
    assert_eq!(r.role("did:key:zM"), None, "a forged role is ignored");
    assert!(bad.contains(&"did:key:zM".to_string()), "{bad:?}");
    assert_eq!(v.team_revoke("did:key:zM", "openai", None).unwrap().0, 1);
    assert!(v.team_remove_member("did:key:zM").unwrap().is_some());
    // a sealed field moved to another row does not open
    let work = v.find_connection("openai", "work").unwrap().unwrap();
    let mut other = api_key_conn("anthropic", "default", "sk-ant-CANARY");
    other.status = ConnectionStatus::Connected;
    let ant = v.put_connection(other, false).unwrap();
    v.write("test", |tx| {
        let blob = tx
            .query_one(
                "SELECT api_key FROM connections WHERE id = ?1",
                params![&work.id],
            )?
            .opt_blob(0)?;
        tx.execute(
            "UPDATE connections SET api_key = ?1 WHERE id = ?2",
            params![blob, &ant.id],
        )
    })
    .unwrap();
    assert!(matches!(v.read_secrets(&ant), Err(Error::Corrupt { .. })));
    let report = v.check_integrity().unwrap();
    assert!(report.sqlite_ok);
    assert_eq!(
        report.damaged,
        vec!["connection anthropic/default (api_key)".to_string()]
    );
}

#[test]
fn the_vault_keeps_its_rules_on_sqlite() {
    let (_d, _h, v) = super::tests::fresh();
    scenario(&v);
}

#[test]
fn the_vault_keeps_its_rules_on_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let v = pg_vault(&pg, 1).unwrap();
    assert_eq!(v.backend(), "postgres");
    assert_eq!(v.creator().unwrap().as_deref(), Some("did:key:z6MkCreator"));
    // An operator who writes their own identity there is ignored.
    let real = pg.psql("SELECT encode(value, 'hex') FROM meta WHERE name = 'creator_did'");
    assert!(
        !real.contains(&hex_of("did:key")),
        "the creator is sealed, not plain"
    );
    pg.psql(&format!(
        "UPDATE meta SET value = decode('{}', 'hex') WHERE name = 'creator_did'",
        hex_of("did:key:z6MkOperator")
    ));
    assert_eq!(v.creator().unwrap(), None);
    pg.psql(&format!(
        "UPDATE meta SET value = decode('{}', 'hex') WHERE name = 'creator_did'",
        real.trim()
    ));
    assert_eq!(v.creator().unwrap().as_deref(), Some("did:key:z6MkCreator"));
    scenario(&v);
    // reopened (another daemon, same key): the same data
    drop(v);
    let v = pg_vault(&pg, 1).unwrap();
    assert_eq!(v.list_connections().unwrap().len(), 3);
    // the dump holds ciphertext only
    let dump = pg.dump();
    assert!(dump.contains("connections"), "the dump has the tables");
    for canary in ["CANARY", "sk-ant", &base64_of("sk-CANARY-work")] {
        assert!(!dump.contains(canary), "{canary} in pg_dump");
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn daemons_starting_together_agree_on_one_data_key() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let opened: Vec<Vault> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    Vault::open_postgres(&url, 2, None, &key(7), Some("did:key:z6MkA")).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    opened[0]
        .put_connection(api_key_conn("openai", "default", "sk-shared"), false)
        .unwrap();
    for v in &opened {
        let rec = v.find_connection("openai", "default").unwrap().unwrap();
        assert_eq!(
            v.read_secrets(&rec).unwrap().api_key.unwrap().expose(),
            "sk-shared"
        );
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM meta WHERE name = 'dek'")
            .trim(),
        "1"
    );
    assert_eq!(
        pg.psql("SELECT version FROM authsome_schema").trim(),
        SCHEMA_VERSION.to_string()
    );
}

#[test]
fn a_daemon_with_another_master_key_is_refused_before_it_writes() {
    let Some(pg) = Postgres::start() else { return };
    pg_vault(&pg, 1)
        .unwrap()
        .put_connection(api_key_conn("openai", "default", "sk-one"), false)
        .unwrap();
    let before = pg.psql("SELECT name, encode(value, 'hex') FROM meta ORDER BY name");
    let err = pg_vault(&pg, 2).unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey { .. }), "{err:?}");
    assert_eq!(
        pg.psql("SELECT name, encode(value, 'hex') FROM meta ORDER BY name"),
        before
    );
}

#[test]
fn postgres_has_the_same_columns_as_sqlite() {
    let Some(pg) = Postgres::start() else { return };
    let _v = pg_vault(&pg, 1).unwrap();
    let (_d, _h, lite) = super::tests::fresh();
    let tables = lite
        .read("test", |tx| {
            tx.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| r.str(0))
            .collect::<Result<Vec<_>>>()
        })
        .unwrap();
    assert!(tables.len() >= 6, "{tables:?}");
    for t in tables {
        // (column, NOT NULL) in each store
        let lite_cols = lite
            .read("test", |tx| {
                tx.query(
                    "SELECT name, \"notnull\" FROM pragma_table_info(?1) ORDER BY name",
                    params![t.as_str()],
                )?
                .iter()
                .map(|r| Ok((r.str(0)?, r.i64(1)? == 1)))
                .collect::<Result<Vec<_>>>()
            })
            .unwrap();
        let pg_cols: Vec<(String, bool)> = pg
            .psql(&format!(
                "SELECT column_name, is_nullable FROM information_schema.columns \
                 WHERE table_name = '{t}' ORDER BY column_name"
            ))
            .lines()
            .map(|l| {
                let (name, nullable) = l.split_once('|').unwrap();
                (name.to_string(), nullable == "NO")
            })
            .collect();
        let names = |c: &[(String, bool)]| c.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&lite_cols), names(&pg_cols), "columns of {t}");
        // what SQLite requires, PostgreSQL requires too (its primary keys
        // are NOT NULL besides)
        for ((name, lite_nn), (_, pg_nn)) in lite_cols.iter().zip(&pg_cols) {
            assert!(!lite_nn || *pg_nn, "{t}.{name} is NOT NULL in SQLite only");
        }
    }
}
