//! `Store` over an sqlx `AnyPool`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ironidc_core::accounts::LogFilter;
use ironidc_core::engine::PowerState;
use ironidc_core::model::{
    Host, HostConfig, HwStatus, LogEntry, NatRule, ProxyBinding, Task, TaskStatus, Vm, VmAddress,
    VmConfig, VmStatusSample,
};
use ironidc_core::service::now;
use ironidc_core::store::{
    HostSummary, NewAddress, NewHost, NewLog, NewNatRule, NewProxy, NewVm, Scope, Store, StoreError,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use ironidc_core::cluster_store::instance_id;
use ironidc_core::store::Invalidation;

use crate::cluster::ClusterState;
use crate::filter::Where;
use crate::network::replace_vm_nics;
use crate::rows::{
    self, db, decode_all, to_json, HostRow, HostSummaryRow, LogRow, TaskRow, VmRow, VmStatusRow,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Database(
                "database URL must start with sqlite: or postgres://".into(),
            ))
        }
    }
}

#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    cluster: Arc<ClusterState>,
}

impl SqlStore {
    /// Connect and migrate. SQLite files are created when missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("database URL: {e}")))?
            .disable_statement_logging();
        let pool = match backend {
            // WAL lets readers run beside the writer; busy_timeout makes a
            // writer wait for the lock instead of failing at once.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .map_err(db)?,
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(db)?,
        };
        crate::migrate::run(&pool, backend).await?;
        Ok(Self {
            pool,
            backend,
            cluster: Arc::new(ClusterState::new(url, instance_id("ironidc"))),
        })
    }

    /// The same store acting for the controller instance `instance` (see
    /// `ironidc_core::cluster_store::instance_id`): tasks, leases and busy
    /// marks are recorded under it. Call before handing the store out;
    /// leases taken under the previous id are not carried over.
    pub fn with_controller(mut self, instance: impl Into<String>) -> Self {
        self.cluster = Arc::new(ClusterState::new(&self.cluster.url, instance.into()));
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn cluster(&self) -> &ClusterState {
        &self.cluster
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Insert many VM rows in one transaction (benchmarks, imports).
    pub async fn insert_vms_bulk(
        &self,
        host_id: i64,
        configs: &[VmConfig],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let ts = now();
        for config in configs {
            sqlx::query(
                "INSERT INTO vms (host_id, uuid, config, state, pending_restart, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'stopped', 0, $4, $4)",
            )
            .bind(host_id)
            .bind(&config.vm_uuid)
            .bind(to_json(config)?)
            .bind(ts)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    pub(crate) async fn vm_where(
        &self,
        clause: &str,
        binds: (i64, Option<&str>),
    ) -> Result<Vec<Vm>, StoreError> {
        let sql = format!(
            "SELECT {} FROM vms v JOIN hosts h ON h.id = v.host_id {clause}",
            VmRow::COLUMNS
        );
        let mut q = sqlx::query_as::<_, VmRow>(&sql).bind(binds.0);
        if let Some(s) = binds.1 {
            q = q.bind(s.to_string());
        }
        decode_all(q.fetch_all(&self.pool).await.map_err(db)?)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_host(&self, new: NewHost<'_>) -> Result<Host, StoreError> {
        let sql = format!(
            "INSERT INTO hosts (name, engine, enabled, config, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {}",
            HostRow::COLUMNS
        );
        let row = sqlx::query_as::<_, HostRow>(&sql)
            .bind(new.name)
            .bind(new.engine)
            .bind(i64::from(new.enabled))
            .bind(to_json(new.config)?)
            .bind(now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| rows::with_value(db(e), new.name))?;
        row.try_into()
    }

    async fn host_by_name(&self, name: &str) -> Result<Option<Host>, StoreError> {
        let sql = format!("SELECT {} FROM hosts WHERE name = $1", HostRow::COLUMNS);
        let row = sqlx::query_as::<_, HostRow>(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(Host::try_from).transpose()
    }

    async fn list_hosts(&self) -> Result<Vec<HostSummary>, StoreError> {
        // The count is kept on the row by triggers (migration 0007): one
        // row per host, whatever the number of VMs.
        let sql = format!(
            "SELECT {}, vm_count FROM hosts ORDER BY id",
            HostRow::COLUMNS
        );
        decode_all(
            sqlx::query_as::<_, HostSummaryRow>(&sql)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?,
        )
    }

    async fn update_host(
        &self,
        id: i64,
        enabled: bool,
        config: &HostConfig,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE hosts SET enabled = $1, config = $2 WHERE id = $3")
            .bind(i64::from(enabled))
            .bind(to_json(config)?)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete_host(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM hosts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn insert_vm(&self, new: NewVm<'_>) -> Result<Vm, StoreError> {
        let ts = now();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO vms (host_id, uuid, config, state, pending_restart, os_pass, owner_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $7) RETURNING id",
        )
        .bind(new.host_id)
        .bind(new.uuid)
        .bind(to_json(new.config)?)
        .bind(new.state.as_str())
        .bind(new.os_pass_sealed.map(str::to_string))
        .bind(new.owner_id)
        .bind(ts)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| rows::with_value(db(e), new.uuid))?;
        replace_vm_nics(&mut tx, id, new.config).await?;
        tx.commit().await.map_err(db)?;
        self.vm_by_uuid(new.host_id, new.uuid)
            .await?
            .ok_or_else(|| StoreError::Database("inserted vm row vanished".into()))
    }

    async fn vm_by_uuid(&self, host_id: i64, uuid: &str) -> Result<Option<Vm>, StoreError> {
        Ok(self
            .vm_where(
                "WHERE v.host_id = $1 AND v.uuid = $2",
                (host_id, Some(uuid)),
            )
            .await?
            .pop())
    }

    async fn list_vms(&self, host_id: i64) -> Result<Vec<Vm>, StoreError> {
        self.vm_where("WHERE v.host_id = $1 ORDER BY v.id", (host_id, None))
            .await
    }

    async fn update_vm_config(
        &self,
        id: i64,
        config: &VmConfig,
        pending_restart: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE vms SET config = $1, pending_restart = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(to_json(config)?)
        .bind(i64::from(pending_restart))
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        replace_vm_nics(&mut tx, id, config).await?;
        tx.commit().await.map_err(db)
    }

    async fn set_vm_password(&self, id: i64, os_pass_sealed: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE vms SET os_pass = $1, updated_at = $2 WHERE id = $3")
            .bind(os_pass_sealed)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn set_vm_state(
        &self,
        id: i64,
        state: PowerState,
        pending_restart: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE vms SET state = $1, pending_restart = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(i64::from(pending_restart))
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn record_vm_status(
        &self,
        id: i64,
        state: PowerState,
        status: &HwStatus,
    ) -> Result<(), StoreError> {
        let text = to_json(status)?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("UPDATE vms SET state = $1, last_status = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(&text)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO vm_status (vm_id, ts, state, status) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(now())
            .bind(state.as_str())
            .bind(&text)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn vm_history(
        &self,
        id: i64,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<VmStatusSample>, StoreError> {
        let sql = format!(
            "SELECT {} FROM vm_status WHERE vm_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts DESC, id DESC LIMIT $4",
            VmStatusRow::COLUMNS
        );
        let rows = sqlx::query_as::<_, VmStatusRow>(&sql)
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        decode_all(rows)
    }

    async fn delete_vm(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Dependent rows first, explicitly: the VM's addresses, rules and
        // bindings go with it on every backend.
        for table in [
            "vm_status",
            "console_tokens",
            "vm_nics",
            "vm_addresses",
            "nat_rules",
            "proxies",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE vm_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM vms WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        // Its proxy bindings went with it.
        self.notify(Invalidation::Proxy).await;
        Ok(())
    }

    async fn vm_by_mac(&self, mac: &str) -> Result<Option<Vm>, StoreError> {
        Ok(self
            .vm_where(
                "WHERE $1 = $1 AND v.id = (SELECT vm_id FROM vm_nics WHERE mac = $2)",
                (0, Some(mac)),
            )
            .await?
            .pop())
    }

    async fn mac_in_use(&self, mac: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vm_nics WHERE mac = $1")
            .bind(mac)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn insert_address(&self, new: &NewAddress) -> Result<VmAddress, StoreError> {
        self.insert_address_row(new).await
    }
    async fn delete_address(&self, id: i64) -> Result<(), StoreError> {
        self.delete_row("vm_addresses", id).await
    }
    async fn addresses(&self, scope: Scope) -> Result<Vec<VmAddress>, StoreError> {
        self.address_rows(scope).await
    }
    async fn insert_nat_rule(&self, new: &NewNatRule) -> Result<NatRule, StoreError> {
        self.insert_nat_row(new).await
    }
    async fn delete_nat_rule(&self, id: i64) -> Result<(), StoreError> {
        self.delete_row("nat_rules", id).await
    }
    async fn nat_rules(&self, scope: Scope) -> Result<Vec<NatRule>, StoreError> {
        self.nat_rows(scope).await
    }
    async fn insert_proxy(&self, new: &NewProxy) -> Result<ProxyBinding, StoreError> {
        let row = self.insert_proxy_row(new).await?;
        // Other controllers' proxies serve it too.
        self.notify(Invalidation::Proxy).await;
        Ok(row)
    }
    async fn delete_proxy(&self, id: i64) -> Result<(), StoreError> {
        self.delete_row("proxies", id).await?;
        self.notify(Invalidation::Proxy).await;
        Ok(())
    }
    async fn proxies(&self, scope: Scope) -> Result<Vec<ProxyBinding>, StoreError> {
        self.proxy_rows(scope).await
    }
    async fn set_proxy_error(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.update_proxy_error(id, error).await
    }
    async fn set_proxy_certificate(
        &self,
        id: i64,
        cert_pem: Option<&str>,
        key_sealed: Option<&str>,
        not_after: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_proxy_certificate(id, cert_pem, key_sealed, not_after, error)
            .await?;
        // A renewal runs on the jobs owner; every proxy serves the new one.
        self.notify(Invalidation::Proxy).await;
        Ok(())
    }

    async fn vm_counts(&self) -> Result<(i64, i64), StoreError> {
        sqlx::query_as(
            "SELECT COUNT(*) AS total, COUNT(CASE WHEN state IN ('running', 'paused') THEN 1 END) AS running FROM vms",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    async fn vm_state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as("SELECT state, COUNT(*) FROM vms GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn task_status_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn create_task(
        &self,
        kind: &str,
        hs_name: Option<&str>,
        vm_uuid: Option<&str>,
        actor: &str,
    ) -> Result<Task, StoreError> {
        let sql = format!(
            "INSERT INTO tasks (kind, hs_name, vm_uuid, actor, step, status, progress, created_at, updated_at, controller) \
             VALUES ($1, $2, $3, $4, 'queued', 'running', 0, $5, $5, $6) RETURNING {}",
            TaskRow::COLUMNS
        );
        let row = sqlx::query_as::<_, TaskRow>(&sql)
            .bind(kind)
            .bind(hs_name.map(str::to_string))
            .bind(vm_uuid.map(str::to_string))
            .bind(actor)
            .bind(now())
            .bind(&self.cluster.controller)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    async fn update_task(&self, id: i64, step: &str, progress: u8) -> Result<(), StoreError> {
        // Progress only grows: a later phase reporting from 0 (a restore
        // after "stopping" at 5 %) must not move a watcher's bar back.
        sqlx::query(
            "UPDATE tasks SET step = $1, \
             progress = CASE WHEN $2 > progress THEN $2 ELSE progress END, updated_at = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(step)
        .bind(i64::from(progress))
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn finish_task(
        &self,
        id: i64,
        status: TaskStatus,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let result = result.map(to_json).transpose()?;
        // A failed task keeps the progress it reached; a finished one is at 100.
        let sql = if status == TaskStatus::Succeeded {
            "UPDATE tasks SET status = $1, step = $2, progress = 100, result = $3, error = $4, updated_at = $5 WHERE id = $6"
        } else {
            "UPDATE tasks SET status = $1, step = $2, result = $3, error = $4, updated_at = $5 WHERE id = $6"
        };
        sqlx::query(sql)
            .bind(status.as_str())
            .bind(if status == TaskStatus::Succeeded {
                "done"
            } else {
                "failed"
            })
            .bind(result)
            .bind(error.map(str::to_string))
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn fail_running_tasks(&self, error: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE tasks SET status = 'failed', step = 'failed', error = $1, updated_at = $2 WHERE status = 'running'")
            .bind(error)
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn running_tasks(&self) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE status = 'running' ORDER BY id",
            TaskRow::COLUMNS
        );
        decode_all(
            sqlx::query_as::<_, TaskRow>(&sql)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?,
        )
    }

    async fn list_tasks(
        &self,
        hs_name: Option<&str>,
        actor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let mut filter = Where::default();
        if let Some(hs_name) = hs_name {
            filter.eq_text("hs_name", hs_name);
        }
        if let Some(actor) = actor {
            filter.eq_text("actor", actor);
        }
        let sql = format!(
            "SELECT {} FROM tasks{} ORDER BY id DESC{}",
            TaskRow::COLUMNS,
            filter.sql(),
            filter.limit_sql()
        );
        decode_all(
            filter
                .bind(sqlx::query_as::<_, TaskRow>(&sql))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?,
        )
    }

    async fn insert_log(&self, new: NewLog<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO logs (ts, actor, user_id, source_ip, face, action, hs_name, target, ok, message) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(now())
        .bind(new.actor)
        .bind(new.user_id)
        .bind(new.source_ip)
        .bind(new.face)
        .bind(new.action)
        .bind(new.hs_name.map(str::to_string))
        .bind(new.target.map(str::to_string))
        .bind(i64::from(new.ok))
        .bind(new.message)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn list_logs(&self, filter: &LogFilter) -> Result<(Vec<LogEntry>, u64), StoreError> {
        let mut w = Where::default();
        if let Some(user_id) = filter.user_id {
            w.eq_int("user_id", user_id);
        }
        if let Some(hs_name) = filter.hs_name.as_deref() {
            w.eq_text("hs_name", hs_name);
        }
        if let Some(operation) = filter.operation.as_deref().filter(|o| !o.is_empty()) {
            w.contains("action", operation);
        }
        let total = w.count(&self.pool, "logs").await?;
        let order = if filter.desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {} FROM logs{} ORDER BY id {order}{}",
            LogRow::COLUMNS,
            w.sql(),
            w.page_sql()
        );
        let entries = w
            .bind_page(sqlx::query_as::<_, LogRow>(&sql), filter.page)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .into_iter()
            .map(LogEntry::from)
            .collect();
        Ok((entries, total))
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        // Settings hold the root token's hash and the token signing key:
        // another controller may cache what they decided.
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}
