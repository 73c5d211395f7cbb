//! The client address of a request. `X-Forwarded-For` is believed only
//! when the connection comes from a configured trusted proxy, and then
//! only as far as the chain of trusted proxies reaches: the address is the
//! right-most one that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::http::request::Parts;
use ipnet::IpNet;

/// Addresses and networks (`10.0.0.1`, `10.0.0.0/8`, `::1`) from a setting.
#[derive(Debug, Clone, Default)]
pub struct AddressList(Vec<IpNet>);

impl AddressList {
    /// Parse the items of setting `setting`; an error names it.
    pub fn parse<S: AsRef<str>>(setting: &str, items: &[S]) -> Result<Self, String> {
        items
            .iter()
            .map(|item| {
                let item = item.as_ref().trim();
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{setting}: {item:?} is not an address or network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(AddressList);

impl TrustedProxies {
    /// Parse addresses or networks (`10.0.0.1`, `10.0.0.0/8`, `::1`).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        AddressList::parse("trusted_proxies", items).map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client of a connection from `peer` carrying these
    /// `X-Forwarded-For` values.
    pub fn client_of<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        let mut client = canonical(peer);
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // Garbage in the chain: trust nothing before it.
                Err(_) => break,
            }
        }
        client
    }

    /// The client address of a request (`unknown` without connect info).
    pub fn client_ip(&self, parts: &Parts) -> String {
        self.client_addr(parts)
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }

    /// The client address of a request, if the connection is known.
    pub fn client_addr(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip())?;
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Some(self.client_of(peer, forwarded))
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client has one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let xff = ["1.2.3.4"];
        assert_eq!(
            none.client_of(ip("10.0.0.5"), xff.into_iter()),
            ip("10.0.0.5")
        );

        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap_or_default();
        assert_eq!(
            trusted.client_of(ip("10.0.0.5"), xff.into_iter()),
            ip("1.2.3.4")
        );
        // A client that forges a chain is found at the first untrusted hop.
        let forged = ["6.6.6.6, 1.2.3.4, 10.0.0.9"];
        assert_eq!(
            trusted.client_of(ip("10.0.0.5"), forged.into_iter()),
            ip("1.2.3.4")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            trusted.client_of(ip("8.8.8.8"), xff.into_iter()),
            ip("8.8.8.8")
        );
        // No header: the proxy itself.
        assert_eq!(trusted.client_of(ip("::1"), std::iter::empty()), ip("::1"));
        assert_eq!(
            trusted.client_of(ip("::ffff:10.0.0.5"), xff.into_iter()),
            ip("1.2.3.4")
        );
        assert!(TrustedProxies::parse(&["nonsense"]).is_err());
    }
}
