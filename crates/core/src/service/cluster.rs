//! Several controllers on one database. Each serves the whole API; the
//! background jobs (monitor sampling, reconcile, recovery of interrupted
//! tasks, certificate renewals, purges) run on one of them, the holder of
//! the jobs lease. The others retry every `LEASE_RETRY`, so when the owner
//! dies another takes over within a few seconds. Changes that other
//! controllers may have cached are broadcast through the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::auth::TokenBootstrap;
use super::{now, Services};
use crate::error::CoreError;
use crate::store::{Invalidation, Lease, LockoutRule};

/// How often a controller renews its presence and retries (or confirms)
/// the jobs lease. With PostgreSQL ending a killed owner's session at
/// once, a takeover takes at most this long plus the check's timeout.
pub const LEASE_RETRY: Duration = Duration::from_secs(3);
/// A controller not seen for this long is gone: its running tasks are
/// recovered by the jobs owner. Ten missed heartbeats, so a slow database
/// does not make a live controller's tasks look interrupted.
pub const CONTROLLER_STALE_SECS: i64 = 30;
/// How long seeding waits for another controller's seeding to end.
const SEEDING_WAIT: Duration = Duration::from_secs(60);
const SEEDING_POLL: Duration = Duration::from_millis(200);

/// Who this controller is and who runs the background jobs.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// This controller process's id (name and a per-process suffix).
    pub controller: String,
    /// The controller holding the jobs lease, if any.
    pub job_owner: Option<String>,
}

impl Services {
    /// This controller process's id, as the store records it.
    pub fn controller(&self) -> &str {
        self.store().controller()
    }

    /// Whether this controller runs the background jobs now.
    pub fn owns_jobs(&self) -> bool {
        self.inner.owns_jobs.load(Ordering::Acquire)
    }

    /// Record that this controller is alive and take (or confirm) the jobs
    /// lease; returns whether it holds it. Leadership changes are logged.
    pub async fn claim_jobs(&self) -> bool {
        if let Err(e) = self
            .store()
            .heartbeat(&self.inner.opts.controller_name, now())
            .await
        {
            tracing::warn!(error = %e, "could not record this controller's presence");
        }
        let held = match self.store().hold_lease(Lease::Jobs).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "could not take or confirm the jobs lease");
                false
            }
        };
        let was = self.inner.owns_jobs.swap(held, Ordering::AcqRel);
        match (was, held) {
            (false, true) => tracing::info!(
                controller = self.controller(),
                "this controller now runs the background jobs"
            ),
            (true, false) => tracing::warn!(
                controller = self.controller(),
                "this controller lost the jobs lease; another one runs the background jobs"
            ),
            _ => {}
        }
        held
    }

    /// Keep claiming the jobs lease until the process ends.
    pub fn spawn_lease_keeper(&self) -> tokio::task::JoinHandle<()> {
        let services = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RETRY).await;
                services.claim_jobs().await;
            }
        })
    }

    /// Hand the jobs over and remove this controller's presence (clean
    /// shutdown), so another controller takes over at once and settles
    /// what this one left running without waiting for it to go stale.
    pub async fn leave_cluster(&self) {
        self.inner.owns_jobs.store(false, Ordering::Release);
        if let Err(e) = self.store().release_lease(Lease::Jobs).await {
            tracing::warn!(error = %e, "could not release the jobs lease");
        }
        if let Err(e) = self.store().leave().await {
            tracing::warn!(error = %e, "could not remove this controller's presence");
        }
    }

    /// Who this controller is and who runs the jobs.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, CoreError> {
        Ok(ClusterStatus {
            controller: self.controller().to_string(),
            job_owner: self.store().lease_owner(Lease::Jobs).await?,
        })
    }

    /// Start-up seeding: the root token and the built-in roles and
    /// administrator, one controller at a time (under the seeding lease),
    /// so controllers starting together on a fresh database neither
    /// collide nor each print a token or password of which only one was
    /// stored. Returns the token outcome and a generated admin password.
    pub async fn initialize(
        &self,
        token: Option<&str>,
        admin_password: Option<&str>,
    ) -> Result<(TokenBootstrap, Option<String>), CoreError> {
        let deadline = tokio::time::Instant::now() + SEEDING_WAIT;
        while !self.store().hold_lease(Lease::Seeding).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(CoreError::Unavailable(
                    "another controller has been seeding the database for a minute".into(),
                ));
            }
            tokio::time::sleep(SEEDING_POLL).await;
        }
        let seeded = async {
            let token = self.bootstrap_token(token).await?;
            let password = self.init_accounts(admin_password).await?;
            Ok((token, password))
        }
        .await;
        if let Err(e) = self.store().release_lease(Lease::Seeding).await {
            // The lock goes with its connection when the process ends.
            tracing::warn!(error = %e, "could not release the seeding lease");
        }
        seeded
    }

    /// Subscribe to other controllers' changes: each drops what this
    /// controller cached of it, and proxy changes reload this controller's
    /// routes. Only PostgreSQL broadcasts.
    pub async fn watch_invalidations(&self) -> Result<(), CoreError> {
        // Weak: the listener task must not keep the services alive.
        let services = Arc::downgrade(&self.inner);
        let handler = Arc::new(move |what: Invalidation| {
            let Some(inner) = services.upgrade() else {
                return;
            };
            let services = Services { inner };
            if matches!(what, Invalidation::Auth | Invalidation::All) {
                services.invalidate_auth_cache();
            }
            if matches!(what, Invalidation::Proxy | Invalidation::All) {
                // The routes are read from the store: not in the listener's
                // own task, which must keep receiving.
                tokio::spawn(async move {
                    if let Err(e) = services.refresh_proxy_routes().await {
                        tracing::warn!(error = %e, "reverse proxy routes could not be reloaded");
                    }
                });
            }
        });
        self.store().watch_invalidations(handler).await?;
        Ok(())
    }

    /// Remove what has expired: old status samples, idle console tokens,
    /// expired sessions, busy marks, nonces, lockouts of unknown names and
    /// controllers long gone. A job: the jobs owner runs it.
    pub async fn run_purges(&self) {
        let t = now();
        let opts = &self.inner.opts;
        let keep = opts.monitor_retention.as_secs() as i64;
        let idle = opts.console_idle.as_secs() as i64;
        let lockout = opts.lockout_for.as_secs() as i64;
        let store = self.store();
        let results = [
            ("status samples", store.purge_vm_status(t - keep).await),
            (
                "console tokens",
                store.purge_console_tokens(t - 2 * idle).await,
            ),
            ("sessions", store.purge_sessions(t).await),
            ("busy marks", store.purge_busy(t).await),
            ("nonces", store.purge_nonces(t).await),
            (
                "login failures",
                store.purge_login_failures(t - lockout).await,
            ),
            ("controllers", store.purge_controllers(t - 86_400).await),
        ];
        for (what, result) in results {
            match result {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, what, "purged"),
                Err(e) => tracing::warn!(error = %e, what, "purge failed"),
            }
        }
    }

    /// The lockout rule as the store applies it.
    pub(super) fn lockout_rule(&self) -> LockoutRule {
        let opts = &self.inner.opts;
        LockoutRule {
            now: now(),
            after: i64::from(opts.lockout_after.max(1)),
            lock_secs: opts.lockout_for.as_secs() as i64,
        }
    }
}
