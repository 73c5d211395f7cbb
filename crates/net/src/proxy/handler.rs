//! What the proxy does with one request: ACME challenge answers, routing by
//! Host, redirects to HTTPS, then forwarding.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode};

use super::forward;
use super::Shared;
use crate::tls;

pub(super) type ProxyBody = BoxBody<Bytes, hyper::Error>;

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What the listener knows about the connection a request came on.
#[derive(Debug)]
pub(super) struct ConnInfo {
    pub(super) peer: SocketAddr,
    pub(super) scheme: Scheme,
    /// The SNI name the TLS handshake was resolved with (HTTPS only).
    pub(super) sni: Option<String>,
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = route(&shared, &conn, req).await;
    tracing::debug!(
        peer = %conn.peer,
        scheme = conn.scheme.as_str(),
        %method,
        path,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "proxied request"
    );
    Ok(response)
}

async fn route(shared: &Shared, conn: &ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
    if let Some(token) = challenge_token(&req) {
        // Answered for any Host: the CA connects by the domain being
        // validated, which may not have a route yet.
        return match shared.challenges.get(token) {
            Some(key_auth) => text(StatusCode::OK, key_auth),
            None => text(StatusCode::NOT_FOUND, "unknown challenge token"),
        };
    }
    let Some((host, host_header)) = request_host(&req) else {
        return text(StatusCode::BAD_REQUEST, "missing or invalid Host header");
    };
    if let Some(sni) = &conn.sni {
        if *sni != host {
            // RFC 9110 15.5.20: the connection was set up for another name;
            // serving it would bypass the certificate the client checked.
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                "Host does not match the TLS server name",
            );
        }
    }
    let entry = match shared.table.load().get(&host) {
        Some(entry) => entry.clone(),
        None => return text(StatusCode::NOT_FOUND, "no site is bound to this domain"),
    };
    // Only redirect when HTTPS can actually be served: a route whose
    // certificate failed to load would otherwise redirect into a refused
    // handshake.
    if conn.scheme == Scheme::Http && entry.https_only && entry.cert.is_some() {
        let path = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        return redirect(&format!("https://{}{}", entry.domain, path));
    }
    forward::forward(shared, conn, &entry, host_header, req).await
}

fn challenge_token(req: &Request<Incoming>) -> Option<&str> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let token = req.uri().path().strip_prefix(CHALLENGE_PREFIX)?;
    (!token.is_empty() && !token.contains('/')).then_some(token)
}

/// The host a request is for (lowercase, without port or trailing dot) and
/// the raw value to pass on as X-Forwarded-Host. An absolute-form target
/// wins over the Host header, as RFC 9112 3.2.2 says.
fn request_host(req: &Request<Incoming>) -> Option<(String, HeaderValue)> {
    if let Some(authority) = req.uri().authority() {
        let raw = HeaderValue::from_str(authority.as_str()).ok()?;
        return Some((tls::normalize_domain(authority.host()), raw));
    }
    let raw = req.headers().get(HOST)?;
    let authority: hyper::http::uri::Authority = raw.to_str().ok()?.parse().ok()?;
    let host = tls::normalize_domain(authority.host());
    (!host.is_empty()).then(|| (host, raw.clone()))
}

pub(super) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn redirect(location: &str) -> Response<ProxyBody> {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = text(StatusCode::MOVED_PERMANENTLY, "moved to HTTPS");
            response.headers_mut().insert(LOCATION, value);
            response
        }
        // Cannot happen for a path hyper accepted, but a request path is
        // untrusted input, so answer instead of panicking.
        Err(_) => text(StatusCode::BAD_REQUEST, "request path cannot be redirected"),
    }
}

pub(super) fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}
