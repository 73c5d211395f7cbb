//! Domain types shared by every face: hosts, VMs, tasks, log entries and
//! hardware status samples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::PowerState;

/// A hardware status sample, with OpenIDCS's `HWStatus` field names.
/// Sizes are MiB, usages are percent (CPU) or MiB (memory, disk),
/// `network_u`/`network_d` are KB/s over the last interval; the byte
/// counters after them are totals since the VM (or guest) started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HwStatus {
    pub ac_status: String,
    pub on_update: i64,
    pub cpu_model: String,
    pub cpu_total: u64,
    pub cpu_usage: f64,
    pub mem_total: u64,
    pub mem_usage: u64,
    pub hdd_total: u64,
    pub hdd_usage: u64,
    pub flu_total: u64,
    pub flu_usage: u64,
    pub network_u: u64,
    pub network_d: u64,
    pub gpu_total: u64,
    pub gpu_usage: u64,
    /// CPU time of the VM's QEMU process, ms.
    pub cpu_time_ms: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    /// Where the figures come from: `host` (QMP and the QEMU process),
    /// `guest` (the guest's reporter), or `host+guest` (merged).
    pub source: String,
}

/// One NIC of a VM as the API describes it (`nic_all.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NicConfig {
    pub nic_type: String,
    pub mac_addr: String,
    pub ip4_addr: String,
    pub ip6_addr: String,
    pub nic_gate: String,
    pub nic_mask: String,
    pub dns_addr: Vec<String>,
}

/// Host configuration in OpenIDCS shape. `server_pass` is write-only: the
/// service never returns it, and the store keeps it encrypted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    pub server_addr: String,
    pub server_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pass: Option<String>,
    pub server_port: u16,
    pub server_area: String,
    pub filter_name: String,
    /// The directory of OS images (`system_maps` names files in it).
    pub images_path: String,
    pub dvdrom_path: String,
    /// Where VM disks are stored.
    pub system_path: String,
    pub backup_path: String,
    pub extern_path: String,
    pub launch_path: String,
    /// Name of the NAT bridge (private subnet, masqueraded). Empty: NAT NICs
    /// use QEMU's isolated user-mode network.
    pub network_nat: String,
    /// Name of the public bridge. Empty: no public NICs.
    pub network_pub: String,
    /// An interface enslaved to the public bridge (bridged public addresses).
    /// Empty: the host routes the public pools itself (their gateways sit on
    /// the bridge).
    pub network_pub_uplink: String,
    /// IP pools: name -> pool (`vers`, `type`, `from`, `nums`, `gate`, `mask`, `dns`).
    pub ipaddr_maps: BTreeMap<String, crate::ipam::IpPool>,
    pub ports_start: u16,
    pub ports_close: u16,
    pub remote_port: u16,
    /// Maximum number of VMs on this host (0 = unlimited).
    pub limits_nums: u32,
    pub public_addr: Vec<String>,
    /// OS images: display name -> (file name in `images_path`, minimum disk GB).
    pub system_maps: BTreeMap<String, (String, u64)>,
    /// ISO images: display name -> file name in `dvdrom_path`.
    pub images_maps: BTreeMap<String, String>,
    /// Per-VM maxima on this host: `cpu_num`, `mem_num` (MB), `hdd_num` (MB).
    pub server_plan: ServerPlan,
    /// Ports no forward may use on this host, besides those host processes
    /// listen on and the controller's own: `22`, `"3306"`, `"8000-8100"`.
    pub reserved_ports: Vec<PortSpan>,
    pub extend_data: serde_json::Value,
}

/// A port or an inclusive range of ports: written `22` or `"8000-8100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpan {
    pub first: u16,
    pub last: u16,
}

impl PortSpan {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::str::FromStr for PortSpan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{s:?} is not a port or range like 8000-8100"))
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(s)?, port(s)?),
        };
        if first > last {
            return Err(format!("{s:?}: the range ends before it starts"));
        }
        Ok(Self { first, last })
    }
}

impl Serialize for PortSpan {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            ser.serialize_u16(self.first)
        } else {
            ser.serialize_str(&format!("{}-{}", self.first, self.last))
        }
    }
}

