//! Schema migrations: one directory of SQL files per backend, embedded and
//! checksummed by `sqlx::migrate!`. A changed file that was already
//! applied is refused at start-up, not silently skipped.
//!
//! Databases made before the switch to sqlx's migrator recorded their
//! versions in `ironidc_migrations`; they are adopted once: the versions
//! they hold are entered into sqlx's table with the checksums of today's
//! files (those files have not changed since), and the old table goes.

use sqlx::migrate::{Migrate, Migrator};
use sqlx::AnyPool;

use crate::Backend;
use ironidc_core::store::StoreError;

static SQLITE: Migrator = sqlx::migrate!("src/migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("src/migrations/postgres");

const LEGACY_TABLE: &str = "ironidc_migrations";
/// The PostgreSQL advisory lock held while a legacy history is adopted.
const ADOPTION_LOCK: i64 = 0x6972_6f6e_6964_6301;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Migration(e.to_string())
}

pub async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    adopt_legacy(pool, backend, migrator).await?;
    migrator.run(pool).await.map_err(err)?;
    Ok(())
}

/// Whether the pre-sqlx history table is there.
async fn legacy_exists<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    exists_sql: &'e str,
) -> Result<bool, StoreError> {
    sqlx::query_scalar::<_, i64>(exists_sql)
        .bind(LEGACY_TABLE)
        .fetch_one(exec)
        .await
        .map(|n| n > 0)
        .map_err(err)
}

async fn adopt_legacy(
    pool: &AnyPool,
    backend: Backend,
    migrator: &Migrator,
) -> Result<(), StoreError> {
    let exists_sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    if !legacy_exists(pool, exists_sql).await? {
        return Ok(());
    }
    // Several controllers may start on one PostgreSQL database at once:
    // the first adopts under a lock, the others then find nothing to do.
    let mut conn = pool.acquire().await.map_err(err)?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await.map_err(err)?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(ADOPTION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    if !legacy_exists(&mut *tx, exists_sql).await? {
        return Ok(());
    }
    tx.ensure_migrations_table().await.map_err(err)?;
    let applied: Vec<i64> = sqlx::query_scalar(&format!("SELECT version FROM {LEGACY_TABLE}"))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
    for version in applied {
        let Some(m) = migrator.iter().find(|m| m.version == version) else {
            return Err(err(format!(
                "the database has migration {version}, which this ironidc does not know; \
                 it was made by a newer version"
            )));
        };
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, 0)",
        )
        .bind(m.version)
        .bind(m.description.to_string())
        .bind(m.checksum.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    sqlx::query(&format!("DROP TABLE {LEGACY_TABLE}"))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    tracing::info!("schema history adopted from {LEGACY_TABLE} into sqlx's migrator");
    Ok(())
}
