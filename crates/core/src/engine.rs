//! The engine port: what the service layer needs from a hypervisor driver.
//!
//! The trait lives in the core (not in the engine crate) so the service layer
//! depends only on this contract; `ironidc-engine` implements it for QEMU and,
//! later, for remote agents.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::HwStatus;

/// Where an engine keeps the VMs of one host and finds its OS images.
#[derive(Debug, Clone)]
pub struct HostContext {
    pub hs_name: String,
    /// Directory that holds one sub-directory per VM (`<vms_dir>/<vm_uuid>/`).
    pub vms_dir: PathBuf,
    /// Directory that holds the OS base images named in `system_maps`.
    pub images_dir: PathBuf,
    /// Directory of backups: `<backups_dir>/<vm_uuid>/<name>.qcow2`.
    pub backups_dir: PathBuf,
    /// Directory of the ISO images a VM's CD-ROM can take.
    pub isos_dir: PathBuf,
}

/// The hardware definition of one VM, as the engine needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VmSpec {
    pub uuid: String,
    pub cpu_num: u32,
    /// Memory in MiB.
    pub mem_mb: u64,
    /// System disk size in MiB.
    pub hdd_mb: u64,
    /// Base image file name inside `HostContext::images_dir` (already validated).
    pub os_image: String,
    /// Network cards, in order (`ethernet0`, `nic0`, …) with their MAC address.
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    /// ISO file (inside `HostContext::isos_dir`) in the CD-ROM; `None`: empty.
    #[serde(default)]
    pub iso: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NicSpec {
    pub name: String,
    pub mac: String,
    /// The host bridge this NIC's tap joins; `None`: QEMU's isolated
    /// user-mode network (hosts without a configured bridge).
    #[serde(default)]
    pub bridge: Option<String>,
}

/// A NoCloud seed (cloud-init): the files of the `CIDATA` volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudInitSeed {
    pub meta_data: String,
    pub user_data: String,
    pub network_config: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    Start,
    Stop,
    HardStop,
    Reset,
    HardReset,
    Pause,
    Resume,
}

impl PowerAction {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "hard_stop" => Self::HardStop,
            "reset" => Self::Reset,
            "hard_reset" => Self::HardReset,
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::HardStop => "hard_stop",
            Self::Reset => "reset",
            Self::HardReset => "hard_reset",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// Power state as observed by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    Stopped,
    Running,
    Paused,
    Crashed,
    Unknown,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Crashed => "crashed",
            Self::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "stopped" => Self::Stopped,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "crashed" => Self::Crashed,
            _ => Self::Unknown,
        }
    }
    /// A QEMU process exists for the VM (running or paused).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

/// What `update_vm` did with a changed definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The VM is stopped: the change is in place now.
    Applied,
    /// The VM is running: the change is stored and applied at its next start.
    PendingRestart,
}

/// A disk snapshot of a VM (qcow2 internal snapshot). A snapshot taken
/// while the VM runs also holds its memory (`vm_state_bytes > 0`): reverting
/// to it resumes the guest where it was.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// Unix time it was taken.
    pub created_at: i64,
    /// Size of the saved memory state; 0 for a snapshot of a stopped VM.
    pub vm_state_bytes: u64,
}

/// A full, compressed copy of a VM's system disk in the host's backup path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackupInfo {
    pub name: String,
    /// Unix time it was taken (file modification time).
    pub created_at: i64,
    /// Bytes the backup file takes on the host.
    pub file_bytes: u64,
    /// Virtual size of the disk it copies.
    pub disk_bytes: u64,
}

/// An ISO image in the host's ISO directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IsoFile {
    pub name: String,
    pub bytes: u64,
}

/// What a command run through the guest agent did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ExecOutput {
    /// `None` when it did not end within the timeout (it was then killed, as
    /// far as the agent allows) or was killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// A network interface as the guest agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GuestInterface {
    pub name: String,
    /// Lower-case `aa:bb:cc:dd:ee:ff`; empty for loopback.
    pub mac: String,
    /// `ADDRESS/PREFIX`, IPv4 and IPv6.
    pub addresses: Vec<String>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Cumulative counters of a running VM, read from QMP and the host (taps).
/// The monitor turns deltas of them into rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct VmCounters {
    /// CPU time of the QEMU process (all threads), in milliseconds.
    pub cpu_time_ms: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    /// Bytes the guest received / sent over all its NICs.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// Figures of a host beyond `HwStatus`: load, uptime and each storage path.
