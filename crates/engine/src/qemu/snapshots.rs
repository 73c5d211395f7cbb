//! qcow2 internal snapshots of the system disk (node `disk0`).
//!
//! - VM live (running or paused: a QEMU process holds the disk): QMP snapshot
//!   jobs. `snapshot-save` stores the guest's memory in the same qcow2, so a
//!   revert (`snapshot-load`) resumes the guest exactly where it was.
//! - VM stopped: `qemu-img snapshot`, disk only (`vm_state_bytes` 0).
//!
//! Reverting a snapshot that holds memory while the VM is stopped reverts the
//! disk only: the saved memory stays in the image, unused, and the next start
//! boots the guest from the reverted disk. The other way round (a disk-only
//! snapshot into a live VM) QEMU refuses, as a running guest cannot continue
//! on a disk changed under it: stop the VM first.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ironidc_core::engine::{EngineError, HostContext, PowerState, SnapshotInfo};
use serde_json::{json, Value};

use super::block_jobs::{self, QmpCleanup, QMP_TIMEOUT};
use super::command_line::escape_opt;
use super::linked_clone::{self, ImageInfo, ImageSnapshot};
use super::vm_dir::{self, VmDir};
use super::{exec, qmp, QemuEngine};

/// The node name of the system disk (see `command_line.rs`).
pub(crate) const DISK_NODE: &str = "disk0";

/// Internal snapshot operations rewrite refcounts of the whole image; on a
/// big, fragmented disk that takes a while.
const QEMU_IMG_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(1800);

impl QemuEngine {
    pub(super) async fn snapshot_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<SnapshotInfo, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        check_snapshot_name(name)?;
        let lock = Arc::new(self.lock_vm(uuid).await);
        dir.require().await?;
        let (pid, _) = self.observe(&dir).await;
        let live = pid.is_some();
        let existing = self.snapshots_of(&dir, live).await?;
        // QEMU looks a tag up by id as well as by name: a name equal to
        // another snapshot's id would later select that other snapshot.
        if existing.iter().any(|s| s.name == name || s.id == name) {
            return Err(EngineError::SnapshotExists(name.to_string()));
        }
        if live {
            run_job(
                &dir,
                "snapshot-save",
                json!({ "tag": name, "vmstate": DISK_NODE, "devices": [DISK_NODE] }),
                Arc::clone(&lock),
            )
            .await?;
        } else {
            self.qemu_img_snapshot(&dir, "-c", name).await?;
        }
        tracing::info!(uuid, snapshot = name, live, "snapshot created");
        self.snapshots_of(&dir, live)
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .map(to_info)
            .ok_or_else(|| EngineError::Qmp(format!("snapshot {name} missing after it was taken")))
    }

    /// The VM's snapshots, oldest first (the order QEMU keeps them in).
    pub(super) async fn snapshot_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<SnapshotInfo>, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let _lock = self.lock_vm(uuid).await;
        dir.require().await?;
        let live = self.observe(&dir).await.0.is_some();
        Ok(self
            .snapshots_of(&dir, live)
            .await?
            .into_iter()
            .map(to_info)
            .collect())
    }

    pub(super) async fn snapshot_revert(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        check_snapshot_name(name)?;
        let lock = Arc::new(self.lock_vm(uuid).await);
        dir.require().await?;
        let (pid, state) = self.observe(&dir).await;
        let live = pid.is_some();
        let snapshot = find(self.snapshots_of(&dir, live).await?, name)?;
        if !live {
            self.qemu_img_snapshot(&dir, "-a", name).await?;
            tracing::info!(uuid, snapshot = name, "disk reverted (vm stopped)");
            return Ok(());
        }
        if snapshot.vm_state_size == 0 {
            return Err(EngineError::InvalidState {
                state: state.as_str(),
                action: "revert to a disk-only snapshot",
            });
        }
        // QEMU stops the guest for the load and restarts it only if it ran
        // before and the load succeeded. After a failed load we leave it
        // stopped, as QEMU's own loadvm does: its disk may be reverted and
        // its memory half restored (say, the memory size changed since the
        // snapshot), so running on could only do harm.
        let loaded = run_job(
            &dir,
            "snapshot-load",
            json!({ "tag": name, "vmstate": DISK_NODE, "devices": [DISK_NODE] }),
            Arc::clone(&lock),
        )
        .await;
        let socket = dir.qmp_socket();
        let running = || async {
            let status = qmp::command(&socket, "query-status", None, QMP_TIMEOUT).await?;
            Ok::<_, EngineError>(status.get("status").and_then(Value::as_str) == Some("running"))
        };
        if let Err(e) = loaded {
            if state == PowerState::Running && !running().await.unwrap_or(false) {
                let detail = match e {
                    EngineError::Qmp(m) => m,
                    other => other.to_string(),
                };
                return Err(EngineError::Qmp(format!(
                    "{detail}; the guest is left stopped in an undefined state: hard_stop it"
                )));
            }
            return Err(e);
        }
        if state == PowerState::Running && !running().await? {
            qmp::command(&socket, "cont", None, QMP_TIMEOUT).await?;
        }
        tracing::info!(uuid, snapshot = name, "vm reverted with its memory");
        Ok(())
    }

    pub(super) async fn snapshot_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        check_snapshot_name(name)?;
        let lock = Arc::new(self.lock_vm(uuid).await);
        dir.require().await?;
        let live = self.observe(&dir).await.0.is_some();
        find(self.snapshots_of(&dir, live).await?, name)?;
        if live {
            run_job(
                &dir,
                "snapshot-delete",
                json!({ "tag": name, "devices": [DISK_NODE] }),
                Arc::clone(&lock),
            )
            .await?;
        } else {
            self.qemu_img_snapshot(&dir, "-d", name).await?;
        }
        tracing::info!(uuid, snapshot = name, live, "snapshot deleted");
        Ok(())
    }

    /// The internal snapshots of the system disk: from QEMU while it holds
    /// the disk (its view is the current one), from the file otherwise.
    async fn snapshots_of(
        &self,
        dir: &VmDir,
        live: bool,
    ) -> Result<Vec<ImageSnapshot>, EngineError> {
        if live {
            Ok(live_disk_info(&dir.qmp_socket()).await?.snapshots)
        } else {
            Ok(
                linked_clone::info(&self.opts.qemu_img, &dir.disk(), Some("qcow2"))
                    .await?
                    .snapshots,
            )
        }
    }

    /// `qemu-img snapshot <flag> <name>` on the disk of a stopped VM. The
    /// format is pinned through `--image-opts` (`snapshot` has no `-f`), so a
    /// guest-written disk is never probed.
    async fn qemu_img_snapshot(
        &self,
        dir: &VmDir,
        flag: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let mut image = OsString::from("driver=qcow2,file.driver=file,file.filename=");
        image.push(escape_opt(dir.disk().as_os_str()));
        let args: Vec<OsString> = vec![
            "snapshot".into(),
            "-q".into(),
            flag.into(),
            name.into(),
            "--image-opts".into(),
            image,
        ];
        exec::run(&self.opts.qemu_img, args, QEMU_IMG_SNAPSHOT_TIMEOUT)
            .await
            .map(drop)
    }
}

