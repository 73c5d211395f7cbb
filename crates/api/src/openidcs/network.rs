//! `/api/client/{natget,natadd,natdel}`, `ipaddr/*` and `proxys/*`: a VM's
//! port forwards, addresses and domain bindings. Deletes go by list index,
//! as in OpenIDCS; every list item carries its `index`.

use axum::extract::State;
use ironidc_core::service::{AddressInput, NatInput, ProxyInput};
use serde::Serialize;

use super::envelope::{ApiResult, Data};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path, Query};
use super::params::{HostPath, VmPath, VmIndexPath};
use crate::AppState;

#[derive(serde::Deserialize)]
pub struct PoolQuery {
    /// How many free addresses to list per pool (default 20, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/server/ipaddr/{hs_name}`: the host's pools, used and free.
pub async fn pools(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name: hs }): Path<HostPath>,
    Query(q): Query<PoolQuery>,
) -> ApiResult<impl Serialize> {
    let limit = q.limit.unwrap_or(20).min(1000);
    Ok(Data(s.services.pool_usage(&actor, &hs, limit).await?))
}


pub async fn nat_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath { hs_name: hs, vm_uuid: vm }): Path<VmPath>,
) -> ApiResult<impl Serialize> {
    Ok(Data(s.services.list_nat_rules(&actor, &hs, &vm).await?))
}

pub async fn nat_add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath { hs_name: hs, vm_uuid: vm }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<impl Serialize> {
    let input: NatInput = from_json(body.into())?;
    Ok(Data(
        s.services.add_nat_rule(&actor, &hs, &vm, input).await?,
    ))
}

pub async fn nat_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIndexPath { hs_name: hs, vm_uuid: vm, index }): Path<VmIndexPath>,
) -> ApiResult<impl Serialize> {
    Ok(Data(
        s.services.delete_nat_rule(&actor, &hs, &vm, index).await?,
    ))
}

pub async fn ip_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath { hs_name: hs, vm_uuid: vm }): Path<VmPath>,
) -> ApiResult<impl Serialize> {
    Ok(Data(s.services.list_addresses(&actor, &hs, &vm).await?))
}

pub async fn ip_add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath { hs_name: hs, vm_uuid: vm }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<impl Serialize> {
    let input: AddressInput = from_json(body.into())?;
    Ok(Data(s.services.add_address(&actor, &hs, &vm, input).await?))
}

pub async fn ip_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIndexPath { hs_name: hs, vm_uuid: vm, index }): Path<VmIndexPath>,
) -> ApiResult<impl Serialize> {
    Ok(Data(
        s.services.delete_address(&actor, &hs, &vm, index).await?,
    ))
}

pub async fn proxy_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath { hs_name: hs, vm_uuid: vm }): Path<VmPath>,
) -> ApiResult<impl Serialize> {
    Ok(Data(s.services.list_proxies(&actor, &hs, &vm).await?))
}

pub async fn proxy_add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath { hs_name: hs, vm_uuid: vm }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<impl Serialize> {
    let input: ProxyInput = from_json(body.into())?;
    Ok(Data(s.services.add_proxy(&actor, &hs, &vm, input).await?))
}

pub async fn proxy_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIndexPath { hs_name: hs, vm_uuid: vm, index }): Path<VmIndexPath>,
) -> ApiResult<impl Serialize> {
    Ok(Data(
        s.services.delete_proxy(&actor, &hs, &vm, index).await?,
    ))
}
