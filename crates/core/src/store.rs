//! The store port: persistence the service layer needs. `ironidc-store`
//! implements it over SQLite and PostgreSQL.

use async_trait::async_trait;

pub use crate::account_store::AccountStore;
use crate::accounts::LogFilter;
pub use crate::cluster_store::{
    ClusterStore, Invalidation, InvalidationHandler, Lease, LockoutRule, LoginFailures, NewBusyMark,
};
use crate::engine::PowerState;
use crate::model::{
    Host, HostConfig, HwStatus, LogEntry, NatRule, ProxyBinding, Task, TaskStatus, Vm, VmAddress,
    VmConfig, VmStatusSample,
};
pub use crate::ops_store::{ConsoleToken, NewConsoleToken, OpsStore, VmFilter};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("{0}")]
    Conflict(Collision),
    #[error("database: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

/// What a unique constraint refused: the table and column (of the
/// schema's unique indexes), and the value when the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub table: &'static str,
    pub column: &'static str,
    pub value: Option<String>,
}

impl Collision {
    pub fn new(table: &'static str, column: &'static str) -> Self {
        Self {
            table,
            column,
            value: None,
        }
    }

    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }
}

impl Collision {
    /// The word the APIs use for the column.
    fn field(&self) -> &'static str {
        match (self.table, self.column) {
            ("hosts", "name") => "host",
            ("vms", "uuid") => "vm_uuid",
            ("vm_nics", "mac") => "mac_addr",
            (_, column) => column,
        }
    }
}

/// `host h1`, `mac_addr 52:54:…`; without the value, the field alone.
impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} {v}", self.field()),
            None => f.write_str(self.field()),
        }
    }
}

pub struct NewHost<'a> {
    pub name: &'a str,
    pub engine: &'a str,
    pub enabled: bool,
    pub config: &'a HostConfig,
}

pub struct NewVm<'a> {
    pub host_id: i64,
    pub uuid: &'a str,
    pub config: &'a VmConfig,
    pub state: PowerState,
    /// The guest password, sealed by `SecretBox`.
    pub os_pass_sealed: Option<&'a str>,
    /// The user the VM belongs to; `None` for the operator's own VMs.
    pub owner_id: Option<i64>,
}

pub struct NewLog<'a> {
    pub actor: &'a str,
    /// The user behind `actor`, when it is a user (not the root token).
    pub user_id: Option<i64>,
    pub source_ip: &'a str,
    pub face: &'a str,
    pub action: &'a str,
    pub hs_name: Option<&'a str>,
    pub target: Option<&'a str>,
    pub ok: bool,
    pub message: &'a str,
}

/// Which rows a network list returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Host(i64),
    Vm(i64),
}

/// A new row for `vm_addresses`, `nat_rules` or `proxies`: the domain type
/// with `id` and `created_at` ignored.
pub type NewAddress = VmAddress;
pub type NewNatRule = NatRule;
pub type NewProxy = ProxyBinding;

/// A host with the number of its VMs, as lists show it.
#[derive(Debug, Clone)]
pub struct HostSummary {
    pub host: Host,
    pub vm_count: i64,
}

