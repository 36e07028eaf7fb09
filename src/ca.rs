//! Certificate authorities for the proxy: a CA and the leaf certificates it
//! mints for provider hosts.
//!
//! What the proxy needs, and why:
//! - **A fresh P-256 key per CA**, generated in memory. For `authsome run` the
//!   CA lives as long as the run and its key is never written anywhere.
//! - **X.509 name constraints** on the CA: permitted DNS subtrees are exactly
//!   the provider hosts the CA may speak for, and every IPv4 and IPv6 address
//!   is excluded. A client that trusts this CA (the agent) then cannot be
//!   fooled into accepting it for any other site, even if the key leaked.
//!   (OpenSSL, Go, rustls/webpki and NSS enforce name constraints.)
//! - **Leaves with their own key**, not the CA's (hudsucker's bundled
//!   authority reuses the CA key for every leaf), with SKI/AKI, critical
//!   basic constraints `CA:FALSE`, `serverAuth`, a random 128-bit serial and
//!   a short validity.
//! - **A cache**: minting costs ~60 µs; a cached leaf costs a map lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// Leaves kept before the cache is emptied.
const MAX_LEAVES: usize = 4096;

/// How long a run's CA and its leaves are valid.
pub const RUN_VALIDITY: Duration = Duration::hours(24);

/// A leaf certificate and its private key (DER).
pub struct Leaf {
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    /// The leaf's PKCS#8 private key, DER.
    pub key_der: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("cert_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// A certificate authority constrained to a set of DNS names.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
    permitted: Vec<String>,
    validity: Duration,
    leaves: Mutex<HashMap<String, (Arc<Leaf>, std::time::Instant)>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("permitted", &self.permitted)
            .finish_non_exhaustive()
    }
}

fn cert_err(what: &str, e: rcgen::Error) -> Error {
    Error::invalid(format!("cannot {what}: {e}"), None)
}

fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    crate::secret::fill_random(&mut b)?;
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // and never a shorter encoding
    Ok(SerialNumber::from_slice(&b))
}

fn ca_params(common_name: &str, names: &[String]) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "authsome");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: names
            .iter()
            .map(|n| GeneralSubtree::DnsName(n.clone()))
            .collect(),
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ],
    });
    params
}

impl Ca {
    /// A new CA for `names`: exact host names or DNS suffixes (`googleapis.com`
    /// permits `googleapis.com` and every name below it).
    pub fn generate(common_name: &str, names: &[String], validity: Duration) -> Result<Ca> {
        if names.is_empty() {
            return Err(Error::invalid(
                "a CA needs at least one permitted host name",
                None,
            ));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| cert_err("generate a CA key", e))?;
        let mut params = ca_params(common_name, names);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + validity;
        params.serial_number = Some(random_serial()?);
        let cert = params
            .self_signed(&key)
            .map_err(|e| cert_err("sign the CA certificate", e))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            permitted: names.to_vec(),
            validity,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// A CA saved earlier with [`Ca::key_pem`] and [`Ca::cert_pem`]: the
    /// same common name and names it was generated with, `validity` for
    /// its leaves.
    pub fn load(
        common_name: &str,
        names: &[String],
        cert_pem: &str,
        key_pem: &str,
        validity: Duration,
    ) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| cert_err("read the CA key", e))?;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| Error::invalid(format!("cannot read the CA certificate: {e}"), None))?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            cert_der: der.to_vec(),
            issuer: Issuer::new(ca_params(common_name, names), key),
            permitted: names.to_vec(),
            validity,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA's private key, PEM (for the persistent system-wide CA only;
    /// a run's CA key never leaves memory).
    pub fn key_pem(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// The CA certificate, PEM (what clients are told to trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The DNS names this CA may sign for.
    pub fn permitted(&self) -> &[String] {
        &self.permitted
    }

    /// True when `host` falls under the CA's name constraints.
    pub fn permits(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.permitted.iter().any(|p| {
            host == *p
                || (host.len() > p.len()
                    && host.ends_with(p.as_str())
                    && host.as_bytes()[host.len() - p.len() - 1] == b'.')
        })
    }

    /// The leaf for `host`, minted on first use and cached. A cached leaf
    /// past half its validity is minted again, so a long run or daemon
    /// never serves an expired certificate.
    pub fn leaf(&self, host: &str) -> Result<Arc<Leaf>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let fresh_for =
            std::time::Duration::from_secs((self.validity.whole_seconds() / 2).max(60) as u64);
        if let Some((l, at)) = self
            .leaves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host)
            && at.elapsed() < fresh_for
        {
            return Ok(l.clone());
        }
        let leaf = Arc::new(self.mint(&host)?);
        let mut map = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_LEAVES {
            // Wildcard providers let a client ask for any number of names.
            map.clear();
        }
        map.insert(host, (leaf.clone(), std::time::Instant::now()));
        Ok(leaf)
    }

    /// How long leaves are valid.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// Mints a new leaf for `host` (no cache).
    pub fn mint(&self, host: &str) -> Result<Leaf> {
        if !self.permits(host) {
            return Err(Error::invalid(
                format!("{host} is outside this CA's name constraints"),
                None,
            ));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| cert_err("generate a leaf key", e))?;
        let mut params = CertificateParams::new(vec![host.to_string()])
            .map_err(|e| cert_err("build a leaf", e))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + self.validity;
        params.serial_number = Some(random_serial()?);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| cert_err("sign a leaf", e))?;
        Ok(Leaf {
            cert_der: cert.der().to_vec(),
            key_der: zeroize::Zeroizing::new(key.serialize_der()),
        })
    }
}

