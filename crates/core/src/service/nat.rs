//! NAT port forwards of a VM (`natget`, `natadd`, `natdel`). The database row
//! and the kernel rule change together: a refused kernel transaction undoes
//! the row, and a rule is removed from the kernel before its row goes.

use std::collections::HashSet;

use super::journal::Subject;
use super::network::forwards_of;
use super::quotas::Demand;
use super::{Actor, Services};
use crate::error::CoreError;
use crate::model::{Host, NatRule};
use crate::network::{ForwardProtocol, NetworkError};
use crate::store::Scope;

/// The port range forwards draw from when the host sets none.
const DEFAULT_PORTS: (u16, u16) = (10000, 59999);

#[derive(Debug, Clone)]
pub struct NatRuleView {
    pub index: usize,
    pub protocol: String,
    pub external_port: u16,
    pub internal_ip: String,
    pub internal_port: u16,
    pub description: String,
    /// `public_addr[0]:external_port` when the host names a public address.
    pub public_endpoint: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NatInput {
    /// `tcp` (default), `udp` or `both`.
    pub protocol: String,
    /// 0: the first free port of the host's range.
    pub external_port: u32,
    pub internal_port: u32,
    /// One of the VM's addresses; empty: its first IPv4 address.
    pub internal_ip: String,
    pub description: String,
}

impl Services {
    pub async fn list_nat_rules(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<Vec<NatRuleView>, CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.nat.read", None, hs_name, vm_uuid)
            .await?;
        let rules = self.store().nat_rules(Scope::Vm(vm.id)).await?;
        Ok(rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| nat_view(&host, i, r))
            .collect())
    }

