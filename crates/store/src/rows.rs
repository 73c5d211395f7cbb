//! Decoding of rows into domain types.

use ironidc_core::engine::PowerState;
use ironidc_core::model::{Host, LogEntry, Task, TaskStatus, Vm, VmStatusSample};
use ironidc_core::store::StoreError;
use sqlx::any::AnyRow;
use sqlx::Row;

pub fn db(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::Conflict(d.message().to_string());
        }
    }
    StoreError::Database(e.to_string())
}

pub fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A 0/1 integer column (flags are integers on both backends).
pub fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column).map_err(db)? != 0)
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub const HOST_COLUMNS: &str = "id, name, engine, enabled, config, created_at";

pub fn host(row: &AnyRow) -> Result<Host, StoreError> {
    Ok(Host {
        id: row.try_get("id").map_err(db)?,
        name: row.try_get("name").map_err(db)?,
        engine: row.try_get("engine").map_err(db)?,
        enabled: flag(row, "enabled")?,
        config: json(
            "host config",
            &row.try_get::<String, _>("config").map_err(db)?,
        )?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

pub const VM_COLUMNS: &str =
    "v.id, v.host_id, h.name AS hs_name, v.uuid, v.config, v.state, v.pending_restart, \
     v.last_status, v.os_pass, v.owner_id, v.created_at, v.updated_at";

pub fn vm(row: &AnyRow) -> Result<Vm, StoreError> {
    let last_status: Option<String> = row.try_get("last_status").map_err(db)?;
    Ok(Vm {
        id: row.try_get("id").map_err(db)?,
        host_id: row.try_get("host_id").map_err(db)?,
        hs_name: row.try_get("hs_name").map_err(db)?,
        uuid: row.try_get("uuid").map_err(db)?,
        config: json(
            "vm config",
            &row.try_get::<String, _>("config").map_err(db)?,
        )?,
        state: PowerState::parse(&row.try_get::<String, _>("state").map_err(db)?),
        pending_restart: flag(row, "pending_restart")?,
        last_status: last_status.map(|s| json("vm status", &s)).transpose()?,
        os_pass_sealed: row.try_get("os_pass").map_err(db)?,
        owner_id: row.try_get("owner_id").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

pub fn sample(row: &AnyRow) -> Result<VmStatusSample, StoreError> {
    Ok(VmStatusSample {
        ts: row.try_get("ts").map_err(db)?,
        state: PowerState::parse(&row.try_get::<String, _>("state").map_err(db)?),
        status: json(
            "vm status",
            &row.try_get::<String, _>("status").map_err(db)?,
        )?,
    })
}

pub const TASK_COLUMNS: &str =
    "id, kind, hs_name, vm_uuid, actor, step, status, progress, result, error, created_at, updated_at";

pub fn task(row: &AnyRow) -> Result<Task, StoreError> {
    let result: Option<String> = row.try_get("result").map_err(db)?;
    Ok(Task {
        id: row.try_get("id").map_err(db)?,
        kind: row.try_get("kind").map_err(db)?,
        hs_name: row.try_get("hs_name").map_err(db)?,
        vm_uuid: row.try_get("vm_uuid").map_err(db)?,
        actor: row.try_get("actor").map_err(db)?,
        step: row.try_get("step").map_err(db)?,
        status: TaskStatus::parse(&row.try_get::<String, _>("status").map_err(db)?),
        progress: row.try_get::<i64, _>("progress").map_err(db)?.clamp(0, 100) as u8,
        result: result.map(|s| json("task result", &s)).transpose()?,
        error: row.try_get("error").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

pub const LOG_COLUMNS: &str =
    "id, ts, actor, user_id, source_ip, face, action, hs_name, target, ok, message";

pub fn log(row: &AnyRow) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        id: row.try_get("id").map_err(db)?,
        ts: row.try_get("ts").map_err(db)?,
        actor: row.try_get("actor").map_err(db)?,
        user_id: row.try_get("user_id").map_err(db)?,
        source_ip: row.try_get("source_ip").map_err(db)?,
        face: row.try_get("face").map_err(db)?,
        action: row.try_get("action").map_err(db)?,
        hs_name: row.try_get("hs_name").map_err(db)?,
        target: row.try_get("target").map_err(db)?,
        ok: flag(row, "ok")?,
        message: row.try_get("message").map_err(db)?,
    })
}
