//! The service layer: one method per use case. Every face (and the CLI)
//! calls these; none touches the store or an engine directly.

mod accounts;
mod addresses;
mod api_tokens;
mod audit;
mod auth;
pub mod auth_cache;
mod backups;
mod busy;
pub mod cloud_init;
mod cluster;
mod config_io;
mod console;
mod guest_agent;
mod host_passes;
mod host_update;
mod hosts;
mod journal;
pub mod jwt;
pub mod mac_addresses;
mod media;
mod monitor;
mod nat;
mod network;
mod nics;
pub mod passwords;
mod proxy;
mod quotas;
mod reconcile;
mod recovery;
mod reinstall;
mod roles;
mod sessions;
mod snapshots;
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
pub use backups::TaskStarted;
pub use cloud_init::GuestReporter;
pub use cluster::{ClusterStatus, CONTROLLER_STALE_SECS, LEASE_RETRY};
pub use config_io::{ConfigImportReport, ExportedConfig};
pub use console::{ConsoleAttachment, ConsoleLease, ConsoleState, ConsoleTicket, ConsoleTokenView};
pub use guest_agent::{AgentStatus, ExecInput, ExecView};
pub use host_update::HostPatch;
pub use hosts::{HostInput, HostStatusReport, HostView, StatusSource};
pub use journal::Actor;
pub use media::IsoView;
pub use monitor::{MonitorSample, MonitorSeries, ReportAck};
pub use nat::{NatInput, NatRuleView};
pub use nics::NicInput;
pub use proxy::{CreatedProxy, ProxyInput, ProxyView};
pub use quotas::QuotaReport;
pub use recovery::RecoveryReport;
pub use reinstall::ReinstallInput;
pub use roles::{RoleInput, RolePatch, RoleView};
pub use sessions::TokenPair;
pub use system::{EngineTypeView, Figures, Stats};
pub use vms::{
    CreatedVm, PowerOutcome, ScanReport, ScanSkip, UpdatedVm, VmCreateInput, VmPatch,
    VmStatusReport, VmUpdateInput, VmView,
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
    /// A console session (and an unused console token) ends after this
    /// long without traffic.
    pub console_idle: Duration,
    /// How often the monitor samples every running VM.
    pub monitor_every: Duration,
    /// How long status samples are kept.
    pub monitor_retention: Duration,
    /// How long one host may take in a monitor pass before its VMs are
    /// marked unknown.
    pub monitor_host_timeout: Duration,
    /// Snapshots a VM may hold.
    pub snapshots_per_vm: u32,
    /// Backups a VM may hold when its `bak_num` is 0.
    pub backups_per_vm: u32,
    /// Where guests send their status reports (see `ReportUrl`).
    pub report_url: ReportUrl,
    /// Ports of the controller itself (API, reverse proxy; 80 and 443
    /// always): no forward may take them.
    pub controller_ports: Vec<u16>,
    /// This controller's name among those sharing the database (logs,
    /// presence); the store's instance id adds a per-process suffix.
    pub controller_name: String,
    /// Where MACs for NICs without one are drawn from (random; tests
    /// inject a sequence).
    pub mac_source: mac_addresses::MacSource,
    /// How long a resolved credential is served from memory (see
    /// `auth_cache.rs`); zero turns the cache off. Changes made through
    /// this controller, and through others via `invalidate_auth_cache`,
    /// apply at once; a change made behind its back (another process on
    /// the same SQLite file) within this long.
    pub auth_cache_ttl: Duration,
}

