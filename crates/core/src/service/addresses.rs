//! VM addresses from the host's IP pools: assignment on create and update,
//! the `ipaddr` endpoints, and the DHCP reservations and cloud-init seed
//! that follow every change.

use std::collections::HashSet;
use std::net::IpAddr;

use super::journal::Subject;
use super::{Actor, Services};
use crate::error::CoreError;
use crate::ipam::{self, IpVersion, NetKind, Pool};
use crate::model::{Host, Vm, VmAddress, VmConfig};
use crate::store::Scope;

/// One address of a VM as the `ipaddr/detail` endpoint shows it.
#[derive(Debug, Clone)]
pub struct AddressView {
    pub index: usize,
    pub vers: String,
    pub address: String,
    pub prefix: u8,
    pub netmask: String,
    pub gateway: String,
    pub nic: String,
    pub pool: String,
    pub description: String,
}

/// `ipaddr/create`: every field is optional except what the host cannot guess.
#[derive(Debug, Clone, Default)]
pub struct AddressInput {
    /// `ipv4` (default) or `ipv6`.
    pub vers: String,
    /// A free address inside one of the host's pools; empty: the first free one.
    pub address: String,
    /// Informational: the pool decides mask and gateway; a different value is refused.
    pub netmask: String,
    pub gateway: String,
    /// NIC name; empty: the VM's first NIC.
    pub nic: String,
    pub description: String,
}

/// A pool of a host with its usage, for billing systems picking addresses.
#[derive(Debug, Clone)]
pub struct PoolUsage {
    pub name: String,
    pub vers: &'static str,
    pub kind: &'static str,
    pub gateway: String,
    pub prefix: u8,
    pub total: usize,
    pub used: usize,
    pub free: usize,
    /// The first free addresses, in allocation order (at most `limit`).
    pub free_addresses: Vec<String>,
}

impl Services {
    /// Every pool of a host with its used and free addresses.
    pub async fn pool_usage(
        &self,
        actor: &Actor,
        hs_name: &str,
        limit: usize,
    ) -> Result<Vec<PoolUsage>, CoreError> {
        actor.require("host.server.read")?;
        let host = self.host(hs_name).await?;
        let pools = Self::pools_of(&host)?;
        let used: HashSet<IpAddr> = self
            .store()
            .addresses(Scope::Host(host.id))
            .await?
            .iter()
            .filter_map(|a| a.address.parse().ok())
            .collect();
        Ok(pools
            .iter()
            .map(|p| {
                let total = p.addresses().count();
                let in_use = p.addresses().filter(|a| used.contains(a)).count();
                PoolUsage {
                    name: p.name.clone(),
                    vers: p.vers.as_str(),
                    kind: p.kind.as_str(),
                    gateway: p.gateway.to_string(),
                    prefix: p.prefix_len(),
                    total,
                    used: in_use,
                    free: total - in_use,
                    free_addresses: p
                        .addresses()
                        .filter(|a| !used.contains(a))
                        .take(limit)
                        .map(|a| a.to_string())
                        .collect(),
                }
            })
            .collect())
    }

    /// The validated pools of a host.
    pub(crate) fn pools_of(host: &Host) -> Result<Vec<Pool>, CoreError> {
        ipam::parse_pools(&host.config.ipaddr_maps)
    }

