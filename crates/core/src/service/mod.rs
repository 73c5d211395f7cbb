//! The service layer: one method per use case. Every face (and the CLI)
//! calls these; none touches the store or an engine directly.

mod accounts;
mod addresses;
mod api_tokens;
mod audit;
mod auth;
pub mod cloud_init;
mod config_io;
mod hosts;
mod journal;
pub mod jwt;
mod nat;
mod network;
pub mod passwords;
mod proxy;
mod quotas;
mod reconcile;
mod roles;
mod sessions;
mod system;
mod vms;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::Engine;
use crate::error::CoreError;
use crate::model::HwStatus;
use crate::network::Network;
use crate::secrets::SecretBox;
use crate::store::Store;

pub use accounts::{UserInput, UserPatch, UserView};
pub use addresses::{AddressInput, AddressView, PoolUsage};
pub use api_tokens::{ApiTokenView, CreatedApiToken, API_TOKEN_PREFIX};
pub use audit::{LoginLogView, OperationLogView};
pub use auth::{TokenBootstrap, TokenInfo};
pub use config_io::{ConfigImportReport, ExportedConfig};
pub use hosts::{HostInput, HostStatusReport, HostView, StatusSource};
pub use journal::Actor;
pub use nat::{NatInput, NatRuleView};
pub use proxy::{CreatedProxy, ProxyInput, ProxyView};
pub use quotas::QuotaReport;
pub use roles::{RoleInput, RolePatch, RoleView};
pub use sessions::TokenPair;
pub use system::{EngineTypeView, Stats};
pub use vms::{
    CreatedVm, PowerOutcome, ScanReport, ScanSkip, UpdatedVm, VmCreateInput, VmStatusReport,
    VmUpdateInput, VmView,
};

/// Tunables of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Root of the data directory; default host paths live below it.
    pub data_dir: PathBuf,
    /// How long `stop` waits for the guest after the ACPI request.
    pub stop_timeout: Duration,
    /// How long a host status stays fresh in the cache.
    pub host_status_ttl: Duration,
    /// Minimum spacing of stored VM status samples.
    pub status_sample_every: Duration,
    /// Lifetime of a login's access token.
    pub access_ttl: Duration,
    /// Lifetime of a login's refresh token (renewed by each refresh).
    pub refresh_ttl: Duration,
    /// Failed logins in a row that lock an account.
    pub lockout_after: u32,
    /// How long a locked account refuses logins.
    pub lockout_for: Duration,
}

impl ServiceOptions {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            stop_timeout: Duration::from_secs(60),
            host_status_ttl: Duration::from_secs(30),
            status_sample_every: Duration::from_secs(10),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            lockout_after: 5,
            lockout_for: Duration::from_secs(15 * 60),
        }
    }
}

/// Engines by key. OpenIDCS's engine names are accepted as aliases.
#[derive(Clone, Default)]
pub struct EngineRegistry {
    engines: HashMap<&'static str, Arc<dyn Engine>>,
}

impl EngineRegistry {
    pub fn with(mut self, key: &'static str, engine: Arc<dyn Engine>) -> Self {
        self.engines.insert(key, engine);
        self
    }
    pub fn get(&self, key: &str) -> Option<&Arc<dyn Engine>> {
        self.engines.get(key)
    }
    pub fn keys(&self) -> impl Iterator<Item = &&'static str> {
        self.engines.keys()
    }
}

/// The service layer. Cheap to clone; every face holds one.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    engines: EngineRegistry,
    secrets: SecretBox,
    network: Arc<dyn Network>,
    opts: ServiceOptions,
    /// One lock per VM so power operations on the same VM do not interleave.
    vm_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// host name -> (unix time, status)
    host_status_cache: Mutex<HashMap<String, (i64, HwStatus)>>,
    /// Token signing key, loaded from the store on first use.
    jwt: tokio::sync::OnceCell<jwt::JwtKeys>,
    /// A hash checked when a login names no account (equal timing).
    decoy_hash: tokio::sync::OnceCell<String>,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        engines: EngineRegistry,
        secrets: SecretBox,
        network: Arc<dyn Network>,
        opts: ServiceOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                engines,
                secrets,
                network,
                opts,
                vm_locks: Mutex::new(HashMap::new()),
                host_status_cache: Mutex::new(HashMap::new()),
                jwt: tokio::sync::OnceCell::new(),
                decoy_hash: tokio::sync::OnceCell::new(),
            }),
        }
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    async fn jwt(&self) -> Result<&jwt::JwtKeys, CoreError> {
        self.inner
            .jwt
            .get_or_try_init(|| jwt::JwtKeys::load_or_create(self.store(), &self.inner.secrets))
            .await
    }

    fn vm_lock(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .inner
            .vm_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(uuid.to_string()).or_default().clone()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
