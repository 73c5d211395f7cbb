//! VM use cases: create (a linked clone), change, delete, power, status, scan.

use std::collections::BTreeMap;

use super::journal::Subject;
use super::mac_addresses::MAC_ATTEMPTS;
use super::quotas::Demand;
use super::{now, Actor, Services};
use crate::accounts::Page;
use crate::engine::{EngineError, NicSpec, PowerAction, PowerState, UpdateOutcome, VmSpec};
use crate::error::CoreError;
use crate::ipam::IpVersion;
use crate::model::{Host, HwStatus, NicConfig, Vm, VmConfig};
use crate::store::{NewVm, Scope, StoreError, VmFilter};
use crate::validate;

/// Disk limit per VM when the host plan sets none (2 TiB in MiB).
const DEFAULT_HDD_MAX_MB: u64 = 2 * 1024 * 1024;
/// Smallest memory a guest can boot with.
const MIN_MEM_MB: u64 = 32;

#[derive(Debug, Clone, Default)]
pub struct VmCreateInput {
    /// `os_name` may be empty when the host has exactly one OS image.
    pub config: VmConfig,
    pub os_pass: Option<String>,
    /// The user the VM is for (`#id`, account or billing `userid`); needs
    /// `vm.all.manage`. Absent: the caller when it is a customer, else none.
    pub owner: Option<String>,
    /// DNS servers for every NIC that names none.
    pub default_dns: Vec<String>,
}

/// A partial change of a VM: each field given replaces the stored one,
/// every other keeps its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmPatch {
    /// Must equal the VM's; the identity never changes.
    pub vm_uuid: Option<String>,
    /// Must equal the VM's; a new OS is a reinstall.
    pub os_name: Option<String>,
    /// Must equal the VM's; the CD-ROM has its own operations.
    pub cdrom: Option<String>,
    pub vm_name: Option<String>,
    pub cpu_num: Option<u32>,
    pub cpu_per: Option<u32>,
    pub mem_num: Option<u64>,
    pub hdd_num: Option<u64>,
    pub hdd_iop: Option<u32>,
    pub gpu_mem: Option<u64>,
    pub speed_u: Option<u32>,
    pub speed_d: Option<u32>,
    pub nat_num: Option<u32>,
    pub web_num: Option<u32>,
    pub flu_num: Option<u64>,
    pub flu_rst: Option<u32>,
    pub bak_num: Option<u32>,
    pub iso_num: Option<u32>,
    pub pci_num: Option<u32>,
    pub usb_num: Option<u32>,
    pub nic_all: Option<BTreeMap<String, NicConfig>>,
    /// DNS servers for every NIC that names none.
    pub default_dns: Vec<String>,
}

impl VmPatch {
    /// `config` with the given fields replaced; the identity fields are
    /// checked, not applied.
    fn apply_to(&self, config: &VmConfig) -> Result<VmConfig, CoreError> {
        for (field, given, stored, why) in [
            (
                "vm_uuid",
                &self.vm_uuid,
                &config.vm_uuid,
                "cannot be changed",
            ),
            (
                "os_name",
                &self.os_name,
                &config.os_name,
                "cannot be changed by update; reinstall the VM instead",
            ),
            (
                "cdrom",
                &self.cdrom,
                &config.cdrom,
                "cannot be changed by update; use the ISO endpoints",
            ),
        ] {
            if given.as_ref().is_some_and(|g| g != stored) {
                return Err(CoreError::invalid(field, why));
            }
        }
        let mut c = config.clone();
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = &self.$f {
                    c.$f = v.clone();
                }
            )*};
        }
        take!(
            vm_name, cpu_num, cpu_per, mem_num, hdd_num, hdd_iop, gpu_mem, speed_u, speed_d,
            nat_num, web_num, flu_num, flu_rst, bak_num, iso_num, pci_num, usb_num, nic_all
        );
        fill_default_dns(&mut c.nic_all, &self.default_dns);
        Ok(c)
    }
}

/// Give every NIC without DNS servers `dns`.
fn fill_default_dns(nics: &mut BTreeMap<String, NicConfig>, dns: &[String]) {
    if dns.is_empty() {
        return;
    }
    for nic in nics.values_mut().filter(|n| n.dns_addr.is_empty()) {
        nic.dns_addr = dns.to_vec();
    }
}

#[derive(Debug, Clone, Default)]
pub struct VmUpdateInput {
    pub patch: VmPatch,
    pub os_pass: Option<String>,
}

