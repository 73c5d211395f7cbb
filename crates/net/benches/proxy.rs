//! Cost of the reverse proxy: the same closed-loop load (32 keep-alive
//! HTTP/1.1 connections, one request in flight each, ~5 s) sent directly to
//! a backend, through the proxy over HTTP, and through the proxy over HTTPS.
//!
//! Load generator, proxy and backend share the machine's cores, so the
//! numbers compare the three paths with each other; they are not the
//! proxy's capacity on dedicated hardware.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use ironidc_net::proxy::{ProxyOptions, ReverseProxy, Route};
use ironidc_net::tls;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;
const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(5);
const DOMAIN: &str = "bench.test";
const BODY: [u8; 100] = [b'x'; 100];

#[derive(Clone)]
enum Target {
    Plain(SocketAddr),
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
}

struct Stats {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

async fn backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(&BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn connect(target: &Target) -> http1::SendRequest<Empty<Bytes>> {
    async fn handshake<S>(io: S) -> http1::SendRequest<Empty<Bytes>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await.unwrap();
        tokio::spawn(conn);
        sender
    }
    match target {
        Target::Plain(addr) => {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            handshake(tcp).await
        }
        Target::Tls(addr, config) => {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let name = ServerName::try_from(DOMAIN).unwrap();
            handshake(connector.connect(name, tcp).await.unwrap()).await
        }
    }
}

/// One connection's closed loop: returns latencies of requests that
/// completed after `measure_from` and before `until`, and an error count.
async fn worker(target: Target, measure_from: Instant, until: Instant) -> (Vec<Duration>, usize) {
    let mut sender = connect(&target).await;
    let mut latencies = Vec::with_capacity(100_000);
    let mut errors = 0;
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let request = Request::get("/bench")
            .header("host", DOMAIN)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let ok = match sender.send_request(request).await {
            Ok(response) => {
                let ok = response.status() == 200;
                let body = response.into_body().collect().await.unwrap().to_bytes();
                ok && body.len() == BODY.len()
            }
            Err(_) => false,
        };
        if !ok {
            errors += 1;
            sender = connect(&target).await;
            continue;
        }
        if start >= measure_from {
            latencies.push(start.elapsed());
        }
    }
    (latencies, errors)
}

async fn run(target: Target) -> Stats {
    let measure_from = Instant::now() + WARMUP;
    let until = measure_from + MEASURE;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(worker(target.clone(), measure_from, until)))
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, e) = worker.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Stats {
        requests: all.len(),
        errors,
        elapsed: MEASURE,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = backend().await;
        let pair = tls::self_signed(DOMAIN).unwrap();
        let proxy = ReverseProxy::new();
        let errors = proxy.set_routes(vec![Route {
            domain: DOMAIN.into(),
            backend,
            tls: Some(pair.clone()),
            https_only: false,
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        let handle = proxy
            .serve(ProxyOptions {
                http: Some("127.0.0.1:0".parse().unwrap()),
                https: Some("127.0.0.1:0".parse().unwrap()),
                limits: Default::default(),
            })
            .await
            .unwrap();

        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pair.cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut client_tls = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client_tls = Arc::new(client_tls);

        println!(
            "proxy bench: {CONNECTIONS} keep-alive connections, 1 request in flight each, \
             {} s measured after {} ms warm-up, 100-byte body, {} CPU(s)",
            MEASURE.as_secs(),
            WARMUP.as_millis(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let cases = [
            ("direct to backend", Target::Plain(backend)),
            ("proxy, HTTP", Target::Plain(handle.http.unwrap())),
            (
                "proxy, HTTPS",
                Target::Tls(handle.https.unwrap(), client_tls),
            ),
        ];
        println!(
            "{:<20} {:>10} {:>9} {:>9} {:>9} {:>12} {:>12}",
            "path", "req/s", "p50 ms", "p99 ms", "errors", "+p50 ms", "+p99 ms"
        );
        let mut direct: Option<(Duration, Duration)> = None;
        for (name, target) in cases {
            let stats = run(target).await;
            let (add50, add99) = match direct {
                None => {
                    direct = Some((stats.p50, stats.p99));
                    ("-".to_string(), "-".to_string())
                }
                Some((p50, p99)) => (
                    format!("{:+.3}", ms(stats.p50) - ms(p50)),
                    format!("{:+.3}", ms(stats.p99) - ms(p99)),
                ),
            };
            println!(
                "{:<20} {:>10.0} {:>9.3} {:>9.3} {:>9} {:>12} {:>12}",
                name,
                stats.rps(),
                ms(stats.p50),
                ms(stats.p99),
                stats.errors,
                add50,
                add99
            );
        }
        handle.shutdown();
    });
}
