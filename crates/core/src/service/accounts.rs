//! User use cases: the built-in administrator, create, change, delete,
//! list, roles of a user, and passwords. A caller may only act on users
//! (and grant roles) whose permissions it holds itself, so no permission
//! can be used to gain more.

use super::journal::Subject;
use super::{now, passwords, Actor, Services};
use crate::accounts::{NewUser, Quota, User, UserFilter, UserKey};
use crate::error::CoreError;
use crate::store::StoreError;

/// The built-in administrator's account.
pub const ADMIN_ACCOUNT: &str = "administrator";
/// Names the root token and the CLI act under in the logs.
const RESERVED_ACCOUNTS: &[&str] = &["admin", "system", "root", "local"];

#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub external_id: Option<String>,
    pub account: String,
    pub password: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub enabled: bool,
    pub remark: Option<String>,
    /// Role ids; `None` gives the Customer role.
    pub roles: Option<Vec<i64>>,
    pub quota: Option<Quota>,
}

/// A change of a user: `Some` fields replace, `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub external_id: Option<Option<String>>,
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub remark: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub quota: Option<Quota>,
}

/// A user as faces show it: no hash, no lockout counters.
#[derive(Debug, Clone)]
pub struct UserView {
    pub id: i64,
    pub userid: Option<String>,
    pub account: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub status: bool,
    pub protected: bool,
    pub locked: bool,
    pub remark: Option<String>,
    pub roles: Vec<i64>,
    pub quota: Quota,
    pub created_at: i64,
    pub updated_at: i64,
    pub login_at: Option<i64>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            locked: u.locked_until > now(),
            userid: u.external_id,
            account: u.account,
            name: u.name,
            email: u.email,
            phone: u.phone,
            status: u.enabled,
            protected: u.protected,
            remark: u.remark,
            roles: u.roles,
            quota: u.quota,
            created_at: u.created_at,
            updated_at: u.updated_at,
            login_at: u.login_at,
        }
    }
}

