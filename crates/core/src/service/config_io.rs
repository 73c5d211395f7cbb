//! Export and import of the whole configuration (hosts and VM definitions)
//! as JSON: `POST /api/system/saving` and `/api/system/loader`.
//!
//! Secrets are write-only and never leave the controller, so an export has
//! no passwords, and an import keeps the passwords already stored. VM rows
//! are imported only where the host's engine really has the VM (its disk),
//! so an import never creates a row without a machine behind it.

use serde::{Deserialize, Serialize};

use super::hosts::HostInput;
use super::{now, Actor, Services};
use crate::error::CoreError;
use crate::model::{Host, HostConfig, Vm, VmConfig};
use crate::store::NewVm;
use crate::validate;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedConfig {
    pub version: u32,
    #[serde(default)]
    pub exported_at: i64,
    #[serde(default)]
    pub hosts: Vec<ExportedHost>,
    #[serde(default)]
    pub vms: Vec<ExportedVm>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedHost {
    pub name: String,
    #[serde(rename = "type")]
    pub engine: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub config: HostConfig,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedVm {
    pub hs_name: String,
    pub config: VmConfig,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigImportReport {
    pub hosts_created: Vec<String>,
    pub hosts_updated: Vec<String>,
    pub vms_imported: Vec<String>,
    pub vms_updated: Vec<String>,
    /// `hs_name/vm_uuid: reason`
    pub vms_skipped: Vec<String>,
}

impl Services {
    pub async fn export_config(&self, actor: &Actor) -> Result<ExportedConfig, CoreError> {
        self.authorize(actor, "system.config.manage", "config.export", None, None)
            .await?;
        let mut hosts = Vec::new();
        let mut vms = Vec::new();
        for summary in self.store().list_hosts().await? {
            let host = summary.host;
            let mut config = host.config.clone();
            config.server_pass = None;
            for vm in self.store().list_vms(host.id).await? {
                vms.push(ExportedVm {
                    hs_name: host.name.clone(),
                    config: vm.config,
                });
            }
            hosts.push(ExportedHost {
                name: host.name,
                engine: host.engine,
                enabled: host.enabled,
                config,
            });
        }
        Ok(ExportedConfig {
            version: FORMAT_VERSION,
            exported_at: now(),
            hosts,
            vms,
        })
    }

    pub async fn import_config(
        &self,
        actor: &Actor,
        cfg: ExportedConfig,
    ) -> Result<ConfigImportReport, CoreError> {
        self.authorize(actor, "system.config.manage", "config.import", None, None)
            .await?;
        if cfg.version != FORMAT_VERSION {
            return Err(CoreError::invalid(
                "version",
                format!("unsupported version (expected {FORMAT_VERSION})"),
            ));
        }
        let mut report = ConfigImportReport::default();
        for h in cfg.hosts {
            match self.host(&h.name).await {
                Ok(_) => {
                    // An export names every key: the import replaces them all.
                    let patch = super::HostPatch::whole(&h.config);
                    self.update_host(actor, &h.name, patch, Some(h.enabled))
                        .await?;
                    report.hosts_updated.push(h.name);
                }
                Err(CoreError::NotFound { .. }) => {
                    let name = h.name.clone();
                    self.create_host(
                        actor,
                        HostInput {
                            name: h.name,
                            engine: h.engine,
                            config: h.config,
                            enabled: Some(h.enabled),
                        },
                    )
                    .await?;
                    report.hosts_created.push(name);
                }
                Err(e) => return Err(e),
            }
        }
        for v in cfg.vms {
            let key = format!("{}/{}", v.hs_name, v.config.vm_uuid);
            if let Err(e) = validate::path_name("vm_uuid", &v.config.vm_uuid) {
                report.vms_skipped.push(format!("{key}: {e}"));
                continue;
            }
            let host = match self.host(&v.hs_name).await {
                Ok(h) => h,
                Err(e) => {
                    report.vms_skipped.push(format!("{key}: {e}"));
                    continue;
                }
            };
            if let Some(existing) = self.store().vm_by_uuid(host.id, &v.config.vm_uuid).await? {
                match self.claim_addresses(&host, &existing, v.config).await {
                    Ok(()) => report.vms_updated.push(key),
                    Err(e) => report.vms_skipped.push(format!("{key}: {e}")),
                }
                continue;
            }
            let engine = self.engine_of(&host)?;
            let present = engine.scan(&self.host_context(&host)).await?;
            let Some(found) = present
                .into_iter()
                .find(|s| s.spec.uuid == v.config.vm_uuid)
            else {
                report
                    .vms_skipped
                    .push(format!("{key}: the host has no such VM"));
                continue;
            };
            let inserted = self
                .store()
                .insert_vm(NewVm {
                    host_id: host.id,
                    uuid: &v.config.vm_uuid,
                    config: &v.config,
                    state: found.state,
                    owner_id: None,
                    os_pass_sealed: None,
                })
                .await;
            let claimed = match inserted {
                Ok(vm) => match self.claim_addresses(&host, &vm, v.config).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        self.store().delete_vm(vm.id).await?;
                        Err(e)
                    }
                },
                Err(e) => Err(e.into()),
            };
            match claimed {
                Ok(()) => report.vms_imported.push(key),
                Err(e) => report.vms_skipped.push(format!("{key}: {e}")),
            }
        }
        Ok(report)
    }

    /// Store an imported definition with the addresses its NICs name held
    /// in the pools (or fresh ones), so rows and `nic_all` agree.
    async fn claim_addresses(
        &self,
        host: &Host,
        vm: &Vm,
        mut config: VmConfig,
    ) -> Result<(), CoreError> {
        let lock = self.host_net_lock(host.id);
        let _guard = lock.lock().await;
        self.sync_addresses(host, vm, &mut config).await?;
        self.store()
            .update_vm_config(vm.id, &config, vm.pending_restart)
            .await?;
        Ok(())
    }
}
