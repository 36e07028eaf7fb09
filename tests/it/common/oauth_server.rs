//! A strict OAuth 2.0 authorization server for tests (HTTPS on loopback,
//! `auth.acme.test` through the resolver override): exact redirect URIs,
//! S256 only, single-use codes, refresh-token rotation with reuse detection
//! that revokes the whole family, scripted device-flow answers, a
//! revocation endpoint, and counters for every call.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Digest;

pub const CLIENT_ID: &str = "test-client";

#[derive(Default)]
pub struct AsState {
    pub client_secret: Option<String>,
    /// `expires_in` of the access tokens issued next.
    pub access_ttl: Vec<i64>,
    /// `iss` added to the authorization response.
    pub iss: Option<String>,
    /// Answers of device-code polls, in order: pending, slow_down, denied, expired, token.
    pub device_script: VecDeque<&'static str>,
    pub device_polls: Vec<Instant>,
    /// The next refresh fails with this error.
    pub fail_refresh_with: Option<&'static str>,
    pub calls: HashMap<&'static str, usize>,
    pub redirect_uris: Vec<String>,
    pub revoked: Vec<(String, String)>,
    codes: HashMap<String, (String, String, bool, String)>,
    refresh: HashMap<String, (u32, bool)>,
    dead_families: HashSet<u32>,
    next: u32,
    next_code: u32,
    /// `https://auth.acme.test:PORT`, set at start.
    pub issuer: String,
    /// Metadata names another issuer than the one asked for.
    pub wrong_issuer: bool,
    /// Registered clients: id → secret.
    pub registered: HashMap<String, String>,
    pub registration_bodies: Vec<serde_json::Value>,
    /// `scope` of each authorization request.
    pub authorize_scopes: Vec<String>,
}

