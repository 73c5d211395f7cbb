//! Taps of bridged NICs: made (or re-attached) before QEMU starts or a NIC
//! is hot-plugged, so a host reboot or a re-created bridge heals at the next
//! start, and removed with the VM or the NIC.

use ironidc_core::engine::{EngineError, NicSpec, VmSpec};
use ironidc_net::links;

use super::command_line::tap_of;

pub(super) async fn ensure_taps(spec: &VmSpec) -> Result<(), EngineError> {
    for nic in &spec.nics {
        ensure_tap(nic).await?;
    }
    Ok(())
}

/// The tap of one bridged NIC, made and attached to its bridge; `None` for
/// a NIC without a bridge (user-mode network, no tap).
pub(super) async fn ensure_tap(nic: &NicSpec) -> Result<Option<String>, EngineError> {
    let (Some(bridge), Some(tap)) = (&nic.bridge, tap_of(nic)) else {
        return Ok(None);
    };
    links::ensure_tap(&tap, bridge)
        .await
        .map_err(|e| EngineError::Unavailable(format!("tap {tap} on bridge {bridge}: {e}")))?;
    Ok(Some(tap))
}

pub(super) async fn remove_taps(spec: &VmSpec) {
    for nic in &spec.nics {
        remove_tap(nic).await;
    }
}

/// Remove the tap of one NIC, if it has one; a failure is only logged (a
/// leftover tap is harmless and is reused by a NIC with the same MAC).
pub(super) async fn remove_tap(nic: &NicSpec) {
    let Some(tap) = tap_of(nic) else {
        return;
    };
    if let Err(e) = links::delete_link(&tap).await {
        tracing::warn!(%tap, error = %e, "could not remove a tap");
    }
}
