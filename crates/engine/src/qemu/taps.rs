//! Taps of bridged NICs: made (or re-attached) before QEMU starts, so a
//! host reboot or a re-created bridge heals at the next start, and removed
//! with the VM.

use ironidc_core::engine::{EngineError, VmSpec};
use ironidc_net::links;

use super::command_line::tap_of;

pub(super) async fn ensure_taps(spec: &VmSpec) -> Result<(), EngineError> {
    for nic in &spec.nics {
        let (Some(bridge), Some(tap)) = (&nic.bridge, tap_of(nic)) else {
            continue;
        };
        links::ensure_tap(&tap, bridge)
            .await
            .map_err(|e| EngineError::Unavailable(format!("tap {tap} on bridge {bridge}: {e}")))?;
    }
    Ok(())
}

pub(super) async fn remove_taps(spec: &VmSpec) {
    for tap in spec.nics.iter().filter_map(tap_of) {
        if let Err(e) = links::delete_link(&tap).await {
            tracing::warn!(%tap, error = %e, "could not remove a tap");
        }
    }
}