    /// Give every NIC of `config` an address of each version its kind has
    /// pools for, then write the NICs' address fields from the rows. Rows of
    /// NICs that no longer exist are removed. Runs under the host's network
    /// lock; `vm` is the VM's row (already inserted on create).
    pub(crate) async fn sync_addresses(
        &self,
        host: &Host,
        vm: &Vm,
        config: &mut VmConfig,
    ) -> Result<(), CoreError> {
        let pools = Self::pools_of(host)?;
        let host_rows = self.store().addresses(Scope::Host(host.id)).await?;
        let mut used: HashSet<IpAddr> = host_rows
            .iter()
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let mut mine: Vec<VmAddress> = host_rows.into_iter().filter(|a| a.vm_id == vm.id).collect();

        // NICs that were removed give their addresses back, unless a rule or
        // a binding still points at one of them.
        for gone in mine.iter().filter(|a| !config.nic_all.contains_key(&a.nic)) {
            self.ensure_address_unused(vm.id, &gone.address).await?;
        }
        for gone in mine.iter().filter(|a| !config.nic_all.contains_key(&a.nic)) {
            self.store().delete_address(gone.id).await?;
        }
        mine.retain(|a| config.nic_all.contains_key(&a.nic));

        for (name, nic) in config.nic_all.iter_mut() {
            let kind = NetKind::parse(&format!("nic_all.{name}.nic_type"), &nic.nic_type)?;
            for (vers, wanted) in [
                (IpVersion::V4, &nic.ip4_addr),
                (IpVersion::V6, &nic.ip6_addr),
            ] {
                let field = match vers {
                    IpVersion::V4 => format!("nic_all.{name}.ip4_addr"),
                    IpVersion::V6 => format!("nic_all.{name}.ip6_addr"),
                };
                let held: Vec<&VmAddress> = mine
                    .iter()
                    .filter(|a| a.nic == *name && a.vers == vers.as_str())
                    .collect();
                if !held.is_empty() {
                    if !wanted.is_empty() && !held.iter().any(|a| a.address == *wanted) {
                        return Err(CoreError::invalid(
                            &field,
                            "addresses of an existing NIC change through ipaddr/create and ipaddr/delete",
                        ));
                    }
                    continue;
                }
                let candidates: Vec<&Pool> = pools
                    .iter()
                    .filter(|p| p.kind == kind && p.vers == vers)
                    .collect();
                if candidates.is_empty() {
                    if !wanted.is_empty() {
                        return Err(CoreError::invalid(
                            &field,
                            format!(
                                "host {} has no {} {} pool",
                                host.name,
                                kind.as_str(),
                                vers.as_str()
                            ),
                        ));
                    }
                    continue;
                }
                let (pool, addr) = pick_address(&candidates, wanted, &used, &field)?;
                used.insert(addr);
                let row = self
                    .hold_address(vm, name, pool, addr, String::new(), &field)
                    .await?;
                mine.push(row);
            }
        }
        fill_nic_fields(config, &mine, &pools);
        Ok(())
    }

