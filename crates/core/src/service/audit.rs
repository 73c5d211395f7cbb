//! Reading the audit trail: the login log and the operation log. Everyone
//! may read their own rows; reading everyone's takes `audit.login.read` or
//! `audit.opera.read`.

use super::{Actor, Services};
use crate::accounts::{LogFilter, LoginLogEntry};
use crate::error::CoreError;
use crate::model::LogEntry;

#[derive(Debug, Clone)]
pub struct LoginLogView {
    pub entries: Vec<LoginLogEntry>,
    pub total: u64,
}

#[derive(Debug, Clone)]
pub struct OperationLogView {
    pub entries: Vec<LogEntry>,
    pub total: u64,
}

impl Services {
    /// `self_only` keeps the caller's own rows; without it the caller
    /// needs `audit.login.read`.
    pub async fn login_log(
        &self,
        actor: &Actor,
        self_only: bool,
        mut filter: LogFilter,
    ) -> Result<LoginLogView, CoreError> {
        filter.user_id = scope(actor, self_only, "audit.login.read")?;
        let (entries, total) = self.store().list_login_logs(&filter).await?;
        Ok(LoginLogView { entries, total })
    }

    /// `self_only` keeps the caller's own rows; without it the caller
    /// needs `audit.opera.read`.
    pub async fn operation_log(
        &self,
        actor: &Actor,
        self_only: bool,
        mut filter: LogFilter,
    ) -> Result<OperationLogView, CoreError> {
        filter.user_id = scope(actor, self_only, "audit.opera.read")?;
        let (entries, total) = self.store().list_logs(&filter).await?;
        Ok(OperationLogView { entries, total })
    }
}

/// The user filter a log query runs with. The root token has no rows of
/// its own as a user, so `self` means everything for it.
fn scope(actor: &Actor, self_only: bool, all_permission: &str) -> Result<Option<i64>, CoreError> {
    match actor.user_id {
        None => Ok(None),
        Some(id) if self_only => Ok(Some(id)),
        Some(_) => {
            actor.require(all_permission)?;
            Ok(None)
        }
    }
}
