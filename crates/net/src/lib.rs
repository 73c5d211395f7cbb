//! Host networking for ironidc.
//!
//! - [`links`]: Linux bridges and taps, driven through `ip` with argument vectors.
//! - [`dhcp`]: one dnsmasq per NAT bridge, owned by ironidc, serving only reservations.
//! - [`nft`]: the `ironidc` nftables table: masquerade and port forwards in maps,
//!   changed in atomic transactions and reconciled against the database.
//! - [`tls`], [`acme`], [`proxy`]: the reverse proxy for domain bindings, with
//!   self-signed, uploaded and ACME (HTTP-01) certificates.
//! - [`HostNetwork`]: all of the above behind the core's `Network` port.
//!
//! IP pool arithmetic lives in the core (`ironidc_core::ipam`): the service
//! layer allocates addresses, this crate only applies the result.

pub mod acme;
pub mod dhcp;
mod host_network;
pub mod http_conn;
pub mod links;
pub mod listening;
pub mod nft;
pub mod proxy;
pub mod tls;

pub use host_network::{HostNetwork, HostNetworkOptions};
