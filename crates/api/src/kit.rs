//! The extractors every face uses. Each is generic over the face through
//! the router state (`FaceState<F>`), so a rejection is rendered in the
//! format of the face that routed the request, and names the field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ironidc_core::service::Actor;
use ironidc_core::CoreError;
use serde::de::DeserializeOwned;

use crate::decode::JsonMap;
use crate::face::{Face, FaceState};

/// The authenticated caller, from the credential readers of the face.
/// Obtaining it is the check: a handler that takes `Caller` is
/// authenticated, and the service layer checks its permissions.
pub struct Caller(pub Actor);

impl<F: Face> FromRequestParts<FaceState<F>> for Caller {
    type Rejection = F::Error;

    async fn from_request_parts(parts: &mut Parts, state: &FaceState<F>) -> Result<Self, F::Error> {
        crate::auth::authenticate_with(parts, &state.app, F::NAME, F::CREDENTIALS)
            .await
            .map(Caller)
            .map_err(F::Error::from)
    }
}

/// A JSON object body. An empty body is an empty object; malformed JSON,
/// a non-object or an unreadable body is refused.
pub struct JsonObject(pub JsonMap);

impl<F: Face> FromRequest<FaceState<F>> for JsonObject {
    type Rejection = F::Error;

    async fn from_request(req: Request, state: &FaceState<F>) -> Result<Self, F::Error> {
        Ok(Self(crate::decode::json_object(req, state).await?))
    }
}

/// A JSON object body decoded into `T`; an error names the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, F: Face> FromRequest<FaceState<F>> for Json<T> {
    type Rejection = F::Error;

    async fn from_request(req: Request, state: &FaceState<F>) -> Result<Self, F::Error> {
        let map = crate::decode::json_object(req, state).await?;
        Ok(Json(crate::decode::from_json(map.into())?))
    }
}

/// A form-encoded body decoded into `T`; an error names the field.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, F: Face> FromRequest<FaceState<F>> for Form<T> {
    type Rejection = F::Error;

    async fn from_request(req: Request, state: &FaceState<F>) -> Result<Self, F::Error> {
        let bytes = crate::decode::body_bytes(req, state).await?;
        Ok(Form(crate::decode::from_form(&bytes)?))
    }
}

/// Query parameters decoded into `T`; an error names the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, F: Face> FromRequestParts<FaceState<F>> for Query<T> {
    type Rejection = F::Error;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &FaceState<F>,
    ) -> Result<Self, F::Error> {
        let query = parts.uri.query().unwrap_or("");
        Ok(Query(crate::decode::from_form(query.as_bytes())?))
    }
}

/// Path parameters; a bad one (e.g. invalid percent-encoding) is a 400
/// naming `path`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, F: Face> FromRequestParts<FaceState<F>> for Path<T> {
    type Rejection = F::Error;

    async fn from_request_parts(parts: &mut Parts, state: &FaceState<F>) -> Result<Self, F::Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| CoreError::invalid("path", e.to_string()).into())
    }
}

/// Every field of a request, from the query string and a form-encoded or
/// JSON body alike, as text: what the billing dialects (RStack,
/// XenSystem) send, GET or POST. A malformed JSON body is refused.
pub struct Fields(pub std::collections::BTreeMap<String, String>);

impl<F: Face> FromRequest<FaceState<F>> for Fields {
    type Rejection = F::Error;

    async fn from_request(req: Request, state: &FaceState<F>) -> Result<Self, F::Error> {
        let query = req.uri().query().map(str::to_string);
        let bytes = crate::decode::body_bytes(req, state).await?;
        Ok(Fields(crate::decode::request_fields(
            query.as_deref(),
            &bytes,
        )?))
    }
}
