//! `/api/client/*`: VMs by `hs_name` and `vm_uuid`.

use std::collections::BTreeMap;

use axum::extract::State;
use ironidc_core::engine::PowerAction;
use ironidc_core::service::{VmCreateInput, VmUpdateInput};
use serde::{Deserialize, Serialize};

use super::docs::{ChangeRefusals, QueryRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiError, ApiResult, Data};
use super::params::{HostPath, VmIdPath, VmPath};
use super::vm_body::VmBody;
use super::wire::{DeletedVmReply, PowerReply, ScanReply, VmEntry, VmStatusReply};
use crate::decode::from_json;
use crate::field_selection::{FieldSet, Picked};
use crate::kit::{Caller, JsonObject, Path, Query};
use crate::AppState;

/// A new VM and the task that made it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedVmReply {
    vm_uuid: String,
    task_id: i64,
    vm: VmEntry,
}

/// A changed VM: whether the change applies now or at the next start.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UpdatedVmReply {
    /// `now` or `next_start`.
    applied: &'static str,
    message: String,
    task_id: i64,
    vm: VmEntry,
}

/// A page of every VM the caller may see.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VmPageReply {
    /// How many there are across all pages.
    total: u64,
    page: u32,
    page_size: u32,
    vms: Vec<VmEntry>,
}

/// `GET /api/client/detail/{hs_name}`: paging and field selection, ours.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostVmQuery {
    /// From 1 (default 1). With `page` or `page_size` the reply is a page
    /// `{total, page, page_size, vms: [VM]}`; without both, VMs by `vm_uuid`.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u32>,
    /// Comma-separated top-level fields of each VM to keep, e.g.
    /// `uuid,state,vm_flag` (default: all). An unknown name is refused.
    fields: Option<String>,
}

/// What `listVms` answers (described by hand: the four shapes overlap,
/// so they are `anyOf`, which utoipa does not derive).
pub struct HostVmListReply;

/// A VM cut to the top-level fields `fields` named: any of `VmEntry`'s.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VmEntrySelection {
    id: Option<i64>,
    uuid: Option<String>,
    hs_name: Option<String>,
    config: Option<super::wire::VmConfigReply>,
    status: Option<Vec<super::wire::HwStatusReply>>,
    state: Option<String>,
    vm_flag: Option<String>,
    pending_restart: Option<bool>,
    owner_id: Option<i64>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

/// A page of VMs cut to the fields `fields` named.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VmSelectionPage {
    /// How many there are across all pages.
    total: u64,
    page: u32,
    page_size: u32,
    vms: Vec<VmEntrySelection>,
}

impl utoipa::PartialSchema for HostVmListReply {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
        use utoipa::openapi::Ref;
        let by_uuid = |item: &str| {
            ObjectBuilder::new()
                .property_names(Some(ObjectBuilder::new().schema_type(Type::String)))
                .additional_properties(Some(Ref::from_schema_name(item)))
        };
        AnyOfBuilder::new()
            .item(by_uuid("VmEntry"))
            .item(Ref::from_schema_name("VmPageReply"))
            .item(by_uuid("VmEntrySelection"))
            .item(Ref::from_schema_name("VmSelectionPage"))
            .description(Some(
                "Without `page` and `page_size`: VMs by `vm_uuid`, as OpenIDCS has \
                 it; with either, a page `{total, page, page_size, vms}`. With \
                 `fields`, each VM holds only the fields named.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for HostVmListReply {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((VmEntry::name().into(), VmEntry::schema()));
        VmEntry::schemas(schemas);
        schemas.push((VmPageReply::name().into(), VmPageReply::schema()));
        VmPageReply::schemas(schemas);
        schemas.push((VmEntrySelection::name().into(), VmEntrySelection::schema()));
        VmEntrySelection::schemas(schemas);
        schemas.push((VmSelectionPage::name().into(), VmSelectionPage::schema()));
        VmSelectionPage::schemas(schemas);
    }
}

/// The reply of `listVms` as it is written: each VM through its field
/// selection, straight to the bytes of the reply.
pub enum HostVmList {
    ByUuid {
        vms: BTreeMap<String, VmEntry>,
        fields: Option<FieldSet>,
    },
    Page {
        total: u64,
        page: u32,
        page_size: u32,
        vms: Vec<VmEntry>,
        fields: Option<FieldSet>,
    },
}

impl Serialize for HostVmList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
        /// A list of VMs, each through the selection.
        struct Picks<'a>(&'a [VmEntry], Option<&'a FieldSet>);
        impl Serialize for Picks<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for value in self.0 {
                    seq.serialize_element(&Picked {
                        value,
                        fields: self.1,
                    })?;
                }
                seq.end()
            }
        }
        match self {
            Self::ByUuid { vms, fields } => {
                let mut map = serializer.serialize_map(Some(vms.len()))?;
                for (uuid, value) in vms {
                    map.serialize_entry(
                        uuid,
                        &Picked {
                            value,
                            fields: fields.as_ref(),
                        },
                    )?;
                }
                map.end()
            }
            // The keys of `VmPageReply`, in its order.
            Self::Page {
                total,
                page,
                page_size,
                vms,
                fields,
            } => {
                let mut out = serializer.serialize_struct("VmPageReply", 4)?;
                out.serialize_field("total", total)?;
                out.serialize_field("page", page)?;
                out.serialize_field("page_size", page_size)?;
                out.serialize_field("vms", &Picks(vms, fields.as_ref()))?;
                out.end()
            }
        }
    }
}

