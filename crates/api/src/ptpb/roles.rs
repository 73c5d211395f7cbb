//! `/api/rbac/role/*`, `/api/rbac/perm/` and `/api/rbac/routes/`.

use axum::extract::State;
use ironidc_core::accounts::Quota;

use super::wire::QuotaBody;
use ironidc_core::permissions;
use ironidc_core::service::{RoleInput, RolePatch};
use ironidc_core::CoreError;
use serde::Deserialize;

use super::docs::{Deleted, DetailOf, PageOf, Refusals};
use super::envelope::{PtpbError, PtpbResult, Reply};
use super::paging::{page, IdList};
use super::wire::{MenuRouteReply, PermissionReply, RolePermsReply, RoleReply};
use crate::kit::{Caller, Json, Query};
use crate::AppState;

/// Permission ids as codes; an unknown id names `perms`.
fn codes_of(ids: &[i64]) -> Result<Vec<String>, PtpbError> {
    ids.iter()
        .map(|&id| {
            permissions::by_id(id)
                .map(|p| p.code.to_string())
                .ok_or_else(|| {
                    CoreError::invalid("perms", format!("unknown permission {id}")).into()
                })
        })
        .collect()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleAddBody {
    name: String,
    code: String,
    description: Option<String>,
    #[serde(default)]
    perms: Vec<i64>,
    quota: Option<QuotaBody>,
}

/// Create a role
#[utoipa::path(
    post,
    path = "/api/rbac/role/add/",
    tag = "role",
    request_body = RoleAddBody,
    operation_id = "roleAdd",
    responses((status = 200, description = "The new role.", body = DetailOf<RoleReply>), Refusals)
)]
pub async fn add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<RoleAddBody>,
) -> PtpbResult {
    let role = s
        .services
        .create_role(
            &actor,
            RoleInput {
                name: b.name,
                code: b.code,
                description: b.description,
                permissions: codes_of(&b.perms)?,
                quota: b.quota.map(Quota::from),
            },
        )
        .await?;
    Reply::detail(RoleReply::from(role))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleEditBody {
    id: i64,
    name: Option<String>,
    code: Option<String>,
    description: Option<String>,
    status: Option<bool>,
    quota: Option<QuotaBody>,
}

/// Change a role
#[utoipa::path(
    post,
    path = "/api/rbac/role/edit/",
    tag = "role",
    request_body = RoleEditBody,
    operation_id = "roleEdit",
    responses((status = 200, description = "The role.", body = DetailOf<RoleReply>), Refusals)
)]
pub async fn edit(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<RoleEditBody>,
) -> PtpbResult {
    let role = s
        .services
        .update_role(
            &actor,
            b.id,
            RolePatch {
                name: b.name,
                code: b.code,
                description: b.description.map(Some),
                enabled: b.status,
                quota: b.quota.map(Quota::from),
            },
        )
        .await?;
    Reply::detail(RoleReply::from(role))
}

/// Delete roles
#[utoipa::path(
    post,
    path = "/api/rbac/role/del/",
    tag = "role",
    request_body = IdList,
    operation_id = "roleDelete",
    responses((status = 200, description = "How many were deleted.", body = Deleted), Refusals)
)]
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<IdList>,
) -> PtpbResult {
    let deleted = s.services.delete_roles(&actor, &b.id_list).await?;
    Ok(Reply::counted(deleted))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    page_size: Option<u32>,
    page: Option<u32>,
    #[serde(default)]
    all: bool,
    name: Option<String>,
}

/// List roles
#[utoipa::path(
    get,
    path = "/api/rbac/role/get/",
    tag = "role",
    params(ListQuery),
    operation_id = "roleList",
    responses((status = 200, description = "A page of roles (all of them with `all`).", body = PageOf<RoleReply>), Refusals)
)]
pub async fn list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> PtpbResult {
    let page = if q.all {
        None
    } else {
        Some(page(q.page_size, q.page)?)
    };
    let (roles, total) = s
        .services
        .list_roles(&actor, q.name.as_deref().filter(|n| !n.is_empty()), page)
        .await?;
    Reply::page(roles.into_iter().map(RoleReply::from).collect(), total)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdQuery {
    id: i64,
}

/// A role's permissions
#[utoipa::path(
    get,
    path = "/api/rbac/role/get/permission/",
    tag = "role",
    params(IdQuery),
    operation_id = "rolePermissionsOf",
    responses((status = 200, description = "The role's permission ids.", body = DetailOf<RolePermsReply>), Refusals)
)]
pub async fn permissions_of(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<IdQuery>,
) -> PtpbResult {
    let role = s.services.get_role(&actor, q.id).await?;
    Reply::detail(RolePermsReply::from(role))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct GrantBody {
    id: i64,
    perms: Vec<i64>,
}

/// Set a role's permissions
#[utoipa::path(
    post,
    path = "/api/rbac/role/edit/permission/",
    tag = "role",
    request_body = GrantBody,
    operation_id = "roleGrant",
    responses((status = 200, description = "The role's permission ids now.", body = DetailOf<RolePermsReply>), Refusals)
)]
pub async fn grant(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<GrantBody>,
) -> PtpbResult {
    let role = s
        .services
        .set_role_permissions(&actor, b.id, codes_of(&b.perms)?)
        .await?;
    Reply::detail(RolePermsReply::from(role))
}

/// The catalogue; reading it takes `system.role.read`, like roles.
#[utoipa::path(
    get,
    path = "/api/rbac/perm/",
    tag = "perm",
    operation_id = "roleCatalogue",
    responses((status = 200, description = "Every permission, in id order.", body = DetailOf<Vec<PermissionReply>>), Refusals)
)]
pub async fn catalogue(Caller(actor): Caller) -> PtpbResult {
    actor.require("system.role.read")?;
    Reply::detail(
        permissions::all()
            .map(PermissionReply::from)
            .collect::<Vec<_>>(),
    )
}

/// The menu the caller may see.
#[utoipa::path(
    get,
    path = "/api/rbac/routes/",
    tag = "routes",
    operation_id = "roleRoutes",
    responses((status = 200, description = "The menu tree.", body = DetailOf<Vec<MenuRouteReply>>), Refusals)
)]
pub async fn routes(Caller(actor): Caller) -> PtpbResult {
    let menu: Vec<MenuRouteReply> = permissions::menu_for(|code| actor.may(code))
        .into_iter()
        .map(MenuRouteReply::from)
        .collect();
    Reply::detail(menu)
}
