//! The console page and the noVNC files it loads, all compiled into the
//! binary: the page from `web/console/page/`, noVNC's ES modules from the
//! npm package in `web/console/node_modules/` (absent until `npm install`:
//! the build still works, noVNC then answers 404 and the page says so).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

/// noVNC's own modules and the pako inflater they import; nothing else of
/// the package (docs, CommonJS builds) is served.
#[derive(RustEmbed)]
#[folder = "../../web/console/node_modules/@novnc/novnc/"]
#[include = "core/**/*.js"]
#[include = "vendor/**/*.js"]
#[allow_missing = true]
struct NoVnc;

const PAGE_HTML: &str = include_str!("../../../web/console/page/vnc.html");
const PAGE_JS: &str = include_str!("../../../web/console/page/vnc.js");
const PAGE_CSS: &str = include_str!("../../../web/console/page/vnc.css");

/// The status line of the page as written, and what replaces it when noVNC
/// is missing, so the operator learns why before any script runs.
const STATUS_LOADING: &str = r#"<span id="status" data-state="loading">Loading…</span>"#;
const STATUS_NOT_INSTALLED: &str = r#"<span id="status" data-state="error">noVNC is not installed on this server: run scripts/setup</span>"#;

/// No inline script or style, nothing from other origins; `data:` images
/// because noVNC decodes JPEG rectangles and draws its cursor through them.
/// `connect-src` names ws:/wss: since older browsers do not count a
/// same-host WebSocket as 'self'.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether noVNC was present at build time (so the console can work).
pub fn novnc_installed() -> bool {
    NoVnc::get("core/rfb.js").is_some()
}

/// `GET /console/vnc.html` (+ its script and style) and
/// `GET /console/novnc/{*path}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console/vnc.html", get(page))
        .route("/console/vnc.js", get(page_script))
        .route("/console/vnc.css", get(page_style))
        .route("/console/novnc/{*path}", get(novnc_file))
}

async fn page() -> Response {
    let html = if novnc_installed() {
        PAGE_HTML.to_string()
    } else {
        PAGE_HTML.replace(STATUS_LOADING, STATUS_NOT_INSTALLED)
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page is small and must follow the binary's version.
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // The URL carries the console token.
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response();
    nosniff(&mut response);
    response
}

async fn page_script() -> Response {
    static_text(content_type("vnc.js"), PAGE_JS)
}

async fn page_style() -> Response {
    static_text(content_type("vnc.css"), PAGE_CSS)
}

fn static_text(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    nosniff(&mut response);
    response
}

/// Only names compiled in can be answered: `path` is a key into the
/// embedded table, never joined to a directory, so `..` finds nothing.
async fn novnc_file(Path(path): Path<String>, request_headers: HeaderMap) -> Response {
    let Some(file) = NoVnc::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    // The names are not versioned, so browsers revalidate (no-cache) and an
    // unchanged file costs a 304 instead of its body.
    let matches = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(&path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    nosniff(&mut response);
    response
}

/// Browsers refuse ES modules without a JavaScript type, so the type is
/// set from the name rather than left to sniffing.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn nosniff(response: &mut Response) {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("core/rfb.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("vnc.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a/b.svg"), "image/svg+xml");
        assert_eq!(content_type("vnc.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn the_page_has_the_status_line_that_is_replaced() {
        // If someone edits the page, the "not installed" message must still
        // find the line it replaces.
        assert!(PAGE_HTML.contains(STATUS_LOADING));
        assert!(
            !PAGE_HTML.contains("<script>"),
            "inline scripts break the CSP"
        );
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
