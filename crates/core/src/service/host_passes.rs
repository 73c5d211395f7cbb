//! Work over every host at once, for the monitor and the reconcile: each
//! host's pass runs beside the others (a bounded number at a time) and
//! within a time limit, so one slow or unreachable host never holds up the
//! rest. A host that does not answer has its VMs marked unknown; the next
//! pass that reaches it sets their state again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Services;
use crate::engine::PowerState;
use crate::error::CoreError;
use crate::model::{Host, Vm};

/// Hosts worked on at the same time in one pass.
const HOSTS_AT_ONCE: usize = 16;

impl Services {
    /// Run `pass` for every host that has VMs, with those VMs. A pass that
    /// overruns `limit` is dropped and its host's VMs are marked unknown.
    /// Returns what the finished passes returned.
    pub(crate) async fn per_host<T, F, Fut>(
        &self,
        what: &'static str,
        limit: Duration,
        pass: F,
    ) -> Result<Vec<T>, CoreError>
    where
        T: Send + 'static,
        F: Fn(Services, Host, Arc<[Vm]>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let hosts = self.store().list_hosts().await?;
        let mut by_host: HashMap<String, Vec<Vm>> = HashMap::new();
        for vm in self.store().all_vms().await? {
            by_host.entry(vm.hs_name.clone()).or_default().push(vm);
        }
        let at_once = Arc::new(Semaphore::new(HOSTS_AT_ONCE));
        let mut passes = JoinSet::new();
        for summary in hosts {
            let host = summary.host;
            let Some(vms) = by_host.remove(&host.name) else {
                continue;
            };
            // Shared by the pass and the overrun path, not copied.
            let vms: Arc<[Vm]> = vms.into();
            let work = pass(self.clone(), host.clone(), vms.clone());
            let services = self.clone();
            let at_once = at_once.clone();
            passes.spawn(async move {
                let _turn = at_once.acquire_owned().await;
                match tokio::time::timeout(limit, work).await {
                    Ok(done) => Some(done),
                    Err(_) => {
                        let why = format!("no answer within {} s", limit.as_secs());
                        services.host_unreachable(what, &host, &vms, &why).await;
                        None
                    }
                }
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = passes.join_next().await {
            if let Ok(Some(done)) = joined {
                results.push(done);
            }
        }
        Ok(results)
    }

    /// A host that does not answer: its VMs' state is unknown until it
    /// does again.
    pub(crate) async fn host_unreachable(&self, what: &str, host: &Host, vms: &[Vm], why: &str) {
        tracing::warn!(host = %host.name, reason = %why, "{what}: the host is unreachable; its VMs are unknown");
        for vm in vms.iter().filter(|vm| vm.state != PowerState::Unknown) {
            if let Err(e) = self
                .store()
                .set_vm_state(vm.id, PowerState::Unknown, vm.pending_restart)
                .await
            {
                tracing::warn!(vm = %vm.uuid, error = %e, "{what}: could not mark the VM unknown");
            }
        }
    }
}
