//! Wall time of CLI commands against a running daemon, next to the baseline
//! of spawning `true`: `authsome --version`, `authsome list` and
//! `authsome export` (each a full process: start, find the daemon, sign a
//! PoP request, render). Targets: `--version` ≤ 5 ms, `list` ≤ 20 ms.
//!
//! Run with `cargo bench --bench cli_list`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use criterion::{Criterion, criterion_group, criterion_main};

fn cmd(home: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_authsome"));
    c.args(args)
        .env("AUTHSOME_HOME", home)
        .env("AUTHSOME_KEYRING", "off")
        .env("AUTHSOME_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn run(mut c: Command) {
    let s = c.status().unwrap();
    assert!(s.success());
}

fn cli(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut login = cmd(&home, &["login", "ahrefs", "--with-api-key"]);
    login.stdin(Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"bench-key").unwrap();
    assert!(child.wait().unwrap().success());

    let mut g = c.benchmark_group("cli");
    g.sample_size(50);
    g.bench_function("baseline_true", |b| {
        b.iter(|| {
            run({
                let mut t = Command::new("true");
                t.stdout(Stdio::null());
                t
            })
        })
    });
    g.bench_function("version", |b| b.iter(|| run(cmd(&home, &["--version"]))));
    g.bench_function("list", |b| b.iter(|| run(cmd(&home, &["list"]))));
    g.bench_function("export", |b| {
        b.iter(|| run(cmd(&home, &["export", "ahrefs"])))
    });
    g.finish();

    run(cmd(&home, &["daemon", "stop"]));
}

criterion_group!(benches, cli);
criterion_main!(benches);
