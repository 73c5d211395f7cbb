//! Users and the tokens of their logins.

use ironidc_core::service::{TokenPair, UserView};
use serde::Serialize;
use utoipa::ToSchema;

use super::date;
use super::quotas::QuotaReply;

/// A user in PTPB's shape, with our `userid`, `locked` and `quota`.
#[derive(Serialize, ToSchema)]
pub struct UserReply {
    id: i64,
    /// The billing system's id of the user, when it set one.
    userid: Option<String>,
    account: String,
    name: String,
    email: Option<String>,
    /// Enabled.
    status: bool,
    /// A built-in account, which may not be deleted.
    protected: bool,
    /// Locked out after failed logins, for now.
    locked: bool,
    phone_number: Option<String>,
    /// Always null: ironidc keeps no avatars.
    avatar: Option<String>,
    /// ISO 8601 (UTC).
    #[schema(format = DateTime)]
    create_date: Option<String>,
    /// ISO 8601 (UTC).
    #[schema(format = DateTime)]
    update_date: Option<String>,
    /// The last login, ISO 8601 (UTC); null: never.
    #[schema(format = DateTime)]
    login_date: Option<String>,
    remark: Option<String>,
    /// Role ids.
    roles: Vec<i64>,
    /// The limits set on the user itself.
    quota: QuotaReply,
}

impl From<UserView> for UserReply {
    fn from(u: UserView) -> Self {
        let UserView {
            id,
            userid,
            account,
            name,
            email,
            phone,
            status,
            protected,
            locked,
            remark,
            roles,
            quota,
            created_at,
            updated_at,
            login_at,
        } = u;
        Self {
            id,
            userid,
            account,
            name,
            email,
            status,
            protected,
            locked,
            phone_number: phone,
            avatar: None,
            create_date: date(created_at),
            update_date: date(updated_at),
            login_date: login_at.and_then(date),
            remark,
            roles,
            quota: quota.into(),
        }
    }
}

/// The signed-in user, with where they call from and what they may do.
#[derive(Serialize, ToSchema)]
pub struct UserDetailReply {
    #[serde(flatten)]
    user: UserReply,
    /// The caller's address as the controller sees it.
    ip: String,
    /// Permission codes the caller holds.
    permissions: Vec<String>,
}

impl UserDetailReply {
    pub fn new(user: UserView, ip: String, permissions: Vec<String>) -> Self {
        Self {
            user: user.into(),
            ip,
            permissions,
        }
    }
}

/// The tokens of a login or refresh.
#[derive(Serialize, ToSchema)]
pub struct SessionTokensReply {
    /// Send as `Authorization`.
    access: String,
    /// For `refresh/`; also set as the `refresh` cookie.
    refresh: String,
    /// Seconds until `access` expires.
    access_expires_in: u64,
    /// Seconds until `refresh` expires.
    refresh_expires_in: u64,
}

copy_fields!(TokenPair => SessionTokensReply { access, refresh, access_expires_in, refresh_expires_in });
