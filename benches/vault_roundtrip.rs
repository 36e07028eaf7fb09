#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Vault costs, each next to its baseline:
//! - `seal`/`open` of one field vs copying the plaintext;
//! - `put_connection` (seal + SQLite transaction, synchronous=FULL) vs the
//!   same row written to a plain SQLite table with the same pragmas;
//! - `read_secrets` (select + open) vs a plain select.
//!
//! Run with `cargo bench --bench vault_roundtrip`.

use std::hint::black_box;

use authsome::home::Home;
use authsome::secret::Secret;
use authsome::vault::crypto::{self, Aad, Key};
use authsome::vault::{ConnectionStatus, KeySource, MasterKey, NewConnection, Vault};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const VALUE: &str = "sk-bench0123456789abcdefghijklmnopqrstuvwxyz0123456789";

fn conn(name: &str) -> NewConnection {
    NewConnection {
        provider: "openai".into(),
        name: name.into(),
        auth_type: "api_key".into(),
        status: ConnectionStatus::Connected,
        account_label: None,
        token_type: None,
        scopes: vec![],
        expires_at: None,
        api_key: Some(Secret::new(VALUE.into())),
        access_token: None,
        refresh_token: None,
        cookies: None,
        flow: None,
    }
}

fn field_crypto(c: &mut Criterion) {
    let key = Key::generate().unwrap();
    let aad = Aad {
        table: "connections",
        record_id: "0123456789abcdef",
        field: "api_key",
        key_version: 1,
    };
    let blob = crypto::seal(&key, &aad, VALUE.as_bytes()).unwrap();
    let mut g = c.benchmark_group("field");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_copy", |b| {
        b.iter(|| black_box(VALUE.as_bytes().to_vec()))
    });
    g.bench_function("seal", |b| {
        b.iter(|| crypto::seal(&key, &aad, black_box(VALUE.as_bytes())).unwrap())
    });
    g.bench_function("open", |b| {
        b.iter(|| crypto::open(&key, &aad, black_box(&blob)).unwrap())
    });
    g.finish();
}

fn rows(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("h"));
    let vault = Vault::open(&home, &MasterKey::from_bytes([1; 32], KeySource::Env)).unwrap();
    let rec = vault.put_connection(conn("read"), true).unwrap();

    let plain = rusqlite::Connection::open(dir.path().join("plain.db")).unwrap();
    plain.pragma_update(None, "journal_mode", "WAL").unwrap();
    plain.pragma_update(None, "synchronous", "FULL").unwrap();
    plain
        .execute_batch(
            "CREATE TABLE t (provider TEXT, name TEXT, api_key BLOB, PRIMARY KEY (provider, name))",
        )
        .unwrap();
    plain
        .execute(
            "INSERT INTO t VALUES ('openai', 'read', ?1)",
            [VALUE.as_bytes()],
        )
        .unwrap();

    let mut g = c.benchmark_group("row");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    g.bench_function("baseline_plain_insert", |b| {
        b.iter(|| {
            let tx = plain.unchecked_transaction().unwrap();
            tx.execute(
                "INSERT OR REPLACE INTO t VALUES ('openai', 'w', ?1)",
                [VALUE.as_bytes()],
            )
            .unwrap();
            tx.commit().unwrap();
        })
    });
    g.bench_function("seal_and_insert", |b| {
        b.iter(|| vault.put_connection(conn("w"), true).unwrap())
    });
    g.bench_function("baseline_plain_select", |b| {
        b.iter(|| {
            plain
                .query_row(
                    "SELECT api_key FROM t WHERE provider = 'openai' AND name = 'read'",
                    [],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .unwrap()
        })
    });
    g.bench_function("select_and_open", |b| {
        b.iter(|| vault.read_secrets(black_box(&rec)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, field_crypto, rows);
criterion_main!(benches);
