//! Request extractors of the OpenIDCS face. Their rejections are envelope
//! errors that name the offending field, never a panic or a bare 422.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use ironidc_core::service::Actor;
use serde::de::DeserializeOwned;

use super::envelope::ApiError;
use crate::access_log::RequestUser;
use crate::AppState;

/// The operator, authenticated by `Authorization: Bearer <admin token>`.
/// Obtaining it is the check: a handler that takes `Admin` is protected.
pub struct Admin(pub Actor);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(unauthorized)?;
        if !state
            .services
            .check_token(token)
            .await
            .map_err(ApiError::from)?
        {
            return Err(unauthorized());
        }
        if let Some(user) = parts.extensions.get::<RequestUser>() {
            let _ = user.0.set("admin".into());
        }
        Ok(Admin(Actor::new(
            "admin",
            crate::client_ip(parts),
            "openidcs",
        )))
    }
}

/// A JSON object body. Malformed JSON, a non-object or a wrong content
/// type is a 400.
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(serde_json::Map::new()));
        }
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_request("body: must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!("body: malformed JSON: {e}"))),
        }
    }
}

/// Decode a JSON value into `T`; an error names the field's path.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("{path}: {}", e.into_inner()))
    })
}

/// Query parameters decoded into `T`; an error names the parameter.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(format!("{path}: {}", e.into_inner()))
            })
    }
}

/// Path parameters; a bad one (e.g. invalid percent-encoding) is a 400.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::bad_request(format!("path: {e}")))
    }
}