#[async_trait]
pub trait Store: AccountStore + OpsStore + ClusterStore + Send + Sync {
    // hosts
    async fn insert_host(&self, new: NewHost<'_>) -> Result<Host, StoreError>;
    async fn host_by_name(&self, name: &str) -> Result<Option<Host>, StoreError>;
    async fn list_hosts(&self) -> Result<Vec<HostSummary>, StoreError>;
    async fn update_host(
        &self,
        id: i64,
        enabled: bool,
        config: &HostConfig,
    ) -> Result<(), StoreError>;
    async fn delete_host(&self, id: i64) -> Result<(), StoreError>;

    // vms
    async fn insert_vm(&self, new: NewVm<'_>) -> Result<Vm, StoreError>;
    async fn vm_by_uuid(&self, host_id: i64, uuid: &str) -> Result<Option<Vm>, StoreError>;
    async fn list_vms(&self, host_id: i64) -> Result<Vec<Vm>, StoreError>;
    async fn update_vm_config(
        &self,
        id: i64,
        config: &VmConfig,
        pending_restart: bool,
    ) -> Result<(), StoreError>;
    async fn set_vm_password(&self, id: i64, os_pass_sealed: &str) -> Result<(), StoreError>;
    async fn set_vm_state(
        &self,
        id: i64,
        state: PowerState,
        pending_restart: bool,
    ) -> Result<(), StoreError>;
    /// Record a status sample: on the row (latest) and in the history.
    async fn record_vm_status(
        &self,
        id: i64,
        state: PowerState,
        status: &HwStatus,
    ) -> Result<(), StoreError>;
    /// Samples with `from <= ts <= to`, newest first, at most `limit`.
    async fn vm_history(
        &self,
        id: i64,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<VmStatusSample>, StoreError>;
    async fn delete_vm(&self, id: i64) -> Result<(), StoreError>;
    /// (all VMs, running VMs)
    async fn vm_counts(&self) -> Result<(i64, i64), StoreError>;
    /// How many VMs are in each stored state (`running`, `stopped`, …).
    async fn vm_state_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// How many tasks are in each status (`running`, `succeeded`, …).
    async fn task_status_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// The VM that owns a NIC with this MAC (any host).
    async fn vm_by_mac(&self, mac: &str) -> Result<Option<Vm>, StoreError>;
    /// Whether any NIC of any host has this MAC (an index probe; the MAC
    /// allocator asks it for every candidate).
    async fn mac_in_use(&self, mac: &str) -> Result<bool, StoreError>;

    // network
    async fn insert_address(&self, new: &NewAddress) -> Result<VmAddress, StoreError>;
    async fn delete_address(&self, id: i64) -> Result<(), StoreError>;
    async fn addresses(&self, scope: Scope) -> Result<Vec<VmAddress>, StoreError>;
    async fn insert_nat_rule(&self, new: &NewNatRule) -> Result<NatRule, StoreError>;
    async fn delete_nat_rule(&self, id: i64) -> Result<(), StoreError>;
    async fn nat_rules(&self, scope: Scope) -> Result<Vec<NatRule>, StoreError>;
    async fn insert_proxy(&self, new: &NewProxy) -> Result<ProxyBinding, StoreError>;
    async fn delete_proxy(&self, id: i64) -> Result<(), StoreError>;
    async fn proxies(&self, scope: Scope) -> Result<Vec<ProxyBinding>, StoreError>;
    /// Record why the last issuance failed; the certificate columns stay.
    async fn set_proxy_error(&self, id: i64, error: &str) -> Result<(), StoreError>;
    /// Store a new certificate (or the reason issuance failed).
    async fn set_proxy_certificate(
        &self,
        id: i64,
        cert_pem: Option<&str>,
        key_sealed: Option<&str>,
        not_after: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    // tasks
    async fn create_task(
        &self,
        kind: &str,
        hs_name: Option<&str>,
        vm_uuid: Option<&str>,
        actor: &str,
    ) -> Result<Task, StoreError>;
    async fn update_task(&self, id: i64, step: &str, progress: u8) -> Result<(), StoreError>;
    async fn finish_task(
        &self,
        id: i64,
        status: TaskStatus,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Tasks still marked running, oldest first (at start: the ones a stop
    /// interrupted).
    async fn running_tasks(&self) -> Result<Vec<Task>, StoreError>;
    /// Mark tasks that were running when the controller stopped as failed.
    async fn fail_running_tasks(&self, error: &str) -> Result<u64, StoreError>;
    /// Newest first; `actor` keeps only the tasks that actor started.
    async fn list_tasks(
        &self,
        hs_name: Option<&str>,
        actor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError>;

    // logs
    async fn insert_log(&self, new: NewLog<'_>) -> Result<(), StoreError>;
    /// One page of the operation log and the number of all matching rows.
    async fn list_logs(&self, filter: &LogFilter) -> Result<(Vec<LogEntry>, u64), StoreError>;

    // settings
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Store `value` under `key` unless the key has a value; returns the
    /// value stored now (of controllers initializing at once, the first
    /// one's).
    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError>;
}
