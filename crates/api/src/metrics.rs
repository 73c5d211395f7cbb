//! `GET /metrics`: Prometheus figures of the controller. Requests are
//! counted and timed per face and route by a middleware; VMs by state,
//! tasks by status and host reachability are read fresh at each scrape;
//! the monitor records its pass duration itself (through the `metrics`
//! facade). Readable with the root token, or from listed addresses.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::credentials::CredentialReader;
use crate::face::FaceName;
use crate::AppState;

/// Seconds; from a fast read to a slow create.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process's recorder, installed on first use. A process that already
/// has another recorder (a test harness) gets a detached one: it renders,
/// but nothing the facade records reaches it.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        };
        builder()
            .install_recorder()
            .unwrap_or_else(|_| builder().build_recorder().handle())
    })
}

/// Start recording (so the first scrape already sees requests).
pub(crate) fn install() {
    handle();
}

/// Count and time each request under its face and route template (never
/// the raw path, which would make one series per VM).
pub(crate) async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let face = state
        .faces
        .owner(req.uri().path())
        .map_or("none", |f| f.name.as_str());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("ironidc_http_requests_total",
        "face" => face, "method" => method.clone(), "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("ironidc_http_request_duration_seconds",
        "face" => face, "method" => method, "route" => route)
    .record(started.elapsed().as_secs_f64());
    response
}

/// The figures, in the Prometheus text format.
pub(crate) async fn serve(state: AppState, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let from_listed = state
        .guard
        .trusted_proxies
        .client_addr(&parts)
        .is_some_and(|ip| state.guard.metrics_allow.contains(ip));
    if !from_listed {
        let readers = [CredentialReader::Authorization];
        match crate::auth::authenticate_with(&parts, &state, FaceName::Metrics, &readers).await {
            Ok(actor) if actor.is_root() => {}
            Ok(_) => {
                return (StatusCode::FORBIDDEN, "metrics need the root token\n").into_response()
            }
            Err(e) => return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response(),
        }
    }
    // Read fresh at each scrape and written out here (not kept as gauges
    // in the recorder), so a deleted host or a state no VM has any more
    // leaves no stale series.
    let mut text = handle().render();
    match state.services.figures().await {
        Ok(figures) => text.push_str(&render_figures(&figures)),
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the figures"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

fn render_figures(figures: &ironidc_core::service::Figures) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, label: &str, rows: &[(String, f64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (value_of_label, n) in rows {
            let escaped = value_of_label.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&format!("{name}{{{label}=\"{escaped}\"}} {n}\n"));
        }
    };
    let counts = |rows: &[(String, i64)]| -> Vec<(String, f64)> {
        rows.iter().map(|(k, n)| (k.clone(), *n as f64)).collect()
    };
    family(
        "ironidc_vms",
        "VMs by stored power state.",
        "state",
        &counts(&figures.vms_by_state),
    );
    family(
        "ironidc_tasks",
        "Tasks by status.",
        "status",
        &counts(&figures.tasks_by_status),
    );
    let hosts: Vec<(String, f64)> = figures
        .hosts_up
        .iter()
        .map(|(h, up)| (h.clone(), f64::from(u8::from(*up))))
        .collect();
    family(
        "ironidc_host_up",
        "1 when the host's engine answered just now.",
        "host",
        &hosts,
    );
    out
}
