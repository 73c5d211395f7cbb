//! The HTTP faces of ironidc. Each face is an adapter: it parses and
//! authenticates, calls the service layer, and renders the result in its
//! own wire format. Errors become responses in one place per face.

mod access_log;
pub mod openidcs;

use std::net::SocketAddr;

use axum::Router;
use ironidc_core::Services;

/// Everything a face needs: the service layer.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
}

/// The whole HTTP application: every face plus the access log.
pub fn app(services: Services) -> Router {
    let state = AppState { services };
    openidcs::router(state).layer(axum::middleware::from_fn(access_log::log_request))
}

/// The client address of a request, as the connection reported it.
/// `X-Forwarded-For` is not trusted: no trusted proxy is configured yet.
pub(crate) fn client_ip(parts: &axum::http::request::Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}
