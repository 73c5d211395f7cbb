//! Access and refresh tokens: HS256 JWTs under a random key that is made
//! on first use and kept sealed in the settings table, so every controller
//! sharing the database accepts the same tokens.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::secrets::SecretBox;
use crate::store::Store;

const KEY_SETTING: &str = "jwt_hs256_key";

/// The two kinds of login token; one is never accepted as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims, named as PTPB's tokens name them, plus the session id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub user_id: String,
    pub sid: String,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Load the key from the settings, or make and store one.
    pub async fn load_or_create(store: &dyn Store, secrets: &SecretBox) -> Result<Self, CoreError> {
        let raw = match store.get_setting(KEY_SETTING).await? {
            Some(sealed) => hex::decode(secrets.open(&sealed)?)
                .map_err(|_| CoreError::Secret("stored token key is not hex".into()))?,
            None => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                let hexed = hex::encode(key);
                // Controllers starting together each make a key; the first
                // stored is the one all of them use, so a token signed by
                // one verifies on every other.
                let sealed = store
                    .init_setting(KEY_SETTING, &secrets.seal(&hexed)?)
                    .await?;
                hex::decode(secrets.open(&sealed)?)
                    .map_err(|_| CoreError::Secret("stored token key is not hex".into()))?
            }
        };
        Ok(Self::from_secret(&raw))
    }

    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Lifetimes are short and configurable; a grace period would make
        // a 15-minute token live longer than configured.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, CoreError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| CoreError::Secret(format!("token signing: {e}")))
    }

    /// The claims of a valid token of the expected type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, CoreError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => CoreError::unauthorized("token expired"),
                _ => CoreError::unauthorized("invalid token"),
            })?;
        if data.claims.token_type != expected {
            return Err(CoreError::unauthorized(match expected {
                TokenType::Access => "a refresh token is not an access token",
                TokenType::Refresh => "an access token is not a refresh token",
            }));
        }
        Ok(data.claims)
    }
}

/// Whether a credential has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.matches('.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token_type: TokenType, exp: i64) -> Claims {
        Claims {
            token_type,
            exp,
            iat: 0,
            jti: "j".into(),
            user_id: "1".into(),
            sid: "s".into(),
        }
    }

    #[test]
    fn verify_checks_signature_type_and_expiry() {
        let keys = JwtKeys::from_secret(b"k1");
        let later = crate::service::now() + 600;
        let access = keys.sign(&claims(TokenType::Access, later)).expect("sign");
        assert!(looks_like_jwt(&access));
        assert_eq!(
            keys.verify(&access, TokenType::Access).expect("valid").sid,
            "s"
        );
        assert!(keys.verify(&access, TokenType::Refresh).is_err());
        let other = JwtKeys::from_secret(b"k2");
        assert!(other.verify(&access, TokenType::Access).is_err());
        let expired = keys
            .sign(&claims(TokenType::Access, crate::service::now() - 1))
            .expect("sign");
        let err = keys.verify(&expired, TokenType::Access).err();
        assert_eq!(err.map(|e| e.to_string()), Some("token expired".into()));
        // Flip one character of the payload: the signature no longer fits.
        let mut parts: Vec<String> = access.split('.').map(str::to_string).collect();
        let payload = &mut parts[1];
        let last = payload.pop().map(|c| if c == 'A' { 'B' } else { 'A' });
        payload.extend(last);
        let tampered = parts.join(".");
        assert!(keys.verify(&tampered, TokenType::Access).is_err());
    }
}
