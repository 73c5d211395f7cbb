//! Account passwords: the strength rule, and Argon2id hashing on the bounded
//! CPU pool (a hash costs tens of milliseconds by design).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

use crate::error::CoreError;

pub const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 128;

/// Passwords that meet the length and class rule yet are the first ones
/// any guesser tries.
const COMMON: &[&str] = &[
    "password1",
    "password123",
    "passw0rd",
    "admin123",
    "admin1234",
    "administrator1",
    "qwerty123",
    "qwerty12",
    "abc12345",
    "abcd1234",
    "1q2w3e4r",
    "iloveyou1",
    "welcome1",
    "letmein1",
    "changeme1",
    "p@ssw0rd",
    "root1234",
    "test1234",
];

/// Refuses short, one-class, common or account-derived passwords; the
/// error names `field`.
pub fn check_strength(field: &str, password: &str, account: &str) -> Result<(), CoreError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(CoreError::invalid(
            field,
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if classes < 2 {
        return Err(CoreError::invalid(
            field,
            "must mix at least two of: lower case, upper case, digits, symbols",
        ));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(CoreError::invalid(field, "is a commonly used password"));
    }
    if account.chars().count() >= 3 && lower.contains(&account.to_lowercase()) {
        return Err(CoreError::invalid(
            field,
            "must not contain the account name",
        ));
    }
    Ok(())
}

/// An Argon2id PHC string of `password`.
pub async fn hash(password: &str) -> Result<String, CoreError> {
    let password = password.to_string();
    crate::cpu_work::run("password hashing", move || hash_now(&password)).await?
}

fn hash_now(password: &str) -> Result<String, CoreError> {
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    let salt = SaltString::encode_b64(&raw)
        .map_err(|e| CoreError::Secret(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Secret(format!("password hashing: {e}")))
}

/// Whether `password` matches the stored hash. A malformed stored hash
/// matches nothing.
pub async fn verify(password: &str, stored: &str) -> bool {
    let password = password.to_string();
    let stored = stored.to_string();
    crate::cpu_work::run("password check", move || {
        PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when the account does not
/// exist, so a wrong account costs as long as a wrong password.
pub async fn decoy_hash() -> Result<String, CoreError> {
    let mut raw = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut raw);
    hash(&hex::encode(raw)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rule() {
        assert!(check_strength("password", "short1", "bob").is_err());
        assert!(check_strength("password", "alllowercase", "bob").is_err());
        assert!(check_strength("password", "12345678", "bob").is_err());
        assert!(check_strength("password", "Admin123", "bob").is_err());
        assert!(check_strength("password", "alice-2026", "alice").is_err());
        let e = check_strength("new_password", "x", "bob").err();
        assert!(e
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("new_password:"));
        assert!(check_strength("password", "correct-horse-7", "bob").is_ok());
        assert!(check_strength("password", &"Ab1".repeat(50), "bob").is_err());
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("correct-horse-7").await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct-horse-7", &h).await);
        assert!(!verify("correct-horse-8", &h).await);
        assert!(!verify("correct-horse-7", "not a hash").await);
        let h2 = hash("correct-horse-7").await.expect("hash");
        assert_ne!(h, h2, "salted");
    }
}
