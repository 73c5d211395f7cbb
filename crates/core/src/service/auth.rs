//! The operator's admin bearer token. Only its SHA-256 hash and a short
//! hint are stored; the token itself is shown once, when it is made.

use super::journal::Subject;
use super::{now, Actor, Services};
use crate::error::CoreError;
use crate::secrets::{hashes_equal, new_token, token_hash};

const HASH_KEY: &str = "admin_token_sha256";
const HINT_KEY: &str = "admin_token_hint";
const SET_AT_KEY: &str = "admin_token_set_at";
/// Shorter tokens are too easy to guess for a root credential.
const MIN_TOKEN_LEN: usize = 16;
/// Longer tokens would not fit in the request header limits of HTTP
/// servers and proxies (431), and the root credential would be lost.
const MAX_TOKEN_LEN: usize = 256;

/// What can be said about the current token without revealing it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub token_set: bool,
    /// The first four characters, to tell tokens apart.
    pub hint: String,
    pub set_at: i64,
    /// The token itself: present only in the reply that created it.
    pub token: Option<String>,
}

/// Outcome of start-up token set-up.
#[derive(Debug)]
pub enum TokenBootstrap {
    /// A token was already stored; nothing changed.
    Existing,
    /// The given token was stored.
    Configured,
    /// A token was generated; it must be shown to the operator once.
    Generated(String),
}

impl Services {
    /// On first start, store the configured token or generate one.
    pub async fn bootstrap_token(
        &self,
        configured: Option<&str>,
    ) -> Result<TokenBootstrap, CoreError> {
        if self.store().get_setting(HASH_KEY).await?.is_some() {
            if let Some(given) = configured {
                if !self.check_token(given).await? {
                    tracing::warn!("IRONIDC_TOKEN/--token differs from the stored token and is ignored; it only sets the token on first start (use the token reset/set endpoints to change it)");
                }
            }
            return Ok(TokenBootstrap::Existing);
        }
        match configured {
            Some(token) => {
                validate_token(token)?;
                self.store_token(token).await?;
                Ok(TokenBootstrap::Configured)
            }
            None => {
                let token = new_token();
                self.store_token(&token).await?;
                Ok(TokenBootstrap::Generated(token))
            }
        }
    }

    /// Whether `token` is the admin token (constant-time on the hashes).
    pub async fn check_token(&self, token: &str) -> Result<bool, CoreError> {
        let Some(stored) = self.store().get_setting(HASH_KEY).await? else {
            return Ok(false);
        };
        Ok(hashes_equal(&stored, &token_hash(token)))
    }

    pub async fn token_info(&self, actor: &Actor) -> Result<TokenInfo, CoreError> {
        actor.require("system.token.manage")?;
        self.stored_token_info().await
    }

    async fn stored_token_info(&self) -> Result<TokenInfo, CoreError> {
        let hint = self
            .store()
            .get_setting(HINT_KEY)
            .await?
            .unwrap_or_default();
        let set_at = self
            .store()
            .get_setting(SET_AT_KEY)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let token_set = self.store().get_setting(HASH_KEY).await?.is_some();
        Ok(TokenInfo {
            token_set,
            hint,
            set_at,
            token: None,
        })
    }

    /// Replace the token with a new random one and return it (once).
    pub async fn reset_token(&self, actor: &Actor) -> Result<TokenInfo, CoreError> {
        self.run_audited(
            actor,
            "token.reset",
            Subject::none(),
            actor.require("system.token.manage"),
            async |(), _op| {
                let token = new_token();
                self.store_token(&token).await?;
                let mut info = self.stored_token_info().await?;
                info.token = Some(token);
                Ok(info)
            },
            |_| serde_json::json!({"token_reset": true}),
        )
        .await
    }

    /// Set the token to a value chosen by the operator.
    pub async fn set_token(&self, actor: &Actor, token: &str) -> Result<TokenInfo, CoreError> {
        self.run_audited(
            actor,
            "token.set",
            Subject::none(),
            actor
                .require("system.token.manage")
                .and_then(|()| validate_token(token)),
            async |(), _op| {
                self.store_token(token).await?;
                self.stored_token_info().await
            },
            |_| serde_json::json!({"token_set": true}),
        )
        .await
    }

    async fn store_token(&self, token: &str) -> Result<(), CoreError> {
        // The old root token stops working on the next request.
        let _flush = self.auth_change();
        let hint: String = token.chars().take(4).collect();
        self.store()
            .set_setting(HASH_KEY, &token_hash(token))
            .await?;
        self.store().set_setting(HINT_KEY, &hint).await?;
        self.store()
            .set_setting(SET_AT_KEY, &now().to_string())
            .await?;
        Ok(())
    }
}

fn validate_token(token: &str) -> Result<(), CoreError> {
    let len = token.chars().count();
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&len) {
        return Err(CoreError::invalid(
            "token",
            format!("must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters"),
        ));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            "token",
            "may only contain printable ASCII without spaces",
        ));
    }
    Ok(())
}
