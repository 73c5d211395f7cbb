//! One dnsmasq per NAT bridge, owned by ironidc, serving DHCP only to
//! reserved MACs (no DNS, no dynamic pool).
//!
//! Files live in the run directory, named after the bridge:
//! `<bridge>.conf` (options, read at start), `<bridge>.hosts` (reservations,
//! re-read on SIGHUP), `<bridge>.leases`, `<bridge>.pid`, `<bridge>.log`.
//! dnsmasq daemonizes and outlives ironidc; [`Dnsmasq::apply`] finds it again
//! through the pid file and `/proc`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::links::{mac_hex, valid_ifname};

/// Serialises apply/stop within this process: both read and then act on the
/// pid file, which must not interleave for one bridge.
static LOCK: Mutex<()> = Mutex::const_new(());

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub mac: String,
    pub ip: Ipv4Addr,
    /// Sent as the DHCP host name when it is a valid label; dropped otherwise.
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpConfig {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// DNS servers handed to guests; IPv6 entries are skipped (DHCPv4 option 6
    /// carries IPv4 addresses only).
    pub dns: Vec<IpAddr>,
    pub reservations: Vec<Reservation>,
}

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("invalid name {0:?}")]
    InvalidName(String),
    #[error("invalid DHCP configuration: {0}")]
    Invalid(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run dnsmasq: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("dnsmasq did not start: {stderr}")]
    StartFailed { stderr: String },
    #[error("cannot signal dnsmasq (pid {pid}): {source}")]
    Signal {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DhcpError + '_ {
    move |source| DhcpError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// DHCP host names: one DNS label.
fn valid_hostname(name: &str) -> bool {
    (1..=63).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Paths end up inside dnsmasq's option file, where `,`, `#`, quotes, spaces
/// and line breaks have meaning; we only allow plain path characters.
fn valid_run_dir(path: &Path) -> bool {
    path.is_absolute()
        && path.as_os_str().as_bytes().iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+' | b'@')
        })
}

/// The dnsmasq instance of each bridge, with its files under one directory.
#[derive(Clone, Debug)]
pub struct Dnsmasq {
    run_dir: PathBuf,
    binary: PathBuf,
}

struct Files {
    conf: PathBuf,
    hosts: PathBuf,
    leases: PathBuf,
    pid: PathBuf,
    log: PathBuf,
    /// Present while an apply has written files but not yet made dnsmasq use
    /// them; a later apply then restarts dnsmasq even if the files look
    /// unchanged.
    dirty: PathBuf,
}

