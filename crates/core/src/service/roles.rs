//! Role use cases: the built-in Administrator and Customer roles, create,
//! change, delete, list, and the permissions a role grants. Nobody grants
//! a permission they do not hold.

use super::journal::Subject;
use super::{Actor, Services};
use crate::accounts::{NewRole, Page, Quota, Role};
use crate::error::CoreError;
use crate::permissions;
use crate::store::StoreError;

/// Holds every permission; cannot be changed or deleted.
pub const ADMIN_ROLE: &str = "Administrator";
/// New users get it; its permissions and quota are the operator's to tune,
/// but it cannot be deleted or renamed.
pub const CUSTOMER_ROLE: &str = "Customer";
/// VoidVM's limit for free users, as the Customer role's default.
const CUSTOMER_DEFAULT_VMS: u64 = 5;

#[derive(Debug, Clone, Default)]
pub struct RoleInput {
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    pub quota: Option<Quota>,
}

/// A change of a role: `Some` fields replace.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    pub name: Option<String>,
    pub code: Option<String>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone)]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub status: bool,
    pub protected: bool,
    pub permissions: Vec<String>,
    /// The permissions' catalogue ids (PTPB `perms`).
    pub perms: Vec<i64>,
    pub quota: Quota,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        let perms = r
            .permissions
            .iter()
            .filter_map(|c| permissions::by_code(c).map(|p| p.id))
            .collect();
        Self {
            id: r.id,
            name: r.name,
            code: r.code,
            description: r.description,
            status: r.enabled,
            protected: r.protected,
            permissions: r.permissions,
            perms,
            quota: r.quota,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Services {
    /// Create the built-in roles when missing; the Administrator role is
    /// given every permission of this version. Returns its id.
    pub(crate) async fn ensure_builtin_roles(&self) -> Result<i64, CoreError> {
        let admin = match self.store().role_by_code(ADMIN_ROLE).await? {
            Some(role) => {
                let all = permissions::all_codes();
                // Compared as sets: stored codes come back in another
                // order, and rewriting them on every start is a write each
                // controller would race the others with.
                let stored: std::collections::BTreeSet<&String> = role.permissions.iter().collect();
                if stored != all.iter().collect() {
                    let _flush = self.auth_change();
                    self.store().set_role_permissions(role.id, &all).await?;
                }
                role.id
            }
            None => {
                self.insert_builtin(NewRole {
                    name: ADMIN_ROLE.into(),
                    code: ADMIN_ROLE.into(),
                    description: Some("Every permission".into()),
                    enabled: true,
                    protected: true,
                    permissions: permissions::all_codes(),
                    quota: Quota::default(),
                })
                .await?
            }
        };
        if self.store().role_by_code(CUSTOMER_ROLE).await?.is_none() {
            self.insert_builtin(NewRole {
                name: CUSTOMER_ROLE.into(),
                code: CUSTOMER_ROLE.into(),
                description: Some("Uses and looks after their own VMs".into()),
                enabled: true,
                protected: true,
                permissions: permissions::CUSTOMER_DEFAULT
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                quota: Quota {
                    vms: Some(CUSTOMER_DEFAULT_VMS),
                    ..Quota::default()
                },
            })
            .await?;
        }
        Ok(admin)
    }

    async fn insert_builtin(&self, new: NewRole) -> Result<i64, CoreError> {
        let _flush = self.auth_change();
        match self.store().insert_role(&new).await {
            Ok(role) => Ok(role.id),
            // Another controller made it first.
            Err(StoreError::Conflict(_)) => self
                .store()
                .role_by_code(&new.code)
                .await?
                .map(|r| r.id)
                .ok_or_else(|| CoreError::not_found("role", new.code.clone())),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn customer_role(&self) -> Result<i64, CoreError> {
        if let Some(role) = self.store().role_by_code(CUSTOMER_ROLE).await? {
            return Ok(role.id);
        }
        self.ensure_builtin_roles().await?;
        self.store()
            .role_by_code(CUSTOMER_ROLE)
            .await?
            .map(|r| r.id)
            .ok_or_else(|| CoreError::not_found("role", CUSTOMER_ROLE))
    }

    pub async fn create_role(
        &self,
        actor: &Actor,
        input: RoleInput,
    ) -> Result<RoleView, CoreError> {
        let target = input.code.clone();
        let checked = async {
            actor.require("system.role.create")?;
            let name = check_role_name(&input.name)?;
            let code = check_role_code(&input.code)?;
            let permissions = check_grant(actor, input.permissions)?;
            if input.quota.is_some() {
                actor.require("system.role.update")?;
            }
            self.ensure_role_free(None, &name, &code).await?;
            Ok(NewRole {
                name,
                code,
                description: clean_description(input.description)?,
                enabled: true,
                protected: false,
                permissions,
                quota: input.quota.unwrap_or_default(),
            })
        }
        .await;
        self.run_audited(
            actor,
            "role.create",
            Subject::target(&target),
            checked,
            async |new, _op| {
                let _flush = self.auth_change();
                let role = self
                    .store()
                    .insert_role(&new)
                    .await
                    .map_err(role_conflict)?;
                Ok(RoleView::from(role))
            },
            |r| serde_json::json!({"role_id": r.id}),
        )
        .await
    }

    pub async fn update_role(
        &self,
        actor: &Actor,
        id: i64,
        patch: RolePatch,
    ) -> Result<RoleView, CoreError> {
        let checked = async {
            actor.require("system.role.update")?;
            let mut role = self.role_in_reach(actor, id).await?;
            if role.code == ADMIN_ROLE {
                return Err(CoreError::invalid(
                    "id",
                    "the Administrator role cannot be changed",
                ));
            }
            if let Some(name) = patch.name {
                let name = check_role_name(&name)?;
                if role.protected && name != role.name {
                    return Err(CoreError::invalid(
                        "name",
                        "a built-in role cannot be renamed",
                    ));
                }
                role.name = name;
            }
            if let Some(code) = patch.code {
                let code = check_role_code(&code)?;
                if role.protected && code != role.code {
                    return Err(CoreError::invalid(
                        "code",
                        "a built-in role's code is fixed",
                    ));
                }
                role.code = code;
            }
            if let Some(description) = patch.description {
                role.description = clean_description(description)?;
            }
            if let Some(enabled) = patch.enabled {
                if role.protected && !enabled {
                    return Err(CoreError::invalid(
                        "status",
                        "a built-in role cannot be disabled",
                    ));
                }
                role.enabled = enabled;
            }
            if let Some(quota) = patch.quota {
                role.quota = quota;
            }
            self.ensure_role_free(Some(id), &role.name, &role.code)
                .await?;
            Ok(role)
        }
        .await;
        self.run_audited(
            actor,
            "role.update",
            Subject::target(&id.to_string()),
            checked,
            async |role, _op| {
                // A disabled role's permissions go on the next request.
                let _flush = self.auth_change();
                self.store()
                    .update_role(&role)
                    .await
                    .map_err(role_conflict)?;
                self.role_view(id).await
            },
            |r| serde_json::json!({"role_id": r.id}),
        )
        .await
    }

    /// Replace the permissions a role grants.
    pub async fn set_role_permissions(
        &self,
        actor: &Actor,
        id: i64,
        codes: Vec<String>,
    ) -> Result<RoleView, CoreError> {
        let checked = async {
            actor.require("system.role.update")?;
            let role = self.role_in_reach(actor, id).await?;
            if role.code == ADMIN_ROLE {
                return Err(CoreError::invalid(
                    "id",
                    "the Administrator role always holds every permission",
                ));
            }
            check_grant(actor, codes)
        }
        .await;
        self.run_audited(
            actor,
            "role.permissions",
            Subject::target(&id.to_string()),
            checked,
            async |codes, _op| {
                let _flush = self.auth_change();
                self.store().set_role_permissions(id, &codes).await?;
                self.role_view(id).await
            },
            |r| serde_json::json!({"role_id": r.id, "permissions": r.permissions}),
        )
        .await
    }

    /// Delete roles, all or none: each must exist and not be built in.
    pub async fn delete_roles(&self, actor: &Actor, ids: &[i64]) -> Result<u64, CoreError> {
        let target = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let checked = async {
            actor.require("system.role.delete")?;
            if ids.is_empty() {
                return Err(CoreError::invalid("id_list", "must name at least one role"));
            }
            for &id in ids {
                let role = self.role_in_reach(actor, id).await.map_err(|e| match e {
                    CoreError::NotFound { .. } => {
                        CoreError::invalid("id_list", format!("role {id} does not exist"))
                    }
                    other => other,
                })?;
                if role.protected {
                    return Err(CoreError::invalid(
                        "id_list",
                        format!("role {id} is protected"),
                    ));
                }
            }
            Ok(())
        }
        .await;
        self.run_audited(
            actor,
            "role.delete",
            Subject::target(&target),
            checked,
            async |(), _op| {
                let _flush = self.auth_change();
                let mut deleted = 0;
                for &id in ids {
                    if self.store().delete_role(id).await? {
                        deleted += 1;
                    }
                }
                Ok(deleted)
            },
            |n| serde_json::json!({"deleted": n}),
        )
        .await
    }

    pub async fn list_roles(
        &self,
        actor: &Actor,
        name: Option<&str>,
        page: Option<Page>,
    ) -> Result<(Vec<RoleView>, u64), CoreError> {
        actor.require("system.role.read")?;
        let (roles, total) = self.store().list_roles(name, page).await?;
        Ok((roles.into_iter().map(RoleView::from).collect(), total))
    }

    pub async fn get_role(&self, actor: &Actor, id: i64) -> Result<RoleView, CoreError> {
        actor.require("system.role.read")?;
        self.role_view(id).await
    }

    async fn role_view(&self, id: i64) -> Result<RoleView, CoreError> {
        self.store()
            .role_by_id(id)
            .await?
            .map(RoleView::from)
            .ok_or_else(|| CoreError::not_found("role", id.to_string()))
    }

    /// A role the caller may change: it exists, and grants nothing the
    /// caller lacks.
    async fn role_in_reach(&self, actor: &Actor, id: i64) -> Result<Role, CoreError> {
        let role = self
            .store()
            .role_by_id(id)
            .await?
            .ok_or_else(|| CoreError::not_found("role", id.to_string()))?;
        for code in &role.permissions {
            actor.require(code)?;
        }
        Ok(role)
    }

    async fn ensure_role_free(
        &self,
        except: Option<i64>,
        name: &str,
        code: &str,
    ) -> Result<(), CoreError> {
        let (all, _) = self.store().list_roles(None, None).await?;
        for role in all.iter().filter(|r| Some(r.id) != except) {
            if role.name == name {
                return Err(CoreError::invalid("name", "a role with this name exists"));
            }
            if role.code.eq_ignore_ascii_case(code) {
                return Err(CoreError::invalid("code", "a role with this code exists"));
            }
        }
        Ok(())
    }
}

/// Known codes the caller holds, sorted and deduplicated.
fn check_grant(actor: &Actor, codes: Vec<String>) -> Result<Vec<String>, CoreError> {
    for code in &codes {
        if !permissions::is_known(code) {
            return Err(CoreError::invalid(
                "perms",
                format!("unknown permission {code}"),
            ));
        }
        actor.require(code)?;
    }
    let mut codes = codes;
    codes.sort();
    codes.dedup();
    Ok(codes)
}

fn role_conflict(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(c) if c.column == "code" => {
            CoreError::invalid("code", "a role with this code exists")
        }
        StoreError::Conflict(_) => CoreError::invalid("name", "a role with this name exists"),
        other => other.into(),
    }
}

fn check_role_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(CoreError::invalid("name", "must be 1 to 64 characters"));
    }
    Ok(name.to_string())
}

fn check_role_code(code: &str) -> Result<String, CoreError> {
    let mut chars = code.chars();
    let valid = (1..=64).contains(&code.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return Err(CoreError::invalid(
            "code",
            "must be 1 to 64 letters, digits or _.- starting with a letter",
        ));
    }
    Ok(code.to_string())
}

fn clean_description(d: Option<String>) -> Result<Option<String>, CoreError> {
    let d = d.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
    if d.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err(CoreError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(d)
}
