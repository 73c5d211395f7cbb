//! Personal API tokens.

use ironidc_core::service::{ApiTokenView, CreatedApiToken};
use serde::Serialize;
use utoipa::ToSchema;

/// A personal API token; the secret itself is never shown again.
#[derive(Serialize, ToSchema)]
pub struct ApiTokenReply {
    id: i64,
    name: String,
    /// The first characters of the token, to tell tokens apart.
    hint: String,
    /// Permission codes the token may use (within its user's own).
    scopes: Vec<String>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; null: never.
    expires_at: Option<i64>,
    /// Unix seconds; null: never used.
    last_used_at: Option<i64>,
}

copy_fields!(ApiTokenView => ApiTokenReply { id, name, hint, scopes, created_at, expires_at, last_used_at });

/// A new API token, with the token itself: shown in this reply only.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiTokenReply {
    #[serde(flatten)]
    view: ApiTokenReply,
    /// `ixt_…`: send as `Authorization`.
    token: String,
}

impl From<CreatedApiToken> for CreatedApiTokenReply {
    fn from(t: CreatedApiToken) -> Self {
        let CreatedApiToken { view, token } = t;
        Self {
            view: view.into(),
            token,
        }
    }
}
