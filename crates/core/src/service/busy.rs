//! Long VM operations (backup, restore, reinstall, snapshot jobs) mark the VM
//! busy for their whole run, so a second operation that would race them is
//! refused with 409 and the current activity, instead of queueing behind a
//! lock for minutes.
//!
//! A mark lives in this process (exact and immediate for the controller
//! running the operation) and, when controllers share the database, in a
//! store row every controller checks. The row is renewed while the
//! operation runs and expires `BUSY_TTL` after its controller died, so a
//! dead controller's marks lapse on their own.

use std::sync::Arc;
use std::time::Duration;

use super::{now, Services};
use crate::error::CoreError;
use crate::model::Vm;
use crate::store::{NewBusyMark, Store};

/// How long a shared mark outlives its last renewal.
const BUSY_TTL_SECS: i64 = 30;
/// How often a running operation renews its shared mark: three chances
/// before it would lapse.
const BUSY_RENEW: Duration = Duration::from_secs(10);

/// The shared row of a mark: its token and the task renewing it.
struct SharedMark {
    token: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// Clears the VM's busy mark when dropped (also when a task panics or its
/// future is dropped).
pub(crate) struct BusyGuard {
    services: Services,
    key: String,
    shared: Option<SharedMark>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.services
            .inner
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        let Some(shared) = self.shared.take() else {
            return;
        };
        shared.renewer.abort();
        // Drop cannot wait: the row goes in a task of its own. Until then
        // this controller ignores its own rows (the local mark decides);
        // without a runtime (process exit) the row lapses by itself.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.services.inner.store.clone();
            let key = std::mem::take(&mut self.key);
            runtime.spawn(async move {
                if let Err(e) = store.clear_busy(&key, &shared.token).await {
                    tracing::warn!(error = %e, vm = %key, "could not clear a busy mark; it lapses");
                }
            });
        }
    }
}

fn key_of(vm: &Vm) -> String {
    format!("{}:{}", vm.host_id, vm.uuid)
}

/// Keep the shared mark alive while its operation runs.
fn spawn_renewer(store: Arc<dyn Store>, key: String, token: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(BUSY_RENEW).await;
            if let Err(e) = store.renew_busy(&key, &token, now() + BUSY_TTL_SECS).await {
                tracing::warn!(error = %e, vm = %key, "could not renew a busy mark");
            }
        }
    })
}

impl Services {
    /// Mark `vm` busy with `activity` ("reinstalling", "backing up", …), or
    /// refuse `action` with the activity already running here or on another
    /// controller.
    pub(crate) async fn mark_busy(
        &self,
        vm: &Vm,
        activity: &'static str,
        action: &str,
    ) -> Result<BusyGuard, CoreError> {
        let key = key_of(vm);
        {
            let mut busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(current) = busy.get(&key) {
                return Err(busy_error(&vm.uuid, current, action));
            }
            busy.insert(key.clone(), activity);
        }
        // From here the guard owns the local mark: a refusal below drops it.
        let mut guard = BusyGuard {
            services: self.clone(),
            key,
            shared: None,
        };
        if !self.store().shared() {
            return Ok(guard);
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let t = now();
        let mark = NewBusyMark {
            key: &guard.key,
            activity,
            token: &token,
            expires_at: t + BUSY_TTL_SECS,
        };
        if let Some(current) = self.store().try_mark_busy(&mark, t).await? {
            return Err(busy_error(&vm.uuid, &current, action));
        }
        let renewer = spawn_renewer(self.inner.store.clone(), guard.key.clone(), token.clone());
        guard.shared = Some(SharedMark { token, renewer });
        Ok(guard)
    }

    /// `ensure_not_busy` for a mutating call, with the refusal logged.
    pub(crate) async fn refuse_if_busy(
        &self,
        actor: &super::Actor,
        vm: &Vm,
        action: &'static str,
        hs_name: &str,
    ) -> Result<(), CoreError> {
        let checked = self.ensure_not_busy(vm, action).await;
        if let Err(e) = &checked {
            self.log_refused(actor, action, Some(hs_name), Some(&vm.uuid), e)
                .await;
        }
        checked
    }

    /// Refuse `action` while a long operation runs on `vm`, on this
    /// controller or another.
    pub(crate) async fn ensure_not_busy(&self, vm: &Vm, action: &str) -> Result<(), CoreError> {
        let key = key_of(vm);
        {
            let busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(current) = busy.get(&key) {
                return Err(busy_error(&vm.uuid, current, action));
            }
        }
        if !self.store().shared() {
            return Ok(());
        }
        match self.store().busy_elsewhere(&key, now()).await? {
            Some(current) => Err(busy_error(&vm.uuid, &current, action)),
            None => Ok(()),
        }
    }
}

fn busy_error(uuid: &str, current: &str, action: &str) -> CoreError {
    CoreError::Conflict(format!(
        "vm {uuid} is {current}; {action} is not possible until it ends"
    ))
}