/// The system's trusted roots as PEM: the distribution's bundle file when
/// there is one (a plain copy), else whatever the platform store yields.
pub fn system_roots_pem() -> String {
    const FILES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/usr/local/etc/openssl/cert.pem",
    ];
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    for p in from_env
        .iter()
        .map(std::path::PathBuf::as_path)
        .chain(FILES.iter().map(std::path::Path::new))
    {
        if let Ok(text) = std::fs::read_to_string(p)
            && text.contains("BEGIN CERTIFICATE")
        {
            return text;
        }
    }
    use base64::Engine;
    let mut out = String::new();
    for c in rustls_native_certs::load_native_certs().certs {
        let b = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// `openssl x509 -text` of a PEM certificate.
    fn openssl_text(pem_text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cert.pem");
        std::fs::write(&p, pem_text).unwrap();
        let o = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `openssl verify` of `leaf` against `ca` (OpenSSL enforces name constraints).
    fn openssl_verify(ca: &Ca, leaf_der: &[u8], host: &str) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), pem("CERTIFICATE", leaf_der)).unwrap();
        let o = Command::new("openssl")
            .args([
                "verify",
                "-x509_strict",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                host,
                "-CAfile",
            ])
            .arg(dir.path().join("ca.pem"))
            .arg(dir.path().join("leaf.pem"))
            .output()
            .expect("openssl is needed for this test");
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    #[test]
    fn leaf_verifies_for_a_permitted_host() {
        let ca = Ca::generate(
            "authsome test CA",
            &["api.acme.test".into(), "googleapis.com".into()],
            RUN_VALIDITY,
        )
        .unwrap();
        for host in ["api.acme.test", "gmail.googleapis.com"] {
            let leaf = ca.mint(host).unwrap();
            let (ok, out) = openssl_verify(&ca, &leaf.cert_der, host);
            assert!(ok, "{host}: {out}");
        }
    }

    #[test]
    fn a_leaf_outside_the_constraints_is_rejected_by_clients() {
        // Even if someone made the CA sign for another host, a client refuses it.
        let ca = Ca::generate("authsome test CA", &["api.acme.test".into()], RUN_VALIDITY).unwrap();
        assert!(
            ca.mint("evil.test").is_err(),
            "the CA itself refuses to mint outside its constraints"
        );
        let mut params = CertificateParams::new(vec!["evil.test".to_string()]).unwrap();
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let forged = params.signed_by(&key, &ca.issuer).unwrap();
        let (ok, out) = openssl_verify(&ca, forged.der(), "evil.test");
        assert!(
            !ok,
            "a name-constrained CA must not validate evil.test: {out}"
        );
        assert!(out.contains("subtree"), "{out}");
    }

    #[test]
    fn leaves_have_their_own_key_and_unique_serials() {
        let ca = Ca::generate("authsome test CA", &["acme.test".into()], RUN_VALIDITY).unwrap();
        let a = ca.mint("a.acme.test").unwrap();
        let b = ca.mint("a.acme.test").unwrap();
        assert_ne!(a.key_der.as_slice(), b.key_der.as_slice());
        assert_ne!(a.cert_der, b.cert_der);
        let text = openssl_text(&pem("CERTIFICATE", &a.cert_der));
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("Basic Constraints: critical"), "{text}");
        assert!(text.contains("Authority Key Identifier"), "{text}");
        assert!(text.contains("Subject Key Identifier"), "{text}");
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    }

    #[test]
    fn ca_excludes_every_ip_address() {
        let ca = Ca::generate("authsome test CA", &["acme.test".into()], RUN_VALIDITY).unwrap();
        let text = openssl_text(ca.cert_pem());
        assert!(text.contains("X509v3 Name Constraints"), "{text}");
        assert!(text.contains("DNS:acme.test"), "{text}");
        assert!(text.contains("IP:0.0.0.0/0.0.0.0"), "{text}");
        assert!(
            text.contains("IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0"),
            "{text}"
        );
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    }

    #[test]
    fn leaves_are_cached_per_host() {
        let ca = Ca::generate("authsome test CA", &["acme.test".into()], RUN_VALIDITY).unwrap();
        let a = ca.leaf("api.acme.test").unwrap();
        let b = ca.leaf("API.acme.test.").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &ca.leaf("x.acme.test").unwrap()));
    }

    #[test]
    fn permits_matches_whole_labels() {
        let ca = Ca::generate("t", &["googleapis.com".into()], RUN_VALIDITY).unwrap();
        assert!(ca.permits("googleapis.com") && ca.permits("a.b.googleapis.com"));
        assert!(!ca.permits("evilgoogleapis.com") && !ca.permits("googleapis.com.evil.test"));
    }
}
