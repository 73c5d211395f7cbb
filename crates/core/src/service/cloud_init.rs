//! The NoCloud seed of a VM: hostname, root password (as a SHA-512 crypt
//! hash, never in clear), the static addresses of its NICs, and the guest
//! status reporter (script, its settings with the VM's report secret, and a
//! `runcmd` that starts it). cloud-init images configure themselves from it;
//! guests without cloud-init use DHCP.

use base64::Engine as _;

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

/// The guest reporter (POSIX sh); it posts HWStatus reports to `upload`.
pub const REPORTER_SCRIPT: &str = include_str!("guest/ironidc-report.sh");
/// Where the seed installs it in the guest.
pub const REPORTER_PATH: &str = "/usr/local/sbin/ironidc-report";
const REPORTER_CONF: &str = "/etc/ironidc/report.conf";

/// Where and how often a guest reports, with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestReporter {
    /// The full upload URL including `?nic=MAC`.
    pub upload_url: String,
    pub secret: String,
    pub interval_secs: u64,
}

impl GuestReporter {
    /// The reporter's settings file: shell assignments with single-quoted
    /// values (the URL and secret never contain a quote; checked here).
    fn conf(&self) -> Result<String, CoreError> {
        if self.upload_url.contains('\'') || self.secret.contains('\'') {
            return Err(CoreError::invalid("report_url", "must not contain quotes"));
        }
        Ok(format!(
            "REPORT_URL='{}'\nREPORT_SECRET='{}'\nREPORT_INTERVAL={}\n",
            self.upload_url, self.secret, self.interval_secs
        ))
    }
}

pub fn build_seed(
    config: &VmConfig,
    addresses: &[VmAddress],
    root_password: Option<&str>,
    reporter: Option<&GuestReporter>,
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
    if let Some(reporter) = reporter {
        // One b64 line per file: the exact shape the demo guest's minimal
        // write_files reader understands, and valid cloud-config for
        // cloud-init itself.
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        user_data.push_str(&format!(
            "write_files:\n  - path: {REPORTER_PATH}\n    permissions: '0755'\n    encoding: b64\n    content: {}\n  - path: {REPORTER_CONF}\n    permissions: '0600'\n    encoding: b64\n    content: {}\nruncmd:\n  - [ {REPORTER_PATH}, --daemon ]\n",
            b64(REPORTER_SCRIPT),
            b64(&reporter.conf()?),
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
        let seed = build_seed(&config, &[addr], Some("s3cret-pass"), None).unwrap();
        assert!(seed.meta_data.contains("local-hostname: web-01"));
        assert!(seed.user_data.contains("root:$6$"));
        assert!(!seed.user_data.contains("s3cret-pass"));
        assert!(seed.network_config.contains("- 10.0.0.2/24"));
        assert!(seed.network_config.contains("via: 10.0.0.1"));
        assert!(seed
            .network_config
            .contains("macaddress: \"52:54:00:aa:bb:cc\""));
        assert!(!seed.user_data.contains("write_files"));
    }

    #[test]
    fn seed_ships_the_reporter_with_its_secret_only_inside_the_guest_files() {
        let config = VmConfig {
            vm_uuid: "vm1".into(),
            ..Default::default()
        };
        let reporter = GuestReporter {
            upload_url: "http://10.0.0.1:1880/api/client/upload?nic=52:54:00:aa:bb:cc".into(),
            secret: "abc123".into(),
            interval_secs: 60,
        };
        let seed = build_seed(&config, &[], None, Some(&reporter)).unwrap();
        let lines: Vec<&str> = seed.user_data.lines().collect();
        let contents: Vec<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("    content: "))
            .map(|b| {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(contents[0], REPORTER_SCRIPT);
        assert!(contents[1].contains("REPORT_SECRET='abc123'"));
        assert!(contents[1].contains("REPORT_INTERVAL=60"));
        assert!(
            !seed.user_data.contains("abc123"),
            "secret only base64-encoded in the file"
        );
        assert!(seed
            .user_data
            .contains("runcmd:\n  - [ /usr/local/sbin/ironidc-report, --daemon ]\n"));
        let bad = GuestReporter {
            secret: "a'b".into(),
            ..reporter
        };
        assert!(build_seed(&config, &[], None, Some(&bad)).is_err());
    }
}
