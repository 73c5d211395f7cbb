//! Hosts: their configuration, address pools, plan and status.

use std::collections::BTreeMap;

use ironidc_core::engine::{HostDetails, StorageUsage};
use ironidc_core::ipam::IpPool;
use ironidc_core::model::{HostConfig, PortSpan, ServerPlan};
use ironidc_core::service::{HostStatusReport, HostView, StatusSource};
use serde::Serialize;
use utoipa::ToSchema;

use super::vms::HwStatusReply;

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
    reserved_ports: Vec<PortSpanReply>,
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
                .into_iter()
                .map(PortSpanReply::from)
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

copy_fields!(IpPool => IpPoolReply { vers, kind, from, nums, gate, mask, dns });

/// Per-VM maxima on a host (0: the engine's default).
#[derive(Serialize, ToSchema)]
pub struct ServerPlanReply {
    cpu_num: u32,
    /// MB.
    mem_num: u64,
    /// MB.
    hdd_num: u64,
}

copy_fields!(ServerPlan => ServerPlanReply { cpu_num, mem_num, hdd_num });

/// A deleted host.
#[derive(Serialize, ToSchema)]
pub struct DeletedHostReply {
    pub hs_name: String,
    pub deleted: bool,
}

/// A port (`22`) or an inclusive range of ports (`"8000-8100"`), as hosts
/// are configured with them.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PortSpanReply {
    Port(u16),
    /// `first-last`.
    Range(String),
}

impl From<PortSpan> for PortSpanReply {
    fn from(p: PortSpan) -> Self {
        let PortSpan { first, last } = p;
        match first == last {
            true => Self::Port(first),
            false => Self::Range(format!("{first}-{last}")),
        }
    }
}

/// A host's status: the latest sample, where it came from and how old it
/// is, and figures read on each request.
#[derive(Serialize, ToSchema)]
pub struct HostStatusReply {
    /// Null when there is no sample yet.
    status: Option<HwStatusReply>,
    source: StatusSourceReply,
    /// Unix seconds of the sample.
    cached_at: i64,
    age_seconds: i64,
    /// Load, uptime, storage paths and sensors; null when the engine
    /// cannot tell.
    details: Option<HostDetailsReply>,
}

impl From<HostStatusReport> for HostStatusReply {
    fn from(r: HostStatusReport) -> Self {
        let HostStatusReport {
            status,
            source,
            cached_at,
            age_seconds,
            details,
        } = r;
        Self {
            status: status.map(HwStatusReply::from),
            source: source.into(),
            cached_at,
            age_seconds,
            details: details.map(HostDetailsReply::from),
        }
    }
}

/// Where a host's status sample comes from.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusSourceReply {
    /// The sampler's latest.
    Cached,
    /// Taken for this request.
    Fresh,
    /// No sample yet.
    NoData,
}

impl From<StatusSource> for StatusSourceReply {
    fn from(s: StatusSource) -> Self {
        match s {
            StatusSource::Cached => Self::Cached,
            StatusSource::Fresh => Self::Fresh,
            StatusSource::NoData => Self::NoData,
        }
    }
}

/// Figures of a host beyond its sample; null where the host cannot tell.
#[derive(Serialize, ToSchema)]
pub struct HostDetailsReply {
    cpu_model: String,
    cpu_count: u64,
    load_1: Option<f64>,
    load_5: Option<f64>,
    load_15: Option<f64>,
    uptime_secs: Option<u64>,
    kernel: Option<String>,
    /// One entry per storage path (VMs, images, backups, ISOs).
    storage: Vec<StorageUsageReply>,
    /// `[sensor, °C]` pairs; empty on hosts without sensors.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    temperatures: Vec<(String, f64)>,
}

impl From<HostDetails> for HostDetailsReply {
    fn from(d: HostDetails) -> Self {
        let HostDetails {
            cpu_model,
            cpu_count,
            load_1,
            load_5,
            load_15,
            uptime_secs,
            kernel,
            storage,
            temperatures,
        } = d;
        Self {
            cpu_model,
            cpu_count,
            load_1,
            load_5,
            load_15,
            uptime_secs,
            kernel,
            storage: storage.into_iter().map(StorageUsageReply::from).collect(),
            temperatures,
        }
    }
}

/// The size and use of one of a host's storage paths.
#[derive(Serialize, ToSchema)]
pub struct StorageUsageReply {
    /// `vms`, `images`, `backups` or `isos`.
    role: String,
    path: String,
    /// MB; null when the path does not exist (yet).
    total_mb: Option<u64>,
    used_mb: Option<u64>,
}

copy_fields!(StorageUsage => StorageUsageReply { role, path, total_mb, used_mb });

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn status_keeps_openidcs_shapes() {
        let report = HostStatusReport {
            status: None,
            source: StatusSource::NoData,
            cached_at: 0,
            age_seconds: 0,
            details: Some(HostDetails {
                temperatures: vec![("cpu".into(), 41.5)],
                ..HostDetails::default()
            }),
        };
        let v = serde_json::to_value(HostStatusReply::from(report)).unwrap();
        assert_eq!(v["status"], json!(null));
        assert_eq!(v["source"], json!("no_data"));
        assert_eq!(v["details"]["temperatures"], json!([["cpu", 41.5]]));
        assert_eq!(v["details"]["load_5"], json!(null));
    }

    #[test]
    fn reserved_ports_are_numbers_or_ranges() {
        let ports: Vec<PortSpanReply> = ["22", "8000-8100"]
            .into_iter()
            .map(|p| p.parse::<PortSpan>().unwrap().into())
            .collect();
        assert_eq!(
            serde_json::to_value(ports).unwrap(),
            json!([22, "8000-8100"])
        );
    }
}
