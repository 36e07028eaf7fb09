#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Host-routing lookups over the full bundled catalogue (88 providers), next
//! to the baseline of a single `HashMap` probe:
//! exact host, wildcard (`*.googleapis.com`), exact host + path prefix, and a miss.
//!
//! Run with `cargo bench --bench routing_lookup`.

use std::collections::HashMap;
use std::hint::black_box;

use authsome::providers::Registry;
use authsome::routing::RouteTable;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn lookup(c: &mut Criterion) {
    let reg = Registry::bundled().unwrap();
    let table = RouteTable::build(reg.iter().map(|e| e.def.as_ref()));
    let baseline: HashMap<(String, u16), &str> = [(("api.openai.com".to_string(), 443), "openai")]
        .into_iter()
        .collect();

    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_hashmap_probe", |b| {
        b.iter(|| {
            baseline
                .get(&(black_box("api.openai.com").to_string(), 443))
                .copied()
        })
    });
    g.bench_function("exact", |b| {
        b.iter(|| {
            table
                .resolve(black_box("api.openai.com"), 443, "/v1/chat/completions")
                .unwrap()
        })
    });
    g.bench_function("wildcard", |b| {
        b.iter(|| {
            table
                .resolve(black_box("storage.googleapis.com"), 443, "/b/x")
                .unwrap()
        })
    });
    g.bench_function("path_prefix", |b| {
        b.iter(|| {
            table
                .resolve(black_box("graph.microsoft.com"), 443, "/v1.0/me/drive/root")
                .unwrap()
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            table
                .resolve(black_box("cdn.example.org"), 443, "/")
                .is_none()
        })
    });
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
