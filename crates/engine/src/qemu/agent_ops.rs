//! Guest agent operations of the engine (qemu-ga over the virtio-serial channel; the
//! protocol client is `qga.rs`).

use std::time::Duration;

use ironidc_core::engine::{EngineError, ExecOutput, GuestInterface, HostContext};

use super::QemuEngine;

#[allow(unused_variables)]
impl QemuEngine {
    pub(super) async fn agent_ping(&self, host: &HostContext, uuid: &str, timeout: Duration) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn agent_set_password(&self, host: &HostContext, uuid: &str, user: &str, password: &str) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn agent_exec(&self, host: &HostContext, uuid: &str, program: &str, args: &[String], stdin: Option<&[u8]>, timeout: Duration) -> Result<ExecOutput, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn agent_write_file(&self, host: &HostContext, uuid: &str, path: &str, content: &[u8]) -> Result<(), EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn agent_read_file(&self, host: &HostContext, uuid: &str, path: &str, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }

    pub(super) async fn agent_interfaces(&self, host: &HostContext, uuid: &str) -> Result<Vec<GuestInterface>, EngineError> {
        Err(EngineError::Unavailable("not implemented yet".into()))
    }
}
