//! The host network as a whole: the plan built from every host's pools,
//! addresses and NAT rules, applied at start, after host changes and by the
//! periodic reconcile; DHCP reservations and cloud-init seeds per VM.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Services;
use crate::error::CoreError;
use crate::ipam::{IpVersion, NetKind, Pool};
use crate::model::{Host, NatRule, Vm};
use crate::network::{
    BridgePlan, DhcpPlan, DhcpReservation, ForwardProtocol, NetworkPlan, NetworkReport, PortForward,
};
use crate::store::Scope;

impl Services {
    pub(crate) fn network(&self) -> &dyn crate::network::Network {
        self.inner.network.as_ref()
    }

    /// What the kernel should hold for every host on this controller.
    pub async fn network_plan(&self) -> Result<NetworkPlan, CoreError> {
        let hosts = self.store().list_hosts().await?;
        let rules = self.store().nat_rules(Scope::All).await?;
        let mut bridges: BTreeMap<String, BridgePlan> = BTreeMap::new();
        // Remote hosts' bridges and forwards belong on those hosts, not on
        // this controller's kernel; the agent does not plan networks yet.
        let remote: Vec<i64> = hosts
            .iter()
            .filter(|h| super::hosts::is_remote(&h.host))
            .map(|h| h.host.id)
            .collect();
        for summary in hosts {
            let host = summary.host;
            if remote.contains(&host.id) {
                continue;
            }
            let Ok(pools) = Self::pools_of(&host) else {
                tracing::warn!(host = %host.name, "host has invalid IP pools; its network is skipped");
                continue;
            };
            if !host.config.network_nat.is_empty() {
                let dhcp = self.dhcp_plan(&host, &pools).await?;
                let bridge = bridges
                    .entry(host.config.network_nat.clone())
                    .or_insert_with(|| empty_bridge(&host.config.network_nat));
                for pool in pools.iter().filter(|p| p.kind == NetKind::Nat) {
                    add_gateway(bridge, pool);
                    if let IpNet::V4(net) = pool.subnet {
                        if !bridge.masquerade.contains(&net) {
                            bridge.masquerade.push(net);
                        }
                    }
                }
                if bridge.dhcp.is_none() {
                    bridge.dhcp = dhcp;
                }
            }
            if !host.config.network_pub.is_empty() {
                let bridge = bridges
                    .entry(host.config.network_pub.clone())
                    .or_insert_with(|| empty_bridge(&host.config.network_pub));
                if host.config.network_pub_uplink.is_empty() {
                    // Routed public block: the host is the guests' gateway.
                    for pool in pools.iter().filter(|p| p.kind == NetKind::Pub) {
                        add_gateway(bridge, pool);
                    }
                } else {
                    bridge.uplink = Some(host.config.network_pub_uplink.clone());
                }
            }
        }
        let mut forwards: Vec<PortForward> = rules
            .iter()
            .filter(|r| !remote.contains(&r.host_id))
            .flat_map(forwards_of)
            .collect();
        forwards.sort();
        forwards.dedup_by_key(|f| (f.protocol, f.external_port));
        Ok(NetworkPlan {
            bridges: bridges.into_values().collect(),
            forwards,
        })
    }

    /// Apply the whole plan: bridges, DHCP, masquerade and every forward.
    pub async fn reconcile_network(&self) -> Result<NetworkReport, CoreError> {
        let plan = self.network_plan().await?;
        let report = self.network().apply(&plan).await.map_err(CoreError::from)?;
        if report != NetworkReport::default() {
            tracing::info!(?report, "network reconciled");
        }
        Ok(report)
    }

    async fn dhcp_plan(&self, host: &Host, pools: &[Pool]) -> Result<Option<DhcpPlan>, CoreError> {
        let Some(pool) = pools
            .iter()
            .find(|p| p.kind == NetKind::Nat && p.vers == IpVersion::V4)
        else {
            return Ok(None);
        };
        let (IpNet::V4(subnet), IpAddr::V4(gateway)) = (pool.subnet, pool.gateway) else {
            return Ok(None);
        };
        let vms: BTreeMap<i64, Vm> = self
            .store()
            .list_vms(host.id)
            .await?
            .into_iter()
            .map(|vm| (vm.id, vm))
            .collect();
        let mut reservations = Vec::new();
        for a in self.store().addresses(Scope::Host(host.id)).await? {
            let (Some(vm), Ok(IpAddr::V4(ip))) = (vms.get(&a.vm_id), a.address.parse::<IpAddr>())
            else {
                continue;
            };
            let Some(nic) = vm.config.nic_all.get(&a.nic) else {
                continue;
            };
            let nat_nic = NetKind::parse("nic_type", &nic.nic_type).ok() == Some(NetKind::Nat);
            // One lease per NIC: its first IPv4 address.
            let first_of_nic = nic.ip4_addr == a.address;
            if nat_nic && first_of_nic && subnet.contains(&ip) {
                reservations.push(DhcpReservation {
                    mac: nic.mac_addr.clone(),
                    ip,
                    hostname: Some(super::cloud_init::hostname_of(&vm.uuid)),
                });
            }
        }
        Ok(Some(DhcpPlan {
            subnet,
            gateway,
            dns: pool.dns.clone(),
            reservations,
        }))
    }

