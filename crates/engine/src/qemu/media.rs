//! The CD-ROM: ISO images of the host's ISO directory, inserted and ejected live.

use ironidc_core::engine::{EngineError, HostContext, IsoFile};

use super::QemuEngine;

#[allow(unused_variables)]
impl QemuEngine {
    pub(super) async fn iso_list(&self, host: &HostContext) -> Result<Vec<IsoFile>, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn iso_set(&self, host: &HostContext, uuid: &str, iso: Option<&str>) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }
}
