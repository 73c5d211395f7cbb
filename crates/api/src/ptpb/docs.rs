//! The PTPB face's OpenAPI description: its envelope, typed per reply, the
//! refusals every operation may answer, and the document's front matter.
//! The operations are described at their handlers. These types only
//! describe; `envelope::Reply` builds the replies they describe.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{IntoResponses, ToSchema};

use super::envelope::RefusalDetail;
use super::wire::SessionTokensReply;

/// PTPB's envelope: the HTTP status equals `code`; `detail` (and `total`
/// and `extra` for lists) depend on the operation; logins add `token`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Envelope {
    /// The HTTP status.
    code: u16,
    /// `OK`, or PTPB's words for the error status.
    msg: String,
    /// The result; for a refused field, `{"field": ["message"]}`.
    detail: Option<serde_json::Value>,
    /// The number of items of a list, across pages.
    total: Option<u64>,
}

/// A successful reply with a typed `detail`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DetailOf<T: ToSchema> {
    /// 200.
    code: u16,
    /// `OK`.
    msg: String,
    detail: T,
}

/// A page of a list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PageOf<T: ToSchema> {
    /// 200.
    code: u16,
    /// `OK`.
    msg: String,
    /// The number of items across pages.
    total: u64,
    /// This page's items.
    detail: Vec<T>,
    /// Always null.
    extra: Option<serde_json::Value>,
}

/// A change with no result to show.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Done {
    /// 200.
    code: u16,
    /// `OK`.
    msg: String,
}

/// A delete.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Deleted {
    /// 200.
    code: u16,
    /// `OK`.
    msg: String,
    /// How many items were deleted.
    total: u64,
}

/// A login or a refresh; the refresh token is also set as the HttpOnly
/// `refresh` cookie.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SignedIn {
    /// 200.
    code: u16,
    /// `OK`.
    msg: String,
    token: SessionTokensReply,
}

/// A refused request; the HTTP status equals `code`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Refusal {
    /// The HTTP status.
    code: u16,
    /// PTPB's words for the status.
    msg: String,
    /// Why: a message, or for refused input `{"field": ["message"]}`.
    detail: RefusalDetail,
}

/// What an operation may answer instead of its result.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Bad input (and duplicates): `detail` is `{"field": ["message"]}`.
    #[response(status = 400)]
    BadRequest(Refusal),
    /// No, an unknown or an expired credential.
    #[response(status = 401)]
    Unauthorized(Refusal),
    /// The credential may not do this.
    #[response(status = 403)]
    Forbidden(Refusal),
    /// No such item (or one the caller may not see).
    #[response(status = 404)]
    NotFound(Refusal),
    /// Over the rate limit, or locked out after failed logins; retry after
    /// `Retry-After` seconds.
    #[response(status = 429)]
    TooMany(Refusal),
}

const DESCRIPTION: &str = "The PTPB bastion face of ironidc: accounts, roles, permissions, API \
tokens, quotas and the audit logs, with PTPB's paths and envelope `{code, msg, detail, total}` \
(the HTTP status equals `code`).

**Authentication.** `Authorization: <access token>`, bare as PTPB clients send it, or \
`Bearer <token>`. The access token comes from `login/`; `refresh/` renews it with the refresh \
token (in the body or the `refresh` cookie). API tokens (`ixt_…`) and the root token are \
accepted too.";

/// The front matter and security scheme of the document.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    crate::face::front_matter(&mut doc, "ironidc PTPB API", DESCRIPTION);
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "Envelope".into(),
        <Envelope as utoipa::PartialSchema>::schema(),
    );
    // The refusals are referred to by name from every operation, and
    // response enums do not collect the schemas they name.
    components.schemas.insert(
        "Refusal".into(),
        <Refusal as utoipa::PartialSchema>::schema(),
    );
    components.schemas.insert(
        "RefusalDetail".into(),
        <RefusalDetail as utoipa::PartialSchema>::schema(),
    );
    components.add_security_scheme(
        "accessToken",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "The access token, bare or as `Bearer <token>`.",
        ))),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "accessToken",
        Vec::<String>::new(),
    )]);
    doc
}
