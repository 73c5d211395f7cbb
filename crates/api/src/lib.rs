//! The HTTP faces of ironidc. Each face is an adapter: it parses and
//! authenticates, calls the service layer, and renders the result in its
//! own wire format. Errors become responses in one place per face.

#[macro_use]
mod wire_macros;
mod access_log;
mod auth;
mod client_ip;
pub mod credentials;
mod decode;
pub mod face;
pub mod field_selection;
pub mod kit;
pub mod lenient;
mod metrics;
pub mod openidcs;
pub mod ptpb;
mod rate_limit;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ironidc_core::{CoreError, Services};

pub use auth::{ApiOptions, Guard};
pub use face::{Face, FaceEntry, FaceName, FaceState, FaceTable, FACES};

/// Everything a face needs: the service layer, the abuse limits and the
/// face table.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub guard: Arc<Guard>,
    pub public_url: Option<String>,
    pub console_relay: ironidc_console::RelayOptions,
    pub faces: FaceTable,
}

/// The whole HTTP application with the product's faces.
pub fn app(services: Services, opts: &ApiOptions) -> Result<Router, String> {
    app_with_faces(services, opts, FACES)
}

/// The whole HTTP application serving `faces`: their routes, each face's
/// fallbacks, the console page assets, the per-address rate limit and the
/// access log. Fails on a bad `trusted_proxies` entry or on two faces
/// claiming the same prefix.
pub fn app_with_faces(
    services: Services,
    opts: &ApiOptions,
    faces: &'static [FaceEntry],
) -> Result<Router, String> {
    let faces = FaceTable(faces);
    faces.check()?;
    let state = AppState {
        services,
        guard: Guard::new(opts)?,
        public_url: opts.public_url.clone(),
        console_relay: ironidc_console::RelayOptions {
            check_every: opts.console_check_every,
        },
        faces,
    };
    // Each face's document at `/openapi/<face>.json` and Swagger UI
    // (vendored in the binary) at `/docs`.
    let mut router = ironidc_console::router();
    let mut docs = utoipa_swagger_ui::SwaggerUi::new("/docs");
    for face in faces.0 {
        let (routes, document) = face.serve(state.clone());
        router = router.merge(routes);
        docs = docs.url(format!("/openapi/{}.json", face.name), document);
    }
    let scraped = state.clone();
    let router = router.merge(docs).route(
        "/metrics",
        axum::routing::get(move |req| metrics::serve(scraped.clone(), req)),
    );
    metrics::install();
    let unknown = state.clone();
    let wrong = state.clone();
    Ok(router
        .fallback(move |req| face::refuse_unrouted(unknown, req, face::Unrouted::NoSuchPath))
        .method_not_allowed_fallback(move |req| {
            face::refuse_unrouted(wrong, req, face::Unrouted::WrongMethod)
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_reply,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(axum::middleware::from_fn_with_state(state, limit_per_ip))
        .layer(axum::middleware::from_fn(access_log::log_request)))
}

/// Refuse a client address over its per-minute budget, in the format of
/// the face the path belongs to (plain text elsewhere).
async fn limit_per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let ip = state.guard.trusted_proxies.client_ip(&parts);
    if let Err(e) = auth::limited(&state.guard.per_ip, &format!("ip:{ip}"), "requests") {
        return match state.faces.owner(parts.uri.path()) {
            Some(face) => face.render(e),
            None => plain_refusal(e),
        };
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A handler that panicked (a bug): logged, and answered with a 500 that
/// every face's clients read (`code` and `msg`), instead of a connection
/// closed without a reply.
fn panic_reply(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "request handler panicked");
    let body = serde_json::json!({
        "code": 500,
        "msg": "internal error",
        "data": null,
        "timestamp": ironidc_core::service::now(),
    });
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

fn plain_refusal(e: CoreError) -> Response {
    let mut response = (StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response();
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    response
}
