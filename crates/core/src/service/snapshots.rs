//! Snapshots: named, per VM, running (with memory) or stopped, limited per
//! VM (`snapshots_per_vm`) and per owner (quota `snapshots`).

use super::journal::Subject;
use super::{Actor, Services};
use crate::engine::SnapshotInfo;
use crate::error::CoreError;
use crate::model::{Host, Vm};
use crate::validate;

impl Services {
    pub async fn list_snapshots(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<Vec<SnapshotInfo>, CoreError> {
        let (host, _vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        Ok(self
            .engine_of(&host)?
            .snapshot_list(&self.host_context(&host), vm_uuid)
            .await?)
    }

    /// Take a snapshot; `name` empty: `snap-<unix time>`.
    pub async fn create_snapshot(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<SnapshotInfo, CoreError> {
        let action = "vm.snapshot.create";
        let (host, vm) = self
            .owned_vm(actor, "vm.snapshot.write", Some(action), hs_name, vm_uuid)
            .await?;
        let name = if name.is_empty() {
            format!("snap-{}", super::now())
        } else {
            name.to_string()
        };
        let checked = async {
            validate::path_name("name", &name)?;
            let busy = self
                .mark_busy(&vm, "taking a snapshot", "a snapshot")
                .await?;
            let existing = self.vm_snapshots(&host, &vm).await?;
            let limit = self.inner.opts.snapshots_per_vm as usize;
            if existing.len() >= limit {
                return Err(CoreError::Conflict(format!(
                    "vm {vm_uuid} already has {} snapshots, the most it may hold ({limit}); delete one first",
                    existing.len()
                )));
            }
            self.check_owner_count(&vm, "snapshots").await?;
            Ok(busy)
        }
        .await;
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |_busy, _op| {
                let engine = self.engine_of(&host)?;
                let ctx = self.host_context(&host);
                match engine.snapshot_create(&ctx, vm_uuid, &name).await {
                    Ok(info) => Ok(info),
                    Err(e @ crate::engine::EngineError::SnapshotExists(_)) => Err(e.into()),
                    // A job can fail to report (a timeout, a lost monitor)
                    // yet complete: a snapshot that exists is a success.
                    Err(e) => match engine.snapshot_list(&ctx, vm_uuid).await {
                        Ok(list) => match list.into_iter().find(|s| s.name == name) {
                            Some(info) => {
                                tracing::warn!(vm = %vm_uuid, snapshot = %name, error = %e, "snapshot reported a failure but exists; counted as taken");
                                Ok(info)
                            }
                            None => Err(e.into()),
                        },
                        Err(_) => Err(e.into()),
                    },
                }
            },
            |s| serde_json::json!({"snapshot": s.name, "with_memory": s.vm_state_bytes > 0}),
        )
        .await
    }

    pub async fn revert_snapshot(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        self.snapshot_change(actor, hs_name, vm_uuid, name, "vm.snapshot.revert")
            .await
    }

    pub async fn delete_snapshot(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        self.snapshot_change(actor, hs_name, vm_uuid, name, "vm.snapshot.delete")
            .await
    }

    /// Revert to or delete an existing snapshot.
    async fn snapshot_change(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        name: &str,
        action: &'static str,
    ) -> Result<(), CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.snapshot.write", Some(action), hs_name, vm_uuid)
            .await?;
        let reverting = action == "vm.snapshot.revert";
        let checked = async {
            validate::path_name("name", name)
                .map_err(|_| CoreError::not_found("snapshot", name))?;
            let busy = self
                .mark_busy(
                    &vm,
                    if reverting {
                        "reverting a snapshot"
                    } else {
                        "deleting a snapshot"
                    },
                    if reverting {
                        "a revert"
                    } else {
                        "a snapshot delete"
                    },
                )
                .await?;
            if !self
                .vm_snapshots(&host, &vm)
                .await?
                .iter()
                .any(|s| s.name == name)
            {
                return Err(CoreError::not_found("snapshot", name));
            }
            Ok(busy)
        }
        .await;
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |_busy, _op| {
                let engine = self.engine_of(&host)?;
                let ctx = self.host_context(&host);
                if reverting {
                    engine.snapshot_revert(&ctx, vm_uuid, name).await?;
                    // A memory snapshot may bring the VM back running (or not).
                    let state = engine.state(&ctx, vm_uuid).await?;
                    self.store()
                        .set_vm_state(vm.id, state, vm.pending_restart)
                        .await?;
                } else {
                    engine.snapshot_delete(&ctx, vm_uuid, name).await?;
                }
                Ok(())
            },
            |()| serde_json::json!({"snapshot": name}),
        )
        .await
    }

    pub(crate) async fn vm_snapshots(
        &self,
        host: &Host,
        vm: &Vm,
    ) -> Result<Vec<SnapshotInfo>, CoreError> {
        Ok(self
            .engine_of(host)?
            .snapshot_list(&self.host_context(host), &vm.uuid)
            .await?)
    }

    /// Refuse one more snapshot or backup when the VM's owner holds as many
    /// as their quota allows, counted over all their VMs.
    pub(crate) async fn check_owner_count(
        &self,
        vm: &Vm,
        quota: &'static str,
    ) -> Result<(), CoreError> {
        let Some(owner) = vm.owner_id else {
            return Ok(());
        };
        let limits = self.effective_quota(owner).await?;
        let limit = match quota {
            "snapshots" => limits.snapshots,
            _ => limits.backups,
        };
        let Some(limit) = limit else { return Ok(()) };
        let mut used = 0u64;
        for other in self.store().all_vms().await? {
            if other.owner_id != Some(owner) {
                continue;
            }
            let host = self.host(&other.hs_name).await?;
            let engine = self.engine_of(&host)?;
            let ctx = self.host_context(&host);
            used += match quota {
                "snapshots" => engine
                    .snapshot_list(&ctx, &other.uuid)
                    .await
                    .map(|l| l.len()),
                _ => engine.backup_list(&ctx, &other.uuid).await.map(|l| l.len()),
            }
            .unwrap_or(0) as u64;
        }
        if used + 1 > limit {
            return Err(CoreError::QuotaExceeded {
                quota,
                limit,
                requested: used + 1,
            });
        }
        Ok(())
    }
}
