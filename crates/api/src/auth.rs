//! Authentication shared by every face: read the credential, ask the
//! service layer who it is, apply the per-user rate limit, and name the
//! user in the access log. Each face wraps this in its own extractor and
//! renders the error in its own format.

use std::sync::Arc;

use axum::http::request::Parts;
use ironidc_core::{Actor, CoreError};

use crate::access_log::RequestUser;
use crate::client_ip::{AddressList, TrustedProxies};
use crate::credentials::{missing_message, read_any, CredentialReader};
use crate::face::FaceName;
use crate::rate_limit::{retry_after_secs, RateLimiter};
use crate::AppState;

/// Abuse limits and who may speak for a client's address.
pub struct Guard {
    pub trusted_proxies: TrustedProxies,
    /// Every request, keyed by client address.
    pub per_ip: RateLimiter,
    /// Every request of a user's token (the root token is exempt).
    pub per_user: RateLimiter,
    /// Login attempts, keyed by client address.
    pub logins: RateLimiter,
    /// Addresses that may read `/metrics` without the root token.
    pub metrics_allow: AddressList,
}

/// Settings of `Guard`; 0 turns a limit off.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub trusted_proxies: Vec<String>,
    pub ip_per_minute: u32,
    pub user_per_minute: u32,
    pub login_per_minute: u32,
    /// The controller's URL as browsers reach it (console links); `None`:
    /// from the request's Host header.
    pub public_url: Option<String>,
    /// How often an open console session re-checks its token.
    pub console_check_every: std::time::Duration,
    /// Addresses or networks that may read `/metrics` without the root
    /// token (a Prometheus server).
    pub metrics_allow: Vec<String>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            ip_per_minute: 600,
            // The VoidVM document's limit for customer tokens.
            user_per_minute: 100,
            login_per_minute: 20,
            public_url: None,
            console_check_every: std::time::Duration::from_secs(10),
            metrics_allow: Vec::new(),
        }
    }
}

impl Guard {
    pub fn new(opts: &ApiOptions) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            trusted_proxies: TrustedProxies::parse(&opts.trusted_proxies)?,
            per_ip: RateLimiter::new(opts.ip_per_minute),
            per_user: RateLimiter::new(opts.user_per_minute),
            logins: RateLimiter::new(opts.login_per_minute),
            metrics_allow: AddressList::parse("metrics_allow", &opts.metrics_allow)?,
        }))
    }
}

/// `TooMany` for a limiter's refusal.
pub(crate) fn limited(limiter: &RateLimiter, key: &str, what: &str) -> Result<(), CoreError> {
    limiter.check(key).map_err(|wait| {
        let retry_after = retry_after_secs(wait);
        CoreError::TooMany {
            message: format!(
                "rate limit of {} {what} per minute exceeded; retry in {retry_after} s",
                limiter.per_minute()
            ),
            retry_after,
        }
    })
}

/// The caller of a request through face `face`, from the first credential
/// one of `readers` finds.
pub(crate) async fn authenticate_with(
    parts: &Parts,
    state: &AppState,
    face: FaceName,
    readers: &[CredentialReader],
) -> Result<Actor, CoreError> {
    let ip = state.guard.trusted_proxies.client_ip(parts);
    let credential = read_any(readers, parts)
        .ok_or_else(|| CoreError::unauthorized(missing_message(readers)))?;
    let actor = state
        .services
        .authenticate(&credential, &ip, face.as_str())
        .await?;
    if let Some(id) = actor.user_id {
        limited(&state.guard.per_user, &format!("user:{id}"), "requests")?;
    }
    if let Some(user) = parts.extensions.get::<RequestUser>() {
        let _ = user.0.set(actor.name.clone());
    }
    Ok(actor)
}
