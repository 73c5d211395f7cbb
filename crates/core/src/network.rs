//! The network port: what the service layer needs from the host's network
//! stack. `ironidc-net` implements it with Linux bridges, dnsmasq, nftables
//! and its reverse proxy; the service layer only ever builds plans and rules.

use std::net::{IpAddr, Ipv4Addr};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};

/// Everything the network of the local hosts should look like. Applying it
/// is idempotent: missing pieces are made, foreign forwards are removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkPlan {
    pub bridges: Vec<BridgePlan>,
    pub forwards: Vec<PortForward>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BridgePlan {
    pub name: String,
    /// Addresses of the bridge itself (the pools' gateways), with prefix.
    pub addresses: Vec<IpNet>,
    /// An interface to enslave (a bridged public network).
    pub uplink: Option<String>,
    /// Subnets whose traffic leaving through another interface is masqueraded.
    pub masquerade: Vec<Ipv4Net>,
    /// DHCP reservations served on this bridge.
    pub dhcp: Option<DhcpPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DhcpPlan {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub dns: Vec<IpAddr>,
    pub reservations: Vec<DhcpReservation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpReservation {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForwardProtocol {
    Tcp,
    Udp,
}

/// One kernel port forward: `external_port` on the host to `internal_ip:internal_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortForward {
    pub protocol: ForwardProtocol,
    pub external_port: u16,
    pub internal_ip: Ipv4Addr,
    pub internal_port: u16,
}

/// What `apply` had to repair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkReport {
    pub bridges_created: usize,
    pub forwards_added: usize,
    pub forwards_removed: usize,
    pub table_rebuilt: bool,
}

/// A domain binding the reverse proxy serves.
#[derive(Debug, Clone)]
pub struct ProxyRoute {
    pub domain: String,
    pub backend: std::net::SocketAddr,
    /// PEM certificate chain and key when HTTPS is on and a certificate exists.
    pub tls: Option<CertificatePem>,
}

#[derive(Clone)]
pub struct CertificatePem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertificatePem {
    // The key is a secret: never in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificatePem")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A forward's external port is already taken in the kernel.
    #[error("port {0} is already forwarded on this host")]
    PortTaken(u16),
    /// The certificate or key given is unusable; the message says why.
    #[error("{0}")]
    BadCertificate(String),
    /// The ACME server refused or failed; the message names the step.
    #[error("certificate issuance failed: {0}")]
    Acme(String),
    /// The kernel or a helper program refused a change.
    #[error("{0}")]
    System(String),
}

#[async_trait]
pub trait Network: Send + Sync {
    /// Make bridges, addresses, DHCP and the nftables table match `plan`.
    async fn apply(&self, plan: &NetworkPlan) -> Result<NetworkReport, NetworkError>;
    /// Add forwards in one kernel transaction (all or nothing).
    async fn add_forwards(&self, forwards: &[PortForward]) -> Result<(), NetworkError>;
    /// Remove forwards in one kernel transaction; absent ones are ignored.
    async fn remove_forwards(&self, forwards: &[PortForward]) -> Result<(), NetworkError>;
    /// (protocol, port) of the sockets host processes listen on; a forward
    /// onto one would capture that service's traffic.
    fn listening_ports(&self) -> std::collections::BTreeSet<(ForwardProtocol, u16)>;
    /// Take down a bridge no host uses any more: its DHCP server and the
    /// link itself (an enslaved uplink is released, not deleted). Its
    /// masquerade goes with the next `apply`.
    async fn remove_bridge(&self, bridge: &str) -> Result<(), NetworkError>;
    /// Serve DHCP reservations on one bridge (after an address change).
    async fn apply_dhcp(&self, bridge: &str, dhcp: &DhcpPlan) -> Result<(), NetworkError>;
    /// Replace the reverse proxy's routes; returns domains whose certificate
    /// could not be loaded (they are served over HTTP only) with the reason.
    fn set_proxy_routes(&self, routes: Vec<ProxyRoute>) -> Vec<(String, String)>;
    /// Obtain a certificate for `domain` from the configured ACME directory.
    async fn issue_certificate(&self, domain: &str) -> Result<CertificatePem, NetworkError>;
    /// A self-signed certificate for `domain`.
    fn self_signed_certificate(&self, domain: &str) -> Result<CertificatePem, NetworkError>;
    /// Check that `pem` is a usable certificate and key for `domain`;
    /// returns its expiry (Unix seconds).
    fn inspect_certificate(&self, pem: &CertificatePem, domain: &str) -> Result<i64, NetworkError>;
}
