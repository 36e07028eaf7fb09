//! A local upstream for proxy tests: HTTPS (h1 + h2, certificate from
//! `certs/upstream.pem`, signed by the test CA) and plain HTTP on loopback,
//! recording every request exactly as it arrived.
//!
//! Routes: `/sse` (three events, 400 ms apart), `/bytes/N` (N bytes,
//! streamed in 64 KiB chunks), `/status/N`, `/ws` (WebSocket echo), the
//! echo routes below, anything else answers 200 with the request's headers
//! as JSON.
//!
//! Echo routes (an upstream that reflects the credential it received, the
//! way debug endpoints, error pages and httpbin-style mirrors do): with `K`
//! the bare key (the `Authorization` value after `Bearer `, or the
//! `api_key` query value):
//! - `/echo/header`: 302 with `x-echo: Bearer K`, `Location: …?token=K` and
//!   `Set-Cookie: k=K`; body `K` split in two chunks 100 ms apart;
//! - `/echo/sse`: an event, then one event whose data is K split across two
//!   chunks 300 ms apart;
//! - `/echo/gzip`: the request's headers as gzip-encoded JSON;
//! - `/echo/ws`: a WebSocket that sends K in a text message fragmented
//!   across two frames (split inside K), with a ping between them;
//! - `/echo/range`: `{"auth":"Bearer K"}`, honouring a `Range: bytes=A-B`
//!   (206 with that slice); `/echo/partial`: always 206;
//! - `/echo/reason`: 200 with the reason phrase `OK K`.
//!
//! A sign-in site (browser-session logins): `GET /login` is a page whose
//! form submits itself; `POST /login` answers 303 to `/home` setting every
//! cookie of [`Upstream::login_cookies`] (whole `Set-Cookie` values).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hudsucker::futures::stream;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub tls: bool,
    pub method: String,
    pub path: String,
    pub version: String,
    /// The connection it came on (numbered as accepted, across listeners).
    pub conn: u64,
    /// Every header, in order, names lowercase.
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub struct Upstream {
    pub port: u16,
    pub http_port: u16,
    records: Arc<Mutex<Vec<Record>>>,
    /// The body of `/.well-known/oauth-protected-resource` (RFC 9728), if any.
    pub resource_metadata: Arc<Mutex<Option<String>>>,
    /// `Set-Cookie` values `POST /login` answers with.
    pub login_cookies: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Body = BoxBody<Bytes, std::io::Error>;

/// What tests set on a running upstream: the protected-resource metadata
/// and the sign-in site's cookies.
type Knobs = (Arc<Mutex<Option<String>>>, Arc<Mutex<Vec<String>>>);

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

/// Numbers the connections every upstream accepts.
static CONNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_conn() -> u64 {
    CONNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

async fn answer(
    req: Request<Incoming>,
    (tls, conn): (bool, u64),
    records: Arc<Mutex<Vec<Record>>>,
    (prm, login): Knobs,
) -> Response<Body> {
    if req.uri().path() == "/login" && req.method() == hyper::Method::GET {
        return Response::builder()
            .header("content-type", "text/html")
            .body(full(
                "<!doctype html><title>Sign in</title><form method=post action=/login>\
                 <input name=user value=me><button>Sign in</button></form>\
                 <script>setTimeout(() => document.forms[0].submit(), 300)</script>",
            ))
            .unwrap();
    }
    if req.uri().path() == "/login" && req.method() == hyper::Method::POST {
        let mut b = Response::builder().status(303).header("location", "/home");
        for c in login.lock().unwrap().iter() {
            b = b.header("set-cookie", c);
        }
        return b.body(full("")).unwrap();
    }
    if req.uri().path() == "/.well-known/oauth-protected-resource" {
        return match prm.lock().unwrap().clone() {
            Some(b) => Response::builder()
                .header("content-type", "application/json")
                .body(full(b))
                .unwrap(),
            None => Response::builder().status(404).body(full("")).unwrap(),
        };
    }
    let rec = Record {
        tls,
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: format!("{:?}", req.version()),
        conn,
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    records.lock().unwrap().push(rec.clone());
    let path = req.uri().path().to_string();
    if path == "/ws" {
        return websocket_echo(req);
    }
    if let Some(what) = path.strip_prefix("/echo/") {
        return echo(what, req, &rec);
    }
    if path == "/sse" {
        let events = stream::unfold(0u32, |i| async move {
            if i >= 3 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            let frame = Frame::data(Bytes::from(format!("data: event-{i}\n\n")));
            Some((Ok::<_, std::io::Error>(frame), i + 1))
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(StreamBody::new(events).boxed())
            .unwrap();
    }
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let chunks = stream::unfold(n, |left| async move {
            if left == 0 {
                return None;
            }
            let k = left.min(64 * 1024);
            Some((
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; k]))),
                left - k,
            ))
        });
        return Response::builder()
            .header("content-length", n.to_string())
            .body(StreamBody::new(chunks).boxed())
            .unwrap();
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|n| n.parse::<u16>().ok())
    {
        return Response::builder().status(code).body(full("")).unwrap();
    }
    let body = serde_json::json!({
        "path": rec.path,
        "version": rec.version,
        "headers": rec.headers,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

/// The bare key the request carried.
fn key_of(req: &Request<Incoming>) -> String {
    if let Some(v) = req.headers().get("authorization") {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        return v.strip_prefix("Bearer ").unwrap_or(&v).to_string();
    }
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("api_key="))
        .map(authsome::percent::decode)
        .unwrap_or_default()
}

/// Chunks sent with a pause before each but the first.
fn paced(chunks: Vec<Vec<u8>>, pause: Duration) -> Body {
    let s = stream::unfold(
        (chunks.into_iter(), true),
        move |(mut it, first)| async move {
            let c = it.next()?;
            if !first {
                tokio::time::sleep(pause).await;
            }
            Some((
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(c))),
                (it, false),
            ))
        },
    );
    StreamBody::new(s).boxed()
}

