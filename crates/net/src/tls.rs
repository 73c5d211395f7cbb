//! Certificates for the reverse proxy: self-signed ones for new bindings,
//! checks of uploaded or ACME-issued ones, and the renewal rule.
//!
//! Everything here uses the aws-lc-rs provider returned by [`crypto_provider`]
//! explicitly, so nothing depends on a process-global rustls default (which
//! panics at run time when two providers are compiled in and none is
//! installed).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A certificate chain (leaf first) and its private key, both PEM.
#[derive(Clone)]
pub struct CertPair {
    /// Leaf certificate, optionally followed by intermediates.
    pub cert_pem: String,
    /// PKCS#8, PKCS#1 or SEC1 private key of the leaf.
    pub key_pem: String,
}

// Written by hand rather than derived so that the private key can never end
// up in a log line through `{:?}`.
impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What [`inspect`] learnt about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// End of validity of the leaf, unix seconds.
    pub not_after: i64,
    /// DNS names of the leaf's subjectAltName extension (lowercase).
    pub names: Vec<String>,
}

#[derive(thiserror::Error, Debug)]
pub enum TlsError {
    #[error("certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error("private key cannot be read: {0}")]
    BadKey(String),
    #[error("private key does not belong to the certificate")]
    KeyMismatch,
    #[error("certificate does not cover the domain {0}")]
    DomainNotCovered(String),
    #[error("certificate has expired")]
    Expired,
    #[error("certificate cannot be generated: {0}")]
    Generate(String),
}

/// Renew when fewer than this many seconds of validity are left. Thirty days
/// is what Let's Encrypt recommends and leaves room for several failed
/// attempts before a site breaks.
const RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;

static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));

/// The rustls crypto provider (aws-lc-rs) every TLS config of this crate is built with.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    PROVIDER.clone()
}

/// Current time in unix seconds; a clock before 1970 counts as 0.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A self-signed certificate for `domain` (one SAN), valid for one year, with
/// a fresh ECDSA P-256 key.
pub fn self_signed(domain: &str) -> Result<CertPair, TlsError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![domain.clone()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, domain);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    // Backdated by an hour so that a client whose clock is slightly behind
    // does not see a certificate from the future.
    params.not_before = now - Duration::from_secs(3600);
    params.not_after = now + Duration::from_secs(365 * 24 * 3600);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Checks that `pair` can serve `domain` now: the chain and key parse, the key
/// belongs to the leaf, a SAN of the leaf covers `domain`, and the leaf has
/// not expired.
pub fn inspect(pair: &CertPair, domain: &str) -> Result<CertInfo, TlsError> {
    load(pair, domain, unix_now()).map(|(_, info)| info)
}

/// True when fewer than 30 days of validity are left.
pub fn needs_renewal(not_after: i64, now: i64) -> bool {
    not_after.saturating_sub(now) < RENEW_BEFORE_SECS
}

/// Like [`inspect`], and also returns the rustls key the proxy serves.
pub(crate) fn load(
    pair: &CertPair,
    domain: &str,
    now: i64,
) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let chain = parse_chain(&pair.cert_pem)?;
    let key_der = parse_key(&pair.key_pem)?;
    let provider = crypto_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        // rustls's message names the key type problem, never the key itself.
        .map_err(|e| TlsError::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            // aws-lc-rs derives the public key of every key type it loads,
            // so this means a key we cannot vouch for: refuse it rather than
            // serve a handshake that would fail.
            return Err(TlsError::BadKey(
                "public key cannot be derived from the private key".into(),
            ));
        }
        Err(e) => return Err(TlsError::BadCertificate(e.to_string())),
    }
    let leaf = certified
        .end_entity_cert()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let info = leaf_info(leaf)?;
    let domain = normalize_domain(domain);
    if !info.names.iter().any(|name| name_covers(name, &domain)) {
        return Err(TlsError::DomainNotCovered(domain));
    }
    if info.not_after <= now {
        return Err(TlsError::Expired);
    }
    Ok((Arc::new(certified), info))
}

fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::BadCertificate(
            "no PEM CERTIFICATE block found".into(),
        ));
    }
    Ok(chain)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The pemfile error mentions the section kind only, never key bytes.
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError::BadKey(e.to_string()))?
        .ok_or_else(|| TlsError::BadKey("no PEM PRIVATE KEY block found".into()))
}

fn leaf_info(leaf: &CertificateDer<'_>) -> Result<CertInfo, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    // Only subjectAltName counts: browsers and rustls have ignored the
    // subject CN for years, so a CN-only certificate would not work anyway.
    let names = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(normalize_domain(dns))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

pub(crate) fn normalize_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

/// RFC 6125 matching as browsers do it: exact name, or a wildcard that stands
/// for exactly one whole left-most label (`*.example.com` covers
/// `a.example.com`, neither `example.com` nor `a.b.example.com`).
fn name_covers(name: &str, domain: &str) -> bool {
    if name == domain {
        return true;
    }
    let Some(suffix) = name.strip_prefix("*.") else {
        return false;
    };
    match domain.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn wildcard_covers_one_label() {
        assert!(name_covers("*.example.com", "a.example.com"));
        assert!(!name_covers("*.example.com", "example.com"));
        assert!(!name_covers("*.example.com", "a.b.example.com"));
        assert!(!name_covers("*.example.com", ".example.com"));
        assert!(name_covers("example.com", "example.com"));
        assert!(!name_covers("a*.example.com", "ab.example.com"));
    }

    #[test]
    fn renewal_threshold() {
        let day = 24 * 3600;
        assert!(needs_renewal(100 * day + 29 * day, 100 * day));
        assert!(!needs_renewal(100 * day + 31 * day, 100 * day));
        assert!(needs_renewal(0, 100 * day));
    }

    #[test]
    fn self_signed_inspects() {
        let pair = self_signed("Example.COM").unwrap();
        let info = inspect(&pair, "example.com").unwrap();
        assert_eq!(info.names, vec!["example.com".to_string()]);
        let year = 365 * 24 * 3600;
        assert!((info.not_after - unix_now() - year).abs() < 60);
        assert!(!format!("{pair:?}").contains("PRIVATE KEY"));
    }
}
