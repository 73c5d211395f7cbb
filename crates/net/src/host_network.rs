//! The core's `Network` port over this machine's kernel and daemons:
//! bridges (`links`), dnsmasq (`dhcp`), the nftables table (`nft`) and the
//! reverse proxy with its certificates (`proxy`, `tls`, `acme`).

use std::path::PathBuf;

use async_trait::async_trait;
use ironidc_core::network::{
    CertificatePem, DhcpPlan, ForwardProtocol, Network, NetworkError, NetworkPlan, NetworkReport,
    PortForward, ProxyRoute,
};

use crate::acme::{self, AcmeOptions};
use crate::dhcp::{DhcpConfig, Dnsmasq, Reservation};
use crate::links;
use crate::nft::{Forward, Masquerade, NatTable, Nft, NftError, Protocol};
use crate::proxy::{ReverseProxy, Route};
use crate::tls::{self, CertPair};

#[derive(Debug, Clone)]
pub struct HostNetworkOptions {
    /// Where dnsmasq's configuration, leases and pid files live.
    pub run_dir: PathBuf,
    /// The ACME directory and account; `None`: `letsencrypt` bindings fail
    /// with a message saying ACME is not configured.
    pub acme: Option<AcmeOptions>,
}

pub struct HostNetwork {
    nft: Nft,
    dnsmasq: Dnsmasq,
    proxy: ReverseProxy,
    acme: Option<AcmeOptions>,
}

impl HostNetwork {
    pub fn new(opts: HostNetworkOptions, proxy: ReverseProxy) -> Self {
        Self {
            nft: Nft::new(),
            dnsmasq: Dnsmasq::new(opts.run_dir),
            proxy,
            acme: opts.acme,
        }
    }
}

fn system(what: &str, e: impl std::fmt::Display) -> NetworkError {
    NetworkError::System(format!("{what}: {e}"))
}

fn forward(f: &PortForward) -> Forward {
    Forward {
        protocol: match f.protocol {
            ForwardProtocol::Tcp => Protocol::Tcp,
            ForwardProtocol::Udp => Protocol::Udp,
        },
        external_port: f.external_port,
        internal_ip: f.internal_ip,
        internal_port: f.internal_port,
    }
}

fn dhcp_config(bridge: &str, plan: &DhcpPlan) -> DhcpConfig {
    DhcpConfig {
        bridge: bridge.to_string(),
        subnet: plan.subnet,
        gateway: plan.gateway,
        dns: plan.dns.clone(),
        reservations: plan
            .reservations
            .iter()
            .map(|r| Reservation {
                mac: r.mac.clone(),
                ip: r.ip,
                hostname: r.hostname.clone(),
            })
            .collect(),
    }
}

fn pem(pair: CertPair) -> CertificatePem {
    CertificatePem {
        cert_pem: pair.cert_pem,
        key_pem: pair.key_pem,
    }
}

#[async_trait]
impl Network for HostNetwork {
    fn listening_ports(&self) -> std::collections::BTreeSet<(ForwardProtocol, u16)> {
        crate::listening::listening_ports()
    }

    async fn apply(&self, plan: &NetworkPlan) -> Result<NetworkReport, NetworkError> {
        let mut report = NetworkReport::default();
        if plan.bridges.is_empty() && plan.forwards.is_empty() {
            // Nothing is ours to hold: leave the kernel alone (and work
            // without root on controllers that manage no networks), but
            // empty a table left from hosts that are gone.
            if let Ok(Some(_)) = self.nft.read().await {
                let nat = self
                    .nft
                    .reconcile(&NatTable::default())
                    .await
                    .map_err(|e| system("nftables", e))?;
                report.forwards_removed = nat.foreign_forwards;
                report.table_rebuilt = nat.rebuilt;
            }
            return Ok(report);
        }
        let ipv6 = plan
            .bridges
            .iter()
            .any(|b| b.addresses.iter().any(|a| matches!(a, ipnet::IpNet::V6(_))));
        links::enable_forwarding(ipv6).map_err(|e| system("IP forwarding", e))?;
        let mut masquerade = Vec::new();
        for bridge in &plan.bridges {
            let created =
                links::ensure_bridge(&bridge.name, &bridge.addresses, bridge.uplink.as_deref())
                    .await
                    .map_err(|e| system(&format!("bridge {}", bridge.name), e))?;
            if created {
                report.bridges_created += 1;
            }
            if let Some(dhcp) = &bridge.dhcp {
                self.dnsmasq
                    .apply(&dhcp_config(&bridge.name, dhcp))
                    .await
                    .map_err(|e| system(&format!("DHCP on {}", bridge.name), e))?;
            }
            masquerade.extend(bridge.masquerade.iter().map(|subnet| Masquerade {
                bridge: bridge.name.clone(),
                subnet: *subnet,
            }));
        }
        let table = NatTable {
            masquerade,
            forwards: plan.forwards.iter().map(forward).collect(),
        };
        let nat = self
            .nft
            .reconcile(&table)
            .await
            .map_err(|e| system("nftables", e))?;
        report.forwards_added = nat.missing_forwards;
        report.forwards_removed = nat.foreign_forwards;
        report.table_rebuilt = nat.rebuilt;
        Ok(report)
    }

