//! OAuth 2.0 as a client: the requests and the answers, nothing stored.
//!
//! - Authorization code with PKCE (RFC 7636, S256 only): [`Pkce`],
//!   [`authorize_url`], [`exchange_code`].
//! - Device authorization (RFC 8628): [`device_start`], [`device_poll`].
//! - Client credentials, refresh (RFC 6749 §4.4, §6) and revocation
//!   (RFC 7009).
//!
//! Client authentication at the token endpoint is what the provider
//! declares: credentials in the form body, or HTTP Basic (RFC 6749 §2.3.1,
//! id and secret form-encoded first). Answers may be JSON or form-encoded.
//! Errors carry the server's `error` and `error_description` (control
//! characters removed, length capped), never a token; a body that does not
//! parse is reported by its shape, never quoted.
//!
//! HTTP goes through [`OAuthHttp`], implemented by `app` over the proxy's
//! upstream connector (system roots + `AUTHSOME_UPSTREAM_CA_FILE`,
//! `AUTHSOME_RESOLVE`), so tests reach a local authorization server.

use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::credentials::oauth::{ClientInfo, GrantError, Tokens};
use crate::error::{Error, Result};
use crate::providers::ProviderDef;
use crate::providers::schema::{DeviceTokenRequest, TokenAuth};
use crate::secret::Secret;

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An HTTP request to an OAuth endpoint.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Its answer.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Sends requests to OAuth endpoints.
pub trait OAuthHttp: Send + Sync + 'static {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpReply>>;
}

impl std::fmt::Debug for dyn OAuthHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuthHttp")
    }
}

// === PKCE and the authorization URL ===

/// A PKCE verifier and its S256 challenge.
#[derive(Debug)]
pub struct Pkce {
    pub verifier: Secret<String>,
    pub challenge: String,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// 32 random bytes → a 43-character verifier; challenge = BASE64URL(SHA256(verifier)).
pub fn new_pkce() -> Result<Pkce> {
    let mut b = [0u8; 32];
    crate::secret::fill_random(&mut b)?;
    let verifier = b64url(&b);
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    Ok(Pkce {
        verifier: Secret::new(verifier),
        challenge,
    })
}

/// A 128-bit random `state`.
pub fn new_state() -> Result<String> {
    let mut b = [0u8; 16];
    crate::secret::fill_random(&mut b)?;
    Ok(b64url(&b))
}

pub use crate::percent::{decode, encode};

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Query pairs of a URL or a form body.
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The endpoints of a provider, `{base_url}` filled in.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization: Option<String>,
    pub token: String,
    pub device: Option<String>,
    pub revocation: Option<String>,
    pub token_auth: TokenAuth,
    pub device_json: bool,
    pub scopes: Vec<String>,
    pub authorization_params: Vec<(String, String)>,
}

impl Endpoints {
    /// From a provider definition, or (for providers that name only a
    /// resource) from the endpoints discovered when the client registered.
    pub fn for_client(def: &ProviderDef, client: &ClientInfo) -> Option<Endpoints> {
        if def.oauth.is_some() {
            return Endpoints::of(def, client.base_url.as_deref());
        }
        let d = client.endpoints.as_ref()?;
        Some(Endpoints {
            authorization: Some(d.authorization_endpoint.clone()),
            token: d.token_endpoint.clone(),
            device: None,
            revocation: d.revocation_endpoint.clone(),
            token_auth: TokenAuth::Body,
            device_json: false,
            scopes: Vec::new(),
            authorization_params: Vec::new(),
        })
    }

