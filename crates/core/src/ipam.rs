//! IP pools of a host (`ipaddr_maps` in the OpenIDCS host config) and the
//! arithmetic of allocating from them.
//!
//! A pool is a run of `nums` addresses starting at `from`, inside the subnet
//! given by `gate` and `mask`. NAT pools live on the host's NAT bridge (the
//! gateway is the bridge's own address); public pools on its public bridge.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// A pool as the API and the stored host config carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpPool {
    /// `ipv4` or `ipv6`.
    pub vers: String,
    /// `nat` or `pub`: which kind of NIC draws from it.
    #[serde(rename = "type")]
    pub kind: String,
    /// First address of the pool.
    pub from: String,
    /// Number of addresses in the pool.
    pub nums: u32,
    /// Gateway the guests use (on the NAT bridge for `nat` pools).
    pub gate: String,
    /// IPv4 netmask (`255.255.255.0`) or prefix length (`24`, `64`).
    pub mask: String,
    /// DNS servers handed to guests.
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }
    pub fn parse(field: &str, s: &str) -> Result<Self, CoreError> {
        match s {
            "ipv4" | "" => Ok(Self::V4),
            "ipv6" => Ok(Self::V6),
            _ => Err(CoreError::invalid(field, "must be ipv4 or ipv6")),
        }
    }
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Self::V4
        } else {
            Self::V6
        }
    }
}

/// `nat` or `pub`, for NICs and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetKind {
    Nat,
    Pub,
}

impl NetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Pub => "pub",
        }
    }
    pub fn parse(field: &str, s: &str) -> Result<Self, CoreError> {
        match s {
            "nat" | "" => Ok(Self::Nat),
            "pub" => Ok(Self::Pub),
            _ => Err(CoreError::invalid(field, "must be nat or pub")),
        }
    }
}

/// A validated pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub vers: IpVersion,
    pub kind: NetKind,
    pub first: IpAddr,
    pub count: u32,
    pub gateway: IpAddr,
    /// The subnet, e.g. 10.0.0.0/24, with the gateway's prefix.
    pub subnet: IpNet,
    pub dns: Vec<IpAddr>,
}

/// Largest pool we accept: enough for any host, small enough to scan.
const MAX_POOL: u32 = 1 << 20;

