//! The OpenIDCS wire format: `{"code","msg","data","timestamp"}` with the
//! HTTP status equal to `code`, and the one mapping of core errors to it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ironidc_core::service::now;
use ironidc_core::{CoreError, ErrorClass};
use serde::Serialize;

/// A successful reply.
pub struct Data<T>(pub T);

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        envelope(StatusCode::OK, "success", &self.0)
    }
}

/// The envelope as it goes out, borrowing its parts: written straight to
/// bytes, with no `serde_json::Value` in between. The keys keep the order
/// replies have always had (the `Value` map sorted them): code, data, msg,
/// timestamp.
#[derive(Serialize)]
struct Envelope<'a, T> {
    code: u16,
    data: &'a T,
    msg: &'a str,
    timestamp: i64,
}

fn envelope<T: Serialize>(status: StatusCode, msg: &str, data: &T) -> Response {
    let body = Envelope {
        code: status.as_u16(),
        data,
        msg,
        timestamp: now(),
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => json_response(status, bytes),
        Err(e) => {
            // Only a failing `Serialize` impl gets here; the error reply
            // itself has no data that could fail.
            let msg = format!("response encoding: {e}");
            tracing::error!(error = %msg, "internal error");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            let body = Envelope {
                code: status.as_u16(),
                data: &(),
                msg: &msg,
                timestamp: now(),
            };
            json_response(status, serde_json::to_vec(&body).unwrap_or_default())
        }
    }
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// An error reply.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub msg: String,
    /// Seconds for `Retry-After` on a 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match e.class() {
            ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
            ErrorClass::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorClass::Forbidden => StatusCode::FORBIDDEN,
            ErrorClass::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorClass::NotFound => StatusCode::NOT_FOUND,
            ErrorClass::Conflict => StatusCode::CONFLICT,
            ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        Self {
            status,
            msg: e.to_string(),
            retry_after: e.retry_after(),
        }
    }
}

impl From<crate::face::Unrouted> for ApiError {
    fn from(u: crate::face::Unrouted) -> Self {
        Self::new(u.status(), u.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = envelope(self.status, &self.msg, &());
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<Data<T>, ApiError>;
