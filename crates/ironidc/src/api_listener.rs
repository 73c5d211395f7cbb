//! The API's accept loop: each connection is admitted by the connection
//! gate (per-address and total caps) and served under its timeouts, with
//! the peer address handed to the router as axum's `ConnectInfo`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use ironidc_net::http_conn::{self, ConnectionGate, ConnectionLimits};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` until `shutdown` completes, then let open
/// connections finish their request (at most `DRAIN`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let gate = ConnectionGate::new(limits);
    let (stop, stop_rx) = watch::channel(false);
    http_conn::accept_until(&listener, &gate, shutdown, |stream, peer, permit| {
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                tower::Service::call(&mut app.clone(), req)
            });
            if let Err(e) = http_conn::serve_http1(stream, service, &limits, stop).await {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        });
    })
    .await;
    drop(listener);
    let _ = stop.send(true);
    drain(&gate).await;
}

async fn drain(gate: &Arc<ConnectionGate>) {
    let deadline = tokio::time::Instant::now() + DRAIN;
    while gate.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
