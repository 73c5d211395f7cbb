//! Host use cases: register, change, enable/disable, remove, status.

use std::path::PathBuf;
use std::sync::Arc;

use super::host_update::HostPatch;
use super::journal::Subject;
use super::{now, Actor, Services};
use crate::engine::{Engine, HostContext};
use crate::error::CoreError;
use crate::model::{Host, HostConfig, HwStatus};
use crate::secrets::SecretBox;
use crate::store::{NewHost, Scope};
use crate::validate;

/// Engine names other systems use for engines ironidc does not implement;
/// named so the error says "not supported" rather than "unknown".
const FOREIGN_ENGINES: &[&str] = &[
    "LxContainer",
    "OCInterface",
    "PromoxSetup",
    "vSphereESXi",
    "HyperVSetup",
    "VirtualBoxs",
    "VMWareSetup",
];

/// Map an engine name from any face to our key (`QEMUServer` → `qemu`).
pub fn engine_key(name: &str) -> Result<&'static str, CoreError> {
    match name {
        "qemu" | "QEMUServer" | "kvm" => Ok("qemu"),
        other if FOREIGN_ENGINES.contains(&other) => Err(CoreError::invalid(
            "type",
            format!("engine {other} is not supported by ironidc (supported: qemu)"),
        )),
        _ => Err(CoreError::invalid(
            "type",
            "unknown engine type (supported: qemu, alias QEMUServer)",
        )),
    }
}

#[derive(Debug, Clone)]
pub struct HostInput {
    pub name: String,
    pub engine: String,
    pub config: HostConfig,
    pub enabled: Option<bool>,
}

/// A host as faces show it; never carries the host password.
#[derive(Debug, Clone)]
pub struct HostView {
    pub name: String,
    pub engine: String,
    pub addr: String,
    pub status: &'static str,
    pub enable_host: bool,
    pub config: HostConfig,
    pub vm_count: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    Cached,
    Fresh,
    NoData,
}

#[derive(Debug, Clone)]
pub struct HostStatusReport {
    pub status: Option<HwStatus>,
    pub source: StatusSource,
    pub cached_at: i64,
    pub age_seconds: i64,
    /// Load, uptime, storage paths and sensors, read on each request;
    /// `None` when the engine cannot tell.
    pub details: Option<crate::engine::HostDetails>,
}

/// What a cached remote engine was made from: a host change that touches
/// any of it makes a new engine.
pub(crate) type RemoteKey = (String, u16, Option<String>);
pub(crate) type CachedRemote = (RemoteKey, Arc<dyn Engine>);

/// A host run by an agent on another machine (see `remote_host.rs`).
pub(crate) fn is_remote(host: &Host) -> bool {
    !host.config.server_addr.is_empty()
}

impl Services {
    /// The engine of `host`: the local one of its kind, or for a host with
    /// `server_addr`, one that drives that host's agent (made once per host
    /// and kept until the host's address or token changes).
    pub(crate) fn engine_of(&self, host: &Host) -> Result<Arc<dyn Engine>, CoreError> {
        if is_remote(host) {
            return self.remote_engine_of(host);
        }
        self.inner
            .engines
            .get(&host.engine)
            .cloned()
            .ok_or_else(|| {
                CoreError::Unavailable(format!(
                    "engine {} is not available on this controller",
                    host.engine
                ))
            })
    }

    fn remote_engine_of(&self, host: &Host) -> Result<Arc<dyn Engine>, CoreError> {
        let key: RemoteKey = (
            host.config.server_addr.clone(),
            host.config.server_port,
            host.config.server_pass.clone(),
        );
        let mut cache = self
            .inner
            .remote_engines
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((made_from, engine)) = cache.get(&host.name) {
            if *made_from == key {
                return Ok(engine.clone());
            }
        }
        let Some(remote) = self.inner.remote.get() else {
            return Err(CoreError::Unavailable(format!(
                "host {} is remote ({}) but this controller cannot reach agents",
                host.name, host.config.server_addr
            )));
        };
        let sealed = host.config.server_pass.as_deref().ok_or_else(|| {
            CoreError::Unavailable(format!(
                "host {} has no enrolment token (config.server_pass)",
                host.name
            ))
        })?;
        let token = crate::remote_host::EnrolmentToken::parse(&self.inner.secrets.open(sealed)?)?;
        let engine = remote.connect(
            &host.name,
            &host.config.server_addr,
            host.config.server_port,
            &token,
        )?;
        cache.insert(host.name.clone(), (key, engine.clone()));
        Ok(engine)
    }

