//! The VM fields OpenIDCS clients send on create and update, as they send
//! them: numbers as numbers or strings, `flu_rst` as a number or as
//! OpenIDCS's `[days, Mbps, last reset]`, and fields ironidc does not model
//! (data disks, VNC port and password, GPU count, per-VM owner masks),
//! which are ignored with a logged note rather than refused.

use std::collections::BTreeMap;

use ironidc_core::model::{NicConfig, VmConfig};
use ironidc_core::service::VmPatch;
use serde::Deserialize;

use crate::lenient::{opt_number, opt_text};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct VmBody {
    #[serde(default, deserialize_with = "opt_text")]
    vm_uuid: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    vm_name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    os_name: Option<String>,
    #[serde(default)]
    cdrom: Option<String>,
    #[serde(default, deserialize_with = "opt_number")]
    cpu_num: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    cpu_per: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    mem_num: Option<u64>,
    #[serde(default, deserialize_with = "opt_number")]
    hdd_num: Option<u64>,
    #[serde(default, deserialize_with = "opt_number")]
    hdd_iop: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    gpu_mem: Option<u64>,
    #[serde(default, deserialize_with = "opt_number")]
    speed_u: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    speed_d: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    nat_num: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    web_num: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    flu_num: Option<u64>,
    /// Days between traffic resets, or `[days, Mbps, last reset]`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    flu_rst: Option<TrafficReset>,
    #[serde(default, deserialize_with = "opt_number")]
    bak_num: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    iso_num: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    pci_num: Option<u32>,
    #[serde(default, deserialize_with = "opt_number")]
    usb_num: Option<u32>,
    #[serde(default)]
    nic_all: Option<BTreeMap<String, NicBody>>,
    #[serde(default, deserialize_with = "opt_text")]
    dns1: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    dns2: Option<String>,
    /// Everything else: logged by name (values may be secrets) and dropped.
    #[serde(flatten)]
    ignored: BTreeMap<String, serde_json::Value>,
}

/// One NIC (`nic_all.<name>`); `dns_addr` may be one address or a list.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct NicBody {
    nic_type: String,
    mac_addr: String,
    ip4_addr: String,
    ip6_addr: String,
    nic_gate: String,
    nic_mask: String,
    dns_addr: OneOrMany,
}

#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Default for OneOrMany {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl From<NicBody> for NicConfig {
    fn from(n: NicBody) -> Self {
        NicConfig {
            nic_type: n.nic_type,
            mac_addr: n.mac_addr,
            ip4_addr: n.ip4_addr,
            ip6_addr: n.ip6_addr,
            nic_gate: n.nic_gate,
            nic_mask: n.nic_mask,
            dns_addr: match n.dns_addr {
                OneOrMany::One(a) if a.trim().is_empty() => Vec::new(),
                OneOrMany::One(a) => vec![a],
                OneOrMany::Many(v) => v,
            },
        }
    }
}

/// `flu_rst`: the traffic reset period in days, as a number, or as
/// OpenIDCS's `[days, Mbps after the cap, last reset]`, of which ironidc
/// keeps the period (the billing model owns the rest).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TrafficReset {
    Days(#[serde(deserialize_with = "opt_number")] Option<u32>),
    Triple(Vec<serde_json::Value>),
}

impl TrafficReset {
    fn days(self) -> Result<Option<u32>, ironidc_core::CoreError> {
        match self {
            TrafficReset::Days(d) => Ok(d),
            TrafficReset::Triple(v) => match v.first() {
                None => Ok(None),
                Some(first) => {
                    crate::decode::from_json::<Days>(serde_json::json!({ "flu_rst": first }))
                        .map(|d| d.flu_rst)
                }
            },
        }
    }
}

#[derive(Deserialize)]
struct Days {
    #[serde(default, deserialize_with = "opt_number")]
    flu_rst: Option<u32>,
}

impl VmBody {
    fn note_ignored(&self, what: &str) {
        crate::lenient::note_ignored(&format!("OpenIDCS VM {what}"), &self.ignored);
    }

    fn default_dns(&self) -> Vec<String> {
        [&self.dns1, &self.dns2]
            .into_iter()
            .flatten()
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .collect()
    }

    fn nics(nics: Option<BTreeMap<String, NicBody>>) -> Option<BTreeMap<String, NicConfig>> {
        nics.map(|m| m.into_iter().map(|(k, v)| (k, v.into())).collect())
    }

