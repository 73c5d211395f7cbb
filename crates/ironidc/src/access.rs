//! Settings of accounts and abuse limits: token lifetimes, login lockout,
//! rate limits, trusted proxies and the first administrator password.
//! Like every setting: file < environment < flag.

use std::time::Duration;

use ironidc_api::ApiOptions;
use ironidc_core::ServiceOptions;

use crate::config::FileConfig;

#[derive(clap::Args, Debug, Default)]
pub struct AccessArgs {
    /// Seconds an access token lives [default: 900, 15 minutes].
    #[arg(long, global = true, env = "IRONIDC_ACCESS_TOKEN_SECS")]
    access_token_secs: Option<u64>,
    /// Seconds a refresh token lives [default: 604800, 7 days].
    #[arg(long, global = true, env = "IRONIDC_REFRESH_TOKEN_SECS")]
    refresh_token_secs: Option<u64>,
    /// Failed logins in a row that lock an account [default: 5].
    #[arg(long, global = true, env = "IRONIDC_LOCKOUT_AFTER")]
    lockout_after: Option<u32>,
    /// Minutes a locked account refuses logins [default: 15].
    #[arg(long, global = true, env = "IRONIDC_LOCKOUT_MINUTES")]
    lockout_minutes: Option<u64>,
    /// Seconds a resolved credential is served from memory, 0 = off
    /// [default: 5]. Changes through this controller apply at once.
    #[arg(long, global = true, env = "IRONIDC_AUTH_CACHE_SECS")]
    auth_cache_secs: Option<u64>,
    /// Requests per minute per client address, 0 = off [default: 600].
    #[arg(long, global = true, env = "IRONIDC_RATE_LIMIT_IP")]
    rate_limit_ip: Option<u32>,
    /// Requests per minute per user token, 0 = off [default: 100].
    #[arg(long, global = true, env = "IRONIDC_RATE_LIMIT_USER")]
    rate_limit_user: Option<u32>,
    /// Login attempts per minute per client address, 0 = off [default: 20].
    #[arg(long, global = true, env = "IRONIDC_RATE_LIMIT_LOGIN")]
    rate_limit_login: Option<u32>,
    /// Proxies whose X-Forwarded-For is believed (addresses or networks,
    /// comma-separated) [default: none].
    #[arg(
        long,
        global = true,
        env = "IRONIDC_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Option<Vec<String>>,
    /// Addresses that may read `/metrics` without the root token (a
    /// Prometheus server; addresses or networks, comma-separated)
    /// [default: none].
    #[arg(
        long,
        global = true,
        env = "IRONIDC_METRICS_ALLOW",
        value_delimiter = ','
    )]
    metrics_allow: Option<Vec<String>>,
    /// Password of the built-in `administrator`, used on first start only
    /// (otherwise one is generated and shown once).
    #[arg(
        long,
        global = true,
        env = "IRONIDC_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    admin_password: Option<String>,
}

/// The resolved access settings.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub api: ApiOptions,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub lockout_after: u32,
    pub lockout_for: Duration,
    pub auth_cache_ttl: Duration,
    pub admin_password: Option<String>,
}

impl AccessArgs {
    pub fn resolve(self, file: &FileConfig) -> AccessConfig {
        let defaults = ApiOptions::default();
        AccessConfig {
            api: ApiOptions {
                trusted_proxies: self
                    .trusted_proxies
                    .or_else(|| file.trusted_proxies.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| !p.trim().is_empty())
                    .collect(),
                ip_per_minute: self
                    .rate_limit_ip
                    .or(file.rate_limit_ip)
                    .unwrap_or(defaults.ip_per_minute),
                user_per_minute: self
                    .rate_limit_user
                    .or(file.rate_limit_user)
                    .unwrap_or(defaults.user_per_minute),
                login_per_minute: self
                    .rate_limit_login
                    .or(file.rate_limit_login)
                    .unwrap_or(defaults.login_per_minute),
                metrics_allow: self
                    .metrics_allow
                    .or_else(|| file.metrics_allow.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| !p.trim().is_empty())
                    .collect(),
                ..defaults.clone()
            },
            access_ttl: Duration::from_secs(
                self.access_token_secs
                    .or(file.access_token_secs)
                    .unwrap_or(15 * 60)
                    .max(1),
            ),
            refresh_ttl: Duration::from_secs(
                self.refresh_token_secs
                    .or(file.refresh_token_secs)
                    .unwrap_or(7 * 86_400)
                    .max(1),
            ),
            lockout_after: self.lockout_after.or(file.lockout_after).unwrap_or(5),
            lockout_for: Duration::from_secs(
                60 * self.lockout_minutes.or(file.lockout_minutes).unwrap_or(15),
            ),
            auth_cache_ttl: Duration::from_secs(
                self.auth_cache_secs.or(file.auth_cache_secs).unwrap_or(5),
            ),
            admin_password: self
                .admin_password
                .or_else(|| file.admin_password.clone())
                .filter(|p| !p.is_empty()),
        }
    }
}

impl AccessConfig {
    pub fn apply(&self, opts: &mut ServiceOptions) {
        opts.access_ttl = self.access_ttl;
        opts.refresh_ttl = self.refresh_ttl;
        opts.lockout_after = self.lockout_after;
        opts.lockout_for = self.lockout_for;
        opts.auth_cache_ttl = self.auth_cache_ttl;
    }
}
