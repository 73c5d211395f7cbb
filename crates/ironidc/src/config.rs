//! Configuration of `ironidc serve`: file (`ironidc.toml`) < environment
//! (`IRONIDC_…`) < flags. Clap resolves environment and flags; the file
//! fills what neither gave; defaults serve a newcomer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What `ironidc.toml` may contain; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub controller_name: Option<String>,
    pub token: Option<String>,
    pub stop_timeout_secs: Option<u64>,
    pub reconcile_interval_secs: Option<u64>,
    pub proxy_http: Option<String>,
    pub proxy_https: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_email: Option<String>,
    pub acme_ca_file: Option<PathBuf>,
    pub access_token_secs: Option<u64>,
    pub refresh_token_secs: Option<u64>,
    pub lockout_after: Option<u32>,
    pub lockout_minutes: Option<u64>,
    pub auth_cache_secs: Option<u64>,
    pub rate_limit_ip: Option<u32>,
    pub rate_limit_user: Option<u32>,
    pub rate_limit_login: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub metrics_allow: Option<Vec<String>>,
    pub admin_password: Option<String>,
    pub public_url: Option<String>,
    pub guest_report_url: Option<String>,
    pub monitor_secs: Option<u64>,
    pub monitor_retention_days: Option<u64>,
    pub snapshots_per_vm: Option<u32>,
    pub backups_per_vm: Option<u32>,
    pub console_idle_minutes: Option<u64>,
    pub console_check_secs: Option<u64>,
    pub conn_per_address: Option<usize>,
    pub conn_total: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
}

impl FileConfig {
    /// Read `path` if given (it must exist), else `./ironidc.toml` if present.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("ironidc.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

/// The resolved settings of `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// This controller's name among those sharing a PostgreSQL database.
    pub controller_name: String,
    pub token: Option<String>,
    pub stop_timeout_secs: u64,
    pub reconcile_interval_secs: u64,
    /// Reverse proxy listeners; `None` = off.
    pub proxy_http: Option<SocketAddr>,
    pub proxy_https: Option<SocketAddr>,
    pub acme_directory: String,
    pub acme_email: Option<String>,
    pub acme_ca_file: Option<PathBuf>,
    pub access: crate::access::AccessConfig,
    pub operations: crate::operations::OperationsConfig,
    /// Caps and timeouts of the API's and the proxy's connections.
    pub connections: ironidc_net::http_conn::ConnectionLimits,
}

pub const DEFAULT_PROXY_HTTP: &str = "0.0.0.0:80";
pub const DEFAULT_PROXY_HTTPS: &str = "0.0.0.0:443";
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A listener setting: an address, or `off` to disable it.
pub fn listener(field: &str, value: &str) -> Result<Option<SocketAddr>, String> {
    match value.trim() {
        "off" | "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{field}: {v:?} is neither an address like 0.0.0.0:80 nor off")),
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:1880";

/// The default controller name: the machine's host name and the API port,
/// which tell apart the controllers of a cluster (two on one machine
/// listen on different ports).
pub fn default_controller_name(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ironidc".into());
    format!("{host}:{}", listen.port())
}

/// The embedded default database: a SQLite file in the data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("ironidc.db").display()
    )
}
