//! Rows of the task queue and the audit log.

use ironidc_core::model::{LogEntry, Task, TaskStatus};
use ironidc_core::store::StoreError;

use super::{flag, json};

/// A `tasks` row.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: i64,
    kind: String,
    hs_name: Option<String>,
    vm_uuid: Option<String>,
    actor: String,
    step: String,
    status: String,
    progress: i64,
    result: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    controller: Option<String>,
}

impl TaskRow {
    pub(crate) const COLUMNS: &'static str = "id, kind, hs_name, vm_uuid, actor, step, status, \
         progress, result, error, created_at, updated_at, controller";
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;

    fn try_from(row: TaskRow) -> Result<Self, StoreError> {
        Ok(Task {
            id: row.id,
            kind: row.kind,
            hs_name: row.hs_name,
            vm_uuid: row.vm_uuid,
            actor: row.actor,
            step: row.step,
            status: TaskStatus::parse(&row.status),
            progress: row.progress.clamp(0, 100) as u8,
            result: row.result.map(|s| json("task result", &s)).transpose()?,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            controller: row.controller,
        })
    }
}

/// A `logs` row: one audited call.
#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    id: i64,
    ts: i64,
    actor: String,
    user_id: Option<i64>,
    source_ip: String,
    face: String,
    action: String,
    hs_name: Option<String>,
    target: Option<String>,
    ok: i64,
    message: String,
}

impl LogRow {
    pub(crate) const COLUMNS: &'static str =
        "id, ts, actor, user_id, source_ip, face, action, hs_name, target, ok, message";
}

impl From<LogRow> for LogEntry {
    fn from(row: LogRow) -> Self {
        LogEntry {
            id: row.id,
            ts: row.ts,
            actor: row.actor,
            user_id: row.user_id,
            source_ip: row.source_ip,
            face: row.face,
            action: row.action,
            hs_name: row.hs_name,
            target: row.target,
            ok: flag(row.ok),
            message: row.message,
        }
    }
}
