//! Bring the database in line with what the engines report: at start-up
//! (VMs survive a controller restart) and periodically (guests that power
//! themselves off).

use super::Services;
use crate::engine::{EngineError, PowerState};
use crate::error::CoreError;
use crate::model::{Host, Vm};

/// What a reconcile pass changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReconcileReport {
    pub checked: usize,
    pub changed: usize,
}

impl Services {
    /// Ask the engines for the state of every known VM and store changes;
    /// hosts side by side, each within `monitor_host_timeout` (see
    /// `host_passes.rs`).
    pub async fn reconcile_vm_states(&self) -> Result<ReconcileReport, CoreError> {
        let limit = self.inner.opts.monitor_host_timeout;
        let passes = self
            .per_host("reconcile", limit, |services, host, vms| async move {
                services.reconcile_host(&host, &vms).await
            })
            .await?;
        Ok(passes
            .into_iter()
            .fold(ReconcileReport::default(), |all, one| ReconcileReport {
                checked: all.checked + one.checked,
                changed: all.changed + one.changed,
            }))
    }

    async fn reconcile_host(&self, host: &Host, vms: &[Vm]) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let Ok(engine) = self.engine_of(host) else {
            return report;
        };
        let ctx = self.host_context(host);
        for vm in vms {
            // A VM busy with an operation is left to that operation.
            let lock = self.vm_lock(&vm.uuid);
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            report.checked += 1;
            let state = match engine.state(&ctx, &vm.uuid).await {
                Ok(s) => s,
                // The host itself does not answer: all its VMs are unknown,
                // and asking about the others would only wait again.
                Err(EngineError::Unavailable(why)) => {
                    self.host_unreachable("reconcile", host, vms, &why).await;
                    return report;
                }
                Err(e) => {
                    tracing::warn!(vm = %vm.uuid, error = %e, "state unknown during reconcile");
                    PowerState::Unknown
                }
            };
            if state != vm.state {
                tracing::info!(vm = %vm.uuid, from = vm.state.as_str(), to = state.as_str(), "vm state reconciled");
                match self
                    .store()
                    .set_vm_state(vm.id, state, vm.pending_restart)
                    .await
                {
                    Ok(()) => report.changed += 1,
                    Err(e) => {
                        tracing::warn!(vm = %vm.uuid, error = %e, "reconcile: could not store the state")
                    }
                }
            }
        }
        report
    }
}
