//! The proxy threads' own HTTP/1.1 upstream connections
//! (`authsome::proxy::pool`), against the benchmark's local HTTPS upstream
//! on loopback (real TLS, real sockets): one connection serves requests in
//! turn, two at once need two, idle ones are reaped, and a dead upstream is
//! a connect failure. The end-to-end side (a tunnel's requests on one
//! upstream connection, an upstream that closes kept connections) is in
//! `proxy_run.rs`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use authsome::bench::upstream::{HOST, LocalUpstream};
use authsome::proxy::pool::{Clients, Failed, H1Pool};
use http_body_util::BodyExt;
use hudsucker::Body;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The benchmark's upstream and a pool trusting its CA, reaching it
/// through the resolver override; the upstream's base URL.
fn lab() -> (LocalUpstream, H1Pool, String) {
    let up = LocalUpstream::start(
        &tokio::runtime::Handle::current(),
        &[b"http/1.1"],
        http::HeaderName::from_static("x-check"),
        "v".into(),
    )
    .unwrap();
    let upstream = authsome::proxy::upstream::Upstream::with_roots(
        Some(("the bench CA".into(), vec![up.ca_der.clone()])),
        &[(HOST.to_string(), up.addr.ip())],
    )
    .unwrap();
    let url = format!("https://{HOST}:{}", up.addr.port());
    (up, Clients::new(&upstream).https_h1, url)
}

async fn get(pool: &H1Pool, url: &str) -> u16 {
    let req = http::Request::get(url).body(Body::empty()).unwrap();
    let res = pool.send(req).await.unwrap();
    let status = res.status().as_u16();
    res.into_body().collect().await.unwrap();
    status
}

#[test]
fn one_connection_serves_requests_in_turn_until_reaped() {
    rt().block_on(async {
        let (up, pool, url) = lab();
        for _ in 0..3 {
            assert_eq!(get(&pool, &format!("{url}/a")).await, 200);
        }
        assert_eq!(
            up.accepts.load(Ordering::Relaxed),
            1,
            "one connection, reused"
        );
        assert_eq!(pool.kept(), 1);
        // Not idle long enough: kept.
        pool.reap(Duration::from_secs(60));
        assert_eq!(pool.kept(), 1);
        pool.reap(Duration::ZERO);
        assert_eq!(pool.kept(), 0, "reaped");
        assert_eq!(get(&pool, &format!("{url}/b")).await, 200);
        assert_eq!(up.accepts.load(Ordering::Relaxed), 2, "a new connection");
        // Two requests at once need two connections; both are kept, and
        // serve the next two at once.
        for round in 0..2 {
            let (a, b) = tokio::join!(get(&pool, &url), get(&pool, &url));
            assert_eq!((a, b), (200, 200));
            assert_eq!(up.accepts.load(Ordering::Relaxed), 3, "round {round}");
            assert_eq!(pool.kept(), 2);
        }
    });
}

#[test]
fn a_dead_upstream_is_a_connect_failure() {
    rt().block_on(async {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let (_up, pool, _url) = lab();
        let req = http::Request::get(format!("https://{HOST}:{port}/"))
            .body(Body::empty())
            .unwrap();
        let err = pool.send(req).await.unwrap_err();
        assert!(matches!(err, Failed::Connect(_)), "{err:?}");
        assert_eq!(pool.kept(), 0);
    });
}