fn echo(what: &str, req: Request<Incoming>, rec: &Record) -> Response<Body> {
    let key = key_of(&req);
    let half = key.len() / 2;
    let (a, b) = (key[..half].to_string(), key[half..].to_string());
    match what {
        "header" => Response::builder()
            .status(302)
            .header("x-echo", format!("Bearer {key}"))
            .header(
                "location",
                format!(
                    "https://api.acme.test/next?page=2&token={}",
                    authsome::percent::encode(&key)
                ),
            )
            .header("set-cookie", format!("k={key}; Path=/"))
            .header("content-type", "text/plain")
            .body(paced(
                vec![
                    format!("you sent {a}").into_bytes(),
                    format!("{b} (that was it)").into_bytes(),
                ],
                Duration::from_millis(100),
            ))
            .unwrap(),
        "sse" => Response::builder()
            .header("content-type", "text/event-stream")
            .body(paced(
                vec![
                    b"data: hello\n\n".to_vec(),
                    format!("data: {{\"auth\":\"Bearer {a}").into_bytes(),
                    format!("{b}\"}}\n\n").into_bytes(),
                ],
                Duration::from_millis(300),
            ))
            .unwrap(),
        "gzip" => {
            use std::io::Write;
            let body = serde_json::json!({"path": rec.path, "headers": rec.headers}).to_string();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body.as_bytes()).unwrap();
            let bytes = gz.finish().unwrap();
            Response::builder()
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .header("content-length", bytes.len().to_string())
                .body(full(bytes))
                .unwrap()
        }
        "ws" => websocket_key_sender(req, key),
        "range" | "partial" => {
            let body = format!("{{\"auth\":\"Bearer {key}\"}}");
            let range = req
                .headers()
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            let (a, b) = match (range, what) {
                (Some((a, b)), _) => (a, b.min(body.len() - 1)),
                (None, "partial") => (0, body.len() / 2),
                (None, _) => {
                    return Response::builder().body(full(body)).unwrap();
                }
            };
            Response::builder()
                .status(206)
                .header("content-range", format!("bytes {a}-{b}/{}", body.len()))
                .body(full(body.as_bytes()[a..=b].to_vec()))
                .unwrap()
        }
        "reason" => {
            let mut res = Response::builder().body(full("ok")).unwrap();
            res.extensions_mut().insert(
                hyper::ext::ReasonPhrase::try_from(format!("OK {key}").into_bytes()).unwrap(),
            );
            res
        }
        _ => Response::builder().status(404).body(full("")).unwrap(),
    }
}

