//! `ClusterStore`: what several controllers on one PostgreSQL database
//! share. Leases are session advisory locks, each on a connection of its
//! own outside the pool (a pooled connection would be returned, and the
//! lock with it, to whoever acquires it next); presence, busy marks, the
//! lockout of unknown names and nonces are rows; invalidations travel by
//! LISTEN/NOTIFY. SQLite serves one controller: leases are always held,
//! only this controller is alive, and nothing is broadcast.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ironidc_core::store::{
    ClusterStore, Invalidation, InvalidationHandler, Lease, LockoutRule, LoginFailures,
    NewBusyMark, StoreError,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::rows::db;
use crate::sql_store::{Backend, SqlStore};

/// The first key of every ironidc advisory lock ("iron"), the second being
/// the lease: other applications' locks on the database do not collide.
const LOCK_NAMESPACE: i32 = 0x6972_6f6e;
/// The NOTIFY channel of cache invalidations.
pub const INVALIDATE_CHANNEL: &str = "ironidc_invalidate";
/// How long a lease check or take may take before the lease counts as lost:
/// a connection that hangs (a partition) must not keep a controller
/// believing it still owns the jobs.
const LEASE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side keepalive of lease connections: when the owner's machine
/// vanishes without closing its socket, PostgreSQL ends the session (and
/// frees the lease) after about idle + interval × count seconds instead of
/// the system default of two hours.
const KEEPALIVE: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "2"),
    ("tcp_keepalives_count", "3"),
];
/// Pause before the listener retries a failed connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// One lease's dedicated connection and whether it holds the lock. A
/// controller that does not hold a lease keeps its connection to retry on.
pub(crate) struct LeaseConnection {
    conn: PgConnection,
    held: bool,
}

/// Cluster state of one `SqlStore` (shared by its clones).
pub(crate) struct ClusterState {
    /// The database URL, for lease connections and the listener.
    pub(crate) url: String,
    pub(crate) controller: String,
    pub(crate) leases: tokio::sync::Mutex<HashMap<Lease, LeaseConnection>>,
}

