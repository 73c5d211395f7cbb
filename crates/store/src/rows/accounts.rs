//! Rows of the account tables: users, roles, login sessions, personal API
//! tokens and the login log.

use ironidc_core::accounts::{ApiToken, LoginLogEntry, Role, Session, User};
use ironidc_core::store::StoreError;

use super::{flag, json};

/// A `users` row. Its roles are a link table, read separately.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    external_id: Option<String>,
    account: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    enabled: i64,
    protected: i64,
    remark: Option<String>,
    password_hash: String,
    failed_logins: i64,
    locked_until: i64,
    quota: String,
    created_at: i64,
    updated_at: i64,
    login_at: Option<i64>,
}

impl UserRow {
    pub(crate) const COLUMNS: &'static str = "id, external_id, account, name, email, phone, \
         enabled, protected, remark, password_hash, failed_logins, locked_until, quota, \
         created_at, updated_at, login_at";
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: row.id,
            external_id: row.external_id,
            account: row.account,
            name: row.name,
            email: row.email,
            phone: row.phone,
            enabled: flag(row.enabled),
            protected: flag(row.protected),
            remark: row.remark,
            password_hash: row.password_hash,
            failed_logins: row.failed_logins,
            locked_until: row.locked_until,
            quota: json("user quota", &row.quota)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            login_at: row.login_at,
            roles: Vec::new(),
        })
    }
}

/// A `roles` row. Its permissions are a link table, read separately.
#[derive(sqlx::FromRow)]
pub(crate) struct RoleRow {
    id: i64,
    name: String,
    code: String,
    description: Option<String>,
    enabled: i64,
    protected: i64,
    quota: String,
    created_at: i64,
    updated_at: i64,
}

impl RoleRow {
    pub(crate) const COLUMNS: &'static str =
        "id, name, code, description, enabled, protected, quota, created_at, updated_at";
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;

    fn try_from(row: RoleRow) -> Result<Self, StoreError> {
        Ok(Role {
            id: row.id,
            name: row.name,
            code: row.code,
            description: row.description,
            enabled: flag(row.enabled),
            protected: flag(row.protected),
            permissions: Vec::new(),
            quota: json("role quota", &row.quota)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `sessions` row.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: i64,
    refresh_jti: String,
    ip: String,
    created_at: i64,
    expires_at: i64,
    revoked: i64,
}

impl SessionRow {
    pub(crate) const COLUMNS: &'static str =
        "id, user_id, refresh_jti, ip, created_at, expires_at, revoked";
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: row.id,
            user_id: row.user_id,
            refresh_jti: row.refresh_jti,
            ip: row.ip,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked: flag(row.revoked),
        }
    }
}

/// An `api_tokens` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ApiTokenRow {
    id: i64,
    user_id: i64,
    name: String,
    token_hash: String,
    hint: String,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl ApiTokenRow {
    pub(crate) const COLUMNS: &'static str =
        "id, user_id, name, token_hash, hint, scopes, created_at, expires_at, last_used_at";
}

impl TryFrom<ApiTokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(row: ApiTokenRow) -> Result<Self, StoreError> {
        Ok(ApiToken {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            token_hash: row.token_hash,
            hint: row.hint,
            scopes: json("token scopes", &row.scopes)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        })
    }
}

/// A `login_logs` row (`l`) with the name of its user (`u`), if the user
/// still exists.
#[derive(sqlx::FromRow)]
pub(crate) struct LoginLogRow {
    id: i64,
    user_id: Option<i64>,
    user_name: Option<String>,
    account: String,
    ip: String,
    status: String,
    reason: String,
    ts: i64,
}

impl LoginLogRow {
    pub(crate) const COLUMNS: &'static str =
        "l.id, l.user_id, u.name AS user_name, l.account, l.ip, l.status, l.reason, l.ts";
}

impl From<LoginLogRow> for LoginLogEntry {
    fn from(row: LoginLogRow) -> Self {
        LoginLogEntry {
            id: row.id,
            user_id: row.user_id,
            user_name: row.user_name,
            account: row.account,
            ip: row.ip,
            status: row.status,
            reason: row.reason,
            ts: row.ts,
        }
    }
}
