//! Leaf certificates for the proxy: a cached leaf next to a freshly minted
//! one (new P-256 key + ECDSA signature), and the CA itself.
//!
//! Run with `cargo bench --bench ca_mint`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use authsome::ca::{Ca, RUN_VALIDITY};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn mint(c: &mut Criterion) {
    let ca = Ca::generate("bench CA", &["acme.test".into()], RUN_VALIDITY).unwrap();
    ca.leaf("api.acme.test").unwrap();
    let mut g = c.benchmark_group("ca");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cached_leaf", |b| {
        b.iter(|| ca.leaf(black_box("api.acme.test")).unwrap())
    });
    g.bench_function("fresh_leaf", |b| {
        b.iter(|| ca.mint(black_box("api.acme.test")).unwrap())
    });
    // What a handshake for a new host costs on our side: leaf + rustls config.
    let authority = authsome::proxy::tls::LeafAuthority::new(std::sync::Arc::new(
        Ca::generate("bench CA", &["acme.test".into()], RUN_VALIDITY).unwrap(),
    ))
    .unwrap();
    authority.config_for("api.acme.test").unwrap();
    g.bench_function("server_config_cached", |b| {
        b.iter(|| authority.config_for(black_box("api.acme.test")).unwrap())
    });
    let mut n = 0u64;
    g.bench_function("server_config_fresh_host", |b| {
        b.iter(|| {
            n += 1;
            authority.config_for(&format!("h{n}.acme.test")).unwrap()
        })
    });
    g.bench_function("new_ca", |b| {
        b.iter(|| Ca::generate("bench CA", &["acme.test".into()], RUN_VALIDITY).unwrap())
    });
    g.finish();
}

criterion_group!(benches, mint);
criterion_main!(benches);
