//! Decoding of rows into domain types.

use ironidc_core::engine::PowerState;
use ironidc_core::model::{Host, LogEntry, Task, TaskStatus, Vm, VmStatusSample};
use ironidc_core::store::{Collision, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The schema's unique constraints: table, column, and how each backend
/// names it in a violation (SQLite's `table.column` or `index 'name'`,
/// PostgreSQL's constraint name). Keep in step with the migrations.
const UNIQUE: &[(&str, &str, &[&str])] = &[
    ("hosts", "name", &["hosts.name", "hosts_name_key"]),
    ("vms", "uuid", &["vms.uuid", "vms_uuid_key"]),
    ("vm_nics", "mac", &["vm_nics.mac", "vm_nics_pkey"]),
    (
        "vm_addresses",
        "address",
        &["vm_addresses.address", "vm_addresses_host_id_address_key"],
    ),
    (
        "proxies",
        "domain",
        &["proxies.domain", "proxies_domain_key"],
    ),
    ("users", "account", &["users_account_uq"]),
    ("users", "email", &["users_email_uq"]),
    ("users", "phone", &["users_phone_uq", "users.phone"]),
    (
        "users",
        "external_id",
        &["users_external_id_uq", "users.external_id"],
    ),
    ("roles", "name", &["roles_name_uq", "roles.name"]),
    ("roles", "code", &["roles_code_uq", "roles.code"]),
    (
        "api_tokens",
        "token_hash",
        &["api_tokens_token_hash_uq", "api_tokens.token_hash"],
    ),
    (
        "console_tokens",
        "token_hash",
        &["console_tokens_token_hash_uq", "console_tokens.token_hash"],
    ),
    (
        "role_permissions",
        "code",
        &["role_permissions.code", "role_permissions_pkey"],
    ),
    (
        "user_roles",
        "role_id",
        &["user_roles.role_id", "user_roles_pkey"],
    ),
    ("sessions", "id", &["sessions.id", "sessions_pkey"]),
    ("settings", "key", &["settings.key", "settings_pkey"]),
];

/// The unique constraint a violation names, by the constraint name
/// PostgreSQL reports or the text SQLite writes.
fn collision(constraint: Option<&str>, message: &str) -> Option<Collision> {
    UNIQUE
        .iter()
        .find(|(_, _, names)| {
            names.iter().any(|n| {
                constraint == Some(*n) || message.contains(&format!("'{n}'")) || {
                    n.contains('.') && message.contains(n)
                }
            })
        })
        .map(|(table, column, _)| Collision::new(table, column))
}

pub fn db(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            if let Some(c) = collision(d.constraint(), d.message()) {
                return StoreError::Conflict(c);
            }
            tracing::warn!(error = %d, "a unique violation of a constraint the store does not know");
            return StoreError::Database(e.to_string());
        }
    }
    StoreError::Database(e.to_string())
}

/// A conflict with the value that collided.
pub fn with_value(e: StoreError, value: &str) -> StoreError {
    match e {
        StoreError::Conflict(c) => StoreError::Conflict(c.with_value(value)),
        other => other,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_name_table_and_column_on_both_backends() {
        for (constraint, message, table, column) in [
            (
                None,
                "UNIQUE constraint failed: index 'users_account_uq'",
                "users",
                "account",
            ),
            (
                None,
                "UNIQUE constraint failed: users.phone",
                "users",
                "phone",
            ),
            (
                None,
                "UNIQUE constraint failed: hosts.name",
                "hosts",
                "name",
            ),
            (
                None,
                "UNIQUE constraint failed: vm_nics.mac",
                "vm_nics",
                "mac",
            ),
            (
                None,
                "UNIQUE constraint failed: vm_addresses.host_id, vm_addresses.address",
                "vm_addresses",
                "address",
            ),
            (
                None,
                "UNIQUE constraint failed: api_tokens.token_hash",
                "api_tokens",
                "token_hash",
            ),
            (
                Some("users_external_id_uq"),
                "duplicate key value",
                "users",
                "external_id",
            ),
            (Some("vms_uuid_key"), "duplicate key value", "vms", "uuid"),
            (
                Some("roles_code_uq"),
                "duplicate key value",
                "roles",
                "code",
            ),
        ] {
            assert_eq!(
                collision(constraint, message),
                Some(Collision::new(table, column)),
                "{message}"
            );
        }
        assert_eq!(collision(None, "something else"), None);
    }

    /// Every unique index, unique column and natural primary key of the
    /// migrations is in `UNIQUE`, so a new one cannot become an untyped
    /// conflict unnoticed.
    #[test]
    fn the_registry_knows_every_unique_constraint() {
        let known = |name: &str| UNIQUE.iter().any(|(_, _, names)| names.contains(&name));
        for dir in ["sqlite", "postgres"] {
            let path = format!("{}/src/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{path}: {e}")) {
                let sql = std::fs::read_to_string(entry.map(|e| e.path()).unwrap_or_default())
                    .unwrap_or_default();
                let mut table = "";
                for line in sql.lines().map(str::trim) {
                    if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                        table = rest.split([' ', '(']).next().unwrap_or("");
                    } else if let Some(rest) = line.strip_prefix("CREATE UNIQUE INDEX ") {
                        let name = rest.split(' ').next().unwrap_or("");
                        assert!(known(name), "{dir}: unique index {name} is not in UNIQUE");
                    } else if (line.contains(" UNIQUE") || line.contains("TEXT PRIMARY KEY"))
                        && !line.starts_with("UNIQUE (")
                    {
                        let column = line.split(' ').next().unwrap_or("");
                        let name = format!("{table}.{column}");
                        assert!(known(&name), "{dir}: {name} is unique but not in UNIQUE");
                    }
                }
            }
        }
    }
}
