//! Rows of the network tables: VM addresses, NAT rules, proxy bindings and
//! the MAC index of NICs.

use ironidc_core::model::{NatRule, ProxyBinding, VmAddress, VmConfig};
use ironidc_core::service::now;
use ironidc_core::store::{Scope, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Transaction};

use crate::rows::{db, decode_all, with_value, AddressRow, NatRuleRow, ProxyRow};
use crate::sql_store::SqlStore;

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
    /// The rows of `table` in `scope`, in id order, read as `R` and
    /// decoded into `T`.
    async fn list<R, T>(
        &self,
        table: &str,
        columns: &str,
        scope: Scope,
    ) -> Result<Vec<T>, StoreError>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        T: TryFrom<R, Error = StoreError>,
    {
        let (filter, id) = scope_filter(scope);
        let sql = format!("SELECT {columns} FROM {table} WHERE {filter} ORDER BY id");
        decode_all(
            sqlx::query_as::<_, R>(&sql)
                .bind(id)
                .fetch_all(self.pool())
                .await
                .map_err(db)?,
        )
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {}",
            AddressRow::COLUMNS
        );
        let row = sqlx::query_as::<_, AddressRow>(&sql)
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
        row.try_into()
    }

    pub(crate) async fn address_rows(&self, scope: Scope) -> Result<Vec<VmAddress>, StoreError> {
        self.list::<AddressRow, _>("vm_addresses", AddressRow::COLUMNS, scope)
            .await
    }

    pub(crate) async fn insert_nat_row(&self, r: &NatRule) -> Result<NatRule, StoreError> {
        let sql = format!(
            "INSERT INTO nat_rules (host_id, vm_id, protocol, external_port, internal_ip, internal_port, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {}",
            NatRuleRow::COLUMNS
        );
        let row = sqlx::query_as::<_, NatRuleRow>(&sql)
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
        row.try_into()
    }

    pub(crate) async fn nat_rows(&self, scope: Scope) -> Result<Vec<NatRule>, StoreError> {
        self.list::<NatRuleRow, _>("nat_rules", NatRuleRow::COLUMNS, scope)
            .await
    }

    pub(crate) async fn insert_proxy_row(
        &self,
        p: &ProxyBinding,
    ) -> Result<ProxyBinding, StoreError> {
        let sql = format!(
            "INSERT INTO proxies (host_id, vm_id, domain, backend_ip, backend_port, ssl_enabled, ssl_type, \
             cert_pem, key_sealed, cert_not_after, cert_error, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {}",
            ProxyRow::COLUMNS
        );
        let row = sqlx::query_as::<_, ProxyRow>(&sql)
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
        row.try_into()
    }

    pub(crate) async fn proxy_rows(&self, scope: Scope) -> Result<Vec<ProxyBinding>, StoreError> {
        self.list::<ProxyRow, _>("proxies", ProxyRow::COLUMNS, scope)
            .await
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