/// The controller address guests post their status reports to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportUrl {
    /// No reporter is shipped to guests (the controller is not reachable
    /// from them, e.g. it listens on loopback only).
    Off,
    /// A fixed base URL, e.g. `http://203.0.113.5:1880`.
    Fixed(String),
    /// `http://<the VM's gateway>:<port>`: the controller listens on all
    /// addresses, so each guest reaches it on its own gateway.
    GatewayPort(u16),
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
            console_idle: Duration::from_secs(15 * 60),
            monitor_every: Duration::from_secs(60),
            monitor_retention: Duration::from_secs(7 * 24 * 3600),
            monitor_host_timeout: Duration::from_secs(30),
            snapshots_per_vm: 5,
            backups_per_vm: 3,
            report_url: ReportUrl::Off,
            controller_ports: vec![80, 443],
            controller_name: "ironidc".into(),
            mac_source: mac_addresses::MacSource::random(),
            auth_cache_ttl: Duration::from_secs(5),
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
    /// Operations that run on after their request returned (backups,
    /// restores, reinstalls): shutdown waits for them.
    background: tokio_util::task::TaskTracker,
    /// Token signing key, loaded from the store on first use.
    jwt: tokio::sync::OnceCell<jwt::JwtKeys>,
    /// A hash checked when a login names no account (equal timing).
    decoy_hash: tokio::sync::OnceCell<String>,
    /// VM key -> the long operation running on it (see `busy.rs`).
    busy: Mutex<HashMap<String, &'static str>>,
    /// VM id -> the last counters and when they were read, for rates.
    counters: Mutex<HashMap<i64, (std::time::Instant, crate::engine::VmCounters)>>,
    /// VM id -> the last guest report and when it arrived.
    guest_reports: Mutex<HashMap<i64, (i64, HwStatus)>>,
    /// Whether this controller holds the jobs lease (see `cluster.rs`).
    owns_jobs: std::sync::atomic::AtomicBool,
    /// Credential -> actor, for `auth_cache_ttl`.
    auth_cache: auth_cache::AuthCache,
    /// Makes engines for hosts run by an agent; set once by the binary.
    remote: std::sync::OnceLock<Arc<dyn crate::remote_host::RemoteEngines>>,
    /// host name -> (what it was made from, the engine of that remote host).
    remote_engines: Mutex<HashMap<String, hosts::CachedRemote>>,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        engines: EngineRegistry,
        secrets: SecretBox,
        network: Arc<dyn Network>,
        opts: ServiceOptions,
    ) -> Self {
        let auth_cache =
            auth_cache::AuthCache::new(opts.auth_cache_ttl, auth_cache::AUTH_CACHE_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                store,
                engines,
                secrets,
                network,
                opts,
                vm_locks: Mutex::new(HashMap::new()),
                host_status_cache: Mutex::new(HashMap::new()),
                background: tokio_util::task::TaskTracker::new(),
                jwt: tokio::sync::OnceCell::new(),
                decoy_hash: tokio::sync::OnceCell::new(),
                busy: Mutex::new(HashMap::new()),
                counters: Mutex::new(HashMap::new()),
                guest_reports: Mutex::new(HashMap::new()),
                owns_jobs: std::sync::atomic::AtomicBool::new(false),
                auth_cache,
                remote: std::sync::OnceLock::new(),
                remote_engines: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How engines for remote hosts (`config.server_addr`) are made.
    /// Without it, such hosts answer 503. Only the first call counts.
    pub fn set_remote_engines(&self, remote: Arc<dyn crate::remote_host::RemoteEngines>) {
        if self.inner.remote.set(remote).is_err() {
            tracing::warn!("remote engines were already set; keeping the first");
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

    /// Forget every credential resolved so far: the next request with any
    /// credential is checked against the store again. Called by every
    /// change to users, roles, role permissions, API tokens, sessions and
    /// the root token (before that change's call returns), and by whatever
    /// learns of such a change made by another controller.
    pub fn invalidate_auth_cache(&self) {
        self.inner.auth_cache.invalidate();
    }

    /// A guard that invalidates the auth cache when dropped: taken at the
    /// start of a change to credentials or grants, it flushes after the
    /// change on every way out, errors after a partial write included.
    pub(crate) fn auth_change(&self) -> AuthChange<'_> {
        AuthChange(self)
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

/// See `Services::auth_change`.
pub(crate) struct AuthChange<'a>(&'a Services);

impl Drop for AuthChange<'_> {
    fn drop(&mut self) {
        self.0.invalidate_auth_cache();
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
