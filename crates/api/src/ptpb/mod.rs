//! The PTPB face (`shared/spec/ptpb-bastion-api.md`): authentication,
//! users, roles, permissions, the menu and the audit logs, with the
//! `{code,msg,detail,total}` envelope and `Authorization: <access token>`.
//! Resource groups, credentials and the terminal come later.

mod audit;
mod envelope;
mod paging;
mod roles;
mod session;
mod tokens;
mod users;

use axum::routing::{get, post};
use axum::Router;

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

    fn routes() -> Router<FaceState<Self>> {
        routes()
    }
}

fn routes() -> Router<FaceState<Ptpb>> {
    Router::new()
        .route("/api/rbac/login/", post(session::login))
        .route("/api/rbac/logout/", post(session::logout))
        .route("/api/rbac/refresh/", post(session::refresh))
        .route("/api/rbac/user/add/", post(users::add))
        .route("/api/rbac/user/edit/", post(users::edit))
        .route("/api/rbac/user/del/", post(users::delete))
        .route("/api/rbac/user/get/", get(users::list))
        .route(
            "/api/rbac/user/reset_password/",
            post(users::reset_password),
        )
        .route("/api/rbac/user/set_password/", post(users::set_password))
        .route("/api/rbac/user/detail/", get(users::detail))
        .route("/api/rbac/user/role/", post(users::set_roles))
        .route("/api/rbac/role/add/", post(roles::add))
        .route("/api/rbac/role/edit/", post(roles::edit))
        .route("/api/rbac/role/del/", post(roles::delete))
        .route("/api/rbac/role/get/", get(roles::list))
        .route("/api/rbac/role/get/permission/", get(roles::permissions_of))
        .route("/api/rbac/role/edit/permission/", post(roles::grant))
        .route("/api/rbac/perm/", get(roles::catalogue))
        .route("/api/rbac/routes/", get(roles::routes))
        .route("/api/rbac/token/get/", get(tokens::list))
        .route("/api/rbac/token/add/", post(tokens::add))
        .route("/api/rbac/token/del/", post(tokens::delete))
        .route("/api/rbac/quota/get/", get(tokens::quota))
        .route("/api/audit/login/get/", get(audit::logins))
        .route("/api/audit/opera/get/", get(audit::operations))
}
