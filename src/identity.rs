//! This home's identity: an Ed25519 key and its `did:key`.
//!
//! The daemon will accept requests signed with this key (PoP JWTs); for now
//! the identity is created on first use and shown by `whoami`.
//!
//! The key is stored as the hex of its 32-byte seed in `identity.key` (0600).
//! The DID is `did:key:z` + base58btc(0xed 0x01 ‖ public key), the multicodec
//! form for Ed25519 public keys, so it starts with `did:key:z6Mk`.

use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::home::{self, Home};

/// Multicodec prefix of an Ed25519 public key.
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// A loaded identity.
pub struct Identity {
    key: SigningKey,
    did: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads `identity.key`, creating it if it does not exist.
    pub fn load_or_create(home: &Home) -> Result<Identity> {
        if let Some(id) = Identity::load(home)? {
            return Ok(id);
        }
        home.ensure()?;
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::secret::fill_random(&mut seed[..])?;
        let text = Zeroizing::new(format!("{}\n", hex(&seed[..])));
        // If another process won the race, load theirs.
        home::write_secret_file_new(&home.identity_key(), text.as_bytes())?;
        Identity::load(home)?.ok_or_else(|| {
            Error::invalid("the identity key vanished while it was being created", None)
        })
    }

    /// Loads `identity.key` if it exists.
    pub fn load(home: &Home) -> Result<Option<Identity>> {
        let path = home.identity_key();
        let Some(bytes) = home::read_private(&path)? else {
            return Ok(None);
        };
        let bad = || {
            Error::invalid(
                format!("{} is not a valid identity key", path.display()),
                Some(format!(
                    "move {} away; a new identity is created on the next run",
                    path.display()
                )),
            )
        };
        let text = std::str::from_utf8(&bytes).map_err(|_err| bad())?.trim();
        let seed = Zeroizing::new(unhex32(text).ok_or_else(bad)?);
        let key = SigningKey::from_bytes(&seed);
        let did = did_key(&key.verifying_key());
        Ok(Some(Identity { key, did }))
    }

    /// The `did:key` URI.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `msg` (for PoP tokens).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(msg).to_bytes()
    }
}

/// The `did:key` of an Ed25519 public key.
pub fn did_key(pk: &VerifyingKey) -> String {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&ED25519_MULTICODEC);
    bytes.extend_from_slice(pk.as_bytes());
    format!("did:key:z{}", bs58::encode(bytes).into_string())
}

/// Parses a `did:key` back into its Ed25519 public key.
pub fn parse_did_key(did: &str) -> Option<VerifyingKey> {
    let enc = did.strip_prefix("did:key:z")?;
    let bytes = bs58::decode(enc).into_vec().ok()?;
    let pk = bytes.strip_prefix(&ED25519_MULTICODEC[..])?;
    VerifyingKey::from_bytes(pk.try_into().ok()?).ok()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_roundtrips_and_has_the_ed25519_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let id = Identity::load_or_create(&home).unwrap();
        assert!(id.did().starts_with("did:key:z6Mk"), "{}", id.did());
        assert_eq!(parse_did_key(id.did()).unwrap(), id.verifying_key());
        assert_eq!(home::mode_of(&home.identity_key()), Some(0o600));
        // stable across loads
        assert_eq!(Identity::load_or_create(&home).unwrap().did(), id.did());
    }

    #[test]
    fn known_vector() {
        // RFC 8032 test 1 seed → its public key d75a98…; did:key of that key.
        let seed =
            unhex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let did = did_key(&SigningKey::from_bytes(&seed).verifying_key());
        assert_eq!(
            did,
            "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw"
        );
    }

    #[test]
    fn other_multicodecs_are_rejected() {
        assert!(
            parse_did_key("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme").is_none()
        );
        assert!(parse_did_key("did:web:example.com").is_none());
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home::write_secret_file_new(&home.identity_key(), b"nothex").unwrap();
        let err = Identity::load(&home).unwrap_err();
        assert!(err.to_string().contains("not a valid identity key"));
    }
}
