//! The OpenIDCS face's own reply types for hosts and VMs, with OpenIDCS's
//! field names. Each is built from a core view by destructuring it whole,
//! so a field added to or renamed in the core fails to compile here
//! instead of changing this API unnoticed.

use std::collections::BTreeMap;

use ironidc_core::ipam::IpPool;
use ironidc_core::model::{HostConfig, HwStatus, LogEntry, NicConfig, ServerPlan, Task, VmConfig};
use ironidc_core::service::{HostView, PowerOutcome, Stats, VmStatusReport, VmView};
use serde::Serialize;
use utoipa::ToSchema;

/// A VM.
#[derive(Serialize, ToSchema)]
pub struct VmEntry {
    /// The numeric id (ours; stable, for billing systems).
    id: i64,
    /// The VM's uuid (its name), as `vm_uuid` elsewhere.
    uuid: String,
    hs_name: String,
    config: VmConfigReply,
    /// The latest status sample, when there is one.
    status: Vec<HwStatusReply>,
    /// `running`, `stopped`, `paused`, `unknown`…
    state: String,
    /// OpenIDCS's power state name (`STARTED`, `STOPPED`, `SUSPEND`…).
    vm_flag: String,
    /// A definition change waits for the next start.
    pending_restart: bool,
    /// The owning user's id; null for the operator's VMs.
    owner_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<VmView> for VmEntry {
    fn from(v: VmView) -> Self {
        let VmView {
            id,
            uuid,
            hs_name,
            config,
            state,
            vm_flag,
            pending_restart,
            status,
            owner_id,
            created_at,
            updated_at,
        } = v;
        Self {
            id,
            uuid,
            hs_name,
            config: config.into(),
            status: status.into_iter().map(HwStatusReply::from).collect(),
            state: state.to_string(),
            vm_flag: vm_flag.to_string(),
            pending_restart,
            owner_id,
            created_at,
            updated_at,
        }
    }
}

/// A VM's definition. Passwords are never shown.
#[derive(Serialize, ToSchema)]
pub struct VmConfigReply {
    vm_uuid: String,
    /// A display name.
    vm_name: String,
    /// The OS image's display name (a key of the host's `system_maps`).
    os_name: String,
    cpu_num: u32,
    /// CPU cap in percent (0: none).
    cpu_per: u32,
    /// Memory, MB.
    mem_num: u64,
    /// System disk, MB.
    hdd_num: u64,
    hdd_iop: u32,
    gpu_mem: u64,
    /// Upload, Mbps.
    speed_u: u32,
    /// Download, Mbps.
    speed_d: u32,
    /// Port forwards allowed.
    nat_num: u32,
    /// Domain bindings allowed.
    web_num: u32,
    /// Traffic allowance, MB.
    flu_num: u64,
    /// Days between traffic resets.
    flu_rst: u32,
    bak_num: u32,
    iso_num: u32,
    pci_num: u32,
    usb_num: u32,
    nic_all: BTreeMap<String, NicReply>,
    /// The ISO in the CD-ROM; empty: none.
    cdrom: String,
}

impl From<VmConfig> for VmConfigReply {
    fn from(c: VmConfig) -> Self {
        let VmConfig {
            vm_uuid,
            vm_name,
            os_name,
            cpu_num,
            cpu_per,
            mem_num,
            hdd_num,
            hdd_iop,
            gpu_mem,
            speed_u,
            speed_d,
            nat_num,
            web_num,
            flu_num,
            flu_rst,
            bak_num,
            iso_num,
            pci_num,
            usb_num,
            nic_all,
            cdrom,
        } = c;
        Self {
            vm_uuid,
            vm_name,
            os_name,
            cpu_num,
            cpu_per,
            mem_num,
            hdd_num,
            hdd_iop,
            gpu_mem,
            speed_u,
            speed_d,
            nat_num,
            web_num,
            flu_num,
            flu_rst,
            bak_num,
            iso_num,
            pci_num,
            usb_num,
            nic_all: nic_all.into_iter().map(|(k, n)| (k, n.into())).collect(),
            cdrom,
        }
    }
}

/// One NIC.
#[derive(Serialize, ToSchema)]
pub struct NicReply {
    /// `nat` or `pub`.
    nic_type: String,
    mac_addr: String,
    ip4_addr: String,
    ip6_addr: String,
    nic_gate: String,
    nic_mask: String,
    dns_addr: Vec<String>,
}

impl From<NicConfig> for NicReply {
    fn from(n: NicConfig) -> Self {
        let NicConfig {
            nic_type,
            mac_addr,
            ip4_addr,
            ip6_addr,
            nic_gate,
            nic_mask,
            dns_addr,
        } = n;
        Self {
            nic_type,
            mac_addr,
            ip4_addr,
            ip6_addr,
            nic_gate,
            nic_mask,
            dns_addr,
        }
    }
}

/// OpenIDCS's HWStatus, plus ironidc's counters.
#[derive(Serialize, ToSchema)]
pub struct HwStatusReply {
    ac_status: String,
    /// Unix seconds of the sample.
    on_update: i64,
    cpu_model: String,
    cpu_total: u64,
    /// Percent.
    cpu_usage: f64,
    mem_total: u64,
    mem_usage: u64,
    hdd_total: u64,
    hdd_usage: u64,
    flu_total: u64,
    flu_usage: u64,
    network_u: u64,
    network_d: u64,
    gpu_total: u64,
    gpu_usage: u64,
    /// CPU time of the VM's QEMU process, ms.
    cpu_time_ms: u64,
    disk_read_bytes: u64,
    disk_write_bytes: u64,
    net_rx_bytes: u64,
    net_tx_bytes: u64,
    /// `host`, `guest` or `host+guest`.
    source: String,
}

impl From<HwStatus> for HwStatusReply {
    fn from(h: HwStatus) -> Self {
        let HwStatus {
            ac_status,
            on_update,
            cpu_model,
            cpu_total,
            cpu_usage,
            mem_total,
            mem_usage,
            hdd_total,
            hdd_usage,
            flu_total,
            flu_usage,
            network_u,
            network_d,
            gpu_total,
            gpu_usage,
            cpu_time_ms,
            disk_read_bytes,
            disk_write_bytes,
            net_rx_bytes,
            net_tx_bytes,
            source,
        } = h;
        Self {
            ac_status,
            on_update,
            cpu_model,
            cpu_total,
            cpu_usage,
            mem_total,
            mem_usage,
            hdd_total,
            hdd_usage,
            flu_total,
            flu_usage,
            network_u,
            network_d,
            gpu_total,
            gpu_usage,
            cpu_time_ms,
            disk_read_bytes,
            disk_write_bytes,
            net_rx_bytes,
            net_tx_bytes,
            source,
        }
    }
}

/// A host.
#[derive(Serialize, ToSchema)]
pub struct HostEntry {
    name: String,
    /// The engine (`qemu`).
    #[serde(rename = "type")]
    engine: String,
    addr: String,
    /// `active` or `inactive`.
    status: String,
    enable_host: bool,
    config: HostConfigReply,
    vm_count: i64,
    created_at: i64,
}

impl From<HostView> for HostEntry {
    fn from(h: HostView) -> Self {
        let HostView {
            name,
            engine,
            addr,
            status,
            enable_host,
            config,
            vm_count,
            created_at,
        } = h;
        Self {
            name,
            engine,
            addr,
            status: status.to_string(),
            enable_host,
            config: config.into(),
            vm_count,
            created_at,
        }
    }
}

/// A host's configuration. `server_pass` is write-only and never shown.
#[derive(Serialize, ToSchema)]
pub struct HostConfigReply {
    server_addr: String,
    server_user: String,
    server_port: u16,
    server_area: String,
    filter_name: String,
    /// The directory of the OS images `system_maps` names.
    images_path: String,
    /// The directory of ISO images.
    dvdrom_path: String,
    /// Where VM disks are stored.
    system_path: String,
    backup_path: String,
    extern_path: String,
    launch_path: String,
    /// The NAT bridge; empty: NAT NICs use QEMU's user-mode network.
    network_nat: String,
    /// The public bridge; empty: no public NICs.
    network_pub: String,
    /// An interface enslaved to the public bridge.
    network_pub_uplink: String,
    ipaddr_maps: BTreeMap<String, IpPoolReply>,
    ports_start: u16,
    ports_close: u16,
    remote_port: u16,
    /// At most this many VMs (0: no limit).
    limits_nums: u32,
    public_addr: Vec<String>,
    /// OS images: display name -> [file in `images_path`, minimum disk GB].
    #[schema(value_type = BTreeMap<String, Vec<serde_json::Value>>)]
    system_maps: BTreeMap<String, (String, u64)>,
    /// ISO images: display name -> file in `dvdrom_path`.
    images_maps: BTreeMap<String, String>,
    server_plan: ServerPlanReply,
    /// Ports no forward may use: `22` or `"8000-8100"`.
    reserved_ports: Vec<serde_json::Value>,
    extend_data: serde_json::Value,
}

impl From<HostConfig> for HostConfigReply {
    fn from(c: HostConfig) -> Self {
        let HostConfig {
            server_addr,
            server_user,
            server_pass: _,
            server_port,
            server_area,
            filter_name,
            images_path,
            dvdrom_path,
            system_path,
            backup_path,
            extern_path,
            launch_path,
            network_nat,
            network_pub,
            network_pub_uplink,
            ipaddr_maps,
            ports_start,
            ports_close,
            remote_port,
            limits_nums,
            public_addr,
            system_maps,
            images_maps,
            server_plan,
            reserved_ports,
            extend_data,
        } = c;
        Self {
            server_addr,
            server_user,
            server_port,
            server_area,
            filter_name,
            images_path,
            dvdrom_path,
            system_path,
            backup_path,
            extern_path,
            launch_path,
            network_nat,
            network_pub,
            network_pub_uplink,
            ipaddr_maps: ipaddr_maps
                .into_iter()
                .map(|(k, p)| (k, p.into()))
                .collect(),
            ports_start,
            ports_close,
            remote_port,
            limits_nums,
            public_addr,
            system_maps,
            images_maps,
            server_plan: server_plan.into(),
            reserved_ports: reserved_ports
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
            extend_data,
        }
    }
}

/// An address pool.
#[derive(Serialize, ToSchema)]
pub struct IpPoolReply {
    /// `ipv4` or `ipv6`.
    vers: String,
    /// `nat` or `pub`: which NICs draw from it.
    #[serde(rename = "type")]
    kind: String,
    /// The first address.
    from: String,
    /// How many addresses.
    nums: u32,
    gate: String,
    mask: String,
    dns: Vec<String>,
}

impl From<IpPool> for IpPoolReply {
    fn from(p: IpPool) -> Self {
        let IpPool {
            vers,
            kind,
            from,
            nums,
            gate,
            mask,
            dns,
        } = p;
        Self {
            vers,
            kind,
            from,
            nums,
            gate,
            mask,
            dns,
        }
    }
}

/// Per-VM maxima on a host (0: the engine's default).
#[derive(Serialize, ToSchema)]
pub struct ServerPlanReply {
    cpu_num: u32,
    /// MB.
    mem_num: u64,
    /// MB.
    hdd_num: u64,
}

impl From<ServerPlan> for ServerPlanReply {
    fn from(p: ServerPlan) -> Self {
        let ServerPlan {
            cpu_num,
            mem_num,
            hdd_num,
        } = p;
        Self {
            cpu_num,
            mem_num,
            hdd_num,
        }
    }
}

/// What a power action did.
#[derive(Serialize, ToSchema)]
pub struct PowerReply {
    /// The action done (`start`, `stop`, …).
    action: String,
    state: String,
    vm_flag: String,
    task_id: i64,
}

impl From<PowerOutcome> for PowerReply {
    fn from(p: PowerOutcome) -> Self {
        let PowerOutcome {
            action,
            state,
            vm_flag,
            task_id,
        } = p;
        Self {
            action: action.to_string(),
            state: state.to_string(),
            vm_flag: vm_flag.to_string(),
            task_id,
        }
    }
}

/// A VM's power state and its recent samples.
#[derive(Serialize, ToSchema)]
pub struct VmStatusReply {
    /// OpenIDCS's power state name.
    power_status: String,
    state: String,
    pending_restart: bool,
    current: HwStatusReply,
    /// Oldest first.
    history: Vec<HwStatusReply>,
}

impl From<VmStatusReport> for VmStatusReply {
    fn from(r: VmStatusReport) -> Self {
        let VmStatusReport {
            power_status,
            state,
            pending_restart,
            current,
            history,
        } = r;
        Self {
            power_status: power_status.to_string(),
            state: state.to_string(),
            pending_restart,
            current: current.into(),
            history: history.into_iter().map(HwStatusReply::from).collect(),
        }
    }
}

/// A task: every long or changing operation is one.
#[derive(Serialize, ToSchema)]
pub struct TaskReply {
    id: i64,
    /// What it does (`vm.create`, `vm.backup`, …).
    kind: String,
    hs_name: Option<String>,
    vm_uuid: Option<String>,
    /// Who asked.
    actor: String,
    /// What it is doing now.
    step: String,
    /// `running`, `succeeded` or `failed`.
    status: String,
    /// Percent.
    progress: u8,
    result: Option<serde_json::Value>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Task> for TaskReply {
    fn from(t: Task) -> Self {
        let Task {
            id,
            kind,
            hs_name,
            vm_uuid,
            actor,
            step,
            status,
            progress,
            result,
            error,
            created_at,
            updated_at,
        } = t;
        Self {
            id,
            kind,
            hs_name,
            vm_uuid,
            actor,
            step,
            status: status.as_str().to_string(),
            progress,
            result,
            error,
            created_at,
            updated_at,
        }
    }
}

/// One line of the operation log.
#[derive(Serialize, ToSchema)]
pub struct LogReply {
    id: i64,
    /// Unix seconds.
    ts: i64,
    actor: String,
    user_id: Option<i64>,
    source_ip: String,
    /// The API face the call came through.
    face: String,
    action: String,
    hs_name: Option<String>,
    target: Option<String>,
    ok: bool,
    message: String,
}

impl From<LogEntry> for LogReply {
    fn from(l: LogEntry) -> Self {
        let LogEntry {
            id,
            ts,
            actor,
            user_id,
            source_ip,
            face,
            action,
            hs_name,
            target,
            ok,
            message,
        } = l;
        Self {
            id,
            ts,
            actor,
            user_id,
            source_ip,
            face,
            action,
            hs_name,
            target,
            ok,
            message,
        }
    }
}

/// Counts of hosts and VMs.
#[derive(Serialize, ToSchema)]
pub struct StatsReply {
    host_count: i64,
    vm_count: i64,
    running_vm_count: i64,
}

impl From<Stats> for StatsReply {
    fn from(s: Stats) -> Self {
        let Stats {
            host_count,
            vm_count,
            running_vm_count,
        } = s;
        Self {
            host_count,
            vm_count,
            running_vm_count,
        }
    }
}

/// The connection test of OpenIDCS billing modules.
#[derive(Serialize, ToSchema)]
pub struct ConnectionTestReply {
    /// ironidc's version.
    pub version: String,
    #[serde(flatten)]
    pub stats: StatsReply,
}

/// A deleted VM.
#[derive(Serialize, ToSchema)]
pub struct DeletedVmReply {
    pub vm_uuid: String,
    pub deleted: bool,
}

/// A deleted host.
#[derive(Serialize, ToSchema)]
pub struct DeletedHostReply {
    pub hs_name: String,
    pub deleted: bool,
}