    /// From a provider definition (`None` when it has no `oauth` block).
    pub fn of(def: &ProviderDef, base_url: Option<&str>) -> Option<Endpoints> {
        let o = def.oauth.as_ref()?;
        let ep = |u: &String| def.endpoint(u, base_url);
        Some(Endpoints {
            authorization: o.authorization_url.as_ref().map(ep),
            token: ep(&o.token_url),
            device: o.device_authorization_url.as_ref().map(ep),
            revocation: o.revocation_url.as_ref().map(ep),
            token_auth: o.token_auth,
            device_json: o.device_token_request == DeviceTokenRequest::Json,
            scopes: o.scopes.clone(),
            authorization_params: o
                .authorization_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// `scheme://host[:port]` of the authorization endpoint: the issuer we
    /// expect in an RFC 9207 `iss` parameter when no metadata says otherwise.
    pub fn expected_issuer(&self) -> Option<String> {
        let url = self.authorization.as_ref().unwrap_or(&self.token);
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split(['/', '?', '#']).next()?;
        Some(format!("{scheme}://{host}"))
    }
}

/// The URL the user's browser opens.
pub fn authorize_url(
    ep: &Endpoints,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
    scopes: &[String],
) -> Result<String> {
    let base = ep.authorization.as_ref().ok_or_else(|| {
        Error::invalid(
            "this provider has no authorization endpoint",
            Some("use `--flow device` if it supports the device flow".into()),
        )
    })?;
    let mut pairs: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), redirect_uri.into()),
        ("state".into(), state.into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    if !scopes.is_empty() {
        pairs.push(("scope".into(), scopes.join(" ")));
    }
    pairs.extend(ep.authorization_params.iter().cloned());
    let q = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}{q}"))
}

// === token endpoint ===

/// Removes control characters and caps the length of text from a server.
pub fn clean(s: &str) -> String {
    let t: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    t
}

fn parse_body(reply: &HttpReply) -> Option<serde_json::Map<String, Value>> {
    let text = std::str::from_utf8(&reply.body).ok()?;
    if reply.content_type.contains("json") || text.trim_start().starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        };
    }
    Some(
        parse_pairs(text.trim())
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn str_field(m: &serde_json::Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An error answer: (`error`, `error_description`).
fn server_error(m: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    let code = str_field(m, "error")?;
    Some((
        clean(&code),
        str_field(m, "error_description")
            .map(|d| clean(&d))
            .unwrap_or_default(),
    ))
}

fn describe(code: &str, desc: &str) -> String {
    if desc.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {desc}")
    }
}

/// Client authentication as the provider declares it (RFC 6749 §2.3.1):
/// HTTP Basic with the id and secret form-encoded first, or both in the
/// body. A public client (no secret) always sends its id in the body.
fn client_auth<'a>(
    ep: &Endpoints,
    client: &'a ClientInfo,
    pairs: &mut Vec<(&'a str, &'a str)>,
    headers: &mut Vec<(String, String)>,
) {
    let secret = client.secret.as_ref().map(|s| s.expose().as_str());
    match (ep.token_auth, secret) {
        (TokenAuth::Basic, Some(sec)) => headers.push((
            "authorization".into(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    encode(&client.id),
                    encode(sec)
                ))
            ),
        )),
        (_, sec) => {
            if !client.id.is_empty() {
                pairs.push(("client_id", &client.id));
            }
            if let Some(sec) = sec {
                pairs.push(("client_secret", sec));
            }
        }
    }
}

/// The fields of an answer that must be readable and not an OAuth error.
fn answer(reply: &HttpReply, what: &str) -> Result<serde_json::Map<String, Value>> {
    let m = parse_body(reply).ok_or_else(|| {
        Error::invalid(
            format!(
                "the {what} endpoint answered HTTP {} with an unreadable body",
                reply.status
            ),
            None,
        )
    })?;
    if let Some((code, desc)) = server_error(&m) {
        return Err(Error::invalid(
            format!(
                "the provider refused the {what} request: {}",
                describe(&code, &desc)
            ),
            None,
        ));
    }
    Ok(m)
}

