//! Remote hosts: the enrolment token a host's `ironidc agent` prints, and
//! the port through which the service layer gets an engine for such a host.
//!
//! The core cannot depend on the agent crate (the agent depends on the
//! core), so the binary injects an implementation of `RemoteEngines`.

use std::sync::Arc;

use base64::Engine as _;

use crate::engine::Engine;
use crate::error::CoreError;

/// Version prefix of enrolment tokens: `idc1.<fingerprint>.<secret>`.
pub const TOKEN_PREFIX: &str = "idc1";

/// What a controller needs to reach one agent: the SHA-256 of the agent's
/// TLS certificate (the pin) and the shared secret sent with each request.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentToken {
    pub cert_sha256: [u8; 32],
    pub secret: String,
}

// The secret never goes into logs, not even through `{:?}`.
impl std::fmt::Debug for EnrolmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentToken")
            .field("cert_sha256", &hex::encode(self.cert_sha256))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl EnrolmentToken {
    /// Parse a token; errors name `config.server_pass`, where operators
    /// paste it.
    pub fn parse(token: &str) -> Result<Self, CoreError> {
        let bad = |why: &str| {
            CoreError::invalid(
                "config.server_pass",
                format!("not an agent enrolment token ({why}); expected idc1.<fingerprint>.<secret> as printed by `ironidc agent`"),
            )
        };
        let mut parts = token.trim().split('.');
        let (Some(prefix), Some(fp), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("three dot-separated parts"));
        };
        if prefix != TOKEN_PREFIX {
            return Err(bad("unknown version prefix"));
        }
        let fp = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(fp)
            .map_err(|_| bad("the fingerprint is not base64url"))?;
        let cert_sha256: [u8; 32] = fp
            .try_into()
            .map_err(|_| bad("the fingerprint is not 32 bytes"))?;
        let secret_ok = (16..=128).contains(&secret.len())
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !secret_ok {
            return Err(bad("the secret must be 16 to 128 base64url characters"));
        }
        Ok(Self {
            cert_sha256,
            secret: secret.to_string(),
        })
    }

    pub fn format(&self) -> String {
        format!(
            "{TOKEN_PREFIX}.{}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.cert_sha256),
            self.secret
        )
    }
}

/// Makes engines that drive a host's agent. One call per host; the service
/// layer caches the result until the host changes.
pub trait RemoteEngines: Send + Sync {
    /// An engine for the agent at `addr:port`, pinned and authenticated by
    /// `token`. Connecting is lazy: unreachable agents fail the first call.
    fn connect(
        &self,
        hs_name: &str,
        addr: &str,
        port: u16,
        token: &EnrolmentToken,
    ) -> Result<Arc<dyn Engine>, CoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let t = EnrolmentToken {
            cert_sha256: [7; 32],
            secret: "abcdefghijklmnopqrstuvwxyz_-0123".into(),
        };
        assert_eq!(EnrolmentToken::parse(&t.format()).ok(), Some(t.clone()));
        for bad in [
            "",
            "host-secret-password",
            "idc2.AAAA.abcdefghijklmnopqrstu",
            "idc1.AAAA.abcdefghijklmnopqrstu",
            &format!("{}.x", t.format()),
            &t.format().replace("_-0123", "!!0123"),
        ] {
            let e = EnrolmentToken::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("config.server_pass"), "{e}");
        }
        assert!(!format!("{t:?}").contains("abcdef"));
    }
}
