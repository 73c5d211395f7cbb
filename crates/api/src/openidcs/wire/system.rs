//! The controller itself: tasks, the operation log and counts.

use ironidc_core::model::{LogEntry, Task};
use ironidc_core::service::Stats;
use serde::Serialize;
use utoipa::ToSchema;

/// A task: every long or changing operation is one.
#[derive(Serialize, ToSchema)]
pub struct TaskReply {
    id: i64,
    /// What it does (`vm.create`, `vm.backup`, …).
    kind: String,
    hs_name: Option<String>,
    vm_uuid: Option<String>,
    /// Who asked.
    actor: String,
    /// What it is doing now.
    step: String,
    /// `running`, `succeeded` or `failed`.
    status: String,
    /// Percent.
    progress: u8,
    result: Option<serde_json::Value>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Task> for TaskReply {
    fn from(t: Task) -> Self {
        let Task {
            id,
            kind,
            hs_name,
            vm_uuid,
            actor,
            step,
            status,
            progress,
            result,
            error,
            created_at,
            updated_at,
        } = t;
        Self {
            id,
            kind,
            hs_name,
            vm_uuid,
            actor,
            step,
            status: status.as_str().to_string(),
            progress,
            result,
            error,
            created_at,
            updated_at,
        }
    }
}

/// One line of the operation log.
#[derive(Serialize, ToSchema)]
pub struct LogReply {
    id: i64,
    /// Unix seconds.
    ts: i64,
    actor: String,
    user_id: Option<i64>,
    source_ip: String,
    /// The API face the call came through.
    face: String,
    action: String,
    hs_name: Option<String>,
    target: Option<String>,
    ok: bool,
    message: String,
}

impl From<LogEntry> for LogReply {
    fn from(l: LogEntry) -> Self {
        let LogEntry {
            id,
            ts,
            actor,
            user_id,
            source_ip,
            face,
            action,
            hs_name,
            target,
            ok,
            message,
        } = l;
        Self {
            id,
            ts,
            actor,
            user_id,
            source_ip,
            face,
            action,
            hs_name,
            target,
            ok,
            message,
        }
    }
}

/// Counts of hosts and VMs.
#[derive(Serialize, ToSchema)]
pub struct StatsReply {
    host_count: i64,
    vm_count: i64,
    running_vm_count: i64,
}

impl From<Stats> for StatsReply {
    fn from(s: Stats) -> Self {
        let Stats {
            host_count,
            vm_count,
            running_vm_count,
        } = s;
        Self {
            host_count,
            vm_count,
            running_vm_count,
        }
    }
}

/// The connection test of OpenIDCS billing modules.
#[derive(Serialize, ToSchema)]
pub struct ConnectionTestReply {
    /// ironidc's version.
    pub version: String,
    #[serde(flatten)]
    pub stats: StatsReply,
}
