//! The controller's TLS trust in an agent: exactly one certificate, the one
//! whose SHA-256 the enrolment token pins. Names and CAs do not matter (the
//! agent's certificate is self-signed); signatures of the handshake are
//! still verified, so only the holder of the pinned key passes.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Marker in the refusal, so the client can tell a pin mismatch from other
/// TLS failures in reqwest's error chain.
pub const PIN_MISMATCH: &str = "does not match the pinned fingerprint";

#[derive(Debug)]
pub struct PinnedCert {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCert {
    pub fn new(sha256: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        Self { sha256, provider }
    }
}

/// SHA-256 of a DER certificate, as pinned in enrolment tokens.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity.as_ref());
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "agent certificate sha256 {} {PIN_MISMATCH} {}",
                hex::encode(got),
                hex::encode(self.sha256)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertificateDer<'static> {
        let c = rcgen::generate_simple_self_signed(vec!["ironidc-agent".into()]).unwrap();
        c.cert.der().clone()
    }

    fn check(v: &PinnedCert, c: &CertificateDer<'_>) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("192.0.2.1").unwrap();
        v.verify_server_cert(c, &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn accepts_exactly_the_pinned_certificate() {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let pinned = cert();
        let other = cert();
        let v = PinnedCert::new(fingerprint(pinned.as_ref()), provider);
        assert!(check(&v, &pinned).is_ok());
        let e = check(&v, &other).unwrap_err();
        assert!(e.to_string().contains(PIN_MISMATCH), "{e}");
    }
}
