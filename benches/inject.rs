//! `inject()`, the per-request rewrite: a request carrying a placeholder
//! `Authorization` and a `Proxy-Authorization`, next to the baseline of
//! only stripping hop-by-hop headers (what an uninjected request costs).
//!
//! Run with `cargo bench --bench inject`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use authsome::credentials::ResolvedCredential;
use authsome::providers::{ExportRole, Injection, KeyFormat};
use authsome::proxy::inject::{inject, strip_hop_by_hop};
use authsome::secret::Secret;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;

fn request() -> Request<()> {
    Request::builder()
        .uri("https://api.openai.com/v1/chat/completions")
        .header("authorization", "Bearer authsome-managed")
        .header("proxy-authorization", "Basic YXV0aHNvbWU6dG9rZW4=")
        .header("content-type", "application/json")
        .header("user-agent", "OpenAI/Python 1.40.0")
        .header("accept", "application/json")
        .header("connection", "keep-alive")
        .body(())
        .unwrap()
}

fn cred(format: KeyFormat, name: &str) -> ResolvedCredential {
    ResolvedCredential {
        provider: "openai".into(),
        connection: "default".into(),
        injection: Injection {
            name: name.into(),
            prefix: "Bearer ".into(),
            format,
            source: ExportRole::ApiKey,
        },
        value: Secret::new(format!("Bearer sk-{}", "x".repeat(48))),
        expires_at: None,
        extra: Vec::new(),
        parts: Vec::new(),
        cookie_names: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let header = cred(KeyFormat::Header, "Authorization");
    let query = cred(KeyFormat::Query, "key");
    let mut g = c.benchmark_group("inject");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_strip_only", |b| {
        b.iter_batched_ref(
            request,
            |r| strip_hop_by_hop(black_box(r)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("header", |b| {
        b.iter_batched_ref(
            request,
            |r| inject(black_box(r), &header).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("query_parameter", |b| {
        b.iter_batched_ref(
            request,
            |r| inject(black_box(r), &query).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
