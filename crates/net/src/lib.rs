//! Host networking for ironidc.
//!
//! - [`ipam`]: IPv4/IPv6 pool arithmetic (which addresses a pool holds, which is free).
//! - [`links`]: Linux bridges and taps, driven through `ip` with argument vectors.
//! - [`dhcp`]: one dnsmasq per NAT bridge, owned by ironidc, serving only reservations.
//! - [`nft`]: the `ironidc` nftables table: masquerade and port forwards in maps,
//!   changed in atomic transactions and reconciled against the database.
//! - [`tls`], [`acme`], [`proxy`]: the reverse proxy for domain bindings, with
//!   self-signed, uploaded and ACME (HTTP-01) certificates.

pub mod acme;
pub mod dhcp;
pub mod ipam;
pub mod links;
pub mod nft;
pub mod proxy;
pub mod tls;