/// List a host's VMs
///
/// A user's token lists only the VMs the user owns (unless it may manage all VMs).
/// Ours: `page`/`page_size` ask for a page with `total` (paged in the
/// database), and `fields` keeps only the named top-level fields of each VM.
#[utoipa::path(
    get,
    path = "/api/client/detail/{hs_name}",
    tag = "vms",
    operation_id = "listVms",
    params(HostPath, HostVmQuery),
    responses((status = 200, description = "VMs by `vm_uuid`; with `page` or `page_size`, `{total, page, page_size, vms: [VM]}`.", body = ReplyOf<HostVmListReply>), QueryRefusals)
)]
pub async fn list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    Query(q): Query<HostVmQuery>,
) -> ApiResult<HostVmList> {
    let fields = q
        .fields
        .as_deref()
        .map(|f| FieldSet::parse("fields", f, VmEntry::FIELDS))
        .transpose()?;
    if q.page.is_none() && q.page_size.is_none() {
        let vms = s.services.list_vms(&actor, &hs_name).await?;
        return Ok(Data(HostVmList::ByUuid {
            vms: vms
                .into_iter()
                .map(|v| (v.uuid.clone(), VmEntry::from(v)))
                .collect(),
            fields,
        }));
    }
    let (page, page_size, range) = page_of(q.page, q.page_size)?;
    let found = s.services.host_vm_page(&actor, &hs_name, range).await?;
    Ok(Data(HostVmList::Page {
        total: found.total,
        page,
        page_size,
        vms: found.items.into_iter().map(VmEntry::from).collect(),
        fields,
    }))
}

/// `page` (from 1, default 1) and `page_size` (1 to 1000, default 100) of
/// the OpenIDCS VM lists, and the rows they cover.
fn page_of(
    page: Option<u32>,
    page_size: Option<u32>,
) -> Result<(u32, u32, ironidc_core::accounts::Page), ApiError> {
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(100);
    if page == 0 {
        return Err(ApiError::bad_request("page: must be at least 1"));
    }
    if !(1..=1000).contains(&page_size) {
        return Err(ApiError::bad_request("page_size: must be 1 to 1000"));
    }
    let range = ironidc_core::accounts::Page {
        offset: (page - 1).saturating_mul(page_size),
        limit: page_size,
    };
    Ok((page, page_size, range))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u32>,
}

/// Every VM the caller may see, across hosts, by id
///
/// Ours, for billing systems: a page at a time (`page` from 1,
/// `page_size` up to 1000), with `total` across pages. Customers see
/// their own VMs.
#[utoipa::path(
    get,
    path = "/api/client/detail",
    tag = "vms",
    operation_id = "listAllVms",
    params(PageQuery),
    responses((status = 200, description = "`{total, page, page_size, vms: [VM]}`.", body = ReplyOf<VmPageReply>), ChangeRefusals)
)]
pub async fn list_all(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<VmPageReply> {
    let (page, page_size, range) = page_of(q.page, q.page_size)?;
    let found = s.services.all_vms(&actor, range).await?;
    Ok(Data(VmPageReply {
        total: found.total,
        page,
        page_size,
        vms: found.items.into_iter().map(VmEntry::from).collect(),
    }))
}

/// One VM by its numeric id
///
/// Ours: the VM wherever it is; its `hs_name` and `uuid` address it in
/// every other endpoint.
#[utoipa::path(
    get,
    path = "/api/client/vmid/{id}",
    tag = "vms",
    operation_id = "getVmById",
    params(VmIdPath),
    responses((status = 200, description = "The VM.", body = ReplyOf<VmEntry>), ReadRefusals)
)]
pub async fn by_id(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmIdPath { id }): Path<VmIdPath>,
) -> ApiResult<VmEntry> {
    Ok(Data(s.services.locate_vm(&actor, id).await?.into()))
}