/// A VM as faces show it. Carries no password.
#[derive(Debug, Clone)]
pub struct VmView {
    /// The VM's numeric id (stable; billing faces address VMs by it).
    pub id: i64,
    pub uuid: String,
    pub hs_name: String,
    pub config: VmConfig,
    pub state: PowerState,
    pub pending_restart: bool,
    pub status: Option<HwStatus>,
    /// The user the VM belongs to; `None` for the operator's.
    pub owner_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Vm> for VmView {
    fn from(vm: Vm) -> Self {
        Self {
            id: vm.id,
            state: vm.state,
            uuid: vm.uuid,
            hs_name: vm.hs_name,
            config: vm.config,
            pending_restart: vm.pending_restart,
            status: vm.last_status,
            owner_id: vm.owner_id,
            created_at: vm.created_at,
            updated_at: vm.updated_at,
        }
    }
}

/// A page of the VMs a caller may see, across hosts.
#[derive(Debug, Clone)]
pub struct VmPage {
    pub items: Vec<VmView>,
    /// How many there are across all pages.
    pub total: u64,
}

#[derive(Debug, Clone)]
pub struct CreatedVm {
    pub vm: VmView,
    pub task_id: i64,
}

#[derive(Debug, Clone)]
pub struct UpdatedVm {
    pub vm: VmView,
    /// `now` when the VM was stopped, `next_start` when it runs.
    pub applied: &'static str,
    pub message: String,
    pub task_id: i64,
}

#[derive(Debug, Clone)]
pub struct PowerOutcome {
    pub action: &'static str,
    pub state: PowerState,
    pub task_id: i64,
}

#[derive(Debug, Clone)]
pub struct VmStatusReport {
    pub state: PowerState,
    pub pending_restart: bool,
    pub current: HwStatus,
    pub history: Vec<HwStatus>,
}

#[derive(Debug, Clone)]
pub struct ScanReport {
    pub scanned: usize,
    pub added: usize,
    pub added_vms: Vec<String>,
    /// VMs found but not imported, with the reason.
    pub skipped: Vec<ScanSkip>,
    pub prefix_filter: String,
}

#[derive(Debug, Clone)]
pub struct ScanSkip {
    pub vm_uuid: String,
    pub reason: String,
}

/// What a VM with this config adds to its owner's usage.
fn demand_of(config: &VmConfig, vms: u64) -> Demand {
    Demand {
        vms,
        vcpus: u64::from(config.cpu_num),
        memory_mb: config.mem_num,
        disk_mb: config.hdd_num,
        ..Demand::default()
    }
}

/// A create request checked and completed, before its row exists.
struct PreparedCreate {
    config: VmConfig,
    spec: VmSpec,
    sealed_pass: Option<String>,
    /// NICs whose MAC was drawn here, not chosen by the caller.
    generated_macs: std::collections::BTreeSet<String>,
}

/// Per-VM upper bounds on one host.
struct VmLimits {
    cpu: u32,
    mem_mb: u64,
    hdd_mb: u64,
}

impl Services {
    pub(crate) async fn vm(&self, host: &Host, vm_uuid: &str) -> Result<Vm, CoreError> {
        validate::path_name("vm_uuid", vm_uuid)?;
        self.store()
            .vm_by_uuid(host.id, vm_uuid)
            .await?
            .ok_or_else(|| CoreError::not_found("vm", vm_uuid))
    }

    /// A VM by its row id, with its host.
    pub(crate) async fn vm_by_id(&self, id: i64) -> Result<Option<(Host, Vm)>, CoreError> {
        let Some(vm) = self.store().vm_by_id(id).await? else {
            return Ok(None);
        };
        let host = self.host(&vm.hs_name).await?;
        Ok(Some((host, vm)))
    }

    /// The host and VM a caller names: the permission first (403), then
    /// the VM, which a caller who may not see it does not find (404).
    /// Every refusal, read or write, is written to the operation log here,
    /// once: under `action` for a mutating call, else under the permission.
    /// "Not yours" and "no such VM" log and answer alike, so neither the
    /// reply nor the caller's own log tells another customer's VM exists.
    pub(crate) async fn owned_vm(
        &self,
        actor: &Actor,
        permission: &str,
        action: Option<&'static str>,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<(Host, Vm), CoreError> {
        let found = async {
            actor.require(permission)?;
            let host = self.host(hs_name).await?;
            let vm = self.vm(&host, vm_uuid).await?;
            if !actor.owns(vm.owner_id) {
                return Err(CoreError::not_found("vm", vm_uuid));
            }
            Ok((host, vm))
        }
        .await;
        if let Err(e) = &found {
            let logged_as = action.unwrap_or(permission);
            self.log_refused(actor, logged_as, Some(hs_name), Some(vm_uuid), e)
                .await;
        }
        found
    }

    /// The host's VMs the caller may see.
    pub async fn list_vms(&self, actor: &Actor, hs_name: &str) -> Result<Vec<VmView>, CoreError> {
        actor.require("vm.instance.read")?;
        let host = self.host(hs_name).await?;
        Ok(self
            .store()
            .list_vms(host.id)
            .await?
            .into_iter()
            .filter(|vm| actor.owns(vm.owner_id))
            .map(VmView::from)
            .collect())
    }

    /// The VMs the caller may see on every host, by id, a page at a time:
    /// all of them for operators, their own for customers.
    pub async fn all_vms(&self, actor: &Actor, page: Page) -> Result<VmPage, CoreError> {
        actor.require("vm.instance.read")?;
        self.vm_page(actor, None, page).await
    }

