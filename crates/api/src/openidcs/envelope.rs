//! The OpenIDCS wire format: `{"code","msg","data","timestamp"}` with the
//! HTTP status equal to `code`, and the one mapping of core errors to it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ironidc_core::service::now;
use ironidc_core::{CoreError, ErrorClass};
use serde::Serialize;

/// A successful reply.
pub struct Data<T>(pub T);

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        match serde_json::to_value(self.0) {
            Ok(data) => envelope(StatusCode::OK, "success", data),
            Err(e) => ApiError::internal(format!("response encoding: {e}")).into_response(),
        }
    }
}

fn envelope(status: StatusCode, msg: &str, data: serde_json::Value) -> Response {
    let body = serde_json::json!({
        "code": status.as_u16(),
        "msg": msg,
        "data": data,
        "timestamp": now(),
    });
    (status, Json(body)).into_response()
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
        let mut response = envelope(self.status, &self.msg, serde_json::Value::Null);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<Data<T>, ApiError>;
