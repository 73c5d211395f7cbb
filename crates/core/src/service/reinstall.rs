//! Reinstall: a new system disk from an OS image. The VM keeps its name,
//! NICs, addresses, forwards and domain bindings; its snapshots go with the
//! old disk. Runs as a background task.

use super::backups::TaskStarted;
use super::journal::{Operation, Subject};
use super::{Actor, Services};
use crate::engine::{PowerAction, PowerState};
use crate::error::CoreError;
use crate::model::{Host, Vm};

#[derive(Debug, Clone, Default)]
pub struct ReinstallInput {
    /// A `system_maps` display name of the host.
    pub os_name: String,
    /// The new root password; `None` keeps the current one.
    pub os_pass: Option<String>,
}

impl Services {
    pub async fn reinstall_vm(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: ReinstallInput,
    ) -> Result<TaskStarted, CoreError> {
        let action = "vm.reinstall";
        let (host, vm) = self
            .owned_vm(actor, "vm.reinstall.write", Some(action), hs_name, vm_uuid)
            .await?;
        let checked = async {
            let image = self.image_for(&host, &vm, &input.os_name)?;
            if let Some(p) = &input.os_pass {
                crate::validate::vm_password("os_pass", p)?;
            }
            let busy = self.mark_busy(&vm, "reinstalling", "a reinstall").await?;
            Ok((image, busy))
        }
        .await;
        let services = self.clone();
        let os_name = input.os_name.clone();
        let summary_os = os_name.clone();
        let task_id = self
            .spawn_audited(
                actor,
                action,
                Subject::vm(hs_name, vm_uuid),
                checked,
                move |(image, busy), op| async move {
                    let _busy = busy;
                    let res = services
                        .run_reinstall(&host, &vm, &input, &image, &op)
                        .await;
                    (op, res)
                },
                move |()| serde_json::json!({"os_name": summary_os}),
            )
            .await?;
        Ok(TaskStarted {
            task_id,
            name: os_name,
        })
    }

    /// The image file of `os_name` on the host, checked against the VM's disk.
    fn image_for(&self, host: &Host, vm: &Vm, os_name: &str) -> Result<String, CoreError> {
        let (image, min_gb) = host
            .config
            .system_maps
            .get(os_name)
            .cloned()
            .ok_or_else(|| {
                CoreError::invalid(
                    "os_name",
                    format!("unknown system {os_name:?} on host {}", host.name),
                )
            })?;
        if vm.config.hdd_num < min_gb * 1024 {
            return Err(CoreError::invalid(
                "os_name",
                format!("{os_name} needs a disk of at least {min_gb} GB"),
            ));
        }
        Ok(image)
    }

    async fn run_reinstall(
        &self,
        host: &Host,
        vm: &Vm,
        input: &ReinstallInput,
        image: &str,
        op: &Operation,
    ) -> Result<(), CoreError> {
        let engine = self.engine_of(host)?;
        let ctx = self.host_context(host);
        op.step("stopping", 5).await;
        let was_running = self.stop_for_disk_work(host, vm).await?;
        let mut config = vm.config.clone();
        config.os_name = input.os_name.clone();
        let spec = super::vms::spec_of(host, &config, image);
        let progress = op.progress();
        engine.reinstall(&ctx, &spec, &progress).await?;
        self.store().update_vm_config(vm.id, &config, false).await?;
        if let Some(p) = &input.os_pass {
            self.store()
                .set_vm_password(vm.id, &self.inner.secrets.seal(p)?)
                .await?;
        }
        op.step("seed", 90).await;
        let fresh = self.vm(host, &vm.uuid).await?;
        let seed = self.seed_of(&fresh).await?;
        engine.write_seed(&ctx, &vm.uuid, &seed).await?;
        if was_running {
            op.step("starting", 95).await;
            engine
                .power(
                    &ctx,
                    &vm.uuid,
                    PowerAction::Start,
                    self.inner.opts.stop_timeout,
                )
                .await?;
        }
        let state = engine
            .state(&ctx, &vm.uuid)
            .await
            .unwrap_or(PowerState::Unknown);
        self.store().set_vm_state(vm.id, state, false).await?;
        Ok(())
    }
}