    /// The host's VMs the caller may see, by id, a page at a time, with
    /// how many there are: the same VMs `list_vms` returns, paged in the
    /// store (one count and one `LIMIT`/`OFFSET` query, both indexed).
    pub async fn host_vm_page(
        &self,
        actor: &Actor,
        hs_name: &str,
        page: Page,
    ) -> Result<VmPage, CoreError> {
        actor.require("vm.instance.read")?;
        let host = self.host(hs_name).await?;
        self.vm_page(actor, Some(host.id), page).await
    }

    /// A page of the VMs the caller sees, on one host or all.
    async fn vm_page(
        &self,
        actor: &Actor,
        host_id: Option<i64>,
        page: Page,
    ) -> Result<VmPage, CoreError> {
        // The ownership rule of `Actor::owns`, as a filter the store applies.
        let owner_id = match (actor.sees_all_vms(), actor.user_id) {
            (true, _) => None,
            (false, Some(id)) => Some(id),
            (false, None) => {
                return Ok(VmPage {
                    items: Vec::new(),
                    total: 0,
                })
            }
        };
        let (vms, total) = self
            .store()
            .vm_page(VmFilter { host_id, owner_id }, page)
            .await?;
        Ok(VmPage {
            items: vms.into_iter().map(VmView::from).collect(),
            total,
        })
    }

    /// A VM named by its numeric id, resolved once with the ownership
    /// check: a VM the caller may not see is "not found", and the refusal
    /// is logged like one by name. Faces then act on its host and uuid.
    pub async fn locate_vm(&self, actor: &Actor, id: i64) -> Result<VmView, CoreError> {
        let found = async {
            actor.require("vm.instance.read")?;
            match self.store().vm_by_id(id).await? {
                Some(vm) if actor.owns(vm.owner_id) => Ok(VmView::from(vm)),
                _ => Err(CoreError::not_found("vm", format!("#{id}"))),
            }
        }
        .await;
        if let Err(e) = &found {
            self.log_refused(actor, "vm.instance.read", None, Some(&format!("#{id}")), e)
                .await;
        }
        found
    }

