//! Power actions and the observed power state.
//!
//! `reset` vs `hard_reset`: QEMU has no "soft reset" of its own, and the two
//! actions must differ in a way that matters to an operator. So:
//! - `hard_reset` is QMP `system_reset`: the reset button. Instant, no guest
//!   cooperation, same QEMU process; a pending definition stays pending.
//! - `reset` is a graceful restart: an ACPI power-button press, wait (up to
//!   the stop timeout) for the guest to shut down cleanly, then start a new
//!   QEMU from the stored definition. The guest flushes its filesystems, and
//!   definition changes waiting for a restart (CPU, memory, disk size) are
//!   applied, which the "restart to apply" message of `update_vm` promises.
//!   `send-key ctrl-alt-delete` was rejected: the guest reboots inside the
//!   same process, so pending changes would never apply, and whether the
//!   guest reacts to the key at all depends on its init.

use std::time::Duration;

use ironidc_core::engine::{EngineError, HostContext, PowerAction, PowerState, VmSpec};
use serde_json::Value;

use super::accel::Accel;
use super::command_line::QemuCommandLine;
use super::qmp::QmpClient;
use super::vm_dir::VmDir;
use super::{linked_clone, process, QemuEngine};

/// Timeout of one QMP exchange.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long QEMU may take to initialize and daemonize.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// After QMP `quit`, how long before we fall back to signals.
const QUIT_WAIT: Duration = Duration::from_secs(5);
/// Between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

impl QemuEngine {
    /// The live pid (if any) and the power state of a VM.
    pub(super) async fn observe(&self, dir: &VmDir) -> (Option<i32>, PowerState) {
        let Some(pid) = process::live_pid(&dir.pidfile(), dir.uuid()) else {
            return (None, PowerState::Stopped);
        };
        let state = match qmp(dir, "query-status", None).await {
            Ok(status) => run_state(status.get("status").and_then(Value::as_str).unwrap_or("")),
            Err(e) => {
                tracing::debug!(uuid = dir.uuid(), pid, error = %e, "qemu runs but its monitor does not answer");
                PowerState::Unknown
            }
        };
        (Some(pid), state)
    }

    pub(super) async fn power_action(
        &self,
        host: &HostContext,
        dir: &VmDir,
        action: PowerAction,
        stop_timeout: Duration,
    ) -> Result<(), EngineError> {
        let (pid, state) = self.observe(dir).await;
        let invalid = || EngineError::InvalidState {
            state: state.as_str(),
            action: action.as_str(),
        };
        tracing::info!(
            uuid = dir.uuid(),
            action = action.as_str(),
            state = state.as_str(),
            "power action"
        );
        match (action, pid) {
            (PowerAction::Start, None) => self.start(host, dir).await,
            (PowerAction::HardStop, Some(pid)) => self.hard_stop(dir, pid).await,
            (PowerAction::Stop, Some(_)) if state.is_live() => {
                self.soft_stop(dir, state, stop_timeout).await
            }
            (PowerAction::Reset, Some(_)) if state.is_live() => {
                self.soft_stop(dir, state, stop_timeout).await?;
                self.start(host, dir).await
            }
            (PowerAction::HardReset, Some(_))
                if state.is_live() || state == PowerState::Crashed =>
            {
                qmp(dir, "system_reset", None).await.map(drop)
            }
            (PowerAction::Pause, Some(_)) if state == PowerState::Running => {
                qmp(dir, "stop", None).await.map(drop)
            }
            (PowerAction::Resume, Some(_)) if state == PowerState::Paused => {
                qmp(dir, "cont", None).await.map(drop)
            }
            _ => Err(invalid()),
        }
    }

    /// Launch QEMU from the stored definition, growing the disk first if the
    /// definition asks for more than it has. A start that fails under KVM
    /// (the probe passed, yet QEMU crashes at start on some hosts) is
    /// retried under TCG, and the engine stays on TCG with the reason in
    /// its messages.
    pub(super) async fn start(&self, host: &HostContext, dir: &VmDir) -> Result<(), EngineError> {
        let spec = dir.read_spec().await?;
        linked_clone::grow(&self.opts.qemu_img, &dir.disk(), spec.hdd_mb).await?;
        let accel = self.start_accel().await;
        match self.launch(host, dir, &spec, accel).await {
            Err(e) if accel == Accel::Kvm => {
                let why = format!(
                    "KVM passed the probe but VM {} failed to start under it ({e}); VMs start with TCG from now on",
                    dir.uuid()
                );
                tracing::warn!(uuid = dir.uuid(), "{why}");
                self.give_up_kvm(why);
                self.launch(host, dir, &spec, Accel::Tcg).await
            }
            other => other,
        }
    }

