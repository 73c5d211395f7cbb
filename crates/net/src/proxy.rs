//! The reverse proxy for domain bindings: plain HTTP and HTTPS listeners that
//! route by host name to a backend address (usually a VM's private address).
//!
//! - The route table is swapped whole and atomically ([`ReverseProxy::set_routes`]);
//!   requests in flight keep the table they started with.
//! - HTTPS picks the route's certificate by SNI; an unknown name is refused
//!   during the handshake.
//! - The HTTP listener also answers ACME HTTP-01 challenges from
//!   [`Http01Challenges`], for any host, so a certificate can be issued
//!   before a route exists.
//!
//! Submodules: `table` (routes, SNI), `listener` (accept loops),
//! `handler` (what to do with a request), `forward` (talking to backends).

mod challenges;
mod forward;
mod handler;
mod listener;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use self::challenges::Http01Challenges;
use self::forward::BackendClient;
use self::listener::Kind;
use self::table::{RouteTable, SniResolver};
use crate::tls::{self, CertPair, TlsError};

/// One domain binding.
#[derive(Clone, Debug)]
pub struct Route {
    /// Lowercase ASCII host name (normalized again when the table is built).
    pub domain: String,
    /// Where requests for `domain` go, over plain HTTP/1.1.
    pub backend: SocketAddr,
    /// Certificate for HTTPS; `None` serves the domain over HTTP only.
    pub tls: Option<CertPair>,
    /// Redirect plain HTTP to `https://domain/...` with 301 (ACME
    /// challenges excepted). Ignored while no certificate is loaded.
    pub https_only: bool,
}

/// Listen addresses; `None` disables that listener, port 0 picks a free port.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// Caps and timeouts of the listeners' connections.
    pub limits: crate::http_conn::ConnectionLimits,
}

/// State shared by the listeners, the SNI resolver and every connection.
pub(crate) struct Shared {
    table: Arc<ArcSwap<RouteTable>>,
    challenges: Http01Challenges,
    client: BackendClient,
}

/// The proxy. Cheap to clone; clones share routes, challenges and the
/// backend connection pool.
#[derive(Clone)]
pub struct ReverseProxy {
    shared: Arc<Shared>,
}

impl Default for ReverseProxy {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReverseProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseProxy").finish_non_exhaustive()
    }
}

impl ReverseProxy {
    /// A proxy with no routes.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                table: Arc::new(ArcSwap::from_pointee(RouteTable::default())),
                challenges: Http01Challenges::default(),
                client: forward::backend_client(),
            }),
        }
    }

    /// Replaces the whole route table at once. A route whose certificate
    /// cannot be used (bad PEM, wrong key, other domain, expired) is still
    /// served over HTTP; its domain and the reason are returned.
    pub fn set_routes(&self, routes: Vec<Route>) -> Vec<(String, TlsError)> {
        let (table, errors) = RouteTable::build(routes, tls::unix_now());
        self.shared.table.store(Arc::new(table));
        for (domain, error) in &errors {
            tracing::warn!(%domain, "certificate not loaded, serving HTTP only: {error}");
        }
        errors
    }

    /// The challenge map the HTTP listener answers from; hand it to
    /// [`crate::acme::issue`].
    pub fn challenges(&self) -> Http01Challenges {
        self.shared.challenges.clone()
    }

    /// Binds the listeners now (a busy port is an error here, and nothing is
    /// left bound then), and serves in spawned tasks until the returned
    /// handle is shut down or dropped.
    pub async fn serve(&self, opts: ProxyOptions) -> std::io::Result<ProxyHandle> {
        if opts.http.is_none() && opts.https.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the proxy needs an HTTP or an HTTPS listen address",
            ));
        }
        let http = match opts.http {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let https = match opts.https {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let acceptor = TlsAcceptor::from(Arc::new(self.server_config()?));

        let (stop, stop_rx) = watch::channel(false);
        // One gate for both listeners: a client's HTTP and HTTPS
        // connections count together.
        let gate = crate::http_conn::ConnectionGate::new(opts.limits);
        let mut handle = ProxyHandle {
            http: None,
            https: None,
            stop,
        };
        if let Some(listener) = http {
            handle.http = Some(listener.local_addr()?);
            tokio::spawn(listener::accept_loop(
                listener,
                Kind::Http,
                self.shared.clone(),
                gate.clone(),
                stop_rx.clone(),
            ));
        }
        if let Some(listener) = https {
            handle.https = Some(listener.local_addr()?);
            tokio::spawn(listener::accept_loop(
                listener,
                Kind::Https(acceptor),
                self.shared.clone(),
                gate,
                stop_rx,
            ));
        }
        Ok(handle)
    }

    fn server_config(&self) -> std::io::Result<ServerConfig> {
        let resolver = SniResolver {
            table: self.shared.table.clone(),
        };
        let mut config = ServerConfig::builder_with_provider(tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        // Backends and the forwarding path are HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Running listeners. Dropping the handle stops them too.
#[must_use = "dropping the handle stops the proxy"]
#[derive(Debug)]
pub struct ProxyHandle {
    /// Bound HTTP address (the real port when 0 was asked for).
    pub http: Option<SocketAddr>,
    /// Bound HTTPS address.
    pub https: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl ProxyHandle {
    /// Stops accepting; open connections finish their current request and
    /// close. Upgraded (WebSocket) tunnels are left to end on their own. The
    /// sockets are released by the listener tasks a moment after this returns.
    pub fn shutdown(self) {
        // Drop does the work.
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
