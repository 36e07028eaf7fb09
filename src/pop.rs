//! Proof-of-possession tokens between the CLI and the daemon.
//!
//! Every protected daemon request carries `Authorization: PoP <jwt>`: a JWT
//! signed with EdDSA by the caller's Ed25519 identity, valid for at most 60
//! seconds, bound to one request by its method (`htm`), path and query
//! (`htu`) and the SHA-256 of its body (`body_sha256`), and usable once
//! (`jti`). A stolen token is worth one identical request within a minute.
//!
//! Used `jti`s live in memory, so a restarted daemon would not know them: the
//! daemon therefore refuses every token issued before it started
//! ([`Verifier::not_before`]). Tokens carry their issue time in milliseconds
//! too (`iat_ms`), so a token from the second of the restart is told apart.
//!
//! Why not a bearer token in a file: any process of the same user could read
//! and replay it forever. A PoP token proves possession of the key at the
//! time of the request and cannot be replayed for another request.
//!
//! The verifier accepts only `alg: EdDSA` (never `none`, never HMAC: with a
//! public key as HMAC secret, anyone could forge tokens) and only issuers it
//! trusts: the identity of the daemon's own home and, on a team server, the
//! team's members ([`Verifier::set_trusted`], called when the roster
//! changes: a removed member's next token is refused as `UnknownIssuer`).
//! The only route that adds an identity is an admin's `team add`.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{Identity, parse_did_key};

/// The `aud` claim the daemon expects.
pub const AUDIENCE: &str = "authsome-daemon";
/// Longest accepted `exp - iat`, seconds.
pub const MAX_LIFETIME: i64 = 60;
/// Accepted clock difference between CLI and daemon, seconds.
pub const CLOCK_SKEW: i64 = 5;

/// The claims of a PoP token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    /// The issue time in milliseconds (`iat` is whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    pub exp: i64,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub body_sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// Why a token was refused. The messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    #[error("missing `Authorization: PoP <token>` header")]
    Missing,
    #[error("the PoP token is malformed")]
    Malformed,
    #[error("the PoP token must be signed with EdDSA")]
    Algorithm,
    #[error("the PoP token's issuer is not trusted by this daemon")]
    UnknownIssuer,
    #[error("the PoP token's signature is invalid")]
    Signature,
    #[error("the PoP token is for another audience")]
    Audience,
    #[error("the PoP token has expired")]
    Expired,
    #[error("the PoP token is issued in the future (check the clock)")]
    NotYetValid,
    #[error("the PoP token lives longer than {MAX_LIFETIME} seconds")]
    Lifetime,
    #[error("the PoP token was made for another method")]
    Method,
    #[error("the PoP token was made for another path")]
    Url,
    #[error("the PoP token was made for another body")]
    Body,
    #[error("the PoP token was already used")]
    Replay,
    #[error("the PoP token was made before this daemon started")]
    BeforeStart,
}

/// Hex SHA-256 of `body`.
pub fn body_hash(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Makes the `Authorization` header value for one request.
pub fn authorization(
    identity: &Identity,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
) -> String {
    let mut jti = [0u8; 16];
    if crate::secret::fill_random(&mut jti).is_err() {
        // Without randomness the jti could repeat; the daemon then refuses
        // the token as a replay, which fails closed.
        jti = now.to_le_bytes().repeat(2).try_into().unwrap_or([0u8; 16]);
    }
    let claims = Claims {
        iss: identity.did().to_string(),
        sub: identity.did().to_string(),
        aud: AUDIENCE.into(),
        iat: now,
        iat_ms: Some(iat_ms(now)),
        exp: now + MAX_LIFETIME,
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        htm: method.to_ascii_uppercase(),
        htu: path_and_query.into(),
        body_sha256: body_hash(body),
    };
    format!("PoP {}", encode(identity, &claims))
}

/// The issue time in milliseconds for a token whose `iat` is `now`: the clock
/// when it is in that second, its last millisecond when the clock has just
/// moved on, its first otherwise (a `now` chosen by the caller).
fn iat_ms(now: i64) -> i64 {
    let ms = i64::try_from(now_millis()).unwrap_or(i64::MAX);
    match ms.div_euclid(1000) - now {
        0 => ms,
        1 => now * 1000 + 999,
        _ => now.saturating_mul(1000),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    zeroize::Zeroize::zeroize(&mut k);
    out
}

/// The daemon's answer to a CLI's `challenge` under the proof key of its
/// `daemon.json` (what `/api/health/proof` returns; the CLI checks it).
pub fn daemon_proof(key: &str, challenge: &str) -> String {
    hmac_sha256(
        key.as_bytes(),
        format!("authsome-daemon-proof-v1\0{challenge}").as_bytes(),
    )
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect()
}

/// Signs `claims` into a compact JWT.
pub fn encode(identity: &Identity, claims: &Claims) -> String {
    let header = B64.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let sig = identity.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig))
}

