//! `/api/system/*` and `/api/token/*`.

use axum::extract::State;
use serde::Deserialize;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiResult, Data};
use super::wire::{
    ConfigImportReply, EngineTypesReply, ExportedConfigReply, HealthReply, LogReply, StatsReply,
    TaskReply, TokenInfoReply,
};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Query};
use crate::AppState;

/// Replace the root token with a new random one
///
/// The reply is the only place the new token is shown (`data.token`). Root token only.
#[utoipa::path(
    post,
    path = "/api/system/resets",
    tag = "system",
    operation_id = "resetToken",
    responses((status = 200, description = "The new token.", body = ReplyOf<TokenInfoReply>), ReadRefusals)
)]
pub async fn reset_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<TokenInfoReply> {
    Ok(Data(s.services.reset_token(&actor).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SetToken {
    token: String,
}

/// Set the root token to a given value
#[utoipa::path(
    post,
    path = "/api/system/create",
    tag = "system",
    operation_id = "setToken",
    request_body = SetToken,
    responses((status = 200, description = "The token now in force (shown once).", body = ReplyOf<TokenInfoReply>), ChangeRefusals)
)]
pub async fn set_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<TokenInfoReply> {
    let req: SetToken = from_json(body.into())?;
    Ok(Data(s.services.set_token(&actor, &req.token).await?.into()))
}

/// Describe the root token without revealing it
#[utoipa::path(
    get,
    path = "/api/system/tquery",
    tag = "system",
    operation_id = "tokenInfo",
    responses((status = 200, description = "Whether a token is set, its first characters and when it was set.", body = ReplyOf<TokenInfoReply>), ReadRefusals)
)]
pub async fn token_info(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<TokenInfoReply> {
    Ok(Data(s.services.token_info(&actor).await?.into()))
}

/// Export every host and VM definition
///
/// Host passwords are not exported. The result can be fed to `POST /api/system/loader`.
#[utoipa::path(
    post,
    path = "/api/system/saving",
    tag = "system",
    operation_id = "exportConfig",
    responses((status = 200, description = "The exported configuration.", body = ReplyOf<ExportedConfigReply>), ReadRefusals)
)]
pub async fn export_config(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<ExportedConfigReply> {
    Ok(Data(s.services.export_config(&actor).await?.into()))
}

/// Import hosts and VM definitions exported by `saving`
///
/// Hosts are created or updated; VMs whose disks exist on their host are imported or updated, others are skipped with a reason.
#[utoipa::path(
    post,
    path = "/api/system/loader",
    tag = "system",
    operation_id = "importConfig",
    request_body = serde_json::Value,
    responses((status = 200, description = "What was created, updated and skipped.", body = ReplyOf<ConfigImportReply>), ChangeRefusals)
)]
pub async fn import_config(
    State(s): State<AppState>,
    Caller(actor): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<ConfigImportReply> {
    let cfg = from_json(body.into())?;
    Ok(Data(s.services.import_config(&actor, cfg).await?.into()))
}

/// Count hosts, VMs and running VMs
#[utoipa::path(
    get,
    path = "/api/system/statis",
    tag = "system",
    operation_id = "stats",
    responses((status = 200, description = "The counts.", body = ReplyOf<StatsReply>), ReadRefusals)
)]
pub async fn stats(State(s): State<AppState>, Caller(actor): Caller) -> ApiResult<StatsReply> {
    Ok(Data(s.services.stats(&actor).await?.into()))
}

/// List the engine types and whether each is usable here
#[utoipa::path(
    get,
    path = "/api/system/engine",
    tag = "system",
    operation_id = "engineTypes",
    responses((status = 200, description = "Engine types by key (`qemu`).", body = ReplyOf<EngineTypesReply>), ReadRefusals)
)]
pub async fn engines(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<EngineTypesReply> {
    let types = s.services.engine_types(&actor).await?;
    Ok(Data(types.into_iter().collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    hs_name: Option<String>,
    limit: Option<u32>,
}

/// The newest operation-log entries
///
/// Everyone's entries with the `audit.opera.read` permission, otherwise the caller's own. Newest first.
#[utoipa::path(
    get,
    path = "/api/system/logger/detail",
    tag = "system",
    operation_id = "logs",
    params(ListQuery),
    responses((status = 200, description = "Log entries, newest first.", body = ReplyOf<Vec<LogReply>>), ChangeRefusals)
)]
pub async fn logs(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<LogReply>> {
    let logs = s
        .services
        .logs(&actor, q.hs_name.as_deref(), q.limit)
        .await?;
    Ok(Data(logs.into_iter().map(LogReply::from).collect()))
}

/// The newest tasks
///
/// Everyone's tasks with the `system.task.read` permission, otherwise those the caller started.
#[utoipa::path(
    get,
    path = "/api/system/tasker",
    tag = "system",
    operation_id = "tasks",
    params(ListQuery),
    responses((status = 200, description = "Tasks, newest first.", body = ReplyOf<Vec<TaskReply>>), ChangeRefusals)
)]
pub async fn tasks(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<TaskReply>> {
    let tasks = s
        .services
        .tasks(&actor, q.hs_name.as_deref(), q.limit)
        .await?;
    Ok(Data(tasks.into_iter().map(TaskReply::from).collect()))
}

/// `GET /api/system/tasker/{id}` (ours): one task, e.g. a backup's progress.
#[utoipa::path(
    get,
    path = "/api/system/tasker/{id}",
    tag = "system",
    operation_id = "task",
    params(super::params::TaskPath),
    responses((status = 200, description = "The task.", body = ReplyOf<TaskReply>), ChangeRefusals)
)]
pub async fn task(
    State(s): State<AppState>,
    Caller(actor): Caller,
    crate::kit::Path(super::params::TaskPath { id }): crate::kit::Path<super::params::TaskPath>,
) -> ApiResult<TaskReply> {
    Ok(Data(s.services.task(&actor, id).await?.into()))
}

/// `GET /api/system/health` (ours): unauthenticated liveness, for load
/// balancers and as the baseline of the authentication benchmark.
#[utoipa::path(
    get,
    path = "/api/system/health",
    tag = "system",
    operation_id = "health",
    responses((status = 200, description = "The controller answers.", body = ReplyOf<HealthReply>), ReadRefusals),
    security(())
)]
pub async fn health() -> ApiResult<HealthReply> {
    Ok(Data(HealthReply {
        status: "ok".into(),
    }))
}
