//! Long VM operations (backup, restore, reinstall, snapshot jobs) mark the VM
//! busy for their whole run, so a second operation that would race them is
//! refused with 409 and the current activity, instead of queueing behind a
//! lock for minutes. The mark is per controller process.

use super::Services;
use crate::error::CoreError;
use crate::model::Vm;

/// Clears the VM's busy mark when dropped (also when a task panics or its
/// future is dropped).
pub(crate) struct BusyGuard {
    services: Services,
    key: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.services
            .inner
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

fn key_of(vm: &Vm) -> String {
    format!("{}:{}", vm.host_id, vm.uuid)
}

impl Services {
    /// Mark `vm` busy with `activity` ("reinstalling", "backing up", …), or
    /// refuse `action` with the activity already running.
    pub(crate) fn mark_busy(
        &self,
        vm: &Vm,
        activity: &'static str,
        action: &str,
    ) -> Result<BusyGuard, CoreError> {
        let key = key_of(vm);
        let mut busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = busy.get(&key) {
            return Err(busy_error(&vm.uuid, current, action));
        }
        busy.insert(key.clone(), activity);
        Ok(BusyGuard {
            services: self.clone(),
            key,
        })
    }

    /// `ensure_not_busy` for a mutating call, with the refusal logged.
    pub(crate) async fn refuse_if_busy(
        &self,
        actor: &super::Actor,
        vm: &Vm,
        action: &'static str,
        hs_name: &str,
    ) -> Result<(), CoreError> {
        let checked = self.ensure_not_busy(vm, action);
        if let Err(e) = &checked {
            self.log_refused(actor, action, Some(hs_name), Some(&vm.uuid), e)
                .await;
        }
        checked
    }

    /// Refuse `action` while a long operation runs on `vm`.
    pub(crate) fn ensure_not_busy(&self, vm: &Vm, action: &str) -> Result<(), CoreError> {
        let busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        match busy.get(&key_of(vm)) {
            Some(current) => Err(busy_error(&vm.uuid, current, action)),
            None => Ok(()),
        }
    }
}

fn busy_error(uuid: &str, current: &str, action: &str) -> CoreError {
    CoreError::Conflict(format!(
        "vm {uuid} is {current}; {action} is not possible until it ends"
    ))
}