impl ClusterState {
    pub(crate) fn new(url: &str, controller: String) -> Self {
        Self {
            url: url.to_string(),
            controller,
            leases: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Connection options for this controller's own connections, named
    /// after it so `lease_owner` can tell who holds a lock.
    fn pg_options(&self) -> Result<PgConnectOptions, StoreError> {
        Ok(PgConnectOptions::from_str(&self.url)
            .map_err(|e| StoreError::Database(format!("database URL: {e}")))?
            .application_name(&self.controller)
            .options(KEEPALIVE)
            .disable_statement_logging())
    }
}

fn pg(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn timed_out(what: &str) -> StoreError {
    StoreError::Database(format!("{what} timed out"))
}

impl SqlStore {
    /// Broadcast `what` to every controller (PostgreSQL only). A failure is
    /// logged, not returned: the change it follows is already committed,
    /// and other controllers' caches expire on their own.
    pub(crate) async fn notify(&self, what: Invalidation) {
        if self.backend() != Backend::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(INVALIDATE_CHANNEL)
            .bind(what.payload())
            .execute(self.pool())
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not notify other controllers of a change");
        }
    }

    async fn try_take(
        &self,
        entry: &mut LeaseConnection,
        lease: Lease,
    ) -> Result<bool, StoreError> {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(lease.id())
            .fetch_one(&mut entry.conn)
            .await
            .map_err(pg)?;
        entry.held = got;
        Ok(got)
    }

    async fn hold_pg_lease(&self, lease: Lease) -> Result<bool, StoreError> {
        let cluster = self.cluster();
        let mut leases = cluster.leases.lock().await;
        if let Some(entry) = leases.get_mut(&lease) {
            // A live session still holds its lock: pinging is the check.
            let alive = tokio::time::timeout(LEASE_CHECK_TIMEOUT, entry.conn.ping()).await;
            match alive {
                Ok(Ok(())) if entry.held => return Ok(true),
                Ok(Ok(())) => {
                    return tokio::time::timeout(LEASE_CHECK_TIMEOUT, self.try_take(entry, lease))
                        .await
                        .map_err(|_| timed_out("taking a lease"))?;
                }
                _ => {
                    // Dead or hung: the lock went (or goes) with the session.
                    leases.remove(&lease);
                    return Ok(false);
                }
            }
        }
        let options = cluster.pg_options()?;
        let conn = tokio::time::timeout(LEASE_CHECK_TIMEOUT, options.connect())
            .await
            .map_err(|_| timed_out("connecting for a lease"))?
            .map_err(pg)?;
        let mut entry = LeaseConnection { conn, held: false };
        let got = tokio::time::timeout(LEASE_CHECK_TIMEOUT, self.try_take(&mut entry, lease))
            .await
            .map_err(|_| timed_out("taking a lease"))??;
        leases.insert(lease, entry);
        Ok(got)
    }
}

/// A listener subscribed to the invalidation channel, on a fresh connection.
async fn subscribe(pool: &sqlx::PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(pg)?;
    listener.listen(INVALIDATE_CHANNEL).await.map_err(pg)?;
    Ok(listener)
}

#[async_trait]
impl ClusterStore for SqlStore {
    fn controller(&self) -> &str {
        &self.cluster().controller
    }

    fn shared(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    async fn hold_lease(&self, lease: Lease) -> Result<bool, StoreError> {
        match self.backend() {
            Backend::Sqlite => Ok(true),
            Backend::Postgres => self.hold_pg_lease(lease).await,
        }
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), StoreError> {
        let entry = self.cluster().leases.lock().await.remove(&lease);
        if let Some(entry) = entry {
            // Closing the session releases its locks.
            entry.conn.close().await.map_err(pg)?;
        }
        Ok(())
    }

    async fn lease_owner(&self, lease: Lease) -> Result<Option<String>, StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(Some(self.cluster().controller.clone()));
        }
        // Advisory locks are per database; the holder's session carries
        // its controller's id as application_name.
        sqlx::query_scalar(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid = $1::oid AND l.objid = $2::oid",
        )
        .bind(LOCK_NAMESPACE)
        .bind(lease.id())
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    async fn heartbeat(&self, name: &str, now: i64) -> Result<(), StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO controllers (instance, name, started_at, seen_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (instance) DO UPDATE SET seen_at = EXCLUDED.seen_at",
        )
        .bind(&self.cluster().controller)
        .bind(name)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn live_controllers(&self, since: i64) -> Result<Vec<String>, StoreError> {
        if self.backend() == Backend::Sqlite {
            // One controller per SQLite file: every other instance is a
            // previous life of this one.
            return Ok(vec![self.cluster().controller.clone()]);
        }
        let mut live: Vec<String> =
            sqlx::query_scalar("SELECT instance FROM controllers WHERE seen_at >= $1")
                .bind(since)
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
        // This controller is alive even before its first heartbeat lands.
        if !live.contains(&self.cluster().controller) {
            live.push(self.cluster().controller.clone());
        }
        Ok(live)
    }

    async fn leave(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM controllers WHERE instance = $1")
            .bind(&self.cluster().controller)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_controllers(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM controllers WHERE seen_at < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn try_mark_busy(
        &self,
        mark: &NewBusyMark<'_>,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let me = &self.cluster().controller;
        // One statement: of two controllers marking at once, one wins.
        let done = sqlx::query(
            "INSERT INTO busy_marks (vm_key, activity, owner, token, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (vm_key) DO UPDATE SET activity = EXCLUDED.activity, \
             owner = EXCLUDED.owner, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at \
             WHERE busy_marks.expires_at <= $6 OR busy_marks.owner = $3",
        )
        .bind(mark.key)
        .bind(mark.activity)
        .bind(me)
        .bind(mark.token)
        .bind(mark.expires_at)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db)?;
        if done.rows_affected() > 0 {
            return Ok(None);
        }
        let current: Option<String> =
            sqlx::query_scalar("SELECT activity FROM busy_marks WHERE vm_key = $1")
                .bind(mark.key)
                .fetch_optional(self.pool())
                .await
                .map_err(db)?;
        // Gone in between (its operation ended): still refused this once,
        // as busy a moment ago, rather than racing a second insert.
        Ok(Some(current.unwrap_or_else(|| "busy".into())))
    }

    async fn busy_elsewhere(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT activity FROM busy_marks WHERE vm_key = $1 AND expires_at > $2 AND owner <> $3",
        )
        .bind(key)
        .bind(now)
        .bind(&self.cluster().controller)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    async fn renew_busy(&self, key: &str, token: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE busy_marks SET expires_at = $1 WHERE vm_key = $2 AND token = $3")
            .bind(expires_at)
            .bind(key)
            .bind(token)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn clear_busy(&self, key: &str, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM busy_marks WHERE vm_key = $1 AND token = $2")
            .bind(key)
            .bind(token)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_busy(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM busy_marks WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn count_login_failure(
        &self,
        user_id: i64,
        rule: LockoutRule,
    ) -> Result<LoginFailures, StoreError> {
        // SET sees the row as it was: the count and the lock are decided
        // from the same old value, in one statement.
        let (failed, locked_until): (i64, i64) = sqlx::query_as(
            "UPDATE users SET \
             failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END, \
             locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE 0 END \
             WHERE id = $3 RETURNING failed_logins, locked_until",
        )
        .bind(rule.after.max(1))
        .bind(rule.now + rule.lock_secs)
        .bind(user_id)
        .fetch_one(self.pool())
        .await
        .map_err(db)?;
        Ok(LoginFailures {
            failed,
            locked_until,
        })
    }

    async fn count_unknown_login_failure(
        &self,
        account: &str,
        rule: LockoutRule,
    ) -> Result<LoginFailures, StoreError> {
        let after = rule.after.max(1);
        let (failed, locked_until) = if after <= 1 {
            (0, rule.now + rule.lock_secs)
        } else {
            (1, 0)
        };
        let (failed, locked_until): (i64, i64) = sqlx::query_as(
            "INSERT INTO login_failures (account, failed, locked_until, last_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account) DO UPDATE SET \
             failed = CASE WHEN login_failures.failed + 1 >= $5 THEN 0 \
                 ELSE login_failures.failed + 1 END, \
             locked_until = CASE WHEN login_failures.failed + 1 >= $5 THEN $6 ELSE 0 END, \
             last_at = EXCLUDED.last_at \
             RETURNING failed, locked_until",
        )
        .bind(account)
        .bind(failed)
        .bind(locked_until)
        .bind(rule.now)
        .bind(after)
        .bind(rule.now + rule.lock_secs)
        .fetch_one(self.pool())
        .await
        .map_err(db)?;
        Ok(LoginFailures {
            failed,
            locked_until,
        })
    }

    async fn unknown_login_locked_until(&self, account: &str) -> Result<i64, StoreError> {
        let until: Option<i64> =
            sqlx::query_scalar("SELECT locked_until FROM login_failures WHERE account = $1")
                .bind(account)
                .fetch_optional(self.pool())
                .await
                .map_err(db)?;
        Ok(until.unwrap_or(0))
    }

    async fn purge_login_failures(&self, before: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM login_failures WHERE last_at < $1 AND locked_until < $1")
                .bind(before)
                .execute(self.pool())
                .await
                .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn accept_nonce(
        &self,
        key: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // A nonce that expired but was not purged yet is as good as new.
        let done = sqlx::query(
            "INSERT INTO nonces (key, nonce, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at \
             WHERE nonces.expires_at <= $4",
        )
        .bind(key)
        .bind(nonce)
        .bind(expires_at)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_nonces(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM nonces WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn watch_invalidations(&self, handler: InvalidationHandler) -> Result<(), StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.cluster().pg_options()?);
        // Subscribe before returning, so no change after start-up is missed.
        let mut listener = subscribe(&pool).await?;
        tokio::spawn(async move {
            loop {
                // Until the connection drops.
                while let Ok(Some(n)) = listener.try_recv().await {
                    handler(Invalidation::from_payload(n.payload()));
                }
                tracing::warn!("invalidation listener lost its connection; resubscribing");
                // The pool has one connection: give it back first.
                drop(listener);
                listener = loop {
                    match subscribe(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, "invalidation listener cannot subscribe");
                            tokio::time::sleep(LISTEN_RETRY).await;
                        }
                    }
                };
                // Whatever was sent while no one listened is lost.
                handler(Invalidation::All);
            }
        });
        Ok(())
    }
}
