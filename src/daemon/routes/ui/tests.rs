//! The dashboard's access rules, through the daemon's whole router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::auth_flow::logins::LoginRequest;
use crate::daemon::AppState;
use crate::daemon::tests::state;
use crate::pop;
use crate::secret::Secret;

const HOST: &str = "127.0.0.1:7998";
const ORIGIN: &str = "http://127.0.0.1:7998";
const COOKIE: &str = "authsome_dashboard_7998";

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(s: &AppState, r: Request<Body>) -> Reply {
    let resp = crate::daemon::router(s.clone()).oneshot(r).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(path).header("host", HOST);
    if let Some(c) = cookie {
        b = b.header("cookie", format!("other=1; {COOKIE}={c}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: &str, headers: &[(&str, &str)], form: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("{COOKIE}={cookie}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(form.to_string())).unwrap()
}

/// Stores an API key the way the CLI does (a session, then the key).
async fn store(s: &AppState, provider: &str, connection: &str, key: &str) {
    let v = s
        .logins
        .start(LoginRequest {
            provider: provider.into(),
            connection: Some(connection.into()),
            ..LoginRequest::default()
        })
        .await
        .unwrap();
    s.logins
        .resume_with_key(&v.id, Secret::new(key.into()), "test".into())
        .await
        .unwrap();
}

/// A session cookie and its CSRF token, through the one-time link.
async fn sign_in(s: &AppState, id: &crate::identity::Identity) -> (String, String) {
    let now = crate::clock::now_unix();
    let auth = pop::authorization(id, "POST", "/api/dashboard/links", b"{}", now);
    let r = Request::builder()
        .method("POST")
        .uri("/api/dashboard/links")
        .header("host", HOST)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let link = send(s, r).await;
    assert_eq!(link.status, StatusCode::OK, "{}", link.body);
    let v: serde_json::Value = serde_json::from_str(&link.body).unwrap();
    let url = v["url"].as_str().unwrap();
    let token = url.strip_prefix("http://127.0.0.1:7998/?t=").unwrap();
    assert_eq!(token.len(), 64);
    assert!(v["expires_at"].as_i64().unwrap() <= now + 61);
    let r = send(s, get(&format!("/?t={token}"), None)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/");
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set
        .strip_prefix(&format!("{COOKIE}="))
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_string();
    // The one-time token never works twice.
    let again = send(s, get(&format!("/?t={token}"), None)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.headers.get("set-cookie").is_none());
    let page = send(s, get("/", Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    (cookie, csrf)
}

fn assert_framing_headers(r: &Reply, what: &str) {
    let h = &r.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
}

/// (what, request headers, form body)
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

const PAGES: &[&str] = &[
    "/",
    "/ui/providers",
    "/ui/providers?q=ahrefs",
    "/ui/providers/ahrefs/connect",
    "/ui/connections/ahrefs/revoke",
    "/ui/runs",
    "/ui/requests",
    "/ui/requests/events",
    "/ui/health",
];

#[tokio::test]
async fn without_a_session_no_page_shows_data() {
    let (_d, s, _) = state();
    store(&s, "ahrefs", "canaryconn", "k-CANARYKEY").await;
    for p in PAGES {
        for cookie in [None, Some("0123"), Some("")] {
            let r = send(&s, get(p, cookie)).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{p}");
            assert!(!r.body.contains("canaryconn"), "{p}: {}", r.body);
            assert!(!r.body.contains("CANARYKEY"), "{p}");
            assert_framing_headers(&r, p);
            if *p != "/ui/requests/events" {
                assert!(r.body.contains("authsome dashboard"), "{p}: {}", r.body);
                assert!(!r.body.contains("Ahrefs"), "{p}: no catalogue either");
            }
        }
    }
    // An unknown, empty or malformed token gets the same page and no cookie.
    for t in ["", "abc", &"0".repeat(64)] {
        let r = send(&s, get(&format!("/?t={t}"), None)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{t}");
        assert!(r.headers.get("set-cookie").is_none());
        assert!(!r.body.contains("canaryconn"));
    }
}

#[tokio::test]
async fn a_session_sees_every_page_with_its_headers_and_never_a_secret() {
    let (_d, s, id) = state();
    store(&s, "ahrefs", "canaryconn", "k-CANARYKEY").await;
    let (cookie, csrf) = sign_in(&s, &id).await;
    assert_eq!(csrf.len(), 64);
    for p in PAGES {
        if *p == "/ui/requests/events" {
            continue;
        }
        let r = send(&s, get(p, Some(&cookie))).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
        assert_framing_headers(&r, p);
        assert!(!r.body.contains("CANARYKEY"), "{p}");
        assert!(!r.body.contains(&cookie), "{p}: the cookie is HttpOnly");
    }
    let home = send(&s, get("/", Some(&cookie))).await;
    assert!(home.body.contains("canaryconn"));
    assert!(home.body.contains(r#"class="badge default""#));
    let runs = send(&s, get("/ui/runs", Some(&cookie))).await;
    assert!(runs.body.contains("No <code>authsome run</code> is active"));
    assert!(runs.body.contains("Not listening"));
    let health = send(&s, get("/ui/health", Some(&cookie))).await;
    assert!(health.body.contains("1 check(s) fail"), "{}", health.body);
    assert!(
        health
            .body
            .contains(r#"<th scope="row">vault &lt;file&gt;</th>"#),
        "names are escaped: {}",
        health.body
    );
    assert!(
        health.body.contains("✗</span> fails"),
        "in words, not colour only"
    );
    assert!(
        health
            .body
            .contains("run `chmod 600 &lt;vault.db&gt;` so only you can read it"),
        "the hint: {}",
        health.body
    );
    let search = send(&s, get("/ui/providers?q=ahref", Some(&cookie))).await;
    assert!(search.body.contains(r#"data-provider="ahrefs""#));
    assert!(!search.body.contains(r#"data-provider="openai""#));
    for asset in ["/ui/style.css", "/ui/app.js"] {
        let r = send(&s, get(asset, None)).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert_framing_headers(&r, asset);
    }
}

#[tokio::test]
async fn pages_loaded_from_another_site_are_refused_even_with_a_session() {
    let (_d, s, id) = state();
    store(&s, "ahrefs", "canaryconn", "k-CANARYKEY").await;
    let (cookie, _) = sign_in(&s, &id).await;
    let with_site = |p: &str, method: &str, site: &str| {
        Request::builder()
            .method(method)
            .uri(p)
            .header("host", HOST)
            .header("cookie", format!("{COOKIE}={cookie}"))
            .header("sec-fetch-site", site)
            .body(Body::empty())
            .unwrap()
    };
    let ui = PAGES.iter().filter(|p| p.starts_with("/ui/") || **p == "/");
    for p in ui
        .clone()
        .chain(&["/ui/style.css", "/ui/app.js", "/?done=revoked&p=PLANTED"])
    {
        for site in ["cross-site", "same-site", "bogus"] {
            for method in ["GET", "HEAD"] {
                let r = send(&s, with_site(p, method, site)).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {p} {site}");
                assert_framing_headers(&r, p);
                assert!(!r.body.contains("canaryconn"), "{p}: {}", r.body);
                assert!(!r.body.contains("Ahrefs"), "{p}: no page");
                assert!(!r.body.contains("check(s) fail"), "{p}: no checks");
                assert!(!r.body.contains("PLANTED"), "{p}: no planted notice");
            }
        }
    }
    // The dashboard's own requests, the address bar, curl: the page.
    for p in ui {
        if *p == "/ui/requests/events" {
            continue;
        }
        for site in ["same-origin", "none"] {
            let r = send(&s, with_site(p, "GET", site)).await;
            assert_eq!(r.status, StatusCode::OK, "{p} {site}: {}", r.body);
        }
        let r = send(&s, get(p, Some(&cookie))).await;
        assert_eq!(r.status, StatusCode::OK, "{p}, no header");
    }
    // The one-time link is opened by `xdg-open` (`none`).
    let r = send(&s, with_site("/", "GET", "none")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn check_again_is_a_change_of_the_dashboard_pages() {
    let (_d, s, id) = state();
    let (cookie, csrf) = sign_in(&s, &id).await;
    let good = format!("csrf={csrf}");
    let r = send(
        &s,
        post(
            "/ui/health",
            &cookie,
            &[("origin", "http://evil.test")],
            &good,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &s,
        post(
            "/ui/health",
            &cookie,
            &[("sec-fetch-site", "same-origin")],
            "csrf=x",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &s,
        post(
            "/ui/health",
            &cookie,
            &[("sec-fetch-site", "same-origin")],
            &good,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers["location"], "/ui/health");
    let page = send(&s, get("/ui/health", Some(&cookie))).await;
    assert!(
        page.body.contains(r#"action="/ui/health""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("Check again"));
}

#[tokio::test]
async fn changes_need_the_csrf_token_and_the_same_origin() {
    let (_d, s, id) = state();
    store(&s, "ahrefs", "default", "k-1").await;
    let (cookie, csrf) = sign_in(&s, &id).await;
    let path = "/ui/connections/ahrefs/default/logout";
    let good = format!("csrf={csrf}");
    let cases: &[Case] = &[
        ("forged token", &[("origin", ORIGIN)], "csrf=forged"),
        ("no token", &[("origin", ORIGIN)], ""),
        (
            "cross-origin",
            &[("origin", "http://evil.test")],
            good.as_str(),
        ),
        (
            "other port",
            &[("origin", "http://127.0.0.1:9999")],
            good.as_str(),
        ),
        (
            "cross-site fetch",
            &[("origin", ORIGIN), ("sec-fetch-site", "cross-site")],
            good.as_str(),
        ),
        ("neither header", &[], good.as_str()),
        ("null origin alone", &[("origin", "null")], good.as_str()),
        (
            "null origin, cross-site",
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
            good.as_str(),
        ),
        (
            "same-origin fetch from another origin",
            &[
                ("origin", "http://evil.test"),
                ("sec-fetch-site", "same-origin"),
            ],
            good.as_str(),
        ),
    ];
    for (what, headers, form) in cases {
        let r = send(&s, post(path, &cookie, headers, form)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}");
        assert_framing_headers(&r, what);
    }
    // A valid token of no session is refused too.
    let r = send(&s, post(path, "nosession", &[("origin", ORIGIN)], &good)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let still = s.read(|svc| svc.list_connections()).await.unwrap();
    assert_eq!(still.len(), 1, "nothing changed");
    // A GET never changes anything.
    let r = send(&s, get(path, Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // The real thing, as Chromium sends it under `no-referrer`.
    let r = send(
        &s,
        post(
            path,
            &cookie,
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
            &good,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        s.read(|svc| svc.list_connections())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_foreign_host_gets_nothing_even_with_a_session() {
    let (_d, s, id) = state();
    let (cookie, csrf) = sign_in(&s, &id).await;
    for p in ["/", "/ui/providers", "/ui/style.css"] {
        let mut r = get(p, Some(&cookie));
        r.headers_mut()
            .insert("host", "evil.test:7998".parse().unwrap());
        let r = send(&s, r).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}");
        assert!(r.body.contains("host_not_allowed"), "{p}");
    }
    let mut r = post(
        "/ui/signout",
        &cookie,
        &[("origin", "http://evil.test:7998")],
        &format!("csrf={csrf}"),
    );
    r.headers_mut()
        .insert("host", "evil.test:7998".parse().unwrap());
    assert_eq!(send(&s, r).await.status, StatusCode::FORBIDDEN);
    // ... and the session still works from the right host.
    assert_eq!(
        send(&s, get("/", Some(&cookie))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_api_key_connects_through_the_form_and_is_never_echoed() {
    let (_d, s, id) = state();
    let (cookie, csrf) = sign_in(&s, &id).await;
    let form = format!("csrf={csrf}&connection=work&api_key=k-FORMCANARY");
    let path = "/ui/providers/ahrefs/connect";
    let r = send(&s, post(path, &cookie, &[("origin", ORIGIN)], &form)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let conns = s.read(|svc| svc.list_connections()).await.unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].record.name, "work");
    // Again without `force`: refused, the form comes back without the key.
    let r = send(&s, post(path, &cookie, &[("origin", ORIGIN)], &form)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("type=\"password\""));
    assert!(!r.body.contains("FORMCANARY"));
    // An empty key is refused before anything starts.
    let r = send(
        &s,
        post(
            path,
            &cookie,
            &[("origin", ORIGIN)],
            &format!("csrf={csrf}&api_key="),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Set default, then revoke (the confirmation is a page; the change a POST).
    store(&s, "ahrefs", "home", "k-2").await;
    let r = send(
        &s,
        post(
            "/ui/connections/ahrefs/home/default",
            &cookie,
            &[("origin", ORIGIN)],
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let conns = s.read(|svc| svc.list_connections()).await.unwrap();
    assert!(
        conns
            .iter()
            .any(|c| c.record.name == "home" && c.record.is_default)
    );
    let revoke = "/ui/connections/ahrefs/revoke";
    let confirm = send(&s, get(revoke, Some(&cookie))).await;
    assert!(confirm.body.contains("Revoke them"));
    let r = send(
        &s,
        post(
            revoke,
            &cookie,
            &[("origin", ORIGIN)],
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "without confirm=yes: back to the page"
    );
    assert_eq!(s.read(|svc| svc.list_connections()).await.unwrap().len(), 2);
    let r = send(
        &s,
        post(
            revoke,
            &cookie,
            &[("origin", ORIGIN)],
            &format!("csrf={csrf}&confirm=yes"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        s.read(|svc| svc.list_connections())
            .await
            .unwrap()
            .is_empty()
    );
    // Signing out ends the session.
    let r = send(
        &s,
        post(
            "/ui/signout",
            &cookie,
            &[("origin", ORIGIN)],
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        send(&s, get("/", Some(&cookie))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_custom_provider_is_registered_and_removed_through_the_forms() {
    let (_d, s, id) = state();
    let (cookie, csrf) = sign_in(&s, &id).await;
    let def = r#"{"name":"zeta","auth_type":"api_key","flow":"api_key","api_url":["api.zeta.test"],"api_key":{}}"#;
    let form = format!("csrf={csrf}&definition={}", crate::percent::encode(def));
    // Forged: nothing registered.
    let forged = format!("csrf=x&definition={}", crate::percent::encode(def));
    let r = send(
        &s,
        post(
            "/ui/providers/register",
            &cookie,
            &[("origin", ORIGIN)],
            &forged,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(s.logins.provider_def("zeta").is_none());
    let r = send(
        &s,
        post(
            "/ui/providers/register",
            &cookie,
            &[("origin", ORIGIN)],
            &form,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.headers["location"],
        "/ui/providers?q=zeta&done=registered"
    );
    let page = send(
        &s,
        get("/ui/providers?q=zeta&done=registered", Some(&cookie)),
    )
    .await;
    assert!(page.body.contains("Registered zeta."));
    assert!(page.body.contains(r#"action="/ui/providers/zeta/remove""#));
    // Its Connect form says where the key would go, and that this
    // definition was added here; a bundled one names its hosts only.
    let connect = send(&s, get("/ui/providers/zeta/connect", Some(&cookie))).await;
    assert!(
        connect
            .body
            .contains("only to requests for <code>api.zeta.test</code>"),
        "{}",
        connect.body
    );
    assert!(connect.body.contains("added on this machine"));
    let bundled = send(&s, get("/ui/providers/openai/connect", Some(&cookie))).await;
    assert!(bundled.body.contains("<code>api.openai.com</code>"));
    assert!(!bundled.body.contains("added on this machine"));
    // Too large a definition is refused before it is parsed.
    let huge = format!("csrf={csrf}&definition={}", "x".repeat(65 * 1024));
    let r = send(
        &s,
        post(
            "/ui/providers/register",
            &cookie,
            &[("origin", ORIGIN)],
            &huge,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    // A broken definition is refused with the parser's words, nothing stored.
    let bad = format!("csrf={csrf}&definition=%7B%22name%22%3A1");
    let r = send(
        &s,
        post(
            "/ui/providers/register",
            &cookie,
            &[("origin", ORIGIN)],
            &bad,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = send(
        &s,
        post(
            "/ui/providers/zeta/remove",
            &cookie,
            &[("origin", ORIGIN)],
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(s.logins.provider_def("zeta").is_none());
}

#[tokio::test]
async fn a_planted_cookie_of_the_same_name_neither_locks_out_nor_replaces() {
    let (_d, s, id) = state();
    let (cookie, _) = sign_in(&s, &id).await;
    // What a server on another port of 127.0.0.1 could plant with a longer
    // Path, which the browser then sends first.
    let planted = "0".repeat(64);
    let r = Request::builder()
        .uri("/")
        .header("host", HOST)
        .header("cookie", format!("{COOKIE}={planted}; {COOKIE}={cookie}"))
        .body(Body::empty())
        .unwrap();
    let r = send(&s, r).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let alone = send(&s, get("/", Some(&planted))).await;
    assert_eq!(alone.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn live_streams_are_capped_per_session() {
    use crate::daemon::dashboard_auth::MAX_STREAMS_PER_SESSION;
    let (_d, s, id) = state();
    let (cookie, _) = sign_in(&s, &id).await;
    let open = || async {
        crate::daemon::router(s.clone())
            .oneshot(get("/ui/requests/events?after=0", Some(&cookie)))
            .await
            .unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..MAX_STREAMS_PER_SESSION {
        let r = open().await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let over = open().await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    // A closed stream gives its slot back (its task sees the browser gone
    // at its next poll).
    drop(held.pop());
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = open().await;
        if r.status() == StatusCode::OK {
            reopened = Some(r);
            break;
        }
    }
    assert!(reopened.is_some(), "the slot came back");
}

#[tokio::test]
async fn two_connected_providers_on_one_host_are_flagged_on_the_connections_page() {
    let (_d, s, id) = state();
    let def = r#"{"name":"myopenai","auth_type":"api_key","flow":"api_key","api_url":["api.openai.com"],"api_key":{}}"#;
    s.logins
        .register_provider("test", def, false, None)
        .await
        .unwrap();
    store(&s, "openai", "default", "sk-AAAAAAAAAAAAAAAAAAAAAAAAone").await;
    let (cookie, _) = sign_in(&s, &id).await;
    let page = send(&s, get("/", Some(&cookie))).await;
    assert!(
        !page.body.contains("class=\"flash err conflict\""),
        "one connected: no conflict"
    );
    store(&s, "myopenai", "default", "k-two").await;
    let page = send(&s, get("/", Some(&cookie))).await;
    assert!(
        page.body
            .contains("myopenai and openai are both connected and claim api.openai.com"),
        "{}",
        page.body
    );
    assert!(page.body.contains("authsome run --connection"));
    assert!(
        page.body
            .contains("authsome set-default PROVIDER CONNECTION")
    );
    // Making one the default chooses it: no conflict left to flag.
    s.logins
        .set_default("openai", "default", None)
        .await
        .unwrap();
    let page = send(&s, get("/", Some(&cookie))).await;
    assert!(
        !page.body.contains("class=\"flash err conflict\""),
        "{}",
        page.body
    );
}
