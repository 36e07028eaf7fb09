//! `inject`: the single place a credential is written into a request.
//!
//! Why replace, never merge: the agent may send its own `Authorization` (a
//! placeholder such as `OPENAI_API_KEY=sk-…` from `authsome run`, or an attacker's
//! token meant to be forwarded alongside ours). Every client-supplied
//! instance of the header the provider uses, in any case and any number, is
//! removed first, then exactly one value is written. The per-run proxy token
//! (`Proxy-Authorization`) and hop-by-hop headers never go upstream.
//!
//! Pure: no sockets, no I/O; unit-tested on `http::Request` values.

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Uri};

use crate::credentials::ResolvedCredential;
use crate::providers::KeyFormat;

/// Why a credential could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// The stored value cannot be a header value (control characters).
    #[error("the stored credential is not a valid header value")]
    InvalidValue,
    /// The provider's header or parameter name is not valid.
    #[error("the provider's header name is invalid")]
    InvalidName,
    /// The rebuilt URI did not parse.
    #[error("cannot rebuild the request URI")]
    InvalidUri,
}

/// Headers that describe one hop, not the request; never forwarded.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    header::TRAILER,
];

/// Removes `Proxy-Authorization`, hop-by-hop headers, the client's
/// `Transfer-Encoding` (and a `Content-Length` beside it), and every header the
/// request's `Connection` header lists (except `Upgrade`, which WebSocket
/// handshakes need).
pub fn strip_hop_by_hop<B>(req: &mut Request<B>) {
    let h = req.headers_mut();
    for name in HOP_BY_HOP {
        h.remove(name);
    }
    // The client's framing describes its own hop (already decoded by the
    // server side); hyper frames the upstream request from the body. A
    // `Content-Length` is kept only when it was the framing (no
    // `Transfer-Encoding`), so it matches the body hyper sends.
    if h.remove(header::TRANSFER_ENCODING).is_some() {
        h.remove(header::CONTENT_LENGTH);
    }
    if h.contains_key(header::TE)
        && !h
            .get_all(header::TE)
            .iter()
            .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        // `TE: trailers` is what gRPC needs end to end; any other TE is per hop.
        h.remove(header::TE);
    }
    if !h.contains_key(header::CONNECTION) {
        // The common case (HTTP/2 has no Connection; most HTTP/1.1
        // clients send none): no listed headers, no upgrade.
        h.remove(header::UPGRADE);
        return;
    }
    let listed: Vec<HeaderName> = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade" && t != "close" && t != "keep-alive")
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let h = req.headers_mut();
    for name in listed {
        h.remove(name);
    }
    // `Connection` itself describes the client's hop (a client's `close`
    // would end the pooled upstream connection); only an upgrade handshake
    // keeps it, reduced to `upgrade`.
    h.remove(header::CONNECTION);
    if upgrade {
        h.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
    } else {
        h.remove(header::UPGRADE);
    }
}

/// Writes `cred` into `req`: strips hop-by-hop headers, removes every
/// client-supplied instance of the credential's header (or query
/// parameter), and sets exactly one value, marked sensitive so HTTP/2
/// never puts it in a compression table. The same for each of its `extra`
/// headers (a browser session's CSRF header). A browser session's `Cookie`
/// replaces the client's whole `Cookie` header: the agent's own cookies
/// for the provider's hosts are not sent (a cookie it set could otherwise
/// shadow or join the user's session).
pub fn inject<B>(req: &mut Request<B>, cred: &ResolvedCredential) -> Result<(), InjectError> {
    strip_hop_by_hop(req);
    let inj = &cred.injection;
    match inj.format {
        KeyFormat::Header | KeyFormat::Basic => {
            let name = HeaderName::from_bytes(inj.name.as_bytes())
                .map_err(|_e| InjectError::InvalidName)?;
            // The one place a secret is exposed: building the header value.
            let mut value = HeaderValue::from_str(cred.value.expose())
                .map_err(|_e| InjectError::InvalidValue)?;
            value.set_sensitive(true);
            let headers = req.headers_mut();
            headers.remove(&name);
            headers.insert(name, value);
            for (name, value) in &cred.extra {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_e| InjectError::InvalidName)?;
                let mut value = HeaderValue::from_str(value.expose())
                    .map_err(|_e| InjectError::InvalidValue)?;
                value.set_sensitive(true);
                let headers = req.headers_mut();
                headers.remove(&name);
                headers.insert(name, value);
            }
        }
        KeyFormat::Query => {
            let uri = with_query_param(req.uri(), &inj.name, cred.value.expose())?;
            *req.uri_mut() = uri;
        }
    }
    Ok(())
}

