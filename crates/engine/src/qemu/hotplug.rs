//! NIC hot-plug and unplug over QMP, kept in the stored definition.

use ironidc_core::engine::{EngineError, HostContext, NicSpec};

use super::QemuEngine;

#[allow(unused_variables)]
impl QemuEngine {
    pub(super) async fn nic_plug(&self, host: &HostContext, uuid: &str, nic: &NicSpec) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn nic_unplug(&self, host: &HostContext, uuid: &str, mac: &str) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }
}
