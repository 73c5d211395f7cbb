//! Rows for VM operations: console tokens, status-report secrets and the
//! retention of the status series.

use async_trait::async_trait;
use ironidc_core::accounts::Page;
use ironidc_core::model::{Task, Vm};
use ironidc_core::service::now;
use ironidc_core::store::{ConsoleToken, NewConsoleToken, OpsStore, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::filter::Where;
use crate::rows::{db, flag, TASK_COLUMNS, VM_COLUMNS};
use crate::sql_store::SqlStore;

const CONSOLE_COLUMNS: &str =
    "id, token_hash, vm_id, user_id, actor, created_at, last_used_at, opened_at, revoked";

fn console_token(row: &AnyRow) -> Result<ConsoleToken, StoreError> {
    Ok(ConsoleToken {
        id: row.try_get("id").map_err(db)?,
        token_hash: row.try_get("token_hash").map_err(db)?,
        vm_id: row.try_get("vm_id").map_err(db)?,
        user_id: row.try_get("user_id").map_err(db)?,
        actor: row.try_get("actor").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        last_used_at: row.try_get("last_used_at").map_err(db)?,
        opened_at: row.try_get("opened_at").map_err(db)?,
        revoked: flag(row, "revoked")?,
    })
}

#[async_trait]
impl OpsStore for SqlStore {
    async fn insert_console_token(
        &self,
        new: &NewConsoleToken,
    ) -> Result<ConsoleToken, StoreError> {
        let sql = format!(
            "INSERT INTO console_tokens (token_hash, vm_id, user_id, actor, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CONSOLE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&new.token_hash)
            .bind(new.vm_id)
            .bind(new.user_id)
            .bind(&new.actor)
            .bind(now())
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        console_token(&row)
    }

    async fn console_token_by_hash(&self, hash: &str) -> Result<Option<ConsoleToken>, StoreError> {
        let sql = format!("SELECT {CONSOLE_COLUMNS} FROM console_tokens WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.as_ref().map(console_token).transpose()
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
            "SELECT {CONSOLE_COLUMNS} FROM console_tokens WHERE vm_id = $1 ORDER BY id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(vm_id)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        rows.iter().map(console_token).collect()
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

    async fn vm_page(&self, owner: Option<i64>, page: Page) -> Result<(Vec<Vm>, u64), StoreError> {
        let mut filter = Where::default();
        if let Some(owner) = owner {
            filter.eq_int("v.owner_id", owner);
        }
        let total = filter.count(self.pool(), "vms v").await?;
        let sql = format!(
            "SELECT {VM_COLUMNS} FROM vms v JOIN hosts h ON h.id = v.host_id{} ORDER BY v.id{}",
            filter.sql(),
            filter.page_sql()
        );
        let vms = filter
            .bind_page(sqlx::query(&sql), page)
            .fetch_all(self.pool())
            .await
            .map_err(db)?
            .iter()
            .map(crate::rows::vm)
            .collect::<Result<_, _>>()?;
        Ok((vms, total))
    }

    async fn task_by_id(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.as_ref().map(crate::rows::task).transpose()
    }

    async fn vm_report_secret(&self, vm_id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT report_secret FROM vms WHERE id = $1")
            .bind(vm_id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        match row {
            Some(row) => row.try_get("report_secret").map_err(db),
            None => Ok(None),
        }
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