/// Accepts a WebSocket upgrade and sends `key` in a text message of two
/// fragments (split inside the key) with a ping between them, then a close.
fn websocket_key_sender(req: Request<Incoming>, key: String) -> Response<Body> {
    use hudsucker::tokio_tungstenite::tungstenite;
    use tokio::io::AsyncWriteExt;
    let Some(ws_key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder().status(400).body(full("")).unwrap();
    };
    let accept = tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
    tokio::spawn(async move {
        let Ok(up) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut io = TokioIo::new(up);
        let text = format!("{{\"auth\":\"Bearer {key}\"}}");
        let cut = text.len() / 2;
        let frame = |fin: bool, op: u8, payload: &[u8]| {
            let mut f = vec![(if fin { 0x80 } else { 0 }) | op];
            assert!(payload.len() < 126);
            f.push(payload.len() as u8);
            f.extend_from_slice(payload);
            f
        };
        let mut out = frame(false, 0x1, &text.as_bytes()[..cut]);
        out.extend(frame(true, 0x9, b"ping"));
        io.write_all(&out).await.ok();
        io.flush().await.ok();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut out = frame(true, 0x0, &text.as_bytes()[cut..]);
        out.extend(frame(true, 0x8, &[0x03, 0xe8]));
        io.write_all(&out).await.ok();
        io.flush().await.ok();
        // Wait for the client's close, then hang up.
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut io, &mut buf),
        )
        .await;
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(""))
        .unwrap()
}

/// Accepts a WebSocket upgrade and echoes text messages.
fn websocket_echo(req: Request<Incoming>) -> Response<Body> {
    use hudsucker::futures::{SinkExt, StreamExt};
    use hudsucker::tokio_tungstenite::{WebSocketStream, tungstenite};
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder().status(400).body(full("")).unwrap();
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(up) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(m)) = rx.next().await {
            if m.is_text() && tx.send(m).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(""))
        .unwrap()
}

pub fn tls_config() -> Arc<rustls::ServerConfig> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{root}upstream.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{root}upstream.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

impl Upstream {
    pub fn start() -> Upstream {
        let records = Arc::new(Mutex::new(Vec::new()));
        let prm: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let login: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let prm_t = (prm.clone(), login.clone());
        let (ports_tx, ports_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let recs = records.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tls_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let http_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ports_tx
                    .send((tls_l.local_addr().unwrap(), http_l.local_addr().unwrap()))
                    .unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(tls_config());
                let r1 = recs.clone();
                let p1 = prm_t.clone();
                let tls_loop = async move {
                    loop {
                        let Ok((tcp, _)) = tls_l.accept().await else {
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        let r = r1.clone();
                        let p = p1.clone();
                        let conn = next_conn();
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let svc = hyper::service::service_fn(move |req| {
                                let (r, p) = (r.clone(), p.clone());
                                async move {
                                    Ok::<_, std::convert::Infallible>(
                                        answer(req, (true, conn), r, p).await,
                                    )
                                }
                            });
                            let _ = Builder::new(TokioExecutor::new())
                                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                                .await;
                        });
                    }
                };
                let r2 = recs.clone();
                let p2 = prm_t.clone();
                let http_loop = async move {
                    loop {
                        let Ok((tcp, _)) = http_l.accept().await else {
                            continue;
                        };
                        let r = r2.clone();
                        let p = p2.clone();
                        let conn = next_conn();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                let (r, p) = (r.clone(), p.clone());
                                async move {
                                    Ok::<_, std::convert::Infallible>(
                                        answer(req, (false, conn), r, p).await,
                                    )
                                }
                            });
                            let _ = Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tcp), svc)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = tls_loop => {}
                    _ = http_loop => {}
                    _ = stop_rx => {}
                }
            });
        });
        let (a, b): (SocketAddr, SocketAddr) = ports_rx.recv().unwrap();
        Upstream {
            port: a.port(),
            http_port: b.port(),
            records,
            resource_metadata: prm,
            login_cookies: login,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