    /// The definition of a new VM and the DNS servers for its NICs.
    pub fn into_create(self) -> Result<(VmConfig, Vec<String>), ironidc_core::CoreError> {
        self.note_ignored("create");
        let dns = self.default_dns();
        let config = VmConfig {
            vm_uuid: self.vm_uuid.unwrap_or_default(),
            vm_name: self.vm_name.unwrap_or_default(),
            os_name: self.os_name.unwrap_or_default(),
            cpu_num: self.cpu_num.unwrap_or_default(),
            cpu_per: self.cpu_per.unwrap_or_default(),
            mem_num: self.mem_num.unwrap_or_default(),
            hdd_num: self.hdd_num.unwrap_or_default(),
            hdd_iop: self.hdd_iop.unwrap_or_default(),
            gpu_mem: self.gpu_mem.unwrap_or_default(),
            speed_u: self.speed_u.unwrap_or_default(),
            speed_d: self.speed_d.unwrap_or_default(),
            nat_num: self.nat_num.unwrap_or_default(),
            web_num: self.web_num.unwrap_or_default(),
            flu_num: self.flu_num.unwrap_or_default(),
            flu_rst: match self.flu_rst {
                Some(r) => r.days()?.unwrap_or_default(),
                None => 0,
            },
            bak_num: self.bak_num.unwrap_or_default(),
            iso_num: self.iso_num.unwrap_or_default(),
            pci_num: self.pci_num.unwrap_or_default(),
            usb_num: self.usb_num.unwrap_or_default(),
            nic_all: Self::nics(self.nic_all).unwrap_or_default(),
            cdrom: self.cdrom.unwrap_or_default(),
        };
        Ok((config, dns))
    }

    /// The fields an update names.
    pub fn into_patch(self) -> Result<VmPatch, ironidc_core::CoreError> {
        self.note_ignored("update");
        let default_dns = self.default_dns();
        Ok(VmPatch {
            vm_uuid: self.vm_uuid,
            os_name: self.os_name,
            cdrom: self.cdrom,
            vm_name: self.vm_name,
            cpu_num: self.cpu_num,
            cpu_per: self.cpu_per,
            mem_num: self.mem_num,
            hdd_num: self.hdd_num,
            hdd_iop: self.hdd_iop,
            gpu_mem: self.gpu_mem,
            speed_u: self.speed_u,
            speed_d: self.speed_d,
            nat_num: self.nat_num,
            web_num: self.web_num,
            flu_num: self.flu_num,
            flu_rst: match self.flu_rst {
                Some(r) => r.days()?,
                None => None,
            },
            bak_num: self.bak_num,
            iso_num: self.iso_num,
            pci_num: self.pci_num,
            usb_num: self.usb_num,
            nic_all: Self::nics(self.nic_all),
            default_dns,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Result<VmBody, ironidc_core::CoreError> {
        crate::decode::from_json(v)
    }

    #[test]
    fn what_billing_modules_send_is_accepted() {
        let b = body(serde_json::json!({
            "vm_uuid": "", "vm_name": "web 1", "os_name": "debian12",
            "cpu_num": "2", "mem_num": 2048, "hdd_num": "20480", "cpu_per": "50",
            "speed_u": "10", "speed_d": 10, "flu_num": "512000", "flu_rst": [31, 10, 1700000000],
            "nat_num": "2", "web_num": "", "dns1": "1.1.1.1", "dns2": "",
            "dat_num": "1", "dat_all": "20480", "hdd_all": {}, "iso_all": {}, "own_all": ["bob"],
            "vc_port": 5901, "vc_pass": "secret", "gpu_num": 0,
            "nic_all": {"nic0": {"nic_type": "nat", "dns_addr": "9.9.9.9"}}
        }))
        .unwrap();
        assert_eq!(b.ignored.len(), 8, "{:?}", b.ignored.keys());
        let (c, dns) = b.into_create().unwrap();
        assert_eq!(
            (c.cpu_num, c.mem_num, c.hdd_num, c.cpu_per),
            (2, 2048, 20480, 50)
        );
        assert_eq!(
            (c.flu_num, c.flu_rst, c.nat_num, c.web_num),
            (512000, 31, 2, 0)
        );
        assert_eq!(c.vm_name, "web 1");
        assert_eq!(dns, vec!["1.1.1.1".to_string()]);
        assert_eq!(c.nic_all["nic0"].dns_addr, vec!["9.9.9.9".to_string()]);
    }

    #[test]
    fn an_invalid_value_is_refused_naming_its_field() {
        let e = body(serde_json::json!({"cpu_num": "two"})).unwrap_err();
        assert!(e.to_string().starts_with("cpu_num:"), "{e}");
        let e = body(serde_json::json!({"flu_rst": ["x"]}))
            .unwrap()
            .into_patch()
            .unwrap_err();
        assert!(e.to_string().starts_with("flu_rst:"), "{e}");
    }

    #[test]
    fn a_patch_names_only_what_was_sent() {
        let p = body(serde_json::json!({"mem_num": "1024", "flu_rst": 7}))
            .unwrap()
            .into_patch()
            .unwrap();
        assert_eq!(
            p,
            VmPatch {
                mem_num: Some(1024),
                flu_rst: Some(7),
                ..VmPatch::default()
            }
        );
    }
}
