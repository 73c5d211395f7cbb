//! `/api/client/…` operations on a VM's disks: snapshots, backups,
//! reinstall and the CD-ROM; and the host's ISO list.

use axum::extract::State;
use ironidc_core::service::ReinstallInput;
use serde::Deserialize;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiResult, Data};
use super::params::{HostPath, VmItemPath, VmPath};
use super::wire::{
    BackupDeletedReply, BackupReply, CdromReply, IsoReply, SnapshotDeletedReply, SnapshotReply,
    SnapshotRevertedReply, TaskStartedReply,
};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path};
use crate::AppState;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NameBody {
    #[serde(default)]
    name: String,
}

/// A VM's snapshots
#[utoipa::path(
    get,
    path = "/api/client/snapshot/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "listSnapshots",
    params(VmPath),
    responses((status = 200, description = "The snapshots.", body = ReplyOf<Vec<SnapshotReply>>), ReadRefusals)
)]
pub async fn snapshot_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<Vec<SnapshotReply>> {
    let snapshots = s.services.list_snapshots(&actor, &hs, &vm).await?;
    Ok(Data(
        snapshots.into_iter().map(SnapshotReply::from).collect(),
    ))
}

/// `POST /api/client/snapshot/{hs}/{vm}` `{"name"?}`.
#[utoipa::path(
    post,
    path = "/api/client/snapshot/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "createSnapshot",
    params(VmPath),
    request_body = NameBody,
    responses((status = 200, description = "The new snapshot.", body = ReplyOf<SnapshotReply>), ChangeRefusals)
)]
pub async fn snapshot_create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<SnapshotReply> {
    let req: NameBody = from_json(body.into())?;
    Ok(Data(
        s.services
            .create_snapshot(&actor, &hs, &vm, &req.name)
            .await?
            .into(),
    ))
}

/// `POST /api/client/snapshot/{hs}/{vm}/{name}/revert`.
#[utoipa::path(
    post,
    path = "/api/client/snapshot/{hs_name}/{vm_uuid}/{name}/revert",
    tag = "disks",
    operation_id = "revertSnapshot",
    params(VmItemPath),
    responses((status = 200, description = "The VM is back at the snapshot.", body = ReplyOf<SnapshotRevertedReply>), ChangeRefusals)
)]
pub async fn snapshot_revert(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmItemPath {
        hs_name: hs,
        vm_uuid: vm,
        name,
    }): Path<VmItemPath>,
) -> ApiResult<SnapshotRevertedReply> {
    s.services.revert_snapshot(&actor, &hs, &vm, &name).await?;
    Ok(Data(SnapshotRevertedReply {
        snapshot: name,
        reverted: true,
    }))
}

/// Delete a snapshot
#[utoipa::path(
    delete,
    path = "/api/client/snapshot/{hs_name}/{vm_uuid}/{name}",
    tag = "disks",
    operation_id = "deleteSnapshot",
    params(VmItemPath),
    responses((status = 200, description = "The snapshot is gone.", body = ReplyOf<SnapshotDeletedReply>), ChangeRefusals)
)]
pub async fn snapshot_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmItemPath {
        hs_name: hs,
        vm_uuid: vm,
        name,
    }): Path<VmItemPath>,
) -> ApiResult<SnapshotDeletedReply> {
    s.services.delete_snapshot(&actor, &hs, &vm, &name).await?;
    Ok(Data(SnapshotDeletedReply {
        snapshot: name,
        deleted: true,
    }))
}

/// A VM's backups
#[utoipa::path(
    get,
    path = "/api/client/backup/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "listBackups",
    params(VmPath),
    responses((status = 200, description = "The backups.", body = ReplyOf<Vec<BackupReply>>), ReadRefusals)
)]
pub async fn backup_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<Vec<BackupReply>> {
    let backups = s.services.list_backups(&actor, &hs, &vm).await?;
    Ok(Data(backups.into_iter().map(BackupReply::from).collect()))
}

/// `POST /api/client/backup/{hs}/{vm}` `{"name"?}` → `{task_id, name}`;
/// the task (`/api/system/tasker/{id}`) shows progress.
#[utoipa::path(
    post,
    path = "/api/client/backup/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "createBackup",
    params(VmPath),
    request_body = NameBody,
    responses((status = 200, description = "The backup task has started.", body = ReplyOf<TaskStartedReply>), ChangeRefusals)
)]
pub async fn backup_create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<TaskStartedReply> {
    let req: NameBody = from_json(body.into())?;
    Ok(Data(
        s.services
            .create_backup(&actor, &hs, &vm, &req.name)
            .await?
            .into(),
    ))
}

