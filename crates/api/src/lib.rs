//! The HTTP faces of ironidc. Each face is an adapter: it parses and
//! authenticates, calls the service layer, and renders the result in its
//! own wire format. Errors become responses in one place per face.

mod access_log;
mod auth;
mod client_ip;
mod decode;
pub mod openidcs;
pub mod ptpb;
mod rate_limit;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ironidc_core::{CoreError, Services};

pub use auth::{ApiOptions, Guard};

/// Everything a face needs: the service layer and the abuse limits.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub guard: Arc<Guard>,
    pub public_url: Option<String>,
    pub console_relay: ironidc_console::RelayOptions,
}

/// The whole HTTP application: every face, the per-address rate limit and
/// the access log. Fails on a bad `trusted_proxies` entry.
pub fn app(services: Services, opts: &ApiOptions) -> Result<Router, String> {
    let state = AppState {
        services,
        guard: Guard::new(opts)?,
        public_url: opts.public_url.clone(),
        console_relay: ironidc_console::RelayOptions {
            check_every: opts.console_check_every,
        },
    };
    Ok(ptpb::router(state.clone())
        .merge(ironidc_console::router())
        .merge(openidcs::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state, limit_per_ip))
        .layer(axum::middleware::from_fn(access_log::log_request)))
}

/// Refuse a client address over its per-minute budget, in the format of
/// the face the path belongs to.
async fn limit_per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let ip = state.guard.trusted_proxies.client_ip(&parts);
    if let Err(e) = auth::limited(&state.guard.per_ip, &format!("ip:{ip}"), "requests") {
        return error_for_path(parts.uri.path(), e);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A core error rendered by the face that serves `path`.
fn error_for_path(path: &str, e: CoreError) -> Response {
    if ptpb::serves(path) {
        ptpb::PtpbError::from(e).into_response()
    } else {
        openidcs::ApiError::from(e).into_response()
    }
}
