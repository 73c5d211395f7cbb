//! `/api/client/{natget,natadd,natdel}`, `ipaddr/*` and `proxys/*`: a VM's
//! port forwards, addresses and domain bindings. Deletes go by list index,
//! as in OpenIDCS; every list item carries its `index`.

use super::network_body::{AddressBody, NatBody, ProxyBody};
use axum::extract::State;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiResult, Data};
use super::params::{HostPath, VmIndexPath, VmPath};
use super::wire::{AddressReply, CreatedProxyReply, NatRuleReply, PoolUsageReply, ProxyReply};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path, Query};
use crate::AppState;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoolQuery {
    /// How many free addresses to list per pool (default 20, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/server/ipaddr/{hs_name}`: the host's pools, used and free.
#[utoipa::path(
    get,
    path = "/api/server/ipaddr/{hs_name}",
    tag = "network",
    operation_id = "poolUsage",
    params(HostPath, PoolQuery),
    responses((status = 200, description = "One entry per pool.", body = ReplyOf<Vec<PoolUsageReply>>), ChangeRefusals)
)]
pub async fn pools(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name: hs }): Path<HostPath>,
    Query(q): Query<PoolQuery>,
) -> ApiResult<Vec<PoolUsageReply>> {
    let limit = q.limit.unwrap_or(20).min(1000);
    let pools = s.services.pool_usage(&actor, &hs, limit).await?;
    Ok(Data(pools.into_iter().map(PoolUsageReply::from).collect()))
}

/// A VM's port forwards
#[utoipa::path(
    get,
    path = "/api/client/natget/{hs_name}/{vm_uuid}",
    tag = "network",
    operation_id = "listNatRules",
    params(VmPath),
    responses((status = 200, description = "Port forwards, each with its `index`.", body = ReplyOf<Vec<NatRuleReply>>), ReadRefusals)
)]
pub async fn nat_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<Vec<NatRuleReply>> {
    let rules = s.services.list_nat_rules(&actor, &hs, &vm).await?;
    Ok(Data(rules.into_iter().map(NatRuleReply::from).collect()))
}

/// Add a port forward
#[utoipa::path(
    post,
    path = "/api/client/natadd/{hs_name}/{vm_uuid}",
    tag = "network",
    operation_id = "addNatRule",
    params(VmPath),
    request_body = NatBody,
    responses((status = 200, description = "The new port forward.", body = ReplyOf<NatRuleReply>), ChangeRefusals)
)]
pub async fn nat_add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<NatRuleReply> {
    let input = from_json::<NatBody>(body.into())?.into();
    Ok(Data(
        s.services
            .add_nat_rule(&actor, &hs, &vm, input)
            .await?
            .into(),
    ))
}

/// Remove a port forward by list index
#[utoipa::path(
    delete,
    path = "/api/client/natdel/{hs_name}/{vm_uuid}/{index}",
    tag = "network",
    operation_id = "deleteNatRule",
    params(VmIndexPath),
    responses((status = 200, description = "The removed port forward.", body = ReplyOf<NatRuleReply>), ChangeRefusals)
)]
pub async fn nat_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIndexPath {
        hs_name: hs,
        vm_uuid: vm,
        index,
    }): Path<VmIndexPath>,
) -> ApiResult<NatRuleReply> {
    Ok(Data(
        s.services
            .delete_nat_rule(&actor, &hs, &vm, index)
            .await?
            .into(),
    ))
}

/// A VM's addresses
#[utoipa::path(
    get,
    path = "/api/client/ipaddr/detail/{hs_name}/{vm_uuid}",
    tag = "network",
    operation_id = "listAddresses",
    params(VmPath),
    responses((status = 200, description = "Addresses, each with its `index`.", body = ReplyOf<Vec<AddressReply>>), ReadRefusals)
)]
pub async fn ip_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<Vec<AddressReply>> {
    let addresses = s.services.list_addresses(&actor, &hs, &vm).await?;
    Ok(Data(
        addresses.into_iter().map(AddressReply::from).collect(),
    ))
}

/// Give a VM an address from one of the host's pools
#[utoipa::path(
    post,
    path = "/api/client/ipaddr/create/{hs_name}/{vm_uuid}",
    tag = "network",
    operation_id = "addAddress",
    params(VmPath),
    request_body = AddressBody,
    responses((status = 200, description = "The new address.", body = ReplyOf<AddressReply>), ChangeRefusals)
)]
pub async fn ip_add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<AddressReply> {
    let input = from_json::<AddressBody>(body.into())?.into();
    Ok(Data(
        s.services
            .add_address(&actor, &hs, &vm, input)
            .await?
            .into(),
    ))
}

/// Release an address by list index
///
/// An address a port forward or domain binding still uses is refused (409).
#[utoipa::path(
    delete,
    path = "/api/client/ipaddr/delete/{hs_name}/{vm_uuid}/{index}",
    tag = "network",
    operation_id = "deleteAddress",
    params(VmIndexPath),
    responses((status = 200, description = "The released address.", body = ReplyOf<AddressReply>), ChangeRefusals)
)]
pub async fn ip_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIndexPath {
        hs_name: hs,
        vm_uuid: vm,
        index,
    }): Path<VmIndexPath>,
) -> ApiResult<AddressReply> {
    Ok(Data(
        s.services
            .delete_address(&actor, &hs, &vm, index)
            .await?
            .into(),
    ))
}

/// A VM's domain bindings (reverse proxy)
#[utoipa::path(
    get,
    path = "/api/client/proxys/detail/{hs_name}/{vm_uuid}",
    tag = "network",
    operation_id = "listProxies",
    params(VmPath),
    responses((status = 200, description = "Bindings, each with its `index`.", body = ReplyOf<Vec<ProxyReply>>), ReadRefusals)
)]
pub async fn proxy_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<Vec<ProxyReply>> {
    let proxies = s.services.list_proxies(&actor, &hs, &vm).await?;
    Ok(Data(proxies.into_iter().map(ProxyReply::from).collect()))
}

/// Bind a domain to a VM
///
/// With `ssl_type=letsencrypt` the certificate is issued in the background; `task_id` follows it.
#[utoipa::path(
    post,
    path = "/api/client/proxys/create/{hs_name}/{vm_uuid}",
    tag = "network",
    operation_id = "addProxy",
    params(VmPath),
    request_body = ProxyBody,
    responses((status = 200, description = "The new binding.", body = ReplyOf<CreatedProxyReply>), ChangeRefusals)
)]
pub async fn proxy_add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<CreatedProxyReply> {
    let input = from_json::<ProxyBody>(body.into())?.into();
    Ok(Data(
        s.services.add_proxy(&actor, &hs, &vm, input).await?.into(),
    ))
}

/// Remove a domain binding by list index
#[utoipa::path(
    delete,
    path = "/api/client/proxys/delete/{hs_name}/{vm_uuid}/{index}",
    tag = "network",
    operation_id = "deleteProxy",
    params(VmIndexPath),
    responses((status = 200, description = "The removed binding.", body = ReplyOf<ProxyReply>), ChangeRefusals)
)]
pub async fn proxy_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIndexPath {
        hs_name: hs,
        vm_uuid: vm,
        index,
    }): Path<VmIndexPath>,
) -> ApiResult<ProxyReply> {
    Ok(Data(
        s.services
            .delete_proxy(&actor, &hs, &vm, index)
            .await?
            .into(),
    ))
}
