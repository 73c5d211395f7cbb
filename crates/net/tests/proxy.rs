//! The reverse proxy against a real backend on loopback: routing, TLS by
//! SNI, redirects, upgrades, route swaps, and certificate inspection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ironidc_net::proxy::{ProxyHandle, ProxyOptions, ReverseProxy, Route};
use ironidc_net::tls::{self, CertPair, TlsError};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------- backend

/// A backend that answers every request with JSON describing what it got,
/// and accepts any `Upgrade` with 101 followed by a raw byte echo.
async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| echo(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn echo(name: &str, mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    if req.headers().contains_key("upgrade") {
        let protocol = header("upgrade");
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                io.write_all(&buf[..n]).await.unwrap();
            }
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", protocol)
            .body(Full::new(Bytes::new()))
            .unwrap();
        return Ok(response);
    }
    let info = serde_json::json!({
        "backend": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "host": header("host"),
        "xff": header("x-forwarded-for"),
        "proto": header("x-forwarded-proto"),
        "fwd_host": header("x-forwarded-host"),
        "secret": header("x-secret"),
        "keep_alive": header("keep-alive"),
    });
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut info = info;
    info["body"] = Value::String(String::from_utf8_lossy(&body).into_owned());
    Ok(Response::new(Full::new(Bytes::from(info.to_string()))))
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ------------------------------------------------------------------ proxy

async fn start(routes: Vec<Route>) -> (ReverseProxy, ProxyHandle) {
    let proxy = ReverseProxy::new();
    let errors = proxy.set_routes(routes);
    assert!(errors.is_empty(), "{errors:?}");
    let handle = proxy
        .serve(ProxyOptions {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: Some("127.0.0.1:0".parse().unwrap()),
            limits: Default::default(),
        })
        .await
        .unwrap();
    (proxy, handle)
}

fn route(domain: &str, backend: SocketAddr, tls: Option<CertPair>) -> Route {
    Route {
        domain: domain.into(),
        backend,
        tls,
        https_only: false,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn client_config(trusted_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(trusted_pem) {
        roots.add(cert).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A reqwest client that sends every listed domain to `addr`, optionally
/// trusting `trusted_pem`, and never follows redirects.
fn client(domains: &[&str], addr: SocketAddr, trusted_pem: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    for domain in domains {
        builder = builder.resolve(domain, addr);
    }
    // Always preconfigured: reqwest without a provider feature panics
    // building its TLS config even for plain-HTTP use.
    builder = builder.use_preconfigured_tls(client_config(trusted_pem.unwrap_or("")));
    builder.build().unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// Raw TLS connection with the given SNI, trusting `trusted_pem`.
async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    trusted_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = client_config(trusted_pem);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    connector.connect(name, tcp).await
}

/// Writes a raw request and reads until the end of the response head.
async fn raw_exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A test CA and a leaf for `domain` signed by it; returns (leaf pair with
/// chain, CA certificate PEM).
fn ca_and_leaf(domain: &str) -> (CertPair, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ironidc test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let pair = CertPair {
        cert_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: leaf_key.serialize_pem(),
    };
    (pair, ca.pem())
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn routes_by_host_over_http() {
    let a = backend("a").await;
    let b = backend("b").await;
    let (_proxy, handle) = start(vec![route("a.test", a, None), route("b.test", b, None)]).await;
    let http = handle.http.unwrap();
    let client = client(&["a.test", "b.test", "B.Test", "nobody.test"], http, None);
    let port = http.port();

    let got = get_json(&client, &format!("http://a.test:{port}/x?y=1")).await;
    assert_eq!(got["backend"], "a");
    assert_eq!(got["path"], "/x?y=1");
    assert_eq!(got["host"], format!("a.test:{port}"), "Host is preserved");
    assert_eq!(got["fwd_host"], format!("a.test:{port}"));
    assert_eq!(got["proto"], "http");
    assert_eq!(got["xff"], "127.0.0.1");

    // Host is matched case-insensitively, without its port.
    let got = get_json(&client, &format!("http://B.Test:{port}/")).await;
    assert_eq!(got["backend"], "b");

    // Request body is passed on; X-Forwarded-For is appended to; headers
    // named in Connection are dropped as hop-by-hop.
    let response = client
        .post(format!("http://a.test:{port}/upload"))
        .header("x-forwarded-for", "10.0.0.1")
        .header("connection", "x-secret")
        .header("x-secret", "do not pass")
        .header("keep-alive", "timeout=5")
        .body("payload")
        .send()
        .await
        .unwrap();
    let got: Value = response.json().await.unwrap();
    assert_eq!(got["method"], "POST");
    assert_eq!(got["body"], "payload");
    assert_eq!(got["xff"], "10.0.0.1, 127.0.0.1");
    assert_eq!(got["secret"], "");
    assert_eq!(got["keep_alive"], "");

    let response = client
        .get(format!("http://nobody.test:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        "no site is bound to this domain"
    );
}

#[tokio::test]
async fn backend_down_is_502() {
    let (_proxy, handle) = start(vec![route("down.test", dead_addr().await, None)]).await;
    let http = handle.http.unwrap();
    let client = client(&["down.test"], http, None);
    let response = client
        .get(format!("http://down.test:{}/", http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test]
async fn https_with_self_signed_route() {
    let a = backend("a").await;
    let pair = tls::self_signed("secure.test").unwrap();
    let (_proxy, handle) = start(vec![route("secure.test", a, Some(pair.clone()))]).await;
    let https = handle.https.unwrap();
    let client = client(&["secure.test"], https, Some(&pair.cert_pem));
    let got = get_json(
        &client,
        &format!("https://secure.test:{}/tls", https.port()),
    )
    .await;
    assert_eq!(got["backend"], "a");
    assert_eq!(got["proto"], "https");
    assert_eq!(got["path"], "/tls");

    // The same route is still reachable over plain HTTP (https_only is off).
    let http = handle.http.unwrap();
    let plain = client_plain("secure.test", http);
    let got = get_json(&plain, &format!("http://secure.test:{}/", http.port())).await;
    assert_eq!(got["proto"], "http");
}

fn client_plain(domain: &str, addr: SocketAddr) -> reqwest::Client {
    client(&[domain], addr, None)
}

#[tokio::test]
async fn unknown_or_missing_sni_is_refused() {
    let a = backend("a").await;
    let pair = tls::self_signed("secure.test").unwrap();
    let (_proxy, handle) = start(vec![route("secure.test", a, Some(pair.clone()))]).await;
    let https = handle.https.unwrap();

    assert!(tls_connect(https, "secure.test", &pair.cert_pem)
        .await
        .is_ok());
    // rustls refuses with an alert (access_denied in rustls 0.23).
    let err = tls_connect(https, "other.test", &pair.cert_pem)
        .await
        .expect_err("unknown SNI must fail the handshake");
    assert!(err.to_string().contains("alert"), "{err}");
    // rustls sends no SNI for an IP address.
    assert!(tls_connect(https, "127.0.0.1", &pair.cert_pem)
        .await
        .is_err());

    // A route without a certificate is not served over HTTPS either.
    let plain_only = backend("p").await;
    _proxy.set_routes(vec![
        route("secure.test", a, Some(pair.clone())),
        route("plain.test", plain_only, None),
    ]);
    assert!(tls_connect(https, "plain.test", &pair.cert_pem)
        .await
        .is_err());
}

#[tokio::test]
async fn host_must_match_sni() {
    let a = backend("a").await;
    let one = tls::self_signed("one.test").unwrap();
    let two = tls::self_signed("two.test").unwrap();
    let (_proxy, handle) = start(vec![
        route("one.test", a, Some(one.clone())),
        route("two.test", a, Some(two)),
    ])
    .await;
    let mut stream = tls_connect(handle.https.unwrap(), "one.test", &one.cert_pem)
        .await
        .unwrap();
    let head = raw_exchange(
        &mut stream,
        "GET / HTTP/1.1\r\nHost: two.test\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 421"), "{head}");
}

#[tokio::test]
async fn certificate_from_a_test_ca() {
    let a = backend("a").await;
    let (pair, ca_pem) = ca_and_leaf("custom.test");
    let info = tls::inspect(&pair, "custom.test").unwrap();
    assert_eq!(info.names, vec!["custom.test".to_string()]);
    let (_proxy, handle) = start(vec![route("custom.test", a, Some(pair))]).await;
    let https = handle.https.unwrap();
    let client = client(&["custom.test"], https, Some(&ca_pem));
    let got = get_json(&client, &format!("https://custom.test:{}/", https.port())).await;
    assert_eq!(got["backend"], "a");
}

#[tokio::test]
async fn https_only_redirects_but_not_challenges() {
    let a = backend("a").await;
    let pair = tls::self_signed("only.test").unwrap();
    let mut r = route("only.test", a, Some(pair.clone()));
    r.https_only = true;
    let (proxy, handle) = start(vec![r]).await;
    let http = handle.http.unwrap();
    let client = client(&["only.test", "anything.test"], http, None);
    let port = http.port();

    let response = client
        .get(format!("http://only.test:{port}/path?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "https://only.test/path?q=1");

    // ACME HTTP-01 answers come before routing, for any Host.
    let challenges = proxy.challenges();
    challenges.insert("tok-123", "tok-123.thumbprint");
    for host in ["only.test", "anything.test"] {
        let response = client
            .get(format!(
                "http://{host}:{port}/.well-known/acme-challenge/tok-123"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(response.text().await.unwrap(), "tok-123.thumbprint");
    }
    let response = client
        .get(format!(
            "http://only.test:{port}/.well-known/acme-challenge/other"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    challenges.remove("tok-123");
    let response = client
        .get(format!(
            "http://only.test:{port}/.well-known/acme-challenge/tok-123"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The HTTPS side serves the site.
    let https = handle.https.unwrap();
    let secure = self::client(&["only.test"], https, Some(&pair.cert_pem));
    let got = get_json(&secure, &format!("https://only.test:{}/", https.port())).await;
    assert_eq!(got["proto"], "https");
}

#[tokio::test]
async fn upgrade_is_tunnelled_over_http_and_https() {
    let a = backend("a").await;
    let pair = tls::self_signed("ws.test").unwrap();
    let (_proxy, handle) = start(vec![route("ws.test", a, Some(pair.clone()))]).await;
    let request = "GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";

    let mut plain = TcpStream::connect(handle.http.unwrap()).await.unwrap();
    let head = raw_exchange(&mut plain, request).await;
    assert_tunnel(&mut plain, &head).await;

    let mut secure = tls_connect(handle.https.unwrap(), "ws.test", &pair.cert_pem)
        .await
        .unwrap();
    let head = raw_exchange(&mut secure, request).await;
    assert_tunnel(&mut secure, &head).await;
}

async fn assert_tunnel<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, head: &str) {
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    for message in [&b"hello"[..], &b"\x00\x01binary\xff"[..], &[7u8; 3000][..]] {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, message);
    }
}

#[tokio::test]
async fn route_swap_takes_effect_without_restart() {
    let a = backend("a").await;
    let b = backend("b").await;
    let (proxy, handle) = start(vec![route("swap.test", a, None)]).await;
    let http = handle.http.unwrap();
    let client = client(&["swap.test", "new.test"], http, None);
    let port = http.port();
    let url = format!("http://swap.test:{port}/");

    assert_eq!(get_json(&client, &url).await["backend"], "a");
    // Same keep-alive client connection, new table.
    let errors = proxy.set_routes(vec![
        route("swap.test", b, None),
        route("new.test", a, None),
    ]);
    assert!(errors.is_empty());
    assert_eq!(get_json(&client, &url).await["backend"], "b");
    assert_eq!(
        get_json(&client, &format!("http://new.test:{port}/")).await["backend"],
        "a"
    );
    proxy.set_routes(vec![]);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 404);

    // Certificates are swapped too: a new route becomes reachable by SNI.
    let pair = tls::self_signed("late.test").unwrap();
    proxy.set_routes(vec![route("late.test", b, Some(pair.clone()))]);
    let https = handle.https.unwrap();
    let secure = self::client(&["late.test"], https, Some(&pair.cert_pem));
    let got = get_json(&secure, &format!("https://late.test:{}/", https.port())).await;
    assert_eq!(got["backend"], "b");
}

#[tokio::test]
async fn bad_certificate_keeps_route_http_only() {
    let a = backend("a").await;
    let other = tls::self_signed("other.test").unwrap();
    let proxy = ReverseProxy::new();
    let mut r = route("bad.test", a, Some(other.clone()));
    r.https_only = true;
    let errors = proxy.set_routes(vec![r]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "bad.test");
    assert!(
        matches!(errors[0].1, TlsError::DomainNotCovered(_)),
        "{:?}",
        errors[0].1
    );

    let handle = proxy
        .serve(ProxyOptions {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: Some("127.0.0.1:0".parse().unwrap()),
            limits: Default::default(),
        })
        .await
        .unwrap();
    let http = handle.http.unwrap();
    // Served over HTTP, and not redirected into a refused handshake.
    let client = client(&["bad.test"], http, None);
    let got = get_json(&client, &format!("http://bad.test:{}/", http.port())).await;
    assert_eq!(got["backend"], "a");
    assert!(
        tls_connect(handle.https.unwrap(), "bad.test", &other.cert_pem)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn busy_port_fails_at_serve_and_shutdown_stops_accepting() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = ReverseProxy::new();
    let err = proxy
        .serve(ProxyOptions {
            http: Some(taken.local_addr().unwrap()),
            https: None,
            limits: Default::default(),
        })
        .await
        .expect_err("port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(proxy.serve(ProxyOptions::default()).await.is_err());

    let handle = proxy
        .serve(ProxyOptions {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: None,
            limits: Default::default(),
        })
        .await
        .unwrap();
    let addr = handle.http.unwrap();
    assert!(handle.https.is_none());
    assert!(TcpStream::connect(addr).await.is_ok());
    handle.shutdown();
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "listener still accepting after shutdown");
}

#[tokio::test]
async fn garbage_requests_do_not_stop_the_listener() {
    let a = backend("a").await;
    let (_proxy, handle) = start(vec![route("ok.test", a, None)]).await;
    let http = handle.http.unwrap();
    for junk in [
        "\x16\x03\x01garbage\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "NOT HTTP AT ALL",
    ] {
        let mut stream = TcpStream::connect(http).await.unwrap();
        stream.write_all(junk.as_bytes()).await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
    }
    // A plain-HTTP client on the HTTPS port fails its own connection only.
    let mut stream = TcpStream::connect(handle.https.unwrap()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: ok.test\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;

    let client = client(&["ok.test"], http, None);
    let got = get_json(&client, &format!("http://ok.test:{}/", http.port())).await;
    assert_eq!(got["backend"], "a");
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_rejects_mismatched_key() {
    let one = tls::self_signed("a.test").unwrap();
    let two = tls::self_signed("a.test").unwrap();
    let mixed = CertPair {
        cert_pem: one.cert_pem,
        key_pem: two.key_pem,
    };
    assert!(matches!(
        tls::inspect(&mixed, "a.test"),
        Err(TlsError::KeyMismatch)
    ));
}

#[test]
fn inspect_rejects_other_domain() {
    let pair = tls::self_signed("a.test").unwrap();
    match tls::inspect(&pair, "b.test") {
        Err(TlsError::DomainNotCovered(domain)) => assert_eq!(domain, "b.test"),
        other => panic!("{other:?}"),
    }
    assert!(tls::inspect(&pair, "A.TEST").is_ok());
}

#[test]
fn inspect_wildcards() {
    let (pair, _) = ca_and_leaf("*.example.test");
    let info = tls::inspect(&pair, "a.example.test").unwrap();
    assert_eq!(info.names, vec!["*.example.test".to_string()]);
    assert!(matches!(
        tls::inspect(&pair, "example.test"),
        Err(TlsError::DomainNotCovered(_))
    ));
    assert!(matches!(
        tls::inspect(&pair, "a.b.example.test"),
        Err(TlsError::DomainNotCovered(_))
    ));
}

#[test]
fn inspect_rejects_garbage_and_expired() {
    let good = tls::self_signed("a.test").unwrap();
    let garbage = CertPair {
        cert_pem: "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
            .into(),
        key_pem: good.key_pem.clone(),
    };
    assert!(matches!(
        tls::inspect(&garbage, "a.test"),
        Err(TlsError::BadCertificate(_))
    ));
    let empty = CertPair {
        cert_pem: "hello".into(),
        key_pem: good.key_pem.clone(),
    };
    assert!(matches!(
        tls::inspect(&empty, "a.test"),
        Err(TlsError::BadCertificate(_))
    ));
    let no_key = CertPair {
        cert_pem: good.cert_pem.clone(),
        key_pem: "nothing".into(),
    };
    assert!(matches!(
        tls::inspect(&no_key, "a.test"),
        Err(TlsError::BadKey(_))
    ));

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old.test".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let expired = CertPair {
        cert_pem: params.self_signed(&key).unwrap().pem(),
        key_pem: key.serialize_pem(),
    };
    assert!(matches!(
        tls::inspect(&expired, "old.test"),
        Err(TlsError::Expired)
    ));
}

#[test]
fn renewal_window() {
    let now = 1_700_000_000;
    assert!(tls::needs_renewal(now + 29 * 86_400, now));
    assert!(!tls::needs_renewal(now + 31 * 86_400, now));
}

/// Reads until the peer closes; `true` when it did within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_and_excess_connections_are_dropped() {
    let a = backend("a").await;
    let proxy = ReverseProxy::new();
    proxy.set_routes(vec![route("ok.test", a, None)]);
    let handle = proxy
        .serve(ProxyOptions {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: None,
            limits: ironidc_net::http_conn::ConnectionLimits {
                per_address: 4,
                total: 100,
                header_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(3),
            },
        })
        .await
        .unwrap();
    let addr = handle.http.unwrap();
    // Four slowloris clients: half a request each, then silence.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fifth from the same address is closed at once.
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut fifth, Duration::from_millis(500)).await);
    // The slow ones are dropped after the header timeout, not before.
    assert!(!closed_within(&mut slow[0], Duration::from_millis(300)).await);
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "slowloris kept"
        );
    }
    // Their places are free again: a real client is served, and its idle
    // keep-alive connection is closed after the idle timeout.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET / HTTP/1.1\r\nHost: ok.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = ok.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        !closed_within(&mut ok, Duration::from_millis(1500)).await,
        "idle closed at the header timeout"
    );
    assert!(
        closed_within(&mut ok, Duration::from_secs(4)).await,
        "idle kept"
    );
}
