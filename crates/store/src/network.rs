//! Rows of the network tables: VM addresses, NAT rules, proxy bindings and
//! the MAC index of NICs.

use ironidc_core::model::{NatRule, ProxyBinding, VmAddress, VmConfig};
use ironidc_core::service::now;
use ironidc_core::store::{Scope, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::rows::{db, flag, with_value};
use crate::sql_store::SqlStore;

const ADDRESS_COLUMNS: &str =
    "id, host_id, vm_id, nic, vers, address, prefix, gateway, pool, description, created_at";
const NAT_COLUMNS: &str = "id, host_id, vm_id, protocol, external_port, internal_ip, \
     internal_port, description, created_at";
const PROXY_COLUMNS: &str = "id, host_id, vm_id, domain, backend_ip, backend_port, ssl_enabled, \
     ssl_type, cert_pem, key_sealed, cert_not_after, cert_error, description, created_at";

fn port(row: &AnyRow, column: &str) -> Result<u16, StoreError> {
    let value: i64 = row.try_get(column).map_err(db)?;
    u16::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value}")))
}

fn address(row: &AnyRow) -> Result<VmAddress, StoreError> {
    let prefix: i64 = row.try_get("prefix").map_err(db)?;
    Ok(VmAddress {
        id: row.try_get("id").map_err(db)?,
        host_id: row.try_get("host_id").map_err(db)?,
        vm_id: row.try_get("vm_id").map_err(db)?,
        nic: row.try_get("nic").map_err(db)?,
        vers: row.try_get("vers").map_err(db)?,
        address: row.try_get("address").map_err(db)?,
        prefix: u8::try_from(prefix)
            .map_err(|_| StoreError::Corrupt(format!("prefix {prefix}")))?,
        gateway: row.try_get("gateway").map_err(db)?,
        pool: row.try_get("pool").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

fn nat_rule(row: &AnyRow) -> Result<NatRule, StoreError> {
    Ok(NatRule {
        id: row.try_get("id").map_err(db)?,
        host_id: row.try_get("host_id").map_err(db)?,
        vm_id: row.try_get("vm_id").map_err(db)?,
        protocol: row.try_get("protocol").map_err(db)?,
        external_port: port(row, "external_port")?,
        internal_ip: row.try_get("internal_ip").map_err(db)?,
        internal_port: port(row, "internal_port")?,
        description: row.try_get("description").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

fn proxy(row: &AnyRow) -> Result<ProxyBinding, StoreError> {
    Ok(ProxyBinding {
        id: row.try_get("id").map_err(db)?,
        host_id: row.try_get("host_id").map_err(db)?,
        vm_id: row.try_get("vm_id").map_err(db)?,
        domain: row.try_get("domain").map_err(db)?,
        backend_ip: row.try_get("backend_ip").map_err(db)?,
        backend_port: port(row, "backend_port")?,
        ssl_enabled: flag(row, "ssl_enabled")?,
        ssl_type: row.try_get("ssl_type").map_err(db)?,
        cert_pem: row.try_get("cert_pem").map_err(db)?,
        key_sealed: row.try_get("key_sealed").map_err(db)?,
        cert_not_after: row.try_get("cert_not_after").map_err(db)?,
        cert_error: row.try_get("cert_error").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

/// `WHERE` clause and bound id of a scope. The id placeholder is always $1.
fn scope_filter(scope: Scope) -> (&'static str, i64) {
    match scope {
        Scope::All => ("$1 = $1", 0),
        Scope::Host(id) => ("host_id = $1", id),
        Scope::Vm(id) => ("vm_id = $1", id),
    }
}

/// Rewrite the MAC index of a VM from its NICs, inside the caller's
/// transaction, so a MAC used twice is refused with the VM write itself.
pub(crate) async fn replace_vm_nics(
    tx: &mut Transaction<'_, Any>,
    vm_id: i64,
    config: &VmConfig,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM vm_nics WHERE vm_id = $1")
        .bind(vm_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    for (name, nic) in &config.nic_all {
        sqlx::query("INSERT INTO vm_nics (mac, vm_id, name) VALUES ($1, $2, $3)")
            .bind(&nic.mac_addr)
            .bind(vm_id)
            .bind(name)
            .execute(&mut **tx)
            .await
            .map_err(|e| with_value(db(e), &nic.mac_addr))?;
    }
    Ok(())
}

impl SqlStore {
    async fn list<T>(
        &self,
        table: &str,
        columns: &str,
        scope: Scope,
        decode: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let (filter, id) = scope_filter(scope);
        let sql = format!("SELECT {columns} FROM {table} WHERE {filter} ORDER BY id");
        sqlx::query(&sql)
            .bind(id)
            .fetch_all(self.pool())
            .await
            .map_err(db)?
            .iter()
            .map(decode)
            .collect()
    }

    pub(crate) async fn delete_row(&self, table: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    pub(crate) async fn insert_address_row(&self, a: &VmAddress) -> Result<VmAddress, StoreError> {
        let sql = format!(
            "INSERT INTO vm_addresses (host_id, vm_id, nic, vers, address, prefix, gateway, pool, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {ADDRESS_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(a.host_id)
            .bind(a.vm_id)
            .bind(&a.nic)
            .bind(&a.vers)
            .bind(&a.address)
            .bind(i64::from(a.prefix))
            .bind(&a.gateway)
            .bind(&a.pool)
            .bind(&a.description)
            .bind(now())
            .fetch_one(self.pool())
            .await
            .map_err(|e| with_value(db(e), &a.address))?;
        address(&row)
    }

    pub(crate) async fn address_rows(&self, scope: Scope) -> Result<Vec<VmAddress>, StoreError> {
        self.list("vm_addresses", ADDRESS_COLUMNS, scope, address)
            .await
    }

    pub(crate) async fn insert_nat_row(&self, r: &NatRule) -> Result<NatRule, StoreError> {
        let sql = format!(
            "INSERT INTO nat_rules (host_id, vm_id, protocol, external_port, internal_ip, internal_port, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {NAT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(r.host_id)
            .bind(r.vm_id)
            .bind(&r.protocol)
            .bind(i64::from(r.external_port))
            .bind(&r.internal_ip)
            .bind(i64::from(r.internal_port))
            .bind(&r.description)
            .bind(now())
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        nat_rule(&row)
    }

    pub(crate) async fn nat_rows(&self, scope: Scope) -> Result<Vec<NatRule>, StoreError> {
        self.list("nat_rules", NAT_COLUMNS, scope, nat_rule).await
    }

    pub(crate) async fn insert_proxy_row(
        &self,
        p: &ProxyBinding,
    ) -> Result<ProxyBinding, StoreError> {
        let sql = format!(
            "INSERT INTO proxies (host_id, vm_id, domain, backend_ip, backend_port, ssl_enabled, ssl_type, \
             cert_pem, key_sealed, cert_not_after, cert_error, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {PROXY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(p.host_id)
            .bind(p.vm_id)
            .bind(&p.domain)
            .bind(&p.backend_ip)
            .bind(i64::from(p.backend_port))
            .bind(i64::from(p.ssl_enabled))
            .bind(&p.ssl_type)
            .bind(p.cert_pem.clone())
            .bind(p.key_sealed.clone())
            .bind(p.cert_not_after)
            .bind(p.cert_error.clone())
            .bind(&p.description)
            .bind(now())
            .fetch_one(self.pool())
            .await
            .map_err(|e| with_value(db(e), &p.domain))?;
        proxy(&row)
    }

    pub(crate) async fn proxy_rows(&self, scope: Scope) -> Result<Vec<ProxyBinding>, StoreError> {
        self.list("proxies", PROXY_COLUMNS, scope, proxy).await
    }

    pub(crate) async fn update_proxy_error(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE proxies SET cert_error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    pub(crate) async fn update_proxy_certificate(
        &self,
        id: i64,
        cert_pem: Option<&str>,
        key_sealed: Option<&str>,
        not_after: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE proxies SET cert_pem = $1, key_sealed = $2, cert_not_after = $3, cert_error = $4 WHERE id = $5",
        )
        .bind(cert_pem.map(str::to_string))
        .bind(key_sealed.map(str::to_string))
        .bind(not_after)
        .bind(error.map(str::to_string))
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }
}