/// A figure the host cannot give (no such file, no sensor) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HostDetails {
    pub cpu_model: String,
    pub cpu_count: u64,
    pub load_1: Option<f64>,
    pub load_5: Option<f64>,
    pub load_15: Option<f64>,
    pub uptime_secs: Option<u64>,
    pub kernel: Option<String>,
    /// One entry per storage path of the host (VMs, images, backups, ISOs).
    pub storage: Vec<StorageUsage>,
    /// Temperatures in °C by sensor name; empty on hosts without sensors.
    pub temperatures: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StorageUsage {
    /// `vms`, `images`, `backups` or `isos`.
    pub role: String,
    pub path: String,
    /// `None` when the path does not exist (yet).
    pub total_mb: Option<u64>,
    pub used_mb: Option<u64>,
}

/// Where a VM's VNC server listens; the console relay connects to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEndpoint {
    /// A unix socket on this controller's machine.
    Unix(PathBuf),
}

/// Whether an engine can be used on this machine, and why not.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub enabled: bool,
    pub platform: &'static str,
    pub arch: &'static str,
    pub is_remote: bool,
    pub messages: Vec<String>,
}

/// A VM found on a host by `scan`.
#[derive(Debug, Clone)]
pub struct ScannedVm {
    pub spec: VmSpec,
    pub state: PowerState,
}

/// Reports progress of a long engine step (0..=100) with a short step name.
pub trait ProgressSink: Send + Sync {
    fn report(&self, step: &str, percent: u8);
}

