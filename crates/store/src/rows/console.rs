//! Rows of console tokens.

use ironidc_core::store::ConsoleToken;

use super::flag;

/// A `console_tokens` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ConsoleTokenRow {
    id: i64,
    token_hash: String,
    vm_id: i64,
    user_id: Option<i64>,
    actor: String,
    created_at: i64,
    last_used_at: i64,
    opened_at: Option<i64>,
    revoked: i64,
}

impl ConsoleTokenRow {
    pub(crate) const COLUMNS: &'static str =
        "id, token_hash, vm_id, user_id, actor, created_at, last_used_at, opened_at, revoked";
}

impl From<ConsoleTokenRow> for ConsoleToken {
    fn from(row: ConsoleTokenRow) -> Self {
        ConsoleToken {
            id: row.id,
            token_hash: row.token_hash,
            vm_id: row.vm_id,
            user_id: row.user_id,
            actor: row.actor,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            opened_at: row.opened_at,
            revoked: flag(row.revoked),
        }
    }
}