impl Services {
    /// Make the built-in roles and administrator when missing, and give
    /// the Administrator role every permission of this version. Returns
    /// the administrator's password when one was generated (show it once).
    pub async fn init_accounts(
        &self,
        admin_password: Option<&str>,
    ) -> Result<Option<String>, CoreError> {
        let admin_role = self.ensure_builtin_roles().await?;
        if self
            .store()
            .user_by_key(UserKey::Account, ADMIN_ACCOUNT)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let (password, generated) = match admin_password {
            Some(p) => {
                passwords::check_strength("admin_password", p, ADMIN_ACCOUNT)?;
                (p.to_string(), None)
            }
            None => {
                let p = crate::secrets::new_token();
                (p.clone(), Some(p))
            }
        };
        let new = NewUser {
            external_id: None,
            account: ADMIN_ACCOUNT.into(),
            name: "Administrator".into(),
            email: None,
            phone: None,
            enabled: true,
            protected: true,
            remark: None,
            password_hash: passwords::hash(&password).await?,
            quota: Quota::default(),
            roles: vec![admin_role],
        };
        let _flush = self.auth_change();
        match self.store().insert_user(&new).await {
            Ok(_) => Ok(generated),
            // Another controller made it first.
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_user(
        &self,
        actor: &Actor,
        input: UserInput,
    ) -> Result<UserView, CoreError> {
        let target = input.account.trim().to_string();
        let checked = self.check_new_user(actor, input).await;
        self.run_audited(
            actor,
            "user.create",
            Subject::target(&target),
            checked,
            async |new, _op| {
                let _flush = self.auth_change();
                let user = self
                    .store()
                    .insert_user(&new)
                    .await
                    .map_err(user_conflict)?;
                Ok(UserView::from(user))
            },
            |u| serde_json::json!({"user_id": u.id}),
        )
        .await
    }

    async fn check_new_user(&self, actor: &Actor, input: UserInput) -> Result<NewUser, CoreError> {
        actor.require("system.user.create")?;
        let account = input.account.trim().to_string();
        check_account(&account)?;
        passwords::check_strength("password", &input.password, &account)?;
        let name = check_name(&input.name)?;
        let email = clean(input.email).map(check_email).transpose()?;
        let phone = clean(input.phone).map(check_phone).transpose()?;
        let external_id = clean(input.external_id)
            .map(check_external_id)
            .transpose()?;
        let remark = clean(input.remark).map(check_remark).transpose()?;
        self.ensure_free(None, UserKey::Account, Some(&account))
            .await?;
        self.ensure_free(None, UserKey::Email, email.as_deref())
            .await?;
        self.ensure_free(None, UserKey::Phone, phone.as_deref())
            .await?;
        self.ensure_free(None, UserKey::ExternalId, external_id.as_deref())
            .await?;
        let roles = match input.roles {
            Some(ids) => ids,
            None => vec![self.customer_role().await?],
        };
        self.check_grantable(actor, &roles).await?;
        if input.quota.is_some() {
            actor.require("system.role.update")?;
        }
        Ok(NewUser {
            external_id,
            account,
            name,
            email,
            phone,
            enabled: input.enabled,
            protected: false,
            remark,
            password_hash: passwords::hash(&input.password).await?,
            quota: input.quota.unwrap_or_default(),
            roles,
        })
    }

    pub async fn update_user(
        &self,
        actor: &Actor,
        id: i64,
        patch: UserPatch,
    ) -> Result<UserView, CoreError> {
        let checked = self.check_user_patch(actor, id, patch).await;
        self.run_audited(
            actor,
            "user.update",
            Subject::target(&id.to_string()),
            checked,
            async |user, _op| {
                // A disabled user's tokens stop working on the next request.
                let _flush = self.auth_change();
                self.store()
                    .update_user(&user)
                    .await
                    .map_err(user_conflict)?;
                if !user.enabled {
                    self.store().revoke_user_sessions(user.id).await?;
                }
                self.user_view(user.id).await
            },
            |u| serde_json::json!({"user_id": u.id}),
        )
        .await
    }

    async fn check_user_patch(
        &self,
        actor: &Actor,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, CoreError> {
        actor.require("system.user.update")?;
        let mut user = self.user_in_reach(actor, id).await?;
        if let Some(name) = patch.name {
            user.name = check_name(&name)?;
        }
        if let Some(email) = patch.email {
            user.email = clean(email).map(check_email).transpose()?;
            self.ensure_free(Some(id), UserKey::Email, user.email.as_deref())
                .await?;
        }
        if let Some(phone) = patch.phone {
            user.phone = clean(phone).map(check_phone).transpose()?;
            self.ensure_free(Some(id), UserKey::Phone, user.phone.as_deref())
                .await?;
        }
        if let Some(ext) = patch.external_id {
            user.external_id = clean(ext).map(check_external_id).transpose()?;
            self.ensure_free(Some(id), UserKey::ExternalId, user.external_id.as_deref())
                .await?;
        }
        if let Some(remark) = patch.remark {
            user.remark = clean(remark).map(check_remark).transpose()?;
        }
        if let Some(enabled) = patch.enabled {
            if !enabled && user.protected {
                return Err(CoreError::invalid(
                    "status",
                    "a protected user cannot be disabled",
                ));
            }
            if !enabled && Some(id) == actor.user_id {
                return Err(CoreError::invalid("status", "you cannot disable yourself"));
            }
            user.enabled = enabled;
        }
        if let Some(quota) = patch.quota {
            actor.require("system.role.update")?;
            user.quota = quota;
        }
        Ok(user)
    }

    /// Delete users, all or none: each must exist, be unprotected, not be
    /// the caller, and own no VMs.
    pub async fn delete_users(&self, actor: &Actor, ids: &[i64]) -> Result<u64, CoreError> {
        let target = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let checked = async {
            actor.require("system.user.delete")?;
            if ids.is_empty() {
                return Err(CoreError::invalid("id_list", "must name at least one user"));
            }
            for &id in ids {
                let user = self.user_in_reach(actor, id).await.map_err(|e| match e {
                    CoreError::NotFound { .. } => {
                        CoreError::invalid("id_list", format!("user {id} does not exist"))
                    }
                    other => other,
                })?;
                if user.protected {
                    return Err(CoreError::invalid(
                        "id_list",
                        format!("user {id} is protected"),
                    ));
                }
                if Some(id) == actor.user_id {
                    return Err(CoreError::invalid("id_list", "you cannot delete yourself"));
                }
                let vms = self.store().usage_of(id).await?.vms;
                if vms > 0 {
                    return Err(CoreError::invalid(
                        "id_list",
                        format!("user {id} owns {vms} VM(s); delete or reassign them first"),
                    ));
                }
            }
            Ok(())
        }
        .await;
        self.run_audited(
            actor,
            "user.delete",
            Subject::target(&target),
            checked,
            async |(), _op| {
                let _flush = self.auth_change();
                let mut deleted = 0;
                for &id in ids {
                    if self.store().delete_user(id).await? {
                        deleted += 1;
                    }
                }
                Ok(deleted)
            },
            |n| serde_json::json!({"deleted": n}),
        )
        .await
    }

    pub async fn list_users(
        &self,
        actor: &Actor,
        filter: &UserFilter,
    ) -> Result<(Vec<UserView>, u64), CoreError> {
        actor.require("system.user.read")?;
        let (users, total) = self.store().list_users(filter).await?;
        Ok((users.into_iter().map(UserView::from).collect(), total))
    }

    /// One user by id, account or billing `userid` (`#id`, `account`).
    pub async fn find_user(&self, actor: &Actor, reference: &str) -> Result<UserView, CoreError> {
        actor.require("system.user.read")?;
        Ok(self.user_by_reference(reference).await?.into())
    }

    /// The caller's own record.
    pub async fn own_user(&self, actor: &Actor) -> Result<UserView, CoreError> {
        let id = actor.user_id.ok_or_else(|| {
            CoreError::invalid(
                "Authorization",
                "the root token is not a user; log in as one",
            )
        })?;
        self.user_view(id).await
    }

    pub async fn set_user_roles(
        &self,
        actor: &Actor,
        id: i64,
        roles: &[i64],
    ) -> Result<UserView, CoreError> {
        let checked = async {
            actor.require("system.user.update")?;
            let user = self.user_in_reach(actor, id).await?;
            if user.protected {
                return Err(CoreError::invalid(
                    "id",
                    "a protected user's roles cannot be changed",
                ));
            }
            self.check_grantable(actor, roles).await
        }
        .await;
        self.run_audited(
            actor,
            "user.roles",
            Subject::target(&id.to_string()),
            checked,
            async |(), _op| {
                let _flush = self.auth_change();
                self.store().set_user_roles(id, roles).await?;
                self.user_view(id).await
            },
            |u| serde_json::json!({"user_id": u.id, "roles": u.roles}),
        )
        .await
    }

    /// An operator sets someone's password (all their sessions end).
    pub async fn set_user_password(
        &self,
        actor: &Actor,
        id: i64,
        password: &str,
    ) -> Result<(), CoreError> {
        let checked = async {
            actor.require("system.user.update")?;
            let user = self.user_in_reach(actor, id).await?;
            passwords::check_strength("password", password, &user.account)?;
            passwords::hash(password).await
        }
        .await;
        self.run_audited(
            actor,
            "user.password",
            Subject::target(&id.to_string()),
            checked,
            async |hash, _op| self.replace_password(id, &hash).await,
            |_| serde_json::json!({"user_id": id}),
        )
        .await
    }

    /// A user changes their own password; every session of theirs ends,
    /// including the caller's. A wrong old password counts as a failed
    /// login (so a stolen token cannot guess it without locking).
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        old: &str,
        new: &str,
    ) -> Result<(), CoreError> {
        let checked = async {
            let id = actor.user_id.ok_or_else(|| {
                CoreError::invalid(
                    "Authorization",
                    "the root token is not a user; log in as one",
                )
            })?;
            let user = self
                .store()
                .user_by_id(id)
                .await?
                .ok_or_else(|| CoreError::not_found("user", id.to_string()))?;
            if old.is_empty() {
                return Err(CoreError::invalid("old_password", "is required"));
            }
            if !passwords::verify(old, &user.password_hash).await {
                self.count_failure(&user, &actor.source_ip).await;
                return Err(CoreError::invalid("old_password", "is wrong"));
            }
            if old == new {
                return Err(CoreError::invalid(
                    "new_password",
                    "must differ from the old password",
                ));
            }
            passwords::check_strength("new_password", new, &user.account)?;
            Ok((id, passwords::hash(new).await?))
        }
        .await;
        self.run_audited(
            actor,
            "user.password",
            Subject {
                host: None,
                target: actor.user_id.map(|id| id.to_string()).as_deref(),
            },
            checked,
            async |(id, hash), _op| self.replace_password(id, &hash).await,
            |_| serde_json::json!({}),
        )
        .await
    }

    async fn replace_password(&self, id: i64, hash: &str) -> Result<(), CoreError> {
        let _flush = self.auth_change();
        self.store().set_user_password(id, hash).await?;
        self.store().revoke_user_sessions(id).await?;
        Ok(())
    }

    /// `#12` is an id; anything else an account, then a billing `userid`.
    pub(crate) async fn user_by_reference(&self, reference: &str) -> Result<User, CoreError> {
        let found = match reference.strip_prefix('#').map(str::parse::<i64>) {
            Some(Ok(id)) => self.store().user_by_id(id).await?,
            Some(Err(_)) => None,
            None => match self
                .store()
                .user_by_key(UserKey::Account, reference)
                .await?
            {
                Some(u) => Some(u),
                None => {
                    self.store()
                        .user_by_key(UserKey::ExternalId, reference)
                        .await?
                }
            },
        };
        found.ok_or_else(|| CoreError::not_found("user", reference))
    }

    async fn user_view(&self, id: i64) -> Result<UserView, CoreError> {
        self.store()
            .user_by_id(id)
            .await?
            .map(UserView::from)
            .ok_or_else(|| CoreError::not_found("user", id.to_string()))
    }

    /// A user the caller may act on: it exists, and the caller holds every
    /// permission it holds (so staff cannot take over an administrator).
    async fn user_in_reach(&self, actor: &Actor, id: i64) -> Result<User, CoreError> {
        let user = self
            .store()
            .user_by_id(id)
            .await?
            .ok_or_else(|| CoreError::not_found("user", id.to_string()))?;
        for code in self.store().user_permissions(id).await? {
            actor.require(&code)?;
        }
        Ok(user)
    }

    /// Every role exists and grants nothing the caller lacks.
    async fn check_grantable(&self, actor: &Actor, roles: &[i64]) -> Result<(), CoreError> {
        for &rid in roles {
            let role =
                self.store().role_by_id(rid).await?.ok_or_else(|| {
                    CoreError::invalid("roles", format!("role {rid} does not exist"))
                })?;
            for code in &role.permissions {
                actor.require(code)?;
            }
        }
        Ok(())
    }

    async fn ensure_free(
        &self,
        except: Option<i64>,
        key: UserKey,
        value: Option<&str>,
    ) -> Result<(), CoreError> {
        let Some(value) = value else { return Ok(()) };
        match self.store().user_by_key(key, value).await? {
            Some(u) if Some(u.id) != except => {
                Err(CoreError::invalid(key_field(key), "is already registered"))
            }
            _ => Ok(()),
        }
    }
}

fn key_field(key: UserKey) -> &'static str {
    match key {
        UserKey::Account => "account",
        UserKey::Email => "email",
        UserKey::Phone => "phone_number",
        UserKey::ExternalId => "userid",
    }
}

/// A unique index that refused a write (a race the pre-check lost) names
/// its field like the pre-check would.
fn user_conflict(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(c) => {
            let key = match c.column {
                "email" => UserKey::Email,
                "phone" => UserKey::Phone,
                "external_id" => UserKey::ExternalId,
                _ => UserKey::Account,
            };
            CoreError::invalid(key_field(key), "is already registered")
        }
        other => other.into(),
    }
}

