//! The face toolkit, proven by a tiny face built from it: its own prefix,
//! its own error format (`-1|message`, as the billing dialects answer),
//! and its own credential reader (`?key=`). The product's faces sit beside
//! it, and every unrouted or rate-limited request is answered in the
//! format of the face its path belongs to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ironidc_api::credentials::{md5_hex, CredentialReader, Md5Signature};
use ironidc_api::face::Unrouted;
use ironidc_api::kit::{Caller, Fields, Query};
use ironidc_api::{ApiOptions, Face, FaceEntry, FaceName, FaceState, FACES};
use ironidc_core::{CoreError, EngineRegistry, ServiceOptions};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const TOKEN: &str = "toolkit-root-token-0123456789";

// ------------------------------------------------- the tiny face (the example)

struct Tiny;

/// `-1|message` with the status the error class asks for.
struct TinyError(StatusCode, String);

impl From<CoreError> for TinyError {
    fn from(e: CoreError) -> Self {
        let status = match e.class() {
            ironidc_core::ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
            ironidc_core::ErrorClass::Unauthorized => StatusCode::UNAUTHORIZED,
            ironidc_core::ErrorClass::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ironidc_core::ErrorClass::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        TinyError(status, e.to_string())
    }
}

impl From<Unrouted> for TinyError {
    fn from(u: Unrouted) -> Self {
        TinyError(u.status(), u.message().into())
    }
}

impl IntoResponse for TinyError {
    fn into_response(self) -> Response {
        (self.0, format!("-1|{}", self.1)).into_response()
    }
}

impl Face for Tiny {
    const NAME: FaceName = FaceName::Custom("tiny");
    const PREFIXES: &'static [&'static str] = &["/api/tiny/"];
    const CREDENTIALS: &'static [CredentialReader] = &[CredentialReader::QueryField("key")];
    type Error = TinyError;

