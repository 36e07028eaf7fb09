//! The daemon's HTTP client for OAuth endpoints: the proxy's upstream
//! connector (system roots + `AUTHSOME_UPSTREAM_CA_FILE`, `AUTHSOME_RESOLVE`,
//! HTTPS only), a 30 s deadline per call, answers capped at 1 MiB. It never
//! goes through a proxy, ours included.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::auth_flow::oauth::{BoxFuture, HttpReply, HttpRequest, OAuthHttp};
use crate::error::{Error, Result};
use crate::proxy::upstream::{Connector, Upstream};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const MAX_BODY: usize = 1 << 20;

/// OAuth HTTP over the upstream connector.
pub struct HyperOAuthHttp {
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for HyperOAuthHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HyperOAuthHttp")
    }
}

impl HyperOAuthHttp {
    pub fn new(upstream: &Upstream) -> HyperOAuthHttp {
        HyperOAuthHttp {
            client: Client::builder(TokioExecutor::new()).build(upstream.connector(true)),
        }
    }
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or(url)
        .to_string()
}

impl OAuthHttp for HyperOAuthHttp {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpReply>> {
        Box::pin(async move {
            if !req.url.starts_with("https://") {
                return Err(Error::invalid(
                    format!(
                        "refusing a non-HTTPS OAuth endpoint ({})",
                        host_of(&req.url)
                    ),
                    Some("provider endpoints must be https:// URLs".into()),
                ));
            }
            let host = host_of(&req.url);
            let mut b = http::Request::builder().method(req.method).uri(&req.url);
            for (k, v) in &req.headers {
                b = b.header(k.as_str(), v.as_str());
            }
            b = b.header(
                "user-agent",
                concat!("authsome/", env!("CARGO_PKG_VERSION")),
            );
            let request = b.body(Full::new(Bytes::from(req.body))).map_err(|e| {
                Error::invalid(format!("cannot build a request to {host}: {e}"), None)
            })?;
            let call = async {
                let resp = self.client.request(request).await.map_err(|e| {
                    use std::error::Error as _;
                    let cause = e
                        .source()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| e.to_string());
                    Error::io(format!("cannot reach {host}"), std::io::Error::other(cause))
                })?;
                let status = resp.status().as_u16();
                let content_type = resp
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let body = Limited::new(resp.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| {
                        Error::io(
                            format!("cannot read the answer of {host}"),
                            std::io::Error::other(e.to_string()),
                        )
                    })?
                    .to_bytes()
                    .to_vec();
                Ok(HttpReply {
                    status,
                    content_type,
                    body,
                })
            };
            tokio::time::timeout(TIMEOUT, call).await.map_err(|_e| {
                Error::io(
                    format!("{host} did not answer within 30 s"),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                )
            })?
        })
    }
}
