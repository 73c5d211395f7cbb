//! Personal API tokens for scripts: `ixt_` + 43 random characters, shown
//! once, stored as a SHA-256 hash, limited to scopes within the owner's own
//! permissions, revocable, optionally expiring.

use super::journal::Subject;
use super::{now, Actor, Services};
use crate::accounts::{ApiToken, NewApiToken};
use crate::error::CoreError;
use crate::permissions;
use crate::secrets::{new_token, token_hash};

/// Every API token starts with this, so `authenticate` knows its kind.
pub const API_TOKEN_PREFIX: &str = "ixt_";
/// Refresh `last_used_at` at most this often (seconds).
const TOUCH_EVERY: i64 = 60;
const MAX_TOKENS_PER_USER: usize = 50;

#[derive(Debug, Clone)]
pub struct ApiTokenView {
    pub id: i64,
    pub name: String,
    pub hint: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            hint: t.hint,
            scopes: t.scopes,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token: the secret appears in this reply only.
#[derive(Debug, Clone)]
pub struct CreatedApiToken {
    pub view: ApiTokenView,
    pub token: String,
}

impl Services {
    /// Make a token for the calling user. Scopes default to all the
    /// user's permissions (checked again on every use, so a token never
    /// outgrows its user).
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        name: &str,
        scopes: Option<Vec<String>>,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedApiToken, CoreError> {
        let user_id = self.calling_user(actor, "api_token.create").await?;
        let checked = async {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(CoreError::invalid("name", "must be 1 to 64 characters"));
            }
            let scopes = match scopes {
                None => actor.permissions(),
                Some(list) => {
                    for code in &list {
                        if !permissions::is_known(code) {
                            return Err(CoreError::invalid(
                                "scopes",
                                format!("unknown permission {code}"),
                            ));
                        }
                        actor.require(code)?;
                    }
                    let mut list = list;
                    list.sort();
                    list.dedup();
                    list
                }
            };
            if let Some(0) = expires_in_days {
                return Err(CoreError::invalid("expires_in_days", "must be at least 1"));
            }
            if self.store().list_api_tokens(user_id).await?.len() >= MAX_TOKENS_PER_USER {
                return Err(CoreError::Conflict(format!(
                    "a user may hold at most {MAX_TOKENS_PER_USER} API tokens"
                )));
            }
            Ok((name.to_string(), scopes))
        }
        .await;
        self.run_audited(
            actor,
            "api_token.create",
            Subject::target(name.trim()),
            checked,
            async |(name, scopes), _op| {
                let _flush = self.auth_change();
                let token = format!("{API_TOKEN_PREFIX}{}", new_token());
                let row = self
                    .store()
                    .insert_api_token(&NewApiToken {
                        user_id,
                        name,
                        token_hash: token_hash(&token),
                        hint: token.chars().take(API_TOKEN_PREFIX.len() + 4).collect(),
                        scopes,
                        expires_at: expires_in_days.map(|d| now() + i64::from(d) * 86_400),
                    })
                    .await?;
                Ok(CreatedApiToken {
                    view: row.into(),
                    token,
                })
            },
            |t| serde_json::json!({"token_id": t.view.id}),
        )
        .await
    }

    /// The calling user's tokens (never their secrets).
    pub async fn list_api_tokens(&self, actor: &Actor) -> Result<Vec<ApiTokenView>, CoreError> {
        let Some(user_id) = actor.user_id else {
            return Ok(Vec::new());
        };
        Ok(self
            .store()
            .list_api_tokens(user_id)
            .await?
            .into_iter()
            .map(ApiTokenView::from)
            .collect())
    }

    /// Revoke one of the calling user's tokens.
    pub async fn delete_api_token(&self, actor: &Actor, id: i64) -> Result<(), CoreError> {
        let user_id = self.calling_user(actor, "api_token.delete").await?;
        self.run_audited(
            actor,
            "api_token.delete",
            Subject::target(&id.to_string()),
            Ok(()),
            async |(), _op| {
                // Revoked: refused on the very next request.
                let _flush = self.auth_change();
                match self.store().delete_api_token(id, user_id).await? {
                    true => Ok(()),
                    false => Err(CoreError::not_found("api token", id.to_string())),
                }
            },
            |_| serde_json::json!({"token_id": id}),
        )
        .await
    }

    /// The user id behind an actor; the root token has no user to own
    /// tokens (it is a token itself).
    async fn calling_user(&self, actor: &Actor, action: &'static str) -> Result<i64, CoreError> {
        match actor.user_id {
            Some(id) => Ok(id),
            None => {
                let e = CoreError::invalid(
                    "Authorization",
                    "API tokens belong to users; log in as a user to manage them",
                );
                self.log_refused(actor, action, None, None, &e).await;
                Err(e)
            }
        }
    }

    /// The token's user with the token's scopes, and when the token
    /// expires. `last_used_at` is refreshed at most every `TOUCH_EVERY`
    /// seconds, and only when the store is asked (not on a cached use).
    pub(super) async fn authenticate_api_token(
        &self,
        credential: &str,
        ip: &str,
        face: &'static str,
    ) -> Result<(Actor, Option<i64>), CoreError> {
        let token = self
            .store()
            .api_token_by_hash(&token_hash(credential))
            .await?
            .ok_or_else(|| CoreError::unauthorized("invalid token"))?;
        let t = now();
        if token.expires_at.is_some_and(|e| e <= t) {
            return Err(CoreError::unauthorized("token expired"));
        }
        let user = self.enabled_user(token.user_id).await?;
        let mut permissions = self.permissions_of(user.id).await?;
        permissions.retain(|code| token.scopes.iter().any(|s| s == code));
        if token.last_used_at.is_none_or(|u| t - u >= TOUCH_EVERY) {
            if let Err(e) = self.store().touch_api_token(token.id, t).await {
                tracing::warn!(error = %e, "could not record API token use");
            }
        }
        let actor = Actor::user(user.id, &user.account, permissions, ip, face, None);
        Ok((actor, token.expires_at))
    }
}
