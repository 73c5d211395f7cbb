//! qcow2 internal snapshots: with the VM's memory while it runs (QMP snapshot jobs),
//! disk only with qemu-img while it is stopped.

use ironidc_core::engine::{EngineError, HostContext, SnapshotInfo};

use super::QemuEngine;

#[allow(unused_variables)]
impl QemuEngine {
    pub(super) async fn snapshot_create(&self, host: &HostContext, uuid: &str, name: &str) -> Result<SnapshotInfo, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn snapshot_list(&self, host: &HostContext, uuid: &str) -> Result<Vec<SnapshotInfo>, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn snapshot_revert(&self, host: &HostContext, uuid: &str, name: &str) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn snapshot_delete(&self, host: &HostContext, uuid: &str, name: &str) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }
}
