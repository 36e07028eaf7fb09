//! `authsome bench`: the real binary measures direct, blind tunnel and
//! MITM + injection in one process, checks the injection on every request,
//! and writes nothing to the home (no vault, no daemon). Never asserts on
//! timing: only on counts, shapes and the invariants of percentiles.

use std::path::Path;

use crate::common::{Cmd, lab, upstream::Upstream};

/// A directory as HOME (AUTHSOME_HOME unset), so `~/.authsome` is where a
/// stray write would land.
fn in_home(home: &Path, args: &[&str]) -> Cmd {
    Cmd::new(args)
        .env("HOME", home.to_str().unwrap())
        .env("AUTHSOME_PORT", "0")
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(files_under(&p));
        }
    }
    out
}

fn row<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no {path} row in {v:#}"))
}

/// p99 ≥ p50 > 0, every measured request counted, a throughput.
fn plausible(r: &serde_json::Value, requests: u64) {
    assert_eq!(r["requests"], requests, "{r:#}");
    let (p50, p99) = (r["p50_us"].as_f64().unwrap(), r["p99_us"].as_f64().unwrap());
    assert!(p50 > 0.0 && p99 >= p50, "{r:#}");
    assert!(r["mean_us"].as_f64().unwrap() > 0.0, "{r:#}");
    assert!(r["throughput_rps"].as_f64().unwrap() > 0.0, "{r:#}");
    assert_eq!(r["non_2xx"], 0, "{r:#}");
}

