//! Forwarding a request to a route's backend over pooled HTTP/1.1, including
//! protocol upgrades (WebSocket and friends).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};
use hyper::http::uri::{PathAndQuery, Uri};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::handler::{full, text, ConnInfo, ProxyBody};
use super::table::Entry;
use super::Shared;

/// A backend that does not accept within this time is treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle pooled connections are closed after this; backends usually keep
/// theirs open longer, so we are the side that closes.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) type BackendClient = Client<HttpConnector, Incoming>;

pub(super) fn backend_client() -> BackendClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    // Backends are addressed as http://ip:port; refusing other schemes keeps
    // a crafted URI from ever reaching anything else.
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Hop-by-hop headers (RFC 9110 7.6.1) describe one connection and must not
/// be passed on; `Upgrade` is put back explicitly for upgrade requests.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(super) async fn forward(
    shared: &Shared,
    conn: &ConnInfo,
    entry: &Entry,
    host_header: HeaderValue,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let upgrade = requested_upgrade(req.headers());
    // Must be taken before the request is consumed: it is the client side
    // of the tunnel once the backend agrees to switch protocols.
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(UPGRADE);
    if let Some(protocol) = upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, protocol);
    }
    set_forwarded(&mut parts.headers, conn, host_header);

    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = match Uri::builder()
        .scheme("http")
        .authority(entry.backend.to_string())
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(e) => {
            tracing::warn!(backend = %entry.backend, "cannot build backend URI: {e}");
            return text(StatusCode::BAD_GATEWAY, "bad gateway");
        }
    };
    // The backend always gets HTTP/1.1 so its connection can be pooled,
    // whatever the client spoke.
    parts.version = Version::HTTP_11;

    let mut response = match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(domain = %entry.domain, backend = %entry.backend, "backend request failed: {e:#}");
            return text(
                StatusCode::BAD_GATEWAY,
                "the backend of this site cannot be reached",
            );
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // A 101 nobody asked for cannot be relayed: the client would
            // keep speaking HTTP into a tunnel.
            return text(
                StatusCode::BAD_GATEWAY,
                "backend switched protocols unasked",
            );
        };
        let backend_upgrade = hyper::upgrade::on(&mut response);
        let domain = entry.domain.clone();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, backend_upgrade) {
                Ok((client, backend)) => {
                    let mut client = TokioIo::new(client);
                    let mut backend = TokioIo::new(backend);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                        tracing::debug!(%domain, "upgraded connection ended: {e}");
                    }
                }
                Err(e) => tracing::debug!(%domain, "upgrade failed: {e}"),
            }
        });
        // The 101 keeps its Connection/Upgrade headers: they are the answer.
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, full(Bytes::new()));
    }

    strip_hop_by_hop(response.headers_mut());
    response.headers_mut().remove(UPGRADE);
    response.map(BodyExt::boxed)
}

/// The protocol a request asks to upgrade to, when it does so properly
/// (`Connection: upgrade` plus `Upgrade: ...`).
fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_says_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if connection_says_upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1).
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        // Host is end-to-end by definition; a client naming it in Connection
        // must not make us drop it.
        .filter(|name| *name != hyper::header::HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn set_forwarded(headers: &mut HeaderMap, conn: &ConnInfo, host_header: HeaderValue) {
    let peer = conn.peer.ip().to_string();
    // Earlier hops are kept (appended to): the backend decides how many of
    // them it trusts. Several header lines are folded into one list.
    let previous: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let chain = if previous.is_empty() {
        peer
    } else {
        format!("{}, {peer}", previous.join(", "))
    };
    match HeaderValue::from_str(&chain) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        // Only reachable with a non-visible-ASCII previous value; drop the
        // client's claim rather than the peer address.
        Err(_) => {
            if let Ok(value) = HeaderValue::from_str(&conn.peer.ip().to_string()) {
                headers.insert(X_FORWARDED_FOR, value);
            }
        }
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(conn.scheme.as_str()),
    );
    headers.insert(X_FORWARDED_HOST, host_header);
}