/// One VM
#[utoipa::path(
    get,
    path = "/api/client/detail/{hs_name}/{vm_uuid}",
    tag = "vms",
    operation_id = "getVm",
    params(VmPath),
    responses((status = 200, description = "The VM.", body = ReplyOf<VmEntry>), ReadRefusals)
)]
pub async fn detail(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<VmEntry> {
    Ok(Data(s.services.get_vm(&actor, &hs, &vm).await?.into()))
}

/// Take a write-only secret out of a body before the rest is decoded.
fn take_secret(
    body: &mut serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match body.remove(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("{field}: must be a string"))),
    }
}

/// `owner` (an extension of ours): a user id, `#id`, account or billing
/// `userid`; `null` or absent for none.
fn take_owner(
    body: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<String>, ApiError> {
    match body.remove("owner") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(format!("#{n}"))),
        Some(_) => Err(ApiError::bad_request(
            "owner: must be a user id, account or userid",
        )),
    }
}

/// Create a VM (not started)
#[utoipa::path(
    post,
    path = "/api/client/create/{hs_name}",
    tag = "vms",
    operation_id = "createVm",
    params(HostPath),
    request_body = VmBody,
    responses((status = 200, description = "The new VM.", body = ReplyOf<CreatedVmReply>), ChangeRefusals)
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    JsonObject(mut body): JsonObject,
) -> ApiResult<CreatedVmReply> {
    let os_pass = take_secret(&mut body, "os_pass")?;
    let owner = take_owner(&mut body)?;
    let (config, default_dns) = from_json::<VmBody>(body.into())?.into_create()?;
    let created = s
        .services
        .create_vm(
            &actor,
            &hs_name,
            VmCreateInput {
                config,
                os_pass,
                owner,
                default_dns,
            },
        )
        .await?;
    Ok(Data(CreatedVmReply {
        vm_uuid: created.vm.uuid.clone(),
        task_id: created.task_id,
        vm: created.vm.into(),
    }))
}

/// Change a VM's definition
///
/// A partial `VmConfig`: fields present replace the stored ones, others
/// are kept. `vm_uuid`, `os_name` (use reinstall) and `cdrom` (use the
/// ISO endpoints) cannot change; disks only grow. A stopped VM takes the
/// change now (`applied: now`), a running one at its next start
/// (`applied: next_start`, `pending_restart`).
#[utoipa::path(
    put,
    path = "/api/client/update/{hs_name}/{vm_uuid}",
    tag = "vms",
    operation_id = "updateVm",
    params(VmPath),
    request_body = VmBody,
    responses((status = 200, description = "The VM after the change.", body = ReplyOf<UpdatedVmReply>), ChangeRefusals)
)]
pub async fn update(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(mut body): JsonObject,
) -> ApiResult<UpdatedVmReply> {
    let os_pass = take_secret(&mut body, "os_pass")?;
    let patch = from_json::<VmBody>(body.into())?.into_patch()?;
    let updated = s
        .services
        .update_vm(&actor, &hs, &vm, VmUpdateInput { patch, os_pass })
        .await?;
    Ok(Data(UpdatedVmReply {
        applied: updated.applied,
        message: updated.message,
        task_id: updated.task_id,
        vm: updated.vm.into(),
    }))
}

