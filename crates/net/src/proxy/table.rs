//! The route table the listeners read, and the SNI certificate resolver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Route;
use crate::tls::{self, TlsError};

/// One route as served: the certificate is already parsed and checked, so
/// the handshake path only does a map lookup.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) domain: String,
    pub(super) backend: SocketAddr,
    pub(super) https_only: bool,
    pub(super) cert: Option<Arc<CertifiedKey>>,
}

#[derive(Debug, Default)]
pub(super) struct RouteTable {
    by_domain: HashMap<String, Arc<Entry>>,
}

impl RouteTable {
    /// Builds a table; a route whose certificate does not load stays in the
    /// table without TLS and its error is returned. When a domain appears
    /// twice the last route wins, like a later line of a config file.
    pub(super) fn build(routes: Vec<Route>, now: i64) -> (Self, Vec<(String, TlsError)>) {
        let mut by_domain = HashMap::with_capacity(routes.len());
        let mut errors = Vec::new();
        for route in routes {
            let domain = tls::normalize_domain(&route.domain);
            let cert = match &route.tls {
                None => None,
                Some(pair) => match tls::load(pair, &domain, now) {
                    Ok((key, _)) => Some(key),
                    Err(e) => {
                        errors.push((domain.clone(), e));
                        None
                    }
                },
            };
            let entry = Entry {
                domain: domain.clone(),
                backend: route.backend,
                https_only: route.https_only,
                cert,
            };
            by_domain.insert(domain, Arc::new(entry));
        }
        (Self { by_domain }, errors)
    }

    pub(super) fn get(&self, domain: &str) -> Option<&Arc<Entry>> {
        self.by_domain.get(domain)
    }
}

/// Picks the certificate of the route named by SNI. No SNI or an unknown
/// name returns `None`, which makes rustls refuse the handshake: serving some
/// other site's certificate would only leak which domains we host.
pub(super) struct SniResolver {
    pub(super) table: Arc<ArcSwap<RouteTable>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = tls::normalize_domain(hello.server_name()?);
        self.table.load().get(&name)?.cert.clone()
    }
}
