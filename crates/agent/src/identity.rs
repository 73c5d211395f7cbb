//! The agent's identity in its data directory: a self-signed certificate
//! and key (the controller pins the certificate) and the SHA-256 of the
//! enrolment secret (the secret itself is never stored).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ironidc_core::remote_host::EnrolmentToken;
use rand::RngCore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::pin::fingerprint;

const CERT_FILE: &str = "agent-cert.pem";
const KEY_FILE: &str = "agent-key.pem";
const SECRET_HASH_FILE: &str = "agent-secret.sha256";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("making the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    secret_sha256: [u8; 32],
}

/// What `load_or_create` found: a new identity comes with its token, which
/// is shown once and cannot be recovered later.
pub enum Loaded {
    Created(Identity, EnrolmentToken),
    Existing(Identity),
}

impl Identity {
    pub fn load_or_create(dir: &Path) -> Result<Loaded, IdentityError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cert_path = dir.join(CERT_FILE);
        if cert_path.exists() {
            return Self::load(dir).map(Loaded::Existing);
        }
        let made = rcgen::generate_simple_self_signed(vec!["ironidc-agent".into()])?;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let secret_sha256: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        // Key and secret hash first: a crash before the certificate is
        // written leaves a directory that is made afresh on the next start.
        write_private(
            &dir.join(KEY_FILE),
            made.key_pair.serialize_pem().as_bytes(),
        )?;
        write_private(
            &dir.join(SECRET_HASH_FILE),
            format!("{}\n", hex::encode(secret_sha256)).as_bytes(),
        )?;
        write_private(&cert_path, made.cert.pem().as_bytes())?;
        let cert = made.cert.der().clone();
        let token = EnrolmentToken {
            cert_sha256: fingerprint(cert.as_ref()),
            secret,
        };
        let key = PrivateKeyDer::try_from(made.key_pair.serialize_der()).map_err(|m| {
            IdentityError::Invalid {
                path: dir.join(KEY_FILE),
                message: m.to_string(),
            }
        })?;
        Ok(Loaded::Created(
            Self {
                cert,
                key,
                secret_sha256,
            },
            token,
        ))
    }

    fn load(dir: &Path) -> Result<Self, IdentityError> {
        let invalid = |path: PathBuf, message: String| IdentityError::Invalid { path, message };
        let cert_path = dir.join(CERT_FILE);
        let cert = CertificateDer::from_pem_file(&cert_path)
            .map_err(|e| invalid(cert_path.clone(), e.to_string()))?;
        let key_path = dir.join(KEY_FILE);
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| invalid(key_path.clone(), e.to_string()))?;
        let hash_path = dir.join(SECRET_HASH_FILE);
        let text = std::fs::read_to_string(&hash_path).map_err(io(&hash_path))?;
        let secret_sha256: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid(hash_path.clone(), "not a hex SHA-256".into()))?;
        Ok(Self {
            cert,
            key,
            secret_sha256,
        })
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        fingerprint(self.cert.as_ref())
    }

    /// Whether `secret` is the enrolment secret, in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        bool::from(got.ct_eq(&self.secret_sha256))
    }
}

/// Write a file only its owner can read (0600 from creation, never wider).
fn write_private(path: &Path, content: &[u8]) -> Result<(), IdentityError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(content).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_the_same_pin_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        let Loaded::Created(first, token) = Identity::load_or_create(dir.path()).unwrap() else {
            panic!("expected a new identity");
        };
        assert_eq!(first.fingerprint(), token.cert_sha256);
        let Loaded::Existing(again) = Identity::load_or_create(dir.path()).unwrap() else {
            panic!("expected the stored identity");
        };
        assert_eq!(again.fingerprint(), token.cert_sha256);
        assert!(again.secret_matches(&token.secret));
        assert!(!again.secret_matches("wrong-secret-wrong-secret"));
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let parsed = EnrolmentToken::parse(&token.format()).unwrap();
        assert_eq!(parsed, token);
    }
}
