//! A partial host update: the keys a request names replace the stored ones,
//! every other key keeps its value, and a change that would cut existing
//! VMs off their disks, bridges or address pools is refused.

use std::collections::BTreeSet;

use crate::error::CoreError;
use crate::model::{HostConfig, Vm, VmAddress};

/// The stored config with the named top-level keys of `patch` replaced.
/// `server_pass` is never merged from storage: absent, it keeps the stored
/// (sealed) password in `check_host_input`.
pub(super) fn merge_host_patch(
    stored: &HostConfig,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<HostConfig, CoreError> {
    super::config_patch::merge(stored, patch, &["server_pass"], "config.")
}

/// Refuse a new config that existing VMs could not live with: their
/// storage path moved, or a bridge or pool they use gone. The error names
/// the VMs (operators only reach this call).
pub(super) fn refuse_orphaning(
    old: &HostConfig,
    new: &HostConfig,
    vms: &[Vm],
    addresses: &[VmAddress],
) -> Result<(), CoreError> {
    let names = |pick: &dyn Fn(&Vm) -> bool| -> Vec<String> {
        vms.iter()
            .filter(|v| pick(v))
            .map(|v| v.uuid.clone())
            .collect()
    };
    let refuse = |field: &str, what: String, uuids: Vec<String>| {
        Err(CoreError::Conflict(format!(
            "config.{field}: {what} is used by VM(s) {}; move or delete them first",
            uuids.join(", ")
        )))
    };
    if old.system_path != new.system_path && !vms.is_empty() {
        return refuse(
            "system_path",
            format!("the storage path {}", old.system_path),
            names(&|_| true),
        );
    }
    for (field, kind, old_bridge, new_bridge) in [
        ("network_nat", "nat", &old.network_nat, &new.network_nat),
        ("network_pub", "pub", &old.network_pub, &new.network_pub),
    ] {
        if old_bridge != new_bridge && !old_bridge.is_empty() {
            let users = names(&|v| v.config.nic_all.values().any(|n| n.nic_type == kind));
            if !users.is_empty() {
                return refuse(field, format!("bridge {old_bridge}"), users);
            }
        }
    }
    let new_pools = crate::ipam::parse_pools(&new.ipaddr_maps)?;
    let mut lost = BTreeSet::new();
    let mut users = BTreeSet::new();
    for a in addresses {
        let still_inside = a
            .address
            .parse()
            .is_ok_and(|ip| new_pools.iter().any(|p| p.name == a.pool && p.contains(ip)));
        if !still_inside {
            lost.insert(a.pool.clone());
            if let Some(vm) = vms.iter().find(|v| v.id == a.vm_id) {
                users.insert(vm.uuid.clone());
            }
        }
    }
    if !lost.is_empty() {
        return refuse(
            "ipaddr_maps",
            format!(
                "pool(s) {} holding their addresses",
                lost.into_iter().collect::<Vec<_>>().join(", ")
            ),
            users.into_iter().collect(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn absent_keys_keep_their_values() {
        let stored = HostConfig {
            system_path: "/srv/vms".into(),
            network_nat: "brnat0".into(),
            ports_start: 20000,
            server_pass: Some("sealed".into()),
            ..Default::default()
        };
        let patch = serde_json::json!({"ports_close": 29999});
        let merged = merge_host_patch(&stored, patch.as_object().unwrap()).unwrap();
        assert_eq!(merged.system_path, "/srv/vms");
        assert_eq!(merged.network_nat, "brnat0");
        assert_eq!(merged.ports_start, 20000);
        assert_eq!(merged.ports_close, 29999);
        assert_eq!(merged.server_pass, None, "never copied from storage");
        let bad = serde_json::json!({"ports_start": "many"});
        let err = merge_host_patch(&stored, bad.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("config.ports_start"), "{err}");
    }
}
