//! Copying a home's SQLite vault into an empty PostgreSQL store
//! (`authsome migrate --to`), so a laptop's connections become a team
//! server's.
//!
//! The copy is verbatim: every table, every column, every ciphertext as it
//! is. The associated data of a sealed field names its table, record, field
//! and key version, never the store, so the same master key opens the copy;
//! `meta` (salt, key-check value, wrapped data key, key version) travels too,
//! the key version converted to PostgreSQL's form (decimal text in bytes),
//! plus `creator_did`, the migrating home's identity (the team's first
//! admin). Audit ids are kept, and the identity sequence is moved past them.
//!
//! Why the column lists come from SQLite itself (`pragma_table_info`) and
//! are checked against PostgreSQL's: a column a later migration adds is
//! then copied without anyone touching this file, and a column one dialect
//! lacks stops the copy instead of being dropped on the way.
//!
//! All or nothing: the schema, the rows, the sequence and the audit entry
//! are one PostgreSQL transaction, under the locks a starting daemon takes
//! (so it waits, then finds the copy). The target must be empty. After the
//! commit the store is opened again as a daemon would, with the same master
//! key, and every record must open; if not, the copy is removed again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::db::{Row, Tx, Value, params};
use super::{MasterKey, Store, Vault, pg, schema};
use crate::clock::now_unix;
use crate::error::{Error, Result};

/// Where to copy to.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `postgres://…` (may carry a password: never printed).
    pub url: &'a str,
    /// Connections the verifying open may use.
    pub pool: usize,
    /// A CA bundle for the database's TLS certificate.
    pub ca_file: Option<&'a Path>,
}

/// What [`Vault::copy_to_postgres`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The store, without its password.
    pub store: String,
    /// Rows copied, per table (`meta` included, `creator_did` not).
    pub tables: BTreeMap<String, u64>,
    /// Connections that opened in the store, every secret field decrypting.
    pub verified_connections: usize,
    /// The identity recorded as the store's creator.
    pub creator: String,
}

/// One table of the source, its columns in SQLite's order.
struct Table {
    name: String,
    columns: Vec<String>,
    rows: Vec<Row>,
}

/// The lock `Vault::open_postgres` initialises a store under (`unlock`;
/// `schema::migrate_postgres` takes its own): a daemon starting on the
/// store meanwhile waits for the copy, then finds its data key instead of
/// making one.
const INIT_LOCK: &str = "vault-init";

/// PostgreSQL tables that are not the vault's data.
const PG_OWN: &[&str] = &["authsome_schema"];

/// Parameters per `INSERT`, well under PostgreSQL's 65535.
const PARAMS_PER_INSERT: usize = 1000;

impl Vault {
    /// Copies this vault (a home's SQLite file) into the empty PostgreSQL
    /// store `target`, then opens the store with `master` and checks that
    /// every record opens. `creator` (this home's identity) is recorded as
    /// the store's creator; the store's audit log gets `store.migrate`.
    pub fn copy_to_postgres(
        &self,
        target: Target<'_>,
        master: &MasterKey,
        creator: &str,
    ) -> Result<CopyReport> {
        if !matches!(self.store, Store::Sqlite { .. }) {
            return Err(Error::invalid(
                "this vault is already a PostgreSQL store",
                Some("`authsome migrate` copies a home's local vault file".into()),
            ));
        }
        // What cannot open here would not open there: say so now.
        let integrity = self.check_integrity()?;
        if !integrity.sqlite_ok || !integrity.damaged.is_empty() {
            let mut what = integrity.damaged;
            if let Some(d) = integrity.sqlite_detail {
                what.insert(0, format!("the vault file ({d})"));
            }
            return Err(Error::Corrupt {
                what: what.join(", "),
            });
        }
        let before = Checked::of(self)?;
        let tables = self.snapshot()?;
        let pg = pg::PgStore::new(target.url, 2, target.ca_file)?;
        let location = pg.location().to_string();
        let store = Store::Postgres(Box::new(pg));
        let sealed = super::seal_creator(&self.dek, self.key_version, creator)?;
        let copied = write_copy(&store, &location, &tables, (creator, sealed))?;
        let verified = verify_or_undo(&store, target, master, creator, &tables, &copied, &before)?;
        Ok(CopyReport {
            store: location,
            tables: copied,
            verified_connections: verified,
            creator: creator.to_string(),
        })
    }

