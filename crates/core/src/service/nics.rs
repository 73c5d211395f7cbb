//! Network cards of a VM: plug (addresses from the host's pools, hot-plugged
//! when the VM runs) and unplug (hot-unplugged; the guest must release it).

use std::collections::BTreeMap;

use super::journal::Subject;
use super::vms::{nic_specs, normalize_nics};
use super::{Actor, Services};
use crate::error::CoreError;
use crate::model::{Host, NicConfig, Vm, VmConfig};
use crate::store::Scope;

#[derive(Debug, Clone, Default)]
pub struct NicInput {
    /// `nicN` when empty.
    pub name: String,
    pub nic: NicConfig,
}

impl Services {
    pub async fn list_nics(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<BTreeMap<String, NicConfig>, CoreError> {
        let (_host, vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        Ok(vm.config.nic_all)
    }

    /// Add a NIC; returns its name and definition (MAC and addresses filled).
    pub async fn plug_nic(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: NicInput,
    ) -> Result<(String, NicConfig), CoreError> {
        let action = "vm.nic.plug";
        let (host, vm) = self
            .owned_vm(actor, "vm.nic.write", Some(action), hs_name, vm_uuid)
            .await?;
        let lock = self.vm_lock(vm_uuid);
        let _guard = lock.lock().await;
        let checked = async {
            self.ensure_not_busy(&vm, action).await?;
            let name = if input.name.is_empty() {
                free_nic_name(&vm.config)
            } else {
                input.name.clone()
            };
            crate::validate::path_name("name", &name)?;
            if vm.config.nic_all.contains_key(&name) {
                return Err(CoreError::invalid(
                    "name",
                    format!("vm already has a NIC {name}"),
                ));
            }
            let mut merged = vm.config.clone();
            merged.nic_all.insert(name.clone(), input.nic.clone());
            merged.nic_all = normalize_nics(merged.nic_all)?;
            let chosen = merged.nic_all.get(&name).cloned().unwrap_or_default();
            self.check_new_nic(&host, "", &chosen).await?;
            self.fill_macs(&mut merged.nic_all).await?;
            Ok((name, merged))
        }
        .await;
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(name, mut merged), _op| {
                self.store_nics(&host, &vm, &mut merged).await?;
                let spec = nic_specs(&host, &merged)
                    .into_iter()
                    .find(|n| n.name == name)
                    .ok_or_else(|| CoreError::not_found("nic", name.clone()))?;
                if let Err(e) = self
                    .engine_of(&host)?
                    .nic_plug(&self.host_context(&host), vm_uuid, &spec)
                    .await
                {
                    let mut old = vm.config.clone();
                    if let Err(undo) = self.store_nics(&host, &vm, &mut old).await {
                        tracing::error!(vm = %vm_uuid, error = %undo, "could not undo a failed NIC plug");
                    }
                    return Err(e.into());
                }
                self.after_nic_change(&host, vm_uuid).await?;
                let nic = merged.nic_all.get(&name).cloned().unwrap_or_default();
                Ok((name, nic))
            },
            |(name, nic)| serde_json::json!({"nic": name, "mac": nic.mac_addr}),
        )
        .await
    }

    /// Remove a NIC. Addresses a forward or binding still uses keep it.
    pub async fn unplug_nic(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        let action = "vm.nic.unplug";
        let (host, vm) = self
            .owned_vm(actor, "vm.nic.write", Some(action), hs_name, vm_uuid)
            .await?;
        let lock = self.vm_lock(vm_uuid);
        let _guard = lock.lock().await;
        let checked = async {
            self.ensure_not_busy(&vm, action).await?;
            let nic = vm
                .config
                .nic_all
                .get(name)
                .cloned()
                .ok_or_else(|| CoreError::not_found("nic", name))?;
            // Before the guest gives the card up: refuse while rules use it.
            for address in self.store().addresses(Scope::Vm(vm.id)).await? {
                if address.nic == name {
                    self.ensure_address_unused(vm.id, &address.address).await?;
                }
            }
            Ok(nic)
        }
        .await;
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |nic, _op| {
                self.engine_of(&host)?
                    .nic_unplug(&self.host_context(&host), vm_uuid, &nic.mac_addr)
                    .await?;
                let mut config = vm.config.clone();
                config.nic_all.remove(name);
                self.store_nics(&host, &vm, &mut config).await?;
                self.after_nic_change(&host, vm_uuid).await
            },
            |()| serde_json::json!({"nic": name}),
        )
        .await
    }

    /// Addresses for the NICs of `config`, then the config itself.
    async fn store_nics(
        &self,
        host: &Host,
        vm: &Vm,
        config: &mut VmConfig,
    ) -> Result<(), CoreError> {
        let lock = self.host_net_lock(host.id);
        let _net = lock.lock().await;
        self.sync_addresses(host, vm, config).await?;
        self.store()
            .update_vm_config(vm.id, config, vm.pending_restart)
            .await?;
        Ok(())
    }

    async fn after_nic_change(&self, host: &Host, vm_uuid: &str) -> Result<(), CoreError> {
        self.refresh_dhcp(host).await;
        let fresh = self.vm(host, vm_uuid).await?;
        self.write_seed(host, &fresh).await;
        Ok(())
    }
}

fn free_nic_name(config: &VmConfig) -> String {
    (0..)
        .map(|i| format!("nic{i}"))
        .find(|n| !config.nic_all.contains_key(n))
        .unwrap_or_else(|| "nic".into())
}
