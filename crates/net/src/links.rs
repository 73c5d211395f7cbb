//! Linux bridges and taps, driven through `ip` (iproute2) with argument
//! vectors, in the network namespace of the calling thread.
//!
//! Every function is idempotent: it inspects the current state with
//! `ip -j ...` and changes only what differs, so callers can run it on every
//! start and after every crash.

use std::net::IpAddr;
use std::process::Stdio;

use ipnet::IpNet;
use serde_json::Value;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot run ip: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("invalid interface name or MAC address {0:?}")]
    InvalidName(String),
    #[error("i/o error: {0}")]
    Io(#[source] std::io::Error),
    /// The name is taken by a link of another kind (e.g. a tap where a bridge
    /// is wanted); we never repurpose someone else's link.
    #[error("link {name} exists but is a {kind:?} link")]
    WrongKind { name: String, kind: String },
    #[error("cannot understand ip output: {0}")]
    Parse(String),
}

/// Interface names we accept: `[A-Za-z0-9_.-]{1,15}`, not starting with `-`
/// (would read as an option) or `.` (`.`/`..` are special in sysfs paths).
/// 15 is the kernel's limit (IFNAMSIZ - 1).
pub fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_name(name: &str) -> Result<(), LinkError> {
    if valid_ifname(name) {
        Ok(())
    } else {
        Err(LinkError::InvalidName(name.to_string()))
    }
}

