//! The agent's wire types. Core engine types are mirrored here, with `From`
//! conversions both ways, so no core type goes onto the wire unmapped and a
//! change to the core shows up as a compile error in this one file.

use std::path::PathBuf;
use std::sync::Mutex;

use ironidc_core::engine as eng;
use ironidc_core::model::HwStatus;
use serde::{Deserialize, Serialize};

/// Path of the one RPC endpoint: `POST` an `EngineCall`, read `Line`s.
pub const ENGINE_PATH: &str = "/v1/engine";

/// Bytes as base64 (standard alphabet) rather than a JSON array of numbers.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }

    pub mod opt {
        use super::*;
        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => super::serialize(b, s),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Host {
    pub hs_name: String,
    pub vms_dir: PathBuf,
    pub images_dir: PathBuf,
    pub backups_dir: PathBuf,
    pub isos_dir: PathBuf,
}

impl From<&eng::HostContext> for Host {
    fn from(h: &eng::HostContext) -> Self {
        Self {
            hs_name: h.hs_name.clone(),
            vms_dir: h.vms_dir.clone(),
            images_dir: h.images_dir.clone(),
            backups_dir: h.backups_dir.clone(),
            isos_dir: h.isos_dir.clone(),
        }
    }
}

impl From<Host> for eng::HostContext {
    fn from(h: Host) -> Self {
        Self {
            hs_name: h.hs_name,
            vms_dir: h.vms_dir,
            images_dir: h.images_dir,
            backups_dir: h.backups_dir,
            isos_dir: h.isos_dir,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    pub bridge: Option<String>,
}

impl From<&eng::NicSpec> for Nic {
    fn from(n: &eng::NicSpec) -> Self {
        Self {
            name: n.name.clone(),
            mac: n.mac.clone(),
            bridge: n.bridge.clone(),
        }
    }
}

impl From<Nic> for eng::NicSpec {
    fn from(n: Nic) -> Self {
        Self {
            name: n.name,
            mac: n.mac,
            bridge: n.bridge,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Spec {
    pub uuid: String,
    pub cpu_num: u32,
    pub mem_mb: u64,
    pub hdd_mb: u64,
    pub os_image: String,
    pub nics: Vec<Nic>,
    pub iso: Option<String>,
}

impl From<&eng::VmSpec> for Spec {
    fn from(s: &eng::VmSpec) -> Self {
        Self {
            uuid: s.uuid.clone(),
            cpu_num: s.cpu_num,
            mem_mb: s.mem_mb,
            hdd_mb: s.hdd_mb,
            os_image: s.os_image.clone(),
            nics: s.nics.iter().map(Nic::from).collect(),
            iso: s.iso.clone(),
        }
    }
}

impl From<Spec> for eng::VmSpec {
    fn from(s: Spec) -> Self {
        Self {
            uuid: s.uuid,
            cpu_num: s.cpu_num,
            mem_mb: s.mem_mb,
            hdd_mb: s.hdd_mb,
            os_image: s.os_image,
            nics: s.nics.into_iter().map(Into::into).collect(),
            iso: s.iso,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seed {
    pub meta_data: String,
    pub user_data: String,
    pub network_config: String,
}

impl From<&eng::CloudInitSeed> for Seed {
    fn from(s: &eng::CloudInitSeed) -> Self {
        Self {
            meta_data: s.meta_data.clone(),
            user_data: s.user_data.clone(),
            network_config: s.network_config.clone(),
        }
    }
}

impl From<Seed> for eng::CloudInitSeed {
    fn from(s: Seed) -> Self {
        Self {
            meta_data: s.meta_data,
            user_data: s.user_data,
            network_config: s.network_config,
        }
    }
}

/// Mirrors a core enum of unit variants, both ways.
macro_rules! mirror_enum {
    ($wire:ident, $core:path, [$($v:ident),* $(,)?]) => {
        #[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
        #[serde(rename_all = "snake_case")]
        pub enum $wire { $($v),* }
        impl From<$core> for $wire {
            fn from(v: $core) -> Self {
                use $core as C;
                match v { $(C::$v => Self::$v),* }
            }
        }
        impl From<$wire> for $core {
            fn from(v: $wire) -> Self {
                use $core as C;
                match v { $($wire::$v => C::$v),* }
            }
        }
    };
}

mirror_enum!(
    Action,
    eng::PowerAction,
    [Start, Stop, HardStop, Reset, HardReset, Pause, Resume]
);
mirror_enum!(
    State,
    eng::PowerState,
    [Stopped, Running, Paused, Crashed, Unknown]
);
mirror_enum!(Outcome, eng::UpdateOutcome, [Applied, PendingRestart]);

/// Mirrors a core struct field by field, both ways (all fields `Clone`).
macro_rules! mirror_struct {
    ($(#[$m:meta])* $wire:ident, $core:path, { $($f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        pub struct $wire { $(pub $f: $t),* }
        impl From<$core> for $wire {
            fn from(v: $core) -> Self { Self { $($f: v.$f.into()),* } }
        }
        impl From<$wire> for $core {
            fn from(v: $wire) -> Self { Self { $($f: v.$f.into()),* } }
        }
    };
}

mirror_struct!(Hw, HwStatus, {
    ac_status: String, on_update: i64, cpu_model: String, cpu_total: u64, cpu_usage: f64,
    mem_total: u64, mem_usage: u64, hdd_total: u64, hdd_usage: u64, flu_total: u64,
    flu_usage: u64, network_u: u64, network_d: u64, gpu_total: u64, gpu_usage: u64,
    cpu_time_ms: u64, disk_read_bytes: u64, disk_write_bytes: u64, net_rx_bytes: u64,
    net_tx_bytes: u64, source: String,
});
mirror_struct!(Snapshot, eng::SnapshotInfo, {
    name: String, created_at: i64, vm_state_bytes: u64,
});
mirror_struct!(Backup, eng::BackupInfo, {
    name: String, created_at: i64, file_bytes: u64, disk_bytes: u64,
});
mirror_struct!(Iso, eng::IsoFile, { name: String, bytes: u64 });
mirror_struct!(Interface, eng::GuestInterface, {
    name: String, mac: String, addresses: Vec<String>, rx_bytes: u64, tx_bytes: u64,
});
mirror_struct!(Counters, eng::VmCounters, {
    cpu_time_ms: u64, disk_read_bytes: u64, disk_write_bytes: u64, net_rx_bytes: u64,
    net_tx_bytes: u64,
});
mirror_struct!(Storage, eng::StorageUsage, {
    role: String, path: String, total_mb: Option<u64>, used_mb: Option<u64>,
});

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Details {
    pub cpu_model: String,
    pub cpu_count: u64,
    pub load_1: Option<f64>,
    pub load_5: Option<f64>,
    pub load_15: Option<f64>,
    pub uptime_secs: Option<u64>,
    pub kernel: Option<String>,
    pub storage: Vec<Storage>,
    pub temperatures: Vec<(String, f64)>,
}

impl From<eng::HostDetails> for Details {
    fn from(d: eng::HostDetails) -> Self {
        Self {
            cpu_model: d.cpu_model,
            cpu_count: d.cpu_count,
            load_1: d.load_1,
            load_5: d.load_5,
            load_15: d.load_15,
            uptime_secs: d.uptime_secs,
            kernel: d.kernel,
            storage: d.storage.into_iter().map(Into::into).collect(),
            temperatures: d.temperatures,
        }
    }
}

impl From<Details> for eng::HostDetails {
    fn from(d: Details) -> Self {
        Self {
            cpu_model: d.cpu_model,
            cpu_count: d.cpu_count,
            load_1: d.load_1,
            load_5: d.load_5,
            load_15: d.load_15,
            uptime_secs: d.uptime_secs,
            kernel: d.kernel,
            storage: d.storage.into_iter().map(Into::into).collect(),
            temperatures: d.temperatures,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exec {
    pub exit_code: Option<i32>,
    #[serde(with = "b64")]
    pub stdout: Vec<u8>,
    #[serde(with = "b64")]
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

impl From<eng::ExecOutput> for Exec {
    fn from(e: eng::ExecOutput) -> Self {
        Self {
            exit_code: e.exit_code,
            stdout: e.stdout,
            stderr: e.stderr,
            timed_out: e.timed_out,
        }
    }
}

impl From<Exec> for eng::ExecOutput {
    fn from(e: Exec) -> Self {
        Self {
            exit_code: e.exit_code,
            stdout: e.stdout,
            stderr: e.stderr,
            timed_out: e.timed_out,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Scanned {
    pub spec: Spec,
    pub state: State,
}

impl From<eng::ScannedVm> for Scanned {
    fn from(s: eng::ScannedVm) -> Self {
        Self {
            spec: Spec::from(&s.spec),
            state: s.state.into(),
        }
    }
}

impl From<Scanned> for eng::ScannedVm {
    fn from(s: Scanned) -> Self {
        Self {
            spec: s.spec.into(),
            state: s.state.into(),
        }
    }
}

/// What the agent's engine says about itself; the controller shows it as
/// a remote engine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Info {
    pub key: String,
    pub enabled: bool,
    pub platform: String,
    pub arch: String,
    pub messages: Vec<String>,
}

impl From<eng::EngineInfo> for Info {
    fn from(i: eng::EngineInfo) -> Self {
        Self {
            key: i.key.into(),
            enabled: i.enabled,
            platform: i.platform.into(),
            arch: i.arch.into(),
            messages: i.messages,
        }
    }
}

/// One call per `Engine` method, with its host and arguments. Durations
/// travel as milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum EngineCall {
    Info,
    CreateVm {
        host: Host,
        spec: Spec,
    },
    DeleteVm {
        host: Host,
        uuid: String,
    },
    UpdateVm {
        host: Host,
        spec: Spec,
    },
    Power {
        host: Host,
        uuid: String,
        action: Action,
        stop_timeout_ms: u64,
    },
    State {
        host: Host,
        uuid: String,
    },
    Sample {
        host: Host,
        uuid: String,
    },
    Scan {
        host: Host,
    },
    HostStatus {
        host: Host,
    },
    HostDetails {
        host: Host,
    },
    WriteSeed {
        host: Host,
        uuid: String,
        seed: Seed,
    },
    Counters {
        host: Host,
        uuid: String,
    },
    ConsoleEndpoint {
        host: Host,
        uuid: String,
    },
    AgentPing {
        host: Host,
        uuid: String,
        timeout_ms: u64,
    },
    AgentSetPassword {
        host: Host,
        uuid: String,
        user: String,
        password: String,
    },
    AgentExec {
        host: Host,
        uuid: String,
        program: String,
        args: Vec<String>,
        #[serde(with = "b64::opt", default)]
        stdin: Option<Vec<u8>>,
        timeout_ms: u64,
    },
    AgentWriteFile {
        host: Host,
        uuid: String,
        path: String,
        #[serde(with = "b64")]
        content: Vec<u8>,
    },
    AgentReadFile {
        host: Host,
        uuid: String,
        path: String,
        max_bytes: u64,
    },
    AgentInterfaces {
        host: Host,
        uuid: String,
    },
    SnapshotCreate {
        host: Host,
        uuid: String,
        name: String,
    },
    SnapshotList {
        host: Host,
        uuid: String,
    },
    SnapshotRevert {
        host: Host,
        uuid: String,
        name: String,
    },
    SnapshotDelete {
        host: Host,
        uuid: String,
        name: String,
    },
    BackupCreate {
        host: Host,
        uuid: String,
        name: String,
    },
    BackupList {
        host: Host,
        uuid: String,
    },
    BackupRestore {
        host: Host,
        uuid: String,
        name: String,
    },
    BackupDelete {
        host: Host,
        uuid: String,
        name: String,
    },
    Reinstall {
        host: Host,
        spec: Spec,
    },
    IsoList {
        host: Host,
    },
    IsoSet {
        host: Host,
        uuid: String,
        iso: Option<String>,
    },
    NicPlug {
        host: Host,
        uuid: String,
        nic: Nic,
    },
    NicUnplug {
        host: Host,
        uuid: String,
        mac: String,
    },
}

impl EngineCall {
    /// Calls that report progress: their reply is a stream of lines.
    pub fn reports_progress(&self) -> bool {
        matches!(
            self,
            Self::CreateVm { .. }
                | Self::BackupCreate { .. }
                | Self::BackupRestore { .. }
                | Self::Reinstall { .. }
        )
    }

    /// Calls that may run for minutes (disk copies, stops that wait for
    /// the guest): the client allows them a longer timeout.
    pub fn is_long(&self) -> bool {
        self.reports_progress() || matches!(self, Self::DeleteVm { .. } | Self::Power { .. })
    }
}

/// A successful reply, one variant per return type of the `Engine` trait.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Reply {
    Unit,
    Info(Info),
    Outcome(Outcome),
    State(State),
    Hw(Hw),
    Scan(Vec<Scanned>),
    Details(Details),
    Counters(Counters),
    /// A unix socket path on the agent's machine.
    Console(PathBuf),
    Exec(Exec),
    Bytes(#[serde(with = "b64")] Vec<u8>),
    Interfaces(Vec<Interface>),
    Snapshot(Snapshot),
    Snapshots(Vec<Snapshot>),
    Backup(Backup),
    Backups(Vec<Backup>),
    Isos(Vec<Iso>),
}

/// `EngineError`, variant for variant; `Io` carries its path and message
/// (an `io::Error` cannot cross), rebuilt with the same kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireError {
    Unavailable {
        message: String,
    },
    VmNotFound {
        uuid: String,
    },
    VmExists {
        uuid: String,
    },
    ImageNotFound {
        image: String,
    },
    InvalidState {
        state: String,
        action: String,
    },
    StopTimeout {
        secs: u64,
    },
    DiskShrink {
        current_mb: u64,
        requested_mb: u64,
    },
    SocketPathTooLong {
        path: String,
    },
    Command {
        program: String,
        status: String,
        stderr: String,
    },
    Qmp {
        message: String,
    },
    AgentUnavailable {
        message: String,
    },
    Agent {
        message: String,
    },
    SnapshotNotFound {
        name: String,
    },
    SnapshotExists {
        name: String,
    },
    BackupNotFound {
        name: String,
    },
    BackupExists {
        name: String,
    },
    IsoNotFound {
        name: String,
    },
    NicNotFound {
        name: String,
    },
    Io {
        path: String,
        message: String,
        io_kind: String,
    },
}

impl From<&eng::EngineError> for WireError {
    fn from(e: &eng::EngineError) -> Self {
        use eng::EngineError as E;
        match e {
            E::Unavailable(m) => Self::Unavailable { message: m.clone() },
            E::VmNotFound(u) => Self::VmNotFound { uuid: u.clone() },
            E::VmExists(u) => Self::VmExists { uuid: u.clone() },
            E::ImageNotFound(i) => Self::ImageNotFound { image: i.clone() },
            E::InvalidState { state, action } => Self::InvalidState {
                state: (*state).into(),
                action: (*action).into(),
            },
            E::StopTimeout(s) => Self::StopTimeout { secs: *s },
            E::DiskShrink {
                current_mb,
                requested_mb,
            } => Self::DiskShrink {
                current_mb: *current_mb,
                requested_mb: *requested_mb,
            },
            E::SocketPathTooLong(p) => Self::SocketPathTooLong { path: p.clone() },
            E::Command {
                program,
                status,
                stderr,
            } => Self::Command {
                program: program.clone(),
                status: status.clone(),
                stderr: stderr.clone(),
            },
            E::Qmp(m) => Self::Qmp { message: m.clone() },
            E::AgentUnavailable(m) => Self::AgentUnavailable { message: m.clone() },
            E::Agent(m) => Self::Agent { message: m.clone() },
            E::SnapshotNotFound(n) => Self::SnapshotNotFound { name: n.clone() },
            E::SnapshotExists(n) => Self::SnapshotExists { name: n.clone() },
            E::BackupNotFound(n) => Self::BackupNotFound { name: n.clone() },
            E::BackupExists(n) => Self::BackupExists { name: n.clone() },
            E::IsoNotFound(n) => Self::IsoNotFound { name: n.clone() },
            E::NicNotFound(n) => Self::NicNotFound { name: n.clone() },
            E::Io { path, source } => Self::Io {
                path: path.clone(),
                message: source.to_string(),
                io_kind: format!("{:?}", source.kind()),
            },
        }
    }
}

impl From<WireError> for eng::EngineError {
    fn from(e: WireError) -> Self {
        use eng::EngineError as E;
        match e {
            WireError::Unavailable { message } => E::Unavailable(message),
            WireError::VmNotFound { uuid } => E::VmNotFound(uuid),
            WireError::VmExists { uuid } => E::VmExists(uuid),
            WireError::ImageNotFound { image } => E::ImageNotFound(image),
            WireError::InvalidState { state, action } => E::InvalidState {
                state: intern(&state),
                action: intern(&action),
            },
            WireError::StopTimeout { secs } => E::StopTimeout(secs),
            WireError::DiskShrink {
                current_mb,
                requested_mb,
            } => E::DiskShrink {
                current_mb,
                requested_mb,
            },
            WireError::SocketPathTooLong { path } => E::SocketPathTooLong(path),
            WireError::Command {
                program,
                status,
                stderr,
            } => E::Command {
                program,
                status,
                stderr,
            },
            WireError::Qmp { message } => E::Qmp(message),
            WireError::AgentUnavailable { message } => E::AgentUnavailable(message),
            WireError::Agent { message } => E::Agent(message),
            WireError::SnapshotNotFound { name } => E::SnapshotNotFound(name),
            WireError::SnapshotExists { name } => E::SnapshotExists(name),
            WireError::BackupNotFound { name } => E::BackupNotFound(name),
            WireError::BackupExists { name } => E::BackupExists(name),
            WireError::IsoNotFound { name } => E::IsoNotFound(name),
            WireError::NicNotFound { name } => E::NicNotFound(name),
            WireError::Io {
                path,
                message,
                io_kind,
            } => E::Io {
                path,
                source: std::io::Error::new(io_kind_of(&io_kind), message),
            },
        }
    }
}

/// The `io::ErrorKind`s whose meaning the service layer may act on; the
/// rest come back as `Other` with the agent's message.
fn io_kind_of(name: &str) -> std::io::ErrorKind {
    use std::io::ErrorKind as K;
    match name {
        "NotFound" => K::NotFound,
        "PermissionDenied" => K::PermissionDenied,
        "AlreadyExists" => K::AlreadyExists,
        "TimedOut" => K::TimedOut,
        "InvalidInput" => K::InvalidInput,
        "InvalidData" => K::InvalidData,
        "UnexpectedEof" => K::UnexpectedEof,
        "ConnectionRefused" => K::ConnectionRefused,
        _ => K::Other,
    }
}

/// `EngineError::InvalidState` holds `&'static str`s. The engines use a
/// small fixed set of them; an unknown one (a newer agent) is kept once per
/// distinct text, up to a bound, so a misbehaving agent cannot grow memory.
fn intern(text: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "stopped",
        "running",
        "paused",
        "crashed",
        "unknown",
        "start",
        "stop",
        "hard_stop",
        "reset",
        "hard_reset",
        "pause",
        "resume",
        "using the guest agent",
        "backup restore",
        "already using this MAC",
        "plugging a NIC",
        "reading counters",
        "console",
        "reinstall",
        "revert to a disk-only snapshot",
    ];
    const MAX_EXTRA: usize = 64;
    static EXTRA: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    if let Some(k) = KNOWN.iter().find(|k| **k == text) {
        return k;
    }
    let mut extra = EXTRA.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = extra.iter().find(|k| **k == text) {
        return k;
    }
    if extra.len() >= MAX_EXTRA || text.len() > 200 {
        return "(reported by the agent)";
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    extra.push(leaked);
    leaked
}

/// The result of one call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Ok(Reply),
    Err(WireError),
}

/// One line of a reply: progress lines (only for calls that report
/// progress), then exactly one result line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Progress { step: String, percent: u8 },
    Result(CallResult),
}

#[cfg(test)]
mod tests {
    use super::*;
    use eng::EngineError as E;

    /// Through JSON and back, as an error crosses from agent to controller.
    fn across(e: &E) -> E {
        let line = Line::Result(CallResult::Err(WireError::from(e)));
        let text = serde_json::to_string(&line).unwrap();
        match serde_json::from_str::<Line>(&text).unwrap() {
            Line::Result(CallResult::Err(w)) => w.into(),
            other => panic!("not an error line: {other:?}"),
        }
    }

    #[test]
    fn every_engine_error_crosses_as_the_same_variant() {
        let all = vec![
            E::Unavailable("kvm".into()),
            E::VmNotFound("vm1".into()),
            E::VmExists("vm1".into()),
            E::ImageNotFound("a.qcow2".into()),
            E::InvalidState {
                state: "stopped",
                action: "console",
            },
            E::InvalidState {
                state: "a state from a newer agent",
                action: "start",
            },
            E::StopTimeout(45),
            E::DiskShrink {
                current_mb: 10,
                requested_mb: 5,
            },
            E::SocketPathTooLong("/x".into()),
            E::Command {
                program: "qemu-img".into(),
                status: "exit status: 1".into(),
                stderr: "boom".into(),
            },
            E::Qmp("no".into()),
            E::AgentUnavailable("silent".into()),
            E::Agent("denied".into()),
            E::SnapshotNotFound("s".into()),
            E::SnapshotExists("s".into()),
            E::BackupNotFound("b".into()),
            E::BackupExists("b".into()),
            E::IsoNotFound("i.iso".into()),
            E::NicNotFound("nic0".into()),
            E::io(
                "/var/lib/vms/vm1",
                std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
            ),
        ];
        for e in &all {
            let back = across(e);
            assert_eq!(
                std::mem::discriminant(e),
                std::mem::discriminant(&back),
                "{e:?} came back as {back:?}"
            );
            assert_eq!(e.to_string(), back.to_string());
        }
        match across(&all[all.len() - 1]) {
            E::Io { path, source } => {
                assert_eq!(path, "/var/lib/vms/vm1");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn progress_and_result_lines_have_the_documented_shape() {
        let p = serde_json::to_value(Line::Progress {
            step: "clone".into(),
            percent: 40,
        })
        .unwrap();
        assert_eq!(
            p,
            serde_json::json!({"progress": {"step": "clone", "percent": 40}})
        );
        let r = serde_json::to_value(Line::Result(CallResult::Ok(Reply::Unit))).unwrap();
        assert!(r.get("result").is_some(), "{r}");
    }

    #[test]
    fn a_spec_crosses_unchanged() {
        let spec = eng::VmSpec {
            uuid: "vm1".into(),
            cpu_num: 2,
            mem_mb: 512,
            hdd_mb: 2048,
            os_image: "demo.qcow2".into(),
            nics: vec![eng::NicSpec {
                name: "nic0".into(),
                mac: "52:54:00:00:00:01".into(),
                bridge: None,
            }],
            iso: None,
        };
        let call = EngineCall::CreateVm {
            host: Host {
                hs_name: "h".into(),
                vms_dir: "/v".into(),
                images_dir: "/i".into(),
                backups_dir: "/b".into(),
                isos_dir: "/o".into(),
            },
            spec: Spec::from(&spec),
        };
        let text = serde_json::to_string(&call).unwrap();
        assert!(text.starts_with(r#"{"call":"create_vm""#), "{text}");
        let EngineCall::CreateVm { spec: back, .. } = serde_json::from_str(&text).unwrap() else {
            panic!("{text}");
        };
        assert_eq!(eng::VmSpec::from(back), spec);
    }
}
