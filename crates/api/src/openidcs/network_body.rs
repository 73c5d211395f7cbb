//! The bodies of the network calls (port forwards, addresses, domain
//! bindings) as OpenIDCS clients send them: numbers and flags as text or
//! not, and fields ironidc does not model ignored with a logged note.

use std::collections::BTreeMap;

use ironidc_core::service::{AddressInput, NatInput, ProxyInput};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::lenient::{note_ignored, opt_bool, opt_number, opt_text};

/// `natadd`: a port forward.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct NatBody {
    /// `tcp` (default), `udp` or `both`.
    #[serde(deserialize_with = "opt_text")]
    protocol: Option<String>,
    /// 0 or absent: the first free port of the host's range.
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u32>)]
    external_port: Option<u32>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u32>)]
    internal_port: Option<u32>,
    /// One of the VM's addresses; empty: its first IPv4 address.
    #[serde(deserialize_with = "opt_text")]
    internal_ip: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    description: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    ignored: BTreeMap<String, serde_json::Value>,
}

impl From<NatBody> for NatInput {
    fn from(b: NatBody) -> Self {
        note_ignored("OpenIDCS port forward", &b.ignored);
        NatInput {
            protocol: b.protocol.unwrap_or_default(),
            external_port: b.external_port.unwrap_or(0),
            internal_port: b.internal_port.unwrap_or(0),
            internal_ip: b.internal_ip.unwrap_or_default(),
            description: b.description.unwrap_or_default(),
        }
    }
}

/// `ipaddr/create`: every field is optional except what the host cannot guess.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct AddressBody {
    /// `ipv4` (default) or `ipv6`.
    #[serde(rename = "type", deserialize_with = "opt_text")]
    vers: Option<String>,
    /// A free address inside one of the host's pools; empty: the first free one.
    #[serde(deserialize_with = "opt_text")]
    address: Option<String>,
    /// Informational: the pool decides mask and gateway; a different value is refused.
    #[serde(deserialize_with = "opt_text")]
    netmask: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    gateway: Option<String>,
    /// NIC name; empty: the VM's first NIC.
    #[serde(deserialize_with = "opt_text")]
    nic: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    description: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    ignored: BTreeMap<String, serde_json::Value>,
}

impl From<AddressBody> for AddressInput {
    fn from(b: AddressBody) -> Self {
        note_ignored("OpenIDCS address", &b.ignored);
        AddressInput {
            vers: b.vers.unwrap_or_default(),
            address: b.address.unwrap_or_default(),
            netmask: b.netmask.unwrap_or_default(),
            gateway: b.gateway.unwrap_or_default(),
            nic: b.nic.unwrap_or_default(),
            description: b.description.unwrap_or_default(),
        }
    }
}

/// `proxyadd`: a domain bound to the VM, optionally with TLS.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ProxyBody {
    #[serde(deserialize_with = "opt_text")]
    domain: Option<String>,
    /// One of the VM's addresses; empty: its first IPv4 address.
    #[serde(deserialize_with = "opt_text")]
    backend_ip: Option<String>,
    /// Default 80.
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u32>)]
    backend_port: Option<u32>,
    #[serde(deserialize_with = "opt_bool")]
    #[schema(value_type = Option<bool>)]
    ssl_enabled: Option<bool>,
    /// `letsencrypt`, `custom` or `self_signed`; required with `ssl_enabled`.
    #[serde(deserialize_with = "opt_text")]
    ssl_type: Option<String>,
    /// PEM chain and key for `custom`.
    #[serde(deserialize_with = "opt_text")]
    ssl_cert: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    ssl_key: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    description: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    ignored: BTreeMap<String, serde_json::Value>,
}

impl From<ProxyBody> for ProxyInput {
    fn from(b: ProxyBody) -> Self {
        note_ignored("OpenIDCS domain binding", &b.ignored);
        ProxyInput {
            domain: b.domain.unwrap_or_default(),
            backend_ip: b.backend_ip.unwrap_or_default(),
            backend_port: b.backend_port.unwrap_or(0),
            ssl_enabled: b.ssl_enabled.unwrap_or(false),
            ssl_type: b.ssl_type.unwrap_or_default(),
            ssl_cert: b.ssl_cert.unwrap_or_default(),
            ssl_key: b.ssl_key.unwrap_or_default(),
            description: b.description.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn php_shaped_bodies_and_extra_fields_are_taken() {
        let nat: NatBody = crate::decode::from_json(serde_json::json!({
            "internal_port": "22", "external_port": 0, "protocol": "tcp", "vm_uuid": "x"
        }))
        .unwrap();
        let input = NatInput::from(nat);
        assert_eq!((input.internal_port, input.external_port), (22, 0));
        let proxy: ProxyBody = crate::decode::from_json(serde_json::json!({
            "domain": "a.example", "backend_port": "8080", "ssl_enabled": "0", "hs_name": "h1"
        }))
        .unwrap();
        let input = ProxyInput::from(proxy);
        assert_eq!((input.backend_port, input.ssl_enabled), (8080, false));
        let err = crate::decode::from_json::<NatBody>(serde_json::json!({"internal_port": "ssh"}))
            .unwrap_err();
        assert!(err.to_string().contains("internal_port"), "{err}");
    }
}