#[test]
fn bench_measures_three_paths_checks_every_injection_and_writes_nothing_home() {
    let dir = tempfile::tempdir().unwrap();
    let out = in_home(
        dir.path(),
        &["bench", "--requests", "200", "--concurrency", "4", "--json"],
    )
    .run()
    .success();
    let v = out.json();
    assert_eq!(v["target"], "local");
    assert_eq!(v["requests"], 200);
    assert_eq!(v["concurrency"], 4);
    assert_eq!(v["header"], "x-authsome-bench");
    assert!(v["calibration"]["tcp_round_trip_p50_us"].as_f64().unwrap() > 0.0);
    assert_eq!(v["rows"].as_array().unwrap().len(), 3, "{v:#}");
    for p in ["direct", "blind_tunnel", "mitm"] {
        plausible(row(&v, p), 200);
    }
    // Warm-up (20 requests here) included: every MITM request was seen
    // upstream with the injected value.
    let mitm = row(&v, "mitm");
    assert_eq!(mitm["injection_verified_by"], "upstream");
    assert_eq!(mitm["injected"], 220);
    assert!(row(&v, "direct")["injected"].is_null());
    assert!(
        v["mitm_over_blind_tunnel"]["throughput_ratio"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(v["versus_mitmproxy"].is_null());
    // No home, no daemon, no vault: nothing at all under HOME.
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
    // The human table says the same.
    let out = in_home(dir.path(), &["bench", "--requests", "20"])
        .run()
        .success();
    for s in [
        "direct",
        "blind tunnel (authsome)",
        "MITM + injection (authsome)",
        "TCP round trip",
        "checked by the upstream on every request (22,",
    ] {
        assert!(out.stdout.contains(s), "{s:?} missing:\n{}", out.stdout);
    }
    // Not a terminal: no progress bar on stderr.
    assert_eq!(out.stderr, "");
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn bench_against_a_named_https_endpoint_injects_there() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "https://api.acme.test:{}/v1/models?x=1&api_key=sk-in-query",
        up.port
    );
    let out = in_home(
        dir.path(),
        &[
            "bench",
            "--against",
            &url,
            "--header",
            "X-Bench-Probe",
            "--requests",
            "50",
            "--concurrency",
            "2",
            "--json",
        ],
    )
    .env("AUTHSOME_RESOLVE", "api.acme.test=127.0.0.1")
    .env("AUTHSOME_UPSTREAM_CA_FILE", lab::CA)
    .run()
    .success();
    // The query's values are not printed (one may be a token).
    assert!(!out.stdout.contains("sk-in-query"), "{}", out.stdout);
    let v = out.json();
    assert_eq!(
        v["target"],
        format!("https://api.acme.test:{}/v1/models?x=…&api_key=…", up.port)
    );
    for p in ["direct", "blind_tunnel", "mitm"] {
        plausible(row(&v, p), 50);
    }
    let mitm = row(&v, "mitm");
    assert_eq!(mitm["injection_verified_by"], "proxy");
    assert_eq!(mitm["injected"], 55);
    // The server itself saw the header on exactly the MITM's requests
    // (warm-up included), one throwaway value, and never on the others.
    let recs = up.records();
    let with: Vec<String> = recs.iter().flat_map(|r| r.all("x-bench-probe")).collect();
    assert_eq!(with.len(), 55);
    assert!(
        with.iter()
            .all(|h| h == &with[0] && h.starts_with("authsome-bench-"))
    );
    assert_eq!(recs.len(), 3 * 55);
    assert!(
        recs.iter()
            .all(|r| r.path == "/v1/models?x=1&api_key=sk-in-query" || r.path == "/v1/models")
    );
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn bench_refuses_bad_input_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    in_home(dir.path(), &["bench", "--against", "http://api.acme.test/"])
        .run()
        .code(4)
        .stderr_has("only https://")
        .stderr_has("hint:");
    in_home(
        dir.path(),
        &["bench", "--against", "https://127.0.0.1:8443/"],
    )
    .run()
    .code(4)
    .stderr_has("host name, not an IP address");
    in_home(dir.path(), &["bench", "--header", "bad header"])
        .run()
        .code(4)
        .stderr_has("not a header name");
    in_home(
        dir.path(),
        &["bench", "--requests", "2", "--concurrency", "3"],
    )
    .run()
    .code(2);
    in_home(dir.path(), &["bench", "--requests", "0"])
        .run()
        .code(2);
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn compare_mitmproxy_without_mitmdump_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    // A PATH with everything but mitmdump.
    let bin = tempfile::tempdir().unwrap();
    in_home(
        dir.path(),
        &["bench", "--compare", "mitmproxy", "--requests", "10"],
    )
    .env("PATH", bin.path().to_str().unwrap())
    .run()
    .code(4)
    .stderr_has("mitmdump")
    .stderr_has("pipx install mitmproxy")
    .stderr_has("pip install mitmproxy");
}

/// With mitmproxy installed (`.ci/run` installs it and sets
/// `AUTHSOME_TEST_REQUIRE_CLIENTS=1`, which turns a missing one into a
/// failure), one small run through it:
/// its rows, the ratio, and the injection it made checked upstream.
#[test]
fn compare_mitmproxy_adds_its_rows_when_installed() {
    let path = std::env::var("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("mitmdump").is_file()) {
        let required = std::env::var("AUTHSOME_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "mitmdump is not on PATH (.ci/run installs mitmproxy)"
        );
        eprintln!("mitmdump is not on PATH: skipped (pip install mitmproxy)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = in_home(
        dir.path(),
        &[
            "bench",
            "--compare",
            "mitmproxy",
            "--requests",
            "40",
            "--concurrency",
            "2",
            "--json",
        ],
    )
    .run()
    .success();
    let v = out.json();
    assert_eq!(v["rows"].as_array().unwrap().len(), 4, "{v:#}");
    let m = row(&v, "mitmproxy");
    plausible(m, 40);
    assert_eq!(m["injection_verified_by"], "upstream");
    assert_eq!(m["injected"], 44);
    assert_eq!(row(&v, "mitm")["injected"], 44);
    let vs = &v["versus_mitmproxy"];
    assert!(
        vs["mitmproxy_version"]
            .as_str()
            .unwrap()
            .contains("itmproxy")
    );
    for k in ["p50_ratio", "p99_ratio", "throughput_ratio"] {
        assert!(vs[k].as_f64().unwrap() > 0.0, "{vs:#}");
    }
    // mitmproxy's CA and configuration went to a temporary directory,
    // never ~/.mitmproxy.
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}