    pub async fn get_vm(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<VmView, CoreError> {
        let (_, vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        Ok(vm.into())
    }

    pub async fn create_vm(
        &self,
        actor: &Actor,
        hs_name: &str,
        input: VmCreateInput,
    ) -> Result<CreatedVm, CoreError> {
        self.authorize(
            actor,
            "vm.instance.create",
            "vm.create",
            Some(hs_name),
            None,
        )
        .await?;
        let host = self.host(hs_name).await?;
        let owner_ref = input.owner.clone();
        let prepared = async {
            let owner = self.owner_for_create(actor, owner_ref.as_deref()).await?;
            let prepared = self.prepare_create(&host, input).await?;
            // Held until the row exists, so the quota counts it.
            let guard = self
                .reserve_quota(owner, demand_of(&prepared.config, 1))
                .await?;
            Ok((owner, prepared, guard))
        }
        .await;
        let vm_uuid = prepared
            .as_ref()
            .map(|(_, p, _)| p.config.vm_uuid.clone())
            .unwrap_or_default();
        let subject = match vm_uuid.as_str() {
            "" => Subject::host(hs_name),
            uuid => Subject::vm(hs_name, uuid),
        };
        self.run_audited(
            actor,
            "vm.create",
            subject,
            prepared,
            async |(owner, prepared, quota_guard), op| {
                op.step("registering", 5).await;
                let PreparedCreate {
                    mut config,
                    spec,
                    sealed_pass: sealed,
                    generated_macs,
                } = prepared;
                // The unique row comes first: of two concurrent creates of one
                // name, exactly one gets past this line. A MAC we drew that
                // another create took meanwhile is drawn again; a MAC the
                // caller chose that is taken refuses the create.
                let mut redraws = 0;
                let vm = loop {
                    let inserted = self
                        .store()
                        .insert_vm(NewVm {
                            host_id: host.id,
                            uuid: &config.vm_uuid,
                            config: &config,
                            state: PowerState::Stopped,
                            os_pass_sealed: sealed.as_deref(),
                            owner_id: owner,
                        })
                        .await;
                    let collision = match inserted {
                        Ok(vm) => break vm,
                        Err(StoreError::Conflict(c)) if c.table == "vm_nics" => c.value,
                        Err(StoreError::Conflict(_)) => {
                            return Err(CoreError::Conflict(format!(
                                "vm_uuid {} already exists",
                                config.vm_uuid
                            )))
                        }
                        Err(other) => return Err(other.into()),
                    };
                    let mac = collision.unwrap_or_default();
                    let drawn = config
                        .nic_all
                        .iter()
                        .find(|(name, nic)| nic.mac_addr == mac && generated_macs.contains(*name))
                        .map(|(name, _)| name.clone());
                    match drawn {
                        Some(name) if redraws < MAC_ATTEMPTS => {
                            redraws += 1;
                            tracing::info!(vm = %config.vm_uuid, %mac, "a drawn MAC was taken meanwhile; drawing another");
                            self.redraw_mac(&mut config.nic_all, &name).await?;
                        }
                        _ => {
                            return Err(CoreError::invalid(
                                "nic_all",
                                format!("mac_addr {mac} is used by another VM"),
                            ))
                        }
                    }
                };
                drop(quota_guard);
                // The engine removes what it made if it fails; the row (and
                // with it the addresses) goes here.
                let services = self.clone();
                let (row_id, row_host) = (vm.id, host.clone());
                op.undo_on_failure("remove the VM row", async move {
                    services.store().delete_vm(row_id).await?;
                    services.refresh_dhcp(&row_host).await;
                    Ok(())
                });
                self.create_on_engine(&host, &vm, config, spec, op).await?;
                op.step("created", 100).await;
                Ok(CreatedVm {
                    vm: self.vm(&host, &vm.uuid).await?.into(),
                    task_id: op.task_id,
                })
            },
            |c| serde_json::json!({"vm_uuid": c.vm.uuid}),
        )
        .await
    }

    /// Who a new VM belongs to: the named user (which takes
    /// `vm.all.manage`), else a customer caller, else nobody (the operator).
    async fn owner_for_create(
        &self,
        actor: &Actor,
        owner: Option<&str>,
    ) -> Result<Option<i64>, CoreError> {
        match owner.map(str::trim).filter(|o| !o.is_empty()) {
            Some(reference) => {
                actor.require("vm.all.manage")?;
                let user = self
                    .user_by_reference(reference)
                    .await
                    .map_err(|_| CoreError::invalid("owner", format!("no user {reference}")))?;
                Ok(Some(user.id))
            }
            None if actor.sees_all_vms() => Ok(None),
            None => Ok(actor.user_id),
        }
    }

    /// Give a VM to another user (or to nobody); the new owner's quota
    /// must have room for it.
    pub async fn set_vm_owner(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        owner: Option<&str>,
    ) -> Result<VmView, CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.all.manage", Some("vm.owner"), hs_name, vm_uuid)
            .await?;
        let checked = async {
            let owner = match owner.map(str::trim).filter(|o| !o.is_empty()) {
                Some(reference) => Some(
                    self.user_by_reference(reference)
                        .await
                        .map_err(|_| CoreError::invalid("owner", format!("no user {reference}")))?
                        .id,
                ),
                None => None,
            };
            // Staying with its owner, the VM needs no new room.
            let guard = if owner != vm.owner_id {
                let mut demand = demand_of(&vm.config, 1);
                demand.nat_rules = self.store().nat_rules(Scope::Vm(vm.id)).await?.len() as u64;
                demand.proxies = self.store().proxies(Scope::Vm(vm.id)).await?.len() as u64;
                self.reserve_quota(owner, demand).await?
            } else {
                None
            };
            Ok((owner, guard))
        }
        .await;
        let op_target = format!("{hs_name}/{vm_uuid}");
        self.run_audited(
            actor,
            "vm.owner",
            Subject::target(&op_target),
            checked,
            async |(owner, _guard), _op| {
                self.store().set_vm_owner(vm.id, owner).await?;
                Ok(VmView::from(self.vm(&host, vm_uuid).await?))
            },
            |v| serde_json::json!({"owner_id": v.owner_id}),
        )
        .await
    }

    /// Addresses, disk, seed and DHCP of a freshly registered VM.
    async fn create_on_engine(
        &self,
        host: &Host,
        vm: &Vm,
        mut config: VmConfig,
        mut spec: VmSpec,
        op: &super::journal::Operation,
    ) -> Result<(), CoreError> {
        {
            let lock = self.host_net_lock(host.id);
            let _guard = lock.lock().await;
            op.step("addresses", 10).await;
            self.sync_addresses(host, vm, &mut config).await?;
            self.store().update_vm_config(vm.id, &config, false).await?;
        }
        spec.nics = nic_specs(host, &config);
        let engine = self.engine_of(host)?;
        let progress = op.progress();
        let ctx = self.host_context(host);
        engine.create_vm(&ctx, &spec, &progress).await?;
        let fresh = self.vm(host, &vm.uuid).await?;
        let seeded = async {
            let seed = self.seed_of(&fresh).await?;
            engine.write_seed(&ctx, &vm.uuid, &seed).await?;
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = seeded {
            if let Err(undo) = engine.delete_vm(&ctx, &vm.uuid).await {
                tracing::error!(vm = %vm.uuid, error = %undo, "could not remove the files of a failed create");
            }
            return Err(e);
        }
        self.refresh_dhcp(host).await;
        Ok(())
    }

    /// Validate a create request and fill the generated parts (name, MACs).
    async fn prepare_create(
        &self,
        host: &Host,
        input: VmCreateInput,
    ) -> Result<PreparedCreate, CoreError> {
        if !host.enabled {
            return Err(CoreError::Conflict(format!(
                "host {} is disabled",
                host.name
            )));
        }
        let mut config = input.config;
        if config.vm_uuid.trim().is_empty() {
            config.vm_uuid = uuid::Uuid::new_v4().to_string();
        }
        validate::path_name("vm_uuid", &config.vm_uuid)?;
        let limits = self.vm_limits(host).await;
        check_definition(&config, &limits)?;
        let (os_name, image, min_gb) = os_image_of(host, &config.os_name)?;
        config.os_name = os_name;
        if config.hdd_num < min_gb * 1024 {
            return Err(CoreError::invalid(
                "hdd_num",
                format!("{} needs at least {min_gb} GB", config.os_name),
            ));
        }
        if host.config.limits_nums > 0 {
            let count = self
                .store()
                .count_vms(VmFilter {
                    host_id: Some(host.id),
                    owner_id: None,
                })
                .await?;
            if count >= u64::from(host.config.limits_nums) {
                return Err(CoreError::Conflict(format!(
                    "host {} allows at most {} VMs (limits_nums)",
                    host.name, host.config.limits_nums
                )));
            }
        }
        fill_default_dns(&mut config.nic_all, &input.default_dns);
        config.nic_all = normalize_nics(std::mem::take(&mut config.nic_all))?;
        // An empty os_pass is "no password" (billing modules send one).
        let sealed = match input.os_pass.filter(|p| !p.is_empty()) {
            Some(p) => {
                validate::vm_password("os_pass", &p)?;
                Some(self.inner.secrets.seal(&p)?)
            }
            None => None,
        };
        for (name, nic) in &config.nic_all {
            self.check_new_nic(host, &format!("nic_all.{name}."), nic)
                .await?;
        }
        let generated_macs = self.fill_macs(&mut config.nic_all).await?;
        let spec = spec_of(host, &config, &image);
        Ok(PreparedCreate {
            config,
            spec,
            sealed_pass: sealed,
            generated_macs,
        })
    }

    /// A NIC a VM is about to get (on create or plug): its kind has a
    /// bridge on the host, its MAC is nobody's, and addresses it names lie
    /// in the host's pools of its kind. `prefix` starts the field names.
    pub(crate) async fn check_new_nic(
        &self,
        host: &Host,
        prefix: &str,
        nic: &NicConfig,
    ) -> Result<(), CoreError> {
        let field = |f: &str| format!("{prefix}{f}");
        if nic.nic_type == "pub" && host.config.network_pub.is_empty() {
            return Err(CoreError::invalid(
                &field("nic_type"),
                format!("host {} has no public network (network_pub)", host.name),
            ));
        }
        // The other VM may be another customer's: it is not named. A NIC
        // without a MAC gets a free one later (`fill_macs`).
        if !nic.mac_addr.is_empty() && self.store().mac_in_use(&nic.mac_addr).await? {
            return Err(CoreError::invalid(
                &field("mac_addr"),
                format!("{} is used by another VM", nic.mac_addr),
            ));
        }
        let pools = Self::pools_of(host)?;
        for (addr, vers, f) in [
            (&nic.ip4_addr, IpVersion::V4, "ip4_addr"),
            (&nic.ip6_addr, IpVersion::V6, "ip6_addr"),
        ] {
            if addr.is_empty() {
                continue;
            }
            let ip = crate::ipam::parse_ip(&field(f), addr, vers)?;
            if !pools
                .iter()
                .any(|p| p.kind.as_str() == nic.nic_type && p.contains(ip))
            {
                return Err(CoreError::invalid(
                    &field(f),
                    format!("{ip} is not inside the host's {} pools", nic.nic_type),
                ));
            }
        }
        Ok(())
    }

    async fn vm_limits(&self, host: &Host) -> VmLimits {
        let plan = host.config.server_plan;
        let needs_host = plan.cpu_num == 0 || plan.mem_num == 0;
        let status = if needs_host {
            self.current_host_status(&host.name, false)
                .await
                .ok()
                .and_then(|r| r.status)
        } else {
            None
        };
        let pick = |planned: u64, observed: Option<u64>, fallback: u64| {
            if planned > 0 {
                planned
            } else {
                observed.filter(|v| *v > 0).unwrap_or(fallback)
            }
        };
        VmLimits {
            cpu: pick(
                plan.cpu_num as u64,
                status.as_ref().map(|s| s.cpu_total),
                256,
            ) as u32,
            mem_mb: pick(
                plan.mem_num,
                status.as_ref().map(|s| s.mem_total),
                1024 * 1024,
            ),
            hdd_mb: if plan.hdd_num > 0 {
                plan.hdd_num
            } else {
                DEFAULT_HDD_MAX_MB
            },
        }
    }

    pub async fn update_vm(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: VmUpdateInput,
    ) -> Result<UpdatedVm, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.instance.update",
                Some("vm.update"),
                hs_name,
                vm_uuid,
            )
            .await?;
        self.refuse_if_busy(actor, &vm, "vm.update", hs_name)
            .await?;
        let lock = self.vm_lock(vm_uuid);
        let _guard = lock.lock().await;
        let checked = async {
            if let Some(p) = input.os_pass.as_ref().filter(|p| !p.is_empty()) {
                validate::vm_password("os_pass", p)?;
            }
            let merged = self.merge_update(&host, &vm, &input).await?;
            let growth = Demand {
                vcpus: u64::from(merged.cpu_num.saturating_sub(vm.config.cpu_num)),
                memory_mb: merged.mem_num.saturating_sub(vm.config.mem_num),
                disk_mb: merged.hdd_num.saturating_sub(vm.config.hdd_num),
                ..Demand::default()
            };
            let guard = self.reserve_quota(vm.owner_id, growth).await?;
            Ok((merged, guard))
        }
        .await;
        self.run_audited(
            actor,
            "vm.update",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(merged, _quota_guard), op| {
                let task_id = op.task_id;
                let engine = self.engine_of(&host)?;
                let mut merged = merged;
                if merged.nic_all != vm.config.nic_all {
                    let lock = self.host_net_lock(host.id);
                    let _net = lock.lock().await;
                    self.sync_addresses(&host, &vm, &mut merged).await?;
                }
                let outcome = engine
                    .update_vm(&self.host_context(&host), &stored_spec_of(&host, &merged))
                    .await?;
                let pending = vm.pending_restart || outcome == UpdateOutcome::PendingRestart;
                self.store()
                    .update_vm_config(vm.id, &merged, pending)
                    .await?;
                if let Some(p) = input.os_pass.as_ref().filter(|p| !p.is_empty()) {
                    self.store()
                        .set_vm_password(vm.id, &self.inner.secrets.seal(p)?)
                        .await?;
                }
                let fresh = self.vm(&host, vm_uuid).await?;
                if fresh.config.nic_all != vm.config.nic_all || input.os_pass.is_some() {
                    self.refresh_dhcp(&host).await;
                    self.write_seed(&host, &fresh).await;
                }
                let (applied, mut message) = match outcome {
                    UpdateOutcome::Applied => ("now", "changes applied".to_string()),
                    UpdateOutcome::PendingRestart => (
                        "next_start",
                        "the VM is running: CPU, memory and disk changes apply at its next start"
                            .to_string(),
                    ),
                };
                if let Some(p) = input.os_pass.as_ref().filter(|p| !p.is_empty()) {
                    message.push_str("; ");
                    message.push_str(&self.password_into_running_guest(&host, &fresh, p).await);
                }
                Ok(UpdatedVm {
                    vm: fresh.into(),
                    applied,
                    message,
                    task_id,
                })
            },
            |u| serde_json::json!({"applied": u.applied}),
        )
        .await
    }

