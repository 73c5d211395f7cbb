//! The local QEMU engine.
//!
//! One daemonized QEMU process per VM, which outlives the controller; disks
//! are qcow2 linked clones of a base image; QMP, VNC and the guest agent
//! channel are unix sockets in the VM's directory (`<vms_dir>/<uuid>/`, see
//! `vm_dir.rs`). The engine keeps no state of its own that matters: a new
//! engine (after a controller restart) finds every VM again from its
//! directory and pidfile.
//!
//! Split by concern: `command_line` (the QEMU arguments as data), `qmp`
//! (the monitor client), `accel` (KVM probe), `linked_clone` (qemu-img),
//! `process` (launch, find, kill), `power` (power actions), `metrics`
//! (samples from /proc), `vm_dir` (the per-VM directory).

pub mod accel;
mod agent_ops;
mod backups;
mod block_jobs;
mod command_line;
mod exec;
mod hotplug;
mod linked_clone;
mod media;
mod metrics;
mod power;
mod process;
pub mod qga;
pub mod qmp;
mod reinstall;
mod snapshots;
mod taps;
mod vm_dir;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ironidc_core::engine::{
    BackupInfo, CloudInitSeed, ConsoleEndpoint, Engine, EngineError, EngineInfo, ExecOutput,
    GuestInterface, HostContext, HostDetails, IsoFile, NicSpec, PowerAction, PowerState,
    ProgressSink, ScannedVm, SnapshotInfo, UpdateOutcome, VmCounters, VmSpec,
};
use ironidc_core::model::HwStatus;
use tokio::sync::OnceCell;

pub use accel::{Accel, AccelChoice};
pub use command_line::MAX_SOCKET_PATH;

use command_line::QemuCommandLine;
use metrics::CpuTracker;
use vm_dir::{RemoveOnDrop, VmDir};

/// The engine key in host records and `EngineInfo`.
pub const ENGINE_KEY: &str = "qemu";

/// How the engine finds its programs and which accelerator it uses.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// `qemu-system-x86_64` (looked up in `PATH` unless absolute).
    pub qemu_binary: PathBuf,
    /// `qemu-img`.
    pub qemu_img: PathBuf,
    /// Force an accelerator. `None`: `IRONIDC_ACCEL` if set, else probe KVM.
    pub accel: Option<Accel>,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            qemu_binary: "qemu-system-x86_64".into(),
            qemu_img: "qemu-img".into(),
            accel: None,
        }
    }
}

/// The files of one VM, for components that talk to it directly (the VNC
/// relay, the guest agent, tests reading the serial console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFiles {
    pub dir: PathBuf,
    pub definition: PathBuf,
    pub disk: PathBuf,
    pub qmp_socket: PathBuf,
    pub vnc_socket: PathBuf,
    pub qga_socket: PathBuf,
    pub serial_log: PathBuf,
    pub pidfile: PathBuf,
}

