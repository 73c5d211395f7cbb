//! Full compressed backups of a VM's system disk into the host's backup path.

use ironidc_core::engine::{BackupInfo, EngineError, HostContext, ProgressSink};

use super::QemuEngine;

#[allow(unused_variables)]
impl QemuEngine {
    pub(super) async fn backup_create(&self, host: &HostContext, uuid: &str, name: &str, progress: &dyn ProgressSink) -> Result<BackupInfo, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn backup_list(&self, host: &HostContext, uuid: &str) -> Result<Vec<BackupInfo>, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn backup_restore(&self, host: &HostContext, uuid: &str, name: &str, progress: &dyn ProgressSink) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn backup_delete(&self, host: &HostContext, uuid: &str, name: &str) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }
}