    /// Every table with its rows, parents before children (foreign keys),
    /// read in one transaction so the copy is one moment of the vault.
    fn snapshot(&self) -> Result<Vec<Table>> {
        // A writing transaction only to hold a consistent view: a running
        // daemon's writes wait for it (busy timeout), it holds no other lock.
        let mut found = self.write("cannot read the vault", |tx| {
            let names = tx
                .query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    &[],
                )?
                .iter()
                .map(|r| r.str(0))
                .collect::<Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let columns = tx
                    .query(
                        "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
                        params![name.as_str()],
                    )?
                    .iter()
                    .map(|r| r.str(0))
                    .collect::<Result<Vec<_>>>()?;
                let parents = tx
                    .query(
                        "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)",
                        params![name.as_str()],
                    )?
                    .iter()
                    .map(|r| r.str(0))
                    .collect::<Result<BTreeSet<_>>>()?;
                // The store's creator is the migrating home, whatever the
                // vault says.
                let only = if name == "meta" {
                    " WHERE name <> 'creator_did'"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT {} FROM {}{only}",
                    column_list(&columns),
                    ident(&name)
                );
                let rows = tx.query(&sql, &[])?;
                out.push((
                    Table {
                        name,
                        columns,
                        rows,
                    },
                    parents,
                ));
            }
            Ok(out)
        })?;
        // Parents first, so PostgreSQL's foreign keys hold row by row.
        let mut ordered: Vec<Table> = Vec::with_capacity(found.len());
        while !found.is_empty() {
            let placed: BTreeSet<String> = ordered.iter().map(|t| t.name.clone()).collect();
            let Some(i) = found.iter().position(|(t, parents)| {
                parents.iter().all(|p| *p == t.name || placed.contains(p))
            }) else {
                return Err(Error::invalid(
                    "the vault's tables refer to each other in a cycle; cannot order the copy",
                    None,
                ));
            };
            ordered.push(found.remove(i).0);
        }
        Ok(ordered)
    }
}

/// The rows each check leaves out, before and after: a copy changes none.
#[derive(Debug, PartialEq, Eq)]
struct Checked {
    providers: Vec<String>,
    team: Vec<String>,
}

impl Checked {
    fn of(v: &Vault) -> Result<Checked> {
        let mut providers = v.custom_providers_checked()?.1;
        let mut team = v.team_roster_checked()?.1;
        providers.sort();
        team.sort();
        Ok(Checked { providers, team })
    }
}

/// One transaction: schema, emptiness, columns, rows, sequences, creator,
/// audit entry. Returns the rows copied per table.
fn write_copy(
    store: &Store,
    location: &str,
    tables: &[Table],
    creator: (&str, Vec<u8>),
) -> Result<BTreeMap<String, u64>> {
    let (creator, sealed_creator) = creator;
    store.write("cannot copy the vault into the store", |tx| {
        schema::migrate_postgres(tx)?;
        tx.lock_key(INIT_LOCK)?;
        let pg_tables = pg_columns(tx)?;
        refuse_unless_empty(tx, location, &pg_tables)?;
        check_columns(tables, &pg_tables)?;
        let mut copied = BTreeMap::new();
        for t in tables {
            let types = &pg_tables[&t.name];
            let n = insert_rows(tx, t, types)?;
            copied.insert(t.name.clone(), n);
        }
        // The identity columns (the audit log's id) continue after the
        // copied ids.
        let identities = tx
            .query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND is_identity = 'YES'",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.str(0)?, r.str(1)?)))
            .collect::<Result<Vec<_>>>()?;
        for (table, column) in identities {
            let c = ident(&column);
            tx.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence(?1, ?2), COALESCE(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {}",
                    ident(&table)
                ),
                params![ident(&table), column.as_str()],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('creator_did', ?1)",
            params![sealed_creator],
        )?;
        let detail = serde_json::json!({"from": "sqlite", "rows": copied});
        tx.execute(
            "INSERT INTO audit (ts, event, provider, connection, actor, outcome, detail) \
             VALUES (?1, 'store.migrate', NULL, NULL, ?2, 'ok', ?3)",
            params![now_unix(), creator, detail.to_string()],
        )?;
        Ok(copied)
    })
}