async fn token_request(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    mut pairs: Vec<(&str, &str)>,
    what: &str,
) -> std::result::Result<Tokens, GrantError> {
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    client_auth(ep, client, &mut pairs, &mut headers);
    let reply = http
        .send(HttpRequest {
            method: "POST",
            url: ep.token.clone(),
            headers,
            body: form(&pairs),
        })
        .await
        .map_err(GrantError::Other)?;
    let Some(m) = parse_body(&reply) else {
        return Err(GrantError::Other(Error::invalid(
            format!(
                "the token endpoint answered HTTP {} with a body that is neither JSON nor a form ({what})",
                reply.status
            ),
            None,
        )));
    };
    if let Some((code, desc)) = server_error(&m) {
        let msg = describe(&code, &desc);
        return Err(if code == "invalid_grant" {
            GrantError::InvalidGrant(msg)
        } else {
            GrantError::Refused {
                code,
                message: format!("the provider refused the {what}: {msg}"),
            }
        });
    }
    if !(200..300).contains(&reply.status) {
        return Err(GrantError::Other(Error::invalid(
            format!("the token endpoint answered HTTP {} ({what})", reply.status),
            None,
        )));
    }
    let Some(access) = str_field(&m, "access_token").filter(|a| !a.is_empty()) else {
        return Err(GrantError::Other(Error::invalid(
            format!("the token endpoint's answer has no access_token ({what})"),
            None,
        )));
    };
    Ok(Tokens {
        access_token: Secret::new(access),
        refresh_token: str_field(&m, "refresh_token")
            .filter(|r| !r.is_empty())
            .map(Secret::new),
        expires_in: str_field(&m, "expires_in").and_then(|e| e.parse().ok()),
        token_type: str_field(&m, "token_type"),
        scope: str_field(&m, "scope"),
    })
}

fn flat(e: GrantError) -> Error {
    match e {
        GrantError::InvalidGrant(m) => {
            Error::invalid(format!("the provider refused the grant: {m}"), None)
        }
        GrantError::Refused { message, .. } => Error::invalid(message, None),
        GrantError::Other(e) => e,
    }
}

/// Exchanges an authorization code (with the PKCE verifier).
pub async fn exchange_code(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    code: &str,
    redirect_uri: &str,
    verifier: &Secret<String>,
) -> Result<Tokens> {
    token_request(
        http,
        ep,
        client,
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.expose()),
        ],
        "authorization code",
    )
    .await
    .map_err(flat)
}

/// `grant_type=refresh_token`.
pub async fn refresh(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    refresh_token: &Secret<String>,
) -> std::result::Result<Tokens, GrantError> {
    token_request(
        http,
        ep,
        client,
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ],
        "refresh token",
    )
    .await
}

/// `grant_type=client_credentials`.
pub async fn client_credentials(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    scopes: &[String],
) -> std::result::Result<Tokens, GrantError> {
    let scope = scopes.join(" ");
    let mut pairs = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    token_request(http, ep, client, pairs, "client credentials").await
}

// === device flow ===

/// The start of a device flow.
#[derive(Debug)]
pub struct DeviceStart {
    pub device_code: Secret<String>,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub interval: u64,
    pub expires_in: i64,
}

/// Asks for a device code (RFC 8628 §3.1).
pub async fn device_start(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    scopes: &[String],
) -> Result<DeviceStart> {
    let url = ep.device.clone().ok_or_else(|| {
        Error::invalid(
            "this provider has no device authorization endpoint",
            Some("log in with the browser flow instead (omit `--flow device`)".into()),
        )
    })?;
    let scope = scopes.join(" ");
    let mut pairs = vec![("client_id", client.id.as_str())];
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    let reply = http
        .send(HttpRequest {
            method: "POST",
            url,
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
            ],
            body: form(&pairs),
        })
        .await?;
    let m = answer(&reply, "device authorization")?;
    let need = |k: &str| {
        str_field(&m, k)
            .ok_or_else(|| Error::invalid(format!("the device endpoint's answer has no {k}"), None))
    };
    Ok(DeviceStart {
        device_code: Secret::new(need("device_code")?),
        user_code: clean(&need("user_code")?),
        verification_uri: clean(
            &str_field(&m, "verification_uri")
                .or_else(|| str_field(&m, "verification_url"))
                .ok_or_else(|| {
                    Error::invalid("the device endpoint's answer has no verification_uri", None)
                })?,
        ),
        verification_uri_complete: str_field(&m, "verification_uri_complete").map(|s| clean(&s)),
        interval: str_field(&m, "interval")
            .and_then(|i| i.parse().ok())
            .unwrap_or(5)
            .clamp(1, 60),
        expires_in: str_field(&m, "expires_in")
            .and_then(|i| i.parse().ok())
            .unwrap_or(900)
            .clamp(10, 3600),
    })
}

