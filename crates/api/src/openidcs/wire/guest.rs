//! Inside a VM: the guest's status upload, the monitoring series and the
//! guest agent's answers.

use ironidc_core::engine::GuestInterface;
use ironidc_core::service::{AgentStatus, ExecView, MonitorSample, MonitorSeries, ReportAck};
use serde::Serialize;
use utoipa::ToSchema;

use super::vms::HwStatusReply;

/// A guest's report is stored. Never carries a password.
#[derive(Serialize, ToSchema)]
pub struct ReportAckReply {
    hs_name: String,
    vm_uuid: String,
    /// OpenIDCS's power state name (`STARTED`, …).
    vm_flag: String,
}

impl From<ReportAck> for ReportAckReply {
    fn from(a: ReportAck) -> Self {
        let ReportAck {
            hs_name,
            vm_uuid,
            state,
        } = a;
        Self {
            hs_name,
            vm_uuid,
            vm_flag: super::vms::vm_flag(state).to_string(),
        }
    }
}

/// A VM's samples between two times.
#[derive(Serialize, ToSchema)]
pub struct MonitorSeriesReply {
    vm_uuid: String,
    /// Unix seconds, inclusive.
    from: i64,
    to: i64,
    /// Oldest first.
    samples: Vec<MonitorSampleReply>,
}

impl From<MonitorSeries> for MonitorSeriesReply {
    fn from(m: MonitorSeries) -> Self {
        let MonitorSeries {
            vm_uuid,
            from,
            to,
            samples,
        } = m;
        Self {
            vm_uuid,
            from,
            to,
            samples: samples.into_iter().map(MonitorSampleReply::from).collect(),
        }
    }
}

/// One sample of a VM's series.
#[derive(Serialize, ToSchema)]
pub struct MonitorSampleReply {
    /// Unix seconds.
    ts: i64,
    /// The power state then (`running`, `stopped`, …).
    state: String,
    status: HwStatusReply,
}

impl From<MonitorSample> for MonitorSampleReply {
    fn from(s: MonitorSample) -> Self {
        let MonitorSample { ts, state, status } = s;
        Self {
            ts,
            state,
            status: status.into(),
        }
    }
}

/// Whether the guest agent answers.
#[derive(Serialize, ToSchema)]
pub struct AgentStatusReply {
    available: bool,
    /// Why not, or the agent's version.
    message: String,
}

copy_fields!(AgentStatus => AgentStatusReply { available, message });

/// What a program run in the guest did.
#[derive(Serialize, ToSchema)]
pub struct ExecReply {
    /// Null when it was killed (by a signal or at the timeout).
    exit_code: Option<i32>,
    timed_out: bool,
    /// Output as text (invalid UTF-8 replaced).
    stdout: String,
    stderr: String,
}

copy_fields!(ExecView => ExecReply { exit_code, timed_out, stdout, stderr });

/// A network interface as the guest agent reports it.
#[derive(Serialize, ToSchema)]
pub struct GuestInterfaceReply {
    name: String,
    /// Lower-case `aa:bb:cc:dd:ee:ff`; empty for loopback.
    mac: String,
    /// `ADDRESS/PREFIX`, IPv4 and IPv6.
    addresses: Vec<String>,
    rx_bytes: u64,
    tx_bytes: u64,
}

copy_fields!(GuestInterface => GuestInterfaceReply { name, mac, addresses, rx_bytes, tx_bytes });

/// A guest user's password is set.
#[derive(Serialize, ToSchema)]
pub struct GuestPasswordReply {
    pub vm_uuid: String,
    /// `root` unless another was named.
    pub user: String,
}

/// The guest's hostname is set.
#[derive(Serialize, ToSchema)]
pub struct GuestHostnameReply {
    pub vm_uuid: String,
    pub hostname: String,
}

/// A file is written in the guest.
#[derive(Serialize, ToSchema)]
pub struct GuestFileReply {
    pub path: String,
    /// Bytes written.
    pub bytes: usize,
}
