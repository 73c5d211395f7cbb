//! Backups: full compressed copies of a VM's system disk in the host's
//! backup path, taken while the VM runs. Taking and restoring run as tasks
//! in the background: the call returns the task id, the task shows progress.

use super::busy::BusyGuard;
use super::journal::{Operation, Subject};
use super::{Actor, Services};
use crate::engine::{BackupInfo, EngineError, PowerAction, PowerState};
use crate::error::CoreError;
use crate::model::{Host, Vm};
use crate::validate;

/// A long operation accepted and running as a task.
#[derive(Debug, Clone)]
pub struct TaskStarted {
    pub task_id: i64,
    /// What it works on (the backup's name, the OS image, …).
    pub name: String,
}

impl Services {
    pub async fn list_backups(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<Vec<BackupInfo>, CoreError> {
        let (host, _vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        Ok(self
            .engine_of(&host)?
            .backup_list(&self.host_context(&host), vm_uuid)
            .await?)
    }

    /// Start a backup; `name` empty: `backup-<unix time>`.
    pub async fn create_backup(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<TaskStarted, CoreError> {
        let action = "vm.backup.create";
        let (host, vm) = self
            .owned_vm(actor, "vm.backup.write", Some(action), hs_name, vm_uuid)
            .await?;
        let name = if name.is_empty() {
            format!("backup-{}", super::now())
        } else {
            name.to_string()
        };
        let checked = async {
            validate::path_name("name", &name)?;
            let busy = self.mark_busy(&vm, "backing up", "a backup").await?;
            let existing = self
                .engine_of(&host)?
                .backup_list(&self.host_context(&host), vm_uuid)
                .await?;
            if existing.iter().any(|b| b.name == name) {
                return Err(EngineError::BackupExists(name.clone()).into());
            }
            let limit = self.backup_limit(&vm) as usize;
            if existing.len() >= limit {
                return Err(CoreError::Conflict(format!(
                    "vm {vm_uuid} already has {} backups, the most it may hold ({limit}); delete one first",
                    existing.len()
                )));
            }
            self.check_owner_count(&vm, "backups").await?;
            Ok(busy)
        }
        .await;
        let services = self.clone();
        let backup = name.clone();
        let task_id = self
            .spawn_audited(
                actor,
                action,
                Subject::vm(hs_name, vm_uuid),
                checked,
                move |busy, op| async move {
                    let _busy = busy;
                    let res = async {
                        let progress = op.progress();
                        Ok(services
                            .engine_of(&host)?
                            .backup_create(&services.host_context(&host), &vm.uuid, &backup, &progress)
                            .await?)
                    }
                    .await;
                    (op, res)
                },
                |b: &BackupInfo| {
                    serde_json::json!({"backup": b.name, "file_bytes": b.file_bytes, "disk_bytes": b.disk_bytes})
                },
            )
            .await?;
        Ok(TaskStarted { task_id, name })
    }

    /// Start restoring a backup of this VM: a running VM is stopped,
    /// restored and started again.
    pub async fn restore_backup(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<TaskStarted, CoreError> {
        let action = "vm.backup.restore";
        let (host, vm) = self
            .owned_vm(actor, "vm.backup.write", Some(action), hs_name, vm_uuid)
            .await?;
        let checked = async {
            self.existing_backup(&host, &vm, name).await?;
            self.mark_busy(&vm, "restoring a backup", "a restore").await
        }
        .await;
        let services = self.clone();
        let backup = name.to_string();
        let restored = backup.clone();
        let task_id = self
            .spawn_audited(
                actor,
                action,
                Subject::vm(hs_name, vm_uuid),
                checked,
                move |busy, op| async move {
                    let res = services.run_restore(&host, &vm, &backup, &op, busy).await;
                    (op, res)
                },
                move |()| serde_json::json!({"restored": restored}),
            )
            .await?;
        Ok(TaskStarted {
            task_id,
            name: name.to_string(),
        })
    }

    async fn run_restore(
        &self,
        host: &Host,
        vm: &Vm,
        name: &str,
        op: &Operation,
        _busy: BusyGuard,
    ) -> Result<(), CoreError> {
        let engine = self.engine_of(host)?;
        let ctx = self.host_context(host);
        op.step("stopping", 5).await;
        let was_running = self.stop_for_disk_work(host, vm).await?;
        let progress = op.progress();
        let restored = engine.backup_restore(&ctx, &vm.uuid, name, &progress).await;
        if was_running {
            op.step("starting", 95).await;
            let started = engine
                .power(
                    &ctx,
                    &vm.uuid,
                    PowerAction::Start,
                    self.inner.opts.stop_timeout,
                )
                .await;
            if let Err(e) = started {
                tracing::warn!(vm = %vm.uuid, error = %e, "could not start the VM after a restore");
            }
        }
        let state = engine
            .state(&ctx, &vm.uuid)
            .await
            .unwrap_or(PowerState::Unknown);
        self.store()
            .set_vm_state(vm.id, state, vm.pending_restart)
            .await?;
        restored?;
        Ok(())
    }

    pub async fn delete_backup(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        let action = "vm.backup.delete";
        let (host, vm) = self
            .owned_vm(actor, "vm.backup.write", Some(action), hs_name, vm_uuid)
            .await?;
        let checked = async {
            self.existing_backup(&host, &vm, name).await?;
            self.ensure_not_busy(&vm, "a backup delete").await
        }
        .await;
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(), _op| {
                self.engine_of(&host)?
                    .backup_delete(&self.host_context(&host), vm_uuid, name)
                    .await?;
                Ok(())
            },
            |()| serde_json::json!({"backup": name}),
        )
        .await
    }

    /// The VM's `bak_num`, or the controller's default when it is 0.
    fn backup_limit(&self, vm: &Vm) -> u32 {
        match vm.config.bak_num {
            0 => self.inner.opts.backups_per_vm,
            n => n,
        }
    }

    /// A backup of exactly this VM (another VM's backup is not found here).
    async fn existing_backup(&self, host: &Host, vm: &Vm, name: &str) -> Result<(), CoreError> {
        let missing = || CoreError::not_found("backup", format!("{name} of vm {}", vm.uuid));
        validate::path_name("name", name).map_err(|_| missing())?;
        let list = self
            .engine_of(host)?
            .backup_list(&self.host_context(host), &vm.uuid)
            .await?;
        if list.iter().any(|b| b.name == name) {
            Ok(())
        } else {
            Err(missing())
        }
    }

    /// Stop a VM before its disk is replaced: ACPI first, forced when the
    /// guest does not power off in time. Returns whether it was running.
    pub(crate) async fn stop_for_disk_work(&self, host: &Host, vm: &Vm) -> Result<bool, CoreError> {
        let engine = self.engine_of(host)?;
        let ctx = self.host_context(host);
        let state = engine.state(&ctx, &vm.uuid).await?;
        if !state.is_live() {
            return Ok(false);
        }
        match engine
            .power(
                &ctx,
                &vm.uuid,
                PowerAction::Stop,
                self.inner.opts.stop_timeout,
            )
            .await
        {
            Ok(()) => {}
            Err(EngineError::StopTimeout(_)) | Err(EngineError::InvalidState { .. }) => {
                engine
                    .power(
                        &ctx,
                        &vm.uuid,
                        PowerAction::HardStop,
                        self.inner.opts.stop_timeout,
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.store()
            .set_vm_state(vm.id, PowerState::Stopped, vm.pending_restart)
            .await?;
        Ok(true)
    }
}
