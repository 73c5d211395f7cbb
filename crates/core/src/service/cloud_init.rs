//! The NoCloud seed of a VM: hostname, root password (as a SHA-512 crypt
//! hash, never in clear) and the static addresses of its NICs. cloud-init
//! images configure themselves from it; guests without cloud-init use DHCP.

use crate::engine::CloudInitSeed;
use crate::error::CoreError;
use crate::model::{VmAddress, VmConfig};

/// Guest hostname from the VM name: DNS label characters only.
pub fn hostname_of(vm_uuid: &str) -> String {
    let mut name: String = vm_uuid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        "vm".into()
    } else {
        name
    }
}

pub fn build_seed(
    config: &VmConfig,
    addresses: &[VmAddress],
    root_password: Option<&str>,
) -> Result<CloudInitSeed, CoreError> {
    let hostname = hostname_of(&config.vm_uuid);
    let meta_data = format!(
        "instance-id: {}\nlocal-hostname: {hostname}\n",
        config.vm_uuid
    );
    let mut user_data = format!("#cloud-config\nhostname: {hostname}\nmanage_etc_hosts: true\n");
    if let Some(password) = root_password {
        let params = sha_crypt::Sha512Params::new(10_000)
            .map_err(|e| CoreError::Secret(format!("password hash parameters: {e:?}")))?;
        let hash = sha_crypt::sha512_simple(password, &params)
            .map_err(|e| CoreError::Secret(format!("password hash: {e:?}")))?;
        // A `$6$` value in chpasswd's list is taken as a hash by cloud-init.
        user_data.push_str(&format!(
            "ssh_pwauth: true\ndisable_root: false\nchpasswd:\n  expire: false\n  list: |\n    root:{hash}\n"
        ));
    }
    let mut network_config = String::from("version: 2\nethernets:\n");
    for (name, nic) in &config.nic_all {
        network_config.push_str(&format!(
            "  {name}:\n    match:\n      macaddress: \"{}\"\n",
            nic.mac_addr
        ));
        let mine: Vec<&VmAddress> = addresses.iter().filter(|a| a.nic == *name).collect();
        if mine.is_empty() {
            network_config.push_str("    dhcp4: true\n");
            continue;
        }
        network_config.push_str("    addresses:\n");
        for a in &mine {
            network_config.push_str(&format!("      - {}/{}\n", a.address, a.prefix));
        }
        let mut routes = String::new();
        for (vers, default) in [("ipv4", "0.0.0.0/0"), ("ipv6", "::/0")] {
            if let Some(a) = mine.iter().find(|a| a.vers == vers) {
                routes.push_str(&format!(
                    "      - to: {default}\n        via: {}\n",
                    a.gateway
                ));
            }
        }
        if !routes.is_empty() {
            network_config.push_str("    routes:\n");
            network_config.push_str(&routes);
        }
        if !nic.dns_addr.is_empty() {
            network_config.push_str("    nameservers:\n      addresses:\n");
            for dns in &nic.dns_addr {
                network_config.push_str(&format!("        - {dns}\n"));
            }
        }
    }
    Ok(CloudInitSeed {
        meta_data,
        user_data,
        network_config,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::NicConfig;

    #[test]
    fn seed_holds_hostname_hash_and_addresses() {
        let mut config = VmConfig {
            vm_uuid: "Web_01".into(),
            ..Default::default()
        };
        config.nic_all.insert(
            "nic0".into(),
            NicConfig {
                nic_type: "nat".into(),
                mac_addr: "52:54:00:aa:bb:cc".into(),
                dns_addr: vec!["1.1.1.1".into()],
                ..Default::default()
            },
        );
        let addr = VmAddress {
            id: 1,
            host_id: 1,
            vm_id: 1,
            nic: "nic0".into(),
            vers: "ipv4".into(),
            address: "10.0.0.2".into(),
            prefix: 24,
            gateway: "10.0.0.1".into(),
            pool: "lan".into(),
            description: String::new(),
            created_at: 0,
        };
        let seed = build_seed(&config, &[addr], Some("s3cret-pass")).unwrap();
        assert!(seed.meta_data.contains("local-hostname: web-01"));
        assert!(seed.user_data.contains("root:$6$"));
        assert!(!seed.user_data.contains("s3cret-pass"));
        assert!(seed.network_config.contains("- 10.0.0.2/24"));
        assert!(seed.network_config.contains("via: 10.0.0.1"));
        assert!(seed
            .network_config
            .contains("macaddress: \"52:54:00:aa:bb:cc\""));
    }
}