/// A progress sink that drops every report.
pub struct NoProgress;
impl ProgressSink for NoProgress {
    fn report(&self, _step: &str, _percent: u8) {}
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine is not usable here: {0}")]
    Unavailable(String),
    #[error("vm {0} not found on the host")]
    VmNotFound(String),
    #[error("vm {0} already exists on the host")]
    VmExists(String),
    #[error("base image {0} not found")]
    ImageNotFound(String),
    #[error("vm is {state}; {action} is not possible in this state")]
    InvalidState {
        state: &'static str,
        action: &'static str,
    },
    #[error("guest did not power off within {0} s after the ACPI request; use hard_stop")]
    StopTimeout(u64),
    #[error("disk can only grow: current {current_mb} MiB, requested {requested_mb} MiB")]
    DiskShrink { current_mb: u64, requested_mb: u64 },
    #[error("path too long for a unix socket: {0}")]
    SocketPathTooLong(String),
    #[error("{program} failed ({status}): {stderr}")]
    Command {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("QMP: {0}")]
    Qmp(String),
    /// Nothing answered on the guest agent channel (no agent installed, not
    /// started yet, or the VM is not running).
    #[error("the guest agent does not answer: {0}")]
    AgentUnavailable(String),
    /// The agent answered with an error.
    #[error("guest agent: {0}")]
    Agent(String),
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    #[error("snapshot {0} already exists")]
    SnapshotExists(String),
    #[error("backup {0} not found")]
    BackupNotFound(String),
    #[error("backup {0} already exists")]
    BackupExists(String),
    #[error("ISO image {0} not found")]
    IsoNotFound(String),
    #[error("NIC {0} not found")]
    NicNotFound(String),
    #[error("I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// A hypervisor driver. One instance serves every host of its kind; the
/// `HostContext` tells it where that host keeps its VMs.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Static identity and whether it is usable on this machine.
    async fn info(&self) -> EngineInfo;
    /// Create the VM's disk (a linked clone of the base image, grown to
    /// `hdd_mb`) and its stored definition. Does not start it. On error,
    /// nothing of the VM is left on the host.
    async fn create_vm(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError>;
    /// Stop the VM if it runs and remove everything the engine keeps for it.
    async fn delete_vm(&self, host: &HostContext, uuid: &str) -> Result<(), EngineError>;
    /// Store a changed definition; applied now when stopped, at next start otherwise.
    async fn update_vm(
        &self,
        host: &HostContext,
        spec: &VmSpec,
    ) -> Result<UpdateOutcome, EngineError>;
    /// Perform a power action. `Stop` waits up to `stop_timeout` for the guest.
    async fn power(
        &self,
        host: &HostContext,
        uuid: &str,
        action: PowerAction,
        stop_timeout: Duration,
    ) -> Result<(), EngineError>;
    /// Current power state as the hypervisor reports it.
    async fn state(&self, host: &HostContext, uuid: &str) -> Result<PowerState, EngineError>;
    /// A resource sample of a VM (CPU, memory, disk of the QEMU process / disk file).
    async fn sample(&self, host: &HostContext, uuid: &str) -> Result<HwStatus, EngineError>;
    /// VMs present on the host (whether or not the database knows them).
    async fn scan(&self, host: &HostContext) -> Result<Vec<ScannedVm>, EngineError>;
    /// CPU, memory and disk figures of the host itself.
    async fn host_status(&self, host: &HostContext) -> Result<HwStatus, EngineError>;
    /// Load, uptime, storage paths and sensors of the host.
    async fn host_details(&self, host: &HostContext) -> Result<HostDetails, EngineError>;
    /// Attach (or replace) the VM's cloud-init seed; the guest reads it at boot.
    async fn write_seed(
        &self,
        host: &HostContext,
        uuid: &str,
        seed: &CloudInitSeed,
    ) -> Result<(), EngineError>;
    /// Cumulative CPU, disk and network counters of a live VM.
    async fn counters(&self, host: &HostContext, uuid: &str) -> Result<VmCounters, EngineError>;

    // ---- console -------------------------------------------------------
    /// Where the VNC server of a live VM listens (`InvalidState` when stopped).
    async fn console_endpoint(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<ConsoleEndpoint, EngineError>;

    // ---- guest agent (qemu-ga over virtio-serial) ------------------------
    /// `guest-sync` + `guest-ping` within `timeout`.
    async fn agent_ping(
        &self,
        host: &HostContext,
        uuid: &str,
        timeout: Duration,
    ) -> Result<(), EngineError>;
    /// Set `user`'s password (plain text in, the guest hashes it).
    async fn agent_set_password(
        &self,
        host: &HostContext,
        uuid: &str,
        user: &str,
        password: &str,
    ) -> Result<(), EngineError>;
    /// Run `program args…` in the guest, feeding `stdin`, and wait up to
    /// `timeout` for it to end.
    async fn agent_exec(
        &self,
        host: &HostContext,
        uuid: &str,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError>;
    /// Write `content` to `path` in the guest (created or truncated).
    async fn agent_write_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        content: &[u8],
    ) -> Result<(), EngineError>;
    /// Read up to `max_bytes` of `path` in the guest.
    async fn agent_read_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, EngineError>;
    /// The guest's network interfaces.
    async fn agent_interfaces(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<GuestInterface>, EngineError>;

    // ---- snapshots (qcow2 internal; running: with memory) ----------------
    async fn snapshot_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<SnapshotInfo, EngineError>;
    async fn snapshot_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<SnapshotInfo>, EngineError>;
    async fn snapshot_revert(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError>;
    async fn snapshot_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError>;

    // ---- backups (full compressed copies in `backups_dir/<uuid>/`) ---------
    /// Copy the system disk, running or stopped; the guest keeps running.
    async fn backup_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
        progress: &dyn ProgressSink,
    ) -> Result<BackupInfo, EngineError>;
    async fn backup_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<BackupInfo>, EngineError>;
    /// Replace the system disk with the backup; the VM must be stopped.
    async fn backup_restore(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError>;
    async fn backup_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError>;

    // ---- reinstall -----------------------------------------------------
    /// A new system disk from `spec.os_image` (the VM must be stopped); the
    /// stored definition becomes `spec`. Snapshots of the old disk go with it.
    async fn reinstall(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError>;

    // ---- ISO / CD-ROM --------------------------------------------------
    async fn iso_list(&self, host: &HostContext) -> Result<Vec<IsoFile>, EngineError>;
    /// Insert `iso` (a file in `isos_dir`) into the CD-ROM, or eject with
    /// `None`; live when the VM runs, and kept in the definition.
    async fn iso_set(
        &self,
        host: &HostContext,
        uuid: &str,
        iso: Option<&str>,
    ) -> Result<(), EngineError>;

    // ---- NICs ----------------------------------------------------------
    /// Add a NIC to the definition, hot-plugged when the VM runs.
    async fn nic_plug(
        &self,
        host: &HostContext,
        uuid: &str,
        nic: &NicSpec,
    ) -> Result<(), EngineError>;
    /// Remove the NIC with this MAC, hot-unplugged when the VM runs.
    async fn nic_unplug(
        &self,
        host: &HostContext,
        uuid: &str,
        mac: &str,
    ) -> Result<(), EngineError>;
}
