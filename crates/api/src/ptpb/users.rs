//! `/api/rbac/user/*`: users, their roles and passwords.

use axum::extract::State;
use ironidc_core::accounts::{Quota, UserFilter};

use super::wire::QuotaBody;
use ironidc_core::service::{UserInput, UserPatch};
use serde::{Deserialize, Deserializer};

use super::docs::{Deleted, DetailOf, Done, PageOf, Refusals};
use super::envelope::{PtpbResult, Reply};
use super::paging::{page, IdList};
use super::wire::{UserDetailReply, UserReply};
use crate::kit::{Caller, Json, Query};
use crate::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserAddBody {
    account: String,
    password: String,
    name: String,
    email: Option<String>,
    #[serde(default = "yes")]
    status: bool,
    phone_number: Option<String>,
    remark: Option<String>,
    userid: Option<String>,
    roles: Option<Vec<i64>>,
    quota: Option<QuotaBody>,
}

fn yes() -> bool {
    true
}

/// Create a user
#[utoipa::path(
    post,
    path = "/api/rbac/user/add/",
    tag = "user",
    request_body = UserAddBody,
    operation_id = "userAdd",
    responses((status = 200, description = "The new user.", body = DetailOf<UserReply>), Refusals)
)]
pub async fn add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<UserAddBody>,
) -> PtpbResult {
    let user = s
        .services
        .create_user(
            &actor,
            UserInput {
                external_id: b.userid,
                account: b.account,
                password: b.password,
                name: b.name,
                email: b.email,
                phone: b.phone_number,
                enabled: b.status,
                remark: b.remark,
                roles: b.roles,
                quota: b.quota.map(Quota::from),
            },
        )
        .await?;
    Reply::detail(UserReply::from(user))
}

/// A field that may be absent (keep), `null` (clear) or a value.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserEditBody {
    id: i64,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    remark: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    userid: Option<Option<String>>,
    status: Option<bool>,
    quota: Option<QuotaBody>,
}

/// Change a user
#[utoipa::path(
    post,
    path = "/api/rbac/user/edit/",
    tag = "user",
    request_body = UserEditBody,
    operation_id = "userEdit",
    responses((status = 200, description = "The user.", body = DetailOf<UserReply>), Refusals)
)]
pub async fn edit(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<UserEditBody>,
) -> PtpbResult {
    let user = s
        .services
        .update_user(
            &actor,
            b.id,
            UserPatch {
                external_id: b.userid,
                name: b.name,
                email: b.email,
                phone: b.phone_number,
                remark: b.remark,
                enabled: b.status,
                quota: b.quota.map(Quota::from),
            },
        )
        .await?;
    Reply::detail(UserReply::from(user))
}

/// Delete users
#[utoipa::path(
    post,
    path = "/api/rbac/user/del/",
    tag = "user",
    request_body = IdList,
    operation_id = "userDelete",
    responses((status = 200, description = "How many were deleted.", body = Deleted), Refusals)
)]
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<IdList>,
) -> PtpbResult {
    let deleted = s.services.delete_users(&actor, &b.id_list).await?;
    Ok(Reply::counted(deleted))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    page_size: Option<u32>,
    page: Option<u32>,
    name: Option<String>,
    account: Option<String>,
    status: Option<bool>,
}

/// List users, paged and filtered
#[utoipa::path(
    get,
    path = "/api/rbac/user/get/",
    tag = "user",
    params(ListQuery),
    operation_id = "userList",
    responses((status = 200, description = "A page of users.", body = PageOf<UserReply>), Refusals)
)]
pub async fn list(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> PtpbResult {
    let filter = UserFilter {
        name: q.name,
        account: q.account,
        enabled: q.status,
        page: page(q.page_size, q.page)?,
    };
    let (users, total) = s.services.list_users(&actor, &filter).await?;
    Reply::page(users.into_iter().map(UserReply::from).collect(), total)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetBody {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
}

/// Change one's own password
#[utoipa::path(
    post,
    path = "/api/rbac/user/reset_password/",
    tag = "user",
    request_body = ResetBody,
    operation_id = "userResetPassword",
    responses((status = 200, description = "Done.", body = Done), Refusals)
)]
pub async fn reset_password(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<ResetBody>,
) -> PtpbResult {
    s.services
        .change_own_password(&actor, &b.old_password, &b.new_password)
        .await?;
    Ok(Reply::ok())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetPasswordBody {
    id: i64,
    password: String,
}

/// Ours: an operator sets another user's password.
#[utoipa::path(
    post,
    path = "/api/rbac/user/set_password/",
    tag = "user",
    request_body = SetPasswordBody,
    operation_id = "userSetPassword",
    responses((status = 200, description = "Done.", body = Done), Refusals)
)]
pub async fn set_password(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<SetPasswordBody>,
) -> PtpbResult {
    s.services
        .set_user_password(&actor, b.id, &b.password)
        .await?;
    Ok(Reply::ok())
}

/// The signed-in user
#[utoipa::path(
    get,
    path = "/api/rbac/user/detail/",
    tag = "user",
    operation_id = "userDetail",
    responses((status = 200, description = "The signed-in user.", body = DetailOf<UserDetailReply>), Refusals)
)]
pub async fn detail(State(s): State<AppState>, Caller(actor): Caller) -> PtpbResult {
    let user = s.services.own_user(&actor).await?;
    Reply::detail(UserDetailReply::new(
        user,
        actor.source_ip.clone(),
        actor.permissions(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RolesBody {
    id: i64,
    roles: Vec<i64>,
}

/// Set a user's roles
#[utoipa::path(
    post,
    path = "/api/rbac/user/role/",
    tag = "user",
    request_body = RolesBody,
    operation_id = "userSetRoles",
    responses((status = 200, description = "The user.", body = DetailOf<UserReply>), Refusals)
)]
pub async fn set_roles(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Json(b): Json<RolesBody>,
) -> PtpbResult {
    let user = s.services.set_user_roles(&actor, b.id, &b.roles).await?;
    Reply::detail(UserReply::from(user))
}