    async fn remove_bridge(&self, bridge: &str) -> Result<(), NetworkError> {
        self.dnsmasq
            .stop(bridge)
            .await
            .map_err(|e| system(&format!("DHCP on {bridge}"), e))?;
        links::delete_link(bridge)
            .await
            .map_err(|e| system(&format!("bridge {bridge}"), e))
    }

    async fn add_forwards(&self, forwards: &[PortForward]) -> Result<(), NetworkError> {
        let wanted: Vec<Forward> = forwards.iter().map(forward).collect();
        match self.nft.add_forwards(&wanted).await {
            Ok(()) => Ok(()),
            // nft says "File exists" when a map key (the external port) is taken.
            Err(NftError::Failed { stderr }) if stderr.contains("File exists") => Err(
                NetworkError::PortTaken(forwards.first().map(|f| f.external_port).unwrap_or(0)),
            ),
            Err(e) => Err(system("nftables", e)),
        }
    }

    async fn remove_forwards(&self, forwards: &[PortForward]) -> Result<(), NetworkError> {
        let gone: Vec<Forward> = forwards.iter().map(forward).collect();
        self.nft
            .remove_forwards(&gone)
            .await
            .map_err(|e| system("nftables", e))
    }

    async fn apply_dhcp(&self, bridge: &str, dhcp: &DhcpPlan) -> Result<(), NetworkError> {
        self.dnsmasq
            .apply(&dhcp_config(bridge, dhcp))
            .await
            .map_err(|e| system(&format!("DHCP on {bridge}"), e))
    }

    fn set_proxy_routes(&self, routes: Vec<ProxyRoute>) -> Vec<(String, String)> {
        let routes = routes
            .into_iter()
            .map(|r| Route {
                https_only: r.tls.is_some(),
                tls: r.tls.map(|t| CertPair {
                    cert_pem: t.cert_pem,
                    key_pem: t.key_pem,
                }),
                domain: r.domain,
                backend: r.backend,
            })
            .collect();
        self.proxy
            .set_routes(routes)
            .into_iter()
            .map(|(domain, e)| (domain, e.to_string()))
            .collect()
    }

    async fn issue_certificate(&self, domain: &str) -> Result<CertificatePem, NetworkError> {
        let Some(opts) = &self.acme else {
            return Err(NetworkError::Acme(
                "ACME is not configured on this controller (acme_directory)".into(),
            ));
        };
        acme::issue(opts, domain, &self.proxy.challenges())
            .await
            .map(pem)
            .map_err(|e| NetworkError::Acme(e.to_string()))
    }

    fn self_signed_certificate(&self, domain: &str) -> Result<CertificatePem, NetworkError> {
        tls::self_signed(domain)
            .map(pem)
            .map_err(|e| system("self-signed certificate", e))
    }

    fn inspect_certificate(&self, pem: &CertificatePem, domain: &str) -> Result<i64, NetworkError> {
        let pair = CertPair {
            cert_pem: pem.cert_pem.clone(),
            key_pem: pem.key_pem.clone(),
        };
        tls::inspect(&pair, domain)
            .map(|info| info.not_after)
            .map_err(|e| NetworkError::BadCertificate(e.to_string()))
    }
}