    /// Drop the cached engine of a changed or deleted host.
    fn forget_remote_engine(&self, hs_name: &str) {
        self.inner
            .remote_engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hs_name);
    }

    pub(crate) fn host_context(&self, host: &Host) -> HostContext {
        HostContext {
            hs_name: host.name.clone(),
            // As OpenIDCS defines them: `system_path` holds VM disks,
            // `images_path` the OS images `system_maps` names.
            vms_dir: PathBuf::from(&host.config.system_path),
            images_dir: PathBuf::from(&host.config.images_path),
            backups_dir: PathBuf::from(&host.config.backup_path),
            isos_dir: PathBuf::from(&host.config.dvdrom_path),
        }
    }

    pub(crate) async fn host(&self, hs_name: &str) -> Result<Host, CoreError> {
        validate::path_name("hs_name", hs_name)?;
        self.store()
            .host_by_name(hs_name)
            .await?
            .ok_or_else(|| CoreError::not_found("host", hs_name))
    }

    fn view(&self, host: Host, vm_count: i64) -> HostView {
        let usable = self.inner.engines.get(&host.engine).is_some();
        let mut config = host.config;
        config.server_pass = None;
        HostView {
            addr: if config.server_addr.is_empty() {
                "localhost".into()
            } else {
                config.server_addr.clone()
            },
            status: if host.enabled && usable {
                "active"
            } else {
                "inactive"
            },
            enable_host: host.enabled,
            name: host.name,
            engine: host.engine,
            config,
            vm_count,
            created_at: host.created_at,
        }
    }

    pub async fn list_hosts(&self, actor: &Actor) -> Result<Vec<HostView>, CoreError> {
        actor.require("host.server.read")?;
        let hosts = self.store().list_hosts().await?;
        Ok(hosts
            .into_iter()
            .map(|h| self.view(h.host, h.vm_count))
            .collect())
    }

    pub async fn get_host(&self, actor: &Actor, hs_name: &str) -> Result<HostView, CoreError> {
        actor.require("host.server.read")?;
        self.host_view(hs_name).await
    }

    async fn host_view(&self, hs_name: &str) -> Result<HostView, CoreError> {
        let host = self.host(hs_name).await?;
        let count = self
            .store()
            .count_vms(crate::store::VmFilter {
                host_id: Some(host.id),
                owner_id: None,
            })
            .await?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        Ok(self.view(host, count))
    }

    pub async fn create_host(
        &self,
        actor: &Actor,
        input: HostInput,
    ) -> Result<HostView, CoreError> {
        self.authorize(
            actor,
            "host.server.create",
            "host.create",
            Some(&input.name),
            None,
        )
        .await?;
        // Owned, so the work's input holds no borrow (a borrowed input
        // makes the future not provably Send to the router).
        let checked = self
            .check_host_input(&input, None)
            .map(|(engine, config)| (engine.to_string(), config));
        self.run_audited(
            actor,
            "host.create",
            Subject::host(&input.name),
            checked,
            async |(engine, config), op| {
                let host = self
                    .store()
                    .insert_host(NewHost {
                        name: &input.name,
                        engine: &engine,
                        enabled: input.enabled.unwrap_or(true),
                        config: &config,
                    })
                    .await?;
                // A host whose bridges cannot be made is not created.
                let services = self.clone();
                let id = host.id;
                op.undo_on_failure("remove the host row", async move {
                    Ok(services.store().delete_host(id).await?)
                });
                self.apply_host_network(&host).await?;
                Ok(self.view(host, 0))
            },
            |h| serde_json::json!({"hs_name": h.name}),
        )
        .await
    }

    /// Change the config keys `patch` names; the others keep their values
    /// (a missing `server_pass` keeps the stored one).
    pub async fn update_host(
        &self,
        actor: &Actor,
        hs_name: &str,
        patch: HostPatch,
        enabled: Option<bool>,
    ) -> Result<HostView, CoreError> {
        self.authorize(
            actor,
            "host.server.update",
            "host.update",
            Some(hs_name),
            None,
        )
        .await?;
        let host = self.host(hs_name).await?;
        let checked = async {
            let input = HostInput {
                name: host.name.clone(),
                engine: host.engine.clone(),
                config: patch.apply_to(&host.config),
                enabled,
            };
            let (_, config) = self.check_host_input(&input, Some(&host))?;
            let vms = self.store().list_vms(host.id).await?;
            let addresses = self.store().addresses(Scope::Host(host.id)).await?;
            super::host_update::refuse_orphaning(&host.config, &config, &vms, &addresses)?;
            Ok(config)
        }
        .await;
        let enabled = enabled.unwrap_or(host.enabled);
        self.run_audited(
            actor,
            "host.update",
            Subject::host(hs_name),
            checked,
            async |config, op| {
                self.store().update_host(host.id, enabled, &config).await?;
                // Keep the old definition if the kernel cannot follow the new one.
                let services = self.clone();
                let old = host.clone();
                op.undo_on_failure("restore the host definition", async move {
                    Ok(services
                        .store()
                        .update_host(old.id, old.enabled, &old.config)
                        .await?)
                });
                let updated = self.host(hs_name).await?;
                self.apply_host_network(&updated).await?;
                self.forget_host_status(hs_name);
                self.forget_remote_engine(hs_name);
                self.host_view(hs_name).await
            },
            |_| serde_json::json!({"hs_name": hs_name}),
        )
        .await
    }

    pub async fn set_host_enabled(
        &self,
        actor: &Actor,
        hs_name: &str,
        enabled: bool,
    ) -> Result<HostView, CoreError> {
        let action = if enabled {
            "host.enable"
        } else {
            "host.disable"
        };
        self.authorize(actor, "host.server.power", action, Some(hs_name), None)
            .await?;
        let host = self.host(hs_name).await?;
        self.run_audited(
            actor,
            action,
            Subject::host(hs_name),
            Ok(()),
            async |(), _op| {
                self.store()
                    .update_host(host.id, enabled, &host.config)
                    .await?;
                self.host_view(hs_name).await
            },
            |h| serde_json::json!({"enable_host": h.enable_host}),
        )
        .await
    }

    /// Remove a host. Refused while it has VMs, unless `force`, which
    /// deletes those VMs (processes and disks) first. Its bridges (with
    /// their DHCP servers) go when no other host uses them, its masquerade
    /// rules with the network reconcile, and with `purge_backups` the
    /// backups of its VMs.
    pub async fn delete_host(
        &self,
        actor: &Actor,
        hs_name: &str,
        force: bool,
        purge_backups: bool,
    ) -> Result<(), CoreError> {
        self.authorize(
            actor,
            "host.server.delete",
            "host.delete",
            Some(hs_name),
            None,
        )
        .await?;
        let host = self.host(hs_name).await?;
        let vms = self.store().list_vms(host.id).await?;
        let checked = if !vms.is_empty() && !force {
            Err(CoreError::Conflict(format!(
                "host {hs_name} still has {} VM(s); delete them first or pass force=true",
                vms.len()
            )))
        } else {
            Ok(())
        };
        self.run_audited(
            actor,
            "host.delete",
            Subject::host(hs_name),
            checked,
            async |(), op| {
                let total = vms.len().max(1);
                for (i, vm) in vms.iter().enumerate() {
                    op.step(&format!("deleting vm {}", vm.uuid), (i * 90 / total) as u8)
                        .await;
                    if purge_backups {
                        self.purge_vm_backups(&host, &vm.uuid).await?;
                    }
                    self.remove_vm_everywhere(&host, vm).await?;
                }
                self.store().delete_host(host.id).await?;
                self.forget_host_status(hs_name);
                self.forget_remote_engine(hs_name);
                op.step("network", 95).await;
                self.remove_host_network(&host).await
            },
            |_| serde_json::json!({"deleted_vms": vms.len()}),
        )
        .await
    }

    /// The bridges of a deleted host that no other host names, then a
    /// reconcile that drops its masquerade rules.
    async fn remove_host_network(&self, host: &Host) -> Result<(), CoreError> {
        let others: Vec<Host> = self
            .store()
            .list_hosts()
            .await?
            .into_iter()
            .map(|s| s.host)
            .collect();
        for bridge in [&host.config.network_nat, &host.config.network_pub] {
            let shared = others
                .iter()
                .any(|o| o.config.network_nat == *bridge || o.config.network_pub == *bridge);
            if !bridge.is_empty() && !shared {
                self.network().remove_bridge(bridge).await?;
            }
        }
        self.reconcile_network().await?;
        Ok(())
    }

    async fn purge_vm_backups(&self, host: &Host, vm_uuid: &str) -> Result<(), CoreError> {
        let engine = self.engine_of(host)?;
        let ctx = self.host_context(host);
        for backup in engine.backup_list(&ctx, vm_uuid).await? {
            engine.backup_delete(&ctx, vm_uuid, &backup.name).await?;
        }
        Ok(())
    }

    /// Host CPU, memory and disk, from a cache unless `refresh` or stale.
    pub async fn host_status(
        &self,
        actor: &Actor,
        hs_name: &str,
        refresh: bool,
    ) -> Result<HostStatusReport, CoreError> {
        actor.require("host.server.read")?;
        let mut report = self.current_host_status(hs_name, refresh).await?;
        let host = self.host(hs_name).await?;
        match self
            .engine_of(&host)?
            .host_details(&self.host_context(&host))
            .await
        {
            Ok(details) => report.details = Some(details),
            Err(e) => tracing::debug!(host = hs_name, error = %e, "host details unavailable"),
        }
        Ok(report)
    }

    pub(crate) async fn current_host_status(
        &self,
        hs_name: &str,
        refresh: bool,
    ) -> Result<HostStatusReport, CoreError> {
        let host = self.host(hs_name).await?;
        let ttl = self.inner.opts.host_status_ttl.as_secs() as i64;
        let cached = self.cached_host_status(hs_name);
        if let Some((at, status)) = cached.clone() {
            if !refresh && now() - at < ttl {
                return Ok(HostStatusReport {
                    status: Some(status),
                    source: StatusSource::Cached,
                    cached_at: at,
                    age_seconds: now() - at,
                    details: None,
                });
            }
        }
        let engine = self.engine_of(&host)?;
        match engine.host_status(&self.host_context(&host)).await {
            Ok(status) => {
                let at = now();
                self.inner
                    .host_status_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(hs_name.to_string(), (at, status.clone()));
                Ok(HostStatusReport {
                    status: Some(status),
                    source: StatusSource::Fresh,
                    cached_at: at,
                    age_seconds: 0,
                    details: None,
                })
            }
            Err(e) => {
                tracing::warn!(host = hs_name, error = %e, "host status unavailable");
                Ok(match cached {
                    Some((at, status)) => HostStatusReport {
                        status: Some(status),
                        source: StatusSource::Cached,
                        cached_at: at,
                        age_seconds: now() - at,
                        details: None,
                    },
                    None => HostStatusReport {
                        status: None,
                        source: StatusSource::NoData,
                        cached_at: 0,
                        age_seconds: 0,
                        details: None,
                    },
                })
            }
        }
    }

    fn cached_host_status(&self, hs_name: &str) -> Option<(i64, HwStatus)> {
        self.inner
            .host_status_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hs_name)
            .cloned()
    }

    /// Apply the network plan when this host has networks of its own.
    /// A remote host's bridges and NAT would belong on that host, driven by
    /// its agent, which does not do networks yet: nothing is applied here
    /// (the controller's kernel is not the host's).
    async fn apply_host_network(&self, host: &Host) -> Result<(), CoreError> {
        if is_remote(host)
            || (host.config.network_nat.is_empty() && host.config.network_pub.is_empty())
        {
            return Ok(());
        }
        self.reconcile_network().await.map(|_| ())
    }

    fn forget_host_status(&self, hs_name: &str) {
        self.inner
            .host_status_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hs_name);
    }

    /// Validate a host definition and fill defaults. `existing` is the stored
    /// host on update (its password is kept when none is given).
    fn check_host_input(
        &self,
        input: &HostInput,
        existing: Option<&Host>,
    ) -> Result<(&'static str, HostConfig), CoreError> {
        validate::path_name("name", &input.name)?;
        let engine = engine_key(&input.engine)?;
        let mut config = input.config.clone();
        let data = &self.inner.opts.data_dir;
        if config.system_path.is_empty() {
            config.system_path = data
                .join("hosts")
                .join(&input.name)
                .join("vms")
                .to_string_lossy()
                .into_owned();
        }
        if config.images_path.is_empty() {
            config.images_path = data.join("images").to_string_lossy().into_owned();
        }
        if config.backup_path.is_empty() {
            config.backup_path = data
                .join("hosts")
                .join(&input.name)
                .join("backups")
                .to_string_lossy()
                .into_owned();
        }
        if config.dvdrom_path.is_empty() {
            config.dvdrom_path = data.join("isos").to_string_lossy().into_owned();
        }
        for (field, value) in [
            ("config.images_path", &config.images_path),
            ("config.system_path", &config.system_path),
        ] {
            validate::absolute_dir(field, value)?;
        }
        for (field, value) in [
            ("config.dvdrom_path", &config.dvdrom_path),
            ("config.backup_path", &config.backup_path),
            ("config.extern_path", &config.extern_path),
            ("config.launch_path", &config.launch_path),
        ] {
            if !value.is_empty() {
                validate::absolute_dir(field, value)?;
            }
        }
        for (display, (file, _min_gb)) in &config.system_maps {
            if display.trim().is_empty() || display.chars().count() > 64 {
                return Err(CoreError::invalid(
                    "config.system_maps",
                    "display names must be 1 to 64 characters",
                ));
            }
            validate::path_name("config.system_maps", file)?;
        }
        for file in config.images_maps.values() {
            validate::path_name("config.images_maps", file)?;
        }
        if config.ports_start != 0
            && config.ports_close != 0
            && config.ports_start > config.ports_close
        {
            return Err(CoreError::invalid(
                "config.ports_start",
                "must not be greater than ports_close",
            ));
        }
        for (field, value) in [
            ("config.network_nat", &config.network_nat),
            ("config.network_pub", &config.network_pub),
            ("config.network_pub_uplink", &config.network_pub_uplink),
        ] {
            if !value.is_empty() {
                validate::interface_name(field, value)?;
            }
        }
        if !config.network_pub_uplink.is_empty() && config.network_pub.is_empty() {
            return Err(CoreError::invalid(
                "config.network_pub_uplink",
                "needs network_pub, the bridge it joins",
            ));
        }
        let pools = crate::ipam::parse_pools(&config.ipaddr_maps).map_err(|e| match e {
            CoreError::Invalid { field, message } => CoreError::Invalid {
                field: format!("config.{field}"),
                message,
            },
            other => other,
        })?;
        for pool in &pools {
            let (bridge, key) = match pool.kind {
                crate::ipam::NetKind::Nat => (&config.network_nat, "network_nat"),
                crate::ipam::NetKind::Pub => (&config.network_pub, "network_pub"),
            };
            if bridge.is_empty() {
                return Err(CoreError::invalid(
                    &format!("config.ipaddr_maps.{}.type", pool.name),
                    format!(
                        "a {} pool needs the host's {key} bridge",
                        pool.kind.as_str()
                    ),
                ));
            }
        }
        config.server_pass = match (
            config.server_pass.take().filter(|p| !p.is_empty()),
            existing,
        ) {
            (Some(plain), _) if !SecretBox::is_sealed(&plain) => {
                Some(self.inner.secrets.seal(&plain)?)
            }
            (Some(_sealed), _) => {
                return Err(CoreError::invalid(
                    "config.server_pass",
                    "must be the password itself",
                ));
            }
            (None, Some(host)) => host.config.server_pass.clone(),
            (None, None) => None,
        };
        if !config.server_addr.is_empty() {
            // A remote host's password is its agent's enrolment token:
            // refuse a malformed one now rather than at the first call.
            let sealed = config.server_pass.as_deref().ok_or_else(|| {
                CoreError::invalid(
                    "config.server_pass",
                    "a host with server_addr needs its agent's enrolment token",
                )
            })?;
            crate::remote_host::EnrolmentToken::parse(&self.inner.secrets.open(sealed)?)?;
            if config.server_port == 0 {
                return Err(CoreError::invalid(
                    "config.server_port",
                    "a host with server_addr needs the agent's port",
                ));
            }
        }
        Ok((engine, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_aliases() {
        assert_eq!(engine_key("QEMUServer").ok(), Some("qemu"));
        assert_eq!(engine_key("qemu").ok(), Some("qemu"));
        let e = engine_key("HyperVSetup").expect_err("unsupported");
        assert!(e.to_string().contains("not supported"));
        assert!(engine_key("bogus").is_err());
    }
}