/// Checks tokens against a set of trusted identities (replaced as a whole
/// by [`Verifier::set_trusted`]) and remembers every `jti` until its token
/// expires.
#[derive(Debug)]
pub struct Verifier {
    trusted: RwLock<HashMap<String, VerifyingKey>>,
    seen: Mutex<HashMap<String, i64>>,
    /// Tokens issued earlier (milliseconds) are refused: the daemon's start.
    not_before_ms: i64,
}

impl Verifier {
    /// Trusts the given `did:key` identities.
    pub fn new<'a>(trusted: impl IntoIterator<Item = &'a str>) -> Verifier {
        Verifier {
            trusted: RwLock::new(keys(trusted)),
            seen: Mutex::new(HashMap::new()),
            not_before_ms: i64::MIN,
        }
    }

    /// Trusts exactly the given `did:key` identities from now on (a string
    /// that is not a did:key is skipped). Tokens of an identity no longer
    /// in the set are refused from the next request on.
    pub fn set_trusted<'a>(&self, trusted: impl IntoIterator<Item = &'a str>) {
        let keys = keys(trusted);
        *self.trusted.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// True when `did` is trusted now.
    pub fn trusts(&self, did: &str) -> bool {
        self.trusted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(did)
    }

    /// Refuses tokens issued before `start_ms` (unix milliseconds): the
    /// replay set of an earlier daemon process is gone, so its tokens must be
    /// too. A token without `iat_ms` counts from the start of its second.
    pub fn not_before(mut self, start_ms: i64) -> Verifier {
        self.not_before_ms = start_ms;
        self
    }

    /// Verifies the `Authorization` header of a request.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now: i64,
    ) -> Result<Claims, PopError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("PoP "))
            .ok_or(PopError::Missing)?
            .trim();
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PopError::Malformed);
        };
        let header: Header =
            serde_json::from_slice(&B64.decode(h).map_err(|_e| PopError::Malformed)?)
                .map_err(|_e| PopError::Malformed)?;
        if header.alg != "EdDSA" {
            return Err(PopError::Algorithm);
        }
        let claims: Claims =
            serde_json::from_slice(&B64.decode(p).map_err(|_e| PopError::Malformed)?)
                .map_err(|_e| PopError::Malformed)?;
        let key = *self
            .trusted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&claims.iss)
            .ok_or(PopError::UnknownIssuer)?;
        let sig_bytes: [u8; 64] = B64
            .decode(s)
            .map_err(|_e| PopError::Malformed)?
            .try_into()
            .map_err(|_e| PopError::Malformed)?;
        key.verify_strict(
            format!("{h}.{p}").as_bytes(),
            &Signature::from_bytes(&sig_bytes),
        )
        .map_err(|_e| PopError::Signature)?;
        if claims.aud != AUDIENCE {
            return Err(PopError::Audience);
        }
        if claims.exp - claims.iat > MAX_LIFETIME || claims.exp < claims.iat {
            return Err(PopError::Lifetime);
        }
        if claims.iat > now + CLOCK_SKEW {
            return Err(PopError::NotYetValid);
        }
        if claims.exp + CLOCK_SKEW < now {
            return Err(PopError::Expired);
        }
        let issued_ms = match claims.iat_ms {
            // Both are signed; they must agree.
            Some(ms) if ms.div_euclid(1000) == claims.iat => ms,
            Some(_) => return Err(PopError::Malformed),
            None => claims.iat.saturating_mul(1000),
        };
        if issued_ms < self.not_before_ms {
            return Err(PopError::BeforeStart);
        }
        if !claims.htm.eq_ignore_ascii_case(method) {
            return Err(PopError::Method);
        }
        if claims.htu != path_and_query {
            return Err(PopError::Url);
        }
        if claims.body_sha256 != body_hash(body) {
            return Err(PopError::Body);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, exp| *exp + CLOCK_SKEW >= now);
        if seen.insert(claims.jti.clone(), claims.exp).is_some() {
            return Err(PopError::Replay);
        }
        Ok(claims)
    }
}