    fn routes() -> OpenApiRouter<FaceState<Self>> {
        OpenApiRouter::new()
            .routes(routes!(whoami))
            .routes(routes!(signed))
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct Times {
    /// How many times to say the name.
    times: Option<u8>,
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/tiny/whoami", params(Times), responses((status = 200, body = String)))]
async fn whoami(Caller(actor): Caller, Query(q): Query<Times>) -> String {
    format!("0|{}", actor.name.repeat(usize::from(q.times.unwrap_or(1))))
}

const TINY_KEY: &str = "tiny-billing-key";

/// A billing-style call: fields in the query, a form or a JSON body,
/// signed with md5(key + api_random + api_timestamp).
#[utoipa::path(post, path = "/api/tiny/signed", responses((status = 200, body = String)))]
async fn signed(Fields(f): Fields) -> Result<String, TinyError> {
    let refused = |e: ironidc_api::credentials::SignatureError| {
        TinyError(StatusCode::UNAUTHORIZED, e.to_string())
    };
    let now = ironidc_core::service::now();
    let signature = Md5Signature::from_fields(&f).map_err(refused)?;
    signature
        .signer(
            [("tiny", TINY_KEY)].iter().map(|(id, k)| (id, *k)),
            now,
            300,
        )
        .map_err(refused)?;
    Ok(format!("0|{}", f.get("say").map_or("", String::as_str)))
}

// ------------------------------------------------------------------ harness

static WITH_TINY: [FaceEntry; 3] = [FACES[0], FACES[1], FaceEntry::of::<Tiny>()];

async fn app(dir: &std::path::Path, ip_per_minute: u32) -> Router {
    let opts = ServiceOptions::new(dir.to_path_buf());
    let (services, _) = common::in_process(dir, EngineRegistry::default(), opts).await;
    services.bootstrap_token(Some(TOKEN)).await.unwrap();
    let opts = ApiOptions {
        ip_per_minute,
        ..ApiOptions::default()
    };
    ironidc_api::app_with_faces(services, &opts, &WITH_TINY).unwrap()
}

async fn send(app: &Router, method: &str, uri: &str, bearer: bool) -> (u16, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if bearer {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    respond(app, req.body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, content_type: &str, body: String) -> (u16, String) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", content_type);
    respond(app, req.body(Body::from(body)).unwrap()).await
}

async fn respond(app: &Router, req: Request<Body>) -> (u16, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_tiny_face_routes_authenticates_and_refuses_in_its_own_format() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 0).await;
    let key = format!("key={TOKEN}");

    // Its credential reader, its extractors, its format.
    let ok = send(
        &app,
        "GET",
        &format!("/api/tiny/whoami?{key}&times=2"),
        false,
    )
    .await;
    assert_eq!(ok, (200, "0|adminadmin".into()));
    let (st, body) = send(&app, "GET", "/api/tiny/whoami", true).await;
    assert_eq!(st, 401, "a bearer header is not this face's reader: {body}");
    assert_eq!(body, "-1|missing token (send ?key=<token>)");
    let (st, body) = send(&app, "GET", "/api/tiny/whoami?key=wrong", false).await;
    assert_eq!((st, body.as_str()), (401, "-1|invalid token"));
    let (st, body) = send(
        &app,
        "GET",
        &format!("/api/tiny/whoami?{key}&times=x"),
        false,
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.starts_with("-1|times: "), "{body}");

    // Its own fallbacks: unknown path and wrong method, after the credential.
    let nope = send(&app, "GET", &format!("/api/tiny/nope?{key}"), false).await;
    assert_eq!(nope, (404, "-1|no such endpoint".into()));
    let (st, body) = send(&app, "GET", "/api/tiny/nope", false).await;
    assert_eq!((st, body.starts_with("-1|missing token")), (401, true));
    let post = send(&app, "POST", &format!("/api/tiny/whoami?{key}"), false).await;
    assert_eq!(post, (405, "-1|method not allowed on this endpoint".into()));

    // The product's faces keep theirs beside it.
    let (st, body) = send(&app, "GET", "/api/rbac/nope/", true).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (st, v["code"].as_u64(), v["msg"].as_str()),
        (404, Some(404), Some("未找到"))
    );
    let (st, body) = send(&app, "GET", "/api/client/nope", true).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((st, v["msg"].as_str()), (404, Some("no such endpoint")));
    assert!(v["timestamp"].is_i64(), "OpenIDCS envelope: {v}");
    // A path of no face is left to the web UI.
    assert_eq!(send(&app, "GET", "/", false).await.0, 404);

    // Its OpenAPI document, generated from its routes, beside the others.
    let (st, body) = send(&app, "GET", "/openapi/tiny.json", false).await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st, 200);
    let op = &doc["paths"]["/api/tiny/whoami"]["get"];
    assert_eq!(op["summary"], "Who the caller is.");
    assert_eq!(op["parameters"][0]["name"], "times");
    let (st, body) = send(&app, "GET", "/openapi/openidcs.json", false).await;
    assert_eq!(st, 200);
    assert!(body.contains("/api/client/create/{hs_name}"));
    let (st, body) = send(&app, "GET", "/docs/", false).await;
    assert_eq!(st, 200);
    assert!(body.contains("swagger-ui"), "Swagger UI: {body:.200}");
}

#[tokio::test]
async fn a_signed_billing_call_reads_its_fields_from_query_form_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 0).await;
    let now = ironidc_core::service::now().to_string();
    let sign = |random: &str, at: &str| md5_hex(&[TINY_KEY, random, at]);
    let form = "application/x-www-form-urlencoded";

    let body = format!(
        "api_sign={}&api_random=r1&api_timestamp={now}&say=hi",
        sign("r1", &now)
    );
    assert_eq!(
        post(&app, "/api/tiny/signed", form, body).await,
        (200, "0|hi".into())
    );
    // PHP sends numbers as numbers or text alike; JSON scalars are text here.
    let body = serde_json::json!({"api_sign": sign("r2", &now), "api_random": "r2",
        "api_timestamp": now.parse::<i64>().unwrap(), "say": 2});
    let reply = post(
        &app,
        "/api/tiny/signed",
        "application/json",
        body.to_string(),
    )
    .await;
    assert_eq!(reply, (200, "0|2".into()));
    // Fields in the query string, the body's field winning on a clash.
    let uri = format!(
        "/api/tiny/signed?api_sign={}&api_random=r3&api_timestamp={now}&say=q",
        sign("r3", &now)
    );
    assert_eq!(
        post(&app, &uri, form, "say=b".into()).await,
        (200, "0|b".into())
    );

    let wrong = format!(
        "api_sign={}&api_random=r4&api_timestamp={now}",
        md5_hex(&["other-key", "r4", &now])
    );
    assert_eq!(
        post(&app, "/api/tiny/signed", form, wrong).await,
        (401, "-1|signature invalid".into())
    );
    let old = (ironidc_core::service::now() - 3600).to_string();
    let stale = format!(
        "api_sign={}&api_random=r5&api_timestamp={old}",
        sign("r5", &old)
    );
    assert_eq!(
        post(&app, "/api/tiny/signed", form, stale).await,
        (401, "-1|timestamp out of window".into())
    );
    let unsigned = post(
        &app,
        "/api/tiny/signed",
        form,
        "api_sign=x&api_timestamp=1".into(),
    )
    .await;
    assert_eq!(unsigned, (401, "-1|api_random is missing".into()));
    let (st, body) = post(
        &app,
        "/api/tiny/signed",
        "application/json",
        "{\"api_sign\":".into(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.starts_with("-1|body: malformed JSON"), "{body}");
}

#[tokio::test]
async fn the_rate_limit_answers_in_the_format_of_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 1).await;
    assert_eq!(send(&app, "GET", "/api/system/health", false).await.0, 200);
    let (st, body) = send(&app, "GET", "/api/tiny/whoami", false).await;
    assert_eq!(st, 429);
    assert!(
        body.starts_with("-1|rate limit of 1 requests per minute"),
        "{body}"
    );
    let (st, body) = send(&app, "GET", "/api/rbac/user/get/", false).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((st, v["msg"].as_str()), (429, Some("请求过于频繁")));
    let (st, body) = send(&app, "GET", "/elsewhere", false).await;
    assert_eq!(st, 429);
    assert!(body.starts_with("rate limit of 1"), "{body}");
}

#[tokio::test]
async fn faces_may_not_share_a_prefix() {
    struct Thief;
    impl Face for Thief {
        const NAME: FaceName = FaceName::Custom("thief");
        const PREFIXES: &'static [&'static str] = &["/api/rbac/user/"];
        const CREDENTIALS: &'static [CredentialReader] = &[CredentialReader::Authorization];
        type Error = TinyError;
        fn routes() -> OpenApiRouter<FaceState<Self>> {
            OpenApiRouter::new()
        }
    }
    static CLASH: [FaceEntry; 2] = [FACES[1], FaceEntry::of::<Thief>()];
    let err = ironidc_api::FaceTable(&CLASH).check().unwrap_err();
    assert!(err.contains("ptpb and thief"), "{err}");
}
