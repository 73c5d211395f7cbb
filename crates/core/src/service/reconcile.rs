//! Bring the database in line with what the engines report: at start-up
//! (VMs survive a controller restart) and periodically (guests that power
//! themselves off).

use super::Services;
use crate::engine::PowerState;
use crate::error::CoreError;

/// What a reconcile pass changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReconcileReport {
    pub checked: usize,
    pub changed: usize,
}

impl Services {
    /// Ask the engines for the state of every known VM and store changes.
    pub async fn reconcile_vm_states(&self) -> Result<ReconcileReport, CoreError> {
        let mut report = ReconcileReport::default();
        let hosts = self.store().list_hosts().await?;
        for summary in hosts {
            let host = summary.host;
            let Ok(engine) = self.engine_of(&host) else {
                continue;
            };
            let ctx = self.host_context(&host);
            for vm in self.store().list_vms(host.id).await? {
                // A VM busy with an operation is left to that operation.
                let lock = self.vm_lock(&vm.uuid);
                let Ok(_guard) = lock.try_lock() else {
                    continue;
                };
                report.checked += 1;
                let state = match engine.state(&ctx, &vm.uuid).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(vm = %vm.uuid, error = %e, "state unknown during reconcile");
                        PowerState::Unknown
                    }
                };
                if state != vm.state {
                    tracing::info!(vm = %vm.uuid, from = vm.state.as_str(), to = state.as_str(), "vm state reconciled");
                    self.store()
                        .set_vm_state(vm.id, state, vm.pending_restart)
                        .await?;
                    report.changed += 1;
                }
            }
        }
        Ok(report)
    }
}
