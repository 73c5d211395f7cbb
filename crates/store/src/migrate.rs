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
    let exists: i64 = sqlx::query_scalar(exists_sql)
        .bind(LEGACY_TABLE)
        .fetch_one(pool)
        .await
        .map_err(err)?;
    if exists == 0 {
        return Ok(());
    }
    let mut conn = pool.acquire().await.map_err(err)?;
    conn.ensure_migrations_table().await.map_err(err)?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await.map_err(err)?;
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