    /// Push the DHCP reservations of a host's NAT bridge. Failures are
    /// logged: the periodic reconcile retries from the database.
    pub(crate) async fn refresh_dhcp(&self, host: &Host) {
        if host.config.network_nat.is_empty() {
            return;
        }
        let result = async {
            let pools = Self::pools_of(host)?;
            if let Some(plan) = self.dhcp_plan(host, &pools).await? {
                self.network()
                    .apply_dhcp(&host.config.network_nat, &plan)
                    .await
                    .map_err(CoreError::from)?;
            }
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(host = %host.name, error = %e, "could not update DHCP reservations");
        }
    }

    /// The seed of a VM from its stored definition, addresses and password.
    pub(crate) async fn seed_of(&self, vm: &Vm) -> Result<crate::engine::CloudInitSeed, CoreError> {
        let addresses = self.store().addresses(Scope::Vm(vm.id)).await?;
        let password = match vm.os_pass_sealed.as_deref() {
            Some(sealed) => Some(self.inner.secrets.open(sealed)?),
            None => None,
        };
        // A password stored before the rule existed may be megabytes long;
        // hashing it would take minutes, so it is left out of the seed.
        let password = password.filter(|p| match crate::validate::vm_password("os_pass", p) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(vm = %vm.uuid, error = %e, "stored password left out of the seed; set a new one");
                false
            }
        });
        let reporter = self.reporter_for(vm, &addresses).await?;
        let config = vm.config.clone();
        // SHA-512-crypt takes milliseconds of CPU: never on an async worker.
        crate::cpu_work::run("cloud-init seed", move || {
            super::cloud_init::build_seed(
                &config,
                &addresses,
                password.as_deref(),
                reporter.as_ref(),
            )
        })
        .await?
    }

    /// The reporter settings of a VM: posted from its first NIC's MAC to
    /// the controller as the guest reaches it; none when it cannot.
    async fn reporter_for(
        &self,
        vm: &Vm,
        addresses: &[crate::model::VmAddress],
    ) -> Result<Option<super::cloud_init::GuestReporter>, CoreError> {
        let Some((nic_name, nic)) = vm.config.nic_all.iter().next() else {
            return Ok(None);
        };
        let base = match &self.inner.opts.report_url {
            super::ReportUrl::Off => return Ok(None),
            super::ReportUrl::Fixed(url) => url.trim_end_matches('/').to_string(),
            super::ReportUrl::GatewayPort(port) => {
                let gateway = addresses
                    .iter()
                    .find(|a| a.nic == *nic_name && a.vers == "ipv4" && !a.gateway.is_empty())
                    .map(|a| a.gateway.clone());
                match gateway {
                    Some(g) => format!("http://{g}:{port}"),
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(super::cloud_init::GuestReporter {
            upload_url: format!("{base}/api/client/upload?nic={}", nic.mac_addr),
            secret: self.report_secret(vm).await?,
            interval_secs: self.report_every().as_secs().max(1),
        }))
    }

    /// Rewrite a VM's seed after a change; logged on failure (the guest
    /// keeps its previous seed until the next successful write).
    pub(crate) async fn write_seed(&self, host: &Host, vm: &Vm) {
        let result = async {
            let seed = self.seed_of(vm).await?;
            self.engine_of(host)?
                .write_seed(&self.host_context(host), &vm.uuid, &seed)
                .await?;
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(vm = %vm.uuid, error = %e, "could not write the cloud-init seed");
        }
    }
}

fn empty_bridge(name: &str) -> BridgePlan {
    BridgePlan {
        name: name.to_string(),
        addresses: Vec::new(),
        uplink: None,
        masquerade: Vec::new(),
        dhcp: None,
    }
}

fn add_gateway(bridge: &mut BridgePlan, pool: &Pool) {
    if let Ok(net) = IpNet::new(pool.gateway, pool.prefix_len()) {
        if !bridge.addresses.contains(&net) {
            bridge.addresses.push(net);
        }
    }
}

/// The kernel forwards of one stored rule (`both` is one TCP and one UDP).
pub(crate) fn forwards_of(rule: &NatRule) -> Vec<PortForward> {
    let Ok(internal_ip) = rule.internal_ip.parse() else {
        return Vec::new();
    };
    let protocols: &[ForwardProtocol] = match rule.protocol.as_str() {
        "tcp" => &[ForwardProtocol::Tcp],
        "udp" => &[ForwardProtocol::Udp],
        _ => &[ForwardProtocol::Tcp, ForwardProtocol::Udp],
    };
    protocols
        .iter()
        .map(|&protocol| PortForward {
            protocol,
            external_port: rule.external_port,
            internal_ip,
            internal_port: rule.internal_port,
        })
        .collect()
}