/// `table -> [(column, data type)]` of the store, its own tables left out.
fn pg_columns(tx: &mut Tx<'_>) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in tx.query(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         ORDER BY c.table_name, c.ordinal_position",
        &[],
    )? {
        let table = r.str(0)?;
        if PG_OWN.contains(&table.as_str()) {
            continue;
        }
        out.entry(table).or_default().push((r.str(1)?, r.str(2)?));
    }
    Ok(out)
}

fn refuse_unless_empty(
    tx: &mut Tx<'_>,
    location: &str,
    pg_tables: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<()> {
    let mut full = Vec::new();
    for table in pg_tables.keys() {
        let n = tx
            .query_one(&format!("SELECT count(*) FROM {}", ident(table)), &[])?
            .i64(0)?;
        if n > 0 {
            full.push(format!(
                "{table}: {}",
                crate::error::count(n as usize, "row")
            ));
        }
    }
    if full.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        format!(
            "the store {location} is not empty ({}); nothing was copied",
            full.join(", ")
        ),
        Some(
            "`authsome migrate` copies into a new, empty database only (e.g. `createdb authsome_team`); \
             a store a daemon already uses keeps its own connections"
                .into(),
        ),
    ))
}

/// Same tables, same columns, both ways.
fn check_columns(
    tables: &[Table],
    pg_tables: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<()> {
    let mut problems = Vec::new();
    for t in tables {
        let Some(pg_cols) = pg_tables.get(&t.name) else {
            problems.push(format!("table {} is not in the store", t.name));
            continue;
        };
        let lite: BTreeSet<&str> = t.columns.iter().map(String::as_str).collect();
        let pgc: BTreeSet<&str> = pg_cols.iter().map(|(c, _)| c.as_str()).collect();
        for c in lite.difference(&pgc) {
            problems.push(format!("{}.{c} is not in the store", t.name));
        }
        for c in pgc.difference(&lite) {
            problems.push(format!("{}.{c} is not in the vault", t.name));
        }
    }
    for name in pg_tables.keys() {
        if !tables.iter().any(|t| &t.name == name) {
            problems.push(format!("table {name} is not in the vault"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        format!(
            "the vault and the store do not have the same columns ({}); nothing was copied",
            problems.join("; ")
        ),
        Some(
            "both sides are at this build's schema, so a migration exists for one of them only: \
             please report it; copy into a database that holds nothing else"
                .into(),
        ),
    ))
}

/// Inserts `t`'s rows, several per statement; the count.
fn insert_rows(tx: &mut Tx<'_>, t: &Table, pg_cols: &[(String, String)]) -> Result<u64> {
    if t.rows.is_empty() {
        return Ok(0);
    }
    let types: Vec<&str> = t
        .columns
        .iter()
        .map(|c| {
            pg_cols
                .iter()
                .find(|(name, _)| name == c)
                .map_or("", |(_, ty)| ty.as_str())
        })
        .collect();
    let per = (PARAMS_PER_INSERT / t.columns.len().max(1)).max(1);
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        ident(&t.name),
        column_list(&t.columns)
    );
    let mut n = 0u64;
    for chunk in t.rows.chunks(per) {
        let mut sql = head.clone();
        let mut values = Vec::with_capacity(chunk.len() * t.columns.len());
        for (ri, row) in chunk.iter().enumerate() {
            sql.push_str(if ri == 0 { "(" } else { ", (" });
            for (ci, v) in row.0.iter().enumerate() {
                if ci > 0 {
                    sql.push_str(", ");
                }
                values.push(to_store(v.clone(), types[ci], &t.name, &t.columns[ci])?);
                sql.push_str(&format!("?{}", values.len()));
            }
            sql.push(')');
        }
        n += tx.execute(&sql, &values)?;
    }
    Ok(n)
}

/// A SQLite value as the store's column type takes it.
fn to_store(v: Value, pg_type: &str, table: &str, column: &str) -> Result<Value> {
    Ok(match (v, pg_type) {
        (Value::Null, _) => Value::Null,
        (v @ Value::Int(_), "bigint" | "integer" | "smallint" | "boolean") => v,
        (v @ Value::Text(_), "text" | "character varying") => v,
        (v @ Value::Blob(_), "bytea") => v,
        // SQLite's untyped `meta.value` keeps the key version as an
        // integer; PostgreSQL's bytes keep it as decimal text.
        (Value::Int(i), "bytea") => Value::Blob(i.to_string().into_bytes()),
        (Value::Text(s), "bytea") => Value::Blob(s.into_bytes()),
        (v, ty) => {
            let kind = match v {
                Value::Null => "null",
                Value::Int(_) => "an integer",
                Value::Text(_) => "text",
                Value::Blob(_) => "bytes",
            };
            return Err(Error::invalid(
                format!(
                    "{table}.{column} holds {kind}, which the store's column ({ty}) cannot take; nothing was copied"
                ),
                None,
            ));
        }
    })
}

/// Opens the store as a daemon would and checks the copy; removes the copy
/// again when it does not check out. The connections that opened.
fn verify_or_undo(
    store: &Store,
    target: Target<'_>,
    master: &MasterKey,
    creator: &str,
    tables: &[Table],
    copied: &BTreeMap<String, u64>,
    before: &Checked,
) -> Result<usize> {
    match verify(target, master, creator, copied, before) {
        Ok(n) => Ok(n),
        Err(e) => match undo(store, tables) {
            Ok(()) => {
                tracing::warn!("the copy did not check out in the store; it was removed again");
                Err(e)
            }
            Err(u) => Err(Error::invalid(
                format!(
                    "the copy did not check out in the store ({e}), and removing it failed ({u})"
                ),
                Some("empty the store's tables (or drop the database) before trying again".into()),
            )),
        },
    }
}

fn verify(
    target: Target<'_>,
    master: &MasterKey,
    creator: &str,
    copied: &BTreeMap<String, u64>,
    before: &Checked,
) -> Result<usize> {
    let v = Vault::open_postgres(
        target.url,
        target.pool,
        target.ca_file,
        master,
        Some(creator),
    )?;
    let report = v.check_integrity()?;
    if !report.damaged.is_empty() {
        return Err(Error::Corrupt {
            what: format!("in the store, {}", report.damaged.join(", ")),
        });
    }
    let after = Checked::of(&v)?;
    if after != *before {
        return Err(Error::Corrupt {
            what: format!(
                "in the store, the provider and team tags ({after:?}, before {before:?})"
            ),
        });
    }
    let providers = v.read("cannot read the store", |tx| {
        tx.query("SELECT provider FROM oauth_clients", &[])?
            .iter()
            .map(|r| r.str(0))
            .collect::<Result<Vec<_>>>()
    })?;
    for p in providers {
        v.get_oauth_client(&p)?;
    }
    let counts = v.read("cannot count the store's rows", |tx| {
        let mut out = BTreeMap::new();
        for table in copied.keys() {
            let n = tx
                .query_one(&format!("SELECT count(*) FROM {}", ident(table)), &[])?
                .i64(0)?;
            out.insert(table.clone(), n as u64);
        }
        Ok(out)
    })?;
    // plus the creator and the audit entry
    let mut expected = copied.clone();
    *expected.entry("audit".into()).or_default() += 1;
    *expected.entry("meta".into()).or_default() += 1;
    if counts != expected {
        return Err(Error::Corrupt {
            what: format!("the copy (rows in the store {counts:?}, expected {expected:?})"),
        });
    }
    if v.creator()?.as_deref() != Some(creator) {
        return Err(Error::Corrupt {
            what: "the copy's creator record".into(),
        });
    }
    Ok(report.records)
}

fn undo(store: &Store, tables: &[Table]) -> Result<()> {
    store.write("cannot remove the copy from the store", |tx| {
        tx.lock_key(INIT_LOCK)?;
        for t in tables.iter().rev() {
            tx.execute(&format!("DELETE FROM {}", ident(&t.name)), &[])?;
        }
        Ok(())
    })
}

/// A quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::oauth::{ClientSource, OAuthClient};
    use super::super::pg_harness::Postgres;
    use super::super::tests::{api_key_conn, fresh, key};
    use super::*;
    use crate::home::Home;
    use crate::secret::Secret;
    use crate::team::Role;

    const DID: &str = "did:key:z6MkMigratingLaptop";

    fn target(pg: &Postgres) -> (String, usize) {
        (pg.url(), 2)
    }

    fn copy(v: &Vault, pg: &Postgres, k: u8) -> Result<CopyReport> {
        let (url, pool) = target(pg);
        v.copy_to_postgres(
            Target {
                url: &url,
                pool,
                ca_file: None,
            },
            &key(k),
            DID,
        )
    }

    /// A laptop's vault with one of everything, and a long audit log.
    fn laptop() -> (tempfile::TempDir, Home, Vault) {
        let (d, h, v) = fresh();
        v.put_connection(api_key_conn("openai", "work", "sk-CANARY-work"), false)
            .unwrap();
        v.put_connection(api_key_conn("openai", "home", "sk-CANARY-home"), false)
            .unwrap();
        v.set_default("openai", "home", &["api.shared.test".into()])
            .unwrap();
        let mut n = api_key_conn("github", "default", "unused");
        n.api_key = None;
        n.auth_type = "oauth2".into();
        n.access_token = Some(Secret::new("AT-CANARY".into()));
        n.refresh_token = Some(Secret::new("RT-CANARY".into()));
        n.expires_at = Some(4_000_000_000);
        v.put_connection(n, false).unwrap();
        v.put_oauth_client(&OAuthClient {
            provider: "github".into(),
            client_id: "cid".into(),
            client_secret: Some(Secret::new("CS-CANARY".into())),
            source: ClientSource::Registration,
            base_url: None,
            registration_client_uri: None,
            registration_access_token: Some(Secret::new("RAT-CANARY".into())),
            endpoints: Some("{}".into()),
            redirect_uri: None,
        })
        .unwrap();
        v.put_custom_provider("acme", r#"{"name":"acme"}"#).unwrap();
        v.team_put_member("did:key:zAdmin", Role::Admin, None)
            .unwrap();
        v.team_put_member("did:key:zMember", Role::Member, Some("did:key:zAdmin"))
            .unwrap();
        v.team_grant(
            "did:key:zMember",
            "openai",
            "work",
            true,
            Some("did:key:zAdmin"),
        )
        .unwrap()
        .unwrap();
        // enough audit rows for several INSERT statements
        v.write("test", |tx| {
            for i in 0..700 {
                tx.execute(
                    "INSERT INTO audit (ts, event, provider, connection, actor, outcome, detail) \
                     VALUES (?1, 'login', 'openai', 'work', NULL, 'ok', '{}')",
                    params![1_000 + i as i64],
                )?;
            }
            Ok(())
        })
        .unwrap();
        (d, h, v)
    }

    /// `pg_dump` without its per-run `\restrict` key lines.
    fn dump(pg: &Postgres) -> String {
        pg.dump()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn count(pg: &Postgres, table: &str) -> String {
        pg.psql(&format!("SELECT count(*) FROM {table}"))
            .trim()
            .to_string()
    }

    #[test]
    fn a_vault_copies_verbatim_and_opens_in_the_store_with_the_same_key() {
        let Some(pg) = Postgres::start() else { return };
        let (_d, _h, lite) = laptop();
        let max_id = lite.list_audit(1).unwrap()[0].id;
        let report = copy(&lite, &pg, 1).unwrap();
        assert_eq!(report.verified_connections, 3);
        assert_eq!(report.creator, DID);
        assert!(!report.store.contains("password"));
        assert_eq!(report.tables["connections"], 3);
        assert_eq!(report.tables["meta"], 4, "salt, key_version, kcv, dek");
        assert_eq!(report.tables["audit"], max_id as u64);
        assert_eq!(report.tables["custom_providers"], 1);
        assert_eq!(report.tables["oauth_clients"], 1);
        assert_eq!(report.tables["team_members"], 2);
        assert_eq!(report.tables["team_grants"], 1);
        assert_eq!(report.tables["provider_choices"], 1);

        // What a daemon sees: the same secrets, defaults, clients, team.
        let v = Vault::open_postgres(&pg.url(), 2, None, &key(1), None).unwrap();
        assert_eq!(v.creator().unwrap().as_deref(), Some(DID));
        assert_eq!(v.key_version(), lite.key_version());
        let lite_conns = lite.list_connections().unwrap();
        let pg_conns = v.list_connections().unwrap();
        assert_eq!(lite_conns.len(), pg_conns.len());
        for (a, b) in lite_conns.iter().zip(&pg_conns) {
            assert_eq!((&a.id, &a.provider, &a.name), (&b.id, &b.provider, &b.name));
            assert_eq!(a.is_default, b.is_default);
            let (sa, sb) = (lite.read_secrets(a).unwrap(), v.read_secrets(b).unwrap());
            let e = |s: &Option<Secret<String>>| s.as_ref().map(|x| x.expose().to_string());
            assert_eq!(e(&sa.api_key), e(&sb.api_key));
            assert_eq!(e(&sa.access_token), e(&sb.access_token));
            assert_eq!(e(&sa.refresh_token), e(&sb.refresh_token));
        }
        assert_eq!(
            v.default_connection("openai").unwrap().unwrap().name,
            "home"
        );
        assert_eq!(
            v.provider_choices().unwrap(),
            lite.provider_choices().unwrap()
        );
        let c = v.get_oauth_client("github").unwrap().unwrap();
        assert_eq!(c.client_secret.unwrap().expose(), "CS-CANARY");
        assert_eq!(c.registration_access_token.unwrap().expose(), "RAT-CANARY");
        let (good, bad) = v.custom_providers_checked().unwrap();
        assert_eq!((good.len(), bad.len()), (1, 0));
        let (roster, bad) = v.team_roster_checked().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(roster.admins(), 1);
        assert!(roster.may_use("did:key:zMember", "openai", "work"));

        // The key version is PostgreSQL's decimal text.
        assert_eq!(
            pg.psql("SELECT convert_from(value, 'UTF8') FROM meta WHERE name = 'key_version'")
                .trim(),
            "1"
        );
        // Audit ids are kept, the migration is on the record, and new
        // entries continue after them.
        let log = v.list_audit(2).unwrap();
        assert_eq!(log[0].event, "store.migrate");
        assert_eq!(log[0].id, max_id + 1);
        assert_eq!(log[0].actor.as_deref(), Some(DID));
        assert_eq!(log[0].detail["rows"]["connections"], 3);
        v.append_audit(
            "login",
            Some("openai"),
            None,
            None,
            "ok",
            &serde_json::json!({}),
        )
        .unwrap();
        let newest = v
            .list_audit(1000)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .max()
            .unwrap();
        assert_eq!(newest, max_id + 2);
        assert_eq!(
            pg.psql("SELECT min(id) FROM audit").trim(),
            lite.list_audit(10_000)
                .unwrap()
                .iter()
                .map(|e| e.id)
                .min()
                .unwrap()
                .to_string()
        );

        // A daemon with another master key is refused.
        drop(v);
        assert!(matches!(
            Vault::open_postgres(&pg.url(), 2, None, &key(2), None),
            Err(Error::WrongMasterKey { .. })
        ));
        // Ciphertext only in the database.
        let dump = pg.dump();
        assert!(dump.contains("store.migrate"));
        assert!(!dump.contains("CANARY"), "a secret in pg_dump");
    }

    #[test]
    fn a_store_that_is_not_empty_is_refused_and_left_as_it_was() {
        let Some(pg) = Postgres::start() else { return };
        let (_d, _h, lite) = laptop();
        copy(&lite, &pg, 1).unwrap();
        let before = dump(&pg);
        assert!(before.contains("store.migrate"));
        // again, from the same vault or another one
        let err = copy(&lite, &pg, 1).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(msg.contains("is not empty"), "{msg}");
        assert!(msg.contains("connections: 3 rows"), "{msg}");
        assert!(!msg.contains("password"), "{msg}");
        let (_d2, _h2, other) = fresh();
        other
            .put_connection(api_key_conn("anthropic", "default", "sk-ant-x"), false)
            .unwrap();
        assert!(copy(&other, &pg, 1).is_err());
        assert!(dump(&pg) == before, "a refused copy wrote something");

        // a store a daemon initialised (no connection yet) is not empty either
        let Some(pg2) = Postgres::start() else { return };
        drop(Vault::open_postgres(&pg2.url(), 2, None, &key(1), Some("did:key:zOther")).unwrap());
        let err = copy(&lite, &pg2, 1).unwrap_err().to_string();
        assert!(err.contains("meta: "), "{err}");
        assert_eq!(count(&pg2, "connections"), "0");
    }

    #[test]
    fn a_column_one_side_lacks_stops_the_copy_before_anything_is_written() {
        let Some(pg) = Postgres::start() else { return };
        // a column only the vault has (a migration written for SQLite only)
        let (_d, _h, lite) = laptop();
        lite.write("test", |tx| {
            tx.batch("ALTER TABLE connections ADD COLUMN spare TEXT")
        })
        .unwrap();
        let err = copy(&lite, &pg, 1).unwrap_err().to_string();
        assert!(
            err.contains("connections.spare is not in the store"),
            "{err}"
        );
        assert_eq!(
            pg.psql("SELECT to_regclass('meta') IS NULL").trim(),
            "t",
            "not even the schema stays"
        );
        // a column only the store has
        let (_d2, _h2, lite) = laptop();
        let store = Store::Postgres(Box::new(pg::PgStore::new(&pg.url(), 2, None).unwrap()));
        store.write("test", schema::migrate_postgres).unwrap();
        pg.psql("ALTER TABLE oauth_clients ADD COLUMN spare_pg TEXT");
        let err = copy(&lite, &pg, 1).unwrap_err().to_string();
        assert!(
            err.contains("oauth_clients.spare_pg is not in the vault"),
            "{err}"
        );
        assert_eq!(count(&pg, "meta"), "0");
        assert_eq!(count(&pg, "connections"), "0");
    }

    #[test]
    fn a_copy_that_does_not_open_in_the_store_is_removed_again() {
        let Some(pg) = Postgres::start() else { return };
        let (_d, _h, lite) = laptop();
        let tables = lite.snapshot().unwrap();
        let store = Store::Postgres(Box::new(pg::PgStore::new(&pg.url(), 2, None).unwrap()));
        let sealed = super::super::seal_creator(&lite.dek, lite.key_version, DID).unwrap();
        let copied = write_copy(&store, "test", &tables, (DID, sealed)).unwrap();
        assert_eq!(count(&pg, "connections"), "3");
        let before = Checked::of(&lite).unwrap();
        let (url, pool) = target(&pg);
        let t = Target {
            url: &url,
            pool,
            ca_file: None,
        };
        // verified with another key than the vault's: refused, and undone
        let err = verify_or_undo(&store, t, &key(2), DID, &tables, &copied, &before).unwrap_err();
        assert!(matches!(err, Error::WrongMasterKey { .. }), "{err:?}");
        for table in copied.keys() {
            assert_eq!(count(&pg, table), "0", "{table} kept rows");
        }
        // the store takes a proper copy afterwards
        assert_eq!(copy(&lite, &pg, 1).unwrap().verified_connections, 3);
    }

    #[test]
    fn a_damaged_record_is_reported_before_anything_is_written() {
        let Some(pg) = Postgres::start() else { return };
        let (_d, _h, lite) = laptop();
        lite.write("test", |tx| {
            tx.execute(
                "UPDATE connections SET api_key = X'00112233445566778899aabbccddeeff00112233445566778899' WHERE name = 'work'",
                &[],
            )
        })
        .unwrap();
        let err = copy(&lite, &pg, 1).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("openai/work"), "{err}");
        assert_eq!(pg.psql("SELECT to_regclass('meta') IS NULL").trim(), "t");
    }
}
