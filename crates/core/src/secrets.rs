//! Encryption of secrets at rest (host passwords, VM passwords) with
//! ChaCha20-Poly1305 under a key kept in a 0600 file of the data directory,
//! and hashing of bearer tokens.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::CoreError;

const PREFIX: &str = "enc:v1:";

#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Load the key file, creating it (mode 0600) with a random key when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, CoreError> {
        let err = |e: std::io::Error| CoreError::Secret(format!("{}: {e}", path.display()));
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    CoreError::Secret(format!("{}: key must be 32 bytes", path.display()))
                })?;
                Ok(Self::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                write_private(path, &key).map_err(err)?;
                Ok(Self::from_key(key))
            }
            Err(e) => Err(err(e)),
        }
    }

    pub fn seal(&self, plain: &str) -> Result<String, CoreError> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| CoreError::Secret("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<String, CoreError> {
        let bad = || CoreError::Secret("stored secret cannot be decrypted with this key".into());
        let body = sealed.strip_prefix(PREFIX).ok_or_else(bad)?;
        let raw = B64.decode(body).map_err(|_| bad())?;
        if raw.len() < 12 {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Hex SHA-256 of a bearer token: tokens are random and long, so a fast
/// hash is enough, and the stored value never reveals the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two token hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new random bearer token (43 URL-safe characters, 256 bits).
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let sb = SecretBox::from_key([7; 32]);
        let sealed = sb.seal("hunter2").expect("seal");
        assert!(SecretBox::is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(sb.open(&sealed).expect("open"), "hunter2");
        let other = SecretBox::from_key([8; 32]);
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(sb.open(&tampered).is_err() || tampered == sealed);
    }

    #[test]
    fn key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ironidc-secret-{}", std::process::id()));
        let path = dir.join("secret.key");
        let _ = std::fs::remove_dir_all(&dir);
        let a = SecretBox::load_or_create(&path).expect("create");
        let b = SecretBox::load_or_create(&path).expect("load");
        let sealed = a.seal("x").expect("seal");
        assert_eq!(b.open(&sealed).expect("open"), "x");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn token_hashing() {
        let t = new_token();
        assert_eq!(t.len(), 43);
        assert!(hashes_equal(&token_hash(&t), &token_hash(&t)));
        assert!(!hashes_equal(&token_hash(&t), &token_hash("other")));
    }
}
