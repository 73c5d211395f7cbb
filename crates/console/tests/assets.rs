//! The console page and noVNC files over real HTTP (axum on 127.0.0.1:0,
//! raw HTTP/1.1 requests so that paths reach the server unnormalised).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn serve() -> std::net::SocketAddr {
    let app: axum::Router = ironidc_console::router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One request written byte for byte (no client-side path cleaning).
async fn get(addr: std::net::SocketAddr, target: &str, extra: &str) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn novnc_on_disk() -> bool {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../web/console/node_modules/@novnc/novnc/core/rfb.js")
        .exists()
}

#[tokio::test]
async fn serves_the_page_with_a_strict_csp() {
    let addr = serve().await;
    let page = get(addr, "/console/vnc.html?token=abc", "").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self' ws: wss:"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains(r#"src="/console/vnc.js""#));

    let script = get(addr, "/console/vnc.js", "").await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let js = String::from_utf8(script.body).unwrap();
    assert!(js.contains("/console/novnc/core/rfb.js"));
    assert!(js.contains("/api/client/console/ws?token="));
    let style = get(addr, "/console/vnc.css", "").await;
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );

    // The build embeds noVNC exactly when it is installed, and the page
    // tells the operator when it is not.
    assert_eq!(ironidc_console::novnc_installed(), novnc_on_disk());
    assert_eq!(
        html.contains("noVNC is not installed on this server: run scripts/setup"),
        !novnc_on_disk()
    );
}

#[tokio::test]
async fn serves_novnc_modules_as_javascript() {
    let addr = serve().await;
    let rfb = get(addr, "/console/novnc/core/rfb.js", "").await;
    if !novnc_on_disk() {
        eprintln!("noVNC is not installed (cd web/console && npm ci): checking the 404 only");
        assert_eq!(rfb.status, 404);
        return;
    }
    assert_eq!(rfb.status, 200);
    assert_eq!(
        rfb.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(rfb.header("x-content-type-options"), Some("nosniff"));
    let body = String::from_utf8(rfb.body).unwrap();
    assert!(
        body.contains("export default class RFB"),
        "{}",
        &body[..200]
    );

    // What rfb.js imports from vendor/ is there too.
    let pako = get(addr, "/console/novnc/vendor/pako/lib/zlib/inflate.js", "").await;
    assert_eq!(pako.status, 200);

    // Revalidation answers 304 without a body.
    let etag = get(addr, "/console/novnc/core/rfb.js", "")
        .await
        .header("etag")
        .unwrap()
        .to_string();
    let again = get(
        addr,
        "/console/novnc/core/rfb.js",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // Only the ES modules are served, not the rest of the package.
    assert_eq!(
        get(addr, "/console/novnc/package.json", "").await.status,
        404
    );
}

#[tokio::test]
async fn no_path_escapes_the_embedded_files() {
    let addr = serve().await;
    for target in [
        "/console/novnc/../Cargo.toml",
        "/console/novnc/../../Cargo.toml",
        "/console/novnc/%2e%2e/Cargo.toml",
        "/console/novnc/core/../../../../Cargo.toml",
        "/console/novnc//etc/passwd",
        "/console/novnc/core/%2e%2e/%2e%2e/package.json",
        "/console/novnc/",
    ] {
        let r = get(addr, target, "").await;
        assert_eq!(r.status, 404, "{target}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("[package]"),
            "{target}"
        );
    }
}
