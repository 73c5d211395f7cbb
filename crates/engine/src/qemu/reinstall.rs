//! Reinstall: a new system disk (a fresh linked clone of an image), the VM
//! directory and everything else in it (seed, sockets) kept.

use ironidc_core::engine::{EngineError, HostContext, ProgressSink, VmSpec};

use super::backups::RemoveFileOnDrop;
use super::command_line::QemuCommandLine;
use super::vm_dir::VmDir;
use super::{linked_clone, Accel, QemuEngine};

/// The new disk is built next to the old one (same filesystem, so the final
/// rename is atomic) and only replaces it once complete.
const NEW_DISK: &str = "disk.qcow2.reinstall";

impl QemuEngine {
    /// The old disk, with its internal snapshots, is replaced only once the
    /// new one exists: on any error before that it stays untouched.
    pub(super) async fn reinstall(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, &spec.uuid)?;
        let _lock = self.lock_vm(&spec.uuid).await;
        dir.require().await?;
        progress.report("check", 5);
        let (pid, state) = self.observe(&dir).await;
        if pid.is_some() {
            return Err(EngineError::InvalidState {
                state: state.as_str(),
                action: "reinstall",
            });
        }
        // The new definition must be one that can start.
        QemuCommandLine::for_vm(spec, &dir, Accel::Tcg)?;
        let base = Self::base_image(host, &spec.os_image).await?;

        let new_disk = dir.path().join(NEW_DISK);
        let guard = RemoveFileOnDrop::new(new_disk.clone());
        // A leftover of an interrupted reinstall would make qemu-img fail.
        match tokio::fs::remove_file(&new_disk).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::io(new_disk.display().to_string(), e)),
        }
        progress.report("clone disk", 20);
        linked_clone::create(&self.opts.qemu_img, &base, &new_disk, spec.hdd_mb).await?;
        progress.report("replace disk", 70);
        let disk = dir.disk();
        tokio::fs::rename(&new_disk, &disk)
            .await
            .map_err(|e| EngineError::io(disk.display().to_string(), e))?;
        guard.disarm();
        progress.report("write definition", 85);
        dir.write_spec(spec).await?;
        progress.report("reinstalled", 100);
        tracing::info!(uuid = %spec.uuid, host = %host.hs_name, base = %base.display(), "vm reinstalled");
        Ok(())
    }
}
