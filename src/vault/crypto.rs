//! Sealing and opening vault fields: AES-256-GCM with bound associated data.
//!
//! This is the only module that touches the cipher. Its surface is two
//! functions, [`seal`] and [`open`], and a [`Key`] that zeroizes itself.
//!
//! Blob layout: `version (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`.
//!
//! Why a fresh random nonce per write: GCM breaks completely when a nonce
//! repeats under one key. The vault writes few records, so 96-bit random
//! nonces stay far below the 2^32 messages-per-key bound of NIST SP 800-38D.
//!
//! Why associated data: without it, anyone who can write the database file
//! could move provider A's ciphertext into provider B's row (or a refresh
//! token into the access-token column) and have authsome decrypt and inject
//! it. The [`Aad`] binds every ciphertext to its table, record id, field and
//! key version, so a moved ciphertext fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit key, zeroized on drop.
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    /// A fresh random key from the OS.
    pub fn generate() -> Result<Key, CryptoError> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut k[..]).map_err(|_err| CryptoError::Random)?;
        Ok(Key(k))
    }

    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Key {
        Key(bytes)
    }

    /// The raw bytes, for wrapping this key under another.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// What a ciphertext is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub table: &'a str,
    pub record_id: &'a str,
    pub field: &'a str,
    pub key_version: u32,
}

impl Aad<'_> {
    /// Length-prefixed encoding, so `("ab","c")` and `("a","bc")` differ.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"authsome-vault/v1");
        for part in [self.table, self.record_id, self.field] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.key_version.to_be_bytes());
        out
    }
}

/// Why a seal or open failed. Deliberately says nothing about the contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext failed authentication")]
    Integrity,
    #[error("the OS random number generator failed")]
    Random,
}

/// Encrypts `plaintext` under `key`, bound to `aad`, with a fresh random nonce.
pub fn seal(key: &Key, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(&key.0[..]).map_err(|_err| CryptoError::Malformed)?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_err| CryptoError::Random)?;
    let aad_bytes = aad.encode();
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad_bytes,
            },
        )
        .map_err(|_err| CryptoError::Integrity)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a blob made by [`seal`] with the same key and associated data.
pub fn open(key: &Key, aad: &Aad<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob[0] != FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    let cipher = Aes256Gcm::new_from_slice(&key.0[..]).map_err(|_err| CryptoError::Malformed)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[1..1 + NONCE_LEN]);
    let aad_bytes = aad.encode();
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &blob[1 + NONCE_LEN..],
                aad: &aad_bytes,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_err| CryptoError::Integrity)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn aad<'a>(id: &'a str, field: &'a str) -> Aad<'a> {
        Aad {
            table: "connections",
            record_id: id,
            field,
            key_version: 1,
        }
    }

    #[test]
    fn roundtrip() {
        let k = Key::generate().unwrap();
        let blob = seal(&k, &aad("r1", "api_key"), b"sk-secret").unwrap();
        assert_eq!(
            &open(&k, &aad("r1", "api_key"), &blob).unwrap()[..],
            b"sk-secret"
        );
    }

    #[test]
    fn ciphertext_does_not_contain_plaintext() {
        let k = Key::generate().unwrap();
        let blob = seal(&k, &aad("r1", "api_key"), b"AKCANARY_plain").unwrap();
        assert!(!blob.windows(8).any(|w| w == b"AKCANARY"));
    }

    #[test]
    fn open_fails_with_other_key() {
        let blob = seal(&Key::generate().unwrap(), &aad("r1", "api_key"), b"x").unwrap();
        let err = open(&Key::generate().unwrap(), &aad("r1", "api_key"), &blob).unwrap_err();
        assert_eq!(err, CryptoError::Integrity);
    }

    #[test]
    fn open_fails_when_row_id_swapped() {
        let k = Key::generate().unwrap();
        let blob = seal(&k, &aad("row-a", "api_key"), b"x").unwrap();
        assert_eq!(
            open(&k, &aad("row-b", "api_key"), &blob).unwrap_err(),
            CryptoError::Integrity
        );
    }

    #[test]
    fn open_fails_when_field_swapped() {
        let k = Key::generate().unwrap();
        let blob = seal(&k, &aad("r", "refresh_token"), b"x").unwrap();
        assert_eq!(
            open(&k, &aad("r", "access_token"), &blob).unwrap_err(),
            CryptoError::Integrity
        );
    }

    #[test]
    fn open_fails_when_table_or_key_version_differs() {
        let k = Key::generate().unwrap();
        let a = aad("r", "f");
        let blob = seal(&k, &a, b"x").unwrap();
        assert!(
            open(
                &k,
                &Aad {
                    table: "other",
                    ..a
                },
                &blob
            )
            .is_err()
        );
        assert!(
            open(
                &k,
                &Aad {
                    key_version: 2,
                    ..a
                },
                &blob
            )
            .is_err()
        );
    }

    #[test]
    fn aad_encoding_is_unambiguous() {
        let k = Key::generate().unwrap();
        let blob = seal(
            &k,
            &Aad {
                table: "ab",
                record_id: "c",
                field: "f",
                key_version: 1,
            },
            b"x",
        )
        .unwrap();
        assert!(
            open(
                &k,
                &Aad {
                    table: "a",
                    record_id: "bc",
                    field: "f",
                    key_version: 1
                },
                &blob
            )
            .is_err()
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = Key::generate().unwrap();
        let blob = seal(&k, &aad("r", "f"), b"secret value").unwrap();
        for i in 0..blob.len() * 8 {
            let mut b = blob.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                open(&k, &aad("r", "f"), &b).is_err(),
                "bit {i} flip went unnoticed"
            );
        }
    }

    #[test]
    fn truncated_blob_is_malformed() {
        let k = Key::generate().unwrap();
        let blob = seal(&k, &aad("r", "f"), b"x").unwrap();
        assert_eq!(
            open(&k, &aad("r", "f"), &blob[..10]).unwrap_err(),
            CryptoError::Malformed
        );
    }

    #[test]
    fn nonce_never_repeats_across_writes_of_one_record() {
        let k = Key::generate().unwrap();
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let blob = seal(&k, &aad("r", "f"), b"same plaintext").unwrap();
            assert!(seen.insert(blob[1..13].to_vec()), "nonce repeated");
        }
    }
}