impl Pool {
    /// Check one `ipaddr_maps` entry; errors name `ipaddr_maps.NAME.FIELD`.
    pub fn parse(name: &str, raw: &IpPool) -> Result<Self, CoreError> {
        let field = |f: &str| format!("ipaddr_maps.{name}.{f}");
        crate::validate::path_name("ipaddr_maps", name)?;
        let vers = IpVersion::parse(&field("vers"), &raw.vers)?;
        let kind = NetKind::parse(&field("type"), &raw.kind)?;
        let first = parse_ip(&field("from"), &raw.from, vers)?;
        let gateway = parse_ip(&field("gate"), &raw.gate, vers)?;
        let prefix = parse_mask(&field("mask"), &raw.mask, vers)?;
        let subnet = IpNet::new(gateway, prefix)
            .map_err(|_| CoreError::invalid(&field("mask"), "prefix out of range"))?
            .trunc();
        if raw.nums == 0 || raw.nums > MAX_POOL {
            return Err(CoreError::invalid(
                &field("nums"),
                format!("must be between 1 and {MAX_POOL}"),
            ));
        }
        let last = offset(first, u128::from(raw.nums - 1)).ok_or_else(|| {
            CoreError::invalid(&field("nums"), "runs past the end of the address space")
        })?;
        if !subnet.contains(&first) || !subnet.contains(&last) {
            return Err(CoreError::invalid(
                &field("from"),
                format!("the pool {first}..{last} must lie inside {subnet}"),
            ));
        }
        let dns = raw
            .dns
            .iter()
            .map(|d| {
                d.parse::<IpAddr>().map_err(|_| {
                    CoreError::invalid(&field("dns"), format!("{d:?} is not an IP address"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_string(),
            vers,
            kind,
            first,
            count: raw.nums,
            gateway,
            subnet,
            dns,
        })
    }

    pub fn prefix_len(&self) -> u8 {
        self.subnet.prefix_len()
    }

    /// First and last address as numbers, for overlap checks.
    fn span(&self) -> (u128, u128) {
        let first = to_u128(self.first);
        (first, first + u128::from(self.count) - 1)
    }

    /// Is `addr` one of the pool's addresses (the gateway never is)?
    pub fn contains(&self, addr: IpAddr) -> bool {
        if addr == self.gateway || IpVersion::of(addr) != self.vers {
            return false;
        }
        match (to_u128(addr).checked_sub(to_u128(self.first)), self.count) {
            (Some(delta), count) => delta < u128::from(count),
            (None, _) => false,
        }
    }

    /// The pool's addresses in order, without the gateway and the subnet's
    /// network and broadcast addresses.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (0..self.count)
            .filter_map(move |i| offset(self.first, u128::from(i)))
            .filter(move |a| {
                *a != self.gateway
                    && !(self.vers == IpVersion::V4
                        && (*a == self.subnet.network() || *a == self.subnet.broadcast()))
            })
    }

    /// The first address of the pool not in `used`.
    pub fn first_free(&self, used: &HashSet<IpAddr>) -> Option<IpAddr> {
        self.addresses().find(|a| !used.contains(a))
    }
}

/// All pools of a host, validated; the first error names its field.
pub fn parse_pools(maps: &BTreeMap<String, IpPool>) -> Result<Vec<Pool>, CoreError> {
    let pools: Vec<Pool> = maps
        .iter()
        .map(|(name, raw)| Pool::parse(name, raw))
        .collect::<Result<_, _>>()?;
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            let (a0, a1) = a.span();
            let (b0, b1) = b.span();
            let overlap = a.vers == b.vers && a0 <= b1 && b0 <= a1;
            if overlap {
                return Err(CoreError::invalid(
                    &format!("ipaddr_maps.{}", b.name),
                    format!("overlaps pool {}", a.name),
                ));
            }
        }
    }
    Ok(pools)
}

pub fn parse_ip(field: &str, s: &str, vers: IpVersion) -> Result<IpAddr, CoreError> {
    let addr: IpAddr = s
        .trim()
        .parse()
        .map_err(|_| CoreError::invalid(field, format!("{s:?} is not an IP address")))?;
    if IpVersion::of(addr) != vers {
        return Err(CoreError::invalid(
            field,
            format!("{addr} is not an {} address", vers.as_str()),
        ));
    }
    Ok(addr)
}

/// A netmask (`255.255.255.0`) or prefix length (`24`) as a prefix length.
pub fn parse_mask(field: &str, s: &str, vers: IpVersion) -> Result<u8, CoreError> {
    let max = match vers {
        IpVersion::V4 => 32,
        IpVersion::V6 => 128,
    };
    let s = s.trim().trim_start_matches('/');
    if let Ok(prefix) = s.parse::<u8>() {
        if (1..=max).contains(&prefix) {
            return Ok(prefix);
        }
    }
    if vers == IpVersion::V4 {
        if let Ok(mask) = s.parse::<Ipv4Addr>() {
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() == 32 && bits != 0 {
                return Ok(bits.leading_ones() as u8);
            }
        }
    }
    Err(CoreError::invalid(
        field,
        format!("{s:?} is not a netmask or prefix length (1-{max})"),
    ))
}

/// The IPv4 netmask of a prefix length, as guests expect it (`nic_mask`).
pub fn netmask_v4(prefix: u8) -> String {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits).to_string()
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn offset(a: IpAddr, by: u128) -> Option<IpAddr> {
    match a {
        IpAddr::V4(v4) => {
            let n = u128::from(u32::from(v4)).checked_add(by)?;
            u32::try_from(n).ok().map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        }
        IpAddr::V6(v6) => u128::from(v6)
            .checked_add(by)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pool(vers: &str, from: &str, nums: u32, gate: &str, mask: &str) -> IpPool {
        IpPool {
            vers: vers.into(),
            kind: "nat".into(),
            from: from.into(),
            nums,
            gate: gate.into(),
            mask: mask.into(),
            dns: vec![],
        }
    }

    #[test]
    fn v4_pool_skips_gateway_network_and_broadcast() {
        let p = Pool::parse(
            "lan",
            &pool("ipv4", "10.0.0.0", 256, "10.0.0.1", "255.255.255.0"),
        )
        .unwrap();
        let all: Vec<_> = p.addresses().collect();
        assert_eq!(all.first().unwrap().to_string(), "10.0.0.2");
        assert_eq!(all.last().unwrap().to_string(), "10.0.0.254");
        assert_eq!(all.len(), 253);
        assert!(!p.contains("10.0.0.1".parse().unwrap()));
        assert!(p.contains("10.0.0.9".parse().unwrap()));
        assert!(!p.contains("10.0.1.9".parse().unwrap()));
        let used: HashSet<IpAddr> = ["10.0.0.2".parse().unwrap()].into();
        assert_eq!(p.first_free(&used).unwrap().to_string(), "10.0.0.3");
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(parse_mask("m", "255.255.255.0", IpVersion::V4).unwrap(), 24);
        assert_eq!(parse_mask("m", "24", IpVersion::V4).unwrap(), 24);
        assert_eq!(parse_mask("m", "/64", IpVersion::V6).unwrap(), 64);
        assert!(parse_mask("m", "255.0.255.0", IpVersion::V4).is_err());
        assert!(parse_mask("m", "33", IpVersion::V4).is_err());
        assert_eq!(netmask_v4(24), "255.255.255.0");
    }

    #[test]
    fn v6_pool() {
        let p = Pool::parse("v6", &pool("ipv6", "fd00::100", 16, "fd00::1", "64")).unwrap();
        assert_eq!(p.addresses().count(), 16);
        assert!(p.contains("fd00::10f".parse().unwrap()));
        assert!(!p.contains("fd00::110".parse().unwrap()));
    }

    #[test]
    fn bad_pools_name_the_field() {
        let err = Pool::parse("lan", &pool("ipv4", "10.0.1.5", 10, "10.0.0.1", "24")).unwrap_err();
        assert!(err.to_string().starts_with("ipaddr_maps.lan.from"), "{err}");
        let err = Pool::parse("lan", &pool("ipv4", "x", 10, "10.0.0.1", "24")).unwrap_err();
        assert!(err.to_string().starts_with("ipaddr_maps.lan.from"), "{err}");
        let err = Pool::parse("lan", &pool("ipv5", "10.0.0.5", 10, "10.0.0.1", "24")).unwrap_err();
        assert!(err.to_string().starts_with("ipaddr_maps.lan.vers"), "{err}");
        let err = Pool::parse("lan", &pool("ipv4", "10.0.0.5", 0, "10.0.0.1", "24")).unwrap_err();
        assert!(err.to_string().starts_with("ipaddr_maps.lan.nums"), "{err}");
        let err = Pool::parse("lan", &pool("ipv4", "10.0.0.5", 10, "fd00::1", "24")).unwrap_err();
        assert!(err.to_string().starts_with("ipaddr_maps.lan.gate"), "{err}");
    }

    #[test]
    fn overlapping_pools_are_refused() {
        let mut maps = BTreeMap::new();
        maps.insert(
            "a".to_string(),
            pool("ipv4", "10.0.0.10", 10, "10.0.0.1", "24"),
        );
        maps.insert(
            "b".to_string(),
            pool("ipv4", "10.0.0.15", 10, "10.0.0.1", "24"),
        );
        assert!(parse_pools(&maps).is_err());
        maps.insert(
            "b".to_string(),
            pool("ipv4", "10.0.0.20", 10, "10.0.0.1", "24"),
        );
        assert_eq!(parse_pools(&maps).unwrap().len(), 2);
    }
}
