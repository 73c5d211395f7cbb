//! At start, the tasks a stop (or `kill -9`) cut short: each multi-step
//! operation is either completed or undone, and its task says which.
//!
//! - `vm.create`: the half-made VM is removed entirely (forwards, files,
//!   addresses, row); a create is only durable once its task finished.
//! - `vm.snapshot.create`: a snapshot taken after the task began exists:
//!   the task is done; otherwise it failed.
//! - reinstall, restore, NIC plug/unplug, update: the engine's definition
//!   and the seed are rewritten from the stored VM, so what starts next
//!   matches the database (disks are replaced by rename, never half-written).
//! - anything else: failed, as interrupted.

use super::Services;
use crate::error::CoreError;
use crate::model::{Host, Task, TaskStatus, Vm};

const INTERRUPTED: &str = "interrupted: the controller stopped while the task ran";

/// What start-up recovery did, per task.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub completed: usize,
    pub undone: usize,
    pub failed: usize,
}

/// The end a recovered task is given.
enum Recovered {
    /// The operation's effect is in place: the task is done, with a result.
    Completed(serde_json::Value),
    /// It was rolled back or could not finish: the task failed, saying why.
    Undone(String),
    Failed(String),
}

impl Services {
    /// Complete or undo every task a stop interrupted (see the module):
    /// the running tasks of controllers that are gone (not seen for
    /// `CONTROLLER_STALE_SECS`, or before controllers were recorded). A
    /// job: the jobs owner runs it at start and every reconcile interval,
    /// so a dead controller's tasks are settled by another.
    pub async fn recover_interrupted_tasks(&self) -> Result<RecoveryReport, CoreError> {
        let mut report = RecoveryReport::default();
        let live = self
            .store()
            .live_controllers(super::now() - super::CONTROLLER_STALE_SECS)
            .await?;
        for task in self.store().running_tasks().await? {
            if task.controller.as_ref().is_some_and(|c| live.contains(c)) {
                continue;
            }
            let outcome = match self.recover(&task).await {
                Ok(o) => o,
                Err(e) => Recovered::Failed(format!("{INTERRUPTED}; recovery failed: {e}")),
            };
            let (status, result, error) = match outcome {
                Recovered::Completed(result) => {
                    report.completed += 1;
                    (TaskStatus::Succeeded, Some(result), None)
                }
                Recovered::Undone(why) => {
                    report.undone += 1;
                    (TaskStatus::Failed, None, Some(why))
                }
                Recovered::Failed(why) => {
                    report.failed += 1;
                    (TaskStatus::Failed, None, Some(why))
                }
            };
            tracing::warn!(task = task.id, kind = %task.kind, vm = ?task.vm_uuid, ?error, "interrupted task recovered");
            self.store()
                .finish_task(task.id, status, result.as_ref(), error.as_deref())
                .await?;
        }
        Ok(report)
    }

    async fn recover(&self, task: &Task) -> Result<Recovered, CoreError> {
        let Some(vm_uuid) = task.vm_uuid.as_deref() else {
            return Ok(Recovered::Failed(INTERRUPTED.into()));
        };
        match task.kind.as_str() {
            "vm.create" => self.undo_create(task, vm_uuid).await,
            "vm.snapshot.create" => self.settle_snapshot(task, vm_uuid).await,
            "vm.reinstall" | "vm.backup.restore" | "vm.nic.plug" | "vm.nic.unplug"
            | "vm.update" => self.rewrite_definition(task, vm_uuid).await,
            _ => Ok(Recovered::Failed(INTERRUPTED.into())),
        }
    }

    /// The task's VM: on its host when the task names one, else on any.
    async fn task_vm(&self, task: &Task, vm_uuid: &str) -> Result<Option<(Host, Vm)>, CoreError> {
        let hosts = match task.hs_name.as_deref() {
            Some(name) => match self.host(name).await {
                Ok(h) => vec![h],
                Err(CoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            },
            None => self
                .store()
                .list_hosts()
                .await?
                .into_iter()
                .map(|s| s.host)
                .collect(),
        };
        for host in hosts {
            if let Some(vm) = self.store().vm_by_uuid(host.id, vm_uuid).await? {
                return Ok(Some((host, vm)));
            }
        }
        Ok(None)
    }

    async fn undo_create(&self, task: &Task, vm_uuid: &str) -> Result<Recovered, CoreError> {
        match self.task_vm(task, vm_uuid).await? {
            // Only a row this create made: an older VM of the same name
            // (a create refused as a duplicate) is left alone.
            Some((host, vm)) if vm.created_at >= task.created_at => {
                self.remove_vm_everywhere(&host, &vm).await?;
                Ok(Recovered::Undone(format!(
                    "{INTERRUPTED}; the half-made VM {vm_uuid} was removed (row, addresses, forwards, files)"
                )))
            }
            Some(_) => Ok(Recovered::Failed(INTERRUPTED.into())),
            None => {
                // No row (never written, or already undone): files the
                // engine may have made go too.
                if let Some(host) = match task.hs_name.as_deref() {
                    Some(name) => self.host(name).await.ok(),
                    None => None,
                } {
                    let engine = self.engine_of(&host)?;
                    match engine.delete_vm(&self.host_context(&host), vm_uuid).await {
                        Ok(()) | Err(crate::engine::EngineError::VmNotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(Recovered::Undone(format!(
                    "{INTERRUPTED}; nothing of VM {vm_uuid} was kept"
                )))
            }
        }
    }

    async fn settle_snapshot(&self, task: &Task, vm_uuid: &str) -> Result<Recovered, CoreError> {
        let Some((host, _vm)) = self.task_vm(task, vm_uuid).await? else {
            return Ok(Recovered::Failed(INTERRUPTED.into()));
        };
        let snapshots = self
            .engine_of(&host)?
            .snapshot_list(&self.host_context(&host), vm_uuid)
            .await?;
        // The engine records whole seconds; the task began in the same one
        // at the earliest.
        match snapshots
            .iter()
            .filter(|s| s.created_at >= task.created_at)
            .max_by_key(|s| s.created_at)
        {
            Some(s) => Ok(Recovered::Completed(serde_json::json!({
                "snapshot": s.name,
                "with_memory": s.vm_state_bytes > 0,
                "recovered": "the snapshot was complete when the controller stopped",
            }))),
            None => Ok(Recovered::Failed(format!(
                "{INTERRUPTED}; no snapshot was made"
            ))),
        }
    }

    async fn rewrite_definition(&self, task: &Task, vm_uuid: &str) -> Result<Recovered, CoreError> {
        let Some((host, vm)) = self.task_vm(task, vm_uuid).await? else {
            return Ok(Recovered::Failed(INTERRUPTED.into()));
        };
        let engine = self.engine_of(&host)?;
        let ctx = self.host_context(&host);
        engine
            .update_vm(&ctx, &super::vms::stored_spec_of(&host, &vm.config))
            .await?;
        let seed = self.seed_of(&vm).await?;
        engine.write_seed(&ctx, vm_uuid, &seed).await?;
        self.refresh_dhcp(&host).await;
        Ok(Recovered::Failed(format!(
            "{INTERRUPTED}; the VM's definition and seed were rewritten from the stored VM"
        )))
    }
}