    pub async fn add_nat_rule(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: NatInput,
    ) -> Result<NatRuleView, CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.nat.write", Some("vm.nat.add"), hs_name, vm_uuid)
            .await?;
        let lock = self.host_net_lock(0);
        let _guard = lock.lock().await;
        let one = Demand {
            nat_rules: 1,
            ..Demand::default()
        };
        let checked = match self.reserve_quota(vm.owner_id, one).await {
            Ok(guard) => self
                .check_nat_input(&host, &vm, &input)
                .await
                .map(|r| (r, guard)),
            Err(e) => Err(e),
        };
        // The quota guard is held until the rule is written.
        self.run_audited(
            actor,
            "vm.nat.add",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(rule, _quota_guard), op| {
                let row = self.store().insert_nat_rule(&rule).await?;
                let services = self.clone();
                op.undo_on_failure("remove the NAT row", async move {
                    Ok(services.store().delete_nat_rule(row.id).await?)
                });
                let forwards = forwards_of(&row);
                self.network()
                    .add_forwards(&forwards)
                    .await
                    .map_err(|e| match e {
                        NetworkError::PortTaken(p) => CoreError::Conflict(format!(
                            "external_port {p} is already forwarded on this host"
                        )),
                        other => CoreError::from(other),
                    })?;
                let services = self.clone();
                op.undo_on_failure("remove the kernel forwards", async move {
                    Ok(services.network().remove_forwards(&forwards).await?)
                });
                let rules = self.store().nat_rules(Scope::Vm(vm.id)).await?;
                let index = rules.iter().position(|r| r.id == row.id).unwrap_or(0);
                Ok(nat_view(&host, index, row))
            },
            |r| serde_json::json!({"external_port": r.external_port, "protocol": r.protocol}),
        )
        .await
    }

    async fn check_nat_input(
        &self,
        host: &Host,
        vm: &crate::model::Vm,
        input: &NatInput,
    ) -> Result<NatRule, CoreError> {
        let protocol = match input.protocol.trim().to_ascii_lowercase().as_str() {
            "" | "tcp" => "tcp",
            "udp" => "udp",
            "both" | "tcp+udp" => "both",
            _ => return Err(CoreError::invalid("protocol", "must be tcp, udp or both")),
        };
        let internal_port = u16::try_from(input.internal_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| CoreError::invalid("internal_port", "must be between 1 and 65535"))?;
        if input.description.chars().count() > 200 {
            return Err(CoreError::invalid(
                "description",
                "must be at most 200 characters",
            ));
        }
        let addresses = self.store().addresses(Scope::Vm(vm.id)).await?;
        let internal_ip = if input.internal_ip.trim().is_empty() {
            addresses
                .iter()
                .find(|a| a.vers == "ipv4")
                .map(|a| a.address.clone())
                .ok_or_else(|| {
                    CoreError::invalid("internal_ip", "the VM has no IPv4 address to forward to")
                })?
        } else {
            let ip: std::net::Ipv4Addr = input
                .internal_ip
                .trim()
                .parse()
                .map_err(|_| CoreError::invalid("internal_ip", "must be an IPv4 address"))?;
            let ip = ip.to_string();
            if !addresses.iter().any(|a| a.address == ip) {
                return Err(CoreError::invalid(
                    "internal_ip",
                    format!("{ip} is not an address of this VM"),
                ));
            }
            ip
        };
        // All hosts of this controller share one kernel table, so a port is
        // taken if any rule of any host uses it with an overlapping protocol.
        let all = self.store().nat_rules(Scope::All).await?;
        let mine = all.iter().filter(|r| r.vm_id == vm.id).count();
        if vm.config.nat_num > 0 && mine >= vm.config.nat_num as usize {
            return Err(CoreError::Conflict(format!(
                "the VM has {} NAT rules, its limit (nat_num)",
                vm.config.nat_num
            )));
        }
        let (low, high) = port_range(host);
        let taken: HashSet<(u16, &str)> = all
            .iter()
            .flat_map(|r| match r.protocol.as_str() {
                "both" => vec![(r.external_port, "tcp"), (r.external_port, "udp")],
                p => vec![(r.external_port, if p == "udp" { "udp" } else { "tcp" })],
            })
            .collect();
        let clashes = |port: u16| match protocol {
            "both" => taken.contains(&(port, "tcp")) || taken.contains(&(port, "udp")),
            p => taken.contains(&(port, p)),
        };
        let listening = self.network().listening_ports();
        let protocols: &[ForwardProtocol] = match protocol {
            "tcp" => &[ForwardProtocol::Tcp],
            "udp" => &[ForwardProtocol::Udp],
            _ => &[ForwardProtocol::Tcp, ForwardProtocol::Udp],
        };
        let unavailable = |port: u16| -> Option<&'static str> {
            if self.inner.opts.controller_ports.contains(&port) {
                Some("is used by ironidc itself (API or reverse proxy)")
            } else if host.config.reserved_ports.iter().any(|r| r.contains(port)) {
                Some("is reserved on this host (reserved_ports)")
            } else if protocols.iter().any(|p| listening.contains(&(*p, port))) {
                Some("is in use by a service of the host")
            } else {
                None
            }
        };
        let external_port = if input.external_port == 0 {
            (low..=high)
                .find(|p| !clashes(*p) && unavailable(*p).is_none())
                .ok_or_else(|| CoreError::Conflict(format!("no free port left in {low}-{high}")))?
        } else {
            let port = u16::try_from(input.external_port)
                .map_err(|_| CoreError::invalid("external_port", "must be between 1 and 65535"))?;
            if port < low || port > high {
                return Err(CoreError::invalid(
                    "external_port",
                    format!("must be within this host's range {low}-{high} (or 0 to pick one)"),
                ));
            }
            if clashes(port) {
                return Err(CoreError::Conflict(format!(
                    "external_port {port}/{protocol} is already forwarded on this host"
                )));
            }
            if let Some(why) = unavailable(port) {
                return Err(CoreError::Conflict(format!("external_port {port} {why}")));
            }
            port
        };
        Ok(NatRule {
            id: 0,
            host_id: host.id,
            vm_id: vm.id,
            protocol: protocol.into(),
            external_port,
            internal_ip,
            internal_port,
            description: input.description.clone(),
            created_at: 0,
        })
    }

    pub async fn delete_nat_rule(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        index: usize,
    ) -> Result<NatRuleView, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.nat.write",
                Some("vm.nat.delete"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let lock = self.host_net_lock(0);
        let _guard = lock.lock().await;
        let rules = self.store().nat_rules(Scope::Vm(vm.id)).await?;
        let checked = rules
            .get(index)
            .cloned()
            .ok_or_else(|| CoreError::not_found("NAT rule index", index.to_string()));
        self.run_audited(
            actor,
            "vm.nat.delete",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |rule, op| {
                let forwards = forwards_of(&rule);
                self.network().remove_forwards(&forwards).await?;
                // Put the kernel rule back if the row stays, so both sides agree.
                let services = self.clone();
                op.undo_on_failure("restore the kernel forwards", async move {
                    Ok(services.network().add_forwards(&forwards).await?)
                });
                self.store().delete_nat_rule(rule.id).await?;
                Ok(nat_view(&host, index, rule))
            },
            |r| serde_json::json!({"external_port": r.external_port}),
        )
        .await
    }

    /// Remove a VM's forwards from the kernel (before the VM is deleted).
    pub(crate) async fn remove_vm_forwards(&self, vm_id: i64) -> Result<(), CoreError> {
        let rules = self.store().nat_rules(Scope::Vm(vm_id)).await?;
        let forwards: Vec<_> = rules.iter().flat_map(forwards_of).collect();
        if !forwards.is_empty() {
            self.network().remove_forwards(&forwards).await?;
        }
        Ok(())
    }
}

fn port_range(host: &Host) -> (u16, u16) {
    match (host.config.ports_start, host.config.ports_close) {
        (0, 0) => DEFAULT_PORTS,
        (start, 0) => (start.max(1), u16::MAX),
        (0, close) => (1, close),
        (start, close) => (start, close),
    }
}

fn nat_view(host: &Host, index: usize, r: NatRule) -> NatRuleView {
    NatRuleView {
        index,
        public_endpoint: host
            .config
            .public_addr
            .first()
            .map(|a| format!("{a}:{}", r.external_port)),
        protocol: r.protocol,
        external_port: r.external_port,
        internal_ip: r.internal_ip,
        internal_port: r.internal_port,
        description: r.description,
        created_at: r.created_at,
    }
}
