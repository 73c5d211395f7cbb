//! `/api/server/*`: hosts by `hs_name`.

use std::collections::BTreeMap;

use axum::extract::State;
use ironidc_core::model::HostConfig;
use ironidc_core::service::HostInput;
use serde::Deserialize;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiResult, Data};
use super::host_body::HostConfigBody;
use super::params::HostPath;
use super::wire::{ConnectionTestReply, DeletedHostReply, HostEntry, HostStatusReply};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path, Query};
use crate::AppState;

/// List the hosts
#[utoipa::path(
    get,
    path = "/api/server/detail",
    tag = "hosts",
    operation_id = "listHosts",
    responses((status = 200, description = "Hosts by `hs_name`.", body = ReplyOf<BTreeMap<String, HostEntry>>), ReadRefusals)
)]
pub async fn list(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<BTreeMap<String, HostEntry>> {
    let hosts = s.services.list_hosts(&actor).await?;
    Ok(Data(
        hosts
            .into_iter()
            .map(|h| (h.name.clone(), HostEntry::from(h)))
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    #[serde(default)]
    status: bool,
}

/// One host
#[utoipa::path(
    get,
    path = "/api/server/detail/{hs_name}",
    tag = "hosts",
    operation_id = "getHost",
    params(HostPath, DetailQuery),
    responses((status = 200, description = "The host.", body = ReplyOf<HostDetail>), ChangeRefusals)
)]
pub async fn detail(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<DetailQuery>,
) -> ApiResult<HostDetail> {
    let host = s.services.get_host(&actor, &hs_name).await?.into();
    let status_detail = match q.status {
        true => Some(
            s.services
                .host_status(&actor, &hs_name, false)
                .await?
                .into(),
        ),
        false => None,
    };
    Ok(Data(HostDetail {
        host,
        status_detail,
    }))
}

/// A host, with its status when asked (`?status=true`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    host: HostEntry,
    /// The host's status (with `?status=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_detail: Option<HostStatusReply>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateHost {
    name: String,
    #[serde(rename = "type")]
    engine: String,
    /// The host's configuration (OpenIDCS keys).
    #[serde(default)]
    config: HostConfigBody,
    enable_host: Option<bool>,
}

/// Add a host
#[utoipa::path(
    post,
    path = "/api/server/create",
    tag = "hosts",
    operation_id = "createHost",
    request_body = CreateHost,
    responses((status = 200, description = "The new host.", body = ReplyOf<HostEntry>), ChangeRefusals)
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<HostEntry> {
    let req: CreateHost = from_json(body.into())?;
    let input = HostInput {
        name: req.name,
        engine: req.engine,
        config: req.config.into_patch().apply_to(&HostConfig::default()),
        enabled: req.enable_host,
    };
    Ok(Data(s.services.create_host(&actor, input).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct UpdateHost {
    /// Only the keys given change (see `Services::update_host`).
    #[serde(default)]
    config: HostConfigBody,
    enable_host: Option<bool>,
}

/// Change a host's configuration
///
/// Only the `config` keys given change; absent keys (and an absent `server_pass`) keep their values. A change that would strand existing VMs (`system_path`, a bridge or a pool they use) is 409 naming the VMs.
#[utoipa::path(
    put,
    path = "/api/server/update/{hs_name}",
    tag = "hosts",
    operation_id = "updateHost",
    params(HostPath),
    request_body = UpdateHost,
    responses((status = 200, description = "The updated host.", body = ReplyOf<HostEntry>), ChangeRefusals)
)]
pub async fn update(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<HostEntry> {
    let req: UpdateHost = from_json(body.into())?;
    Ok(Data(
        s.services
            .update_host(&actor, &hs_name, req.config.into_patch(), req.enable_host)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
    /// Also delete the backups of the host's VMs.
    #[serde(default)]
    purge_backups: bool,
}

/// Remove a host
///
/// A host with VMs is refused (409) unless `force=true`, which deletes its VMs too. Its bridges and their DHCP servers go when no other host uses them, its masquerade rules with them.
#[utoipa::path(
    delete,
    path = "/api/server/delete/{hs_name}",
    tag = "hosts",
    operation_id = "deleteHost",
    params(HostPath, DeleteQuery),
    responses((status = 200, description = "The host is gone.", body = ReplyOf<DeletedHostReply>), ChangeRefusals)
)]
pub async fn remove(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<DeletedHostReply> {
    s.services
        .delete_host(&actor, &hs_name, q.force, q.purge_backups)
        .await?;
    Ok(Data(DeletedHostReply {
        hs_name,
        deleted: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EnableHost {
    enable: bool,
}

/// Enable or disable a host
///
/// A disabled host takes no new VMs.
#[utoipa::path(
    post,
    path = "/api/server/powers/{hs_name}",
    tag = "hosts",
    operation_id = "enableHost",
    params(HostPath),
    request_body = EnableHost,
    responses((status = 200, description = "The host.", body = ReplyOf<HostEntry>), ChangeRefusals)
)]
pub async fn enable(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<HostEntry> {
    let req: EnableHost = from_json(body.into())?;
    Ok(Data(
        s.services
            .set_host_enabled(&actor, &hs_name, req.enable)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    #[serde(default)]
    refresh: bool,
}

/// A host's CPU, memory and disk, with load, uptime and storage paths
#[utoipa::path(
    get,
    path = "/api/server/status/{hs_name}",
    tag = "hosts",
    operation_id = "hostStatus",
    params(HostPath, StatusQuery),
    responses((status = 200, description = "The host's status.", body = ReplyOf<HostStatusReply>), ChangeRefusals)
)]
pub async fn status(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<HostStatusReply> {
    Ok(Data(
        s.services
            .host_status(&actor, &hs_name, q.refresh)
            .await?
            .into(),
    ))
}

/// `GET /api/server/status` (no host): the connection test OpenIDCS billing
/// modules call before anything else.
#[utoipa::path(
    get,
    path = "/api/server/status",
    tag = "hosts",
    operation_id = "connectionTest",
    responses((status = 200, description = "The controller answers and the credential is good.", body = ReplyOf<ConnectionTestReply>), ReadRefusals)
)]
pub async fn connection_test(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<ConnectionTestReply> {
    Ok(Data(ConnectionTestReply {
        version: env!("CARGO_PKG_VERSION").to_string(),
        stats: s.services.stats(&actor).await?.into(),
    }))
}