/// One poll of the token endpoint in a device flow.
#[derive(Debug)]
pub enum DevicePoll {
    /// `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: add 5 s to the interval.
    SlowDown,
    /// The user approved.
    Done(Tokens),
    /// `access_denied`, `expired_token` or another error: stop.
    Stop(Error),
}

/// Polls once (RFC 8628 §3.4).
pub async fn device_poll(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    device_code: &Secret<String>,
) -> DevicePoll {
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let r = if ep.device_json {
        let body = serde_json::json!({
            "grant_type": grant,
            "device_code": device_code.expose(),
            "client_id": client.id,
        });
        match http
            .send(HttpRequest {
                method: "POST",
                url: ep.token.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("accept".into(), "application/json".into()),
                ],
                body: body.to_string().into_bytes(),
            })
            .await
        {
            Err(e) => return DevicePoll::Stop(e),
            Ok(reply) => match parse_body(&reply) {
                None => {
                    return DevicePoll::Stop(Error::invalid(
                        "unreadable answer from the token endpoint",
                        None,
                    ));
                }
                Some(m) => match server_error(&m) {
                    Some((code, desc)) => Err(GrantError::Refused {
                        message: describe(&code, &desc),
                        code,
                    }),
                    None => match str_field(&m, "access_token") {
                        Some(a) => Ok(Tokens {
                            access_token: Secret::new(a),
                            refresh_token: str_field(&m, "refresh_token").map(Secret::new),
                            expires_in: str_field(&m, "expires_in").and_then(|e| e.parse().ok()),
                            token_type: str_field(&m, "token_type"),
                            scope: str_field(&m, "scope"),
                        }),
                        None => {
                            return DevicePoll::Stop(Error::invalid(
                                "the token endpoint's answer has no access_token",
                                None,
                            ));
                        }
                    },
                },
            },
        }
    } else {
        token_request(
            http,
            ep,
            client,
            vec![("grant_type", grant), ("device_code", device_code.expose())],
            "device code",
        )
        .await
    };
    match r {
        Ok(t) => DevicePoll::Done(t),
        Err(GrantError::InvalidGrant(m)) => DevicePoll::Stop(Error::invalid(m, None)),
        Err(GrantError::Refused { code, message }) => match code.as_str() {
            "authorization_pending" => DevicePoll::Pending,
            "slow_down" => DevicePoll::SlowDown,
            "access_denied" => DevicePoll::Stop(Error::invalid(
                "the login was denied at the provider",
                Some("run `authsome login` again and approve the request".into()),
            )),
            "expired_token" => DevicePoll::Stop(Error::expired(
                "the device code expired before the login was approved",
                Some("run `authsome login` again".into()),
            )),
            _ => DevicePoll::Stop(Error::invalid(message, None)),
        },
        // A network hiccup: ask again at the next interval.
        Err(GrantError::Other(e)) if e.kind() == crate::error::ErrorKind::Io => {
            tracing::debug!(error = %e, "device poll failed; retrying");
            DevicePoll::Pending
        }
        Err(GrantError::Other(e)) => DevicePoll::Stop(e),
    }
}

// === discovery (RFC 9728, RFC 8414) and registration (RFC 7591) ===

/// Authorization-server metadata, checked.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub endpoints: crate::credentials::oauth::DiscoveredEndpoints,
    pub registration_endpoint: Option<String>,
}

async fn get_json(
    http: &dyn OAuthHttp,
    url: &str,
) -> Result<Option<serde_json::Map<String, Value>>> {
    let reply = http
        .send(HttpRequest {
            method: "GET",
            url: url.to_string(),
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
        })
        .await?;
    if reply.status == 404 {
        return Ok(None);
    }
    if !(200..300).contains(&reply.status) {
        return Err(Error::invalid(
            format!("{url} answered HTTP {}", reply.status),
            None,
        ));
    }
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        _ => Err(Error::invalid(
            format!("{url} did not answer with a JSON object"),
            None,
        )),
    }
}

