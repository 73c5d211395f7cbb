//! The host configuration OpenIDCS clients send (`config` of a host create
//! or update), as they send it: numbers as numbers or strings, and keys
//! ironidc does not model (`ipaddr_ddns`, …) ignored with a logged note.

use std::collections::BTreeMap;

use ironidc_core::ipam::IpPool;
use ironidc_core::model::{PortSpan, ServerPlan};
use ironidc_core::service::HostPatch;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::lenient::{opt_number, opt_text};

/// A host's configuration; on update only the keys given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HostConfigBody {
    #[serde(default, deserialize_with = "opt_text")]
    server_addr: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    server_user: Option<String>,
    /// Write-only; never shown.
    #[serde(default, deserialize_with = "opt_text")]
    server_pass: Option<String>,
    #[serde(default, deserialize_with = "opt_number")]
    server_port: Option<u16>,
    #[serde(default, deserialize_with = "opt_text")]
    server_area: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    filter_name: Option<String>,
    /// The directory of the OS images `system_maps` names.
    #[serde(default, deserialize_with = "opt_text")]
    images_path: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    dvdrom_path: Option<String>,
    /// Where VM disks are stored.
    #[serde(default, deserialize_with = "opt_text")]
    system_path: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    backup_path: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    extern_path: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    launch_path: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    network_nat: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    network_pub: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    network_pub_uplink: Option<String>,
    #[serde(default)]
    ipaddr_maps: Option<BTreeMap<String, IpPoolBody>>,
    #[serde(default, deserialize_with = "opt_number")]
    ports_start: Option<u16>,
    #[serde(default, deserialize_with = "opt_number")]
    ports_close: Option<u16>,
    #[serde(default, deserialize_with = "opt_number")]
    remote_port: Option<u16>,
    #[serde(default, deserialize_with = "opt_number")]
    limits_nums: Option<u32>,
    #[serde(default)]
    public_addr: Option<Vec<String>>,
    /// OS images: display name -> [file in `images_path`, minimum disk GB].
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Vec<serde_json::Value>>>)]
    system_maps: Option<BTreeMap<String, (String, u64)>>,
    /// ISO images: display name -> file in `dvdrom_path`.
    #[serde(default)]
    images_maps: Option<BTreeMap<String, String>>,
    #[serde(default)]
    server_plan: Option<ServerPlanBody>,
    /// Ports no forward may use: `22` or `"8000-8100"`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    reserved_ports: Option<Vec<PortSpan>>,
    #[serde(default)]
    extend_data: Option<serde_json::Value>,
    /// Everything else: logged by name and dropped.
    #[serde(flatten)]
    #[schema(ignore)]
    ignored: BTreeMap<String, serde_json::Value>,
}

/// An address pool.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct IpPoolBody {
    /// `ipv4` or `ipv6`.
    vers: String,
    /// `nat` or `pub`.
    #[serde(rename = "type")]
    kind: String,
    from: String,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = u32)]
    nums: Option<u32>,
    gate: String,
    mask: String,
    dns: Vec<String>,
}

/// Per-VM maxima (0: the engine's default).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ServerPlanBody {
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = u32)]
    cpu_num: Option<u32>,
    /// MB.
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = u64)]
    mem_num: Option<u64>,
    /// MB.
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = u64)]
    hdd_num: Option<u64>,
}

impl HostConfigBody {
    /// The settings the body names.
    pub fn into_patch(self) -> HostPatch {
        crate::lenient::note_ignored("OpenIDCS host config", &self.ignored);
        HostPatch {
            server_pass: self.server_pass,
            server_addr: self.server_addr,
            server_user: self.server_user,
            server_port: self.server_port,
            server_area: self.server_area,
            filter_name: self.filter_name,
            images_path: self.images_path,
            dvdrom_path: self.dvdrom_path,
            system_path: self.system_path,
            backup_path: self.backup_path,
            extern_path: self.extern_path,
            launch_path: self.launch_path,
            network_nat: self.network_nat,
            network_pub: self.network_pub,
            network_pub_uplink: self.network_pub_uplink,
            ipaddr_maps: self
                .ipaddr_maps
                .map(|m| m.into_iter().map(|(k, p)| (k, p.into())).collect()),
            ports_start: self.ports_start,
            ports_close: self.ports_close,
            remote_port: self.remote_port,
            limits_nums: self.limits_nums,
            public_addr: self.public_addr,
            system_maps: self.system_maps,
            images_maps: self.images_maps,
            server_plan: self.server_plan.map(Into::into),
            reserved_ports: self.reserved_ports,
            extend_data: self.extend_data,
        }
    }
}

impl From<IpPoolBody> for IpPool {
    fn from(p: IpPoolBody) -> Self {
        IpPool {
            vers: p.vers,
            kind: p.kind,
            from: p.from,
            nums: p.nums.unwrap_or_default(),
            gate: p.gate,
            mask: p.mask,
            dns: p.dns,
        }
    }
}

impl From<ServerPlanBody> for ServerPlan {
    fn from(p: ServerPlanBody) -> Self {
        ServerPlan {
            cpu_num: p.cpu_num.unwrap_or_default(),
            mem_num: p.mem_num.unwrap_or_default(),
            hdd_num: p.hdd_num.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Update {
        config: HostConfigBody,
    }

    #[test]
    fn numbers_as_strings_and_unknown_keys() {
        let u: Update = crate::decode::from_json(serde_json::json!({"config": {
            "ports_start": "20000", "limits_nums": 10, "ipaddr_ddns": ["1.1.1.1"],
            "server_plan": {"cpu_num": "4", "mem_num": 4096},
            "ipaddr_maps": {"p": {"vers": "ipv4", "type": "nat", "from": "10.0.0.10", "nums": "50"}}
        }}))
        .unwrap();
        assert_eq!(u.config.ignored.len(), 1);
        let patch = u.config.into_patch();
        assert_eq!(
            (patch.ports_start, patch.limits_nums),
            (Some(20000), Some(10))
        );
        assert_eq!(
            patch.server_plan.map(|p| (p.cpu_num, p.mem_num)),
            Some((4, 4096))
        );
        assert_eq!(patch.ipaddr_maps.unwrap()["p"].nums, 50);
        assert_eq!(patch.images_path, None, "absent keys are not in the patch");
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let e = crate::decode::from_json::<Update>(
            serde_json::json!({"config": {"ports_start": "many"}}),
        )
        .err()
        .unwrap();
        assert!(e.to_string().starts_with("config.ports_start"), "{e}");
    }
}
