//! Login, logout and token refresh (`/api/rbac/login|logout|refresh/`).
//! The refresh token also travels as an HttpOnly cookie scoped to the
//! refresh path, which is where PTPB's client sends it from.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use ironidc_core::service::TokenPair;
use serde::Deserialize;

use super::docs::{Done, Refusals, SignedIn};
use super::envelope::{PtpbError, PtpbResult, Reply};
use super::wire::SessionTokensReply;
use crate::kit::{Caller, Json};
use crate::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[serde(default)]
    account: String,
    #[serde(default)]
    password: String,
}

/// Sign in with account and password; returns access and refresh tokens
#[utoipa::path(
    post,
    path = "/api/rbac/login/",
    tag = "login",
    request_body = LoginBody,
    operation_id = "sessionLogin",
    responses((status = 200, description = "Signed in.", body = SignedIn), Refusals),
    security(())
)]
pub async fn login(
    State(s): State<AppState>,
    parts: axum::http::request::Parts,
    Json(body): Json<LoginBody>,
) -> PtpbResult {
    let ip = s.guard.trusted_proxies.client_ip(&parts);
    crate::auth::limited(&s.guard.logins, &format!("login:{ip}"), "login attempts")?;
    let pair = s.services.login(&body.account, &body.password, &ip).await?;
    token_reply(pair)
}

/// Sign out: end the session of the access token
#[utoipa::path(
    post,
    path = "/api/rbac/logout/",
    tag = "logout",
    operation_id = "sessionLogout",
    responses((status = 200, description = "Signed out.", body = Done), Refusals)
)]
pub async fn logout(State(s): State<AppState>, Caller(actor): Caller) -> PtpbResult {
    s.services.logout(&actor).await?;
    Ok(Reply::ok().header(
        SET_COOKIE,
        HeaderValue::from_static("refresh=; Path=/api/rbac/; HttpOnly; SameSite=Strict; Max-Age=0"),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh: Option<String>,
}

/// Exchange a refresh token (body or cookie) for a new pair
#[utoipa::path(
    post,
    path = "/api/rbac/refresh/",
    tag = "refresh",
    request_body = RefreshBody,
    operation_id = "sessionRefresh",
    responses((status = 200, description = "A new pair.", body = SignedIn), Refusals),
    security(())
)]
pub async fn refresh(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RefreshBody>,
) -> PtpbResult {
    let token = body
        .refresh
        .or_else(|| refresh_cookie(&headers))
        .ok_or_else(|| {
            ironidc_core::CoreError::invalid("refresh", "is required (cookie or body)")
        })?;
    token_reply(s.services.refresh(&token).await?)
}

fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    crate::credentials::cookie_value(headers, "refresh")
}

fn token_reply(pair: TokenPair) -> PtpbResult {
    let cookie = format!(
        "refresh={}; Path=/api/rbac/; HttpOnly; SameSite=Strict; Max-Age={}",
        pair.refresh, pair.refresh_expires_in
    );
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|_| PtpbError::internal("token is not a valid cookie value"))?;
    Ok(Reply::tokens(SessionTokensReply::from(pair))?.header(SET_COOKIE, cookie))
}
