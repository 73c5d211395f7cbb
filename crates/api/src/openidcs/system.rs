//! `/api/system/*` and `/api/token/*`.

use axum::extract::State;
use serde::Deserialize;

use super::envelope::{ApiResult, Data};
use crate::decode::from_json;
use crate::kit::{Caller, JsonObject, Query};
use crate::AppState;

pub async fn reset_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.reset_token(&actor).await?))
}

#[derive(Deserialize)]
struct SetToken {
    token: String,
}

pub async fn set_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<impl serde::Serialize> {
    let req: SetToken = from_json(body.into())?;
    Ok(Data(s.services.set_token(&actor, &req.token).await?))
}

pub async fn token_info(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.token_info(&actor).await?))
}

pub async fn export_config(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.export_config(&actor).await?))
}

pub async fn import_config(
    State(s): State<AppState>,
    Caller(actor): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<impl serde::Serialize> {
    let cfg = from_json(body.into())?;
    Ok(Data(s.services.import_config(&actor, cfg).await?))
}

pub async fn stats(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.stats(&actor).await?))
}

pub async fn engines(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<impl serde::Serialize> {
    let types: serde_json::Map<String, serde_json::Value> = s
        .services
        .engine_types(&actor)
        .await?
        .into_iter()
        .map(|t| {
            (
                t.info.key.to_string(),
                serde_json::to_value(&t).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Data(serde_json::json!({ "engine_types": types })))
}

#[derive(Deserialize)]
pub struct ListQuery {
    hs_name: Option<String>,
    limit: Option<u32>,
}

pub async fn logs(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(
        s.services
            .logs(&actor, q.hs_name.as_deref(), q.limit)
            .await?,
    ))
}

pub async fn tasks(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(
        s.services
            .tasks(&actor, q.hs_name.as_deref(), q.limit)
            .await?,
    ))
}

/// `GET /api/system/tasker/{id}` (ours): one task, e.g. a backup's progress.
pub async fn task(
    State(s): State<AppState>,
    Caller(actor): Caller,
    crate::kit::Path(super::params::TaskPath { id }): crate::kit::Path<super::params::TaskPath>,
) -> ApiResult<impl serde::Serialize> {
    Ok(Data(s.services.task(&actor, id).await?))
}

/// `GET /api/system/health` (ours): unauthenticated liveness, for load
/// balancers and as the baseline of the authentication benchmark.
pub async fn health() -> ApiResult<serde_json::Value> {
    Ok(Data(serde_json::json!({ "status": "ok" })))
}

/// The OpenAPI description of this face, compiled in so the document a
/// client fetches always matches the binary that serves it.
const OPENAPI_YAML: &str = include_str!("../../openapi/openidcs.yaml");

/// `GET /api/system/openapi.yaml` (ours): the description, unauthenticated
/// like `health` (it says nothing that is not public), and raw YAML rather
/// than the envelope so tools can load it directly.
pub async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI_YAML,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::response::IntoResponse;

    /// The handler serves the document on disk byte for byte, as YAML.
    #[tokio::test]
    async fn openapi_serves_the_document_as_yaml() {
        let response = super::openapi().await.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/yaml"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let on_disk = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/openapi/openidcs.yaml"
        ))
        .unwrap();
        assert_eq!(body.as_ref(), on_disk.as_slice());
        assert!(body.starts_with(b"openapi: 3.1."));
    }
}
