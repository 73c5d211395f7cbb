//! The login and operation logs.

use ironidc_core::accounts::LoginLogEntry;
use ironidc_core::model::LogEntry;
use serde::Serialize;
use utoipa::ToSchema;

use super::date;

/// The user of a log line.
#[derive(Serialize, ToSchema)]
pub struct LogUserReply {
    id: i64,
    name: Option<String>,
}

/// One login attempt.
#[derive(Serialize, ToSchema)]
pub struct LoginLogReply {
    id: i64,
    /// The user, when the account named one; else null.
    user: Option<LogUserReply>,
    /// The account as typed.
    account: String,
    ip: String,
    /// `succeed`, `failed` or `locked`.
    status: String,
    /// Why it failed; empty on success.
    reason: String,
    /// ISO 8601 (UTC).
    #[schema(format = DateTime)]
    date: Option<String>,
}

impl From<LoginLogEntry> for LoginLogReply {
    fn from(e: LoginLogEntry) -> Self {
        let LoginLogEntry {
            id,
            user_id,
            user_name,
            account,
            ip,
            status,
            reason,
            ts,
        } = e;
        Self {
            id,
            user: user_id.map(|id| LogUserReply {
                id,
                name: user_name,
            }),
            account,
            ip,
            status,
            reason,
            date: date(ts),
        }
    }
}

/// One line of the operation log.
#[derive(Serialize, ToSchema)]
pub struct OperationLogReply {
    id: i64,
    /// The user who acted, named by `actor`; null for the root token.
    user: Option<LogUserReply>,
    /// Who acted: an account, or `admin` for the root token.
    actor: String,
    ip: String,
    /// The API face the call came through.
    face: String,
    /// What was done (`user.create`, `role.update`, …).
    operation: String,
    hs_name: Option<String>,
    /// What it was done to.
    target: Option<String>,
    /// Whether it succeeded.
    status: bool,
    message: String,
    /// ISO 8601 (UTC).
    #[schema(format = DateTime)]
    date: Option<String>,
}

impl From<LogEntry> for OperationLogReply {
    fn from(e: LogEntry) -> Self {
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
        } = e;
        Self {
            id,
            user: user_id.map(|id| LogUserReply {
                id,
                name: Some(actor.clone()),
            }),
            actor,
            ip: source_ip,
            face,
            operation: action,
            hs_name,
            target,
            status: ok,
            message,
            date: date(ts),
        }
    }
}
