//! Rows of the network tables: VM addresses, NAT rules and proxy bindings.

use ironidc_core::model::{NatRule, ProxyBinding, VmAddress};
use ironidc_core::store::StoreError;

use super::flag;

/// A port column: an integer that must fit a `u16`.
fn port(column: &str, value: i64) -> Result<u16, StoreError> {
    u16::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value}")))
}

/// A `vm_addresses` row.
#[derive(sqlx::FromRow)]
pub(crate) struct AddressRow {
    id: i64,
    host_id: i64,
    vm_id: i64,
    nic: String,
    vers: String,
    address: String,
    prefix: i64,
    gateway: String,
    pool: String,
    description: String,
    created_at: i64,
}

impl AddressRow {
    pub(crate) const COLUMNS: &'static str =
        "id, host_id, vm_id, nic, vers, address, prefix, gateway, pool, description, created_at";
}

impl TryFrom<AddressRow> for VmAddress {
    type Error = StoreError;

    fn try_from(row: AddressRow) -> Result<Self, StoreError> {
        Ok(VmAddress {
            id: row.id,
            host_id: row.host_id,
            vm_id: row.vm_id,
            nic: row.nic,
            vers: row.vers,
            address: row.address,
            prefix: u8::try_from(row.prefix)
                .map_err(|_| StoreError::Corrupt(format!("prefix {}", row.prefix)))?,
            gateway: row.gateway,
            pool: row.pool,
            description: row.description,
            created_at: row.created_at,
        })
    }
}

/// A `nat_rules` row.
#[derive(sqlx::FromRow)]
pub(crate) struct NatRuleRow {
    id: i64,
    host_id: i64,
    vm_id: i64,
    protocol: String,
    external_port: i64,
    internal_ip: String,
    internal_port: i64,
    description: String,
    created_at: i64,
}

impl NatRuleRow {
    pub(crate) const COLUMNS: &'static str = "id, host_id, vm_id, protocol, external_port, \
         internal_ip, internal_port, description, created_at";
}

impl TryFrom<NatRuleRow> for NatRule {
    type Error = StoreError;

    fn try_from(row: NatRuleRow) -> Result<Self, StoreError> {
        Ok(NatRule {
            id: row.id,
            host_id: row.host_id,
            vm_id: row.vm_id,
            protocol: row.protocol,
            external_port: port("external_port", row.external_port)?,
            internal_ip: row.internal_ip,
            internal_port: port("internal_port", row.internal_port)?,
            description: row.description,
            created_at: row.created_at,
        })
    }
}

/// A `proxies` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ProxyRow {
    id: i64,
    host_id: i64,
    vm_id: i64,
    domain: String,
    backend_ip: String,
    backend_port: i64,
    ssl_enabled: i64,
    ssl_type: String,
    cert_pem: Option<String>,
    /// Sealed by the core; stored and returned as is.
    key_sealed: Option<String>,
    cert_not_after: Option<i64>,
    cert_error: Option<String>,
    description: String,
    created_at: i64,
}

impl ProxyRow {
    pub(crate) const COLUMNS: &'static str = "id, host_id, vm_id, domain, backend_ip, \
         backend_port, ssl_enabled, ssl_type, cert_pem, key_sealed, cert_not_after, cert_error, \
         description, created_at";
}

impl TryFrom<ProxyRow> for ProxyBinding {
    type Error = StoreError;

    fn try_from(row: ProxyRow) -> Result<Self, StoreError> {
        Ok(ProxyBinding {
            id: row.id,
            host_id: row.host_id,
            vm_id: row.vm_id,
            domain: row.domain,
            backend_ip: row.backend_ip,
            backend_port: port("backend_port", row.backend_port)?,
            ssl_enabled: flag(row.ssl_enabled),
            ssl_type: row.ssl_type,
            cert_pem: row.cert_pem,
            key_sealed: row.key_sealed,
            cert_not_after: row.cert_not_after,
            cert_error: row.cert_error,
            description: row.description,
            created_at: row.created_at,
        })
    }
}