/// What QEMU reports about the image of node `disk0` (`query-block`):
/// virtual size, snapshots.
pub(crate) async fn live_disk_info(socket: &Path) -> Result<ImageInfo, EngineError> {
    let blocks = qmp::command(socket, "query-block", None, QMP_TIMEOUT).await?;
    let image = blocks
        .as_array()
        .into_iter()
        .flatten()
        .map(|device| &device["inserted"])
        .find(|inserted| inserted["node-name"] == DISK_NODE)
        .map(|inserted| inserted["image"].clone())
        .ok_or_else(|| EngineError::Qmp(format!("query-block lists no node {DISK_NODE}")))?;
    serde_json::from_value(image)
        .map_err(|e| EngineError::Qmp(format!("unexpected query-block image of {DISK_NODE}: {e}")))
}

/// Start a snapshot job and wait for it; the job is dismissed on every path
/// (in the background, still holding the VM lock, if the caller goes away).
async fn run_job(
    dir: &VmDir,
    command: &str,
    mut arguments: Value,
    lock: Arc<tokio::sync::OwnedMutexGuard<()>>,
) -> Result<(), EngineError> {
    let socket = dir.qmp_socket();
    let id = block_jobs::unique_id("snap");
    arguments["job-id"] = json!(id);
    let mut cleanup = QmpCleanup::new(socket.clone());
    cleanup.hold(lock);
    qmp::command(&socket, command, Some(arguments), QMP_TIMEOUT).await?;
    cleanup.job(&id);
    let waited = block_jobs::wait(&socket, &id, |_| {}).await;
    let cleaned = cleanup.finish().await;
    waited?;
    cleaned
}

/// A name that could leave its directory is refused here, as "not found", so
/// the error never echoes a path.
fn check_snapshot_name(name: &str) -> Result<(), EngineError> {
    vm_dir::check_name(name).map_err(|_| EngineError::SnapshotNotFound(name.to_string()))
}

fn find(snapshots: Vec<ImageSnapshot>, name: &str) -> Result<ImageSnapshot, EngineError> {
    snapshots
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| EngineError::SnapshotNotFound(name.to_string()))
}

fn to_info(s: ImageSnapshot) -> SnapshotInfo {
    SnapshotInfo {
        name: s.name,
        created_at: s.date_sec,
        vm_state_bytes: s.vm_state_size,
    }
}