    pub async fn list_addresses(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<Vec<AddressView>, CoreError> {
        let (_, vm) = self
            .owned_vm(actor, "vm.ipaddr.read", None, hs_name, vm_uuid)
            .await?;
        let rows = self.store().addresses(Scope::Vm(vm.id)).await?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, a)| view(i, a))
            .collect())
    }

    pub async fn add_address(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: AddressInput,
    ) -> Result<AddressView, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.ipaddr.write",
                Some("vm.ip.add"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let lock = self.host_net_lock(host.id);
        let _guard = lock.lock().await;
        self.run_audited(
            actor,
            "vm.ip.add",
            Subject::vm(hs_name, vm_uuid),
            Ok(()),
            async |(), op| {
                let row = self.insert_requested_address(&host, &vm, &input).await?;
                let services = self.clone();
                op.undo_on_failure("remove the address row", async move {
                    Ok(services.store().delete_address(row.id).await?)
                });
                let rows = self.store().addresses(Scope::Vm(vm.id)).await?;
                let index = rows
                    .iter()
                    .position(|a| a.id == row.id)
                    .unwrap_or(rows.len());
                self.after_address_change(&host, &vm, &rows).await?;
                Ok(view(index, row))
            },
            |a| serde_json::json!({"address": a.address}),
        )
        .await
    }

    async fn insert_requested_address(
        &self,
        host: &Host,
        vm: &Vm,
        input: &AddressInput,
    ) -> Result<VmAddress, CoreError> {
        let vers = IpVersion::parse("type", &input.vers)?;
        let nic_name = if input.nic.is_empty() {
            vm.config
                .nic_all
                .keys()
                .next()
                .cloned()
                .ok_or_else(|| CoreError::invalid("nic", "the VM has no NIC"))?
        } else {
            input.nic.clone()
        };
        let nic =
            vm.config.nic_all.get(&nic_name).ok_or_else(|| {
                CoreError::invalid("nic", format!("the VM has no NIC {nic_name:?}"))
            })?;
        let kind = NetKind::parse("nic", &nic.nic_type)?;
        let pools = Self::pools_of(host)?;
        let candidates: Vec<&Pool> = pools
            .iter()
            .filter(|p| p.kind == kind && p.vers == vers)
            .collect();
        if candidates.is_empty() {
            return Err(CoreError::invalid(
                "type",
                format!(
                    "host {} has no {} {} pool",
                    host.name,
                    kind.as_str(),
                    vers.as_str()
                ),
            ));
        }
        let used: HashSet<IpAddr> = self
            .store()
            .addresses(Scope::Host(host.id))
            .await?
            .iter()
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let (pool, addr) = pick_address(&candidates, input.address.trim(), &used, "address")?;
        if !input.gateway.is_empty() && input.gateway.trim() != pool.gateway.to_string() {
            return Err(CoreError::invalid(
                "gateway",
                format!("pool {} uses gateway {}", pool.name, pool.gateway),
            ));
        }
        if !input.netmask.is_empty() {
            let prefix = ipam::parse_mask("netmask", &input.netmask, vers)?;
            if prefix != pool.prefix_len() {
                return Err(CoreError::invalid(
                    "netmask",
                    format!("pool {} uses prefix /{}", pool.name, pool.prefix_len()),
                ));
            }
        }
        if input.description.chars().count() > 200 {
            return Err(CoreError::invalid(
                "description",
                "must be at most 200 characters",
            ));
        }
        self.hold_address(
            vm,
            &nic_name,
            pool,
            addr,
            input.description.clone(),
            "address",
        )
        .await
    }

    /// Store `addr` of `pool` as the VM's; the unique index is the last word
    /// on whether it is free (two requests can pick the same address).
    async fn hold_address(
        &self,
        vm: &Vm,
        nic: &str,
        pool: &Pool,
        addr: IpAddr,
        description: String,
        field: &str,
    ) -> Result<VmAddress, CoreError> {
        self.store()
            .insert_address(&VmAddress {
                id: 0,
                host_id: vm.host_id,
                vm_id: vm.id,
                nic: nic.to_string(),
                vers: IpVersion::of(addr).as_str().into(),
                address: addr.to_string(),
                prefix: pool.prefix_len(),
                gateway: pool.gateway.to_string(),
                pool: pool.name.clone(),
                description,
                created_at: 0,
            })
            .await
            .map_err(|e| match CoreError::from(e) {
                CoreError::Conflict(_) => {
                    CoreError::invalid(field, format!("{addr} is in use by another VM"))
                }
                other => other,
            })
    }

    pub async fn delete_address(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        index: usize,
    ) -> Result<AddressView, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.ipaddr.write",
                Some("vm.ip.delete"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let lock = self.host_net_lock(host.id);
        let _guard = lock.lock().await;
        let rows = self.store().addresses(Scope::Vm(vm.id)).await?;
        let checked = match rows.get(index).cloned() {
            Some(row) => self
                .ensure_address_unused(vm.id, &row.address)
                .await
                .map(|()| row),
            None => Err(CoreError::not_found("address index", index.to_string())),
        };
        self.run_audited(
            actor,
            "vm.ip.delete",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |row, _op| {
                self.store().delete_address(row.id).await?;
                let rest: Vec<VmAddress> =
                    rows.iter().filter(|a| a.id != row.id).cloned().collect();
                self.after_address_change(&host, &vm, &rest).await?;
                Ok(view(index, row.clone()))
            },
            |a| serde_json::json!({"address": a.address}),
        )
        .await
    }

    /// 409 while a NAT rule forwards to `address` or a domain is proxied to it.
    pub(crate) async fn ensure_address_unused(
        &self,
        vm_id: i64,
        address: &str,
    ) -> Result<(), CoreError> {
        let rules = self.store().nat_rules(Scope::Vm(vm_id)).await?;
        if let Some(rule) = rules.iter().find(|r| r.internal_ip == address) {
            return Err(CoreError::Conflict(format!(
                "NAT rule {}->{}:{} uses {address}; delete the rule first",
                rule.external_port, rule.internal_ip, rule.internal_port
            )));
        }
        let proxies = self.store().proxies(Scope::Vm(vm_id)).await?;
        if let Some(p) = proxies.iter().find(|p| p.backend_ip == address) {
            return Err(CoreError::Conflict(format!(
                "domain {} is proxied to {address}; delete the binding first",
                p.domain
            )));
        }
        Ok(())
    }

    /// Rewrite the NICs' address fields, the DHCP reservations and the seed.
    async fn after_address_change(
        &self,
        host: &Host,
        vm: &Vm,
        rows: &[VmAddress],
    ) -> Result<(), CoreError> {
        let pools = Self::pools_of(host)?;
        let mut config = vm.config.clone();
        fill_nic_fields(&mut config, rows, &pools);
        self.store()
            .update_vm_config(vm.id, &config, vm.pending_restart)
            .await?;
        self.refresh_dhcp(host).await;
        let fresh = self.vm(host, &vm.uuid).await?;
        self.write_seed(host, &fresh).await;
        Ok(())
    }

    pub(crate) fn host_net_lock(&self, host_id: i64) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.vm_lock(&format!("\u{0}host-net:{host_id}"))
    }
}

