//! Ours, in PTPB's style: personal API tokens (`/api/rbac/token/*`) and
//! quotas (`/api/rbac/quota/get/`).

use axum::extract::State;
use serde::Deserialize;

use super::docs::{DetailOf, Done, PageOf, Refusals};
use super::envelope::{PtpbResult, Reply};
use super::wire::{ApiTokenReply, CreatedApiTokenReply, QuotaReportReply};
use crate::kit::{Caller, Json, Query};
use crate::AppState;

/// List one's API tokens
#[utoipa::path(
    get,
    path = "/api/rbac/token/get/",
    tag = "token",
    operation_id = "tokenList",
    responses((status = 200, description = "All of one's tokens (one page).", body = PageOf<ApiTokenReply>), Refusals)
)]
pub async fn list(State(s): State<AppState>, Caller(actor): Caller) -> PtpbResult {
    let tokens = s.services.list_api_tokens(&actor).await?;
    let total = tokens.len() as u64;
    Reply::page(tokens.into_iter().map(ApiTokenReply::from).collect(), total)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenAddBody {
    name: String,
    scopes: Option<Vec<String>>,
    expires_in_days: Option<u32>,
}

/// The reply carries the token itself, this once.
#[utoipa::path(
    post,
    path = "/api/rbac/token/add/",
    tag = "token",
    request_body = TokenAddBody,
    operation_id = "tokenAdd",
    responses((status = 200, description = "The new token, with its secret.", body = DetailOf<CreatedApiTokenReply>), Refusals)
)]
pub async fn add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<TokenAddBody>,
) -> PtpbResult {
    let created = s
        .services
        .create_api_token(&actor, &b.name, b.scopes, b.expires_in_days)
        .await?;
    Reply::detail(CreatedApiTokenReply::from(created))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenDelBody {
    id: i64,
}

/// Revoke API tokens
#[utoipa::path(
    post,
    path = "/api/rbac/token/del/",
    tag = "token",
    request_body = TokenDelBody,
    operation_id = "tokenDelete",
    responses((status = 200, description = "Revoked.", body = Done), Refusals)
)]
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<TokenDelBody>,
) -> PtpbResult {
    s.services.delete_api_token(&actor, b.id).await?;
    Ok(Reply::ok())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuotaQuery {
    id: Option<i64>,
}

/// A user's limits and usage; without `id`, the caller's.
#[utoipa::path(
    get,
    path = "/api/rbac/quota/get/",
    tag = "quota",
    params(QuotaQuery),
    operation_id = "tokenQuota",
    responses((status = 200, description = "The limits in force and the usage.", body = DetailOf<QuotaReportReply>), Refusals)
)]
pub async fn quota(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<QuotaQuery>,
) -> PtpbResult {
    let id = match q.id.or(actor.user_id) {
        Some(id) => id,
        None => {
            return Err(ironidc_core::CoreError::invalid(
                "id",
                "is required with the root token (it has no quota of its own)",
            )
            .into())
        }
    };
    Reply::detail(QuotaReportReply::from(
        s.services.quota_report(&actor, id).await?,
    ))
}
