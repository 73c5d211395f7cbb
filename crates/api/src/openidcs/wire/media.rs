//! A VM's snapshots and backups, a host's ISO images, and the tasks that
//! back up, restore and reinstall.

use ironidc_core::engine::{BackupInfo, SnapshotInfo};
use ironidc_core::service::{IsoView, TaskStarted};
use serde::Serialize;
use utoipa::ToSchema;

/// A disk snapshot of a VM. One taken while the VM ran also holds its
/// memory: reverting to it resumes the guest where it was.
#[derive(Serialize, ToSchema)]
pub struct SnapshotReply {
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// Size of the saved memory; 0 for a snapshot of a stopped VM.
    vm_state_bytes: u64,
}

copy_fields!(SnapshotInfo => SnapshotReply { name, created_at, vm_state_bytes });

/// A snapshot a VM was reverted to.
#[derive(Serialize, ToSchema)]
pub struct SnapshotRevertedReply {
    pub snapshot: String,
    pub reverted: bool,
}

/// A deleted snapshot.
#[derive(Serialize, ToSchema)]
pub struct SnapshotDeletedReply {
    pub snapshot: String,
    pub deleted: bool,
}

/// A compressed copy of a VM's system disk.
#[derive(Serialize, ToSchema)]
pub struct BackupReply {
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// Bytes the backup file takes on the host.
    file_bytes: u64,
    /// Virtual size of the disk it copies.
    disk_bytes: u64,
}

copy_fields!(BackupInfo => BackupReply { name, created_at, file_bytes, disk_bytes });

/// A deleted backup.
#[derive(Serialize, ToSchema)]
pub struct BackupDeletedReply {
    pub backup: String,
    pub deleted: bool,
}

/// A task started in the background; `/api/system/tasker/{id}` follows it.
#[derive(Serialize, ToSchema)]
pub struct TaskStartedReply {
    task_id: i64,
    /// What it works on (the backup's name, the OS image, …).
    name: String,
}

copy_fields!(TaskStarted => TaskStartedReply { task_id, name });

/// An ISO image in a host's ISO directory.
#[derive(Serialize, ToSchema)]
pub struct IsoReply {
    /// File name in the host's ISO directory.
    name: String,
    /// The `images_maps` display name that points at it, if any.
    display: Option<String>,
    bytes: u64,
}

copy_fields!(IsoView => IsoReply { name, display, bytes });

/// What is in a VM's CD-ROM now.
#[derive(Serialize, ToSchema)]
pub struct CdromReply {
    pub vm_uuid: String,
    /// The ISO; null: empty.
    pub iso: Option<String>,
}