pub struct QemuEngine {
    opts: QemuOptions,
    /// Probed once, on first need (a probe can take seconds).
    accel: OnceCell<AccelChoice>,
    /// Set when a VM failed to start under KVM although the probe passed:
    /// why; from then on VMs start with TCG.
    kvm_failed: Mutex<Option<String>>,
    cpu: CpuTracker,
    /// One lock per VM so that two mutating calls on the same VM (say, start
    /// and delete) never interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl QemuEngine {
    pub fn new(opts: QemuOptions) -> Self {
        Self {
            opts,
            accel: OnceCell::new(),
            kvm_failed: Mutex::new(None),
            cpu: CpuTracker::default(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &QemuOptions {
        &self.opts
    }

    /// The accelerator VMs are started with, and why (probes on first call).
    pub async fn accel(&self) -> &AccelChoice {
        self.accel
            .get_or_init(|| accel::choose(&self.opts.qemu_binary, self.opts.accel))
            .await
    }

    /// The accelerator the next start uses: the probed one, unless KVM
    /// already failed a start.
    pub async fn start_accel(&self) -> Accel {
        let probed = self.accel().await.accel;
        let failed = self
            .kvm_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if failed {
            Accel::Tcg
        } else {
            probed
        }
    }

    fn give_up_kvm(&self, why: String) {
        *self.kvm_failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// Why KVM was given up after the probe passed, if it was.
    pub fn kvm_failure(&self) -> Option<String> {
        self.kvm_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where the files of VM `uuid` on `host` are (whether or not it exists).
    pub fn vm_files(&self, host: &HostContext, uuid: &str) -> Result<VmFiles, EngineError> {
        let d = VmDir::new(host, uuid)?;
        Ok(VmFiles {
            dir: d.path().to_path_buf(),
            definition: d.spec_file(),
            disk: d.disk(),
            qmp_socket: d.qmp_socket(),
            vnc_socket: d.vnc_socket(),
            qga_socket: d.qga_socket(),
            serial_log: d.serial_log(),
            pidfile: d.pidfile(),
        })
    }

    async fn lock_vm(&self, uuid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(uuid.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn forget_vm(&self, uuid: &str) {
        self.cpu.forget(uuid);
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uuid);
    }

    async fn version(program: &Path) -> Result<String, EngineError> {
        let out = exec::run(program, ["--version"], Duration::from_secs(10)).await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string())
    }

    /// The absolute, symlink-free path of a base image. Resolving symlinks
    /// matters: the overlay stores this path, and an `images/latest` link
    /// retargeted later must not silently swap the disk under existing VMs.
    async fn base_image(host: &HostContext, os_image: &str) -> Result<PathBuf, EngineError> {
        if vm_dir::check_name(os_image).is_err() {
            return Err(EngineError::ImageNotFound(os_image.to_string()));
        }
        let path = host.images_dir.join(os_image);
        match tokio::fs::canonicalize(&path).await {
            Ok(p) if p.is_file() => Ok(p),
            Ok(_) => Err(EngineError::ImageNotFound(os_image.to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(EngineError::ImageNotFound(os_image.to_string()))
            }
            Err(e) => Err(EngineError::io(path.display().to_string(), e)),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Engine for QemuEngine {
    async fn info(&self) -> EngineInfo {
        let mut messages = Vec::new();
        let qemu = Self::version(&self.opts.qemu_binary).await;
        let img = Self::version(&self.opts.qemu_img).await;
        for res in [&qemu, &img] {
            messages.push(match res {
                Ok(v) => v.clone(),
                Err(e) => e.to_string(),
            });
        }
        let enabled = qemu.is_ok() && img.is_ok();
        if enabled {
            messages.push(self.accel().await.reason.clone());
            if let Some(why) = self.kvm_failure() {
                messages.push(why);
            }
        }
        EngineInfo {
            key: ENGINE_KEY,
            name: "QEMU/KVM",
            description: "Local QEMU: qcow2 linked clones, one daemonized QEMU per VM, QMP and VNC on unix sockets",
            enabled,
            platform: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            is_remote: false,
            messages,
        }
    }

    async fn create_vm(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, &spec.uuid)?;
        let _guard = self.lock_vm(&spec.uuid).await;
        progress.report("check", 5);
        // Refuse now a VM that could never start, rather than at first start.
        QemuCommandLine::for_vm(spec, &dir, Accel::Tcg)?;
        let base = Self::base_image(host, &spec.os_image).await?;
        if let Some(parent) = dir.path().parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| EngineError::io(parent.display().to_string(), e))?;
        }
        // create_dir (not _all): it fails if the VM exists, atomically.
        match tokio::fs::create_dir(dir.path()).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(EngineError::VmExists(spec.uuid.clone()))
            }
            Err(e) => return Err(EngineError::io(dir.path().display().to_string(), e)),
        }
        let rollback = RemoveOnDrop::new(dir.path().to_path_buf());
        progress.report("clone disk", 20);
        linked_clone::create(&self.opts.qemu_img, &base, &dir.disk(), spec.hdd_mb).await?;
        progress.report("write definition", 80);
        dir.write_spec(spec).await?;
        rollback.disarm();
        progress.report("created", 100);
        tracing::info!(uuid = %spec.uuid, host = %host.hs_name, base = %base.display(), "vm created");
        Ok(())
    }

    async fn delete_vm(&self, host: &HostContext, uuid: &str) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let _guard = self.lock_vm(uuid).await;
        dir.require().await?;
        if let Some(pid) = process::live_pid(&dir.pidfile(), uuid) {
            self.hard_stop(&dir, pid).await?;
        }
        if let Ok(spec) = dir.read_spec().await {
            taps::remove_taps(&spec).await;
        }
        tokio::fs::remove_dir_all(dir.path())
            .await
            .map_err(|e| EngineError::io(dir.path().display().to_string(), e))?;
        self.forget_vm(uuid);
        tracing::info!(uuid, host = %host.hs_name, "vm deleted");
        Ok(())
    }

    async fn update_vm(
        &self,
        host: &HostContext,
        spec: &VmSpec,
    ) -> Result<UpdateOutcome, EngineError> {
        let dir = VmDir::new(host, &spec.uuid)?;
        let _guard = self.lock_vm(&spec.uuid).await;
        dir.require().await?;
        QemuCommandLine::for_vm(spec, &dir, Accel::Tcg)?;
        // Refuse a shrink before storing anything: the stored definition
        // must always be one that can start.
        linked_clone::check_no_shrink(&self.opts.qemu_img, &dir.disk(), spec.hdd_mb).await?;
        dir.write_spec(spec).await?;
        if process::live_pid(&dir.pidfile(), &spec.uuid).is_some() {
            tracing::info!(uuid = %spec.uuid, "definition stored; applied at next start");
            return Ok(UpdateOutcome::PendingRestart);
        }
        linked_clone::grow(&self.opts.qemu_img, &dir.disk(), spec.hdd_mb).await?;
        Ok(UpdateOutcome::Applied)
    }

    async fn power(
        &self,
        host: &HostContext,
        uuid: &str,
        action: PowerAction,
        stop_timeout: Duration,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let _guard = self.lock_vm(uuid).await;
        dir.require().await?;
        self.power_action(host, &dir, action, stop_timeout).await
    }

    async fn state(&self, host: &HostContext, uuid: &str) -> Result<PowerState, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        dir.require().await?;
        Ok(self.observe(&dir).await.1)
    }

    async fn sample(&self, host: &HostContext, uuid: &str) -> Result<HwStatus, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let spec = dir.read_spec().await?;
        let (pid, state) = self.observe(&dir).await;
        let mut s = HwStatus {
            ac_status: reported_status(state).to_string(),
            on_update: unix_now(),
            cpu_total: u64::from(spec.cpu_num),
            mem_total: spec.mem_mb,
            hdd_total: spec.hdd_mb,
            hdd_usage: metrics::allocated_mb(&dir.disk()),
            ..HwStatus::default()
        };
        if let Some(pid) = pid {
            let args = process::cmdline_args(pid);
            let after = |flag: &str| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
            };
            s.cpu_model = format!(
                "QEMU {} ({})",
                after("-cpu").unwrap_or_default(),
                after("-accel").unwrap_or_default()
            );
            s.cpu_usage = self.cpu.usage(uuid, pid, spec.cpu_num);
            s.mem_usage = metrics::process_rss_mb(pid);
        }
        Ok(s)
    }

