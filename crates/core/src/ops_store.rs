//! The store port for VM operations beyond the definition: console tokens,
//! the per-VM status-report secret, and retention of the status series.
//! `ironidc-store` implements it with `Store`.

use async_trait::async_trait;

use crate::store::StoreError;

/// A console token as stored: only its SHA-256 hash, never the token.
/// Which VMs a page or a count covers; `None` keeps all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmFilter {
    pub host_id: Option<i64>,
    pub owner_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleToken {
    pub id: i64,
    pub token_hash: String,
    pub vm_id: i64,
    /// The user it was issued to; `None` for the operator's root token.
    pub user_id: Option<i64>,
    /// Who asked for it (log name), for the state listing.
    pub actor: String,
    pub created_at: i64,
    /// Issue time, then the last time bytes flowed through its session.
    pub last_used_at: i64,
    /// When a WebSocket attached with it; a token opens one session only.
    pub opened_at: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct NewConsoleToken {
    pub token_hash: String,
    pub vm_id: i64,
    pub user_id: Option<i64>,
    pub actor: String,
}

#[async_trait]
pub trait OpsStore: Send + Sync {
    async fn insert_console_token(&self, new: &NewConsoleToken)
        -> Result<ConsoleToken, StoreError>;
    async fn console_token_by_hash(&self, hash: &str) -> Result<Option<ConsoleToken>, StoreError>;
    /// Marks the token opened at `at` if it was not yet: `false` when
    /// another attach won (compare-and-set, so a token opens one session).
    async fn open_console_token(&self, id: i64, at: i64) -> Result<bool, StoreError>;
    async fn touch_console_token(&self, id: i64, at: i64) -> Result<(), StoreError>;
    /// Revokes the VM's live tokens (of one user, or all with `None`);
    /// returns how many.
    async fn revoke_console_tokens(
        &self,
        vm_id: i64,
        user_id: Option<i64>,
    ) -> Result<u64, StoreError>;
    /// The VM's tokens, newest first.
    async fn console_tokens(&self, vm_id: i64) -> Result<Vec<ConsoleToken>, StoreError>;
    /// Removes tokens not used since `before`.
    async fn purge_console_tokens(&self, before: i64) -> Result<u64, StoreError>;

    async fn vm_by_id(&self, id: i64) -> Result<Option<crate::model::Vm>, StoreError>;
    /// Every VM of every host (for the monitor).
    async fn all_vms(&self) -> Result<Vec<crate::model::Vm>, StoreError>;
    /// A page of the VMs `filter` keeps, by id, and how many it keeps
    /// across all pages: both from indexes, never every row in memory.
    async fn vm_page(
        &self,
        filter: VmFilter,
        page: crate::accounts::Page,
    ) -> Result<(Vec<crate::model::Vm>, u64), StoreError>;
    /// How many VMs `filter` keeps.
    async fn count_vms(&self, filter: VmFilter) -> Result<u64, StoreError>;
    async fn task_by_id(&self, id: i64) -> Result<Option<crate::model::Task>, StoreError>;

    /// The VM's status-report secret, sealed by `SecretBox`.
    async fn vm_report_secret(&self, vm_id: i64) -> Result<Option<String>, StoreError>;
    async fn set_vm_report_secret(&self, vm_id: i64, sealed: &str) -> Result<(), StoreError>;

    /// Removes status samples older than `before`; returns how many.
    async fn purge_vm_status(&self, before: i64) -> Result<u64, StoreError>;
}