/// Trimmed, with empty meaning absent.
fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn check_account(account: &str) -> Result<(), CoreError> {
    let ok_len = (2..=64).contains(&account.len());
    let mut chars = account.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if !(ok_len && ok_first && ok_rest) {
        return Err(CoreError::invalid(
            "account",
            "must be 2 to 64 letters, digits or _.@- starting with a letter or digit",
        ));
    }
    if RESERVED_ACCOUNTS.contains(&account.to_lowercase().as_str()) {
        return Err(CoreError::invalid("account", "is reserved"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "name",
            "must be 1 to 64 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

fn check_email(email: String) -> Result<String, CoreError> {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if !valid {
        return Err(CoreError::invalid("email", "is not an email address"));
    }
    Ok(email)
}

fn check_phone(phone: String) -> Result<String, CoreError> {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let valid = (5..=20).contains(&digits)
        && phone
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (i == 0 && c == '+'));
    if !valid {
        return Err(CoreError::invalid(
            "phone_number",
            "must be 5 to 20 digits (spaces, dashes and a leading + allowed)",
        ));
    }
    Ok(phone)
}

fn check_external_id(id: String) -> Result<String, CoreError> {
    let valid = id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if !valid {
        return Err(CoreError::invalid(
            "userid",
            "must be up to 64 letters, digits or _.:-",
        ));
    }
    Ok(id)
}

fn check_remark(remark: String) -> Result<String, CoreError> {
    if remark.chars().count() > 500 {
        return Err(CoreError::invalid(
            "remark",
            "must be at most 500 characters",
        ));
    }
    Ok(remark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_checks_name_their_field() {
        let field = |r: Result<(), CoreError>| match r {
            Err(CoreError::Invalid { field, .. }) => field,
            other => format!("{other:?}"),
        };
        assert_eq!(field(check_account("a")), "account");
        assert_eq!(field(check_account("-bob")), "account");
        assert_eq!(field(check_account("Admin")), "account");
        assert_eq!(field(check_account("bob smith")), "account");
        assert!(check_account("bob.smith@corp").is_ok());
        assert_eq!(field(check_email("bob".into()).map(drop)), "email");
        assert_eq!(
            field(check_email("bob@localhost".into()).map(drop)),
            "email"
        );
        assert!(check_email("bob@example.com".into()).is_ok());
        assert_eq!(
            field(check_phone("12ab5678".into()).map(drop)),
            "phone_number"
        );
        assert!(check_phone("+86 175-3133-3029".into()).is_ok());
        assert_eq!(field(check_external_id("a b".into()).map(drop)), "userid");
        assert_eq!(field(check_name(" ").map(drop)), "name");
    }
}
