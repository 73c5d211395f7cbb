//! The store port for running several controllers on one database: job
//! leases, controller presence, shared busy marks, the shared login
//! lockout, replay nonces and cache invalidation. `ironidc-store`
//! implements it with `Store`: on PostgreSQL the state is shared; SQLite
//! serves one controller, so leases are always held there and nothing is
//! broadcast.

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::StoreError;

/// A cluster-wide role at most one controller holds at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// The background jobs: monitor sampling, reconcile, recovery of
    /// interrupted tasks, certificate renewals and purges.
    Jobs,
    /// Start-up seeding (built-in roles, the administrator, the root
    /// token), held for the few milliseconds it takes.
    Seeding,
}

impl Lease {
    /// A number unique per lease (the PostgreSQL advisory-lock key).
    pub fn id(self) -> i32 {
        match self {
            Self::Jobs => 1,
            Self::Seeding => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Seeding => "seeding",
        }
    }
}

/// What another controller changed, so local caches drop what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Users, roles, role permissions, API tokens, sessions or the root
    /// token changed.
    Auth,
    /// Reverse-proxy bindings or their certificates changed (a renewal on
    /// the jobs owner, a binding made through another controller): each
    /// controller's proxy reloads its routes.
    Proxy,
    /// Notifications may have been missed (the listening connection was
    /// lost and came back): drop everything.
    All,
}

impl Invalidation {
    /// The NOTIFY payload.
    pub fn payload(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Proxy => "proxy",
            Self::All => "all",
        }
    }

    /// An unknown payload (a newer controller) drops everything.
    pub fn from_payload(payload: &str) -> Self {
        match payload {
            "auth" => Self::Auth,
            "proxy" => Self::Proxy,
            _ => Self::All,
        }
    }
}

/// Called for every invalidation another controller (or this one) sent.
pub type InvalidationHandler = Arc<dyn Fn(Invalidation) + Send + Sync>;

/// A new busy mark (see `service/busy.rs`).
#[derive(Debug, Clone)]
pub struct NewBusyMark<'a> {
    /// The VM (`host_id:uuid`).
    pub key: &'a str,
    /// What runs on it ("backing up", …), shown to refused callers.
    pub activity: &'a str,
    /// Unique per mark, so only the mark's own guard renews or clears it.
    pub token: &'a str,
    pub expires_at: i64,
}

/// The outcome of counting one failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures in a row after this one (0 once it locked).
    pub failed: i64,
    /// Unix time the account is locked until; 0 when it is not.
    pub locked_until: i64,
}

/// The lockout rule the store applies in one statement, so controllers
/// counting at once never lose a failure.
#[derive(Debug, Clone, Copy)]
pub struct LockoutRule {
    pub now: i64,
    /// Failures in a row that lock (at least 1).
    pub after: i64,
    /// Seconds a lock lasts.
    pub lock_secs: i64,
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// This controller process's id (unique per process: a restarted
    /// controller is a new instance), as other controllers see it.
    fn controller(&self) -> &str;

    /// Whether other controllers may share this database (PostgreSQL).
    fn shared(&self) -> bool;

    /// Take `lease`, or confirm it is still held; `false` while another
    /// controller holds it. On PostgreSQL a session advisory lock on a
    /// connection of its own: it dies with that connection, so a dead
    /// owner's lease frees itself. Always `true` on SQLite.
    async fn hold_lease(&self, lease: Lease) -> Result<bool, StoreError>;
    /// Give `lease` up (clean shutdown), so another controller takes it at once.
    async fn release_lease(&self, lease: Lease) -> Result<(), StoreError>;
    /// The controller holding `lease`, if any.
    async fn lease_owner(&self, lease: Lease) -> Result<Option<String>, StoreError>;

    /// Record that this controller (named `name`) is alive at `now`.
    async fn heartbeat(&self, name: &str, now: i64) -> Result<(), StoreError>;
    /// Controllers seen at or after `since` (always this one on SQLite).
    async fn live_controllers(&self, since: i64) -> Result<Vec<String>, StoreError>;
    /// Remove this controller's presence (clean shutdown).
    async fn leave(&self) -> Result<(), StoreError>;
    /// Forget controllers not seen since `before`; returns how many.
    async fn purge_controllers(&self, before: i64) -> Result<u64, StoreError>;

    /// Mark a VM busy unless a live mark of another controller holds it
    /// (an expired one, or one of this controller's, is replaced). `None`
    /// when marked; otherwise the activity of the mark in the way.
    async fn try_mark_busy(
        &self,
        mark: &NewBusyMark<'_>,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// The activity of a live mark of another controller on `key`.
    async fn busy_elsewhere(&self, key: &str, now: i64) -> Result<Option<String>, StoreError>;
    /// Extend the mark `token` on `key` (its operation still runs).
    async fn renew_busy(&self, key: &str, token: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn clear_busy(&self, key: &str, token: &str) -> Result<(), StoreError>;
    /// Remove marks that expired before `now`; returns how many.
    async fn purge_busy(&self, now: i64) -> Result<u64, StoreError>;

    /// Count a failed login of user `user_id` under `rule`.
    async fn count_login_failure(
        &self,
        user_id: i64,
        rule: LockoutRule,
    ) -> Result<LoginFailures, StoreError>;
    /// Count a failed login on a name that is no account (lower-cased by
    /// the caller), so it locks exactly as a real account would.
    async fn count_unknown_login_failure(
        &self,
        account: &str,
        rule: LockoutRule,
    ) -> Result<LoginFailures, StoreError>;
    /// Until when logins on the unknown name `account` are locked (0: not).
    async fn unknown_login_locked_until(&self, account: &str) -> Result<i64, StoreError>;
    /// Forget unknown names last failed before `before` and not locked
    /// at `before`; returns how many.
    async fn purge_login_failures(&self, before: i64) -> Result<u64, StoreError>;

    /// Accept `nonce` for `key` once: `true` the first time (it is kept
    /// until `expires_at`), `false` for a replay of a live one.
    async fn accept_nonce(
        &self,
        key: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Remove nonces that expired before `now`; returns how many.
    async fn purge_nonces(&self, now: i64) -> Result<u64, StoreError>;

    /// Call `handler` for every invalidation sent by any controller sharing
    /// the database, from a task of its own that reconnects when the
    /// connection drops (and then reports `Invalidation::All`). Nothing
    /// happens on SQLite.
    async fn watch_invalidations(&self, handler: InvalidationHandler) -> Result<(), StoreError>;
}

/// Longest controller name kept in an instance id: PostgreSQL keeps 63
/// bytes of an `application_name`, and the id must survive whole.
const NAME_MAX: usize = 48;

/// A new instance id for the controller `name`: the name (cut to 48
/// bytes, at a character boundary) and `#` and 8 random hex digits, so
/// each process, restarts included, is told apart.
pub fn instance_id(name: &str) -> String {
    let mut end = name.len().min(NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}#{:08x}", &name[..end], rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_unique_and_fit_an_application_name() {
        let long = "é".repeat(40);
        let id = instance_id(&long);
        assert!(id.len() <= 63, "{id}");
        assert!(id.starts_with("éé"));
        assert_ne!(instance_id("a"), instance_id("a"));
    }

    #[test]
    fn payloads_round_trip() {
        for what in [Invalidation::Auth, Invalidation::Proxy, Invalidation::All] {
            assert_eq!(Invalidation::from_payload(what.payload()), what);
        }
        assert_eq!(Invalidation::from_payload("later"), Invalidation::All);
    }
}
