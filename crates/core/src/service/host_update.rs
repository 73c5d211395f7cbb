//! A partial host update: the keys a request names replace the stored ones,
//! every other key keeps its value, and a change that would cut existing
//! VMs off their disks, bridges or address pools is refused.

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use crate::error::CoreError;
use crate::ipam::IpPool;
use crate::model::{HostConfig, PortSpan, ServerPlan, Vm, VmAddress};

/// Declares `HostPatch` with one optional field per host setting, and how
/// it applies, so a setting added to `HostConfig` is added here once.
macro_rules! host_patch {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// A partial change of a host's configuration: each field given
        /// replaces the stored one, every other keeps its value. A host
        /// create is a patch of the defaults.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct HostPatch {
            /// Write-only; absent keeps the stored (sealed) password.
            pub server_pass: Option<String>,
            $(pub $field: Option<$ty>,)*
        }

        impl HostPatch {
            /// `stored` with the given fields replaced. The stored password
            /// is never carried over here: `check_host_input` keeps it when
            /// none is given.
            pub fn apply_to(&self, stored: &HostConfig) -> HostConfig {
                let mut config = stored.clone();
                config.server_pass = self.server_pass.clone();
                $(
                    if let Some(value) = &self.$field {
                        config.$field = value.clone();
                    }
                )*
                config
            }

            /// A patch that names every setting: `config` replaces the
            /// stored one whole (a config import).
            pub fn whole(config: &HostConfig) -> Self {
                Self {
                    server_pass: config.server_pass.clone(),
                    $($field: Some(config.$field.clone()),)*
                }
            }
        }
    };
}

host_patch!(
    server_addr: String,
    server_user: String,
    server_port: u16,
    server_area: String,
    filter_name: String,
    images_path: String,
    dvdrom_path: String,
    system_path: String,
    backup_path: String,
    extern_path: String,
    launch_path: String,
    network_nat: String,
    network_pub: String,
    network_pub_uplink: String,
    ipaddr_maps: BTreeMap<String, IpPool>,
    ports_start: u16,
    ports_close: u16,
    remote_port: u16,
    limits_nums: u32,
    public_addr: Vec<String>,
    system_maps: BTreeMap<String, (String, u64)>,
    images_maps: BTreeMap<String, String>,
    server_plan: ServerPlan,
    reserved_ports: Vec<PortSpan>,
    extend_data: serde_json::Value,
);

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
        let patch = HostPatch {
            ports_close: Some(29999),
            ..HostPatch::default()
        };
        let merged = patch.apply_to(&stored);
        assert_eq!(merged.system_path, "/srv/vms");
        assert_eq!(merged.network_nat, "brnat0");
        assert_eq!(merged.ports_start, 20000);
        assert_eq!(merged.ports_close, 29999);
        assert_eq!(merged.server_pass, None, "never copied from storage");
    }
}
