//! The VNC console's state and tokens.

use ironidc_core::service::{ConsoleState, ConsoleTokenView};
use serde::Serialize;
use utoipa::ToSchema;

/// Whether a VM's console can be opened, and its tokens.
#[derive(Serialize, ToSchema)]
pub struct ConsoleStateReply {
    vm_uuid: String,
    /// A console can be opened now (the VM runs).
    available: bool,
    tokens: Vec<ConsoleTokenReply>,
}

impl From<ConsoleState> for ConsoleStateReply {
    fn from(s: ConsoleState) -> Self {
        let ConsoleState {
            vm_uuid,
            available,
            tokens,
        } = s;
        Self {
            vm_uuid,
            available,
            tokens: tokens.into_iter().map(ConsoleTokenReply::from).collect(),
        }
    }
}

/// A console token; the token itself is never shown again.
#[derive(Serialize, ToSchema)]
pub struct ConsoleTokenReply {
    id: i64,
    /// Who asked for it.
    actor: String,
    user_id: Option<i64>,
    /// Unix seconds.
    created_at: i64,
    last_used_at: i64,
    /// When its WebSocket was opened; null: not yet.
    opened_at: Option<i64>,
    revoked: bool,
    /// Still usable: not revoked and not idle for too long.
    live: bool,
}

copy_fields!(ConsoleTokenView => ConsoleTokenReply { id, actor, user_id, created_at, last_used_at, opened_at, revoked, live });

/// How many of a VM's console tokens were revoked.
#[derive(Serialize, ToSchema)]
pub struct ConsoleRevokedReply {
    pub vm_uuid: String,
    pub revoked: u64,
}