/// Parse `52:54:00:ab:cd:ef` (or with `-`, or 12 bare hex digits) into its
/// 12 lowercase hex digits.
pub(crate) fn mac_hex(mac: &str) -> Option<String> {
    let hex: String = if mac.len() == 12 {
        mac.to_string()
    } else {
        let sep = if mac.contains('-') { '-' } else { ':' };
        let parts: Vec<&str> = mac.split(sep).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        parts.concat()
    };
    (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// The tap name of a VM NIC: `ix` + the MAC's 12 hex digits (14 characters,
/// within the 15 allowed). MACs are unique per host, so tap names are too,
/// and the name can be recomputed from the database without extra state.
pub fn tap_name_for_mac(mac: &str) -> Result<String, LinkError> {
    mac_hex(mac)
        .map(|hex| format!("ix{hex}"))
        .ok_or_else(|| LinkError::InvalidName(mac.to_string()))
}

/// Run `ip ARGS`; return stdout, or `Failed` with stderr.
async fn ip(args: &[&str]) -> Result<String, LinkError> {
    let output = Command::new("ip")
        .args(args)
        // Keeps error texts (matched below) untranslated.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(LinkError::Spawn)?;
    if output.status.success() {
        return String::from_utf8(output.stdout).map_err(|e| LinkError::Parse(e.to_string()));
    }
    Err(LinkError::Failed {
        command: format!("ip {}", args.join(" ")),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// `ip -j -d link show dev NAME` → the link object, or `None` when missing.
async fn link_info(name: &str) -> Result<Option<Value>, LinkError> {
    match ip(&["-j", "-d", "link", "show", "dev", name]).await {
        Ok(out) => {
            let v: Value =
                serde_json::from_str(&out).map_err(|e| LinkError::Parse(e.to_string()))?;
            Ok(v.as_array().and_then(|a| a.first()).cloned())
        }
        Err(LinkError::Failed { stderr, .. }) if stderr.contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

fn link_kind(info: &Value) -> String {
    let li = &info["linkinfo"];
    match (li["info_kind"].as_str(), li["info_data"]["type"].as_str()) {
        // `ip` reports taps as kind "tun" with data type "tap".
        (Some("tun"), Some(t)) => t.to_string(),
        (Some(k), _) => k.to_string(),
        (None, _) => "device".to_string(),
    }
}

pub async fn link_exists(name: &str) -> Result<bool, LinkError> {
    check_name(name)?;
    Ok(link_info(name).await?.is_some())
}

/// Create bridge `name` if missing, bring it up, add the addresses of `addrs`
/// it lacks (addresses already there, including others, are left alone) and
/// enslave `uplink` if given. Returns whether the bridge was created.
pub async fn ensure_bridge(
    name: &str,
    addrs: &[IpNet],
    uplink: Option<&str>,
) -> Result<bool, LinkError> {
    check_name(name)?;
    if let Some(u) = uplink {
        check_name(u)?;
        if u == name {
            return Err(LinkError::InvalidName(u.to_string()));
        }
    }
    let created = match link_info(name).await? {
        Some(info) => {
            let kind = link_kind(&info);
            if kind != "bridge" {
                return Err(LinkError::WrongKind {
                    name: name.to_string(),
                    kind,
                });
            }
            false
        }
        None => match ip(&["link", "add", "name", name, "type", "bridge"]).await {
            Ok(_) => true,
            // Someone created it meanwhile; the checks below still apply.
            Err(e) if link_info(name).await?.is_some() => {
                tracing::debug!(bridge = name, error = %e, "bridge appeared concurrently");
                false
            }
            Err(e) => return Err(e),
        },
    };
    ip(&["link", "set", "dev", name, "up"]).await?;

    let present = addresses(name).await?;
    for addr in addrs {
        if present.contains(&(addr.addr(), addr.prefix_len())) {
            continue;
        }
        let cidr = addr.to_string();
        ip(&["addr", "add", &cidr, "dev", name]).await?;
    }

    if let Some(u) = uplink {
        let info = link_info(u).await?.ok_or_else(|| LinkError::Failed {
            command: format!("ip link show dev {u}"),
            stderr: format!("uplink {u} does not exist"),
        })?;
        if info["master"] != name {
            ip(&["link", "set", "dev", u, "master", name]).await?;
        }
        ip(&["link", "set", "dev", u, "up"]).await?;
    }
    if created {
        tracing::info!(bridge = name, "created bridge");
    }
    Ok(created)
}

/// (address, prefix length) of every address on `name`.
async fn addresses(name: &str) -> Result<Vec<(IpAddr, u8)>, LinkError> {
    let out = ip(&["-j", "addr", "show", "dev", name]).await?;
    let v: Value = serde_json::from_str(&out).map_err(|e| LinkError::Parse(e.to_string()))?;
    let mut result = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let addr = a["local"].as_str().and_then(|s| s.parse::<IpAddr>().ok());
            let len = a["prefixlen"].as_u64().and_then(|l| u8::try_from(l).ok());
            if let (Some(addr), Some(len)) = (addr, len) {
                result.push((addr, len));
            }
        }
    }
    Ok(result)
}

/// Create persistent tap `name` if missing (so it survives QEMU restarts and
/// QEMU needs no privileges to create it), attach it to `bridge` and bring it
/// up. An existing tap is just (re)attached and brought up.
pub async fn ensure_tap(name: &str, bridge: &str) -> Result<(), LinkError> {
    check_name(name)?;
    check_name(bridge)?;
    match link_info(name).await? {
        Some(info) => {
            let kind = link_kind(&info);
            if kind != "tap" {
                return Err(LinkError::WrongKind {
                    name: name.to_string(),
                    kind,
                });
            }
        }
        None => {
            if let Err(e) = ip(&["tuntap", "add", "dev", name, "mode", "tap"]).await {
                if link_info(name).await?.is_none() {
                    return Err(e);
                }
            }
        }
    }
    ip(&["link", "set", "dev", name, "master", bridge, "up"]).await?;
    Ok(())
}

/// Delete a link (bridge, tap, veth…); fine when it does not exist.
pub async fn delete_link(name: &str) -> Result<(), LinkError> {
    check_name(name)?;
    match ip(&["link", "del", "dev", name]).await {
        Ok(_) => Ok(()),
        // Decide by looking rather than by the error text: gone is gone.
        Err(e) => match link_info(name).await? {
            None => Ok(()),
            Some(_) => Err(e),
        },
    }
}

/// Turn on IPv4 (and optionally IPv6) forwarding in the network namespace of
/// the calling thread (net sysctls under /proc/sys follow the caller's
/// namespace). Note that IPv6 `all.forwarding=1` makes interfaces with
/// `accept_ra=1` ignore router advertisements.
pub fn enable_forwarding(ipv6: bool) -> Result<(), LinkError> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1\n").map_err(LinkError::Io)?;
    if ipv6 {
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1\n").map_err(LinkError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ifnames() {
        for ok in [
            "br0",
            "ix525400123456",
            "a",
            "eth0.100",
            "v_1-2",
            "abcdefghijklmno",
        ] {
            assert!(valid_ifname(ok), "{ok}");
        }
        for bad in [
            "",
            "-br0",
            ".x",
            "..",
            "abcdefghijklmnop",
            "br 0",
            "br0\n",
            "br/0",
            "bré",
            "a\"b",
        ] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn tap_names() {
        assert_eq!(
            tap_name_for_mac("52:54:00:AB:cd:EF").unwrap(),
            "ix525400abcdef"
        );
        assert_eq!(
            tap_name_for_mac("52-54-00-ab-cd-ef").unwrap(),
            "ix525400abcdef"
        );
        assert_eq!(tap_name_for_mac("525400abcdef").unwrap(), "ix525400abcdef");
        assert!(valid_ifname(
            &tap_name_for_mac("52:54:00:ab:cd:ef").unwrap()
        ));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:eg",
            "5:254:00:ab:cd:ef",
            "52:54-00:ab:cd:ef",
            "52:54:00:ab:cd:ef:00",
        ] {
            assert!(tap_name_for_mac(bad).is_err(), "{bad:?}");
        }
    }
}