    async fn scan(&self, host: &HostContext) -> Result<Vec<ScannedVm>, EngineError> {
        let vms_dir = &host.vms_dir;
        let mut entries = match tokio::fs::read_dir(vms_dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io(vms_dir.display().to_string(), e)),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| EngineError::io(vms_dir.display().to_string(), e))?
        {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(dir) = VmDir::new(host, &name) else {
                continue;
            };
            let mut spec = match dir.read_spec().await {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::debug!(dir = %dir.path().display(), error = %e, "scan: not a vm directory");
                    continue;
                }
            };
            if spec.uuid != name {
                // The directory is what QEMU and every path use; trust it.
                tracing::warn!(dir = %name, spec_uuid = %spec.uuid, "vm.json names another uuid; using the directory name");
                spec.uuid = name;
            }
            let state = self.observe(&dir).await.1;
            found.push(ScannedVm { spec, state });
        }
        found.sort_by(|a, b| a.spec.uuid.cmp(&b.spec.uuid));
        Ok(found)
    }

    async fn host_status(&self, host: &HostContext) -> Result<HwStatus, EngineError> {
        let vms_dir = std::path::absolute(&host.vms_dir).unwrap_or_else(|_| host.vms_dir.clone());
        let (cpu_model, cpu_total) = metrics::host_cpu();
        let cpu_usage = metrics::host_cpu_usage().await;
        let (mem_total, mem_usage) = metrics::host_memory_mb();
        let (hdd_total, hdd_usage) = metrics::filesystem_mb(&vms_dir);
        Ok(HwStatus {
            on_update: unix_now(),
            cpu_model,
            cpu_total,
            cpu_usage,
            mem_total,
            mem_usage,
            hdd_total,
            hdd_usage,
            ..HwStatus::default()
        })
    }

    async fn host_details(&self, host: &HostContext) -> Result<HostDetails, EngineError> {
        metrics::host_details(host).await
    }

    async fn write_seed(
        &self,
        host: &HostContext,
        uuid: &str,
        seed: &CloudInitSeed,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        dir.require().await?;
        let files = crate::image::SeedFiles {
            meta_data: seed.meta_data.clone(),
            user_data: seed.user_data.clone(),
            network_config: seed.network_config.clone(),
        };
        let path = dir.seed_image();
        // mkfs.vfat and mcopy run as child processes: keep them off the runtime.
        tokio::task::spawn_blocking(move || crate::image::write_seed(&path, &files))
            .await
            .map_err(|e| EngineError::Unavailable(format!("seed writer: {e}")))?
            .map_err(|e| EngineError::Unavailable(format!("cloud-init seed: {e}")))
    }

    async fn counters(&self, host: &HostContext, uuid: &str) -> Result<VmCounters, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        dir.require().await?;
        let Some(pid) = self.observe(&dir).await.0 else {
            return Err(EngineError::InvalidState {
                state: "stopped",
                action: "reading counters",
            });
        };
        let spec = dir.read_spec().await?;
        metrics::counters(&dir, &spec, pid).await
    }

    async fn console_endpoint(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<ConsoleEndpoint, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        dir.require().await?;
        let state = self.observe(&dir).await.1;
        if !state.is_live() {
            return Err(EngineError::InvalidState {
                state: state.as_str(),
                action: "console",
            });
        }
        Ok(ConsoleEndpoint::Unix(dir.vnc_socket()))
    }

    async fn agent_ping(
        &self,
        host: &HostContext,
        uuid: &str,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        QemuEngine::agent_ping(self, host, uuid, timeout).await
    }

    async fn agent_set_password(
        &self,
        host: &HostContext,
        uuid: &str,
        user: &str,
        password: &str,
    ) -> Result<(), EngineError> {
        QemuEngine::agent_set_password(self, host, uuid, user, password).await
    }

    async fn agent_exec(
        &self,
        host: &HostContext,
        uuid: &str,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        QemuEngine::agent_exec(self, host, uuid, program, args, stdin, timeout).await
    }

    async fn agent_write_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        content: &[u8],
    ) -> Result<(), EngineError> {
        QemuEngine::agent_write_file(self, host, uuid, path, content).await
    }

    async fn agent_read_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, EngineError> {
        QemuEngine::agent_read_file(self, host, uuid, path, max_bytes).await
    }

    async fn agent_interfaces(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<GuestInterface>, EngineError> {
        QemuEngine::agent_interfaces(self, host, uuid).await
    }

    async fn snapshot_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<SnapshotInfo, EngineError> {
        QemuEngine::snapshot_create(self, host, uuid, name).await
    }

    async fn snapshot_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<SnapshotInfo>, EngineError> {
        QemuEngine::snapshot_list(self, host, uuid).await
    }

    async fn snapshot_revert(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        QemuEngine::snapshot_revert(self, host, uuid, name).await
    }

    async fn snapshot_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        QemuEngine::snapshot_delete(self, host, uuid, name).await
    }

    async fn backup_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
        progress: &dyn ProgressSink,
    ) -> Result<BackupInfo, EngineError> {
        QemuEngine::backup_create(self, host, uuid, name, progress).await
    }

    async fn backup_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<BackupInfo>, EngineError> {
        QemuEngine::backup_list(self, host, uuid).await
    }

    async fn backup_restore(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        QemuEngine::backup_restore(self, host, uuid, name, progress).await
    }

    async fn backup_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        QemuEngine::backup_delete(self, host, uuid, name).await
    }

    async fn reinstall(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        QemuEngine::reinstall(self, host, spec, progress).await
    }

    async fn iso_list(&self, host: &HostContext) -> Result<Vec<IsoFile>, EngineError> {
        QemuEngine::iso_list(self, host).await
    }

    async fn iso_set(
        &self,
        host: &HostContext,
        uuid: &str,
        iso: Option<&str>,
    ) -> Result<(), EngineError> {
        QemuEngine::iso_set(self, host, uuid, iso).await
    }

    async fn nic_plug(
        &self,
        host: &HostContext,
        uuid: &str,
        nic: &NicSpec,
    ) -> Result<(), EngineError> {
        QemuEngine::nic_plug(self, host, uuid, nic).await
    }

    async fn nic_unplug(
        &self,
        host: &HostContext,
        uuid: &str,
        mac: &str,
    ) -> Result<(), EngineError> {
        QemuEngine::nic_unplug(self, host, uuid, mac).await
    }
}

/// A state as a status sample names it (`ac_status`). Samples share the
/// format guests upload (`HwStatus`), whose agents write these names.
fn reported_status(state: PowerState) -> &'static str {
    match state {
        PowerState::Stopped => "STOPPED",
        PowerState::Running => "STARTED",
        PowerState::Paused => "SUSPEND",
        PowerState::Crashed => "CRASHED",
        PowerState::Unknown => "UNKNOWN",
    }
}
