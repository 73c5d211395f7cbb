//! A VM's port forwards, addresses and domain bindings, and a host's
//! address pools in use.

use ironidc_core::service::{AddressView, CreatedProxy, NatRuleView, PoolUsage, ProxyView};
use serde::Serialize;
use utoipa::ToSchema;

/// A port forward from the host to a VM.
#[derive(Serialize, ToSchema)]
pub struct NatRuleReply {
    /// Its place in the VM's list; deletes go by it.
    index: usize,
    /// `tcp`, `udp` or `both`.
    protocol: String,
    external_port: u16,
    internal_ip: String,
    internal_port: u16,
    description: String,
    /// `public_addr[0]:external_port` when the host names a public address.
    public_endpoint: Option<String>,
    created_at: i64,
}

copy_fields!(NatRuleView => NatRuleReply { index, protocol, external_port, internal_ip, internal_port, description, public_endpoint, created_at });

/// An address of a VM.
#[derive(Serialize, ToSchema)]
pub struct AddressReply {
    /// Its place in the VM's list; deletes go by it.
    index: usize,
    /// `ipv4` or `ipv6`.
    #[serde(rename = "type")]
    vers: String,
    address: String,
    prefix: u8,
    netmask: String,
    gateway: String,
    /// The NIC it is on.
    nic: String,
    /// The host's pool it came from.
    pool: String,
    description: String,
}

copy_fields!(AddressView => AddressReply { index, vers, address, prefix, netmask, gateway, nic, pool, description });

/// One of a host's address pools, used and free.
#[derive(Serialize, ToSchema)]
pub struct PoolUsageReply {
    name: String,
    /// `ipv4` or `ipv6`.
    vers: String,
    /// `nat` or `pub`.
    #[serde(rename = "type")]
    kind: String,
    gateway: String,
    prefix: u8,
    total: usize,
    used: usize,
    free: usize,
    /// The first free addresses, in allocation order (at most `limit`).
    free_addresses: Vec<String>,
}

impl From<PoolUsage> for PoolUsageReply {
    fn from(p: PoolUsage) -> Self {
        let PoolUsage {
            name,
            vers,
            kind,
            gateway,
            prefix,
            total,
            used,
            free,
            free_addresses,
        } = p;
        Self {
            name,
            vers: vers.to_string(),
            kind: kind.to_string(),
            gateway,
            prefix,
            total,
            used,
            free,
            free_addresses,
        }
    }
}

/// A domain bound to a VM (reverse proxy).
#[derive(Serialize, ToSchema)]
pub struct ProxyReply {
    /// Its place in the VM's list; deletes go by it.
    index: usize,
    domain: String,
    backend_ip: String,
    backend_port: u16,
    ssl_enabled: bool,
    /// `letsencrypt`, `custom` or `self_signed`.
    ssl_type: String,
    /// `active`, `pending` (ACME running), `failed` or `none` (no SSL).
    cert_status: String,
    /// Unix seconds.
    cert_not_after: Option<i64>,
    cert_error: Option<String>,
    description: String,
    created_at: i64,
}

impl From<ProxyView> for ProxyReply {
    fn from(p: ProxyView) -> Self {
        let ProxyView {
            index,
            domain,
            backend_ip,
            backend_port,
            ssl_enabled,
            ssl_type,
            cert_status,
            cert_not_after,
            cert_error,
            description,
            created_at,
        } = p;
        Self {
            index,
            domain,
            backend_ip,
            backend_port,
            ssl_enabled,
            ssl_type,
            cert_status: cert_status.to_string(),
            cert_not_after,
            cert_error,
            description,
            created_at,
        }
    }
}

/// A new domain binding.
#[derive(Serialize, ToSchema)]
pub struct CreatedProxyReply {
    #[serde(flatten)]
    proxy: ProxyReply,
    /// The certificate's issuance task, for `letsencrypt`.
    task_id: Option<i64>,
}

impl From<CreatedProxy> for CreatedProxyReply {
    fn from(c: CreatedProxy) -> Self {
        let CreatedProxy { proxy, task_id } = c;
        Self {
            proxy: proxy.into(),
            task_id,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_binding_is_the_binding_and_its_task() {
        let proxy = ProxyView {
            index: 0,
            domain: "a.example".into(),
            backend_ip: "10.0.0.2".into(),
            backend_port: 80,
            ssl_enabled: false,
            ssl_type: String::new(),
            cert_status: "none",
            cert_not_after: None,
            cert_error: None,
            description: String::new(),
            created_at: 1,
        };
        let v = serde_json::to_value(CreatedProxyReply::from(CreatedProxy {
            proxy,
            task_id: None,
        }))
        .unwrap();
        assert_eq!(v["domain"], json!("a.example"));
        assert_eq!(v["cert_status"], json!("none"));
        assert_eq!(v["task_id"], json!(null));
        assert!(v.get("proxy").is_none());
    }

    #[test]
    fn pools_and_addresses_name_their_kind_type() {
        let v = serde_json::to_value(PoolUsageReply::from(PoolUsage {
            name: "p".into(),
            vers: "ipv4",
            kind: "nat",
            gateway: String::new(),
            prefix: 24,
            total: 1,
            used: 0,
            free: 1,
            free_addresses: vec![],
        }))
        .unwrap();
        assert_eq!((&v["vers"], &v["type"]), (&json!("ipv4"), &json!("nat")));
    }
}
