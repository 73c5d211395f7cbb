//! Request extractors of the OpenIDCS face. Their rejections are envelope
//! errors that name the offending field, never a panic or a bare 422.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ironidc_core::service::Actor;
use serde::de::DeserializeOwned;

use super::envelope::ApiError;
use crate::AppState;

/// The caller: the root token, a login's access token or an API token in
/// `Authorization: Bearer …`. Obtaining it is the check: a handler that
/// takes `Caller` is authenticated, and the service layer checks its
/// permissions.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        crate::auth::authenticate(parts, state, "openidcs")
            .await
            .map(Caller)
            .map_err(ApiError::from)
    }
}

/// A JSON object body. Malformed JSON, a non-object or a wrong content
/// type is a 400.
pub struct JsonObject(pub crate::decode::JsonMap);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(crate::decode::json_object(req, state).await?))
    }
}

/// Decode a JSON value into `T`; an error names the field's path.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    Ok(crate::decode::from_json(value)?)
}

/// Query parameters decoded into `T`; an error names the parameter.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Params(crate::decode::from_query(
            parts.uri.query().unwrap_or(""),
        )?))
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