    async fn launch(
        &self,
        host: &HostContext,
        dir: &VmDir,
        spec: &VmSpec,
        accel: Accel,
    ) -> Result<(), EngineError> {
        let mut line = QemuCommandLine::for_vm(spec, dir, accel)?;
        if tokio::fs::try_exists(dir.seed_image())
            .await
            .unwrap_or(false)
        {
            line.seed = Some(dir.seed_image());
        }
        line.cdrom = super::media::iso_for_start(&host.isos_dir, dir, spec).await;
        super::taps::ensure_taps(spec).await?;
        let started = std::time::Instant::now();
        process::launch(&self.opts.qemu_binary, &line.args(), LAUNCH_TIMEOUT).await?;
        let Some(pid) = process::live_pid(&dir.pidfile(), dir.uuid()) else {
            return Err(EngineError::Command {
                program: self.opts.qemu_binary.display().to_string(),
                status: "exited right after starting".into(),
                stderr: format!("see {}", dir.serial_log().display()),
            });
        };
        tracing::info!(
            uuid = dir.uuid(),
            pid,
            accel = accel.as_str(),
            ms = started.elapsed().as_millis() as u64,
            "vm started"
        );
        Ok(())
    }

    /// ACPI power button, then wait for the guest to power off. A paused
    /// guest cannot react to the button, so it is resumed first.
    async fn soft_stop(
        &self,
        dir: &VmDir,
        state: PowerState,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        if state == PowerState::Paused {
            qmp(dir, "cont", None).await?;
        }
        qmp(dir, "system_powerdown", None).await?;
        if process::wait_gone(&dir.pidfile(), dir.uuid(), timeout).await {
            self.cpu.forget(dir.uuid());
            tracing::info!(uuid = dir.uuid(), "guest powered off");
            return Ok(());
        }
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        tracing::info!(
            uuid = dir.uuid(),
            secs,
            "guest ignored the ACPI power button"
        );
        Err(EngineError::StopTimeout(secs))
    }

    /// QMP `quit` (QEMU exits cleanly, qcow2 metadata flushed); if the
    /// monitor does not answer or QEMU lingers, SIGTERM then SIGKILL.
    pub(super) async fn hard_stop(&self, dir: &VmDir, pid: i32) -> Result<(), EngineError> {
        match qmp(dir, "quit", None).await {
            // QEMU may close the connection before its reply: that is success too.
            Ok(_) | Err(EngineError::Qmp(_)) => {}
            Err(e) => return Err(e),
        }
        if !process::wait_gone(&dir.pidfile(), dir.uuid(), QUIT_WAIT).await {
            tracing::warn!(uuid = dir.uuid(), pid, "qemu did not quit; sending signals");
            process::kill(&dir.pidfile(), dir.uuid(), TERM_GRACE).await?;
        }
        self.cpu.forget(dir.uuid());
        tracing::info!(uuid = dir.uuid(), pid, "vm hard-stopped");
        Ok(())
    }
}

/// One QMP command on a fresh connection (QEMU serves one client at a time,
/// so we never hold the monitor longer than a command).
async fn qmp(dir: &VmDir, command: &str, arguments: Option<Value>) -> Result<Value, EngineError> {
    let mut client = QmpClient::connect(&dir.qmp_socket(), QMP_TIMEOUT).await?;
    client.execute(command, arguments).await
}

/// QEMU run states (`query-status`) as power states.
fn run_state(status: &str) -> PowerState {
    match status {
        "running" => PowerState::Running,
        // prelaunch: after system_reset of a paused VM; suspended: guest S3.
        "paused" | "suspended" | "prelaunch" => PowerState::Paused,
        "guest-panicked" | "internal-error" | "shutdown" => PowerState::Crashed,
        _ => PowerState::Unknown,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_run_states() {
        assert_eq!(run_state("running"), PowerState::Running);
        assert_eq!(run_state("paused"), PowerState::Paused);
        assert_eq!(run_state("prelaunch"), PowerState::Paused);
        assert_eq!(run_state("guest-panicked"), PowerState::Crashed);
        assert_eq!(run_state("internal-error"), PowerState::Crashed);
        assert_eq!(run_state("inmigrate"), PowerState::Unknown);
    }
}