    /// A new root password of a running VM also goes into the guest now,
    /// through its agent, as billing modules expect of a password change;
    /// the seed carries it at the next boot either way. Says which.
    async fn password_into_running_guest(&self, host: &Host, vm: &Vm, password: &str) -> String {
        if vm.state != PowerState::Running {
            return "the new password applies at the VM's next start".into();
        }
        let set = match self.engine_of(host) {
            Ok(engine) => {
                engine
                    .agent_set_password(&self.host_context(host), &vm.uuid, "root", password)
                    .await
            }
            Err(e) => return format!("the new password applies at the VM's next start ({e})"),
        };
        match set {
            Ok(()) => "the new password is set in the running guest".into(),
            Err(e) => {
                format!("the new password applies at the VM's next start (the guest agent: {e})")
            }
        }
    }

    async fn merge_update(
        &self,
        host: &Host,
        vm: &Vm,
        input: &VmUpdateInput,
    ) -> Result<VmConfig, CoreError> {
        let mut merged = input.patch.apply_to(&vm.config)?;
        if merged.hdd_num < vm.config.hdd_num {
            return Err(CoreError::invalid(
                "hdd_num",
                format!("disks can only grow (now {} MB)", vm.config.hdd_num),
            ));
        }
        check_definition(&merged, &self.vm_limits(host).await)?;
        merged.nic_all = normalize_nics(std::mem::take(&mut merged.nic_all))?;
        self.fill_macs(&mut merged.nic_all).await?;
        Ok(merged)
    }

