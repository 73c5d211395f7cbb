//! The PTPB wire format: `{"code","msg","detail","total"}` with the HTTP
//! status equal to `code`, and the one mapping of core errors to it. A bad
//! field is `detail: {"field": ["message"]}`, as PTPB's serializers say it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ironidc_core::{CoreError, ErrorClass};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::wire::SessionTokensReply;

/// A successful reply: `detail` and `total` when given, plus any extra
/// top-level keys (`token` for logins). Only the face's own types (those
/// with a schema, which no core type has) are put in it, so what the
/// document describes is what is sent.
pub struct Reply {
    body: ReplyBody,
    headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

/// The reply as it is written. Each part is serialized once, straight to
/// JSON text (`RawValue`), never through a `serde_json::Value`. The keys
/// are declared in the sorted order PTPB clients have always received
/// (it was a `Value` map's).
#[derive(Serialize)]
struct ReplyBody {
    code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Box<RawValue>>,
    /// `Some(())` writes `"extra": null`, as pages have it.
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<()>,
    msg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

impl Reply {
    /// `{code, msg}`.
    pub fn ok() -> Self {
        Self {
            body: ReplyBody {
                code: 200,
                detail: None,
                extra: None,
                msg: "OK",
                token: None,
                total: None,
            },
            headers: Vec::new(),
        }
    }

    /// `{code, msg, detail}`.
    pub fn detail<T: Serialize + ToSchema>(detail: T) -> Result<Self, PtpbError> {
        let mut reply = Self::ok();
        reply.body.detail = Some(raw(&detail)?);
        Ok(reply)
    }

    /// A page of a list, in PTPB's shape (`total`, `detail`, `extra`).
    pub fn page<T: Serialize + ToSchema>(items: Vec<T>, total: u64) -> Result<Self, PtpbError> {
        let mut reply = Self::ok();
        reply.body.detail = Some(raw(&items)?);
        reply.body.total = Some(total);
        reply.body.extra = Some(());
        Ok(reply)
    }

    /// `{code, msg, total}`: how many items a delete removed.
    pub fn counted(total: u64) -> Self {
        let mut reply = Self::ok();
        reply.body.total = Some(total);
        reply
    }

    /// `{code, msg, token}`: a login's or a refresh's tokens.
    pub fn tokens(tokens: SessionTokensReply) -> Result<Self, PtpbError> {
        let mut reply = Self::ok();
        reply.body.token = Some(raw(&tokens)?);
        Ok(reply)
    }

    pub fn header(mut self, name: axum::http::HeaderName, value: axum::http::HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A part of a reply as JSON text.
fn raw(value: &impl Serialize) -> Result<Box<RawValue>, PtpbError> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| PtpbError::internal(format!("response encoding: {e}")))
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = json_response(StatusCode::OK, &self.body);
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// `body` as an `application/json` response with `status`.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        // Only a failing `Serialize` impl gets here: an error reply that
        // cannot fail in turn.
        Err(e) => PtpbError::internal(format!("response encoding: {e}")).into_response(),
    }
}

/// The `detail` of a refusal: a message, or for refused input the
/// messages per field, as PTPB's serializers give them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RefusalDetail {
    Message(String),
    /// `{"field": ["message"]}`.
    Fields(BTreeMap<String, Vec<String>>),
}

#[derive(Debug)]
pub struct PtpbError {
    status: StatusCode,
    detail: RefusalDetail,
    retry_after: Option<u64>,
}

impl PtpbError {
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: RefusalDetail::Message(message.into()),
            retry_after: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            detail: RefusalDetail::Message(message.into()),
            retry_after: None,
        }
    }
}

impl From<CoreError> for PtpbError {
    fn from(e: CoreError) -> Self {
        let status = match e.class() {
            // PTPB answers every refused input, duplicates included, 400.
            ErrorClass::BadRequest | ErrorClass::Conflict => StatusCode::BAD_REQUEST,
            ErrorClass::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorClass::Forbidden => StatusCode::FORBIDDEN,
            ErrorClass::NotFound => StatusCode::NOT_FOUND,
            ErrorClass::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        let retry_after = e.retry_after();
        let detail = match e {
            CoreError::Invalid { field, message } => {
                RefusalDetail::Fields(BTreeMap::from([(field, vec![message])]))
            }
            other => RefusalDetail::Message(other.to_string()),
        };
        Self {
            status,
            detail,
            retry_after,
        }
    }
}

impl From<crate::face::Unrouted> for PtpbError {
    fn from(u: crate::face::Unrouted) -> Self {
        Self {
            status: u.status(),
            detail: RefusalDetail::Message(u.message().into()),
            retry_after: None,
        }
    }
}

/// PTPB's words for each status.
fn msg_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "参数错误",
        401 => "未登录",
        403 => "权限错误",
        404 => "未找到",
        405 => "方法不允许",
        429 => "请求过于频繁",
        _ => "服务器错误",
    }
}

impl IntoResponse for PtpbError {
    fn into_response(self) -> Response {
        // Sorted keys, as the `Value` map this was wrote them.
        #[derive(Serialize)]
        struct Refusal<'a> {
            code: u16,
            detail: &'a RefusalDetail,
            msg: &'static str,
        }
        let body = Refusal {
            code: self.status.as_u16(),
            detail: &self.detail,
            msg: msg_of(self.status),
        };
        // A refusal's parts are strings and string maps: it always
        // encodes, so `json_response` never turns it into another refusal.
        let mut response = json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type PtpbResult = Result<Reply, PtpbError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// PTPB's serializers' shape for a refused field, and a bare message
    /// for everything else.
    #[test]
    fn refusal_details() {
        let invalid = PtpbError::from(CoreError::invalid("page", "must be at least 1"));
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            serde_json::to_value(&invalid.detail).unwrap(),
            json!({"page": ["must be at least 1"]})
        );
        let missing = PtpbError::not_found("no such role");
        assert_eq!(
            serde_json::to_value(&missing.detail).unwrap(),
            json!("no such role")
        );
    }
}
