//! The OpenIDCS face's OpenAPI description: the envelope schemas, the
//! refusals every operation may answer, and the document's front matter.
//! The operations themselves are described at their handlers.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{IntoResponses, ToSchema};

/// A successful reply: the HTTP status equals `code`; `data` depends on
/// the operation.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Reply {
    /// The HTTP status.
    code: u16,
    /// `success`.
    msg: String,
    /// The operation's result.
    data: serde_json::Value,
    /// Unix seconds.
    timestamp: i64,
}

/// A successful reply with a typed `data`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReplyOf<T: ToSchema> {
    /// The HTTP status.
    code: u16,
    /// `success`.
    msg: String,
    data: T,
    /// Unix seconds.
    timestamp: i64,
}

/// A refused request: `msg` says why, as `field: message` when the input
/// is at fault; `data` is null.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorReply {
    /// The HTTP status.
    code: u16,
    msg: String,
    /// Always null.
    data: Option<serde_json::Value>,
    /// Unix seconds.
    timestamp: i64,
}

/// What a read may answer instead of its result.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadRefusals {
    /// No, an unknown or an expired credential.
    #[response(status = 401)]
    Unauthorized(ErrorReply),
    /// The credential may not do this.
    #[response(status = 403)]
    Forbidden(ErrorReply),
    /// No such host, VM or item (or one the caller may not see).
    #[response(status = 404)]
    NotFound(ErrorReply),
    /// Over the rate limit; retry after `Retry-After` seconds.
    #[response(status = 429)]
    TooMany(ErrorReply),
}

/// What a read with query parameters may answer instead of its result.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum QueryRefusals {
    /// A bad query parameter; `msg` is `parameter: message`.
    #[response(status = 400)]
    BadRequest(ErrorReply),
    /// No, an unknown or an expired credential.
    #[response(status = 401)]
    Unauthorized(ErrorReply),
    /// The credential may not do this.
    #[response(status = 403)]
    Forbidden(ErrorReply),
    /// No such host, VM or item (or one the caller may not see).
    #[response(status = 404)]
    NotFound(ErrorReply),
    /// Over the rate limit; retry after `Retry-After` seconds.
    #[response(status = 429)]
    TooMany(ErrorReply),
}

/// What a change may answer instead of its result.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ChangeRefusals {
    /// Bad input; `msg` is `field: message`.
    #[response(status = 400)]
    BadRequest(ErrorReply),
    /// No, an unknown or an expired credential.
    #[response(status = 401)]
    Unauthorized(ErrorReply),
    /// The credential may not do this (a missing permission, or a quota).
    #[response(status = 403)]
    Forbidden(ErrorReply),
    /// No such host, VM or item (or one the caller may not see).
    #[response(status = 404)]
    NotFound(ErrorReply),
    /// Not possible in the current state (the VM's power state, another
    /// operation running, a name taken, a limit reached).
    #[response(status = 409)]
    Conflict(ErrorReply),
    /// Over the rate limit; retry after `Retry-After` seconds.
    #[response(status = 429)]
    TooMany(ErrorReply),
    /// A component needed is not available (the engine, the certificate
    /// authority).
    #[response(status = 503)]
    Unavailable(ErrorReply),
}

const DESCRIPTION: &str = "The native REST face of ironidc, compatible with OpenIDCS: hosts are \
addressed by `hs_name`, VMs by `vm_uuid`.

**Replies.** Every reply is a JSON envelope `{code, msg, data, timestamp}` and the HTTP status \
equals `code` (OpenIDCS itself answers 200 with the error in `code`; ironidc does not). Errors \
carry `data: null`; when the input is at fault `msg` names the field first, as `field: message`.

**Authentication.** `Authorization: Bearer <token>` on every path except `/api/system/health`, \
`/api/client/upload` (the guest reporter's per-VM secret in `X-Ironidc-Secret`) and \
`/api/client/console/ws` (the one-time console token from `remote` in `?token=`). The bearer \
token is the root token, the access token (JWT) of a login, or an API token (`ixt_…`). A \
refused action is a 403; a VM the caller does not own is a 404.

**Compatibility.** Numbers may be sent as strings, as billing modules do. Power actions also \
take OpenIDCS's state names (`S_START`, `H_CLOSE`, …). Create and update accept every field \
OpenIDCS clients send; fields ironidc does not model are ignored, never refused.

**Limits.** Requests are rate-limited per client address and per user token; over the budget \
the reply is a 429 with `Retry-After`.";

/// The front matter and security schemes of the document.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    crate::face::front_matter(&mut doc, "ironidc OpenIDCS API", DESCRIPTION);
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "ErrorReply".into(),
        <ErrorReply as utoipa::PartialSchema>::schema(),
    );
    components
        .schemas
        .insert("Reply".into(), <Reply as utoipa::PartialSchema>::schema());
    components.add_security_scheme(
        "bearerAuth",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The root token, a login's access token (JWT) or an API token (`ixt_…`).",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "reportSecret",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Ironidc-Secret",
            "A VM's report secret; only for `/api/client/upload`.",
        ))),
    );
    components.add_security_scheme(
        "consoleToken",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "token",
            "A one-time console token from `remote`; only for `/api/client/console/ws`.",
        ))),
    );
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        "bearerAuth",
        Vec::<String>::new(),
    )]);
    doc
}