    pub async fn delete_vm(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<(), CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.instance.delete",
                Some("vm.delete"),
                hs_name,
                vm_uuid,
            )
            .await?;
        self.refuse_if_busy(actor, &vm, "vm.delete", hs_name)
            .await?;
        let lock = self.vm_lock(vm_uuid);
        let _guard = lock.lock().await;
        self.run_audited(
            actor,
            "vm.delete",
            Subject::vm(hs_name, vm_uuid),
            Ok(()),
            async |(), _op| self.remove_vm_everywhere(&host, &vm).await,
            |_| serde_json::json!({"deleted": vm_uuid}),
        )
        .await
    }

    /// Stop the VM, remove its files, then its row. A VM whose files are
    /// already gone is still removed from the database.
    pub(crate) async fn remove_vm_everywhere(&self, host: &Host, vm: &Vm) -> Result<(), CoreError> {
        let engine = self.engine_of(host)?;
        self.remove_vm_forwards(vm.id).await?;
        match engine.delete_vm(&self.host_context(host), &vm.uuid).await {
            Ok(()) | Err(EngineError::VmNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.store().delete_vm(vm.id).await?;
        self.refresh_dhcp(host).await;
        self.refresh_proxy_routes().await?;
        Ok(())
    }

    pub async fn power_vm(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        action: PowerAction,
    ) -> Result<PowerOutcome, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.power.write",
                Some(power_action_name(action)),
                hs_name,
                vm_uuid,
            )
            .await?;
        self.refuse_if_busy(actor, &vm, power_action_name(action), hs_name)
            .await?;
        let lock = self.vm_lock(vm_uuid);
        let _guard = lock.lock().await;
        let action_name = power_action_name(action);
        self.run_audited(
            actor,
            action_name,
            Subject::vm(hs_name, vm_uuid),
            Ok(()),
            async |(), op| {
                let task_id = op.task_id;
                let engine = self.engine_of(&host)?;
                let ctx = self.host_context(&host);
                op.step(action.as_str(), 10).await;
                let outcome = engine
                    .power(&ctx, vm_uuid, action, self.inner.opts.stop_timeout)
                    .await;
                // Whatever happened, the row follows what the engine now sees.
                let state = engine
                    .state(&ctx, vm_uuid)
                    .await
                    .unwrap_or(PowerState::Unknown);
                let pending =
                    vm.pending_restart && !(action == PowerAction::Start && outcome.is_ok());
                self.store().set_vm_state(vm.id, state, pending).await?;
                outcome?;
                Ok(PowerOutcome {
                    action: action.as_str(),
                    state,
                    task_id,
                })
            },
            |p| serde_json::json!({"state": p.state}),
        )
        .await
    }

