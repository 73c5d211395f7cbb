//! Request extractors of the PTPB face; rejections are PTPB errors.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ironidc_core::service::Actor;
use serde::de::DeserializeOwned;

use super::envelope::PtpbError;
use crate::AppState;

/// The caller, from `Authorization: <access token>` (or `Bearer …`).
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = PtpbError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PtpbError> {
        crate::auth::authenticate(parts, state, "ptpb")
            .await
            .map(Caller)
            .map_err(PtpbError::from)
    }
}

/// A JSON body decoded into `T`; errors name the field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = PtpbError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PtpbError> {
        let map = crate::decode::json_object(req, state).await?;
        Ok(Body(crate::decode::from_json(map.into())?))
    }
}

/// Query parameters decoded into `T`; errors name the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = PtpbError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, PtpbError> {
        Ok(Query(crate::decode::from_query(
            parts.uri.query().unwrap_or(""),
        )?))
    }
}

/// PTPB paging: `page_size` (default 10, at most 100) and `page` (from 1).
pub fn page(
    page_size: Option<u32>,
    page: Option<u32>,
) -> Result<ironidc_core::accounts::Page, PtpbError> {
    let limit = match page_size {
        None => 10,
        Some(0) => {
            return Err(ironidc_core::CoreError::invalid("page_size", "must be at least 1").into())
        }
        Some(n) => n.min(100),
    };
    let page = match page {
        None => 1,
        Some(0) => {
            return Err(ironidc_core::CoreError::invalid("page", "must be at least 1").into())
        }
        Some(n) => n,
    };
    Ok(ironidc_core::accounts::Page {
        offset: (page - 1).saturating_mul(limit),
        limit,
    })
}

/// `{"id_list": [..]}`, the body of PTPB's deletes.
#[derive(Debug, serde::Deserialize)]
pub struct IdList {
    pub id_list: Vec<i64>,
}
