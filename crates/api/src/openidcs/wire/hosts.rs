//! Hosts: their configuration, address pools and plan.

use std::collections::BTreeMap;

use ironidc_core::ipam::IpPool;
use ironidc_core::model::{HostConfig, ServerPlan};
use ironidc_core::service::HostView;
use serde::Serialize;
use utoipa::ToSchema;

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

/// A deleted host.
#[derive(Serialize, ToSchema)]
pub struct DeletedHostReply {
    pub hs_name: String,
    pub deleted: bool,
}
