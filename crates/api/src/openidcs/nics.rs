//! `/api/client/nics/…`: list, plug and unplug a VM's network cards.

use std::collections::BTreeMap;

use axum::extract::State;
use ironidc_core::model::NicConfig;
use ironidc_core::service::NicInput;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiError, ApiResult, Data};
use super::params::{VmItemPath, VmPath};
use super::wire::{NicReply, PluggedNicReply, UnpluggedNicReply};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path};
use crate::AppState;

/// A VM's network cards
#[utoipa::path(
    get,
    path = "/api/client/nics/{hs_name}/{vm_uuid}",
    tag = "nics",
    operation_id = "listNics",
    params(VmPath),
    responses((status = 200, description = "NICs by name (as `nic_all`).", body = ReplyOf<BTreeMap<String, NicReply>>), ReadRefusals)
)]
pub async fn list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<BTreeMap<String, NicReply>> {
    let nics = s.services.list_nics(&actor, &hs, &vm).await?;
    Ok(Data(
        nics.into_iter()
            .map(|(name, nic)| (name, NicReply::from(nic)))
            .collect(),
    ))
}

/// `POST /api/client/nics/{hs}/{vm}` `{"name"?, "nic_type", "mac_addr"?,
/// "ip4_addr"?, "ip6_addr"?}`: hot-plugged when the VM runs.
#[utoipa::path(
    post,
    path = "/api/client/nics/{hs_name}/{vm_uuid}",
    tag = "nics",
    operation_id = "plugNic",
    params(VmPath),
    request_body = serde_json::Value,
    responses((status = 200, description = "The new NIC, its MAC filled in.", body = ReplyOf<PluggedNicReply>), ChangeRefusals)
)]
pub async fn plug(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(mut body): JsonObject,
) -> ApiResult<PluggedNicReply> {
    let name = match body.remove("name") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(n)) => n,
        Some(_) => return Err(ApiError::bad_request("name: must be a string")),
    };
    let nic: NicConfig = from_json(body.into())?;
    let (name, nic) = s
        .services
        .plug_nic(&actor, &hs, &vm, NicInput { name, nic })
        .await?;
    Ok(Data(PluggedNicReply {
        name,
        nic: nic.into(),
    }))
}

/// `DELETE /api/client/nics/{hs}/{vm}/{name}`: hot-unplugged when the VM
/// runs (the guest must release the card).
#[utoipa::path(
    delete,
    path = "/api/client/nics/{hs_name}/{vm_uuid}/{name}",
    tag = "nics",
    operation_id = "unplugNic",
    params(VmItemPath),
    responses((status = 200, description = "The NIC is gone.", body = ReplyOf<UnpluggedNicReply>), ChangeRefusals)
)]
pub async fn unplug(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmItemPath {
        hs_name: hs,
        vm_uuid: vm,
        name,
    }): Path<VmItemPath>,
) -> ApiResult<UnpluggedNicReply> {
    s.services.unplug_nic(&actor, &hs, &vm, &name).await?;
    Ok(Data(UnpluggedNicReply {
        name,
        deleted: true,
    }))
}
