//! Rows for VM operations: console tokens, status-report secrets and the
//! retention of the status series.

use async_trait::async_trait;
use ironidc_core::accounts::Page;
use ironidc_core::model::{Task, Vm};
use ironidc_core::service::now;
use ironidc_core::store::{ConsoleToken, NewConsoleToken, OpsStore, StoreError, VmFilter};

use crate::filter::Where;
use crate::rows::{db, decode_all, ConsoleTokenRow, TaskRow, VmRow};
use crate::sql_store::SqlStore;

#[async_trait]
impl OpsStore for SqlStore {
    async fn insert_console_token(
        &self,
        new: &NewConsoleToken,
    ) -> Result<ConsoleToken, StoreError> {
        let sql = format!(
            "INSERT INTO console_tokens (token_hash, vm_id, user_id, actor, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {}",
            ConsoleTokenRow::COLUMNS
        );
        let row = sqlx::query_as::<_, ConsoleTokenRow>(&sql)
            .bind(&new.token_hash)
            .bind(new.vm_id)
            .bind(new.user_id)
            .bind(&new.actor)
            .bind(now())
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        Ok(row.into())
    }

    async fn console_token_by_hash(&self, hash: &str) -> Result<Option<ConsoleToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM console_tokens WHERE token_hash = $1",
            ConsoleTokenRow::COLUMNS
        );
        let row = sqlx::query_as::<_, ConsoleTokenRow>(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        Ok(row.map(ConsoleToken::from))
    }

    async fn open_console_token(&self, id: i64, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE console_tokens SET opened_at = $1, last_used_at = $1 \
             WHERE id = $2 AND opened_at IS NULL AND revoked = 0",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_console_token(&self, id: i64, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE console_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn revoke_console_tokens(
        &self,
        vm_id: i64,
        user_id: Option<i64>,
    ) -> Result<u64, StoreError> {
        let done = match user_id {
            Some(user) => sqlx::query(
                "UPDATE console_tokens SET revoked = 1 WHERE vm_id = $1 AND user_id = $2 AND revoked = 0",
            )
            .bind(vm_id)
            .bind(user),
            None => sqlx::query(
                "UPDATE console_tokens SET revoked = 1 WHERE vm_id = $1 AND revoked = 0",
            )
            .bind(vm_id),
        }
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn console_tokens(&self, vm_id: i64) -> Result<Vec<ConsoleToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM console_tokens WHERE vm_id = $1 ORDER BY id DESC",
            ConsoleTokenRow::COLUMNS
        );
        let rows = sqlx::query_as::<_, ConsoleTokenRow>(&sql)
            .bind(vm_id)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(ConsoleToken::from).collect())
    }

    async fn purge_console_tokens(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM console_tokens WHERE last_used_at < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn vm_by_id(&self, id: i64) -> Result<Option<Vm>, StoreError> {
        Ok(self.vm_where("WHERE v.id = $1", (id, None)).await?.pop())
    }

    async fn all_vms(&self) -> Result<Vec<Vm>, StoreError> {
        self.vm_where("WHERE $1 = $1 ORDER BY v.id", (0, None))
            .await
    }

    async fn vm_page(&self, filter: VmFilter, page: Page) -> Result<(Vec<Vm>, u64), StoreError> {
        let filter = vm_filter(filter);
        // Two indexed queries: the count reads only (host_id, id) or
        // (owner_id) index entries, the page only `limit` rows. One query
        // with COUNT(*) OVER () would read every matching row's config.
        let total = filter.count(self.pool(), "vms v").await?;
        let sql = format!(
            "SELECT {} FROM vms v JOIN hosts h ON h.id = v.host_id{} ORDER BY v.id{}",
            VmRow::COLUMNS,
            filter.sql(),
            filter.page_sql()
        );
        let vms = decode_all(
            filter
                .bind_page(sqlx::query_as::<_, VmRow>(&sql), page)
                .fetch_all(self.pool())
                .await
                .map_err(db)?,
        )?;
        Ok((vms, total))
    }

    async fn count_vms(&self, filter: VmFilter) -> Result<u64, StoreError> {
        vm_filter(filter).count(self.pool(), "vms v").await
    }

    async fn task_by_id(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {} FROM tasks WHERE id = $1", TaskRow::COLUMNS);
        let row = sqlx::query_as::<_, TaskRow>(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.map(Task::try_from).transpose()
    }

    async fn vm_report_secret(&self, vm_id: i64) -> Result<Option<String>, StoreError> {
        // No VM and a VM without a secret both answer `None`.
        let secret: Option<Option<String>> =
            sqlx::query_scalar("SELECT report_secret FROM vms WHERE id = $1")
                .bind(vm_id)
                .fetch_optional(self.pool())
                .await
                .map_err(db)?;
        Ok(secret.flatten())
    }

    async fn set_vm_report_secret(&self, vm_id: i64, sealed: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE vms SET report_secret = $1 WHERE id = $2")
            .bind(sealed)
            .bind(vm_id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_vm_status(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM vm_status WHERE ts < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

/// The `WHERE` of a VM filter, on `vms v`.
fn vm_filter(filter: VmFilter) -> Where {
    let mut w = Where::default();
    if let Some(host_id) = filter.host_id {
        w.eq_int("v.host_id", host_id);
    }
    if let Some(owner) = filter.owner_id {
        w.eq_int("v.owner_id", owner);
    }
    w
}
