//! One log line per request: method, path, status, duration, user.
//! Query strings are left out (they may carry secrets in later faces).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Filled by the authentication extractor with the caller's name.
#[derive(Clone, Default)]
pub struct RequestUser(pub Arc<OnceLock<String>>);

pub async fn log_request(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let response = next.run(req).await;
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        duration_ms = format!("{:.2}", start.elapsed().as_secs_f64() * 1000.0),
        user = user.0.get().map(String::as_str).unwrap_or("-"),
        "request"
    );
    response
}