/// Delete a VM and its disks
#[utoipa::path(
    delete,
    path = "/api/client/delete/{hs_name}/{vm_uuid}",
    tag = "vms",
    operation_id = "deleteVm",
    params(VmPath),
    responses((status = 200, description = "The VM is gone.", body = ReplyOf<DeletedVmReply>), ChangeRefusals)
)]
pub async fn remove(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<DeletedVmReply> {
    s.services.delete_vm(&actor, &hs, &vm).await?;
    Ok(Data(DeletedVmReply {
        vm_uuid: vm,
        deleted: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PowerBody {
    action: String,
}

/// Start, stop, reset, pause or resume a VM
///
/// `stop` asks the guest (ACPI) and waits; a guest that does not power off in time is a 504 (use `hard_stop`).
#[utoipa::path(
    post,
    path = "/api/client/powers/{hs_name}/{vm_uuid}",
    tag = "vms",
    operation_id = "powerVm",
    params(VmPath),
    request_body = PowerBody,
    responses((status = 200, description = "The action is done.", body = ReplyOf<PowerReply>), ChangeRefusals)
)]
pub async fn power(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<PowerReply> {
    let req: PowerBody = from_json(body.into())?;
    let action = power_action(&req.action).ok_or_else(|| {
        ApiError::bad_request(
            "action: must be one of start, stop, hard_stop, reset, hard_reset, pause, resume (or S_START, S_CLOSE, H_CLOSE, S_RESET, H_RESET, S_PAUSE, S_RESUME)",
        )
    })?;
    Ok(Data(
        s.services.power_vm(&actor, &hs, &vm, action).await?.into(),
    ))
}

/// A power action by our name or by the OpenIDCS state name its billing
/// modules send (`S_START`, `H_CLOSE`, …), in any case.
fn power_action(name: &str) -> Option<PowerAction> {
    let name = name.trim();
    PowerAction::parse(&name.to_ascii_lowercase()).or(match name.to_ascii_uppercase().as_str() {
        "S_START" => Some(PowerAction::Start),
        "S_CLOSE" => Some(PowerAction::Stop),
        "H_CLOSE" => Some(PowerAction::HardStop),
        "S_RESET" => Some(PowerAction::Reset),
        "H_RESET" => Some(PowerAction::HardReset),
        "S_PAUSE" | "A_PAUSE" => Some(PowerAction::Pause),
        "S_RESUME" | "A_WAKED" => Some(PowerAction::Resume),
        _ => None,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Minutes of history.
    limit: Option<u32>,
}

/// A VM's power state, a fresh sample and recent history
#[utoipa::path(
    get,
    path = "/api/client/status/{hs_name}/{vm_uuid}",
    tag = "vms",
    operation_id = "vmStatus",
    params(VmPath, StatusQuery),
    responses((status = 200, description = "The VM's status.", body = ReplyOf<VmStatusReply>), ChangeRefusals)
)]
pub async fn status(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<VmStatusReply> {
    Ok(Data(
        s.services
            .vm_status(&actor, &hs, &vm, q.limit.unwrap_or(60))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct ScanBody {
    #[serde(default)]
    prefix: String,
}

/// Import VMs found on the host but unknown to the database
#[utoipa::path(
    post,
    path = "/api/client/scaner/{hs_name}",
    tag = "vms",
    operation_id = "scanVms",
    params(HostPath),
    request_body = ScanBody,
    responses((status = 200, description = "What was found and imported.", body = ReplyOf<ScanReply>), ChangeRefusals)
)]
pub async fn scan(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name }): Path<HostPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<ScanReply> {
    let req: ScanBody = from_json(body.into())?;
    Ok(Data(
        s.services
            .scan_vms(&actor, &hs_name, &req.prefix)
            .await?
            .into(),
    ))
}

/// `POST /api/client/owner/{hs_name}/{vm_uuid}` `{"owner": …}`: give the
/// VM to a user, or to nobody with `null` (needs `vm.all.manage`).
#[utoipa::path(
    post,
    path = "/api/client/owner/{hs_name}/{vm_uuid}",
    tag = "vms",
    operation_id = "setVmOwner",
    params(VmPath),
    request_body = serde_json::Value,
    responses((status = 200, description = "The VM with its new owner.", body = ReplyOf<VmEntry>), ChangeRefusals)
)]
pub async fn set_owner(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(mut body): JsonObject,
) -> ApiResult<VmEntry> {
    if !body.contains_key("owner") {
        return Err(ApiError::bad_request("owner: is required (null for none)"));
    }
    let owner = take_owner(&mut body)?;
    Ok(Data(
        s.services
            .set_vm_owner(&actor, &hs, &vm, owner.as_deref())
            .await?
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_actions_by_either_name() {
        assert_eq!(power_action("start"), Some(PowerAction::Start));
        assert_eq!(power_action(" Hard_Stop "), Some(PowerAction::HardStop));
        assert_eq!(power_action("S_CLOSE"), Some(PowerAction::Stop));
        assert_eq!(power_action("h_reset"), Some(PowerAction::HardReset));
        assert_eq!(power_action("A_WAKED"), Some(PowerAction::Resume));
        assert_eq!(power_action("S_BOGUS"), None);
    }
}
