//! `/api/audit/login/get/` and `/api/audit/opera/get/`.

use axum::extract::State;
use ironidc_core::accounts::LogFilter;
use serde::Deserialize;

use super::docs::{PageOf, Refusals};
use super::envelope::{PtpbResult, Reply};
use super::paging::page;
use super::wire::{LoginLogReply, OperationLogReply};
use crate::kit::{Caller, Query};
use crate::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    page_size: Option<u32>,
    page: Option<u32>,
    #[serde(rename = "self", default)]
    self_only: bool,
    #[serde(default)]
    desc: bool,
    operation: Option<String>,
}

impl LogQuery {
    fn filter(&self) -> Result<LogFilter, super::envelope::PtpbError> {
        Ok(LogFilter {
            operation: self.operation.clone().filter(|o| !o.is_empty()),
            desc: self.desc,
            page: page(self.page_size, self.page)?,
            ..LogFilter::default()
        })
    }
}

/// The login log
#[utoipa::path(
    get,
    path = "/api/audit/login/get/",
    tag = "audit",
    params(LogQuery),
    operation_id = "auditLogins",
    responses((status = 200, description = "A page of login attempts.", body = PageOf<LoginLogReply>), Refusals)
)]
pub async fn logins(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<LogQuery>,
) -> PtpbResult {
    let view = s
        .services
        .login_log(&actor, q.self_only, q.filter()?)
        .await?;
    let rows = view.entries.into_iter().map(LoginLogReply::from).collect();
    Reply::page(rows, view.total)
}

/// The operation log
#[utoipa::path(
    get,
    path = "/api/audit/opera/get/",
    tag = "audit",
    params(LogQuery),
    operation_id = "auditOperations",
    responses((status = 200, description = "A page of operations.", body = PageOf<OperationLogReply>), Refusals)
)]
pub async fn operations(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<LogQuery>,
) -> PtpbResult {
    let view = s
        .services
        .operation_log(&actor, q.self_only, q.filter()?)
        .await?;
    let rows = view
        .entries
        .into_iter()
        .map(OperationLogReply::from)
        .collect();
    Reply::page(rows, view.total)
}
