//! Schema migrations, one SQL file per backend and version, applied in
//! order inside a transaction each.

use sqlx::AnyPool;

use crate::Backend;
use ironidc_core::store::StoreError;

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("migrations/sqlite/0001_init.sql"),
        postgres: include_str!("migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("migrations/sqlite/0002_network.sql"),
        postgres: include_str!("migrations/postgres/0002_network.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("migrations/sqlite/0003_accounts.sql"),
        postgres: include_str!("migrations/postgres/0003_accounts.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("migrations/sqlite/0004_vm_operations.sql"),
        postgres: include_str!("migrations/postgres/0004_vm_operations.sql"),
    },
];

pub async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let err = |e: sqlx::Error| StoreError::Migration(e.to_string());
    sqlx::query("CREATE TABLE IF NOT EXISTS ironidc_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(pool)
        .await
        .map_err(err)?;
    for m in MIGRATIONS {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM ironidc_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(pool)
                .await
                .map_err(err)?;
        if applied.is_some() {
            continue;
        }
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let mut tx = pool.begin().await.map_err(err)?;
        // The files hold plain DDL without semicolons inside literals.
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        sqlx::query("INSERT INTO ironidc_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(m.version)
            .bind(ironidc_core::service::now())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        tracing::info!(version = m.version, "database migrated");
    }
    Ok(())
}
