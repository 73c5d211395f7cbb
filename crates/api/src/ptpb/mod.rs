//! The PTPB face (`shared/spec/ptpb-bastion-api.md`): authentication,
//! users, roles, permissions, the menu and the audit logs, with the
//! `{code,msg,detail,total}` envelope and `Authorization: <access token>`.
//! Resource groups, credentials and the terminal come later.

mod audit;
mod docs;
mod envelope;
mod paging;
mod roles;
mod session;
mod tokens;
mod users;
mod wire;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use envelope::PtpbError;

use crate::credentials::CredentialReader;
use crate::face::{Face, FaceName, FaceState};

/// The PTPB face.
pub struct Ptpb;

impl Face for Ptpb {
    const NAME: FaceName = FaceName::Ptpb;
    const PREFIXES: &'static [&'static str] = &["/api/rbac/", "/api/audit/"];
    const CREDENTIALS: &'static [CredentialReader] = &[CredentialReader::Authorization];
    type Error = PtpbError;

    fn routes() -> OpenApiRouter<FaceState<Self>> {
        routes()
    }

    fn document(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
        docs::finish(doc)
    }
}

fn routes() -> OpenApiRouter<FaceState<Ptpb>> {
    OpenApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::refresh))
        .routes(routes!(users::add))
        .routes(routes!(users::edit))
        .routes(routes!(users::delete))
        .routes(routes!(users::list))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::set_password))
        .routes(routes!(users::detail))
        .routes(routes!(users::set_roles))
        .routes(routes!(roles::add))
        .routes(routes!(roles::edit))
        .routes(routes!(roles::delete))
        .routes(routes!(roles::list))
        .routes(routes!(roles::permissions_of))
        .routes(routes!(roles::grant))
        .routes(routes!(roles::catalogue))
        .routes(routes!(roles::routes))
        .routes(routes!(tokens::list))
        .routes(routes!(tokens::add))
        .routes(routes!(tokens::delete))
        .routes(routes!(tokens::quota))
        .routes(routes!(audit::logins))
        .routes(routes!(audit::operations))
}
