//! Rows as the tables hold them, and their decoding into domain types.
//!
//! Each `…Row` struct mirrors one `SELECT` list column for column (its
//! `COLUMNS`), in the types both backends decode through `Any`: integers
//! are `i64`, flags are 0/1 integers and documents are JSON text, as the
//! migrations store them. The domain type is made from the row with `From`,
//! or `TryFrom` where a column needs parsing, so the on-disk representation
//! is turned into the domain one in one place per table.

mod accounts;
mod console;
mod hosts;
mod journal;
mod network;

pub(crate) use accounts::{ApiTokenRow, LoginLogRow, RoleRow, SessionRow, UserRow};
pub(crate) use console::ConsoleTokenRow;
pub(crate) use hosts::{HostRow, HostSummaryRow, VmRow, VmStatusRow};
pub(crate) use journal::{LogRow, TaskRow};
pub(crate) use network::{AddressRow, NatRuleRow, ProxyRow};

use ironidc_core::store::{Collision, StoreError};

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
    (
        "controllers",
        "instance",
        &["controllers.instance", "controllers_pkey"],
    ),
    (
        "busy_marks",
        "vm_key",
        &["busy_marks.vm_key", "busy_marks_pkey"],
    ),
    (
        "login_failures",
        "account",
        &["login_failures.account", "login_failures_pkey"],
    ),
    (
        "nonces",
        "nonce",
        &["nonces.key, nonces.nonce", "nonces_pkey"],
    ),
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

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A 0/1 integer flag column (flags are integers on both backends).
pub fn flag(value: i64) -> bool {
    value != 0
}

/// Domain values of fetched rows, failing on the first that does not parse.
pub fn decode_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
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
