//! The store port for accounts: users, roles, sessions, API tokens, the
//! login log and quota usage. `ironidc-store` implements it with `Store`.

use async_trait::async_trait;

use crate::accounts::{
    ApiToken, LogFilter, LoginLogEntry, NewApiToken, NewLoginLog, NewRole, NewUser, Page, Role,
    Session, Usage, User, UserFilter, UserKey,
};
use crate::store::StoreError;

#[async_trait]
pub trait AccountStore: Send + Sync {
    // users. A unique index refuses a second account, email, phone or
    // external id: `StoreError::Conflict` naming the column (`account`,
    // `email`, `phone`, `external_id`).
    async fn insert_user(&self, new: &NewUser) -> Result<User, StoreError>;
    /// Replaces the profile columns (external_id, name, email, phone,
    /// enabled, remark, quota) of `user.id`; roles and password stay.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// A new hash; also clears `failed_logins` and `locked_until`.
    async fn set_user_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError>;
    /// Records the outcome of a login attempt.
    async fn set_user_login_state(
        &self,
        id: i64,
        failed_logins: i64,
        locked_until: i64,
        login_at: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Deletes the user with its role links, sessions and API tokens; VMs
    /// it owned become unowned. Returns false when there was no such user.
    async fn delete_user(&self, id: i64) -> Result<bool, StoreError>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// Exact match (account and email case-insensitively).
    async fn user_by_key(&self, key: UserKey, value: &str) -> Result<Option<User>, StoreError>;
    /// One page in id order, and the number of all matching users.
    async fn list_users(&self, filter: &UserFilter) -> Result<(Vec<User>, u64), StoreError>;
    /// Replaces the user's roles.
    async fn set_user_roles(&self, user_id: i64, role_ids: &[i64]) -> Result<(), StoreError>;
    /// The permission codes of the user's enabled roles (deduplicated).
    async fn user_permissions(&self, user_id: i64) -> Result<Vec<String>, StoreError>;
    /// Ids of users holding the role.
    async fn role_members(&self, role_id: i64) -> Result<Vec<i64>, StoreError>;

    // roles. Unique: name, code (Conflict names the column).
    async fn insert_role(&self, new: &NewRole) -> Result<Role, StoreError>;
    /// Replaces name, code, description, enabled and quota of `role.id`.
    async fn update_role(&self, role: &Role) -> Result<(), StoreError>;
    async fn set_role_permissions(&self, role_id: i64, codes: &[String]) -> Result<(), StoreError>;
    /// Deletes the role and its links. False when there was no such role.
    async fn delete_role(&self, id: i64) -> Result<bool, StoreError>;
    async fn role_by_id(&self, id: i64) -> Result<Option<Role>, StoreError>;
    async fn role_by_code(&self, code: &str) -> Result<Option<Role>, StoreError>;
    /// Roles in id order whose name contains `name` (case-insensitive);
    /// `page: None` returns all. Also returns the number of all matches.
    async fn list_roles(
        &self,
        name: Option<&str>,
        page: Option<Page>,
    ) -> Result<(Vec<Role>, u64), StoreError>;

    // sessions
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn session_by_id(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Compare-and-set of the refresh jti: true when `old_jti` was current
    /// (and the session not revoked) and is now replaced.
    async fn rotate_session(
        &self,
        id: &str,
        old_jti: &str,
        new_jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    async fn revoke_session(&self, id: &str) -> Result<(), StoreError>;
    async fn revoke_user_sessions(&self, user_id: i64) -> Result<u64, StoreError>;
    /// Removes sessions that expired before `before`.
    async fn purge_sessions(&self, before: i64) -> Result<u64, StoreError>;

    // personal API tokens. Unique: token_hash.
    async fn insert_api_token(&self, new: &NewApiToken) -> Result<ApiToken, StoreError>;
    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError>;
    async fn list_api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>, StoreError>;
    /// False when the user has no such token.
    async fn delete_api_token(&self, id: i64, user_id: i64) -> Result<bool, StoreError>;
    async fn touch_api_token(&self, id: i64, at: i64) -> Result<(), StoreError>;

    // login log
    async fn insert_login_log(&self, new: NewLoginLog<'_>) -> Result<(), StoreError>;
    /// Honors `user_id`, `desc` and `page` of the filter; `user_name` is the
    /// user's current name.
    async fn list_login_logs(
        &self,
        filter: &LogFilter,
    ) -> Result<(Vec<LoginLogEntry>, u64), StoreError>;

    // ownership and quotas
    async fn set_vm_owner(&self, vm_id: i64, owner_id: Option<i64>) -> Result<(), StoreError>;
    /// Counts over the VMs the user owns: VMs, vCPUs (`config.cpu_num`),
    /// memory (`config.mem_num`), disk (`config.hdd_num`), NAT rules and
    /// proxies bound to them.
    async fn usage_of(&self, owner_id: i64) -> Result<Usage, StoreError>;
}
