//! NIC hot-plug and unplug over QMP, kept in the stored definition.
//!
//! The QEMU ids of a NIC come from its MAC (`NicIds`), so the device of a NIC
//! is found again from the definition alone, whether it was on the command
//! line or hot-plugged. Plugging is immediate; unplugging is a request the
//! guest must acknowledge (ACPI), so it is confirmed by polling until the
//! device is gone, and the definition only changes once it is.

use std::time::{Duration, Instant};

use ironidc_core::engine::{EngineError, HostContext, NicSpec};
use serde_json::{json, Value};

use super::accel::Accel;
use super::command_line::{mac_hex, NicIds, QemuCommandLine};
use super::qmp::QmpClient;
use super::vm_dir::VmDir;
use super::{process, taps, QemuEngine};

/// Timeout of one QMP exchange.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the guest has to release an unplugged NIC.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(15);
const UNPLUG_POLL: Duration = Duration::from_millis(200);
/// Where QEMU lists the devices that have an id.
const PERIPHERALS: &str = "/machine/peripheral";

impl QemuEngine {
    /// Add `nic` to the definition and, when QEMU runs, to the VM. If the
    /// live part fails, the definition is restored.
    pub(super) async fn nic_plug(
        &self,
        host: &HostContext,
        uuid: &str,
        nic: &NicSpec,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let _guard = self.lock_vm(uuid).await;
        dir.require().await?;
        let old = dir.read_spec().await?;
        if old.nics.iter().any(|n| same_mac(&n.mac, &nic.mac)) {
            return Err(EngineError::InvalidState {
                state: "already using this MAC",
                action: "plugging a NIC",
            });
        }
        let mut new = old.clone();
        new.nics.push(nic.clone());
        // Checks the MAC (the QEMU ids derive from it) before anything changes.
        QemuCommandLine::for_vm(&new, &dir, Accel::Tcg)?;
        let ids = NicIds::of(&nic.mac).ok_or_else(|| EngineError::NicNotFound(nic.mac.clone()))?;
        dir.write_spec(&new).await?;
        if process::live_pid(&dir.pidfile(), uuid).is_some() {
            if let Err(e) = hot_plug(&dir, nic, &ids).await {
                if let Err(w) = dir.write_spec(&old).await {
                    tracing::warn!(uuid, error = %w, "could not restore the definition after a failed hot-plug");
                }
                return Err(e);
            }
        }
        tracing::info!(uuid, mac = %nic.mac, "nic plugged");
        Ok(())
    }

    /// Remove the NIC with `mac` from the VM (the guest must release it) and
    /// then from the definition.
    pub(super) async fn nic_unplug(
        &self,
        host: &HostContext,
        uuid: &str,
        mac: &str,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let _guard = self.lock_vm(uuid).await;
        dir.require().await?;
        let mut spec = dir.read_spec().await?;
        let Some(pos) = spec.nics.iter().position(|n| same_mac(&n.mac, mac)) else {
            return Err(EngineError::NicNotFound(mac.to_string()));
        };
        let nic = spec.nics.remove(pos);
        if process::live_pid(&dir.pidfile(), uuid).is_some() {
            hot_unplug(&dir, &nic, UNPLUG_TIMEOUT).await?;
        }
        taps::remove_tap(&nic).await;
        dir.write_spec(&spec).await?;
        tracing::info!(uuid, mac = %nic.mac, "nic unplugged");
        Ok(())
    }
}

/// The tap (bridged NIC), the netdev, then the device; each step undone if
/// a later one fails.
async fn hot_plug(dir: &VmDir, nic: &NicSpec, ids: &NicIds) -> Result<(), EngineError> {
    let tap = taps::ensure_tap(nic).await?;
    let result = add_netdev_and_device(dir, nic, ids, tap.as_deref()).await;
    if result.is_err() && tap.is_some() {
        taps::remove_tap(nic).await;
    }
    result
}

