//! Accept loops of the HTTP and HTTPS listeners; one task per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::handler::{self, ConnInfo, Scheme};
use super::Shared;
use crate::http_conn::{self, ConnectionGate, ConnectionPermit};
use crate::tls;

/// A client that has not finished its TLS handshake by then is dropped, so
/// half-open handshakes cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
#[derive(Clone)]
pub(super) enum Kind {
    Http,
    Https(TlsAcceptor),
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    shared: Arc<Shared>,
    gate: Arc<ConnectionGate>,
    mut stop: watch::Receiver<bool>,
) {
    let connections_stop = stop.clone();
    // `changed` also fires when the handle is gone (sender dropped).
    let stopped = async move {
        let _ = stop.changed().await;
    };
    http_conn::accept_until(&listener, &gate, stopped, |stream, peer, permit| {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            kind.clone(),
            shared.clone(),
            permit,
            connections_stop.clone(),
        ));
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    shared: Arc<Shared>,
    permit: ConnectionPermit,
    stop: watch::Receiver<bool>,
) {
    let limits = *permit.limits();
    match kind {
        Kind::Http => {
            let info = ConnInfo {
                peer,
                scheme: Scheme::Http,
                sni: None,
            };
            serve_http1(stream, info, shared, &limits, stop).await;
        }
        Kind::Https(acceptor) => {
            let handshake = HANDSHAKE_TIMEOUT.min(limits.header_timeout);
            let tls = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let sni = tls.get_ref().1.server_name().map(tls::normalize_domain);
            let info = ConnInfo {
                peer,
                scheme: Scheme::Https,
                sni,
            };
            serve_http1(tls, info, shared, &limits, stop).await;
        }
    }
}

async fn serve_http1<I>(
    io: I,
    info: ConnInfo,
    shared: Arc<Shared>,
    limits: &http_conn::ConnectionLimits,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let peer = info.peer;
    let service = service_fn(move |req| handler::handle(shared.clone(), info.clone(), req));
    if let Err(e) = http_conn::serve_http1(io, service, limits, stop).await {
        tracing::debug!(%peer, "proxy connection ended with an error: {e}");
    }
}