impl<'de> Deserialize<'de> for PortSpan {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        // Billing scripts send numbers as strings and the other way round.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let text = match Raw::deserialize(de)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Upper bounds for one VM on a host. Zero means "the engine's default"
/// (host CPU count, host memory, 2 TiB disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerPlan {
    pub cpu_num: u32,
    pub mem_num: u64,
    pub hdd_num: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub id: i64,
    pub name: String,
    /// Engine key (`qemu`).
    pub engine: String,
    pub enabled: bool,
    pub config: HostConfig,
    pub created_at: i64,
}

/// The stored definition of a VM (everything the API accepts on create/update).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VmConfig {
    pub vm_uuid: String,
    /// A display name (billing systems send one); free text, never a path.
    pub vm_name: String,
    pub os_name: String,
    pub cpu_num: u32,
    pub cpu_per: u32,
    pub mem_num: u64,
    pub hdd_num: u64,
    pub hdd_iop: u32,
    pub gpu_mem: u64,
    pub speed_u: u32,
    pub speed_d: u32,
    pub nat_num: u32,
    pub web_num: u32,
    pub flu_num: u64,
    pub flu_rst: u32,
    pub bak_num: u32,
    pub iso_num: u32,
    pub pci_num: u32,
    pub usb_num: u32,
    pub nic_all: BTreeMap<String, NicConfig>,
    /// The ISO file (a name in the host's `dvdrom_path`) in the CD-ROM;
    /// empty: no disc. Changed with the ISO endpoints, not by update.
    pub cdrom: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub id: i64,
    pub host_id: i64,
    pub hs_name: String,
    pub uuid: String,
    pub config: VmConfig,
    /// Last known power state (reconciled with the engine).
    pub state: PowerState,
    /// A definition change waits for the next start.
    pub pending_restart: bool,
    /// Latest status sample, kept on the row so lists need one query.
    pub last_status: Option<HwStatus>,
    /// Guest password sealed by `SecretBox`; never shown by any face.
    pub os_pass_sealed: Option<String>,
    /// The user the VM belongs to; `None` for the operator's own VMs.
    pub owner_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Running,
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub kind: String,
    pub hs_name: Option<String>,
    pub vm_uuid: Option<String>,
    pub actor: String,
    pub step: String,
    pub status: TaskStatus,
    pub progress: u8,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The controller process running it (see `ClusterStore::controller`):
    /// start-up recovery settles only tasks whose controller is gone.
    /// `None` on tasks made before controllers were recorded.
    pub controller: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    pub ts: i64,
    pub actor: String,
    /// The user behind `actor`, when it was a user.
    pub user_id: Option<i64>,
    pub source_ip: String,
    pub face: String,
    pub action: String,
    pub hs_name: Option<String>,
    pub target: Option<String>,
    pub ok: bool,
    pub message: String,
}

/// A status sample of a VM kept in its history.
#[derive(Debug, Clone, PartialEq)]
pub struct VmStatusSample {
    pub ts: i64,
    pub state: PowerState,
    pub status: HwStatus,
}

/// An address held by a VM (from a host pool). Listed by the `ipaddr`
/// endpoints in `id` order; the first of each version on a NIC is the one
/// `nic_all` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmAddress {
    pub id: i64,
    pub host_id: i64,
    pub vm_id: i64,
    pub nic: String,
    /// `ipv4` or `ipv6`.
    pub vers: String,
    pub address: String,
    pub prefix: u8,
    pub gateway: String,
    pub pool: String,
    pub description: String,
    pub created_at: i64,
}

/// A port forward of a VM. `protocol` is `tcp`, `udp` or `both`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRule {
    pub id: i64,
    pub host_id: i64,
    pub vm_id: i64,
    pub protocol: String,
    pub external_port: u16,
    pub internal_ip: String,
    pub internal_port: u16,
    pub description: String,
    pub created_at: i64,
}

/// A domain bound to a VM through the reverse proxy. The key is sealed by
/// `SecretBox` and never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyBinding {
    pub id: i64,
    pub host_id: i64,
    pub vm_id: i64,
    pub domain: String,
    pub backend_ip: String,
    pub backend_port: u16,
    pub ssl_enabled: bool,
    /// `letsencrypt`, `custom` or `self_signed` (empty without SSL).
    pub ssl_type: String,
    pub cert_pem: Option<String>,
    pub key_sealed: Option<String>,
    pub cert_not_after: Option<i64>,
    /// Why the last issuance failed, if it did.
    pub cert_error: Option<String>,
    pub description: String,
    pub created_at: i64,
}