fn https_field(m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<String>> {
    match str_field(m, k) {
        None => Ok(None),
        Some(u) if u.starts_with("https://") => Ok(Some(u)),
        Some(_) => Err(Error::invalid(
            format!("authorization-server metadata: `{k}` is not an https:// URL"),
            None,
        )),
    }
}

/// Finds the authorization server of `resource` (an `https://host[:port]`
/// origin): its protected-resource metadata names the issuer (else the
/// resource is its own issuer), whose RFC 8414 metadata must name itself
/// (`issuer` equal to the URL it was fetched for) and use https endpoints.
pub async fn discover(http: &dyn OAuthHttp, resource: &str) -> Result<Metadata> {
    let resource = resource.trim_end_matches('/');
    let prm = get_json(
        http,
        &format!("{resource}/.well-known/oauth-protected-resource"),
    )
    .await?;
    let issuer = prm
        .as_ref()
        .and_then(|m| m.get("authorization_servers"))
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .map(|s| s.trim_end_matches('/').to_string())
        .unwrap_or_else(|| resource.to_string());
    if !issuer.starts_with("https://") {
        return Err(Error::invalid(
            "the resource names a non-https authorization server",
            None,
        ));
    }
    let (origin, path) = match issuer["https://".len()..].find('/') {
        Some(i) => issuer.split_at("https://".len() + i),
        None => (issuer.as_str(), ""),
    };
    let mut meta = None;
    for url in [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{issuer}/.well-known/openid-configuration"),
    ] {
        if let Some(m) = get_json(http, &url).await? {
            meta = Some(m);
            break;
        }
    }
    let m = meta.ok_or_else(|| {
        Error::invalid(
            format!("{issuer} publishes no authorization-server metadata"),
            Some("add `oauth` and `registration` blocks to the provider file".into()),
        )
    })?;
    let named = str_field(&m, "issuer").unwrap_or_default();
    if named.trim_end_matches('/') != issuer {
        return Err(Error::invalid(
            format!(
                "authorization-server metadata names issuer `{}` but was fetched for `{issuer}`; refusing it (RFC 8414 §3.3)",
                clean(&named)
            ),
            None,
        ));
    }
    if let Some(methods) = m
        .get("code_challenge_methods_supported")
        .and_then(|v| v.as_array())
        && !methods.iter().any(|v| v.as_str() == Some("S256"))
    {
        return Err(Error::invalid(
            "the authorization server does not support PKCE with S256; refusing to log in without it",
            None,
        ));
    }
    let need = |k: &str| -> Result<String> {
        https_field(&m, k)?.ok_or_else(|| {
            Error::invalid(format!("authorization-server metadata has no `{k}`"), None)
        })
    };
    Ok(Metadata {
        endpoints: crate::credentials::oauth::DiscoveredEndpoints {
            issuer: issuer.clone(),
            authorization_endpoint: need("authorization_endpoint")?,
            token_endpoint: need("token_endpoint")?,
            revocation_endpoint: https_field(&m, "revocation_endpoint")?,
            iss_parameter: m
                .get("authorization_response_iss_parameter_supported")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        },
        registration_endpoint: https_field(&m, "registration_endpoint")?,
    })
}

/// A client registered with RFC 7591.
#[derive(Debug)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
    pub registration_access_token: Option<Secret<String>>,
    pub registration_client_uri: Option<String>,
}

/// Registers this daemon as a client: only the loopback callback as
/// redirect URI, authorization code + refresh token grants.
pub async fn register(
    http: &dyn OAuthHttp,
    endpoint: &str,
    redirect_uri: &str,
    scopes: &[String],
) -> Result<Registered> {
    let mut body = serde_json::json!({
        "client_name": "authsome",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post",
    });
    if !scopes.is_empty() {
        body["scope"] = Value::String(scopes.join(" "));
    }
    let reply = http
        .send(HttpRequest {
            method: "POST",
            url: endpoint.to_string(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        })
        .await?;
    let m = answer(&reply, "registration")?;
    let client_id = str_field(&m, "client_id")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::invalid("the registration answer has no client_id", None))?;
    Ok(Registered {
        client_id,
        client_secret: str_field(&m, "client_secret")
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        registration_access_token: str_field(&m, "registration_access_token").map(Secret::new),
        registration_client_uri: str_field(&m, "registration_client_uri"),
    })
}

