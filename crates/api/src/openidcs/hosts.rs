//! `/api/server/*`: hosts by `hs_name`.

use std::collections::BTreeMap;

use axum::extract::State;
use ironidc_core::model::HostConfig;
use ironidc_core::service::{HostInput, HostView};
use serde::Deserialize;

use super::envelope::{ApiError, ApiResult, Data};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path, Query};
use super::params::{HostPath};
use crate::AppState;

pub async fn list(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<BTreeMap<String, HostView>> {
    let hosts = s.services.list_hosts(&actor).await?;
    Ok(Data(
        hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
    ))
}

#[derive(Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    status: bool,
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<DetailQuery>,
) -> ApiResult<serde_json::Value> {
    let host = s.services.get_host(&actor, &hs_name).await?;
    let mut value = serde_json::to_value(&host).map_err(|e| ApiError::internal(e.to_string()))?;
    if q.status {
        let status = s.services.host_status(&actor, &hs_name, false).await?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "status_detail".into(),
                serde_json::to_value(status).unwrap_or_default(),
            );
        }
    }
    Ok(Data(value))
}

#[derive(Deserialize)]
struct CreateHost {
    name: String,
    #[serde(rename = "type")]
    engine: String,
    #[serde(default)]
    config: HostConfig,
    enable_host: Option<bool>,
}

pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<HostView> {
    let req: CreateHost = from_json(body.into())?;
    let input = HostInput {
        name: req.name,
        engine: req.engine,
        config: req.config,
        enabled: req.enable_host,
    };
    Ok(Data(s.services.create_host(&actor, input).await?))
}

#[derive(Deserialize)]
struct UpdateHost {
    /// Only the keys given change (see `Services::update_host`).
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
    enable_host: Option<bool>,
}

pub async fn update(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<HostView> {
    let req: UpdateHost = from_json(body.into())?;
    Ok(Data(
        s.services
            .update_host(&actor, &hs_name, req.config, req.enable_host)
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
    /// Also delete the backups of the host's VMs.
    #[serde(default)]
    purge_backups: bool,
}

pub async fn remove(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<serde_json::Value> {
    s.services
        .delete_host(&actor, &hs_name, q.force, q.purge_backups)
        .await?;
    Ok(Data(
        serde_json::json!({ "hs_name": hs_name, "deleted": true }),
    ))
}

#[derive(Deserialize)]
struct EnableHost {
    enable: bool,
}

pub async fn enable(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<HostView> {
    let req: EnableHost = from_json(body.into())?;
    Ok(Data(
        s.services
            .set_host_enabled(&actor, &hs_name, req.enable)
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    refresh: bool,
}

pub async fn status(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(
        s.services.host_status(&actor, &hs_name, q.refresh).await?,
    ))
}

/// `GET /api/server/status` (no host): the connection test OpenIDCS billing
/// modules call before anything else.
pub async fn connection_test(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<serde_json::Value> {
    let stats = s.services.stats(&actor).await?;
    Ok(Data(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "host_count": stats.host_count,
        "vm_count": stats.vm_count,
        "running_vm_count": stats.running_vm_count,
    })))
}
