//! `/api/client/…` operations inside a VM: the guest's status upload, the
//! monitoring series, and guest-agent actions.

use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use ironidc_core::model::HwStatus;
use ironidc_core::service::{now, ExecInput};
use serde::Deserialize;

use super::docs::{ChangeRefusals, ReadRefusals, ReplyOf};
use super::envelope::{ApiError, ApiResult, Data};
use super::params::VmPath;
use super::wire::{
    AgentStatusReply, ExecReply, GuestFileReply, GuestHostnameReply, GuestInterfaceReply,
    GuestPasswordReply, MonitorSeriesReply, ReportAckReply,
};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Path, Query};
use crate::AppState;

/// The header a guest's reporter sends its per-VM secret in.
pub const REPORT_SECRET_HEADER: &str = "x-ironidc-secret";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    nic: Option<String>,
}

/// `POST /api/client/upload?nic=MAC` with an HWStatus body and the VM's
/// report secret in `X-Ironidc-Secret`. Answers `{hs_name, vm_uuid,
/// vm_flag}` and never a password.
#[utoipa::path(
    post,
    path = "/api/client/upload",
    tag = "guest",
    operation_id = "uploadStatus",
    params(UploadQuery),
    request_body = serde_json::Value,
    responses((status = 200, description = "The report is stored.", body = ReplyOf<ReportAckReply>), ChangeRefusals),
    security(("reportSecret" = []))
)]
pub async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    JsonObject(body): JsonObject,
) -> ApiResult<ReportAckReply> {
    let mac = q
        .nic
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("nic: is required (the reporting NIC's MAC)"))?;
    let secret = headers
        .get(REPORT_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let report: HwStatus = from_json(body.into())?;
    Ok(Data(
        s.services.accept_report(&mac, secret, report).await?.into(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonitorQuery {
    /// `hour` (default) or `day`, ending now; or explicit `from`/`to`.
    range: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /api/client/monitor/{hs}/{vm}?range=hour|day` or `?from=&to=`.
#[utoipa::path(
    get,
    path = "/api/client/monitor/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "vmMonitor",
    params(VmPath, MonitorQuery),
    responses((status = 200, description = "The samples, oldest first.", body = ReplyOf<MonitorSeriesReply>), ChangeRefusals)
)]
pub async fn monitor(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    Query(q): Query<MonitorQuery>,
) -> ApiResult<MonitorSeriesReply> {
    let to = q.to.unwrap_or_else(now);
    let from = match (q.from, q.range.as_deref()) {
        (Some(from), _) => from,
        (None, None | Some("hour")) => to.saturating_sub(3600),
        (None, Some("day")) => to.saturating_sub(86_400),
        (None, Some(_)) => return Err(ApiError::bad_request("range: must be hour or day")),
    };

    Ok(Data(
        s.services
            .vm_monitor(&actor, &hs, &vm, from, to)
            .await?
            .into(),
    ))
}

/// `GET /api/client/agent/{hs}/{vm}`: does the guest agent answer?
#[utoipa::path(
    get,
    path = "/api/client/agent/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "agentStatus",
    params(VmPath),
    responses((status = 200, description = "The agent's availability (never an error for a silent agent).", body = ReplyOf<AgentStatusReply>), ReadRefusals)
)]
pub async fn agent_status(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<AgentStatusReply> {
    Ok(Data(
        s.services.agent_status(&actor, &hs, &vm).await?.into(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[serde(default)]
    user: Option<String>,
    password: String,
}

/// `POST /api/client/password/{hs}/{vm}` `{"password", "user"?}`.
#[utoipa::path(
    post,
    path = "/api/client/password/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "resetGuestPassword",
    params(VmPath),
    request_body = PasswordBody,
    responses((status = 200, description = "The password is set.", body = ReplyOf<GuestPasswordReply>), ChangeRefusals)
)]
pub async fn password(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<GuestPasswordReply> {
    let req: PasswordBody = from_json(body.into())?;
    s.services
        .reset_guest_password(&actor, &hs, &vm, req.user.as_deref(), &req.password)
        .await?;
    Ok(Data(GuestPasswordReply {
        vm_uuid: vm,
        user: req.user.unwrap_or_else(|| "root".into()),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HostnameBody {
    hostname: String,
}

/// `POST /api/client/hostname/{hs}/{vm}` `{"hostname"}`.
#[utoipa::path(
    post,
    path = "/api/client/hostname/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "setGuestHostname",
    params(VmPath),
    request_body = HostnameBody,
    responses((status = 200, description = "The hostname is set.", body = ReplyOf<GuestHostnameReply>), ChangeRefusals)
)]
pub async fn hostname(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<GuestHostnameReply> {
    let req: HostnameBody = from_json(body.into())?;
    s.services
        .set_guest_hostname(&actor, &hs, &vm, &req.hostname)
        .await?;
    Ok(Data(GuestHostnameReply {
        vm_uuid: vm,
        hostname: req.hostname,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FileBody {
    path: String,
    /// Text content, or base64 with `"encoding": "base64"`.
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

/// `POST /api/client/file/{hs}/{vm}` `{"path", "content", "encoding"?}`.
#[utoipa::path(
    post,
    path = "/api/client/file/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "writeGuestFile",
    params(VmPath),
    request_body = FileBody,
    responses((status = 200, description = "The file is written.", body = ReplyOf<GuestFileReply>), ChangeRefusals)
)]
pub async fn write_file(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<GuestFileReply> {
    let req: FileBody = from_json(body.into())?;
    let bytes = decode_content("content", &req.content, req.encoding.as_deref())?;
    s.services
        .write_guest_file(&actor, &hs, &vm, &req.path, &bytes)
        .await?;
    Ok(Data(GuestFileReply {
        path: req.path,
        bytes: bytes.len(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExecBody {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    stdin_encoding: Option<String>,
    /// Seconds; default 30.
    #[serde(default)]
    timeout: Option<u64>,
}

/// `POST /api/client/exec/{hs}/{vm}` `{"command", "args"?, "stdin"?,
/// "timeout"?}` → `{exit_code, timed_out, stdout, stderr}`.
#[utoipa::path(
    post,
    path = "/api/client/exec/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "execInGuest",
    params(VmPath),
    request_body = ExecBody,
    responses((status = 200, description = "What the program did.", body = ReplyOf<ExecReply>), ChangeRefusals)
)]
pub async fn exec(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
    JsonObject(body): JsonObject,
) -> ApiResult<ExecReply> {
    let req: ExecBody = from_json(body.into())?;
    let stdin = req
        .stdin
        .as_deref()
        .map(|s| decode_content("stdin", s, req.stdin_encoding.as_deref()))
        .transpose()?;
    Ok(Data(
        s.services
            .exec_in_guest(
                &actor,
                &hs,
                &vm,
                ExecInput {
                    program: req.command,
                    args: req.args,
                    stdin,
                    timeout_secs: req.timeout.unwrap_or(30),
                },
            )
            .await?
            .into(),
    ))
}

/// `GET /api/client/interfaces/{hs}/{vm}`: the guest's NICs and addresses.
#[utoipa::path(
    get,
    path = "/api/client/interfaces/{hs_name}/{vm_uuid}",
    tag = "guest",
    operation_id = "guestInterfaces",
    params(VmPath),
    responses((status = 200, description = "The interfaces.", body = ReplyOf<Vec<GuestInterfaceReply>>), ChangeRefusals)
)]
pub async fn interfaces(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(VmPath {
        hs_name: hs,
        vm_uuid: vm,
    }): Path<VmPath>,
) -> ApiResult<Vec<GuestInterfaceReply>> {
    let interfaces = s.services.guest_interfaces(&actor, &hs, &vm).await?;
    Ok(Data(
        interfaces
            .into_iter()
            .map(GuestInterfaceReply::from)
            .collect(),
    ))
}

fn decode_content(field: &str, value: &str, encoding: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match encoding {
        None | Some("") | Some("text") => Ok(value.as_bytes().to_vec()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|e| ApiError::bad_request(format!("{field}: invalid base64: {e}"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{field}_encoding: must be text or base64"
        ))),
    }
}