    /// Power state now, plus the samples of the last `minutes` minutes.
    pub async fn vm_status(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        minutes: u32,
    ) -> Result<VmStatusReport, CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        let engine = self.engine_of(&host)?;
        let ctx = self.host_context(&host);
        let state = engine.state(&ctx, vm_uuid).await?;
        let current = engine.sample(&ctx, vm_uuid).await?;
        let last_at = vm.last_status.as_ref().map(|s| s.on_update).unwrap_or(0);
        if state != vm.state
            || now() - last_at >= self.inner.opts.status_sample_every.as_secs() as i64
        {
            self.store()
                .record_vm_status(vm.id, state, &current)
                .await?;
        }
        let since = now() - i64::from(minutes.max(1)) * 60;
        let history = self
            .store()
            .vm_history(vm.id, since, now(), 1000)
            .await?
            .into_iter()
            .map(|s| s.status)
            .collect();
        Ok(VmStatusReport {
            state,
            pending_restart: vm.pending_restart,
            current,
            history,
        })
    }

    /// Import VMs present on the host but missing from the database.
    pub async fn scan_vms(
        &self,
        actor: &Actor,
        hs_name: &str,
        prefix: &str,
    ) -> Result<ScanReport, CoreError> {
        self.authorize(actor, "host.vm.scan", "vm.scan", Some(hs_name), None)
            .await?;
        let host = self.host(hs_name).await?;
        self.run_audited(
            actor,
            "vm.scan",
            Subject::host(hs_name),
            Ok(()),
            async |(), _op| {
                let engine = self.engine_of(&host)?;
                let found = engine.scan(&self.host_context(&host)).await?;
                let mut report = ScanReport {
                    scanned: found.len(),
                    added: 0,
                    added_vms: Vec::new(),
                    skipped: Vec::new(),
                    prefix_filter: prefix.to_string(),
                };
                for item in found {
                    let spec = item.spec;
                    if !spec.uuid.starts_with(prefix)
                        || validate::path_name("vm_uuid", &spec.uuid).is_err()
                    {
                        continue;
                    }
                    if self
                        .store()
                        .vm_by_uuid(host.id, &spec.uuid)
                        .await?
                        .is_some()
                    {
                        continue;
                    }
                    let config = config_of_scanned(&host, &spec);
                    let inserted = self
                        .store()
                        .insert_vm(NewVm {
                            host_id: host.id,
                            uuid: &spec.uuid,
                            config: &config,
                            state: item.state,
                            os_pass_sealed: None,
                            owner_id: None,
                        })
                        .await;
                    match inserted {
                        Ok(_) => {
                            report.added += 1;
                            report.added_vms.push(spec.uuid.clone());
                        }
                        // The name belongs to a VM of another host, or a MAC to
                        // another VM: importing it would clash, so say why not.
                        Err(StoreError::Conflict(what)) => report.skipped.push(ScanSkip {
                            vm_uuid: spec.uuid.clone(),
                            reason: format!("{what} is already used by another VM"),
                        }),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(report)
            },
            |r| serde_json::json!({"scanned": r.scanned, "added": r.added}),
        )
        .await
    }
}

fn power_action_name(action: PowerAction) -> &'static str {
    match action {
        PowerAction::Start => "vm.power.start",
        PowerAction::Stop => "vm.power.stop",
        PowerAction::HardStop => "vm.power.hard_stop",
        PowerAction::Reset => "vm.power.reset",
        PowerAction::HardReset => "vm.power.hard_reset",
        PowerAction::Pause => "vm.power.pause",
        PowerAction::Resume => "vm.power.resume",
    }
}

fn check_definition(config: &VmConfig, limits: &VmLimits) -> Result<(), CoreError> {
    validate::display_text("vm_name", &config.vm_name)?;
    if config.cpu_num == 0 || config.cpu_num > limits.cpu {
        return Err(CoreError::invalid(
            "cpu_num",
            format!("must be between 1 and {}", limits.cpu),
        ));
    }
    if config.mem_num < MIN_MEM_MB || config.mem_num > limits.mem_mb {
        return Err(CoreError::invalid(
            "mem_num",
            format!("must be between {MIN_MEM_MB} and {} MB", limits.mem_mb),
        ));
    }
    if config.hdd_num == 0 || config.hdd_num > limits.hdd_mb {
        return Err(CoreError::invalid(
            "hdd_num",
            format!("must be between 1 and {} MB", limits.hdd_mb),
        ));
    }
    Ok(())
}

