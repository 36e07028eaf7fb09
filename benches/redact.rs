#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The response redactor's streaming cost (issue #13): `Redactor::push`
//! over 64 KiB chunks (what the proxy bench's upstream sends), for the
//! patterns of a header API key, next to the baseline of copying the chunk
//! into the output, and the check the body wrapper makes first
//! (`passes_unchanged`: a chunk with no match and nothing held back goes on
//! uncopied).
//! Criterion reports bytes/s; 1 GB at X GiB/s costs 1/X seconds of one core.
//!
//! Chunks: `x` repeated (no byte of it starts a form: nothing held back),
//! and JSON-like text (a completion's content, the secret absent).
//!
//! Run with `cargo bench --bench redact`.

use std::hint::black_box;
use std::sync::Arc;

use authsome::credentials::ResolvedCredential;
use authsome::providers::{ExportRole, Injection, KeyFormat};
use authsome::proxy::redact::{Patterns, Redactor};
use authsome::secret::Secret;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHUNK: usize = 64 * 1024;

fn patterns() -> Arc<Patterns> {
    let cred = ResolvedCredential {
        provider: "acme".into(),
        connection: "default".into(),
        injection: Injection {
            name: "Authorization".into(),
            prefix: "Bearer ".into(),
            format: KeyFormat::Header,
            source: ExportRole::ApiKey,
        },
        value: Secret::new(format!("Bearer sk-{}", "x".repeat(48))),
        expires_at: None,
        extra: Vec::new(),
        parts: Vec::new(),
        cookie_names: Vec::new(),
    };
    Arc::new(Patterns::for_credential(&cred, "authsome-managed-acme"))
}

fn text_chunk() -> Vec<u8> {
    let unit = br#"{"choices":[{"delta":{"content":"The quick brown fox jumps over the lazy dog, sk-ish words, base64 c2stYWJj and 100% of it."}}]}\n"#;
    unit.iter().copied().cycle().take(CHUNK).collect()
}

fn push(c: &mut Criterion) {
    let p = patterns();
    let mut g = c.benchmark_group("redact");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    for (name, chunk) in [("x", vec![b'x'; CHUNK]), ("json_text", text_chunk())] {
        g.bench_function(format!("baseline_copy_64k_{name}"), |b| {
            let mut out = Vec::with_capacity(CHUNK);
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&chunk));
                black_box(out.len())
            })
        });
        g.bench_function(format!("push_64k_{name}"), |b| {
            let mut r = Redactor::new(p.clone());
            let mut out = Vec::with_capacity(CHUNK);
            b.iter(|| {
                out.clear();
                let n = r.push(black_box(&chunk), &mut out);
                black_box((n, out.len()))
            })
        });
        // What the body wrapper does first: is the chunk passed on as is?
        g.bench_function(format!("passes_unchanged_64k_{name}"), |b| {
            let r = Redactor::new(p.clone());
            b.iter(|| r.passes_unchanged(black_box(&chunk)))
        });
    }
    g.finish();
}

criterion_group!(benches, push);
criterion_main!(benches);