async fn add_netdev_and_device(
    dir: &VmDir,
    nic: &NicSpec,
    ids: &NicIds,
    tap: Option<&str>,
) -> Result<(), EngineError> {
    let mut qmp = QmpClient::connect(&dir.qmp_socket(), QMP_TIMEOUT).await?;
    // The same backends as on the command line (command_line.rs).
    let netdev = match tap {
        Some(tap) => json!({
            "type": "tap", "id": ids.netdev, "ifname": tap,
            "script": "no", "downscript": "no",
        }),
        None => json!({"type": "user", "id": ids.netdev, "restrict": true}),
    };
    qmp.execute("netdev_add", Some(netdev)).await?;
    let device = json!({
        "driver": "virtio-net-pci", "id": ids.device, "netdev": ids.netdev,
        "mac": nic.mac, "romfile": "",
    });
    if let Err(e) = qmp.execute("device_add", Some(device)).await {
        if let Err(d) = qmp
            .execute("netdev_del", Some(json!({"id": ids.netdev})))
            .await
        {
            tracing::warn!(netdev = %ids.netdev, error = %d, "could not remove the netdev of a failed hot-plug");
        }
        return Err(e);
    }
    Ok(())
}

/// `device_del`, wait for the device to be gone, then `netdev_del`. A guest
/// that never acknowledges (no OS, no ACPI hot-plug support, paused) leaves
/// the device in place: an error, and the caller keeps the NIC defined.
async fn hot_unplug(dir: &VmDir, nic: &NicSpec, timeout: Duration) -> Result<(), EngineError> {
    let ids = NicIds::of(&nic.mac).ok_or_else(|| EngineError::NicNotFound(nic.mac.clone()))?;
    let mut qmp = QmpClient::connect(&dir.qmp_socket(), QMP_TIMEOUT).await?;
    match qmp
        .execute("device_del", Some(json!({"id": ids.device})))
        .await
    {
        Ok(_) => {}
        // Defined while the VM ran (applied at next start): nothing to unplug.
        Err(EngineError::Qmp(m)) if m.contains("DeviceNotFound") => {}
        Err(e) => return Err(e),
    }
    // The monitor serves one client at a time: reconnect for each poll so
    // state queries from elsewhere are not locked out for the whole wait.
    drop(qmp);
    let started = Instant::now();
    while device_present(dir, &ids.device).await? {
        if started.elapsed() >= timeout {
            tracing::info!(uuid = dir.uuid(), mac = %nic.mac, "guest did not release the nic");
            return Err(EngineError::Qmp(format!(
                "the guest did not release NIC {} within {} s (it must acknowledge the unplug; the NIC stays defined)",
                nic.mac,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(UNPLUG_POLL).await;
    }
    let mut qmp = QmpClient::connect(&dir.qmp_socket(), QMP_TIMEOUT).await?;
    if let Err(e) = qmp
        .execute("netdev_del", Some(json!({"id": ids.netdev})))
        .await
    {
        // Gone already, or never made (see above): the device is what mattered.
        tracing::debug!(netdev = %ids.netdev, error = %e, "netdev_del");
    }
    Ok(())
}

async fn device_present(dir: &VmDir, id: &str) -> Result<bool, EngineError> {
    let mut qmp = QmpClient::connect(&dir.qmp_socket(), QMP_TIMEOUT).await?;
    let children = qmp
        .execute("qom-list", Some(json!({ "path": PERIPHERALS })))
        .await?;
    Ok(children.as_array().is_some_and(|list| {
        list.iter()
            .any(|c| c.get("name").and_then(Value::as_str) == Some(id))
    }))
}

/// MACs compare by their digits (`52:54:00:AB:…` is `52-54-00-ab-…`).
fn same_mac(a: &str, b: &str) -> bool {
    match (mac_hex(a), mac_hex(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn macs_compare_by_digits() {
        assert!(same_mac("52:54:00:AB:cd:01", "52-54-00-ab-CD-01"));
        assert!(!same_mac("52:54:00:ab:cd:01", "52:54:00:ab:cd:02"));
        assert!(same_mac("junk", "JUNK"));
    }
}
