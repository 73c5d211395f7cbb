//! The account model: users, roles, quotas, login sessions, personal API
//! tokens and the login log. Permissions are codes from `permissions.rs`.

use serde::{Deserialize, Serialize};

/// A person or a billing system's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    /// The id a billing system knows this user by (`userid`), if any.
    pub external_id: Option<String>,
    pub account: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// PTPB `status`: a disabled user cannot log in or use tokens.
    pub enabled: bool,
    /// The built-in administrator: cannot be deleted, disabled or re-roled.
    pub protected: bool,
    pub remark: Option<String>,
    /// Argon2id PHC string; never leaves the service layer.
    pub password_hash: String,
    /// Consecutive failed logins since the last success or lock.
    pub failed_logins: i64,
    /// Unix time until which logins are refused; 0 when not locked.
    pub locked_until: i64,
    /// Limits set on this user; unset fields fall back to the roles'.
    pub quota: Quota,
    pub created_at: i64,
    pub updated_at: i64,
    pub login_at: Option<i64>,
    /// Role ids, ascending.
    pub roles: Vec<i64>,
}

/// A new user row; `password_hash` is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub external_id: Option<String>,
    pub account: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub enabled: bool,
    pub protected: bool,
    pub remark: Option<String>,
    pub password_hash: String,
    pub quota: Quota,
    pub roles: Vec<i64>,
}

/// The unique keys a user can be found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey {
    Account,
    Email,
    Phone,
    ExternalId,
}

/// Filters of the user list; text filters are case-insensitive substrings.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub name: Option<String>,
    pub account: Option<String>,
    pub enabled: Option<bool>,
    pub page: Page,
}

/// A page of a list: `offset` rows skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u32,
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: 10,
        }
    }
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// Built-in roles cannot be deleted or renamed.
    pub protected: bool,
    /// Permission codes, sorted.
    pub permissions: Vec<String>,
    pub quota: Quota,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub protected: bool,
    pub permissions: Vec<String>,
    pub quota: Quota,
}

/// Resource limits. `None` means this source sets no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_rules: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<u64>,
}

/// What a user holds now, counted over the VMs they own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub vms: u64,
    pub vcpus: u64,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub nat_rules: u64,
    pub proxies: u64,
}

/// A login: the refresh token's current `jti` is the session's, so a
/// refresh token that was already rotated away is recognised as reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub refresh_jti: String,
    pub ip: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

/// A personal API token: only its SHA-256 hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    /// The first characters, to tell tokens apart.
    pub hint: String,
    /// Permission codes this token may use (within the user's own).
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub hint: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
}

/// One login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLogEntry {
    pub id: i64,
    /// The user, when the account named one.
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    pub account: String,
    pub ip: String,
    /// `succeed`, `failed` or `locked`.
    pub status: String,
    pub reason: String,
    pub ts: i64,
}

#[derive(Debug, Clone)]
pub struct NewLoginLog<'a> {
    pub user_id: Option<i64>,
    pub account: &'a str,
    pub ip: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
}

/// Filters of the login and operation logs.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this user's rows.
    pub user_id: Option<i64>,
    /// Only rows of this host.
    pub hs_name: Option<String>,
    /// Operation log: case-insensitive substring of the action.
    pub operation: Option<String>,
    /// Newest first.
    pub desc: bool,
    pub page: Page,
}