/// The requested address (checked against the pools and `used`) or the
/// first free one of the first pool that has one.
fn pick_address<'p>(
    pools: &[&'p Pool],
    wanted: &str,
    used: &HashSet<IpAddr>,
    field: &str,
) -> Result<(&'p Pool, IpAddr), CoreError> {
    if wanted.is_empty() {
        return pools
            .iter()
            .find_map(|p| p.first_free(used).map(|a| (*p, a)))
            .ok_or_else(|| CoreError::Conflict("no free address left in the host's pools".into()));
    }
    let addr: IpAddr = wanted
        .parse()
        .map_err(|_| CoreError::invalid(field, format!("{wanted:?} is not an IP address")))?;
    let pool = pools.iter().find(|p| p.contains(addr)).ok_or_else(|| {
        CoreError::invalid(field, format!("{addr} is not inside the host's pools"))
    })?;
    if used.contains(&addr) {
        return Err(CoreError::invalid(
            field,
            format!("{addr} is in use by another VM"),
        ));
    }
    Ok((pool, addr))
}

/// `nic_all.*.ip4_addr` etc. from the first address of each version per NIC.
fn fill_nic_fields(config: &mut VmConfig, rows: &[VmAddress], pools: &[Pool]) {
    for (name, nic) in config.nic_all.iter_mut() {
        let first = |vers: IpVersion| {
            rows.iter()
                .find(|a| a.nic == *name && a.vers == vers.as_str())
        };
        let v4 = first(IpVersion::V4);
        nic.ip4_addr = v4.map(|a| a.address.clone()).unwrap_or_default();
        nic.ip6_addr = first(IpVersion::V6)
            .map(|a| a.address.clone())
            .unwrap_or_default();
        if let Some(a) = v4.or_else(|| first(IpVersion::V6)) {
            nic.nic_gate = a.gateway.clone();
            nic.nic_mask = if a.vers == "ipv4" {
                ipam::netmask_v4(a.prefix)
            } else {
                a.prefix.to_string()
            };
            nic.dns_addr = pools
                .iter()
                .find(|p| p.name == a.pool)
                .map(|p| p.dns.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
        } else {
            nic.nic_gate.clear();
            nic.nic_mask.clear();
        }
    }
}

fn view(index: usize, a: VmAddress) -> AddressView {
    AddressView {
        index,
        netmask: if a.vers == "ipv4" {
            ipam::netmask_v4(a.prefix)
        } else {
            a.prefix.to_string()
        },
        vers: a.vers,
        address: a.address,
        prefix: a.prefix,
        gateway: a.gateway,
        nic: a.nic,
        pool: a.pool,
        description: a.description,
    }
}
