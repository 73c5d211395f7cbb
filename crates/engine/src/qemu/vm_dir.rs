//! The per-VM directory `<vms_dir>/<uuid>/` and what lives in it.
//!
//! ```text
//! vm.json      the definition used at the next start (a serialized VmSpec)
//! disk.qcow2   linked clone of the base image
//! qmp.sock     QMP monitor          vnc.sock   VNC console
//! qga.sock     guest agent channel  serial.log first serial port
//! qemu.pid     pid of the running QEMU (written by QEMU itself)
//! ```

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use ironidc_core::engine::{EngineError, HostContext, VmSpec};

const SPEC_FILE: &str = "vm.json";

#[derive(Debug, Clone)]
pub(crate) struct VmDir {
    uuid: String,
    dir: PathBuf,
}

impl VmDir {
    /// The directory of `uuid` on `host`. The path is made absolute because
    /// QEMU changes its working directory to `/` when it daemonizes, and the
    /// paths we hand it (sockets, backing files) must still resolve later.
    pub fn new(host: &HostContext, uuid: &str) -> Result<Self, EngineError> {
        check_name(uuid)?;
        let vms_dir = std::path::absolute(&host.vms_dir)
            .map_err(|e| EngineError::io(host.vms_dir.display().to_string(), e))?;
        Ok(Self {
            uuid: uuid.to_string(),
            dir: vms_dir.join(uuid),
        })
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }
    pub fn path(&self) -> &Path {
        &self.dir
    }
    pub fn spec_file(&self) -> PathBuf {
        self.dir.join(SPEC_FILE)
    }
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn vnc_socket(&self) -> PathBuf {
        self.dir.join("vnc.sock")
    }
    pub fn qga_socket(&self) -> PathBuf {
        self.dir.join("qga.sock")
    }
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    /// The NoCloud seed (a small FAT volume labelled CIDATA), when written.
    pub fn seed_image(&self) -> PathBuf {
        self.dir.join("seed.img")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    pub async fn exists(&self) -> bool {
        tokio::fs::metadata(&self.dir)
            .await
            .map(|m| m.is_dir())
            .unwrap_or(false)
    }

    /// `VmNotFound` unless the directory exists.
    pub async fn require(&self) -> Result<(), EngineError> {
        if self.exists().await {
            Ok(())
        } else {
            Err(EngineError::VmNotFound(self.uuid.clone()))
        }
    }

    pub async fn read_spec(&self) -> Result<VmSpec, EngineError> {
        let path = self.spec_file();
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(EngineError::VmNotFound(self.uuid.clone()))
            }
            Err(e) => return Err(EngineError::io(path.display().to_string(), e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            EngineError::io(
                path.display().to_string(),
                std::io::Error::new(ErrorKind::InvalidData, e),
            )
        })
    }

    /// Replace vm.json atomically (write a temporary file, then rename), so a
    /// crash mid-write never leaves a VM without a readable definition.
    pub async fn write_spec(&self, spec: &VmSpec) -> Result<(), EngineError> {
        let path = self.spec_file();
        let tmp = self.dir.join(format!("{SPEC_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(spec).map_err(|e| {
            EngineError::io(
                tmp.display().to_string(),
                std::io::Error::new(ErrorKind::InvalidData, e),
            )
        })?;
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| EngineError::io(tmp.display().to_string(), e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| EngineError::io(path.display().to_string(), e))
    }
}

/// Names arrive validated by the core; refuse anything that could still
/// leave `vms_dir` (a separator, `..`, an empty or hidden name) all the same.
pub(crate) fn check_name(name: &str) -> Result<(), EngineError> {
    let unsafe_name = name.is_empty()
        || name.starts_with('.')
        || name.contains('/')
        || name.contains("..")
        || name.contains('\0');
    if unsafe_name {
        return Err(EngineError::io(
            name.to_string(),
            std::io::Error::new(
                ErrorKind::InvalidInput,
                "refusing a name that is not a plain path component",
            ),
        ));
    }
    Ok(())
}

/// Removes a directory created by a multi-step operation unless the
/// operation succeeded and disarmed it: whatever step fails (or panics, or is
/// cancelled), nothing half-made is left behind.
pub(crate) struct RemoveOnDrop {
    path: Option<PathBuf>,
}

impl RemoveOnDrop {
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }
    pub fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Synchronous on purpose: Drop cannot await, and this is rare.
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "rolled back a half-created vm directory")
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "rollback could not remove directory")
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_escape() {
        for bad in ["", "..", "a/../b", "a/b", ".hidden", "x..y", "nul\0"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["vm1", "a.b-c_d", "0abc"] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn rollback_guard_removes_unless_disarmed() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        drop(RemoveOnDrop::new(a.clone()));
        RemoveOnDrop::new(b.clone()).disarm();
        assert!(!a.exists());
        assert!(b.exists());
    }
}
