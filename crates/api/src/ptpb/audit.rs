//! `/api/audit/login/get/` and `/api/audit/opera/get/`.

use axum::extract::State;
use ironidc_core::accounts::LogFilter;
use serde::Deserialize;
use serde_json::json;

use super::docs::{Envelope, Refusals};
use super::envelope::{date, PtpbResult, Reply};
use super::paging::page;
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

fn user_json(id: Option<i64>, name: Option<String>) -> serde_json::Value {
    match id {
        Some(id) => json!({ "id": id, "name": name }),
        None => serde_json::Value::Null,
    }
}

/// The login log
#[utoipa::path(
    get,
    path = "/api/audit/login/get/",
    tag = "audit",
    params(LogQuery),
    operation_id = "auditLogins",
    responses((status = 200, description = "Done.", body = Envelope), Refusals)
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
    let rows = view
        .entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "user": user_json(e.user_id, e.user_name),
                "account": e.account,
                "ip": e.ip,
                "status": e.status,
                "reason": e.reason,
                "date": date(e.ts),
            })
        })
        .collect();
    Reply::page::<serde_json::Value>(rows, view.total)
}

/// The operation log
#[utoipa::path(
    get,
    path = "/api/audit/opera/get/",
    tag = "audit",
    params(LogQuery),
    operation_id = "auditOperations",
    responses((status = 200, description = "Done.", body = Envelope), Refusals)
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
        .map(|e| {
            json!({
                "id": e.id,
                "user": user_json(e.user_id, Some(e.actor.clone())),
                "actor": e.actor,
                "ip": e.source_ip,
                "face": e.face,
                "operation": e.action,
                "hs_name": e.hs_name,
                "target": e.target,
                "status": e.ok,
                "message": e.message,
                "date": date(e.ts),
            })
        })
        .collect();
    Reply::page::<serde_json::Value>(rows, view.total)
}