/// `POST /api/client/backup/{hs}/{vm}/{name}/restore` → `{task_id, name}`.
#[utoipa::path(
    post,
    path = "/api/client/backup/{hs_name}/{vm_uuid}/{name}/restore",
    tag = "disks",
    operation_id = "restoreBackup",
    params(VmItemPath),
    responses((status = 200, description = "The restore task has started.", body = ReplyOf<TaskStartedReply>), ChangeRefusals)
)]
pub async fn backup_restore(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmItemPath {
        hs_name: hs,
        vm_uuid: vm,
        name,
    }): Path<VmItemPath>,
) -> ApiResult<TaskStartedReply> {
    Ok(Data(
        s.services
            .restore_backup(&actor, &hs, &vm, &name)
            .await?
            .into(),
    ))
}

/// Delete a backup
#[utoipa::path(
    delete,
    path = "/api/client/backup/{hs_name}/{vm_uuid}/{name}",
    tag = "disks",
    operation_id = "deleteBackup",
    params(VmItemPath),
    responses((status = 200, description = "The backup is gone.", body = ReplyOf<BackupDeletedReply>), ChangeRefusals)
)]
pub async fn backup_delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmItemPath {
        hs_name: hs,
        vm_uuid: vm,
        name,
    }): Path<VmItemPath>,
) -> ApiResult<BackupDeletedReply> {
    s.services.delete_backup(&actor, &hs, &vm, &name).await?;
    Ok(Data(BackupDeletedReply {
        backup: name,
        deleted: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReinstallBody {
    os_name: String,
    #[serde(default)]
    os_pass: Option<String>,
}

/// `POST /api/client/reinstall/{hs}/{vm}` `{"os_name", "os_pass"?}` →
/// `{task_id, name}`.
#[utoipa::path(
    post,
    path = "/api/client/reinstall/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "reinstallVm",
    params(VmPath),
    request_body = ReinstallBody,
    responses((status = 200, description = "The reinstall task has started (`name` is the OS).", body = ReplyOf<TaskStartedReply>), ChangeRefusals)
)]
pub async fn reinstall(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<TaskStartedReply> {
    let req: ReinstallBody = from_json(body.into())?;
    Ok(Data(
        s.services
            .reinstall_vm(
                &actor,
                &hs,
                &vm,
                ReinstallInput {
                    os_name: req.os_name,
                    os_pass: req.os_pass.filter(|p| !p.is_empty()),
                },
            )
            .await?
            .into(),
    ))
}

/// `GET /api/server/isos/{hs}`: the host's ISO directory.
#[utoipa::path(
    get,
    path = "/api/server/isos/{hs_name}",
    tag = "disks",
    operation_id = "listIsos",
    params(HostPath),
    responses((status = 200, description = "The images.", body = ReplyOf<Vec<IsoReply>>), ReadRefusals)
)]
pub async fn iso_list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(HostPath { hs_name: hs }): Path<HostPath>,
) -> ApiResult<Vec<IsoReply>> {
    let isos = s.services.list_isos(&actor, &hs).await?;
    Ok(Data(isos.into_iter().map(IsoReply::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IsoBody {
    iso: String,
}

/// `POST /api/client/iso/{hs}/{vm}` `{"iso"}`: insert (live).
#[utoipa::path(
    post,
    path = "/api/client/iso/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "insertIso",
    params(VmPath),
    request_body = IsoBody,
    responses((status = 200, description = "The disc is in.", body = ReplyOf<CdromReply>), ChangeRefusals)
)]
pub async fn iso_insert(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<CdromReply> {
    let req: IsoBody = from_json(body.into())?;
    s.services
        .set_vm_iso(&actor, &hs, &vm, Some(&req.iso))
        .await?;
    Ok(Data(CdromReply {
        vm_uuid: vm,
        iso: Some(req.iso),
    }))
}

/// `DELETE /api/client/iso/{hs}/{vm}`: eject.
#[utoipa::path(
    delete,
    path = "/api/client/iso/{hs_name}/{vm_uuid}",
    tag = "disks",
    operation_id = "ejectIso",
    params(VmPath),
    responses((status = 200, description = "The CD-ROM is empty.", body = ReplyOf<CdromReply>), ChangeRefusals)
)]
pub async fn iso_eject(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<CdromReply> {
    s.services.set_vm_iso(&actor, &hs, &vm, None).await?;
    Ok(Data(CdromReply {
        vm_uuid: vm,
        iso: None,
    }))
}
