//! Roles, the permission catalogue and the menu.

use ironidc_core::permissions::{MenuRoute, Permission};
use ironidc_core::service::RoleView;
use serde::Serialize;
use utoipa::ToSchema;

use super::date;
use super::quotas::QuotaReply;

/// A role in PTPB's shape, with our `quota`.
#[derive(Serialize, ToSchema)]
pub struct RoleReply {
    id: i64,
    name: String,
    code: String,
    description: Option<String>,
    /// Enabled.
    status: bool,
    /// A built-in role, which may not be deleted.
    protected: bool,
    /// Permission ids (see `/api/rbac/perm/`).
    perms: Vec<i64>,
    /// The limits the role grants.
    quota: QuotaReply,
    /// ISO 8601 (UTC).
    #[schema(format = DateTime)]
    create_date: Option<String>,
    /// ISO 8601 (UTC).
    #[schema(format = DateTime)]
    update_date: Option<String>,
}

impl From<RoleView> for RoleReply {
    fn from(r: RoleView) -> Self {
        let RoleView {
            id,
            name,
            code,
            description,
            status,
            protected,
            // PTPB names permissions by id; `perms` carries them.
            permissions: _,
            perms,
            quota,
            created_at,
            updated_at,
        } = r;
        Self {
            id,
            name,
            code,
            description,
            status,
            protected,
            perms,
            quota: quota.into(),
            create_date: date(created_at),
            update_date: date(updated_at),
        }
    }
}

/// A role's permissions.
#[derive(Serialize, ToSchema)]
pub struct RolePermsReply {
    /// The role's id.
    id: i64,
    /// Permission ids.
    perms: Vec<i64>,
}

impl From<RoleView> for RolePermsReply {
    fn from(r: RoleView) -> Self {
        Self {
            id: r.id,
            perms: r.perms,
        }
    }
}

/// One grantable permission of the catalogue.
#[derive(Serialize, ToSchema)]
pub struct PermissionReply {
    /// What roles' `perms` hold.
    id: i64,
    /// The first part of `code` (`system`, `host`, `vm`, `audit`).
    scope: String,
    /// The second part of `code`.
    object: String,
    /// The third part of `code`.
    action: String,
    /// `scope.object.action`.
    code: String,
    /// What it allows, in words.
    name: String,
}

impl From<Permission> for PermissionReply {
    fn from(p: Permission) -> Self {
        let Permission {
            id,
            scope,
            object,
            action,
            code,
            name,
        } = p;
        Self {
            id,
            scope: scope.into(),
            object: object.into(),
            action: action.into(),
            code: code.into(),
            name: name.into(),
        }
    }
}

/// One entry of the menu, in the shape of PTPB's front-end router.
#[derive(Serialize, ToSchema)]
pub struct MenuRouteReply {
    path: String,
    /// The view to load; empty for a group.
    component: String,
    meta: MenuMetaReply,
    // The menu is a tree; the schema refers to itself here.
    #[schema(no_recursion)]
    children: Vec<MenuRouteReply>,
}

/// How a menu entry shows.
#[derive(Serialize, ToSchema)]
pub struct MenuMetaReply {
    title: String,
    icon: String,
    /// The permission that shows the entry; null: shown to everyone.
    permission: Option<String>,
}

impl From<MenuRoute> for MenuRouteReply {
    fn from(r: MenuRoute) -> Self {
        let MenuRoute {
            path,
            component,
            title,
            icon,
            permission,
            children,
        } = r;
        Self {
            path: path.into(),
            component: component.into(),
            meta: MenuMetaReply {
                title: title.into(),
                icon: icon.into(),
                permission: permission.map(Into::into),
            },
            children: children.into_iter().map(Self::from).collect(),
        }
    }
}