fn keys<'a>(dids: impl IntoIterator<Item = &'a str>) -> HashMap<String, VerifyingKey> {
    dids.into_iter()
        .filter_map(|d| parse_did_key(d).map(|k| (d.to_string(), k)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::Home;

    fn identity() -> (tempfile::TempDir, Identity) {
        let d = tempfile::tempdir().unwrap();
        let id = Identity::load_or_create(&Home::new(d.path())).unwrap();
        (d, id)
    }

    const NOW: i64 = 1_800_000_000;

    fn claims(id: &Identity) -> Claims {
        Claims {
            iss: id.did().into(),
            sub: id.did().into(),
            aud: AUDIENCE.into(),
            iat: NOW,
            iat_ms: None,
            exp: NOW + 60,
            jti: "j1".into(),
            htm: "POST".into(),
            htu: "/api/x?y=1".into(),
            body_sha256: body_hash(b"{}"),
        }
    }

    fn check(v: &Verifier, token: &str) -> Result<Claims, PopError> {
        v.verify(
            Some(&format!("PoP {token}")),
            "POST",
            "/api/x?y=1",
            b"{}",
            NOW,
        )
    }

    #[test]
    fn valid_token_passes_once() {
        let (_d, id) = identity();
        let v = Verifier::new([id.did()]);
        let t = encode(&id, &claims(&id));
        assert!(check(&v, &t).is_ok());
        assert_eq!(check(&v, &t).unwrap_err(), PopError::Replay);
    }

    #[test]
    fn tokens_from_before_the_start_are_refused() {
        let (_d, id) = identity();
        let start = NOW * 1000 + 400;
        let v = Verifier::new([id.did()]).not_before(start);
        // Without milliseconds: counts from the start of its second.
        let t = encode(&id, &claims(&id));
        assert_eq!(check(&v, &t).unwrap_err(), PopError::BeforeStart);
        // In the same second, before the start, then after it.
        let mut c = claims(&id);
        c.iat_ms = Some(start - 1);
        assert_eq!(
            check(&v, &encode(&id, &c)).unwrap_err(),
            PopError::BeforeStart
        );
        c.iat_ms = Some(start + 1);
        assert!(check(&v, &encode(&id, &c)).is_ok());
        // Milliseconds that disagree with `iat` are malformed.
        c.iat_ms = Some((NOW + 1) * 1000 + 500);
        c.jti = "j2".into();
        assert_eq!(
            check(&v, &encode(&id, &c)).unwrap_err(),
            PopError::Malformed
        );
    }

    #[test]
    fn trust_is_replaced_as_a_whole() {
        let (_d, owner) = identity();
        let (_d2, member) = identity();
        let v = Verifier::new([owner.did()]);
        let mut c = claims(&member);
        assert_eq!(
            check(&v, &encode(&member, &c)).unwrap_err(),
            PopError::UnknownIssuer
        );
        v.set_trusted([owner.did(), member.did(), "not-a-did"]);
        assert!(v.trusts(member.did()) && !v.trusts("not-a-did"));
        assert!(check(&v, &encode(&member, &c)).is_ok());
        // Removed: the next token is refused, the owner's still pass.
        v.set_trusted([owner.did()]);
        c.jti = "j2".into();
        assert_eq!(
            check(&v, &encode(&member, &c)).unwrap_err(),
            PopError::UnknownIssuer
        );
        let mut o = claims(&owner);
        o.jti = "j3".into();
        assert!(check(&v, &encode(&owner, &o)).is_ok());
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        // RFC 4231, test case 2.
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_ne!(daemon_proof("a", "00"), daemon_proof("b", "00"));
        assert_ne!(daemon_proof("a", "00"), daemon_proof("a", "01"));
    }

    #[test]
    fn header_helper_round_trips() {
        let (_d, id) = identity();
        let v = Verifier::new([id.did()]);
        let h = authorization(&id, "get", "/api/connections", b"", NOW);
        assert!(
            v.verify(Some(&h), "GET", "/api/connections", b"", NOW)
                .is_ok()
        );
    }

    #[test]
    fn negative_matrix() {
        let (_d, id) = identity();
        let (_d2, other) = identity();
        let v = Verifier::new([id.did()]);
        let mk = |f: &dyn Fn(&mut Claims)| {
            let mut c = claims(&id);
            f(&mut c);
            encode(&id, &c)
        };
        assert_eq!(
            check(&v, &mk(&|c| c.aud = "other".into())).unwrap_err(),
            PopError::Audience
        );
        assert_eq!(
            check(&v, &mk(&|c| c.htm = "GET".into())).unwrap_err(),
            PopError::Method
        );
        assert_eq!(
            check(&v, &mk(&|c| c.htu = "/api/x".into())).unwrap_err(),
            PopError::Url
        );
        assert_eq!(
            check(&v, &mk(&|c| c.body_sha256 = body_hash(b"{\"a\":1}"))).unwrap_err(),
            PopError::Body
        );
        assert_eq!(
            check(
                &v,
                &mk(&|c| {
                    c.iat = NOW - 300;
                    c.exp = NOW - 240
                })
            )
            .unwrap_err(),
            PopError::Expired
        );
        assert_eq!(
            check(
                &v,
                &mk(&|c| {
                    c.iat = NOW + 120;
                    c.exp = NOW + 150
                })
            )
            .unwrap_err(),
            PopError::NotYetValid
        );
        assert_eq!(
            check(&v, &mk(&|c| c.exp = NOW + 3600)).unwrap_err(),
            PopError::Lifetime
        );
        // signed by an identity the daemon does not trust
        let mut c = claims(&other);
        c.jti = "j9".into();
        assert_eq!(
            check(&v, &encode(&other, &c)).unwrap_err(),
            PopError::UnknownIssuer
        );
        // claiming a trusted issuer but signed by another key
        let mut c = claims(&id);
        c.jti = "j10".into();
        assert_eq!(
            check(&v, &encode(&other, &c)).unwrap_err(),
            PopError::Signature
        );
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let (_d, id) = identity();
        let v = Verifier::new([id.did()]);
        let payload = B64.encode(serde_json::to_vec(&claims(&id)).unwrap());
        for alg in ["none", "HS256", "RS256"] {
            let header = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert_eq!(
                check(&v, &format!("{header}.{payload}.")).unwrap_err(),
                PopError::Algorithm,
                "{alg}"
            );
        }
        assert_eq!(check(&v, "a.b").unwrap_err(), PopError::Malformed);
        assert_eq!(
            v.verify(Some("Bearer x"), "GET", "/", b"", NOW)
                .unwrap_err(),
            PopError::Missing
        );
        assert_eq!(
            v.verify(None, "GET", "/", b"", NOW).unwrap_err(),
            PopError::Missing
        );
    }
}