impl Dnsmasq {
    /// `run_dir` is created if needed and made 0755: dnsmasq drops privileges
    /// to `nobody` and re-reads the hosts file as that user, so the directory
    /// (and its parents) must be searchable by everyone. A relative path is
    /// made absolute, as dnsmasq changes to `/` when it daemonizes.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        let run_dir = run_dir.into();
        Dnsmasq {
            run_dir: std::path::absolute(&run_dir).unwrap_or(run_dir),
            binary: PathBuf::from("dnsmasq"),
        }
    }

    /// Use another dnsmasq binary.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    fn files(&self, bridge: &str) -> Files {
        let f = |ext: &str| self.run_dir.join(format!("{bridge}.{ext}"));
        Files {
            conf: f("conf"),
            hosts: f("hosts"),
            leases: f("leases"),
            pid: f("pid"),
            log: f("log"),
            dirty: f("dirty"),
        }
    }

    /// The dnsmasq option file and hosts file for `cfg`.
    pub fn render(&self, cfg: &DhcpConfig) -> Result<(String, String), DhcpError> {
        if !valid_ifname(&cfg.bridge) {
            return Err(DhcpError::InvalidName(cfg.bridge.clone()));
        }
        if !valid_run_dir(&self.run_dir) {
            return Err(DhcpError::InvalidName(self.run_dir.display().to_string()));
        }
        let subnet = cfg.subnet.trunc();
        if !(1..=30).contains(&subnet.prefix_len()) {
            return Err(DhcpError::Invalid(format!(
                "subnet {subnet} has no room for hosts"
            )));
        }
        let files = self.files(&cfg.bridge);

        let mut hosts = String::from("# Written by ironidc; changes are overwritten.\n");
        let mut macs = BTreeSet::new();
        let mut ips = BTreeSet::new();
        let mut reservations: Vec<&Reservation> = cfg.reservations.iter().collect();
        reservations.sort_by_key(|r| r.ip);
        for r in reservations {
            let hex = mac_hex(&r.mac).ok_or_else(|| DhcpError::InvalidName(r.mac.clone()))?;
            let usable = subnet.contains(&r.ip)
                && r.ip != subnet.network()
                && r.ip != subnet.broadcast()
                && r.ip != cfg.gateway;
            if !usable {
                return Err(DhcpError::Invalid(format!(
                    "reserved address {} is not a host address of {subnet} other than the gateway",
                    r.ip
                )));
            }
            if !macs.insert(hex.clone()) {
                return Err(DhcpError::Invalid(format!(
                    "MAC {} is reserved twice",
                    r.mac
                )));
            }
            if !ips.insert(r.ip) {
                return Err(DhcpError::Invalid(format!(
                    "address {} is reserved twice",
                    r.ip
                )));
            }
            let mac: Vec<&str> = (0..6).filter_map(|i| hex.get(i * 2..i * 2 + 2)).collect();
            let _ = write!(hosts, "{},{}", mac.join(":"), r.ip);
            match r.hostname.as_deref() {
                Some(h) if valid_hostname(h) => {
                    let _ = write!(hosts, ",{h}");
                }
                Some(h) => {
                    tracing::warn!(bridge = %cfg.bridge, mac = %r.mac, hostname = ?h, "dropping invalid DHCP host name")
                }
                None => {}
            }
            hosts.push('\n');
        }

        let mut conf = String::from("# Written by ironidc; changes are overwritten.\n");
        // No DNS service and nothing read from /etc: this instance is DHCP only.
        conf.push_str("port=0\nno-resolv\nno-hosts\n");
        // One instance per bridge: bind to that interface only (bind-dynamic
        // copes with the bridge's address appearing after start).
        let _ = writeln!(conf, "interface={}", cfg.bridge);
        conf.push_str("except-interface=lo\nbind-dynamic\n");
        // `static`: answer only MACs listed in the hosts file.
        let _ = writeln!(
            conf,
            "dhcp-range={},static,{},12h",
            subnet.network(),
            subnet.netmask()
        );
        let _ = writeln!(conf, "dhcp-hostsfile={}", files.hosts.display());
        let _ = writeln!(conf, "dhcp-leasefile={}", files.leases.display());
        let _ = writeln!(conf, "pid-file={}", files.pid.display());
        let _ = writeln!(conf, "dhcp-option=option:router,{}", cfg.gateway);
        let dns: Vec<String> = cfg
            .dns
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(v4.to_string()),
                IpAddr::V6(_) => None,
            })
            .collect();
        if dns.is_empty() {
            // Otherwise dnsmasq would offer itself, and it serves no DNS.
            conf.push_str("dhcp-option=option:dns-server\n");
        } else {
            let _ = writeln!(conf, "dhcp-option=option:dns-server,{}", dns.join(","));
        }
        // We own this subnet: NAK foreign leases at once instead of letting
        // clients wait for them to time out.
        conf.push_str("dhcp-authoritative\nlog-dhcp\n");
        let _ = writeln!(conf, "log-facility={}", files.log.display());
        Ok((conf, hosts))
    }

    /// Bring the bridge's dnsmasq in line with `cfg`: write the files
    /// atomically, start dnsmasq if it is not running, send SIGHUP when only
    /// the reservations changed (no restart, leases and pid are kept) and
    /// restart it when its options changed. Idempotent.
    pub async fn apply(&self, cfg: &DhcpConfig) -> Result<(), DhcpError> {
        let (conf, hosts) = self.render(cfg)?;
        let bridge = cfg.bridge.as_str();
        let files = self.files(bridge);
        let _guard = LOCK.lock().await;

        tokio::fs::create_dir_all(&self.run_dir)
            .await
            .map_err(io_err(&self.run_dir))?;
        tokio::fs::set_permissions(&self.run_dir, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(io_err(&self.run_dir))?;

        let conf_changed = read_opt(&files.conf).await?.as_deref() != Some(conf.as_str());
        let hosts_changed = read_opt(&files.hosts).await?.as_deref() != Some(hosts.as_str());
        let interrupted = tokio::fs::try_exists(&files.dirty)
            .await
            .map_err(io_err(&files.dirty))?;
        if conf_changed || hosts_changed {
            write_atomic(&files.dirty, "").await?;
            if hosts_changed {
                write_atomic(&files.hosts, &hosts).await?;
            }
            if conf_changed {
                write_atomic(&files.conf, &conf).await?;
            }
        }

        match self.running_pid(bridge) {
            None => self.start(bridge, &files).await?,
            Some(pid) if conf_changed || interrupted => {
                tracing::info!(bridge, pid, "restarting dnsmasq for new options");
                stop_pid(pid).await?;
                self.start(bridge, &files).await?;
            }
            Some(pid) if hosts_changed => {
                tracing::info!(bridge, pid, "dnsmasq: reloading reservations");
                signal(pid, libc::SIGHUP)?;
            }
            Some(_) => {}
        }
        remove_opt(&files.dirty).await
    }

    async fn start(&self, bridge: &str, files: &Files) -> Result<(), DhcpError> {
        let mut arg = OsString::from("--conf-file=");
        arg.push(&files.conf);
        // dnsmasq forks, and its first process exits once the daemon is set
        // up (pid file written), with a non-zero status and a message on
        // stderr if the configuration or the interface is wrong.
        let output = Command::new(&self.binary)
            .arg(arg)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(DhcpError::Spawn)?;
        if !output.status.success() {
            return Err(DhcpError::StartFailed {
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        for _ in 0..100 {
            if let Some(pid) = self.running_pid(bridge) {
                tracing::info!(bridge, pid, "dnsmasq started");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = read_opt(&files.log)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        Err(DhcpError::StartFailed {
            stderr: format!(
                "no running dnsmasq after start; log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        })
    }

    /// Stop the bridge's dnsmasq (SIGTERM, then SIGKILL after 5 s); fine when
    /// it is not running. Leases and config files are kept.
    pub async fn stop(&self, bridge: &str) -> Result<(), DhcpError> {
        if !valid_ifname(bridge) {
            return Err(DhcpError::InvalidName(bridge.to_string()));
        }
        let files = self.files(bridge);
        let _guard = LOCK.lock().await;
        if let Some(pid) = self.running_pid(bridge) {
            stop_pid(pid).await?;
            tracing::info!(bridge, pid, "dnsmasq stopped");
        }
        remove_opt(&files.pid).await
    }

    /// Pid of the bridge's dnsmasq if it runs: the pid file names a live
    /// (non-zombie) process whose command line carries our conf path, so a
    /// reused pid is not mistaken for it.
    pub fn running_pid(&self, bridge: &str) -> Option<i32> {
        if !valid_ifname(bridge) {
            return None;
        }
        let files = self.files(bridge);
        let pid: i32 = std::fs::read_to_string(&files.pid)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if pid <= 0 {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let mut want = b"--conf-file=".to_vec();
        want.extend_from_slice(files.conf.as_os_str().as_bytes());
        if !cmdline.split(|b| *b == 0).any(|arg| arg == want.as_slice()) {
            return None;
        }
        alive(pid).then_some(pid)
    }
}

/// Whether `pid` exists and is not a zombie. PID 1 of a container may not
/// reap orphans, so a killed daemon can linger as a zombie.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // itself contain spaces or parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X") | Some("x"))
}

fn signal(pid: i32, sig: libc::c_int) -> Result<(), DhcpError> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(()); // already gone
    }
    Err(DhcpError::Signal { pid, source: err })
}

async fn stop_pid(pid: i32) -> Result<(), DhcpError> {
    signal(pid, libc::SIGTERM)?;
    for i in 0..300 {
        if !alive(pid) {
            return Ok(());
        }
        if i == 250 {
            signal(pid, libc::SIGKILL)?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DhcpError::Signal {
        pid,
        source: std::io::Error::new(ErrorKind::TimedOut, "dnsmasq did not exit"),
    })
}

async fn read_opt(path: &Path) -> Result<Option<String>, DhcpError> {
    match tokio::fs::read_to_string(path).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

async fn remove_opt(path: &Path) -> Result<(), DhcpError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Write via a temporary file and rename, so dnsmasq never reads a half file;
/// 0644 because dnsmasq re-reads the hosts file as `nobody`.
async fn write_atomic(path: &Path, content: &str) -> Result<(), DhcpError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .await
        .map_err(io_err(&tmp))?;
    f.write_all(content.as_bytes())
        .await
        .map_err(io_err(&tmp))?;
    f.sync_all().await.map_err(io_err(&tmp))?;
    drop(f);
    // The umask may have narrowed the mode given to open().
    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .await
        .map_err(io_err(&tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cfg() -> DhcpConfig {
        DhcpConfig {
            bridge: "br0".into(),
            subnet: "10.78.0.1/24".parse().unwrap(),
            gateway: "10.78.0.1".parse().unwrap(),
            dns: vec![
                "1.1.1.1".parse().unwrap(),
                "2606:4700::1111".parse().unwrap(),
            ],
            reservations: vec![
                Reservation {
                    mac: "52:54:00:AA:BB:CC".into(),
                    ip: "10.78.0.60".parse().unwrap(),
                    hostname: Some("bad name".into()),
                },
                Reservation {
                    mac: "52-54-00-12-34-56".into(),
                    ip: "10.78.0.50".parse().unwrap(),
                    hostname: Some("vm-1".into()),
                },
            ],
        }
    }

    #[test]
    fn renders_conf_and_hosts() {
        let d = Dnsmasq::new("/run/ironidc/dhcp");
        let (conf, hosts) = d.render(&cfg()).unwrap();
        assert!(conf.contains("\ninterface=br0\n"));
        assert!(conf.contains("\ndhcp-range=10.78.0.0,static,255.255.255.0,12h\n"));
        assert!(conf.contains("\ndhcp-hostsfile=/run/ironidc/dhcp/br0.hosts\n"));
        assert!(conf.contains("\ndhcp-option=option:dns-server,1.1.1.1\n"));
        assert!(conf.contains("\nport=0\n"));
        let lines: Vec<&str> = hosts.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "52:54:00:12:34:56,10.78.0.50,vm-1",
                "52:54:00:aa:bb:cc,10.78.0.60"
            ]
        );
    }

    #[test]
    fn rejects_bad_input() {
        let d = Dnsmasq::new("/run/ironidc/dhcp");
        let mut c = cfg();
        c.bridge = "br0\ndhcp-script=/tmp/x".into();
        assert!(matches!(d.render(&c), Err(DhcpError::InvalidName(_))));
        let mut c = cfg();
        c.reservations[0].mac = "52:54:00:aa:bb:cc,10.0.0.1".into();
        assert!(matches!(d.render(&c), Err(DhcpError::InvalidName(_))));
        let mut c = cfg();
        c.reservations[0].ip = "10.79.0.5".parse().unwrap();
        assert!(matches!(d.render(&c), Err(DhcpError::Invalid(_))));
        let mut c = cfg();
        c.reservations[0].ip = c.reservations[1].ip;
        assert!(matches!(d.render(&c), Err(DhcpError::Invalid(_))));
        let bad_dir = Dnsmasq::new("/run/iron idc");
        assert!(matches!(
            bad_dir.render(&cfg()),
            Err(DhcpError::InvalidName(_))
        ));
    }
}