/// The OS image a create names: by display name, or by file name as
/// OpenIDCS also accepts; when none is named, the host's only image.
/// Returns the display name, the file and the minimum disk in GB.
fn os_image_of(host: &Host, named: &str) -> Result<(String, String, u64), CoreError> {
    let maps = &host.config.system_maps;
    let named = named.trim();
    if named.is_empty() {
        return match maps.iter().next() {
            Some((name, (file, min))) if maps.len() == 1 => Ok((name.clone(), file.clone(), *min)),
            _ => Err(CoreError::invalid(
                "os_name",
                format!(
                    "is required: host {} has {} OS images ({})",
                    host.name,
                    maps.len(),
                    maps.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
        };
    }
    maps.get_key_value(named)
        .or_else(|| maps.iter().find(|(_, (file, _))| file == named))
        .map(|(name, (file, min))| (name.clone(), file.clone(), *min))
        .ok_or_else(|| {
            CoreError::invalid(
                "os_name",
                format!("unknown system {named:?} on host {}", host.name),
            )
        })
}

/// Validate NIC names, types and the MACs callers chose (lower-cased, each
/// once); NICs without a MAC stay without (see `fill_macs`).
pub(crate) fn normalize_nics(
    nics: BTreeMap<String, NicConfig>,
) -> Result<BTreeMap<String, NicConfig>, CoreError> {
    let mut out = BTreeMap::new();
    let mut seen_macs = std::collections::HashSet::new();
    for (name, mut nic) in nics {
        validate::path_name("nic_all", &name)?;
        if !matches!(nic.nic_type.as_str(), "" | "nat" | "pub") {
            return Err(CoreError::invalid(
                &format!("nic_all.{name}.nic_type"),
                "must be nat or pub",
            ));
        }
        if nic.nic_type.is_empty() {
            nic.nic_type = "nat".into();
        }
        // A NIC without a MAC gets a free one from `fill_macs`, after this.
        if nic.mac_addr.is_empty() {
            out.insert(name, nic);
            continue;
        }
        validate::mac_address("mac_addr", &nic.mac_addr).map_err(|_| {
            CoreError::invalid(&format!("nic_all.{name}.mac_addr"), "must be a MAC address")
        })?;
        nic.mac_addr = nic.mac_addr.to_ascii_lowercase();
        if !seen_macs.insert(nic.mac_addr.clone()) {
            return Err(CoreError::invalid(
                &format!("nic_all.{name}.mac_addr"),
                "is used twice",
            ));
        }
        out.insert(name, nic);
    }
    Ok(out)
}

/// The engine definition of a stored VM: its OS image is the file its
/// `os_name` maps to on the host (empty when the host no longer maps it).
pub(crate) fn stored_spec_of(host: &Host, config: &VmConfig) -> VmSpec {
    let image = host
        .config
        .system_maps
        .get(&config.os_name)
        .map(|(file, _)| file.as_str())
        .unwrap_or_default();
    spec_of(host, config, image)
}

pub(crate) fn spec_of(host: &Host, config: &VmConfig, image: &str) -> VmSpec {
    VmSpec {
        uuid: config.vm_uuid.clone(),
        cpu_num: config.cpu_num,
        mem_mb: config.mem_num,
        hdd_mb: config.hdd_num,
        os_image: image.to_string(),
        nics: nic_specs(host, config),
        iso: (!config.cdrom.is_empty()).then(|| config.cdrom.clone()),
    }
}

/// NICs in order, each on the host bridge of its kind (none configured:
/// QEMU's isolated user-mode network).
pub(crate) fn nic_specs(host: &Host, config: &VmConfig) -> Vec<NicSpec> {
    config
        .nic_all
        .iter()
        .map(|(name, nic)| {
            let bridge = match nic.nic_type.as_str() {
                "pub" => &host.config.network_pub,
                _ => &host.config.network_nat,
            };
            NicSpec {
                name: name.clone(),
                mac: nic.mac_addr.clone(),
                bridge: (!bridge.is_empty()).then(|| bridge.clone()),
            }
        })
        .collect()
}

/// The API-level definition of a VM found by scan.
fn config_of_scanned(host: &Host, spec: &VmSpec) -> VmConfig {
    let os_name = host
        .config
        .system_maps
        .iter()
        .find(|(_, (file, _))| *file == spec.os_image)
        .map(|(display, _)| display.clone())
        .unwrap_or_else(|| spec.os_image.clone());
    VmConfig {
        vm_uuid: spec.uuid.clone(),
        os_name,
        cpu_num: spec.cpu_num,
        mem_num: spec.mem_mb,
        hdd_num: spec.hdd_mb,
        nic_all: spec
            .nics
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NicConfig {
                        nic_type: "nat".into(),
                        mac_addr: n.mac.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}
