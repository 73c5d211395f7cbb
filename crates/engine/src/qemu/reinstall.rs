//! Reinstall: a new system disk from an image, the VM directory kept.

use ironidc_core::engine::{EngineError, HostContext, ProgressSink, VmSpec};

use super::QemuEngine;

#[allow(unused_variables)]
impl QemuEngine {
    pub(super) async fn reinstall(&self, host: &HostContext, spec: &VmSpec, progress: &dyn ProgressSink) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }
}