pub struct AuthServer {
    pub port: u16,
    pub state: Arc<Mutex<AsState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn json(status: u16, v: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn err(code: &str) -> Response<Full<Bytes>> {
    json(
        400,
        serde_json::json!({"error": code, "error_description": format!("test AS says {code}")}),
    )
}

fn pairs(s: &str) -> HashMap<String, String> {
    authsome::auth_flow::oauth::parse_pairs(s)
        .into_iter()
        .collect()
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl AsState {
    fn issue(&mut self, family: Option<u32>, with_refresh: bool) -> serde_json::Value {
        self.next += 1;
        let n = self.next;
        let ttl = if self.access_ttl.is_empty() {
            3600
        } else {
            self.access_ttl.remove(0)
        };
        let mut v = serde_json::json!({
            "access_token": format!("ATCANARY_{n}"),
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": "read write",
        });
        if with_refresh {
            let rt = format!("RTCANARY_{n}");
            self.refresh
                .insert(rt.clone(), (family.unwrap_or(n), false));
            v["refresh_token"] = serde_json::json!(rt);
        }
        v
    }

    fn client_ok(
        &mut self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> bool {
        if basic.is_some() {
            *self.calls.entry("basic_auth").or_default() += 1;
            if form.contains_key("client_secret") {
                return false;
            }
        }
        let (id, secret) = match basic {
            Some((i, s)) => (Some(i), Some(s)),
            None => (
                form.get("client_id").cloned(),
                form.get("client_secret").cloned(),
            ),
        };
        if let Some(s) = id.as_ref().and_then(|i| self.registered.get(i)) {
            return secret.as_deref() == Some(s.as_str());
        }
        id.as_deref() == Some(CLIENT_ID)
            && (self.client_secret.is_none() || secret == self.client_secret)
    }

    fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: &str,
        basic: Option<(String, String)>,
    ) -> Response<Full<Bytes>> {
        match (method, path) {
            ("GET", "/authorize") => {
                *self.calls.entry("authorize").or_default() += 1;
                let q = pairs(query);
                let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
                let known = q
                    .get("client_id")
                    .is_some_and(|c| c == CLIENT_ID || self.registered.contains_key(c));
                if !known
                    || q.get("response_type").map(String::as_str) != Some("code")
                    || q.get("code_challenge_method").map(String::as_str) != Some("S256")
                    || q.get("code_challenge").is_none_or(|c| c.len() != 43)
                    || !redirect.starts_with("http://127.0.0.1:")
                    || !redirect.ends_with("/auth/callback/oauth")
                {
                    return err("invalid_request");
                }
                self.redirect_uris.push(redirect.clone());
                self.authorize_scopes
                    .push(q.get("scope").cloned().unwrap_or_default());
                self.next_code += 1;
                let code = format!("CODE_{}", self.next_code);
                self.codes.insert(
                    code.clone(),
                    (
                        q["code_challenge"].clone(),
                        redirect.clone(),
                        false,
                        q.get("scope").cloned().unwrap_or_default(),
                    ),
                );
                let mut loc = format!(
                    "{redirect}?code={code}&state={}",
                    authsome::auth_flow::oauth::encode(&q["state"])
                );
                if let Some(iss) = &self.iss {
                    loc.push_str(&format!("&iss={}", authsome::auth_flow::oauth::encode(iss)));
                }
                Response::builder()
                    .status(302)
                    .header("location", loc)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
            ("POST", "/token") => {
                let f = pairs(body);
                if !self.client_ok(&f, basic) {
                    *self.calls.entry("token_bad_client").or_default() += 1;
                    return json(401, serde_json::json!({"error": "invalid_client"}));
                }
                match f.get("grant_type").map(String::as_str) {
                    Some("authorization_code") => {
                        *self.calls.entry("token_code").or_default() += 1;
                        let code = f.get("code").cloned().unwrap_or_default();
                        let Some(entry) = self.codes.get_mut(&code) else {
                            return err("invalid_grant");
                        };
                        if entry.2 {
                            return err("invalid_grant");
                        }
                        entry.2 = true;
                        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                        if b64url(&sha2::Sha256::digest(verifier.as_bytes())) != entry.0
                            || f.get("redirect_uri") != Some(&entry.1)
                        {
                            return err("invalid_grant");
                        }
                        json(200, self.issue(None, true))
                    }
                    Some("refresh_token") => {
                        *self.calls.entry("token_refresh").or_default() += 1;
                        if let Some(e) = self.fail_refresh_with.take() {
                            return err(e);
                        }
                        let rt = f.get("refresh_token").cloned().unwrap_or_default();
                        let Some((family, used)) = self.refresh.get(&rt).copied() else {
                            return err("invalid_grant");
                        };
                        if used || self.dead_families.contains(&family) {
                            // Reuse: the whole family dies (RFC 9700 §4.14.2).
                            self.dead_families.insert(family);
                            *self.calls.entry("refresh_reuse").or_default() += 1;
                            return err("invalid_grant");
                        }
                        self.refresh.insert(rt, (family, true));
                        json(200, self.issue(Some(family), true))
                    }
                    Some("urn:ietf:params:oauth:grant-type:device_code") => {
                        *self.calls.entry("token_device").or_default() += 1;
                        self.device_polls.push(Instant::now());
                        match self.device_script.pop_front().unwrap_or("token") {
                            "pending" => err("authorization_pending"),
                            "slow_down" => err("slow_down"),
                            "denied" => err("access_denied"),
                            "expired" => err("expired_token"),
                            _ => json(200, self.issue(None, true)),
                        }
                    }
                    Some("client_credentials") => {
                        *self.calls.entry("token_client_credentials").or_default() += 1;
                        json(200, self.issue(None, false))
                    }
                    _ => err("unsupported_grant_type"),
                }
            }
            ("POST", "/device") => {
                *self.calls.entry("device").or_default() += 1;
                json(
                    200,
                    serde_json::json!({
                        "device_code": "DEVCODE_1",
                        "user_code": "WDJB-MJHT",
                        "verification_uri": "https://auth.acme.test/device",
                        "interval": 1,
                        "expires_in": 60,
                    }),
                )
            }
            ("GET", "/.well-known/oauth-authorization-server") => {
                *self.calls.entry("metadata").or_default() += 1;
                let b = self.issuer.clone();
                json(
                    200,
                    serde_json::json!({
                        "issuer": if self.wrong_issuer { "https://evil.test".to_string() } else { b.clone() },
                        "authorization_endpoint": format!("{b}/authorize"),
                        "token_endpoint": format!("{b}/token"),
                        "registration_endpoint": format!("{b}/register"),
                        "revocation_endpoint": format!("{b}/revoke"),
                        "code_challenge_methods_supported": ["S256"],
                    }),
                )
            }
            ("POST", "/register") => {
                *self.calls.entry("register").or_default() += 1;
                let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let ok = v["redirect_uris"].as_array().is_some_and(|a| {
                    a.len() == 1
                        && a[0]
                            .as_str()
                            .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
                });
                self.registration_bodies.push(v);
                if !ok {
                    return err("invalid_redirect_uri");
                }
                let n = self.registered.len() + 1;
                let (id, secret) = (format!("dcr-client-{n}"), format!("CSCANARY_dcr_{n}"));
                self.registered.insert(id.clone(), secret.clone());
                json(
                    201,
                    serde_json::json!({
                        "client_id": id,
                        "client_secret": secret,
                        "registration_access_token": format!("RATCANARY_{n}"),
                        "registration_client_uri": format!("{}/register/{n}", self.issuer),
                    }),
                )
            }
            ("POST", "/revoke") => {
                *self.calls.entry("revoke").or_default() += 1;
                let f = pairs(body);
                self.revoked.push((
                    f.get("token_type_hint").cloned().unwrap_or_default(),
                    f.get("token").cloned().unwrap_or_default(),
                ));
                json(200, serde_json::json!({}))
            }
            _ => json(404, serde_json::json!({"error": "not_found"})),
        }
    }
}

impl AuthServer {
    pub fn start() -> AuthServer {
        let state = Arc::new(Mutex::new(AsState::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap().port()).unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(super::upstream::tls_config());
                let serve = async move {
                    loop {
                        let Ok((tcp, _)) = l.accept().await else {
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        let st = st.clone();
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                                let st = st.clone();
                                async move {
                                    let method = req.method().to_string();
                                    let path = req.uri().path().to_string();
                                    let query = req.uri().query().unwrap_or("").to_string();
                                    let basic = req
                                        .headers()
                                        .get("authorization")
                                        .and_then(|v| v.to_str().ok())
                                        .and_then(|v| v.strip_prefix("Basic "))
                                        .and_then(|b| {
                                            base64::engine::general_purpose::STANDARD.decode(b).ok()
                                        })
                                        .and_then(|raw| {
                                            let s = String::from_utf8(raw).ok()?;
                                            let (i, p) = s.split_once(':')?;
                                            Some((
                                                authsome::auth_flow::oauth::decode(i),
                                                authsome::auth_flow::oauth::decode(p),
                                            ))
                                        });
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let body = String::from_utf8_lossy(&body).into_owned();
                                    let resp = st
                                        .lock()
                                        .unwrap()
                                        .handle(&method, &path, &query, &body, basic);
                                    Ok::<_, std::convert::Infallible>(resp)
                                }
                            });
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(tls), svc)
                                    .await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        let port = rx.recv().unwrap();
        state.lock().unwrap().issuer = format!("https://auth.acme.test:{port}");
        AuthServer {
            port,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn calls(&self, what: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    pub fn base(&self) -> String {
        format!("https://auth.acme.test:{}", self.port)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