// === revocation ===

/// RFC 7009: revokes one token. 200 (even for an already invalid token) is
/// success.
pub async fn revoke(
    http: &dyn OAuthHttp,
    ep: &Endpoints,
    client: &ClientInfo,
    token: &Secret<String>,
    hint: &str,
) -> Result<()> {
    let Some(url) = ep.revocation.clone() else {
        return Err(Error::invalid(
            "this provider has no revocation endpoint",
            None,
        ));
    };
    let mut pairs = vec![
        ("token", token.expose().as_str()),
        ("token_type_hint", hint),
    ];
    let mut headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    client_auth(ep, client, &mut pairs, &mut headers);
    let reply = http
        .send(HttpRequest {
            method: "POST",
            url,
            headers,
            body: form(&pairs),
        })
        .await?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        let why = parse_body(&reply)
            .and_then(|m| server_error(&m))
            .map(|(c, d)| describe(&c, &d))
            .unwrap_or_else(|| format!("HTTP {}", reply.status));
        Err(Error::invalid(format!("revocation refused: {why}"), None))
    }
}

/// The daemon's [`TokenEndpoint`](crate::credentials::oauth::TokenEndpoint):
/// the async calls above, run on the daemon's runtime from the blocking pool.
pub struct BlockingEndpoint {
    pub http: std::sync::Arc<dyn OAuthHttp>,
    pub rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for BlockingEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockingEndpoint")
    }
}

fn endpoints(def: &ProviderDef, client: &ClientInfo) -> Result<Endpoints> {
    Endpoints::for_client(def, client).ok_or_else(|| {
        Error::invalid(
            format!(
                "provider `{}` has no oauth block and no discovered endpoints",
                def.name
            ),
            None,
        )
    })
}

impl crate::credentials::oauth::TokenEndpoint for BlockingEndpoint {
    fn refresh(
        &self,
        def: &ProviderDef,
        client: &ClientInfo,
        refresh_token: &Secret<String>,
    ) -> std::result::Result<Tokens, GrantError> {
        let ep = endpoints(def, client).map_err(GrantError::Other)?;
        self.rt
            .block_on(refresh(self.http.as_ref(), &ep, client, refresh_token))
    }

    fn client_credentials(
        &self,
        def: &ProviderDef,
        client: &ClientInfo,
        scopes: &[String],
    ) -> std::result::Result<Tokens, GrantError> {
        let ep = endpoints(def, client).map_err(GrantError::Other)?;
        self.rt
            .block_on(client_credentials(self.http.as_ref(), &ep, client, scopes))
    }

    fn revoke(
        &self,
        def: &ProviderDef,
        client: &ClientInfo,
        token: &Secret<String>,
        hint: &str,
    ) -> Result<()> {
        let ep = endpoints(def, client)?;
        self.rt
            .block_on(revoke(self.http.as_ref(), &ep, client, token, hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_of_a_43_char_verifier() {
        let p = new_pkce().unwrap();
        assert_eq!(p.verifier.expose().len(), 43);
        assert_eq!(
            p.challenge,
            b64url(&Sha256::digest(p.verifier.expose().as_bytes()))
        );
        assert_ne!(new_pkce().unwrap().verifier.expose(), p.verifier.expose());
        assert_eq!(new_state().unwrap().len(), 22);
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            b64url(&Sha256::digest(v.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn form_encoding_round_trips() {
        let s = "a b&c=d/é+%";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(
            parse_pairs("x=1&y=a%20b+c&z"),
            vec![
                ("x".into(), "1".into()),
                ("y".into(), "a b c".into()),
                ("z".into(), "".into())
            ]
        );
    }

    #[test]
    fn server_errors_are_cleaned() {
        let reply = HttpReply {
            status: 400,
            content_type: "application/json".into(),
            body:
                br#"{"error":"invalid_grant","error_description":"bad\u001b]0;pwned\u0007\nthing"}"#
                    .to_vec(),
        };
        let (c, d) = server_error(&parse_body(&reply).unwrap()).unwrap();
        assert_eq!(c, "invalid_grant");
        assert!(!d.chars().any(|c| c.is_control()), "{d:?}");
    }
}