/// `uri` with every pair a server may read as the parameter `name`
/// removed (see [`names_param`]) and one `name=value` appended. Pairs are
/// split on `&` and on `;` (which some servers also treat as a separator);
/// every other pair is kept as written, with the separator it had.
fn with_query_param(uri: &Uri, name: &str, value: &str) -> Result<Uri, InjectError> {
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(InjectError::InvalidValue);
    }
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let mut kept = String::with_capacity(query.len());
    let mut sep = '&';
    let mut rest = query;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let pair = &rest[..end];
        let key = pair.split('=').next().unwrap_or("");
        if !pair.is_empty() && !names_param(key, name) {
            if !kept.is_empty() {
                kept.push(sep);
            }
            kept.push_str(pair);
        }
        let Some(next) = rest[end..].chars().next() else {
            break;
        };
        sep = next;
        rest = &rest[end + 1..];
    }
    if !kept.is_empty() {
        kept.push('&');
    }
    kept.push_str(&crate::percent::encode(name));
    kept.push('=');
    kept.push_str(&crate::percent::encode(value));
    let pq = format!("{path}?{kept}");
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_e| InjectError::InvalidUri)?);
    Uri::from_parts(parts).map_err(|_e| InjectError::InvalidUri)
}

/// True when a server may read a query pair named `raw` (as written) as
/// the parameter `name`: after percent-decoding (`+` is a space), in any
/// ASCII case, with surrounding whitespace or NULs, as an array (`key[]`,
/// `key[0]`), or with `.`/space where the name has `_` (PHP's mangling).
fn names_param(raw: &str, name: &str) -> bool {
    let decoded = crate::percent::decode(raw);
    let trimmed = decoded.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    let base = trimmed.split('[').next().unwrap_or("");
    let base = base.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    let canon = |b: u8| match b {
        b'.' | b' ' => b'_',
        b => b.to_ascii_lowercase(),
    };
    base.len() == name.len()
        && base
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| canon(a) == canon(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{ExportRole, Injection};
    use crate::secret::Secret;

    fn cred(name: &str, format: KeyFormat, value: &str) -> ResolvedCredential {
        ResolvedCredential {
            provider: "p".into(),
            connection: "default".into(),
            injection: Injection {
                name: name.into(),
                prefix: String::new(),
                format,
                source: ExportRole::ApiKey,
            },
            value: Secret::new(value.into()),
            expires_at: None,
            extra: Vec::new(),
            parts: Vec::new(),
            cookie_names: Vec::new(),
        }
    }

    #[test]
    fn a_browser_session_replaces_the_clients_cookies_and_csrf_header() {
        let mut c = cred(
            "Cookie",
            KeyFormat::Header,
            "li_at=AQEDsecret; JSESSIONID=\"ajax:123\"",
        );
        c.extra = vec![("csrf-token".into(), Secret::new("ajax:123".into()))];
        let mut req = Request::builder()
            .header("Cookie", "li_at=agent-guess; lang=en")
            .header("cookie", "JSESSIONID=mine")
            .header("Csrf-Token", "agent")
            .header("csrf-token", "agent2")
            .body(())
            .unwrap();
        inject(&mut req, &c).unwrap();
        let cookies: Vec<_> = req.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["li_at=AQEDsecret; JSESSIONID=\"ajax:123\""]);
        let csrf: Vec<_> = req.headers().get_all("csrf-token").iter().collect();
        assert_eq!(csrf, ["ajax:123"]);
        assert!(csrf[0].is_sensitive());
    }

    #[test]
    fn client_auth_in_any_case_and_number_is_replaced_by_exactly_one() {
        let mut req = Request::builder()
            .uri("https://api.openai.com/v1/models")
            .header("Authorization", "Bearer authsome-managed")
            .header("authorization", "Bearer attacker")
            .header("AUTHORIZATION", "Basic eHh4")
            .header("x-other", "kept")
            .body(())
            .unwrap();
        inject(
            &mut req,
            &cred("Authorization", KeyFormat::Header, "Bearer sk-real"),
        )
        .unwrap();
        let all: Vec<_> = req.headers().get_all("authorization").iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0], "Bearer sk-real");
        assert!(all[0].is_sensitive());
        assert_eq!(req.headers()["x-other"], "kept");
    }

    #[test]
    fn provider_specific_header_is_replaced_and_authorization_left_alone() {
        let mut req = Request::builder()
            .header("X-Api-Key", "placeholder")
            .header("x-api-key", "second")
            .body(())
            .unwrap();
        inject(
            &mut req,
            &cred("x-api-key", KeyFormat::Header, "sk-ant-real"),
        )
        .unwrap();
        assert_eq!(req.headers().get_all("x-api-key").iter().count(), 1);
        assert_eq!(req.headers()["x-api-key"], "sk-ant-real");
    }

    #[test]
    fn te_trailers_survives_for_grpc_other_te_does_not() {
        let mut req = Request::builder()
            .header("te", "trailers")
            .body(())
            .unwrap();
        strip_hop_by_hop(&mut req);
        assert_eq!(req.headers()["te"], "trailers");
        let mut req = Request::builder().header("te", "gzip").body(()).unwrap();
        strip_hop_by_hop(&mut req);
        assert!(req.headers().get("te").is_none());
    }

    #[test]
    fn the_clients_framing_is_not_forwarded() {
        let mut req = Request::builder()
            .header("Transfer-Encoding", "identity, chunked")
            .header("Content-Length", "5")
            .body(())
            .unwrap();
        strip_hop_by_hop(&mut req);
        assert!(req.headers().get("transfer-encoding").is_none());
        assert!(req.headers().get("content-length").is_none());
        let mut req = Request::builder()
            .header("Content-Length", "5")
            .body(())
            .unwrap();
        strip_hop_by_hop(&mut req);
        assert_eq!(req.headers()["content-length"], "5");
    }

    #[test]
    fn the_clients_connection_header_does_not_reach_upstream() {
        let mut req = Request::builder()
            .header("Connection", "close")
            .header("Upgrade", "h2c")
            .body(())
            .unwrap();
        strip_hop_by_hop(&mut req);
        assert!(req.headers().get("connection").is_none());
        assert!(
            req.headers().get("upgrade").is_none(),
            "no upgrade without Connection: upgrade"
        );
    }

    #[test]
    fn proxy_authorization_and_hop_by_hop_never_go_upstream() {
        let mut req = Request::builder()
            .header("Proxy-Authorization", "Basic YXV0aHNvbWU6dG9rZW4=")
            .header("Proxy-Connection", "keep-alive")
            .header("Connection", "X-Secret-Hop, Upgrade")
            .header("X-Secret-Hop", "leak")
            .header("Upgrade", "websocket")
            .header("Keep-Alive", "timeout=5")
            .body(())
            .unwrap();
        inject(
            &mut req,
            &cred("Authorization", KeyFormat::Header, "Bearer t"),
        )
        .unwrap();
        for h in [
            "proxy-authorization",
            "proxy-connection",
            "x-secret-hop",
            "keep-alive",
        ] {
            assert!(req.headers().get(h).is_none(), "{h} survived");
        }
        assert_eq!(
            req.headers()["upgrade"],
            "websocket",
            "WebSocket handshakes keep Upgrade"
        );
    }

    #[test]
    fn values_with_line_breaks_are_refused() {
        let mut req = Request::builder().body(()).unwrap();
        let err = inject(
            &mut req,
            &cred(
                "Authorization",
                KeyFormat::Header,
                "Bearer a\r\nX-Injected: 1",
            ),
        )
        .unwrap_err();
        assert_eq!(err, InjectError::InvalidValue);
        assert!(req.headers().get("x-injected").is_none());
    }

    #[test]
    fn odd_percent_sequences_do_not_panic() {
        for q in ["a=%", "a=%4", "%zz=1", "%C3%A9=1&é=2", "ü%=x"] {
            let uri: Uri = format!("https://h.test/p?{}", encode_loose(q))
                .parse()
                .unwrap();
            let _ = with_query_param(&uri, "key", "v");
        }
        assert_eq!(crate::percent::decode("%61pi%5Fkey%"), "api_key%");
    }

    fn encode_loose(q: &str) -> String {
        q.chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    crate::percent::encode(&c.to_string())
                }
            })
            .collect()
    }

    #[test]
    fn query_parameter_is_replaced_not_duplicated() {
        let mut req = Request::builder().uri("https://api.x.test/v1/search?q=rust&api_key=placeholder&API_KEY=two&%61pi_key=three").body(()).unwrap();
        inject(&mut req, &cred("api_key", KeyFormat::Query, "real key/1")).unwrap();
        assert_eq!(req.uri().query(), Some("q=rust&api_key=real%20key%2F1"));
        assert_eq!(req.uri().host(), Some("api.x.test"));
        assert_eq!(req.uri().path(), "/v1/search");
    }

    #[test]
    fn every_form_a_server_may_read_as_the_parameter_is_removed() {
        for (q, want) in [
            ("q=1;api_key=b&api_key=a", "q=1&api_key=K"),
            ("a=1;b=2", "a=1;b=2&api_key=K"),
            ("%61pi%5Fkey=a&API_KEY=b&Api_Key=c", "api_key=K"),
            ("api_key[]=a&api_key%5B0%5D=b&api_key", "api_key=K"),
            ("api.key=a&api+key=b&%20api_key%00=c", "api_key=K"),
            ("x=1;;&&y=2", "x=1&y=2&api_key=K"),
            (
                "api_keys=1&my_api_key=2&api_key2=3",
                "api_keys=1&my_api_key=2&api_key2=3&api_key=K",
            ),
            ("", "api_key=K"),
        ] {
            let uri: Uri = format!("https://h.test/p?{q}").parse().unwrap();
            let out = with_query_param(&uri, "api_key", "K").unwrap();
            assert_eq!(out.query(), Some(want), "{q}");
        }
    }
}
