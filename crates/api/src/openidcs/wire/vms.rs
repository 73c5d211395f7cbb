//! VMs: their definition, NICs, status samples and power state, with
//! OpenIDCS's field names.

use std::collections::BTreeMap;

use ironidc_core::engine::PowerState;
use ironidc_core::model::{HwStatus, NicConfig, VmConfig};
use ironidc_core::service::{PowerOutcome, ScanReport, ScanSkip, VmStatusReport, VmView};
use serde::Serialize;
use utoipa::ToSchema;

/// OpenIDCS's name for a power state (`vm_flag`, `power_status`). The name
/// is this face's vocabulary, so it lives here and not in the core; every
/// reply computes it from the core's state.
pub fn vm_flag(state: PowerState) -> &'static str {
    match state {
        PowerState::Stopped => "STOPPED",
        PowerState::Running => "STARTED",
        PowerState::Paused => "SUSPEND",
        PowerState::Crashed => "CRASHED",
        PowerState::Unknown => "UNKNOWN",
    }
}

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

impl VmEntry {
    /// The top-level fields, for `fields=` selection (a test keeps this in
    /// step with what is serialized).
    pub const FIELDS: &'static [&'static str] = &[
        "id",
        "uuid",
        "hs_name",
        "config",
        "status",
        "state",
        "vm_flag",
        "pending_restart",
        "owner_id",
        "created_at",
        "updated_at",
    ];
}

impl From<VmView> for VmEntry {
    fn from(v: VmView) -> Self {
        let VmView {
            id,
            uuid,
            hs_name,
            config,
            state,
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
            state: state.as_str().to_string(),
            vm_flag: vm_flag(state).to_string(),
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

copy_fields!(NicConfig => NicReply { nic_type, mac_addr, ip4_addr, ip6_addr, nic_gate, nic_mask, dns_addr });

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

copy_fields!(HwStatus => HwStatusReply { ac_status, on_update, cpu_model, cpu_total, cpu_usage, mem_total, mem_usage, hdd_total, hdd_usage, flu_total, flu_usage, network_u, network_d, gpu_total, gpu_usage, cpu_time_ms, disk_read_bytes, disk_write_bytes, net_rx_bytes, net_tx_bytes, source });

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
            task_id,
        } = p;
        Self {
            action: action.to_string(),
            state: state.as_str().to_string(),
            vm_flag: vm_flag(state).to_string(),
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
            state,
            pending_restart,
            current,
            history,
        } = r;
        Self {
            power_status: vm_flag(state).to_string(),
            state: state.as_str().to_string(),
            pending_restart,
            current: current.into(),
            history: history.into_iter().map(HwStatusReply::from).collect(),
        }
    }
}

/// A deleted VM.
#[derive(Serialize, ToSchema)]
pub struct DeletedVmReply {
    pub vm_uuid: String,
    pub deleted: bool,
}

/// A NIC just plugged in, its MAC filled in.
#[derive(Serialize, ToSchema)]
pub struct PluggedNicReply {
    pub name: String,
    pub nic: NicReply,
}

/// A NIC just unplugged.
#[derive(Serialize, ToSchema)]
pub struct UnpluggedNicReply {
    pub name: String,
    pub deleted: bool,
}

/// What a scan of a host found and imported.
#[derive(Serialize, ToSchema)]
pub struct ScanReply {
    /// VMs found on the host.
    scanned: usize,
    /// How many were imported.
    added: usize,
    /// The imported VMs' `vm_uuid`s.
    added_vms: Vec<String>,
    /// VMs found but not imported, with the reason.
    skipped: Vec<ScanSkipReply>,
    /// Only VMs whose name starts with this were considered.
    prefix_filter: String,
}

impl From<ScanReport> for ScanReply {
    fn from(r: ScanReport) -> Self {
        let ScanReport {
            scanned,
            added,
            added_vms,
            skipped,
            prefix_filter,
        } = r;
        Self {
            scanned,
            added,
            added_vms,
            skipped: skipped.into_iter().map(ScanSkipReply::from).collect(),
            prefix_filter,
        }
    }
}

/// A VM a scan did not import.
#[derive(Serialize, ToSchema)]
pub struct ScanSkipReply {
    vm_uuid: String,
    reason: String,
}

copy_fields!(ScanSkip => ScanSkipReply { vm_uuid, reason });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_flag_names_every_state_as_openidcs_does() {
        for (state, flag) in [
            (PowerState::Stopped, "STOPPED"),
            (PowerState::Running, "STARTED"),
            (PowerState::Paused, "SUSPEND"),
            (PowerState::Crashed, "CRASHED"),
            (PowerState::Unknown, "UNKNOWN"),
        ] {
            assert_eq!(vm_flag(state), flag);
        }
    }

    #[test]
    fn the_field_list_is_what_a_vm_entry_serializes() {
        let entry = VmEntry::from(VmView {
            id: 1,
            uuid: "u".into(),
            hs_name: "h".into(),
            config: Default::default(),
            state: PowerState::Stopped,
            pending_restart: false,
            status: None,
            owner_id: None,
            created_at: 0,
            updated_at: 0,
        });
        let serde_json::Value::Object(map) = serde_json::to_value(&entry).unwrap_or_default()
        else {
            panic!("a VM entry is an object");
        };
        let mut serialized: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut listed = VmEntry::FIELDS.to_vec();
        serialized.sort_unstable();
        listed.sort_unstable();
        assert_eq!(serialized, listed);
    }
}
