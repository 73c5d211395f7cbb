//! `/api/system/*` and `/api/token/*`.

use axum::extract::State;
use serde::Deserialize;

use super::envelope::{ApiResult, Data};
use super::extract::{from_json, Admin, JsonObject, Params};
use crate::AppState;

pub async fn reset_token(
    State(s): State<AppState>,
    Admin(actor): Admin,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.reset_token(&actor).await?))
}

#[derive(Deserialize)]
struct SetToken {
    token: String,
}

pub async fn set_token(
    State(s): State<AppState>,
    Admin(actor): Admin,
    JsonObject(body): JsonObject,
) -> ApiResult<impl serde::Serialize> {
    let req: SetToken = from_json(body.into())?;
    Ok(Data(s.services.set_token(&actor, &req.token).await?))
}

pub async fn token_info(
    State(s): State<AppState>,
    _admin: Admin,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.token_info().await?))
}

pub async fn export_config(
    State(s): State<AppState>,
    _admin: Admin,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.export_config().await?))
}

pub async fn import_config(
    State(s): State<AppState>,
    Admin(actor): Admin,
    JsonObject(body): JsonObject,
) -> ApiResult<impl serde::Serialize> {
    let cfg = from_json(body.into())?;
    Ok(Data(s.services.import_config(&actor, cfg).await?))
}

pub async fn stats(State(s): State<AppState>, _admin: Admin) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.stats().await?))
}

pub async fn engines(State(s): State<AppState>, _admin: Admin) -> ApiResult<impl serde::Serialize> {
    let types: serde_json::Map<String, serde_json::Value> = s
        .services
        .engine_types()
        .await
        .into_iter()
        .map(|t| {
            (
                t.info.key.to_string(),
                serde_json::to_value(&t).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Data(serde_json::json!({ "engine_types": types })))
}

#[derive(Deserialize)]
pub struct ListQuery {
    hs_name: Option<String>,
    limit: Option<u32>,
}

pub async fn logs(
    State(s): State<AppState>,
    _admin: Admin,
    Params(q): Params<ListQuery>,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.logs(q.hs_name.as_deref(), q.limit).await?))
}

pub async fn tasks(
    State(s): State<AppState>,
    _admin: Admin,
    Params(q): Params<ListQuery>,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.tasks(q.hs_name.as_deref(), q.limit).await?))
}
